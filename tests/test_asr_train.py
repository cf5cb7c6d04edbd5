"""Fine-tuning: best checkpoint by dev WER, resuming after a crash, data guards, precision choice."""

import json

import pytest
import torch
from transformers import TrainerCallback

from workflow_scripts.asr.demo_model import main as build_demo_asr_model
from workflow_scripts.asr.text import NormalizeConfig
from workflow_scripts.asr.train import (
    choose_precision,
    finetune,
    load_transcribed_split,
    prepare_work_dir,
    shorten_input_window,
    warp_frequency,
)
from workflow_scripts.asr.train import main as finetune_whisper
from workflow_scripts.common.checksums import verify_checksum

from asr_fixtures import TINY_WHISPER, write_corpus
from rule_job import rule_job

torch.set_num_threads(1)

# A whole asr.finetune block (the code reads every key; the schema's defaults where the test does not care).
FINETUNE = {
    "base_model": None,
    "train_corpora": ["demo"],
    "train_splits": ["train"],
    "eval_split": "dev",
    "language": "vi",
    "task": "transcribe",
    "seed": 7,
    "learning_rate": 3.0e-3,
    "lr_scheduler": "linear",
    "warmup_steps": 1,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "max_epochs": 50,
    "max_steps": 8,
    "batch_size": 4,
    "processes": 1,
    "gradient_accumulation_steps": 1,
    "eval_batch_size": 8,
    "eval_steps": 2,
    "early_stopping_patience": 10,
    "early_stopping_threshold": 0.0,
    "logging_steps": 2,
    "precision": "auto",
    "gradient_checkpointing": False,
    "dropout": None,
    "spec_augment": {
        "enabled": False,
        "mask_time_prob": 0.05,
        "mask_time_length": 2,
        "mask_feature_prob": 0.0,
        "mask_feature_length": 2,
    },
    "freq_warp": 0.0,
    "speed_perturbation": {"enabled": False, "factors": [0.9, 1.0, 1.1]},
    "group_by_length": False,
    "cache_features": True,
    "dataloader_num_workers": 0,
    "device": "cpu",
    "keep_checkpoints": True,
    "hub_timeout_s": 2,
    "eval_max_new_tokens": None,
    "freeze_encoder": False,
    "input_window_s": None,
    "snapshot_steps": [],
}
NORMALIZE = {"lowercase": True, "remove_punctuation": True, "numbers_to_words": True, "abbreviations": {}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("asr_train")
    train = write_corpus(root, "train", 12)
    dev = write_corpus(root, "dev", 4, offset=100)
    base = root / "init_model"
    # The build_demo_asr_model rule's entry point: the demo tokenizer from the training text only.
    build_demo_asr_model(
        rule_job(
            input={"manifests": [str(train)]},
            output={"model": str(base)},
            params={"demo_model": TINY_WHISPER, "normalize": NORMALIZE},
        )
    )
    built = json.loads((base / "build_config.json").read_text())
    assert built["train_manifests"] == [str(train)] and built["n_sentences"] == 12
    return root, str(train), str(dev), {**FINETUNE, "base_model": str(base)}


def state_dict(path):
    from transformers import WhisperForConditionalGeneration

    return WhisperForConditionalGeneration.from_pretrained(path, local_files_only=True).state_dict()


class CrashAfter(TrainerCallback):
    """Simulates a killed job after ``step`` optimiser steps."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError("simulated crash")


@pytest.fixture(scope="module")
def full_run(setup):
    """A whole run through the finetune_whisper rule's entry point; its summary as saved with the model."""
    root, train, dev, block = setup
    # Snapshots at step 4 and at a step the run never reaches (100: the final model, noted).
    finetune_whisper(
        rule_job(
            input={"train": [train], "dev": dev},
            output={
                "model": str(root / "full"),
                "snapshots": [str(root / "snap4"), str(root / "snap8"), str(root / "snap100")],
            },
            params={
                "finetune": {**block, "snapshot_steps": [4, 8, 100]},
                "normalize": NORMALIZE,
                "work_dir": str(root / "full_work"),
            },
        )
    )
    return root, json.loads((root / "full" / "training_config.json").read_text())


def test_snapshots_hold_the_model_at_their_step(full_run):
    root, _ = full_run
    early = json.loads((root / "snap4" / "training_config.json").read_text())
    assert early["snapshot_step"] == 4 and "note" not in early
    assert (root / "snap4" / "tokenizer.json").exists()  # loadable as an ASR system's model
    # The last checkpoint (always kept) holds the step-8 weights: the step-8 snapshot equals it, the
    # step-4 snapshot does not.
    snapshot, at_last, last = (
        state_dict(path) for path in (root / "snap4", root / "snap8", root / "full_work" / "checkpoint-8")
    )
    assert all(torch.equal(at_last[k], last[k]) for k in last)
    assert any(not torch.equal(snapshot[k], last[k]) for k in last)
    never = json.loads((root / "snap100" / "training_config.json").read_text())
    assert never["snapshot_step"] == 100 and "the final model" in never["note"]
    final, unreached = state_dict(root / "full"), state_dict(root / "snap100")
    assert all(torch.equal(final[k], unreached[k]) for k in final)


def test_best_checkpoint_by_dev_wer_is_the_output(full_run):
    root, summary = full_run
    saved = json.loads((root / "full" / "training_config.json").read_text())
    assert saved["global_step"] == 8 and saved["n_train"] == 12 and saved["n_dev"] == 4
    evaluations = saved["evaluations"]
    assert [e["step"] for e in evaluations] == [2, 4, 6, 8]
    wers = [e["wer"] for e in evaluations]
    best = evaluations[wers.index(min(wers))]
    assert saved["best_dev_wer"] == pytest.approx(best["wer"])
    assert saved["best_checkpoint"].endswith(f"checkpoint-{best['step']}")
    # The output holds the best checkpoint's weights, not the last step's.
    output, chosen = state_dict(root / "full"), state_dict(saved["best_checkpoint"])
    assert all(torch.equal(output[k], chosen[k]) for k in chosen)
    if best["step"] != 8:
        last = state_dict(root / "full_work" / "checkpoint-8")
        assert any(not torch.equal(output[k], last[k]) for k in last)
    # Processor and generation settings travel with the model.
    for name in ("model.safetensors", "generation_config.json", "processor_config.json", "tokenizer.json"):
        assert (root / "full" / name).exists(), name
    # With the SHA256SUMS predict checks; a snapshot copied from the model has its own (its config differs).
    for directory in ("full", "snap4", "snap100"):
        verify_checksum(root / directory)
    assert saved["precision"] == "fp32" and "fp16 needs CUDA" in saved["precision_note"]


def test_restarted_job_resumes_from_last_checkpoint(setup, full_run):
    root, train, dev, block = setup
    out, work = root / "resumed", root / "resumed_work"
    with pytest.raises(RuntimeError, match="simulated crash"):
        finetune(block, NORMALIZE, [train], dev, str(out), str(work), threads=1, callbacks=[CrashAfter(5)])
    assert not out.exists(), "a failed run must leave no output"
    assert (work / "checkpoint-4").is_dir()
    summary = finetune(block, NORMALIZE, [train], dev, str(out), str(work), threads=1)
    assert summary["resumed_from"].endswith("checkpoint-4")
    assert summary["global_step"] == 8
    # Resuming restores weights, optimiser, scheduler, RNG and data order: same result as the uninterrupted run.
    _, uninterrupted = full_run
    assert summary["evaluations"] == uninterrupted["evaluations"]
    resumed, full = state_dict(out), state_dict(root / "full")
    assert all(torch.allclose(resumed[k], full[k], atol=1e-6) for k in full)


def test_checkpoints_of_another_configuration_are_not_resumed(tmp_path):
    work = tmp_path / "work"
    assert prepare_work_dir(work, "a") is None
    (work / "checkpoint-3").mkdir()
    (work / "checkpoint-3" / "trainer_state.json").write_text("{}")
    (work / "checkpoint-3" / "model.safetensors").write_bytes(b"")
    (work / "checkpoint-5").mkdir()  # a kill while the Trainer wrote or rotated it: no weights
    (work / "checkpoint-5" / "trainer_state.json").write_text("{}")
    assert prepare_work_dir(work, "a").endswith("checkpoint-3")
    assert prepare_work_dir(work, "b") is None
    assert not (work / "checkpoint-3").exists()


def test_training_data_from_a_test_split_is_refused(tmp_path):
    manifest = write_corpus(tmp_path, "public_test", 2)
    with pytest.raises(ValueError, match=r"public_test.tsv: rows of split\(s\) \['public_test'\]"):
        load_transcribed_split([str(manifest)], NormalizeConfig(), ["train"])


def test_targets_are_normalised_like_scoring(tmp_path):
    manifest = write_corpus(tmp_path, "train", 2)
    data = load_transcribed_split([str(manifest)], NormalizeConfig(), ["train"])
    assert data["target"].tolist() == ["tôi đi học mỗi ngày", "mẹ tôi nấu cơm"]


@pytest.mark.parametrize(
    ("requested", "device", "expected"),
    [
        ("auto", "cuda", "fp16"),
        ("auto", "cpu", "fp32"),
        ("fp16", "cpu", "fp32"),
        ("fp16", "cuda", "fp16"),
        ("bf16", "cpu", "bf16"),
        ("fp32", "cuda", "fp32"),
    ],
)
def test_fp16_only_on_cuda(requested, device, expected):
    precision, note = choose_precision(requested, device)
    assert precision == expected
    if requested == "fp16" and device == "cpu":
        assert "fp16 needs CUDA" in note


def test_frequency_warp_moves_formants_and_keeps_shape():
    import numpy as np

    features = np.zeros((40, 5), dtype=np.float32)
    features[10] = 1.0
    assert np.array_equal(warp_frequency(features, 1.0), features)
    up, down = warp_frequency(features, 1.2), warp_frequency(features, 0.8)
    assert up.shape == down.shape == features.shape and up.dtype == np.float32
    assert int(up[:, 0].argmax()) == 12 and int(down[:, 0].argmax()) == 8


def test_two_runs_with_two_threads_give_identical_weights(setup):
    """One seed, one config: bit-identical weights, also with intra-op threads (deterministic kernels)."""
    root, train, dev, block = setup
    outputs = []
    for run in ("a", "b"):
        finetune(block, NORMALIZE, [train], dev, str(root / f"twice_{run}"), str(root / f"twice_{run}_work"), threads=2)
        outputs.append(state_dict(root / f"twice_{run}"))
    assert all(torch.equal(outputs[0][k], outputs[1][k]) for k in outputs[0])
    # Bit-identity at this tiny size holds even without them; at the demo's size it needs them.
    assert torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)


