"""The effects of the VLSP 2025 challenge's practice on a finished run, with bootstrap intervals.

Reads one or two finished workflow directories (each holding config.yaml and results/; paths as
workflow_scripts/common/paths.py defines them) and prints, per split:

* augmentation (``challenge.augmentation.enabled`` in RUN): UA / WA of ``acoustic`` and
  ``acoustic_aug`` with their intervals, and the paired bootstrap interval of the difference;
* lexicon rules: ``hybrid`` vs ``hybrid+rules`` (every ``<variant>+rules`` row), paired;
* ASR: WER and SyER of RUN's transcripts per split with a bootstrap interval (utterances
  resampled, errors / reference words of the resample), the fine-tuning's best dev WER, and with
  ``--asr-compare OTHER`` (e.g. a run with ``asr.finetune.speed_perturbation.enabled``) the same
  for OTHER and the paired interval of OTHER - RUN on the same utterances;
* the challenge score of every variant per test split: SyER held fixed as results/challenge.json
  does, and a joint interval (SyER and the SER accuracy from the same resampled utterances).

    python benchmarks/challenge_effects.py /tmp/run [--asr-compare /tmp/run-sp] [--json out.json]

Nothing is fitted or written to the runs; the resamples and seed are ``fusion.bootstrap``'s
(``--resamples`` / ``--seed`` override them).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from workflow_scripts.asr.text import NormalizeConfig, normalize_text  # noqa: E402
from workflow_scripts.asr.transcripts import read_transcripts  # noqa: E402
from workflow_scripts.challenge.score import challenge_score  # noqa: E402
from workflow_scripts.common import names, paths  # noqa: E402
from workflow_scripts.common.labels import encode_labels  # noqa: E402
from workflow_scripts.common.manifest import read_manifest  # noqa: E402
from workflow_scripts.common.metrics import paired_bootstrap_difference  # noqa: E402
from workflow_scripts.config import validate_config  # noqa: E402
from workflow_scripts.fusion import rows  # noqa: E402
from workflow_scripts.fusion.pooling import align_ids, read_probabilities  # noqa: E402


class Run:
    """A finished workflow directory: its config (config.yaml plus ``overlays``) and results."""

    def __init__(self, directory: str | Path, overlays: Sequence[str] = ()) -> None:
        self.directory = Path(directory)
        self.config = yaml.safe_load((self.directory / "config.yaml").read_text())
        for overlay in overlays:
            _merge(self.config, yaml.safe_load(Path(overlay).read_text()))
        validate_config(self.config, self.directory / "schemas" / "config.schema.yaml")  # the defaults
        self.classes = list(self.config["task"]["classes"])
        self.roles = names.split_roles(self.config["task"])
        self.normalize = NormalizeConfig.from_dict(self.config["asr"]["normalize"])
        self.system = names.primary_system(self.config["asr"])  # the run's Table 2 / challenge report

    def path(self, template: str, **fields: str) -> Path:
        """A result of the run (a ``scope`` field: shared, or the primary ASR system's; fusion/rows.py)."""
        return self.directory / template.format(**fields)

    def row_scope(self, variant: str) -> str:
        """The {scope} of a report row of the run (the primary system's when it reads transcripts)."""
        return rows.row_scope(variant, self.system, self.config["fusion"])

    def labels(self, split: str) -> tuple[list[str], np.ndarray]:
        manifest = self.path(paths.SPEECH_MANIFEST, corpus=self.config["ser_corpus"], split=split)
        frame = read_manifest(manifest, columns=["utt_id", "label"])
        ids = frame["utt_id"].tolist()
        return ids, encode_labels(frame["label"].tolist(), self.classes, str(manifest), ids)

    def predictions(self, variant: str, split: str, classifier: str | None = None) -> np.ndarray:
        """The variant's (or, with ``classifier``, that classifier's on feature set ``variant``)
        predicted class per utterance of the split, in manifest order."""
        if classifier is None:
            scope = self.row_scope(variant)
            path = self.path(paths.VARIANT_PROBABILITIES, scope=scope, variant=variant, split=split)
        else:
            scope = rows.feature_set_scope(variant, self.system)
            template = paths.CLASSIFIER_PROBABILITIES
            path = self.path(template, scope=scope, feature_set=variant, classifier=classifier, split=split)
        ids, probabilities = read_probabilities(path, self.classes)
        manifest_ids, _ = self.labels(split)
        order = align_ids(manifest_ids, ids, f"manifest of {split}", str(path))
        return probabilities[order].argmax(axis=1)

    def metrics(self, variant: str) -> dict[str, Any] | None:
        path = self.path(paths.VARIANT_METRICS, scope=self.row_scope(variant), variant=variant)
        return json.loads(path.read_text()) if path.exists() else None

    def edits(self, split: str) -> dict[str, np.ndarray]:
        """Per utterance of the split (manifest order): word errors and reference words after the
        ASR normalisation (syllables: the same tokens, docs/challenge.md)."""
        frame = read_transcripts(self.path(paths.TRANSCRIPTS, system=self.system, split=split)).set_index("utt_id")
        manifest_ids, _ = self.labels(split)
        errors, words = np.zeros(len(manifest_ids)), np.zeros(len(manifest_ids))
        for i, utt_id in enumerate(manifest_ids):
            reference = normalize_text(frame.at[utt_id, "reference"], self.normalize)
            hypothesis = normalize_text(frame.at[utt_id, "hypothesis"], self.normalize)
            if not reference:  # unscorable, as score_asr leaves it out
                continue
            out = jiwer.process_words(reference, hypothesis)
            errors[i] = out.substitutions + out.deletions + out.insertions
            words[i] = len(reference.split())
        return {"errors": errors, "words": words}


def _merge(base: dict, overlay: Mapping) -> None:
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def resamples(n: int, bootstrap: Mapping[str, Any]) -> np.ndarray:
    """The bootstrap's resampled utterance indices, (resamples, n), seeded."""
    rng = np.random.default_rng(int(bootstrap["seed"]))
    return rng.integers(0, n, size=(int(bootstrap["resamples"]), n))


def percentile_interval(values: np.ndarray, confidence: float) -> list[float]:
    tail = (1.0 - confidence) / 2.0
    return [float(np.quantile(values, tail)), float(np.quantile(values, 1.0 - tail))]


def error_rate(edits: Mapping[str, np.ndarray], bootstrap: Mapping[str, Any]) -> dict[str, Any]:
    """Error rate (sum of errors / sum of reference words) with its percentile bootstrap interval."""
    index = resamples(len(edits["errors"]), bootstrap)
    values = edits["errors"][index].sum(axis=1) / np.maximum(edits["words"][index].sum(axis=1), 1)
    return {
        "rate": float(edits["errors"].sum() / edits["words"].sum()),
        "ci": percentile_interval(values, float(bootstrap["confidence"])),
    }


def paired_error_rate_difference(
    before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray], bootstrap: Mapping[str, Any]
) -> dict[str, Any]:
    """Error rate of ``after`` minus ``before`` on the same utterances, paired resamples."""
    index = resamples(len(before["errors"]), bootstrap)

    def rates(edits: Mapping[str, np.ndarray]) -> np.ndarray:
        return edits["errors"][index].sum(axis=1) / np.maximum(edits["words"][index].sum(axis=1), 1)

    point = after["errors"].sum() / after["words"].sum() - before["errors"].sum() / before["words"].sum()
    return {
        "difference": float(point),
        "ci": percentile_interval(rates(after) - rates(before), float(bootstrap["confidence"])),
    }


