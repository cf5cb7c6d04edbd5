"""The TEFE rule entry points chained as the workflow runs them: embedding, training, selection,
table and features (tiny widths), plus the selection rule and the extraction's input checks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from tests.rule_job import rule_job
from tests.tefe_fixtures import (
    FROZEN,
    TINY_EMBEDDING,
    TINY_MODELS,
    TINY_TEXT,
    TINY_TRAINING,
    tiny_corpus,
    write_speech_split,
    write_text_manifest,
)
from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.common.features import read_features
from workflow_scripts.common.files import write_json
from workflow_scripts.tefe import embedding as tefe_embedding
from workflow_scripts.tefe import evaluate as tefe_evaluate
from workflow_scripts.tefe import extract as tefe_extract
from workflow_scripts.tefe import select as tefe_select
from workflow_scripts.tefe import train as tefe_train
from workflow_scripts.tefe import train_backend as tefe_train_backend
from workflow_scripts.tefe.models import batch_indices, load_encoder
from workflow_scripts.tefe.select import rank_architectures, select_encoder

torch.set_num_threads(1)
ARCHS = ["CNN", "LSTM"]
CLASSES = ["neutral", "negative"]
STATS = ["sentence", "mean", "var", "max", "min"]


def _extract(model_dir, transcripts, manifest, out, column="hypothesis", extract=None):
    """Run extract_tefe's entry point on one split."""
    tefe_extract.main(
        rule_job(
            input={
                "model": str(model_dir / "model.pt"),
                "vocab": str(model_dir / "vocab.json"),
                "transcripts": str(transcripts),
                "manifest": str(manifest),
            },
            output={"features": str(out)},
            params={"extract": extract or {"batch_size": 256, "device": "cpu"}, "column": column},
            wildcards={"feature_set": "features", "split": "public_test"},
        )
    )


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """Run the entry points once on tiny data; returns the directory and key paths."""
    root = tmp_path_factory.mktemp("tefe")
    text = {
        split: write_text_manifest(root / f"{split}.tsv", *tiny_corpus(n, seed), split)
        for split, n, seed in [("train", 80, 1), ("dev", 20, 2), ("test", 20, 3)]
    }
    speech = root / "speech"
    speech.mkdir()
    texts, labels = tiny_corpus(9, seed=4)
    texts[3] = "..."  # no token at all once punctuation is dropped
    hypotheses = [t.replace("tức", "túc") for t in texts]  # ASR errors: out-of-vocabulary syllables
    manifest, transcripts = write_speech_split(speech, "public_test", texts, labels, hypotheses)
    emb = root / "embedding"
    tefe_embedding.main(
        rule_job(
            input={"train": str(text["train"]), "vectors": []},
            output={
                "vocab": str(emb / "vocab.json"),
                "embedding": str(emb / "embedding.npy"),
                "summary": str(emb / "summary.json"),
            },
            params={"text": TINY_TEXT, "embedding": TINY_EMBEDDING},
        )
    )
    for arch in ARCHS:
        out = root / "models" / arch
        tefe_train.main(
            rule_job(
                input={
                    "train": str(text["train"]),
                    "dev": str(text["dev"]),
                    "vocab": str(emb / "vocab.json"),
                    "embedding": str(emb / "embedding.npy"),
                },
                output={
                    "model": str(out / "model.pt"),
                    "vocab": str(out / "vocab.json"),
                    "metrics": str(out / "metrics.json"),
                },
                params={
                    "model": TINY_MODELS[arch],
                    "training": TINY_TRAINING,
                    "embedding": FROZEN,
                    "classes": CLASSES,
                    "work_dir": str(out / "work"),
                },
                wildcards={"arch": arch},
            )
        )
    selection = root / "selection.json"
    tefe_select.main(
        rule_job(
            input={"metrics": [str(root / "models" / a / "metrics.json") for a in ARCHS]},
            output={"selection": str(selection)},
            params={"selection": {"metric": "UA", "override": "LSTM"}, "architectures": ARCHS},
        )
    )
    tefe_train_backend.main(
        rule_job(
            input={"train": str(text["train"]), "dev": str(text["dev"])},
            output={"model": str(root / "tfidf/model"), "metrics": str(root / "tfidf/metrics.json")},
            params={"block": block_defaults("tefe.tfidf", {"seed": 1}), "classes": CLASSES},
            wildcards={"backend": "tfidf"},
        )
    )
    tefe_evaluate.main(
        rule_job(
            input={
                "backend_models": [str(root / "tfidf/model")],
                "backend_metrics": [str(root / "tfidf/metrics.json")],
                "models": [str(root / "models" / a / "model.pt") for a in ARCHS],
                "vocabs": [str(root / "models" / a / "vocab.json") for a in ARCHS],
                "metrics": [str(root / "models" / a / "metrics.json") for a in ARCHS],
                "selection": str(selection),
                "validation": str(text["dev"]),
                "text_test": str(text["test"]),
                "transcripts": [str(transcripts)],
                "manifests": [str(manifest)],
            },
            output={"table": str(root / "table.md"), "json": str(root / "table.json")},
            params={
                "architectures": ARCHS,
                "backends": ["tfidf"],
                "fusion_backend": "neural",
                "test_splits": ["public_test"],
                "classes": CLASSES,
            },
        )
    )
    for column, name in [("hypothesis", "features"), ("reference", "features_reference")]:
        _extract(
            root / "models/LSTM",
            transcripts,
            manifest,
            root / name / "public_test.parquet",
            column=column,
            extract={"batch_size": 4, "device": "cpu"},
        )
    return {"root": root, "manifest": manifest, "transcripts": transcripts, "selection": selection}


