"""Generated paper artifacts: Table 2, Table 3 (per ASR system), Figure 2 (SER metrics against ASR WER)
and confusion matrices.

Everything is computed from the metrics files of the variants (and, for Table 3 and Figure 2, the WER
files of each ASR system of asr.systems): nothing is typed in by hand. One module for the table2,
table3, figure2 and plot_confusion_matrices rules; ``main`` runs the part of its rule.
"""

import csv
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from workflow_scripts.common.files import atomic_path, read_json
from workflow_scripts.common.metrics import METRICS
from workflow_scripts.common.names import base_variant
from workflow_scripts.common.rule import run_rule

log = logging.getLogger(__name__)


def _metrics_of(document: Mapping[str, Any], split: str, where: str) -> Mapping[str, Any]:
    if split not in document.get("splits", {}):
        raise KeyError(f"{where}: no metrics for split {split!r} (has {sorted(document.get('splits', {}))})")
    return document["splits"][split]


def table2_rows(documents: Mapping[str, Mapping[str, Any]], splits: Sequence[str]) -> list[dict[str, Any]]:
    """One row per variant: title, the classifier behind it, and WA/UA/WF1 (+ CI bounds) per split."""
    rows = []
    for variant, document in documents.items():
        row: dict[str, Any] = {"variant": variant, "row": document["title"], "classifier": document["selected"]}
        for split in splits:
            metrics = _metrics_of(document, split, f"metrics of {variant}")
            for name in METRICS:
                row[f"{split}_{name}"] = metrics[name]
                row[f"{split}_{name}_ci_low"], row[f"{split}_{name}_ci_high"] = metrics["ci"][name]
        rows.append(row)
    return rows


def _metric_cells(row: Mapping[str, Any], splits: Sequence[str]) -> list[str]:
    """A row's WA / UA / WF1 per split as Markdown cells: the percentage and its bootstrap interval."""
    cells = []
    for split in splits:
        for name in METRICS:
            low, high = row[f"{split}_{name}_ci_low"], row[f"{split}_{name}_ci_high"]
            cells.append(f"{100 * row[f'{split}_{name}']:.2f} [{100 * low:.1f}, {100 * high:.1f}]")
    return cells


def table2_markdown(rows: Sequence[Mapping[str, Any]], splits: Sequence[str], confidence: float) -> str:
    """Table 2 as Markdown: percentages, the bootstrap interval under each value."""
    header = ["Variant", "Classifier"] + [f"{split} {name}" for split in splits for name in METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join([row["row"], row["classifier"], *_metric_cells(row, splits)]) + " |")
    lines.append("")
    lines.append(
        f"WA = accuracy, UA = balanced accuracy, WF1 = support-weighted F1, in %; brackets: "
        f"{100 * confidence:.0f}% bootstrap interval. Classifier: the one behind the row "
        "(chosen by cross-validation on the training split; ensemble = the tuned weighted ensemble)."
    )
    return "\n".join(lines) + "\n"


def write_table2(
    documents: Mapping[str, Mapping[str, Any]], splits: Sequence[str], md_path: str, csv_path: str
) -> None:
    """Write Table 2 as Markdown and CSV."""
    rows = table2_rows(documents, splits)
    confidence = next(iter(documents.values()))["bootstrap"]["confidence"]
    _write_table(table2_markdown(rows, splits, confidence), rows, md_path, csv_path)


def _write_table(markdown: str, rows: Sequence[Mapping[str, Any]], md_path: str, csv_path: str) -> None:
    """A generated table as Markdown and as CSV (one line per row), each written atomically."""
    with atomic_path(md_path) as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


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
                metrics = _metrics_of(read_json(path), split, path)
                point = {"run": run["label"], "split": split, "variant": variant, "wer": wer_value}
                for name in METRICS:
                    point[name] = metrics[name]
                    point[f"{name}_ci_low"], point[f"{name}_ci_high"] = metrics["ci"][name]
                points.append(point)
    return points


def table3_rows(runs: Sequence[Mapping[str, Any]], splits: Sequence[str]) -> list[dict[str, Any]]:
    """One row per ASR system and text-dependent report row: the system's WER / CER and the row's WA / UA / WF1
    (+ interval bounds) per split. ``runs``: ``{label, wer: split -> WER file, metrics: variant -> file}``."""
    rows = []
    for run in runs:
        scores = {split: read_json(run["wer"][split]) for split in splits}
        documents = {variant: read_json(path) for variant, path in run["metrics"].items()}
        for entry in table2_rows(documents, splits):
            row: dict[str, Any] = {"system": run["label"]}
            for split in splits:
                for key in ("wer", "cer"):
                    if key not in scores[split]:
                        raise KeyError(f"{run['wer'][split]}: no key {key!r} (keys: {sorted(scores[split])})")
                    row[f"{split}_{key}"] = float(scores[split][key])
            rows.append({**row, **entry})
    return rows


