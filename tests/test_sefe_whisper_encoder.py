"""SEFE backend whisper_encoder: a frozen Whisper encoder, frames of the clip's own length.

A tiny random Whisper checks the contract everywhere; the real Whisper base (the `weights`
extra) checks width, frame rate and determinism where it is installed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workflow_scripts.sefe.backends import build_backend

from sefe_fixtures import tone
from weights_fixtures import english_clips

CONFIG = {"model": None, "layer": "last", "input_window": "full", "device": "cpu", "batch_size": 4}


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    """A random WhisperModel (d_model 32, 2 layers) with a 4 s window, saved with its feature extractor."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    directory = tmp_path_factory.mktemp("tiny_whisper")
    torch.manual_seed(0)
    extractor = WhisperFeatureExtractor(feature_size=16, chunk_length=4)
    config = WhisperConfig(
        vocab_size=64,
        num_mel_bins=16,
        d_model=32,
        encoder_layers=2,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=extractor.nb_max_frames // 2,
        max_target_positions=16,
        pad_token_id=0,
        bos_token_id=0,
        eos_token_id=0,
        decoder_start_token_id=1,
    )
    WhisperModel(config).save_pretrained(directory)
    extractor.save_pretrained(directory)
    return directory


def test_frames_cover_the_clip_and_match_the_encoder(tiny_whisper):
    from transformers import WhisperFeatureExtractor, WhisperModel

    backend = build_backend("whisper_encoder", {**CONFIG, "model": str(tiny_whisper)}, 16000, threads=1)
    assert backend.dim == 32 and backend.frame_rate_hz == 50.0
    waves = [tone(1.0, 16000), tone(2.31, 16000, freq=330.0), tone(9.0, 16000)]
    frames = backend.frames(waves)
    assert [f.shape for f in frames] == [(50, 32), (116, 32), (200, 32)]  # ceil(s x 50), at most the 4 s window
    assert all(f.dtype == np.float32 for f in frames)
    extractor = WhisperFeatureExtractor.from_pretrained(tiny_whisper)
    encoder = WhisperModel.from_pretrained(tiny_whisper).get_encoder().eval()
    with torch.no_grad():
        full = encoder(extractor(waves, sampling_rate=16000, return_tensors="pt").input_features).last_hidden_state
    for row, matrix in enumerate(frames):
        np.testing.assert_allclose(matrix, full[row, : len(matrix)].numpy(), atol=1e-5)
    # Batches give what single clips give, and reruns the same.
    np.testing.assert_allclose(backend.frames(waves[1:2])[0], frames[1], atol=1e-5)


@pytest.mark.parametrize("layer", [0, 2, -1, "average"])
def test_layers_and_clip_window(tiny_whisper, layer):
    cfg = {**CONFIG, "model": str(tiny_whisper), "layer": layer, "input_window": "clip"}
    backend = build_backend("whisper_encoder", cfg, 16000, threads=1)
    waves = [tone(1.0, 16000), tone(1.5, 16000), tone(1.0, 16000, freq=440.0)]
    frames = backend.frames(waves)
    assert [f.shape for f in frames] == [(50, 32), (75, 32), (50, 32)]
    for wave, matrix in zip(waves, frames, strict=True):  # equal-length groups reproduce single clips
        np.testing.assert_allclose(backend.frames([wave])[0], matrix, atol=1e-5)


def test_layer_out_of_range(tiny_whisper):
    with pytest.raises(ValueError, match="out of range"):
        build_backend("whisper_encoder", {**CONFIG, "model": str(tiny_whisper), "layer": 5}, 16000)


def test_real_whisper_base_encoder(whisper_base_hf):  # noqa: F811
    """Whisper base: 512-d frames at 50 frames/s for the clip only, deterministic."""
    backend = build_backend("whisper_encoder", {**CONFIG, "model": str(whisper_base_hf)}, 16000, threads=2)
    assert backend.dim == 512 and backend.frame_rate_hz == 50.0 and backend.metadata()["layers"] == 6
    clip = english_clips()[:1]
    first = backend.frames(clip)[0]
    assert first.shape == (int(np.ceil(len(clip[0]) / 320)), 512)
    assert np.isfinite(first).all() and first.std() > 0.1
    np.testing.assert_array_equal(backend.frames(clip)[0], first)


# --- layer: auto (sefe/layer_choice.py) -------------------------------------------------------


def test_layer_auto_encodes_every_layer_side_by_side(tiny_whisper):
    auto = build_backend("whisper_encoder", {**CONFIG, "model": str(tiny_whisper), "layer": "auto"}, 16000)
    names = auto.layer_names()
    assert names == ["0", "1", "2", "last", "average"] and auto.dim == 32 * len(names)
    assert auto.metadata()["layer_names"] == names and auto.metadata()["layer_dim"] == 32
    waves = [tone(1.0, 16000), tone(1.5, 16000, freq=330.0)]
    stacked = auto.frames(waves)
    for k, name in enumerate(names):
        layer = int(name) if name.isdigit() else name
        one = build_backend("whisper_encoder", {**CONFIG, "model": str(tiny_whisper), "layer": layer}, 16000)
        for matrix, single in zip(stacked, one.frames(waves), strict=True):
            np.testing.assert_allclose(matrix[:, k * 32 : (k + 1) * 32], single, atol=1e-5)


