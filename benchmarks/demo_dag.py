"""Cold run of the demo DAG, per-rule times and memory, no-op rerun time and incremental job counts.

Runs in a fresh copy of the workflow (code and config, no results), so it measures what a user
gets from a fresh clone:

    python benchmarks/demo_dag.py [--cores 2] [--keep DIR]

Prints: cold wall time of `snakemake --cores N` (default target, results/hybrid_metrics.json
included), per-rule wall time and peak RSS from the rules' `benchmark:` files
(results/benchmarks/...), the peak RSS of any job, the no-op rerun time, and the jobs that
Snakemake plans after each single edit of config.yaml (from its own dry run).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "tests"))

from snakemake_runner import parse_plan  # noqa: E402
from workflow_copy import copy_workflow  # noqa: E402

# One edit of config.yaml per scenario: (name, pattern, replacement).
EDITS = [
    ("ensemble block", r"(ensemble: \{trials: )(\d+)", lambda m: f"{m.group(1)}{int(m.group(2)) - 1}"),
    ("xgboost block", r"(      trials: )(\d+)", lambda m: f"{m.group(1)}{int(m.group(2)) + 1}"),
    ("sefe block", r"(    n_mfcc: )(\d+)", lambda m: f"{m.group(1)}{int(m.group(2)) - 1}"),
]


def snakemake(directory: Path, cores: int, *args: str) -> tuple[float, str]:
    """Run snakemake, returning (wall seconds, combined output); raise on failure."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", str(cores), *args],
        cwd=directory,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(directory)),
    )
    elapsed = time.perf_counter() - start
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed:\n{output[-5000:]}")
    return elapsed, output


def rule_benchmarks(directory: Path) -> dict[str, tuple[int, float, float]]:
    """Per rule: (jobs, summed wall seconds, max peak RSS in MB) from the benchmark files."""
    per_rule: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for path in sorted((directory / "results" / "benchmarks").rglob("*.tsv")):
        rule = path.relative_to(directory / "results" / "benchmarks").parts[1]
        rule = re.sub(r"\.tsv$", "", rule)
        with open(path, newline="") as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        rss = float(row["max_rss"]) if row["max_rss"] not in ("", "NA", "-") else float("nan")
        per_rule[rule].append((float(row["s"]), rss))
    return {rule: (len(rows), sum(s for s, _ in rows), max(r for _, r in rows)) for rule, rows in per_rule.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="run in this directory and keep it (default: a temporary one)")
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="dfat-demo-"))
    copy_workflow(directory)
    print(f"workflow copy: {directory}  cores: {args.cores}")

    cold, _ = snakemake(directory, args.cores)
    print(f"\ncold run of the default target: {cold:.1f} s")
    rules = rule_benchmarks(directory)
    print(f"\n{'rule':<28}{'jobs':>5}{'wall s':>10}{'max RSS MB':>12}")
    for rule, (jobs, seconds, rss) in sorted(rules.items(), key=lambda item: -item[1][1]):
        print(f"{rule:<28}{jobs:>5}{seconds:>10.1f}{rss:>12.0f}")
    print(f"peak RSS of any job: {max(r for _, _, r in rules.values()):.0f} MB")

    noop, output = snakemake(directory, args.cores)
    nothing = "Nothing to be done" in output
    print(f"\nno-op rerun: {noop:.1f} s ({'nothing to be done' if nothing else 'JOBS WERE RUN'})")

    config_path = directory / "config.yaml"
    original = config_path.read_text(encoding="utf-8")
    print("\njobs planned after one edit (snakemake -n):")
    for name, pattern, replace in EDITS:
        edited, count = re.subn(pattern, replace, original, count=1)
        if count != 1:
            print(f"  {name}: pattern {pattern!r} not found in config.yaml")
            continue
        config_path.write_text(edited, encoding="utf-8")
        _, output = snakemake(directory, args.cores, "-n")
        print(f"  {name}: {parse_plan(output).counts}")
    config_path.write_text(original, encoding="utf-8")
    large = sorted((directory / "results").rglob("*.parquet"), key=lambda p: -p.stat().st_size)[0]
    os.utime(large)
    _, output = snakemake(directory, args.cores, "-n")
    print(f"  touch {large.relative_to(directory)} ({large.stat().st_size / 1e6:.1f} MB): {parse_plan(output).counts}")
    if not args.keep:
        shutil.rmtree(directory)


if __name__ == "__main__":
    main()
