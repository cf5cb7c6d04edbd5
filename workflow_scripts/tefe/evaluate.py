"""The TEFE table (rule tefe_table): every architecture on validation and on the speech test splits.

For each trained architecture: WA (accuracy), UA (balanced accuracy) and WF1 (weighted F1) of
its own classifier on the text corpus's dev split (the validation data that early stopping and
selection used), on the text corpus's test split, and on each speech test split's transcripts,
both the ASR hypotheses and the reference transcripts (the gap is the effect of recognition
errors). Parameter counts are listed beside the paper's totals. This is a report only: the
choice of encoder (select_tefe) never sees these test scores.
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from workflow_scripts.common.files import atomic_path, read_json, write_json
from workflow_scripts.common.labels import encode_labels
from workflow_scripts.common.manifest import read_manifest
from workflow_scripts.common.rule import run_rule
from workflow_scripts.tefe.backends import load_text_backend
from workflow_scripts.tefe.extract import TRANSCRIPT_COLUMNS, read_transcript_texts
from workflow_scripts.tefe.models import load_encoder, predict_logits
from workflow_scripts.tefe.train import read_labelled_texts, split_scores

log = logging.getLogger(__name__)

EVAL_BATCH = 256


def evaluation_sets(
    validation: str,
    text_test: str | None,
    transcripts: Mapping[str, str],
    manifests: Mapping[str, str],
    columns: Sequence[str],
    classes: Sequence[str],
) -> dict[str, tuple[list[str], Any]]:
    """Name -> (texts, class indices) of every data set in the table, in table order."""
    sets = {"validation (text dev)": read_labelled_texts(validation, classes)}
    if text_test:
        sets["text test"] = read_labelled_texts(text_test, classes)
    for split, path in transcripts.items():
        if split not in manifests:
            raise ValueError(f"transcripts of split {split!r} but no manifest for it")
        manifest = read_manifest(manifests[split]).set_index("utt_id")
        for column in columns:
            frame = read_transcript_texts(path, column, manifests[split])
            labels = manifest.loc[frame["utt_id"], "label"].tolist()
            name = f"{split} ({'ASR hypothesis' if column == 'hypothesis' else 'reference'})"
            y = encode_labels(labels, classes, manifests[split], frame["utt_id"].tolist())
            sets[name] = (frame["text"].tolist(), y)
    return sets


def score_architectures(
    encoders: Mapping[str, tuple[str, str]], sets: Mapping[str, tuple[list[str], Any]], classes: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Architecture -> data set name -> WA / UA / WF1 / n; ``encoders``: arch -> (model.pt, vocab.json)."""
    device = torch.device("cpu")
    results: dict[str, dict[str, Any]] = {}
    for arch, (model_path, vocab_path) in encoders.items():
        model, vocab, header = load_encoder(model_path, vocab_path)
        if header["classes"] != list(classes):
            raise ValueError(f"{model_path}: trained for classes {header['classes']}, expected {list(classes)}")
        results[arch] = {}
        for name, (texts, y) in sets.items():
            ids, lengths = vocab.encode(texts)
            predicted = predict_logits(model, ids, lengths, EVAL_BATCH, device).argmax(axis=1)
            results[arch][name] = split_scores(y, predicted, len(header["classes"]))
    return results


