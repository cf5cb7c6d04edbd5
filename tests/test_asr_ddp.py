"""Data-parallel fine-tuning (asr.finetune.processes): two gloo processes on the CPU against one process."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import torch

from workflow_scripts.asr.demo_model import main as build_demo_asr_model
from workflow_scripts.asr.train import finetune, per_process_batch
from workflow_scripts.common.config_schema import block_defaults

from asr_fixtures import TINY_WHISPER, write_corpus
from rule_job import rule_job

NORMALIZE = {"lowercase": True, "remove_punctuation": True, "numbers_to_words": True, "abbreviations": {}}
# One process against two must differ by float order only: no dropout (each process draws its own masks).
BLOCK = {
    "seed": 7,
    "learning_rate": 3.0e-3,
    "warmup_steps": 1,
    "weight_decay": 0.0,
    "max_steps": 8,
    "batch_size": 4,
    "eval_batch_size": 8,
    "eval_steps": 2,
    "early_stopping_patience": 10,
    "logging_steps": 2,
    "cache_features": True,
    "device": "cpu",
    "keep_checkpoints": True,
}
# Stated tolerance between the 1- and 2-process runs: dev WER per evaluation, and every weight.
# (Measured: weights within 6e-8 of each other, against updates of 3e-3 from the initial ones.)
WER_TOLERANCE = 0.05
WEIGHT_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("asr_ddp")
    train, dev = write_corpus(root, "train", 12), write_corpus(root, "dev", 4, offset=100)
    base = root / "init_model"
    build_demo_asr_model(
        rule_job(
            input={"manifests": [str(train)]},
            output={"model": str(base)},
            params={"demo_model": {**TINY_WHISPER, "dropout": 0.0}, "normalize": NORMALIZE},
        )
    )
    return root, str(train), str(dev), str(base)


def block(base: str, processes: int) -> dict:
    return block_defaults("asr.finetune", {**BLOCK, "base_model": base, "processes": processes})


def state_dict(path):
    from transformers import WhisperForConditionalGeneration

    return WhisperForConditionalGeneration.from_pretrained(path, local_files_only=True).state_dict()


def launch_in_background(args: list, log_path) -> subprocess.Popen:
    """``finetune(*args)`` in a process of its own session (its launched processes with it), output to ``log_path``."""
    code = f"from workflow_scripts.asr.train import finetune; finetune(*{args!r})"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=log, env=env, start_new_session=True)


def test_two_processes_match_one_and_resume_after_a_kill(corpus):
    """Killed after its step-2 checkpoint and rerun, the 2-process run resumes, writes the declared outputs,
    and its dev-WER curve and weights match the 1-process run's within the stated tolerances."""
    root, train, dev, base = corpus
    single = finetune(block(base, 1), NORMALIZE, [train], dev, str(root / "one"), str(root / "one_work"), threads=2)

    two = block(base, 2)
    out, work = root / "two", root / "two_work"
    args = [two, NORMALIZE, [train], dev, str(out), str(work), 2]
    job = launch_in_background(args, root / "killed.log")
    deadline = time.monotonic() + 120
    while not (work / "checkpoint-2" / "trainer_state.json").exists():
        assert job.poll() is None, (root / "killed.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no step-2 checkpoint within 120 s"
        time.sleep(0.05)
    trainers = psutil.Process(job.pid).children(recursive=True)
    os.killpg(job.pid, signal.SIGKILL)  # the launcher and torch.distributed.run; the ranks die with them
    job.wait()
    _, alive = psutil.wait_procs(trainers, timeout=30)
    assert not alive, f"training processes outlived the killed job: {alive}"
    assert not out.exists(), "a killed run must leave no output"

    summary = finetune(*args)
    assert summary["resumed_from"] is not None and summary["processes"] == 2
    assert summary["global_step"] == 8 and summary["n_train"] == 12
    for name in ("model.safetensors", "generation_config.json", "processor_config.json", "training_config.json"):
        assert (out / name).exists(), name
    assert [e["step"] for e in summary["evaluations"]] == [e["step"] for e in single["evaluations"]]
    for ours, theirs in zip(summary["evaluations"], single["evaluations"], strict=True):
        assert ours["wer"] == pytest.approx(theirs["wer"], abs=WER_TOLERANCE)
    # The selected model and the last step's (the tiny model's WER barely moves in 8 steps: the weights tell).
    for mine, single_run in ((out, root / "one"), (work / "checkpoint-8", root / "one_work" / "checkpoint-8")):
        ours, theirs = state_dict(mine), state_dict(single_run)
        assert max(float((ours[k] - theirs[k]).abs().max()) for k in theirs) < WEIGHT_TOLERANCE


def test_the_global_batch_must_split_across_processes():
    assert per_process_batch({"batch_size": 16, "processes": 4}) == 4
    with pytest.raises(ValueError, match=r"asr.finetune.batch_size: 6 .* asr.finetune.processes \(4\)"):
        per_process_batch({"batch_size": 6, "processes": 4})


torch.set_num_threads(1)