def table3_markdown(rows: Sequence[Mapping[str, Any]], splits: Sequence[str], confidence: float) -> str:
    """Table 3 as Markdown: the systems' WER / CER, then each system's text-dependent rows."""
    systems = list(dict.fromkeys(row["system"] for row in rows))
    first = {system: next(row for row in rows if row["system"] == system) for system in systems}
    header = ["ASR system"] + [f"{split} {key}" for split in splits for key in ("WER", "CER")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for system in systems:
        cells = [system] + [
            f"{100 * first[system][f'{split}_{key}']:.2f}" for split in splits for key in ("wer", "cer")
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    header = ["ASR system", "Variant", "Classifier"] + [f"{split} {name}" for split in splits for name in METRICS]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["system"], row["row"], row["classifier"], *_metric_cells(row, splits)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "WER / CER of each ASR system's transcripts (oracle: the reference text), then the SER rows that read "
        f"them; WA / UA / WF1 in %, brackets: {100 * confidence:.0f}% bootstrap interval. Acoustic-only rows read "
        "no transcripts: Table 2."
    )
    return "\n".join(lines) + "\n"


def write_table3(runs: Sequence[Mapping[str, Any]], splits: Sequence[str], md_path: str, csv_path: str) -> None:
    """Write Table 3 as Markdown and CSV (one CSV row per system and text-dependent row)."""
    rows = table3_rows(runs, splits)
    if not rows:
        raise ValueError("Table 3: no text-dependent rows to report (every report variant is acoustic-only)")
    confidence = read_json(next(iter(runs[0]["metrics"].values())))["bootstrap"]["confidence"]
    _write_table(table3_markdown(rows, splits, confidence), rows, md_path, csv_path)


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


def plot_confusion(documents: Mapping[str, Mapping[str, Any]], splits: Sequence[str], png: str) -> None:
    """Confusion matrices (counts and row %) of every variant (rows) on every split (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axes = plt.subplots(
        len(documents), len(splits), figsize=(3.2 * len(splits), 2.9 * len(documents)), squeeze=False
    )
    for row, (variant, document) in enumerate(documents.items()):
        classes = document["classes"]
        for column, split in enumerate(splits):
            matrix = np.asarray(_metrics_of(document, split, f"metrics of {variant}")["confusion_matrix"], dtype=float)
            share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
            axis = axes[row][column]
            axis.imshow(share, vmin=0, vmax=1, cmap="Blues")
            for i in range(len(classes)):
                for j in range(len(classes)):
                    axis.text(
                        j,
                        i,
                        f"{int(matrix[i, j])}\n{100 * share[i, j]:.0f}%",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if share[i, j] > 0.6 else "black",
                    )
            axis.set_xticks(range(len(classes)), classes, fontsize=8)
            axis.set_yticks(range(len(classes)), classes, fontsize=8)
            axis.set_title(f"{variant} ({document['selected']}) / {split}", fontsize=8)
            if column == 0:
                axis.set_ylabel("true")
            if row == len(documents) - 1:
                axis.set_xlabel("predicted")
    figure.tight_layout()
    with atomic_path(png) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)


def _documents(paths: Sequence[str]) -> dict[str, dict[str, Any]]:
    documents = {}
    for path in paths:
        document = read_json(path)
        documents[document["variant"]] = document
    return documents


def table2(job: Any) -> None:
    """The table2 rule: Table 2 from the variants' metrics files."""
    documents = _documents(job.input.metrics)
    for variant in documents:
        base_variant(variant)  # a variant, or a variant + lexicon rules; anything else is an error
    write_table2(documents, job.params.splits, job.output.md, job.output.csv)
    log.info("Table 2 of %s on %s -> %s", list(documents), job.params.splits, job.output.md)


def table3(job: Any) -> None:
    """The table3 rule: Table 3 from every ASR system's WER files and text-dependent metrics (params.runs)."""
    write_table3(job.params.runs, job.params.splits, job.output.md, job.output.csv)
    log.info("Table 3 of %s on %s -> %s", [run["label"] for run in job.params.runs], job.params.splits, job.output.md)


def figure2(job: Any) -> None:
    """The figure2 rule: the plot and its points (params.runs: the runs with their files)."""
    block, runs, splits = job.params.figure2, job.params.runs, job.params.splits
    points = figure2_points(runs, block["variants"], splits, block["wer_key"])
    baseline = figure2_points(runs[:1], [block["baseline"]], splits, block["wer_key"]) if block["baseline"] else []
    plot_figure2(points, splits, block["variants"], baseline, job.output.png, job.output.svg)
    with atomic_path(job.output.points) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(points[0]))
        writer.writeheader()
        writer.writerows(points)
    log.info("Figure 2: %d points -> %s", len(points), job.output.png)


def confusion(job: Any) -> None:
    """The plot_confusion_matrices rule."""
    plot_confusion(_documents(job.input.metrics), job.params.splits, job.output.png)


RULES = {"table2": table2, "table3": table3, "figure2": figure2, "plot_confusion_matrices": confusion}


def main(job: Any) -> None:
    """Entry point of the table2, table3, figure2 and plot_confusion_matrices rules (``job.rule`` names it)."""
    if job.rule not in RULES:
        raise ValueError(f"fusion/report.py runs the rules {sorted(RULES)}, not {job.rule!r}")
    RULES[job.rule](job)


if __name__ == "__main__":
    run_rule(main)
