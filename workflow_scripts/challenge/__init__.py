"""The VLSP 2025 challenge's practice: the challenge score, lexicon cue rules, emotion-driven augmentation."""
