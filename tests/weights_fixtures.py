"""Real Whisper base weights (the `weights` extra) and English clips for them. The weights are
assembled and converted once per test session by conftest's fixtures ``whisper_base_ct2`` and
``whisper_base_hf``; tests that use them skip with a message where the extra is not installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workflow_scripts.common.pretrained import INSTALL_HINT, WHISPER_BASE_CT2, weights_installed

# English sentences of common words: whisper-base transcribes espeak-ng's English voice of them well.
ENGLISH = [
    "the quick brown fox jumps over the lazy dog",
    "please open the window and close the door",
]


def require_weights() -> None:
    if not weights_installed(WHISPER_BASE_CT2):
        pytest.skip(f"the weights extra is not installed (real Whisper base weights): {INSTALL_HINT}")


def english_clips(texts: list[str] = ENGLISH, rate: int = 150) -> list[np.ndarray]:
    """espeak-ng English speech of ``texts`` as 16 kHz float32 waveforms."""
    import soxr

    from workflow_scripts.data.espeak import EspeakSynthesizer, Prosody

    synthesizer = EspeakSynthesizer()
    clips = []
    for text in texts:
        samples = synthesizer.synthesize(text, "en", Prosody(rate=rate)).astype(np.float32) / 32768.0
        clips.append(soxr.resample(samples, synthesizer.sample_rate, 16000).astype(np.float32))
    return clips


def write_english_manifest(root: Path, texts: list[str] = ENGLISH) -> Path:
    """A manifest of espeak-ng English clips (16 kHz wav files) with their text as reference."""
    import pandas as pd
    import soundfile as sf

    from workflow_scripts.common.manifest import SPEECH_COLUMNS, write_manifest

    rows = []
    for i, (text, clip) in enumerate(zip(texts, english_clips(texts), strict=True)):
        path = root / f"en_{i:02d}.wav"
        sf.write(path, clip, 16000, subtype="PCM_16")
        rows.append(
            {
                "utt_id": f"en_{i:02d}",
                "audio_path": str(path),
                "duration_s": len(clip) / 16000,
                "sample_rate": 16000,
                "text": text,
                "label": "neutral",
                "split": "test",
                "speaker": "en",
            }
        )
    manifest = root / "test.tsv"
    write_manifest(pd.DataFrame(rows), manifest, SPEECH_COLUMNS)
    return manifest
