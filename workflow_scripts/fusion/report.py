"""What the report rules share (table2, table3, figure2, plot_confusion_matrices; one entry module
each: fusion/table2.py, table3.py, figure2.py, confusion_matrices.py).

Every generated paper artifact is computed from the variants' metrics documents
(schemas/metrics.schema.yaml) and, for Table 3 and Figure 2, the WER files of the ASR systems of
asr.systems: nothing is typed in by hand. Editing an entry module reruns its rule alone; editing
this module reruns all four.
"""

import csv
from collections.abc import Mapping, Sequence
from typing import Any

from workflow_scripts.common.files import atomic_path, read_json
from workflow_scripts.common.metrics import METRICS


def metrics_of(document: Mapping[str, Any], split: str, where: str) -> Mapping[str, Any]:
    """A metrics document's metrics of ``split``; a KeyError naming ``where`` when it has none."""
    if split not in document["splits"]:
        raise KeyError(f"{where}: no metrics for split {split!r} (has {sorted(document['splits'])})")
    return document["splits"][split]


def read_documents(paths: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The metrics documents of ``paths`` by variant, in ``paths`` order."""
    documents = {}
    for path in paths:
        document = read_json(path)
        documents[document["variant"]] = document
    return documents


def table2_rows(documents: Mapping[str, Mapping[str, Any]], splits: Sequence[str]) -> list[dict[str, Any]]:
    """One row per variant: title, the classifier behind it, and WA/UA/WF1 (+ CI bounds) per split."""
    rows = []
    for variant, document in documents.items():
        row: dict[str, Any] = {"variant": variant, "row": document["title"], "classifier": document["selected"]}
        for split in splits:
            metrics = metrics_of(document, split, f"metrics of {variant}")
            for name in METRICS:
                row[f"{split}_{name}"] = metrics[name]
                row[f"{split}_{name}_ci_low"], row[f"{split}_{name}_ci_high"] = metrics["ci"][name]
        rows.append(row)
    return rows


def metric_cells(row: Mapping[str, Any], splits: Sequence[str]) -> list[str]:
    """A row's WA / UA / WF1 per split as Markdown cells: the percentage and its bootstrap interval."""
    cells = []
    for split in splits:
        for name in METRICS:
            low, high = row[f"{split}_{name}_ci_low"], row[f"{split}_{name}_ci_high"]
            cells.append(f"{100 * row[f'{split}_{name}']:.2f} [{100 * low:.1f}, {100 * high:.1f}]")
    return cells


def write_csv(path: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """``rows`` as CSV (the first row's keys as the header), atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_table(markdown: str, rows: Sequence[Mapping[str, Any]], md_path: str, csv_path: str) -> None:
    """A generated table as Markdown and as CSV (one line per row), each written atomically."""
    with atomic_path(md_path) as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    write_csv(csv_path, rows)
