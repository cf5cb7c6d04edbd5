"""Seeded stratified and speaker-disjoint splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.data.splits import assign_splits

FRACTIONS = {"train": 0.6, "dev": 0.2, "test": 0.2}


def _corpus(n_speakers: int = 10, per_speaker: int = 30, seed: int = 0) -> tuple[pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    speakers = pd.Series(np.repeat([f"s{i}" for i in range(n_speakers)], per_speaker))
    labels = pd.Series(rng.choice(["neutral", "negative"], size=len(speakers), p=[0.6, 0.4]))
    return labels, speakers


def test_stratified_split_keeps_class_proportions_and_sizes():
    labels, _ = _corpus()
    splits = assign_splits(labels, FRACTIONS, seed=1)
    assert splits.value_counts().to_dict() == {"train": 180, "dev": 60, "test": 60}
    overall = (labels == "negative").mean()
    for name in FRACTIONS:
        share = (labels[splits == name] == "negative").mean()
        assert abs(share - overall) < 0.02, name


def test_speaker_disjoint_split_puts_each_speaker_in_one_split():
    labels, speakers = _corpus()
    splits = assign_splits(labels, FRACTIONS, seed=3, speakers=speakers)
    per_speaker = pd.DataFrame({"speaker": speakers, "split": splits}).groupby("speaker")["split"].nunique()
    assert (per_speaker == 1).all()
    assert set(splits) == set(FRACTIONS)
    assert splits.value_counts()["train"] == 180  # 6 of 10 equal-sized speakers


def test_splits_are_deterministic_per_seed_and_change_with_it():
    labels, speakers = _corpus()
    first = assign_splits(labels, FRACTIONS, seed=7, speakers=speakers)
    assert first.equals(assign_splits(labels, FRACTIONS, seed=7, speakers=speakers))
    assert not first.equals(assign_splits(labels, FRACTIONS, seed=8, speakers=speakers))
    plain = assign_splits(labels, FRACTIONS, seed=7)
    assert plain.equals(assign_splits(labels, FRACTIONS, seed=7))


def test_too_few_speakers_is_a_clear_error():
    labels, speakers = _corpus(n_speakers=2)
    with pytest.raises(ValueError, match="at least 3 speakers"):
        assign_splits(labels, FRACTIONS, seed=0, speakers=speakers)
