"""Choice of the text encoder among the trained architectures (checkpoint select_tefe).

Reads only each architecture's ``metrics.json``, whose ``validation`` block holds the scores of
its best epoch on the text corpus's dev split: no test data can reach the choice. The winner
has the highest validation ``metric`` (ties: lower validation loss, then the order of
``tefe.architectures``), unless ``override`` names an architecture.
"""

import logging
from collections.abc import Mapping
from typing import Any

from workflow_scripts.common.checksums import write_checked_json
from workflow_scripts.common.files import read_json
from workflow_scripts.common.metrics import METRICS
from workflow_scripts.common.rule import run_rule

log = logging.getLogger(__name__)

SELECTION_METRICS = (*METRICS, "loss")


def validation_scores(metrics_paths: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Each architecture's best-epoch validation scores, from its metrics.json."""
    scores = {}
    for arch, path in metrics_paths.items():
        metrics = read_json(path)
        validation = metrics.get("validation") if isinstance(metrics, dict) else None
        if not isinstance(validation, dict) or any(k not in validation for k in SELECTION_METRICS):
            raise ValueError(f"{path}: no 'validation' block with {list(SELECTION_METRICS)} (not a TEFE metrics file?)")
        if metrics.get("architecture") != arch:
            raise ValueError(f"{path}: metrics of architecture {metrics.get('architecture')!r}, expected {arch!r}")
        scores[arch] = {**{k: validation[k] for k in SELECTION_METRICS}, "best_epoch": metrics.get("best_epoch")}
    return scores


def rank_architectures(scores: Mapping[str, Mapping[str, float]], metric: str) -> list[str]:
    """Architectures best first: higher metric (lower for ``loss``), then lower loss, then given order."""
    if metric not in SELECTION_METRICS:
        raise ValueError(f"tefe.selection.metric: {metric!r}, expected one of {SELECTION_METRICS}")
    order = list(scores)

    def key(arch: str) -> tuple[float, float, int]:
        value = scores[arch][metric]
        return (value if metric == "loss" else -value, scores[arch]["loss"], order.index(arch))

    return sorted(order, key=key)


def select_encoder(scores: Mapping[str, Mapping[str, float]], config: Mapping[str, Any]) -> dict[str, Any]:
    """The selection record: the chosen architecture, why, and every candidate's validation scores."""
    metric = config["metric"]
    ranking = rank_architectures(scores, metric)
    override = config["override"]
    if override is not None and override not in scores:
        raise ValueError(
            f"tefe.selection.override: {override!r} is not a trained architecture {list(scores)} (tefe.architectures)"
        )
    selected = override or ranking[0]
    return {
        "selected": selected,
        "reason": "override (tefe.selection.override)" if override else f"best validation {metric}",
        "metric": metric,
        "ranking": ranking,
        "data": "validation: the text corpus dev split (best epoch of each architecture)",
        "validation": {arch: dict(scores[arch]) for arch in scores},
    }


def main(job: Any) -> None:
    """Entry point of the select_tefe checkpoint (``job``: the rule's ``snakemake`` object)."""
    # The metrics files in the order of the architecture names (tefe.architectures).
    metrics = dict(zip(job.params.architectures, map(str, job.input.metrics), strict=True))
    selection = select_encoder(validation_scores(metrics), job.params.selection)
    write_checked_json(job.output.selection, selection)
    log.info("selected %s (%s); ranking %s", selection["selected"], selection["reason"], selection["ranking"])


if __name__ == "__main__":
    run_rule(main)
