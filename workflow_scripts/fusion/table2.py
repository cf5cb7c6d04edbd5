"""Table 2 (rule table2): WA / UA / WF1 with bootstrap intervals of every report variant, from
their metrics documents (fusion/report.py reads them)."""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from workflow_scripts.common.metrics import METRICS
from workflow_scripts.common.names import base_variant
from workflow_scripts.common.rule import run_rule
from workflow_scripts.fusion.report import metric_cells, read_documents, table2_rows, write_table

log = logging.getLogger(__name__)


def table2_markdown(rows: Sequence[Mapping[str, Any]], splits: Sequence[str], confidence: float) -> str:
    """Table 2 as Markdown: percentages, the bootstrap interval under each value."""
    header = ["Variant", "Classifier"] + [f"{split} {name}" for split in splits for name in METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join([row["row"], row["classifier"], *metric_cells(row, splits)]) + " |")
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
    write_table(table2_markdown(rows, splits, confidence), rows, md_path, csv_path)


def main(job: Any) -> None:
    """Entry point of the table2 rule (``job``: the rule's ``snakemake`` object): Table 2 from the
    variants' metrics files (``input.metrics``, in row order)."""
    documents = read_documents(job.input.metrics)
    for variant in documents:
        base_variant(variant)  # a variant, or a variant + lexicon rules; anything else is an error
    write_table2(documents, job.params.splits, job.output.md, job.output.csv)
    log.info("Table 2 of %s on %s -> %s", list(documents), job.params.splits, job.output.md)


if __name__ == "__main__":
    run_rule(main)
