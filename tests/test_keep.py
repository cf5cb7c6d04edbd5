"""The kept results of the expensive rules (common/keep.py): a failed rerun never costs a finished
training. The issue's scenario on the xattn head (good run, bad device, failure, fix, rerun), the
same through Snakemake on a toy rule (Snakemake itself deletes the outputs), and the fingerprint."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from workflow_scripts.common import keep
from workflow_scripts.fusion.heads import xattn

from conftest import PROJECT_ROOT, run_snakemake
from head_fixtures import xattn_job
from rule_job import delete_outputs, output_bytes, rule_job


def test_xattn_head_after_a_failed_rerun_is_restored_byte_identical_without_training(
    tiny_run, tmp_path, monkeypatch, caplog
):
    _, _, files, encoder = tiny_run
    run, store = tmp_path / "results", tmp_path / "keep"
    good = xattn_job(run, files, encoder, "xattn")
    keep.run_kept(xattn.main, good, store)
    trained = output_bytes(good)
    assert len(trained) == 3 + len(good.params.splits)  # model, summary, metrics, probabilities per split

    # The bad edit: its params changed, so Snakemake reruns the job and deletes its outputs first.
    bad = xattn_job(run, files, encoder, "xattn")
    bad.params.head["device"] = "cuda:7"
    delete_outputs(bad)
    with pytest.raises(RuntimeError, match="cuda:7"):
        keep.run_kept(xattn.main, bad, store)
    assert output_bytes(bad) == {}

    # Fixed: the good run's fingerprint again, so its outputs come back and nothing is trained.
    def no_training(*args, **kwargs):
        raise AssertionError("the head was trained again instead of restored")

    monkeypatch.setattr(xattn, "train_and_evaluate", no_training)
    fixed = xattn_job(run, files, encoder, "xattn")
    with caplog.at_level(logging.INFO, logger=keep.__name__):
        start = time.perf_counter()
        keep.run_kept(xattn.main, fixed, store)
        seconds = time.perf_counter() - start
    assert f"restored from {store / 'train_xattn'}" in caplog.text
    assert output_bytes(fixed) == trained
    assert seconds < 10, seconds


TOY_SNAKEFILE = """
configfile: "config.yaml"


rule train:
    input:
        data="data.txt",
    output:
        summary="results/summary.txt",
        model=directory("results/model"),
    log:
        "logs/train.log",
    params:
        value=config["value"],
    script:
        "step.py"
"""
# A stand-in for an expensive step: random weights (a retraining would differ), a count of trainings.
TOY_STEP = """
import os
from pathlib import Path

from workflow_scripts.common.rule import run_rule


def main(job):
    with open("trainings.txt", "a") as count:
        count.write(job.params.value + "\\n")
    if job.params.value == "bad":
        raise RuntimeError("a bad setting, found only at job time")
    Path(job.output.summary).write_text(job.params.value)
    Path(job.output.model, "empty").mkdir(parents=True)
    Path(job.output.model, "weights.bin").write_bytes(os.urandom(256))


if __name__ == "__main__":
    run_rule(main, keep=True)
"""


def test_snakemake_deletes_the_outputs_of_a_failed_rerun_and_the_fixed_rerun_restores_them(tmp_path):
    workdir = tmp_path / "toy"
    workdir.mkdir()
    (workdir / "workflow_scripts").symlink_to(PROJECT_ROOT / "workflow_scripts")
    (workdir / "Snakefile").write_text(TOY_SNAKEFILE)
    (workdir / "step.py").write_text(TOY_STEP)
    (workdir / "config.yaml").write_text("keep: true\nvalue: good\n")
    (workdir / "data.txt").write_text("data\n")
    weights = workdir / "results" / "model" / "weights.bin"

    run_snakemake(workdir, cores=1)
    trained = weights.read_bytes()
    failed = run_snakemake(workdir, "--config", "value=bad", cores=1, check=False)
    assert failed.returncode != 0 and not weights.exists()  # Snakemake removed the good model
    run_snakemake(workdir, cores=1)

    assert weights.read_bytes() == trained and (workdir / "results" / "model" / "empty").is_dir()
    assert (workdir / "results" / "summary.txt").read_text() == "good"
    assert (workdir / "trainings.txt").read_text().split() == ["good", "bad"]  # not trained again
    assert "restored from results/.keep/train/" in (workdir / "logs" / "train.log").read_text()

    run_snakemake(workdir, "--forceall", "--config", "keep=False", cores=1)  # the store turned off
    assert (workdir / "trainings.txt").read_text().split() == ["good", "bad", "good"]
    assert weights.read_bytes() != trained


def toy_job(root: Path, value: str) -> object:
    return rule_job(
        input={"data": str(root / "data.txt")},
        output={"out": str(root / "out.txt")},
        params={"block": {"value": value}},
        rule="toy",
    )


def test_the_fingerprint_follows_contents_and_config_not_timestamps(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("one")

    def fingerprint(value: str = "a") -> str:
        return keep.job_fingerprint(keep.fingerprint_description(toy_job(tmp_path, value), tmp_path / "store"))

    first = fingerprint()
    os.utime(data, (1, 1))  # a regenerated input with the same content (e.g. a rerun upstream job)
    assert fingerprint() == first
    data.write_text("two")
    assert fingerprint() != first
    assert fingerprint("b") != fingerprint()


def test_a_partial_store_entry_is_never_restored(tmp_path):
    (tmp_path / "data.txt").write_text("data")
    job = toy_job(tmp_path, "a")
    entry = tmp_path / "store" / "toy" / "f"
    (entry / keep.ENTRY_OUTPUTS).mkdir(parents=True)
    (entry / keep.ENTRY_OUTPUTS / "0").write_text("half")  # killed before its description was written
    assert not keep.restore(entry, list(job.output))
    assert not Path(job.output.out).exists()


def test_an_incomplete_entry_is_recomputed_and_replaced(tmp_path):
    (tmp_path / "data.txt").write_text("data")
    job = toy_job(tmp_path, "a")
    store = tmp_path / "store"
    entry = store / "toy" / keep.job_fingerprint(keep.fingerprint_description(job, store))
    (entry / keep.ENTRY_OUTPUTS).mkdir(parents=True)
    (entry / keep.ENTRY_DESCRIPTION).write_text("{}")  # its output lost (e.g. removed by hand)
    runs = []

    def main(job):
        runs.append(job)
        Path(job.output.out).write_text("computed")

    keep.run_kept(main, job, store)
    Path(job.output.out).unlink()
    keep.run_kept(main, job, store)  # now restored from the replaced entry
    assert len(runs) == 1 and Path(job.output.out).read_text() == "computed"