def test_models_carry_vocabulary_and_metrics(workflow):
    root = workflow["root"]
    shared = json.loads((root / "embedding/vocab.json").read_text(encoding="utf-8"))
    for arch in ARCHS:
        saved = json.loads((root / "models" / arch / "vocab.json").read_text(encoding="utf-8"))
        assert saved["tokens"] == shared["tokens"] and saved["settings"]["max_length"] == 12
        metrics = json.loads((root / "models" / arch / "metrics.json").read_text(encoding="utf-8"))
        assert metrics["architecture"] == arch and metrics["validation"]["n"] == 20
        assert metrics["parameters"]["frozen"] == len(shared["tokens"]) * 16


def test_features_follow_the_contract(workflow):
    root = workflow["root"]
    ids, matrix, meta = read_features(root / "features/public_test.parquet", STATS)
    assert ids == pd.read_csv(workflow["manifest"], sep="\t", quoting=3)["utt_id"].tolist()
    width = TINY_MODELS["LSTM"]["units"]
    assert meta["dim"] == width and matrix.shape == (9, 5 * width) and meta["statistics"] == STATS
    assert meta["architecture"] == "LSTM" and meta["checkpoint"].endswith("models/LSTM/model.pt")
    assert len(meta["checkpoint_sha256"]) == 64 and meta["preprocessing"]["max_length"] == 12
    assert meta["source"]["column"] == "hypothesis" and meta["empty_texts"] == 1
    blocks = dict(zip(STATS, np.split(matrix, 5, axis=1), strict=True))
    assert (blocks["var"] >= 0).all() and (blocks["min"] <= blocks["mean"] + 1e-6).all()
    assert (blocks["mean"] <= blocks["max"] + 1e-6).all()
    np.testing.assert_array_equal(blocks["var"][3], 0)  # the empty text is one <UNK> token
    # The LSTM's sentence feature is its last real step's output.
    model, vocab, _ = load_encoder(root / "models/LSTM/model.pt", root / "models/LSTM/vocab.json")
    ids_, lengths = vocab.encode(["tôi đi chợ mua rau"])
    with torch.no_grad():
        _, states, _ = model.encode(torch.from_numpy(ids_), torch.from_numpy(lengths))
    one = next(tefe_extract.text_features(model, vocab, ["tôi đi chợ mua rau"], 1, torch.device("cpu")))[1]
    np.testing.assert_allclose(one["sentence"][0], states[0, lengths[0] - 1].numpy(), rtol=1e-6, atol=1e-6)
    # Reference transcripts differ from the hypotheses where the ASR erred.
    _, reference, ref_meta = read_features(root / "features_reference/public_test.parquet", STATS)
    assert ref_meta["source"]["column"] == "reference"
    differs = [i for i, t in enumerate(pd.read_parquet(workflow["transcripts"])["reference"]) if "tức" in t]
    same = [i for i in range(9) if i not in differs]
    assert differs and np.array_equal(reference[same], matrix[same])
    assert not np.array_equal(reference[differs], matrix[differs])


