"""The VLSP 2025 challenge score of every variant on every test split: results/challenge.{md,json}.

The challenge ranks systems by a composite of ASR and SER quality (both in %):

    score = asr_weight x (100 - SyER) + ser_weight x SER accuracy      (0.7 and 0.3)

SyER is the syllable error rate of the run's transcripts of the split (the ASR stage's
``syer``), SER accuracy the variant's WA (accuracy) on it. The score's interval is the
variant's bootstrap interval of WA carried through the formula (SyER held fixed). The
lexicon cue rules' effect per split (predictions changed, fixed and broken, the paired
difference in WA / UA) closes the report.
"""

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from workflow_scripts.common.files import atomic_path, read_json, write_json
from workflow_scripts.common.rule import run_rule

log = logging.getLogger(__name__)


def challenge_score(syer: float, ser_accuracy: float, asr_weight: float = 0.7, ser_weight: float = 0.3) -> float:
    """The challenge score from SyER and SER accuracy, both in % (e.g. 9.07, 82.21 -> 88.31)."""
    for name, value in (("SyER", syer), ("SER accuracy", ser_accuracy)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"challenge_score: {name} must be a non-negative percentage, got {value!r}")
    if ser_accuracy > 100:
        raise ValueError(f"challenge_score: SER accuracy {ser_accuracy} is above 100%")
    return asr_weight * (100.0 - syer) + ser_weight * ser_accuracy


def read_syer(path: str, split: str) -> float:
    """The SyER (a fraction) of an ASR stage's scores file."""
    payload = read_json(path)
    if "syer" not in payload:
        raise KeyError(f"{path}: no 'syer' in the ASR scores of {split} (keys: {sorted(payload)})")
    value = float(payload["syer"])
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{path}: syer = {payload['syer']!r} is not a syllable error rate")
    return value


