"""Real Vietnamese speech through the ASR stage: Whisper base zero-shot (ct2) and fine-tuned on diadiem_vi.

Runs `snakemake --configfile configs/diadiem.yaml` on its ASR targets in a fresh copy of the workflow
(code and config, no results), with the corpus path of this checkout's ../shared (or --corpus), so
it measures what the workflow does, through the same rules:

    nice -n 5 python benchmarks/asr_diadiem.py [--cores 2] [--keep DIR] [--corpus DIR]

Prints: the split sizes; the config's two ASR systems, zero-shot Whisper base (CTranslate2 float32,
30 s window) and the fine-tune (decoder only, from the converted base), on the test split: WER / CER /
SyER / exact matches (score_asr); the fine-tune's optimiser steps, dev WER per evaluation and best
checkpoint (training_config.json); and per job its wall seconds, CPU seconds and peak RSS (the rules'
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

from workflow_scripts.common import paths  # noqa: E402

from snakemake_runner import snakemake_command, snakemake_env  # noqa: E402
from workflow_copy import copy_workflow  # noqa: E402

CONFIG = "configs/diadiem.yaml"
# Where configs/diadiem.yaml reads the corpus from, relative to the workflow directory's parent.
CONFIG_CORPUS = Path("shared") / "data" / "speech" / "diadiem_vi"
CORPUS = PROJECT_ROOT.parent / CONFIG_CORPUS
SPLIT = "test"
# The config's two ASR systems (asr.systems): the fine-tune and Whisper base zero-shot through ct2.
SYSTEMS = {
    "finetuned": "whisper-base fine-tuned (decoder only)",
    "whisper-base-zero-shot": "whisper-base zero-shot (ct2 fp32)",
}
TARGETS = [paths.ASR_WER.format(system=system, split=SPLIT) for system in SYSTEMS]
RULES = ["ingest_speech_corpus/diadiem", "assemble_whisper_base", "convert_whisper_base", "finetune_whisper"]
RULES += [f"transcribe/{system}/{SPLIT}" for system in SYSTEMS]


def corpus_overlay(directory: Path, corpus: Path) -> list[str]:
    """Config files that point ``corpora.diadiem`` at ``corpus``: none when the config's own path
    (../shared beside the copy) is that corpus, else one written into the copy."""
    if (directory.parent / CONFIG_CORPUS).resolve() == corpus.resolve():
        return []
    overlay = directory / "diadiem_corpus.yaml"
    block = {"table": str(corpus.resolve() / "labels.tsv"), "audio_root": str(corpus.resolve())}
    overlay.write_text(yaml.safe_dump({"corpora": {"diadiem": block}}, allow_unicode=True), encoding="utf-8")
    return [str(overlay)]


def run_workflow(directory: Path, cores: int, overlays: list[str]) -> float:
    """Run the ASR targets; the wall seconds. Raise with the output's tail on failure."""
    command = snakemake_command("--configfile", CONFIG, *overlays, "--", *TARGETS, cores=cores)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=directory, env=snakemake_env(directory), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed:\n{(result.stdout + result.stderr)[-5000:]}")
    return elapsed


def rule_cost(directory: Path, job: str) -> dict[str, float] | None:
    """Wall s, CPU s and peak RSS (MB) of an ASR job's last run from its benchmark file (None: not run)."""
    rule, *wildcards = job.split("/")
    path = directory / paths.benchmark("asr" if rule != "ingest_speech_corpus" else "data", rule, *wildcards)
    if not path.is_file():
        return None
    with open(path, newline="") as handle:
        row = next(csv.DictReader(handle, delimiter="\t"))
    return {"wall_s": float(row["s"]), "cpu_s": float(row["cpu_time"]), "max_rss_mb": float(row["max_rss"])}


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def print_report(directory: Path, elapsed: float, cores: int) -> None:
    """The split sizes, the test-split table, the fine-tune's curve and the jobs' costs."""
    summary = read_json(directory / paths.SPEECH_SUMMARY.format(corpus="diadiem"))
    sizes = {name: sum(counts.values()) for name, counts in summary["counts"].items()}
    print(f"snakemake --cores {cores} (ASR targets of {CONFIG}): {elapsed:.1f} s wall")
    print(f"split sizes (seeded, stratified by keyword): {sizes}")
    training = read_json(directory / paths.ASR_FINETUNED_MODEL / "training_config.json")
    finetune = rule_cost(directory, "finetune_whisper")
    print(
        f"\n| {SPLIT} split ({sizes[SPLIT]} clips) | WER | CER | SyER | exact | steps | wall s | CPU s | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for system, label in SYSTEMS.items():
        scores = read_json(directory / paths.ASR_WER.format(system=system, split=SPLIT))
        costs = ["-"] * 4
        if system == "finetuned" and finetune:
            costs = [str(training["global_step"]), *(f"{finetune[k]:.0f}" for k in ("wall_s", "cpu_s", "max_rss_mb"))]
        cells = [label, *(f"{scores[k]:.3f}" for k in ("wer", "cer", "syer", "exact_match")), *costs]
        print("| " + " | ".join(cells) + " |")
    curve = ", ".join(f"step {e['step']}: {e['wer']:.3f}" for e in training["evaluations"])
    print(
        f"\nfine-tune: {training['n_train']} training clips, {training['trainable_parameters']} trainable parameters, "
        f"{training['global_step']} steps, dev WER {curve}; best {training['best_dev_wer']:.3f} "
        f"({training['best_checkpoint']}); training loop {training['train_seconds']} s"
    )
    print(f"\n{'job':<40}{'wall s':>9}{'CPU s':>9}{'peak RSS MB':>13}")
    for job in RULES:
        cost = rule_cost(directory, job)
        if cost:
            print(f"{job:<40}{cost['wall_s']:>9.1f}{cost['cpu_s']:>9.1f}{cost['max_rss_mb']:>13.0f}")


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
    elapsed = run_workflow(directory, args.cores, corpus_overlay(directory, args.corpus))
    print_report(directory, elapsed, args.cores)


if __name__ == "__main__":
    main()
