"""Seconds of issue 27's scenario with the kept results (common/keep.py), per expensive step.

The scenario: a good run; a bad edit (``device: cuda:7`` on a CPU machine) whose job fails after
Snakemake deleted the outputs; the fix; the rerun, which restores the outputs from results/.keep.
Steps: the xattn head on the tests' tiny run (tests/head_fixtures.py), and the fine-tuned ASR model
(the demo's model, ``asr.demo_model``, and ``asr.finetune`` of config.yaml, a shorter run on synthetic
clips: ``--asr-steps``). Each step runs through its rule's entry point under ``keep.run_kept``, as
``run_rule(main, keep=True)`` does inside Snakemake; wall and CPU seconds are printed, and the
restored outputs are compared byte for byte with the trained ones.

    nice -n 5 python -m benchmarks.keep_restore --asr-steps 40
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "tests"))

from workflow_scripts.common import keep  # noqa: E402
from workflow_scripts.config import validate_config  # noqa: E402

from rule_job import delete_outputs, output_bytes  # noqa: E402


def timed(action: Callable[[], None]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of this process, "ok" or the error) of ``action``."""
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        action()
        outcome = "ok"
    except Exception as error:  # noqa: BLE001 - the bad edit's failure is the measured outcome
        outcome = f"failed: {type(error).__name__}: {str(error)[:80]}"
    return time.perf_counter() - wall, time.process_time() - cpu, outcome


def scenario(name: str, main: Callable[[Any], None], make_job: Callable[[str], Any], store: Path) -> None:
    """Good run, bad device (fails after the outputs were deleted), fixed rerun (restored): timings."""
    good = make_job("cpu")
    rows = [("good run (trains, keeps)", *timed(lambda: keep.run_kept(main, good, store)))]
    trained = output_bytes(good)
    bad = make_job("cuda:7")
    delete_outputs(bad)
    rows.append(("bad edit device cuda:7", *timed(lambda: keep.run_kept(main, bad, store))))
    fixed = make_job("cpu")
    rows.append(("fixed rerun (restores)", *timed(lambda: keep.run_kept(main, fixed, store))))
    identical = output_bytes(fixed) == trained
    size = sum(map(len, trained.values()))
    print(f"\n{name}: {len(trained)} output files, {size / 1e6:.2f} MB; restored byte-identical: {identical}")
    for label, wall, cpu, outcome in rows:
        print(f"  {label:28s} wall {wall:7.2f} s  cpu {cpu:7.2f} s  {outcome}")


def xattn_scenario(root: Path) -> None:
    from workflow_scripts.fusion.heads import xattn

    from head_fixtures import build_tiny_run, xattn_job

    _, _, files, encoder = build_tiny_run(root / "tiny")

    def make_job(device: str) -> Any:
        job = xattn_job(root / "results", files, encoder, "xattn")
        job.params.head["device"] = device
        return job

    scenario("train_xattn (tests' tiny run)", xattn.main, make_job, root / "keep")


def asr_scenario(root: Path, steps: int) -> None:
    from workflow_scripts.asr import demo_model, train

    from asr_fixtures import write_corpus
    from rule_job import rule_job

    config = validate_config(yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text()))
    asr = config["asr"]
    train_manifest, dev_manifest = write_corpus(root, "train", 48), write_corpus(root, "dev", 8, offset=100)
    base = root / "init_model"
    demo_model.main(
        rule_job(
            input={"manifests": [str(train_manifest)]},
            output={"model": str(base)},
            params={"demo_model": asr["demo_model"], "normalize": asr["normalize"]},
        )
    )
    code = [str(PROJECT_ROOT / "workflow_scripts" / "asr" / "train.py")]

    def make_job(device: str) -> Any:
        block = {**asr["finetune"], "base_model": str(base), "max_steps": steps, "eval_steps": max(1, steps // 2)}
        return rule_job(
            input={"base_model": str(base), "train": [str(train_manifest)], "dev": str(dev_manifest), "code": code},
            output={"model": str(root / "results" / "asr" / "model"), "snapshots": []},
            params={
                "finetune": {**block, "device": device, "snapshot_steps": []},
                "normalize": asr["normalize"],
                "work_dir": str(root / "results" / "asr" / "finetune_work"),
            },
            threads=2,
            rule="finetune_whisper",
        )

    scenario(f"finetune_whisper (demo model, {steps} steps)", train.main, make_job, root / "keep")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--asr-steps", type=int, default=40, help="Optimiser steps of the ASR fine-tuning run.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        xattn_scenario(Path(tmp) / "xattn")
        asr_scenario(Path(tmp) / "asr", args.asr_steps)


if __name__ == "__main__":
    main()