def test_table_and_override(workflow):
    root = workflow["root"]
    selection = json.loads(workflow["selection"].read_text(encoding="utf-8"))
    assert selection["selected"] == "LSTM" and selection["reason"].startswith("override")
    table = (root / "table.md").read_text(encoding="utf-8")
    assert "Selected encoder: **LSTM**" in table
    for name in ["validation (text dev)", "text test", "public_test (ASR hypothesis)", "public_test (reference)"]:
        assert table.count(f"| {name} |") == 3  # CNN, the selected LSTM and the TF-IDF reference
    assert "| TF-IDF (reference) | validation (text dev) |" in table
    payload = json.loads((root / "table.json").read_text(encoding="utf-8"))
    tfidf = json.loads((root / "tfidf/metrics.json").read_text(encoding="utf-8"))
    assert payload["backend_scores"]["tfidf"]["validation (text dev)"]["UA"] == pytest.approx(tfidf["validation"]["UA"])
    scores = payload["scores"]
    assert scores["CNN"]["public_test (reference)"]["n"] == 9
    metrics = json.loads((root / "models/CNN/metrics.json").read_text(encoding="utf-8"))
    assert scores["CNN"]["validation (text dev)"]["UA"] == pytest.approx(metrics["validation"]["UA"])


def test_selection_uses_validation_scores_only(tmp_path):
    scores = {
        "CNN": {"WA": 0.8, "UA": 0.7, "WF1": 0.75, "loss": 0.5},
        "LSTM": {"WA": 0.7, "UA": 0.75, "WF1": 0.7, "loss": 0.6},
        "BiLSTM": {"WA": 0.7, "UA": 0.75, "WF1": 0.7, "loss": 0.55},
    }
    assert rank_architectures(scores, "UA") == ["BiLSTM", "LSTM", "CNN"]  # tie on UA -> lower loss
    assert rank_architectures(scores, "WA") == ["CNN", "BiLSTM", "LSTM"]
    assert rank_architectures(scores, "loss") == ["CNN", "BiLSTM", "LSTM"]
    assert select_encoder(scores, block_defaults("tefe.selection", {"metric": "UA"}))["selected"] == "BiLSTM"
    with pytest.raises(ValueError, match="override: 'BiLSTM_CNN' is not a trained architecture"):
        select_encoder(scores, block_defaults("tefe.selection", {"metric": "UA", "override": "BiLSTM_CNN"}))
    write_json(tmp_path / "m.json", {"architecture": "CNN", "history": []})
    with pytest.raises(ValueError, match="m.json: no 'validation' block"):
        tefe_select.validation_scores({"CNN": str(tmp_path / "m.json")})


def test_extraction_rejects_bad_transcripts(tmp_path, workflow):
    model_dir = workflow["root"] / "models/CNN"
    texts, labels = tiny_corpus(4, seed=5)
    manifest, transcripts = write_speech_split(tmp_path, "dev", texts, labels)
    frame = pd.read_parquet(transcripts)
    out = tmp_path / "out.parquet"
    frame.iloc[:3].to_parquet(tmp_path / "short.parquet")
    with pytest.raises(ValueError, match=r"short.parquet: transcripts do not match .*dev.tsv: 1 missing"):
        _extract(model_dir, tmp_path / "short.parquet", manifest, out)
    frame.assign(hypothesis=[None, "a", "b", "c"]).to_parquet(tmp_path / "null.parquet")
    with pytest.raises(ValueError, match=r"null.parquet: column 'hypothesis' is not a string .*utt_dev_000"):
        _extract(model_dir, tmp_path / "null.parquet", manifest, out)
    frame.drop(columns="reference").to_parquet(tmp_path / "noref.parquet")
    with pytest.raises(ValueError, match=r"noref.parquet: transcripts lack columns \['reference'\]"):
        _extract(model_dir, tmp_path / "noref.parquet", manifest, out, column="reference")
    assert not out.exists() and list(tmp_path.glob(".out*")) == []  # no partial output


def test_batches_cover_every_row_once():
    for n in range(1, 12):
        chunks = batch_indices(n, 4, torch.Generator().manual_seed(0))
        assert sorted(torch.cat(chunks).tolist()) == list(range(n))
        assert n == 1 or min(len(c) for c in chunks) >= 2  # BatchNorm needs two rows in training
