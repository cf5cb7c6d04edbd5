"""Confusion matrices (rule plot_confusion_matrices): counts and row % of every report variant on
every split, from their metrics documents."""

from collections.abc import Mapping, Sequence
from typing import Any

from workflow_scripts.common.files import atomic_path
from workflow_scripts.common.rule import run_rule
from workflow_scripts.fusion.report import metrics_of, read_documents


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
            matrix = np.asarray(metrics_of(document, split, f"metrics of {variant}")["confusion_matrix"], dtype=float)
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


def main(job: Any) -> None:
    """Entry point of the plot_confusion_matrices rule (``job``: the rule's ``snakemake`` object)."""
    plot_confusion(read_documents(job.input.metrics), job.params.splits, job.output.png)


if __name__ == "__main__":
    run_rule(main)