def test_frozen_encoder_cached_states_and_a_shorter_window(setup):
    """freeze_encoder + input_window_s: only the decoder learns, the encoder runs once per clip, the window travels."""
    from transformers import WhisperProcessor

    root, train, dev, block = setup
    out = root / "frozen"
    frozen = {**block, "freeze_encoder": True, "input_window_s": 1, "max_steps": 4, "eval_max_new_tokens": 3}
    frozen["keep_checkpoints"] = False
    summary = finetune(frozen, NORMALIZE, [train], dev, str(out), str(root / "frozen_work"), threads=1)
    assert summary["encoder_states_cached"] and summary["input_window_s"] == 1 and summary["global_step"] == 4
    base, tuned = state_dict(block["base_model"]), state_dict(out)
    encoder = [k for k in tuned if ".encoder." in k and "embed_positions" not in k]
    decoder = [k for k in tuned if ".decoder." in k]
    assert encoder and all(torch.equal(tuned[k], base[k]) for k in encoder)
    assert any(not torch.equal(tuned[k], base[k]) for k in decoder)
    # The 2 s window of the tiny model is cut to 1 s: half the positions, the first rows kept.
    positions = tuned["model.encoder.embed_positions.weight"]
    full = base["model.encoder.embed_positions.weight"]
    assert positions.shape[0] * 2 == full.shape[0] and torch.equal(positions, full[: positions.shape[0]])
    extractor = WhisperProcessor.from_pretrained(out).feature_extractor
    assert extractor.chunk_length == 1 and extractor.nb_max_frames == 2 * positions.shape[0]


def test_a_window_at_least_the_models_is_left_alone(setup):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    _, _, _, block = setup
    model = WhisperForConditionalGeneration.from_pretrained(block["base_model"])
    processor = WhisperProcessor.from_pretrained(block["base_model"])
    before = model.config.max_source_positions
    shorten_input_window(model, processor, 30)
    assert model.config.max_source_positions == before and processor.feature_extractor.chunk_length == 2