def joint_score_interval(
    edits: Mapping[str, np.ndarray],
    correct: np.ndarray,
    weights: tuple[float, float],
    bootstrap: Mapping[str, Any],
) -> list[float]:
    """Interval of the challenge score with SyER and accuracy from the same resampled utterances."""
    index = resamples(len(correct), bootstrap)
    syer = 100.0 * edits["errors"][index].sum(axis=1) / np.maximum(edits["words"][index].sum(axis=1), 1)
    accuracy = 100.0 * correct[index].mean(axis=1)
    scores = weights[0] * (100.0 - syer) + weights[1] * accuracy
    return percentile_interval(scores, float(bootstrap["confidence"]))


def compare_variants(run: Run, before: str, after: str, splits: Sequence[str], bootstrap: Mapping[str, Any]) -> dict:
    """Per split: WA / UA of both variants (their metrics files' intervals) and the paired difference."""
    documents = {variant: run.metrics(variant) for variant in (before, after)}
    result = {}
    for split in splits:
        _, y = run.labels(split)
        entry = {
            variant: {
                name: [document["splits"][split][name], document["splits"][split]["ci"][name]] for name in ("WA", "UA")
            }
            for variant, document in documents.items()
        }
        difference = paired_bootstrap_difference(
            y, run.predictions(before, split), run.predictions(after, split), len(run.classes), bootstrap
        )
        entry["difference"] = {name: difference[name] for name in ("WA", "UA")}
        result[split] = entry
    return result


