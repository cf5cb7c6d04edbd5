"""Figure 2 (rule figure2): SER metrics against ASR WER, one point per ASR system, variant and
test split, with bootstrap intervals; the points also as CSV. Reads the variants' metrics
documents and the systems' WER files (params.runs)."""

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from workflow_scripts.common.files import atomic_path, read_json
from workflow_scripts.common.metrics import METRICS
from workflow_scripts.common.rule import run_rule
from workflow_scripts.fusion.report import metrics_of, write_csv

log = logging.getLogger(__name__)


def read_wer(path: str, key: str) -> float:
    """The WER (a fraction) recorded under ``key`` in an ASR stage's WER file."""
    payload = read_json(path)
    if key not in payload:
        raise KeyError(f"{path}: no key {key!r} (keys: {sorted(payload)}); set fusion.figure2.wer_key")
    value = float(payload[key])
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{path}: {key} = {payload[key]!r} is not a WER")
    return value


def figure2_points(
    runs: Sequence[Mapping[str, Any]], variants: Sequence[str], splits: Sequence[str], wer_key: str
) -> list[dict[str, Any]]:
    """One point per run (an ASR system), variant and split: the run's WER and its WA/UA/WF1 with their intervals.

    A run is ``{label, wer, metrics}``: ``wer`` is a number (e.g. 0 for reference transcripts)
    or split -> WER file, ``metrics`` is variant -> metrics file (the rule resolves the paths).
    """
    points = []
    for run in runs:
        for split in splits:
            wer = run["wer"]
            wer_value = float(wer) if isinstance(wer, (int, float)) else read_wer(wer[split], wer_key)
            for variant in variants:
                path = run["metrics"][variant]
                metrics = metrics_of(read_json(path), split, path)
                point = {"run": run["label"], "split": split, "variant": variant, "wer": wer_value}
                for name in METRICS:
                    point[name] = metrics[name]
                    point[f"{name}_ci_low"], point[f"{name}_ci_high"] = metrics["ci"][name]
                points.append(point)
    return points


def plot_figure2(
    points: Sequence[Mapping[str, Any]],
    splits: Sequence[str],
    variants: Sequence[str],
    baseline: Sequence[Mapping[str, Any]],
    png: str,
    svg: str,
) -> None:
    """Metric (rows) against WER per test split (columns): one line per variant through the runs,
    with bootstrap intervals; ``baseline`` (points of a variant that uses no transcripts, e.g.
    acoustic only) is drawn as a horizontal band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        len(METRICS), len(splits), figsize=(4.4 * len(splits), 2.9 * len(METRICS)), squeeze=False, sharex=True
    )
    markers = "osD^v<>p"
    highest = max(100 * p["wer"] for p in points)
    pad = max(2.0, 0.15 * highest)
    for column, split in enumerate(splits):
        for row, name in enumerate(METRICS):
            axis = axes[row][column]
            for reference in (p for p in baseline if p["split"] == split):
                axis.axhline(
                    100 * reference[name],
                    color="grey",
                    linestyle="--",
                    linewidth=1,
                    label=f"{reference['variant']} (no ASR)",
                )
                axis.axhspan(
                    100 * reference[f"{name}_ci_low"], 100 * reference[f"{name}_ci_high"], color="grey", alpha=0.12
                )
                break
            for number, variant in enumerate(variants):
                chosen = sorted(
                    (p for p in points if p["split"] == split and p["variant"] == variant), key=lambda p: p["wer"]
                )
                xs = [100 * p["wer"] for p in chosen]
                ys = [100 * p[name] for p in chosen]
                errors = [
                    [y - 100 * p[f"{name}_ci_low"] for p, y in zip(chosen, ys)],
                    [100 * p[f"{name}_ci_high"] - y for p, y in zip(chosen, ys)],
                ]
                axis.errorbar(xs, ys, yerr=errors, marker=markers[number % len(markers)], capsize=3, label=variant)
                if row == 0 and number == 0:
                    for point, x, y in zip(chosen, xs, ys):
                        axis.annotate(point["run"], (x, y), textcoords="offset points", xytext=(5, -12), fontsize=7)
            axis.set_xlim(-0.25 * pad, highest + pad)  # WER >= 0; room for the points at 0
            axis.set_ylabel(f"{name} (%)")
            axis.grid(alpha=0.3)
            if row == 0:
                axis.set_title(split)
            if row == len(METRICS) - 1:
                axis.set_xlabel("ASR WER (%)")
    axes[0][0].legend(fontsize=7, title="variant", title_fontsize=7, loc="best")
    figure.suptitle("SER metrics against ASR word error rate (bars: bootstrap intervals)")
    figure.tight_layout()
    for path in (png, svg):
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=Path(path).suffix[1:], dpi=150)
    plt.close(figure)


def main(job: Any) -> None:
    """Entry point of the figure2 rule (``job``: the rule's ``snakemake`` object): the plot and its
    points (``params.runs``: the runs with their files)."""
    block, runs, splits = job.params.figure2, job.params.runs, job.params.splits
    points = figure2_points(runs, block["variants"], splits, block["wer_key"])
    baseline = figure2_points(runs[:1], [block["baseline"]], splits, block["wer_key"]) if block["baseline"] else []
    plot_figure2(points, splits, block["variants"], baseline, job.output.png, job.output.svg)
    write_csv(job.output.points, points)
    log.info("Figure 2: %d points -> %s", len(points), job.output.png)


if __name__ == "__main__":
    run_rule(main)