def labelled_corpus(directory):
    """Tones whose pitch carries the class, three speakers per split; manifests per split."""
    import soundfile as sf

    from sefe_fixtures import write_manifest

    manifests = {}
    for split, n in (("train", 12), ("dev", 6), ("test", 6)):
        items, labels, speakers = [], [], []
        for i in range(n):
            negative = i % 2 == 1
            path = directory / f"{split}_{i}.wav"
            sf.write(path, tone(1.0, 16000, freq=300.0 if negative else 120.0, seed=i), 16000)
            items.append((f"{split}_{i}", str(path)))
            labels.append("negative" if negative else "neutral")
            speakers.append(f"{split}_s{i % 3}")
        manifests[split] = write_manifest(directory / f"{split}.tsv", items, labels, speakers)
    return manifests


def test_layer_choice_reads_train_and_selection_only_and_is_recorded(tiny_whisper, tmp_path):
    """choose_sefe_layer sees the training (+ selection) split alone: flipping the test labels changes
    neither the choice nor the chosen layer's classifier; the choice lands in metadata and evaluation."""
    import pandas as pd

    from workflow_scripts.common.config_schema import block_defaults
    from workflow_scripts.common.features import read_features
    from workflow_scripts.sefe import choose_layer
    from workflow_scripts.sefe.evaluate import evaluate, labelled_features
    from workflow_scripts.sefe.extract import extract_features
    from workflow_scripts.sefe.layer_choice import job_block

    from rule_job import rule_job
    from sefe_fixtures import PREPROCESSING

    block = block_defaults("sefe.whisper_encoder", {"model": str(tiny_whisper), "layer": "auto", "device": "cpu"})
    evaluation = block_defaults("sefe.evaluation", {"C": [0.1, 1.0], "cv_folds": 3})
    classes, splits = ["neutral", "negative"], {"train": "train", "selection": "dev"}
    manifests = labelled_corpus(tmp_path)
    for split in ("train", "dev"):  # extract_sefe_layers
        extract_features(
            "whisper_encoder", block, PREPROCESSING, manifests[split], tmp_path / f"L_{split}.parquet", split, 1
        )
    params = {"evaluation": evaluation, "layer_choice": block["layer_choice"], "classes": classes}
    inputs = {
        "train_features": str(tmp_path / "L_train.parquet"),
        "train_manifest": str(manifests["train"]),
        "selection_features": str(tmp_path / "L_dev.parquet"),
        "selection_manifest": str(manifests["dev"]),
    }
    results = []
    for flip in (False, True):
        if flip:  # the test split's labels flipped: no input of the choice changes
            test = pd.read_csv(manifests["test"], sep="\t", quoting=3)
            test["label"] = test["label"].map({"neutral": "negative", "negative": "neutral"})
            test.to_csv(manifests["test"], sep="\t", index=False, quoting=3)
        choice_path = tmp_path / f"choice_{flip}.json"
        job = rule_job(
            inputs, {"choice": str(choice_path)}, {**params, "train_split": "train", "selection_split": "dev"}
        )
        choose_layer.main(job)
        resolved, choice = job_block(rule_job({"layer_choice": str(choice_path)}, params={"backend": block}))
        features = {}
        for split in ("train", "dev", "test"):  # extract_sefe with the chosen layer
            out = tmp_path / f"{split}_{flip}.parquet"
            extract_features("whisper_encoder", resolved, PREPROCESSING, manifests[split], out, split, 1, choice)
            features[split] = (str(out), str(manifests[split]))
        results.append((choice, evaluate(evaluation, classes, features, "train")))
    (choice, record), (flipped_choice, flipped_record) = results
    assert choice == flipped_choice and choice["criterion"] == "selection" and choice["split"] == "dev"
    assert set(choice["scores"]) == {"0", "1", "2", "last", "average"}
    assert resolved["layer"] == (int(choice["layer"]) if choice["layer"].isdigit() else choice["layer"])
    assert read_features(features["test"][0], ["mean"])[2]["layer_choice"]["chosen_layer"] == choice["layer"]
    assert record["layer_choice"]["chosen_layer"] == choice["layer"]
    assert flipped_record["classifier"] == record["classifier"]
    assert flipped_record["splits"]["test"]["WA"] == pytest.approx(1 - record["splits"]["test"]["WA"])
    # the other criterion: cross-validation inside the training split alone
    train = labelled_features(
        inputs["train_features"], inputs["train_manifest"], list(evaluation["statistics"]), classes
    )
    by_cv = choose_layer.choose_layer(train, None, evaluation, classes, "cv", splits)
    assert by_cv["split"] == "train" and by_cv["layer"] in by_cv["scores"] and by_cv["criterion"] == "cv"


def test_layer_auto_plan_never_reads_a_test_split(workflow_dir):
    """The DAG: the layer features exist for the training and selection splits only; the choice reads them."""
    import yaml

    from snakemake_runner import dry_run

    override = workflow_dir / "auto.yaml"
    override.write_text(yaml.safe_dump({"sefe": {"whisper_encoder": {"layer": "auto"}}}))
    plan = dry_run(
        workflow_dir, "--configfile", "config.yaml", str(override), "--", "results/sefe/whisper_encoder/evaluation.json"
    )
    jobs = plan.by_rule()
    assert sorted(job.wildcards["split"] for job in jobs["extract_sefe_layers"]) == ["dev", "train"]
    (choose,) = jobs["choose_sefe_layer"]
    assert not [path for path in choose.input if "test" in path], choose.input
    assert all("results/sefe/whisper_encoder/layer_choice.json" in job.input for job in jobs["extract_sefe"])