def score_backends(
    backends: Mapping[str, str], sets: Mapping[str, tuple[list[str], Any]], classes: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Backend -> data set name -> WA / UA / WF1 / n; ``backends``: name -> model directory."""
    results: dict[str, dict[str, Any]] = {}
    for name, directory in backends.items():
        backend = load_text_backend(name, directory)
        if list(backend.classes) != list(classes):
            raise ValueError(f"{directory}: fitted for classes {backend.classes}, expected {list(classes)}")
        results[name] = {
            set_name: split_scores(y, backend.predict(texts), len(classes)) for set_name, (texts, y) in sets.items()
        }
    return results


BACKEND_LABELS = {"tfidf": "TF-IDF (reference)"}


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def markdown_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_table(
    scores: Mapping[str, Mapping[str, Mapping[str, float]]],
    selection: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Any]],
    backend_scores: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
    fusion_backend: str = "neural",
) -> str:
    """table.md: scores per architecture (and other backend) and data set, then parameter counts."""
    selected = selection["selected"]
    score_rows = []
    for arch, by_set in scores.items():
        label = f"**{arch}** (selected)" if arch == selected else arch
        for name, s in by_set.items():
            score_rows.append([label, name, s["n"], _pct(s["WA"]), _pct(s["UA"]), _pct(s["WF1"])])
    for backend, by_set in (backend_scores or {}).items():
        label = BACKEND_LABELS.get(backend, backend)
        label = f"**{label}** (fusion reads it)" if backend == fusion_backend else label
        for name, s in by_set.items():
            score_rows.append([label, name, s["n"], _pct(s["WA"]), _pct(s["UA"]), _pct(s["WF1"])])
    fusion_note = (
        "Fusion reads the selected architecture's features (tefe.backend: neural)."
        if fusion_backend == "neural"
        else f"Fusion reads the {fusion_backend} backend's features (tefe.backend: {fusion_backend})."
    )
    param_rows = []
    for arch, m in metrics.items():
        p = m["parameters"]
        param_rows.append(
            [
                arch,
                f"{p['trainable']:,}",
                f"{p['frozen']:,}",
                f"{p['total'] / 1e6:.2f}M",
                f"{p['paper_total'] / 1e6:.2f}M",
                f"{p['paper_implied_vocabulary']:,}",
                m["vocabulary_size"],
                f"{m['best_epoch']} / {m['epochs_run']}",
                f"{m['train_seconds']:.0f}",
            ]
        )
    return (
        "\n\n".join(
            [
                "# TEFE: the text encoders",
                f"Selected encoder: **{selected}** ({selection['reason']}; the choice reads validation scores only). "
                f"{fusion_note} The TF-IDF row (word + character n-grams, logistic regression, fitted on the text "
                "training split) is a reference. "
                "WA = accuracy, UA = balanced accuracy (mean per-class recall), WF1 = support-weighted F1, in %.",
                markdown_table(score_rows, ["architecture", "data", "n", "WA", "UA", "WF1"]),
                "## Parameters",
                "Trainable and frozen (embedding) parameter counts of this run beside the paper's totals. The paper's "
                "totals include its own vocabulary: *implied vocabulary* = (paper total - Keras count of the layers "
                "outside the embedding) / embedding width; similar values across rows mean the same layer sizes.",
                markdown_table(
                    param_rows,
                    [
                        "architecture",
                        "trainable",
                        "frozen",
                        "total",
                        "paper total",
                        "implied paper vocabulary",
                        "vocabulary",
                        "best / epochs run",
                        "train s",
                    ],
                ),
            ]
        )
        + "\n"
    )


def main(job: Any) -> None:
    """Entry point of the tefe_table rule (``job``: the rule's ``snakemake`` object)."""
    torch.set_num_threads(job.threads)
    architectures, splits, classes = job.params.architectures, job.params.test_splits, list(job.params.classes)
    # Input lists come in the order of the names in params (architectures, test splits).
    encoders = dict(
        zip(architectures, zip(map(str, job.input.models), map(str, job.input.vocabs), strict=True), strict=True)
    )
    metrics = dict(zip(architectures, map(read_json, job.input.metrics), strict=True))
    transcripts = dict(zip(splits, map(str, job.input.transcripts), strict=True))
    manifests = dict(zip(splits, map(str, job.input.manifests), strict=True))
    selection = read_json(job.input.selection)
    sets = evaluation_sets(
        job.input.validation, job.input.text_test, transcripts, manifests, TRANSCRIPT_COLUMNS, classes
    )
    scores = score_architectures(encoders, sets, classes)
    backends = list(job.params.backends)
    backend_scores = score_backends(dict(zip(backends, map(str, job.input.backend_models), strict=True)), sets, classes)
    fusion_backend = job.params.get("fusion_backend", "neural")
    write_json(
        job.output.json,
        {
            "selected": selection["selected"],
            "selection": selection,
            "fusion_backend": fusion_backend,
            "scores": scores,
            "backend_scores": backend_scores,
            "parameters": {a: m["parameters"] for a, m in metrics.items()},
        },
    )
    with atomic_path(job.output.table) as tmp:
        tmp.write_text(render_table(scores, selection, metrics, backend_scores, fusion_backend), encoding="utf-8")
    log.info("table of %d architectures on %d data sets written to %s", len(scores), len(sets), job.output.table)


if __name__ == "__main__":
    run_rule(main)