def challenge_rows(
    documents: Mapping[str, Mapping[str, Any]],
    syer: Mapping[str, float],
    splits: Sequence[str],
    block: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """One row per variant and test split: SyER, SER accuracy and the score (in %), with intervals."""
    metric = block["ser_metric"]
    weights = float(block["asr_weight"]), float(block["ser_weight"])
    rows = []
    for split in splits:
        syer_percent = 100.0 * syer[split]
        for variant, document in documents.items():
            if split not in document["splits"]:
                raise KeyError(f"metrics of {variant}: no split {split!r} (has {sorted(document['splits'])})")
            metrics = document["splits"][split]
            accuracy = 100.0 * metrics[metric]
            low, high = (100.0 * bound for bound in metrics["ci"][metric])
            rows.append(
                {
                    "split": split,
                    "variant": variant,
                    "title": document["title"],
                    "syer": syer_percent,
                    "ser_accuracy": accuracy,
                    "ser_accuracy_ci": [low, high],
                    "score": challenge_score(syer_percent, accuracy, *weights),
                    "score_ci": [
                        challenge_score(syer_percent, low, *weights),
                        challenge_score(syer_percent, high, *weights),
                    ],
                }
            )
    return rows


def rules_summary(documents: Mapping[str, Mapping[str, Any]], splits: Sequence[str]) -> list[dict[str, Any]]:
    """Per ``<variant>+rules`` row and test split: what the lexicon rules changed and their effect."""
    rows = []
    for variant, document in documents.items():
        if "lexicon_rules" not in document:
            continue
        for split in splits:
            effect = document["lexicon_rules"]["effects"][split]
            rows.append(
                {
                    "variant": variant,
                    "split": split,
                    **{key: effect[key] for key in ("utterances", "matched", "changed", "fixed", "broken")},
                    **{f"{name}_difference": effect["difference"][name]["difference"] for name in ("WA", "UA")},
                    **{f"{name}_difference_ci": effect["difference"][name]["ci"] for name in ("WA", "UA")},
                }
            )
    return rows


def _interval(low: float, high: float) -> str:
    return f"[{low:.1f}, {high:.1f}]"


def challenge_markdown(
    rows: Sequence[Mapping[str, Any]], rules: Sequence[Mapping[str, Any]], block: Mapping[str, Any], confidence: float
) -> str:
    """The report as Markdown: one table of scores per test split, then the rules' effect."""
    lines = [
        "# VLSP 2025 challenge score",
        "",
        f"Score = {block['asr_weight']} x (100 - SyER) + {block['ser_weight']} x SER accuracy (both in %); "
        f"SER accuracy = {block['ser_metric']}; SyER = syllable error rate of this run's transcripts. "
        f"Brackets: {100 * confidence:.0f}% bootstrap interval (SyER held fixed).",
    ]
    for split in dict.fromkeys(row["split"] for row in rows):
        lines += ["", f"## {split}", "", "| Variant | SyER | SER accuracy | Score |", "|---|---|---|---|"]
        for row in (r for r in rows if r["split"] == split):
            lines.append(
                f"| {row['title']} (`{row['variant']}`) | {row['syer']:.2f} | {row['ser_accuracy']:.2f} "
                f"{_interval(*row['ser_accuracy_ci'])} | {row['score']:.2f} {_interval(*row['score_ci'])} |"
            )
    if rules:
        lines += [
            "",
            "## Lexicon cue rules",
            "",
            "Predictions the rules changed (fixed: now right; broken: was right) and the change in WA / UA "
            "(percentage points, paired bootstrap interval). "
            "Per rule: results/systems/<system>/challenge/rules/<variant>.tsv.",
            "",
            "| Variant | Split | Matched | Changed | Fixed | Broken | WA change | UA change |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in rules:
            wa_low, wa_high = (100 * b for b in row["WA_difference_ci"])
            ua_low, ua_high = (100 * b for b in row["UA_difference_ci"])
            lines.append(
                f"| `{row['variant']}` | {row['split']} | {row['matched']}/{row['utterances']} | {row['changed']} | "
                f"{row['fixed']} | {row['broken']} | {100 * row['WA_difference']:+.2f} {_interval(wa_low, wa_high)} | "
                f"{100 * row['UA_difference']:+.2f} {_interval(ua_low, ua_high)} |"
            )
    return "\n".join(lines) + "\n"


def main(job: Any) -> None:
    """Entry point of the challenge_report rule.

    ``input.metrics``: one metrics file per report variant; ``input.syer``: one ASR scores file
    per test split (``params.splits`` order), or none when ``params.score.syer`` is a number.
    """
    block, splits = job.params.score, list(job.params.splits)
    documents = {}
    for path in job.input.metrics:
        document = read_json(path)
        documents[document["variant"]] = document
    if isinstance(block["syer"], (int, float)):
        syer = {split: float(block["syer"]) for split in splits}
    else:
        syer = {split: read_syer(path, split) for split, path in zip(splits, job.input.syer, strict=True)}
    rows = challenge_rows(documents, syer, splits, block)
    rules = rules_summary(documents, splits)
    confidence = float(next(iter(documents.values()))["bootstrap"]["confidence"])
    write_json(
        job.output.json,
        {
            "formula": f"{block['asr_weight']} * (100 - SyER) + {block['ser_weight']} * SER accuracy",
            "ser_metric": block["ser_metric"],
            "syer_source": block["syer"],
            "syer": {split: 100.0 * value for split, value in syer.items()},
            "rows": rows,
            "lexicon_rules": rules,
        },
    )
    with atomic_path(job.output.md) as tmp:
        tmp.write_text(challenge_markdown(rows, rules, block, confidence), encoding="utf-8")
    for row in rows:
        log.info(
            "%s %s: SyER %.2f SER %.2f score %.2f",
            row["split"],
            row["variant"],
            row["syer"],
            row["ser_accuracy"],
            row["score"],
        )


if __name__ == "__main__":
    run_rule(main)