def training_record(run: Run) -> dict[str, Any]:
    """What the fine-tuning recorded (training_config.json): best dev WER, steps, time; {} when absent."""
    path = run.path(paths.ASR_FINETUNED_MODEL) / "training_config.json"
    if not path.exists():
        return {}
    record = json.loads(path.read_text())
    keys = ("best_dev_wer", "global_step", "epochs", "train_seconds", "stopped_early", "n_train")
    return {key: record.get(key) for key in keys} | {
        "speed_perturbation": record.get("finetune", {}).get("speed_perturbation"),
        "train_manifests": record.get("train_manifests"),
        "dev_wer_by_step": {e["step"]: round(e["wer"], 4) for e in record.get("evaluations", []) if "wer" in e},
    }


def pct(value: float) -> str:
    return f"{100 * value:.1f}"


def pct_ci(ci: Sequence[float]) -> str:
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def signed_pct(entry: Mapping[str, Any]) -> str:
    return f"{100 * entry['difference']:+.1f} [{100 * entry['ci'][0]:+.1f}, {100 * entry['ci'][1]:+.1f}]"


def print_variant_table(title: str, comparison: Mapping[str, Any], before: str, after: str) -> None:
    print(f"\n## {title}\n")
    print(f"| split | {before} UA | {after} UA | UA diff | {before} WA | {after} WA | WA diff |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for split, entry in comparison.items():
        cells = []
        for name in ("UA", "WA"):
            for variant in (before, after):
                value, ci = entry[variant][name]
                cells.append(f"{pct(value)} {pct_ci(ci)}")
            cells.append(signed_pct(entry["difference"][name]))
        print(f"| {split} | " + " | ".join(cells) + " |")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a finished workflow directory (config.yaml, results/)")
    parser.add_argument("--configfile", action="append", default=[], help="config overlays the run used")
    parser.add_argument(
        "--asr-compare", action="append", default=[], help="another finished directory whose ASR is compared with RUN's"
    )
    parser.add_argument("--resamples", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--json", help="also write every figure to this JSON file")
    args = parser.parse_args(argv)

    run = Run(args.run, args.configfile)
    bootstrap = {
        "resamples": args.resamples or run.config["fusion"]["bootstrap"]["resamples"],
        "confidence": run.config["fusion"]["bootstrap"]["confidence"],
        "seed": args.seed,
    }
    if bootstrap["seed"] is None:  # the block's seed, else the top-level seed (as the workflow does)
        block_seed = run.config["fusion"]["bootstrap"].get("seed")
        bootstrap["seed"] = run.config["seed"] if block_seed is None else block_seed
    tests = list(run.roles.test)
    splits = [run.roles.selection, *tests]
    figures: dict[str, Any] = {"run": str(run.directory), "bootstrap": bootstrap}
    print(f"# Challenge effects: {run.directory} (bootstrap {bootstrap})")

    if run.metrics(names.AUGMENTED_VARIANT) is not None:
        figures["augmentation"] = compare_variants(run, "acoustic", names.AUGMENTED_VARIANT, splits, bootstrap)
        print_variant_table(
            "Emotion-driven augmentation (acoustic -> acoustic_aug; %, paired difference after - before)",
            figures["augmentation"],
            "acoustic",
            names.AUGMENTED_VARIANT,
        )
        # Per classifier (the row is the classifier its CV selects, which may differ between the two).
        figures["augmentation_per_classifier"] = {}
        print("\nPer classifier (acoustic -> acoustic_aug, UA difference, paired):\n")
        print("| classifier | " + " | ".join(splits) + " |")
        print("| --- | " + " | ".join("---" for _ in splits) + " |")
        for classifier in names.CLASSIFIERS:
            entry = {}
            for split in splits:
                _, y = run.labels(split)
                entry[split] = paired_bootstrap_difference(
                    y,
                    run.predictions("acoustic", split, classifier),
                    run.predictions(names.AUGMENTED_VARIANT, split, classifier),
                    len(run.classes),
                    bootstrap,
                )
            figures["augmentation_per_classifier"][classifier] = entry
            print(f"| {classifier} | " + " | ".join(signed_pct(entry[s]["UA"]) for s in splits) + " |")
        selected = {v: run.metrics(v).get("selected") for v in ("acoustic", names.AUGMENTED_VARIANT)}
        print(f"\nselected: {selected}")
    else:
        print("\n(no acoustic_aug row: challenge.augmentation.enabled was off)")

    figures["rules"] = {}
    for variant in run.config["challenge"]["rules"]["variants"]:
        rules = names.rules_variant(variant)
        if run.metrics(rules) is None:
            continue
        figures["rules"][variant] = compare_variants(run, variant, rules, splits, bootstrap)
        print_variant_table(f"Lexicon rules ({variant} -> {rules}; %)", figures["rules"][variant], variant, rules)

    asr_runs = {"run": run}
    for number, directory in enumerate(args.asr_compare, start=1):
        asr_runs[f"compare{number}"] = Run(directory, args.configfile)
    # Every split is unseen speech to the demo's ASR (the training split's transcripts train the
    # text classifiers), so the ASR figures cover all of them.
    asr_splits = list(run.config["task"]["splits"])
    edits = {key: {split: r.edits(split) for split in asr_splits} for key, r in asr_runs.items()}
    figures["asr"] = {}
    print("\n## ASR (WER = SyER here, %; bootstrap over utterances)\n")
    print("| run | best dev WER (training) | " + " | ".join(f"{s} WER" for s in asr_splits) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in asr_splits) + " |")
    for key, r in asr_runs.items():
        rates = {split: error_rate(edits[key][split], bootstrap) for split in asr_splits}
        training = training_record(r)
        figures["asr"][key] = {"directory": str(r.directory), "training": training, "splits": rates}
        best = training.get("best_dev_wer")
        cells = [f"{pct(rates[s]['rate'])} {pct_ci(rates[s]['ci'])}" for s in asr_splits]
        best_cell = f"{100 * best:.1f}" if isinstance(best, (int, float)) else "-"
        print(f"| {key} ({r.directory}) | {best_cell} | " + " | ".join(cells) + " |")
        if key != "run":  # paired with RUN on the same utterances
            pairs = {s: (edits["run"][s], edits[key][s]) for s in asr_splits}
            difference = {s: paired_error_rate_difference(*pairs[s], bootstrap) for s in asr_splits}
            figures["asr"][key]["difference_from_run"] = difference
            print(f"| {key} - run | | " + " | ".join(signed_pct(difference[s]) for s in asr_splits) + " |")
    for key, entry in figures["asr"].items():
        print(f"\n{key} training: {entry['training']}")

    challenge = json.loads(run.path(paths.CHALLENGE_JSON).read_text())
    block = run.config["challenge"]["score"]
    weights = float(block["asr_weight"]), float(block["ser_weight"])
    rows = challenge["rows"]
    joint_ok = block["ser_metric"] == "WA"  # the joint interval resamples accuracy (WA)
    print("\n## Challenge score per test split (%; SyER-fixed interval as results/challenge.json, joint interval)\n")
    print("| split | variant | SyER | SER acc. | score | interval (SyER fixed) | interval (joint) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    figures["challenge"] = []
    for row in rows:
        split, variant = row["split"], row["variant"]
        _, y = run.labels(split)
        correct = (run.predictions(variant, split) == y).astype(float)
        joint = joint_score_interval(edits["run"][split], correct, weights, bootstrap) if joint_ok else [np.nan] * 2
        check = challenge_score(row["syer"], row["ser_accuracy"], *weights)
        figures["challenge"].append({**row, "score_ci_joint": joint, "score_recomputed": check})
        print(
            f"| {split} | {variant} | {row['syer']:.2f} | {row['ser_accuracy']:.1f} | {row['score']:.2f} | "
            f"[{row['score_ci'][0]:.2f}, {row['score_ci'][1]:.2f}] | [{joint[0]:.2f}, {joint[1]:.2f}] |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
