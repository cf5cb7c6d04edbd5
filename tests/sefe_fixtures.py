"""Small checkpoints and audio that the SEFE tests build themselves (no hub, no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
EMODB = SHARED / "data" / "speech" / "emodb_2s"

PREPROCESSING: dict[str, Any] = {
    "channels": "mean",
    "sample_rate": 16000,
    "resample_quality": "HQ",
    "peak_normalize": True,
    "peak_level": 1.0,
    "fixed_length_s": None,
}

HANDCRAFTED: dict[str, Any] = {
    "batch_size": 4,
    "win_length_ms": 25.0,
    "hop_length_ms": 10.0,
    "n_mels": 24,
    "fmin": 0.0,
    "fmax": None,
    "n_mfcc": 13,
    "delta_order": 2,
    "f0": {"enabled": True, "fmin": 60.0, "fmax": 500.0, "frame_length_ms": 40.0},
    "energy": True,
}


def tone(seconds: float, sample_rate: int, freq: float = 220.0, amplitude: float = 0.3, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise and a pitch glide: speech-like enough for F0 and energy."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    glide = freq * (1.0 + 0.2 * t / max(seconds, 1e-9))
    phase = 2 * np.pi * np.cumsum(glide) / sample_rate
    signal = sum(np.sin(k * phase) / k for k in (1, 2, 3))
    envelope = 0.5 + 0.5 * np.sin(np.pi * t / max(seconds, 1e-9))
    return (amplitude * envelope * signal / 1.8 + 0.005 * rng.standard_normal(len(t))).astype(np.float32)


def write_corpus(directory: Path, durations: list[float], sample_rate: int = 22050) -> list[tuple[str, str]]:
    """WAV files of the given durations; returns (utt_id, path) items."""
    directory.mkdir(parents=True, exist_ok=True)
    items = []
    for index, seconds in enumerate(durations):
        path = directory / f"utt{index:03d}.wav"
        sf.write(path, tone(seconds, sample_rate, freq=120.0 + 15 * index, seed=index), sample_rate, subtype="PCM_16")
        items.append((f"utt{index:03d}", str(path)))
    return items


def write_manifest(
    path: Path, items: list[tuple[str, str]], labels: list[str] | None = None, speakers: list[str] | None = None
) -> Path:
    """A speech manifest (the data stage's columns) for ``items``."""
    import pandas as pd

    labels = labels or ["neutral"] * len(items)
    speakers = speakers or ["s0"] * len(items)
    frame = pd.DataFrame(
        {
            "utt_id": [u for u, _ in items],
            "audio_path": [p for _, p in items],
            "duration_s": [sf.info(p).duration for _, p in items],
            "sample_rate": [sf.info(p).samplerate for _, p in items],
            "text": ["x"] * len(items),
            "label": labels,
            "split": ["train"] * len(items),
            "speaker": speakers,
        }
    )
    frame.to_csv(path, sep="\t", index=False, quoting=3)
    return path


def tiny_emotion2vec_config(embed_dim: int = 32, heads: int = 4, depth: int = 2) -> dict[str, Any]:
    """funasr Emotion2vec config.yaml content for a random-initialised model of a few 100k parameters."""
    return {
        "model": "Emotion2vec",
        "model_conf": {
            "loss_beta": 0.0,
            "loss_scale": None,
            "depth": depth,
            "start_drop_path_rate": 0.0,
            "end_drop_path_rate": 0.0,
            "num_heads": heads,
            "norm_eps": 1.0e-5,
            "norm_affine": True,
            "encoder_dropout": 0.1,
            "post_mlp_drop": 0.1,
            "attention_dropout": 0.1,
            "activation_dropout": 0.0,
            "dropout_input": 0.0,
            "layerdrop": 0.0,
            "embed_dim": embed_dim,
            "mlp_ratio": 2.0,
            "layer_norm_first": False,
            "average_top_k_layers": depth,
            "end_of_block_targets": False,
            "clone_batch": 1,
            "normalize": True,
            "modalities": {
                "audio": {
                    "type": "AUDIO",
                    "prenet_depth": 1,
                    "prenet_layerdrop": 0.0,
                    "prenet_dropout": 0.1,
                    "start_drop_path_rate": 0.0,
                    "end_drop_path_rate": 0.0,
                    "num_extra_tokens": 0,
                    "init_extra_token_zero": True,
                    "mask_noise_std": 0.01,
                    "mask_prob_min": None,
                    "mask_prob": 0.5,
                    "inverse_mask": False,
                    "mask_prob_adjust": 0.05,
                    "keep_masked_pct": 0.0,
                    "mask_length": 5,
                    "add_masks": False,
                    "remove_masks": False,
                    "mask_dropout": 0.0,
                    "encoder_zero_mask": True,
                    "mask_channel_prob": 0.0,
                    "mask_channel_length": 64,
                    "ema_local_encoder": False,
                    "local_grad_mult": 1.0,
                    "use_alibi_encoder": True,
                    "alibi_scale": 1.0,
                    "learned_alibi": False,
                    "alibi_max_pos": None,
                    "learned_alibi_scale": True,
                    "learned_alibi_scale_per_head": True,
                    "learned_alibi_scale_per_layer": True,
                    "num_alibi_heads": heads,
                    "model_depth": depth,
                    "decoder": None,
                    "extractor_mode": "layer_norm",
                    "feature_encoder_spec": "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32,2,2)] + [(32,2,2)]",
                    "conv_pos_width": 16,
                    "conv_pos_groups": 4,
                    "conv_pos_depth": 2,
                    "conv_pos_pre_ln": False,
                }
            },
        },
    }


def write_tiny_emotion2vec(directory: Path, seed: int = 0) -> dict[str, Any]:
    """config.yaml + model.pt of a random-initialised funasr Emotion2vec; returns its state dict."""
    import torch
    import yaml
    from funasr.models.emotion2vec.model import Emotion2vec

    directory.mkdir(parents=True, exist_ok=True)
    config = tiny_emotion2vec_config()
    (directory / "config.yaml").write_text(yaml.safe_dump(config))
    torch.manual_seed(seed)
    model = Emotion2vec(**config)
    with torch.no_grad():  # alibi scales start at 1 anyway; make every weight differ from a fresh init
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    state = model.state_dict()
    torch.save(state, directory / "model.pt")
    return state


def write_tiny_wavlm(directory: Path, attention_mask: bool = True, seed: int = 0) -> None:
    """A random-initialised WavLMModel (2 layers, 32-d) and its feature extractor, save_pretrained()."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

    config = WavLMConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        num_buckets=32,
        max_bucket_distance=100,
        # "layer" feature-encoder norm + attention mask: padded batches equal one-by-one (wavlm-large);
        # "group" without a mask: padding changes outputs (wavlm-base)
        feat_extract_norm="layer" if attention_mask else "group",
        do_stable_layer_norm=attention_mask,
    )
    torch.manual_seed(seed)
    WavLMModel(config).save_pretrained(directory)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=attention_mask
    ).save_pretrained(directory)
