"""Table 3 (rule table3): per ASR system of asr.systems, its WER / CER on each test split and the
metrics of its text-dependent report rows (the Table 2 rows of fusion/report.py)."""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from workflow_scripts.common.files import read_json
from workflow_scripts.common.metrics import METRICS
from workflow_scripts.common.rule import run_rule
from workflow_scripts.fusion.report import metric_cells, table2_rows, write_table

log = logging.getLogger(__name__)


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
        cells = [row["system"], row["row"], row["classifier"], *metric_cells(row, splits)]
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
    write_table(table3_markdown(rows, splits, confidence), rows, md_path, csv_path)


def main(job: Any) -> None:
    """Entry point of the table3 rule (``job``: the rule's ``snakemake`` object): Table 3 from every
    ASR system's WER files and text-dependent metrics (``params.runs``)."""
    write_table3(job.params.runs, job.params.splits, job.output.md, job.output.csv)
    log.info("Table 3 of %s on %s -> %s", [run["label"] for run in job.params.runs], job.params.splits, job.output.md)


if __name__ == "__main__":
    run_rule(main)
