"""Emotion-driven augmentation of the acoustic training data (workflow_scripts/challenge/augment.py):
the perturbations, and the leakage test: only training audio is ever read or copied."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from workflow_scripts.challenge.augment import augment_manifest, augment_waveform, draw_settings, main
from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.common.manifest import SPEECH_COLUMNS, read_manifest, write_manifest
from workflow_scripts.common.names import AUGMENTED_ID_MARK, is_augmented_copy

from conftest import write_tone
from rule_job import rule_job

RATE = 16000
BLOCK = {
    "copies": 2,
    "seed": 5,
    "classes": {
        "neutral": {"speed": [1.0, 1.0], "volume_db": [0.0, 0.0], "pitch_semitones": None, "noise_snr_db": None},
        "negative": {
            "speed": [1.1, 1.1],
            "volume_db": [6.0, 6.0],
            "pitch_semitones": [0.0, 0.0],
            "noise_snr_db": [20.0, 20.0],
        },
    },
}


def tone(seconds=1.0, amplitude=0.2):
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * 200.0 * t)).astype(np.float32)


def test_each_perturbation_does_what_it_says():
    rng = np.random.default_rng(0)
    clean = tone()
    faster = augment_waveform(clean, RATE, {"speed": 1.1}, rng)
    assert abs(len(faster) - RATE / 1.1) <= 2
    louder = augment_waveform(clean, RATE, {"volume_db": 6.0}, rng)
    assert np.abs(louder).max() / np.abs(clean).max() == pytest.approx(10 ** (6 / 20), rel=1e-3)
    noisy = augment_waveform(clean, RATE, {"noise_snr_db": 10.0}, rng)
    snr = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
    assert snr == pytest.approx(10.0, abs=0.3)
    shifted = augment_waveform(clean, RATE, {"pitch_semitones": 2.0}, rng)
    assert len(shifted) == len(clean) and not np.allclose(shifted, clean)
    assert draw_settings(block_defaults("challenge.augmentation.classes.neutral", {"speed": [0.9, 0.9]}), rng) == {
        "speed": 0.9,
        "volume_db": None,
        "pitch_semitones": None,
        "noise_snr_db": None,
    }


def manifest(tmp_path, split, n, label_of=lambda i: "negative" if i % 2 else "neutral"):
    rows = []
    for i in range(n):
        path = write_tone(tmp_path / "wav" / f"{split}{i}.wav", seconds=0.5, sample_rate=RATE, frequency=200 + 20 * i)
        rows.append(
            {
                "utt_id": f"{split}{i}",
                "audio_path": str(path),
                "duration_s": 0.5,
                "sample_rate": RATE,
                "text": "xin chào",
                "label": label_of(i),
                "split": split,
                "speaker": f"spk{i % 2}",
            }
        )
    frame = pd.DataFrame(rows, columns=SPEECH_COLUMNS)
    path = tmp_path / f"{split}.tsv"
    write_manifest(frame, path, SPEECH_COLUMNS)
    return path


def test_copies_of_training_utterances_only_seeded_per_class(tmp_path):
    train = manifest(tmp_path, "train", 4)
    out = tmp_path / "out"
    job = rule_job(
        input={"manifest": str(train)},
        output={"wav_dir": str(out / "wav"), "manifest": str(out / "train.tsv"), "record": str(out / "copies.json")},
        params={"augmentation": BLOCK, "train_split": "train"},
    )
    main(job)
    copies = read_manifest(out / "train.tsv")
    originals = read_manifest(train)
    assert len(copies) == 2 * len(originals) and set(copies["split"]) == {"train"}
    assert all(is_augmented_copy(u) for u in copies["utt_id"])
    sources = {u.split(AUGMENTED_ID_MARK)[0] for u in copies["utt_id"]}
    assert sources == set(originals["utt_id"])
    by_id = originals.set_index("utt_id")
    for row in copies.itertuples():
        source = by_id.loc[row.utt_id.split(AUGMENTED_ID_MARK)[0]]
        assert (row.label, row.speaker, row.text) == (source.label, source.speaker, source.text)
        samples, rate = sf.read(row.audio_path)
        assert rate == RATE and row.audio_path.startswith(str(out / "wav"))
        # negative copies are 1.1x faster; neutral ones keep their length
        expected = 0.5 / 1.1 if source.label == "negative" else 0.5
        assert len(samples) / RATE == pytest.approx(expected, abs=1e-3)
    record = json.loads((out / "copies.json").read_text())["copies"]
    assert {r["source"] for r in record} == sources
    # seeded: a second run gives the same audio
    again = tmp_path / "again"
    main(
        rule_job(
            input={"manifest": str(train)},
            output={"wav_dir": str(again / "wav"), "manifest": str(again / "t.tsv"), "record": str(again / "c.json")},
            params={"augmentation": BLOCK, "train_split": "train"},
        )
    )
    for name in ("train1~aug1.wav", "train2~aug2.wav"):
        assert np.array_equal(sf.read(out / "wav" / name)[0], sf.read(again / "wav" / name)[0])


def test_leakage_dev_or_test_rows_are_refused(tmp_path):
    dev = read_manifest(manifest(tmp_path, "dev", 2))
    train = read_manifest(manifest(tmp_path, "train", 2))
    with pytest.raises(ValueError, match=r"split\(s\) \['dev'\].*training split 'train' only"):
        augment_manifest(pd.concat([train, dev]), BLOCK, "train", tmp_path, "mixed.tsv")
    with pytest.raises(ValueError, match="no settings for the label"):
        augment_manifest(train.assign(label="angry"), BLOCK, "train", tmp_path, "train.tsv")


def test_copies_as_asr_training_data_training_split_only(tmp_path):
    """challenge.augmentation.asr: the copies join the ASR training manifests (finetune_whisper's
    train input), read through the same split check, which refuses dev / test rows."""
    from workflow_scripts.asr.text import NormalizeConfig
    from workflow_scripts.asr.train import load_transcribed_split

    train = manifest(tmp_path, "train", 3)
    out = tmp_path / "out"
    main(
        rule_job(
            input={"manifest": str(train)},
            output={"wav_dir": str(out / "wav"), "manifest": str(out / "train.tsv"), "record": str(out / "c.json")},
            params={"augmentation": BLOCK, "train_split": "train"},
        )
    )
    data = load_transcribed_split([str(train), str(out / "train.tsv")], NormalizeConfig(), ["train"])
    assert len(data) == 3 + 2 * 3 and data["utt_id"].is_unique
    copies = data[data["utt_id"].map(is_augmented_copy)]
    assert set(copies["target"]) == {"xin chào"} and all(p.startswith(str(out / "wav")) for p in copies["audio_path"])
    # A copy of any other split never reaches training: augment refuses it, and so does the loader.
    dev = manifest(tmp_path, "dev", 1)
    with pytest.raises(ValueError, match=r"split\(s\) \['dev'\]"):
        load_transcribed_split([str(train), str(dev)], NormalizeConfig(), ["train"])


def test_acoustic_aug_pooled_files_load_as_a_feature_set(tmp_path):
    """pool_augmented_acoustic's files are the acoustic modality (train_classifier's
    load_feature_set groups by it); only the training split has the copies."""
    from workflow_scripts.challenge.pool_augmented import main as pool_main
    from workflow_scripts.common.features import write_features
    from workflow_scripts.fusion.pooling import load_feature_set

    rng = np.random.default_rng(0)

    def features(path, ids):
        stats = {"mean": rng.normal(size=(len(ids), 3)).astype(np.float32)}
        write_features(path, ids, stats, {"model": "unit", "checkpoint": None, "preprocessing": {}})
        return str(path)

    splits = ["train", "dev"]
    manifests = [str(manifest(tmp_path, split, 2)) for split in splits]
    copies = read_manifest(manifests[0]).assign(utt_id=lambda f: f["utt_id"] + AUGMENTED_ID_MARK + "1")
    write_manifest(copies, tmp_path / "aug.tsv", SPEECH_COLUMNS)
    pooled = [str(tmp_path / f"{split}.parquet") for split in splits]
    pool_main(
        rule_job(
            input={
                "features": [features(tmp_path / f"f_{split}.parquet", [f"{split}0", f"{split}1"]) for split in splits],
                "manifests": manifests,
                "augmented": features(tmp_path / "f_aug.parquet", list(copies["utt_id"])),
                "augmented_manifest": str(tmp_path / "aug.tsv"),
            },
            output={"pooled": pooled},
            params={
                "pooling": {"statistics": ["mean"]},
                "classes": ["neutral", "negative"],
                "splits": splits,
                "train_split": "train",
            },
        )
    )
    data = load_feature_set(pooled)
    assert data["train"].utt_ids == ["train0", "train1", "train0~aug1", "train1~aug1"]
    assert data["dev"].utt_ids == ["dev0", "dev1"] and data["train"].X.shape == (4, 3)


def test_classifier_cv_holds_out_real_utterances_only():
    """train_classifier's CV on acoustic_aug: copies are fitted on, never held out or scored, and a
    held-out utterance's copies are not fitted on in its fold (even when folds ignore speakers)."""
    from workflow_scripts.common.cv import cv_folds
    from workflow_scripts.fusion.classifiers import folds_with_copies

    real = [f"u{i}" for i in range(12)]
    ids = real + [f"{u}{AUGMENTED_ID_MARK}{k}" for u in real for k in (1, 2)]
    y = np.array([i % 2 for i in range(12)] * 3)
    copies = {u for u in ids if is_augmented_copy(u)}
    times_held_out = dict.fromkeys(real, 0)
    for fit, held_out in folds_with_copies(y, ids, 3, 0, None):
        held = {ids[i] for i in held_out}
        fitted = {ids[i] for i in fit}
        fitted_sources = {u.split(AUGMENTED_ID_MARK)[0] for u in fitted}
        assert not any(is_augmented_copy(u) for u in held) and held and not held & fitted_sources
        # Every copy of an utterance that is not held out is fitted on, with the real utterances.
        assert fitted == set(real) - held | {u for u in copies if u.split(AUGMENTED_ID_MARK)[0] not in held}
        for u in held:
            times_held_out[u] += 1
    assert set(times_held_out.values()) == {1}, times_held_out
    plain = cv_folds(y[:12], 3, 0, None)
    assert all(
        np.array_equal(a, b)
        for fold, same in zip(folds_with_copies(y[:12], real, 3, 0, None), plain)
        for a, b in zip(fold, same)
    )
