"""Real Vietnamese speech through the ASR stage: Whisper base zero-shot (ct2) and fine-tuned on diadiem_vi.

Runs `snakemake --configfile configs/diadiem.yaml` on its ASR targets in a fresh copy of the workflow
(code and config, no results), with the corpus path of this checkout's ../shared (or --corpus), so
it measures what the workflow does, through the same rules:

    nice -n 5 python benchmarks/asr_diadiem.py [--cores 2] [--keep DIR] [--corpus DIR]

Prints: the split sizes; zero-shot Whisper base (CTranslate2 float32, 30 s window) and the fine-tune
(decoder only, from the converted base) on the test split: WER / CER / SyER (results/asr/benchmark.json,
the benchmark rule); the fine-tune's optimiser steps, dev WER per evaluation and best checkpoint
(training_config.json); and per rule its wall seconds, CPU seconds and peak RSS (the rules'
`benchmark:` files). With --keep DIR an existing run there is reused (Snakemake reruns what changed).
Needs the `weights` extra (pip install -e ".[weights]").
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "tests"))

from snakemake_runner import snakemake_command, snakemake_env  # noqa: E402
from workflow_copy import copy_workflow  # noqa: E402

CONFIG = "configs/diadiem.yaml"
CORPUS = PROJECT_ROOT.parent / "shared" / "data" / "speech" / "diadiem_vi"
# The ASR stage's targets with this config: the benchmark rule (zero-shot and fine-tuned on test) and
# the fine-tuned system's scores of the test split (transcribe + score_asr).
TARGETS = ["results/asr/benchmark.json", "results/systems/finetuned/asr/wer_test.json"]
RULES = ["assemble_whisper_base", "convert_whisper_base", "finetune_whisper", "benchmark_asr_backbones"]


def corpus_overlay(directory: Path, corpus: Path) -> Path:
    """A config file that points ``corpora.diadiem`` at ``corpus`` (the copy is not beside ../shared)."""
    overlay = directory / "diadiem_corpus.yaml"
    block = {"table": str(corpus / "labels.tsv"), "audio_root": str(corpus)}
    overlay.write_text(yaml.safe_dump({"corpora": {"diadiem": block}}, allow_unicode=True), encoding="utf-8")
    return overlay


def run_workflow(directory: Path, cores: int, overlay: Path) -> float:
    """Run the ASR targets; the wall seconds. Raise with the output's tail on failure."""
    args = ["--configfile", CONFIG, str(overlay), "--", *TARGETS]
    started = time.perf_counter()
    result = subprocess.run(
        snakemake_command(*args, cores=cores),
        cwd=directory,
        env=snakemake_env(directory),
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed:\n{(result.stdout + result.stderr)[-5000:]}")
    return elapsed


def rule_benchmark(directory: Path, rule: str) -> dict[str, float] | None:
    """Wall s, CPU s and peak RSS (MB) of a rule's last run from its benchmark file (None: not run)."""
    path = directory / "results" / "benchmarks" / "asr" / f"{rule}.tsv"
    if not path.is_file():
        return None
    with open(path, newline="") as handle:
        row = next(csv.DictReader(handle, delimiter="\t"))
    return {"wall_s": float(row["s"]), "cpu_s": float(row["cpu_time"]), "max_rss_mb": float(row["max_rss"])}


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def print_report(directory: Path, elapsed: float, cores: int) -> None:
    """The split sizes, the test-split table, the fine-tune's curve and the rules' costs."""
    summary = read_json(directory / "results" / "data" / "speech" / "diadiem" / "summary.json")
    print(f"snakemake --cores {cores} (ASR targets of {CONFIG}): {elapsed:.1f} s wall")
    sizes = {name: sum(counts.values()) for name, counts in summary["counts"].items()}
    print(f"split sizes (seeded, stratified by keyword): {sizes}")
    training = read_json(directory / "results" / "asr" / "model" / "training_config.json")
    finetune = rule_benchmark(directory, "finetune_whisper") or {}
    benchmark = read_json(directory / "results" / "asr" / "benchmark.json")
    split = benchmark["splits"][0]
    print(
        f"\n| model ({split} split, {sizes[split]} clips) | WER | CER | SyER | steps | wall s | CPU s | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in benchmark["backbones"]:
        scores = row["splits"][split]
        trained = row["backend"] == "whisper"
        costs = (
            [training["global_step"], *(f"{finetune[k]:.0f}" for k in ("wall_s", "cpu_s", "max_rss_mb"))]
            if trained and finetune
            else ["-", "-", "-", "-"]
        )
        cells = [row["name"], *(f"{scores[k]:.3f}" for k in ("wer", "cer", "syer")), *map(str, costs)]
        print("| " + " | ".join(cells) + " |")
    curve = ", ".join(f"step {e['step']}: {e['wer']:.3f}" for e in training["evaluations"])
    print(
        f"\nfine-tune: {training['n_train']} training clips, {training['trainable_parameters']} trainable parameters, "
        f"{training['global_step']} steps, dev WER {curve}; best {training['best_dev_wer']:.3f} "
        f"({training['best_checkpoint']}); training loop {training['train_seconds']} s"
    )
    scored = read_json(directory / "results" / "systems" / "finetuned" / "asr" / "wer_test.json")
    print(f"transcribe + score_asr of the fine-tuned model on test: WER {scored['wer']:.3f}, SyER {scored['syer']:.3f}")
    print(f"\n{'rule':<26}{'wall s':>9}{'CPU s':>9}{'peak RSS MB':>13}")
    for rule in RULES:
        cost = rule_benchmark(directory, rule)
        if cost:
            print(f"{rule:<26}{cost['wall_s']:>9.1f}{cost['cpu_s']:>9.1f}{cost['max_rss_mb']:>13.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="run in this directory and keep it (default: a temporary one)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="the diadiem_vi folder (labels.tsv, wav/)")
    args = parser.parse_args()
    if not (args.corpus / "labels.tsv").is_file():
        raise SystemExit(f"{args.corpus / 'labels.tsv'} not found: give --corpus (../shared/data/speech/diadiem_vi)")
    directory = args.keep or Path(tempfile.mkdtemp(prefix="dfat-diadiem-")) / "workflow"
    if not (directory / "Snakefile").exists():
        copy_workflow(directory)
    print(f"workflow copy: {directory}  corpus: {args.corpus}")
    elapsed = run_workflow(directory, args.cores, corpus_overlay(directory, args.corpus.resolve()))
    print_report(directory, elapsed, args.cores)


if __name__ == "__main__":
    main()
