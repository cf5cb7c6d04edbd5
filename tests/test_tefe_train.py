"""TEFE embedding and training: frozen embedding, seeds, early stopping, resume, class weights, vectors files."""

from __future__ import annotations

import numpy as np
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
    write_text_manifest,
)
from workflow_scripts.common.labels import encode_labels
from workflow_scripts.common.training import STATE_FILE, Resume, class_weight_vector, improved
from workflow_scripts.tefe import train as tefe_train
from workflow_scripts.tefe.embedding import build_embedding, read_word2vec_text
from workflow_scripts.tefe.extract import text_features
from workflow_scripts.tefe.models import TextEncoder
from workflow_scripts.tefe.text import PAD_ID, UNK_ID
from workflow_scripts.tefe.train import evaluate, train_encoder

torch.set_num_threads(1)
CLASSES = ["neutral", "negative"]


@pytest.fixture(scope="module")
def corpus():
    train_texts, train_labels = tiny_corpus(96, seed=1)
    dev_texts, dev_labels = tiny_corpus(24, seed=2)
    vocab, matrix, summary = build_embedding(train_texts, TINY_TEXT, TINY_EMBEDDING)
    train = (train_texts, encode_labels(train_labels, CLASSES, "train", train_texts))
    dev = (dev_texts, encode_labels(dev_labels, CLASSES, "dev", dev_texts))
    return vocab, matrix, summary, train, dev


def _train(corpus, arch, **training):
    vocab, matrix, _, train, dev = corpus
    return train_encoder(
        arch, vocab, matrix, train, dev, CLASSES, TINY_MODELS[arch], {**TINY_TRAINING, **training}, FROZEN
    )


def _features(model, vocab, texts):
    parts = [stats for _, stats in text_features(model, vocab, texts, 5, torch.device("cpu"))]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def test_word2vec_embedding_is_reproducible(corpus):
    vocab, matrix, summary, train, _ = corpus
    again_vocab, again, _ = build_embedding(train[0], TINY_TEXT, TINY_EMBEDDING)
    assert again_vocab.tokens == vocab.tokens
    np.testing.assert_array_equal(again, matrix)
    assert matrix.shape == (len(vocab), 16) and matrix.dtype == np.float32
    assert not matrix[PAD_ID].any()
    # No token below min_count, so <UNK> is the mean word vector.
    np.testing.assert_allclose(matrix[UNK_ID], matrix[2:].mean(axis=0), rtol=1e-5, atol=1e-6)
    assert summary["coverage"] == {"with_vector": len(vocab) - 2, "random": 0, "random_examples": []}
    reseeded = {**TINY_EMBEDDING, "word2vec": {**TINY_EMBEDDING["word2vec"], "seed": 4}}
    other_seed = build_embedding(train[0], TINY_TEXT, reseeded)[1]
    assert not np.array_equal(other_seed, matrix)


def test_rare_tokens_train_the_unk_vector(corpus):
    texts = corpus[3][0] + ["tôi gặp khủng long"]  # three tokens seen once
    vocab, matrix, _ = build_embedding(texts, {**TINY_TEXT, "min_count": 2}, TINY_EMBEDDING)
    assert "khủng" not in vocab.index
    assert not np.allclose(matrix[UNK_ID], matrix[2:].mean(axis=0), atol=1e-4)


@pytest.mark.parametrize("arch", ["CNN", "BiLSTM_CNN"])
def test_embedding_unchanged_after_training(corpus, arch):
    vocab, matrix, _, _, _ = corpus
    torch.manual_seed(0)
    initial = TextEncoder(arch, torch.from_numpy(matrix), 2, TINY_MODELS[arch]).state_dict()
    before = {k: v.clone() for k, v in initial.items()}
    model, metrics = _train(corpus, arch, seed=0)
    after = model.state_dict()
    assert torch.equal(after["embedding.weight"], torch.from_numpy(matrix))
    changed = [k for k in before if k != "embedding.weight" and not torch.equal(before[k], after[k])]
    assert "output.weight" in changed and any(k.startswith("conv.convs") for k in changed)
    assert metrics["parameters"]["frozen"] == matrix.size


def test_same_seed_gives_identical_features(corpus):
    vocab, _, _, _, dev = corpus
    first, first_metrics = _train(corpus, "LSTM")
    second, second_metrics = _train(corpus, "LSTM")
    a, b = _features(first, vocab, dev[0]), _features(second, vocab, dev[0])
    assert set(a) == {"sentence", "mean", "var", "max", "min"}
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert first_metrics["history"] == [
        {**r, "seconds": h["seconds"]} for r, h in zip(second_metrics["history"], first_metrics["history"], strict=True)
    ]
    other, _ = _train(corpus, "LSTM", seed=8)
    assert not np.array_equal(_features(other, vocab, dev[0])["sentence"], a["sentence"])


def test_best_epoch_is_kept_and_early_stopping(corpus):
    vocab, _, _, _, dev = corpus
    model, metrics = _train(corpus, "BiLSTM", epochs=8, patience=1, learning_rate=0.05)
    history = metrics["history"]
    best = history[metrics["best_epoch"] - 1]
    assert metrics["validation"]["UA"] == best["dev_UA"] and metrics["validation"]["loss"] == best["dev_loss"]
    assert all(r["dev_UA"] <= best["dev_UA"] for r in history)
    # The returned weights are the best epoch's: re-evaluating gives its scores.
    ids, lengths = vocab.encode(dev[0])
    again = evaluate(model, ids, lengths, dev[1], 256, torch.device("cpu"))
    assert again["UA"] == pytest.approx(best["dev_UA"]) and again["loss"] == pytest.approx(best["dev_loss"], rel=1e-5)
    # dev UA saturates within a few epochs on the tiny corpus: patience 1 stops the run one epoch
    # after its best, before the 8 epochs.
    assert metrics["stopped_early"] and metrics["epochs_run"] == metrics["best_epoch"] + 1 < 8, metrics["history"]
    assert best["dev_UA"] > 0.8  # the tiny corpus is separable by wording


def test_a_killed_training_resumes_after_its_last_epoch_to_the_same_result(corpus, tmp_path, monkeypatch):
    vocab, matrix, _, train, dev = corpus
    settings = {**TINY_TRAINING, "epochs": 4, "patience": 4}
    scored, kill_at = [], {3}
    original = tefe_train.evaluate

    def scoring(*args, **kwargs):
        # A job killed while scoring its third epoch.
        scored.append(len(scored) + 1)
        if scored[-1] in kill_at:
            raise RuntimeError("simulated kill")
        return original(*args, **kwargs)

    def run(resume=None):
        model_config = TINY_MODELS["BiLSTM_CNN"]
        return train_encoder("BiLSTM_CNN", vocab, matrix, train, dev, CLASSES, model_config, settings, FROZEN, resume)

    def strip(metrics):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in metrics["history"]]

    full_model, full = run()
    work = tmp_path / "work"
    monkeypatch.setattr(tefe_train, "evaluate", scoring)
    with pytest.raises(RuntimeError, match="simulated kill"):
        run(Resume(work, "run-a"))
    assert torch.load(work / STATE_FILE, weights_only=False)["epoch"] == 2
    scored.clear()
    kill_at.clear()
    model, resumed = run(Resume(work, "run-a"))
    assert scored == [1, 2]  # epochs 3 and 4 only: it went on after epoch 2
    assert strip(resumed) == strip(full) and resumed["validation"] == full["validation"]
    for a, b in zip(model.state_dict().values(), full_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # Another run's state (other settings or data) is never resumed.
    scored.clear()
    _, other = run(Resume(work, "run-b"))
    assert scored == [1, 2, 3, 4] and strip(other) == strip(full)


def test_the_rule_resumes_from_its_work_dir_and_removes_it_once_written(corpus, tmp_path, monkeypatch):
    vocab, matrix, _, train, dev = corpus
    inputs = {
        "train": write_text_manifest(tmp_path / "train.tsv", train[0], [CLASSES[i] for i in train[1]], "train"),
        "dev": write_text_manifest(tmp_path / "dev.tsv", dev[0], [CLASSES[i] for i in dev[1]], "dev"),
        "vocab": tmp_path / "vocab.json",
        "embedding": tmp_path / "embedding.npy",
    }
    vocab.save(inputs["vocab"])
    np.save(inputs["embedding"], matrix)
    work = tmp_path / "work"
    params = {"model": TINY_MODELS["CNN"], "training": TINY_TRAINING, "embedding": FROZEN, "classes": CLASSES}

    def job(out: str, **extra):
        output = {key: str(tmp_path / out / f"{key}.{ext}") for key, ext in (("model", "pt"), ("vocab", "json"))}
        output["metrics"] = str(tmp_path / out / "metrics.json")
        files = {key: str(path) for key, path in inputs.items()}
        return rule_job(input=files, output=output, params={**params, **extra}, wildcards={"arch": "CNN"})

    tefe_train.main(job("plain", work_dir=str(tmp_path / "plain_work")))
    assert not (tmp_path / "plain_work").exists()  # an uninterrupted run leaves no state behind
    calls = []
    original = tefe_train.evaluate

    def killed_in_epoch_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated kill")
        return original(*args, **kwargs)

    monkeypatch.setattr(tefe_train, "evaluate", killed_in_epoch_two)
    with pytest.raises(RuntimeError, match="simulated kill"):
        tefe_train.main(job("resumed", work_dir=str(work)))
    assert (work / STATE_FILE).exists() and not (tmp_path / "resumed").exists()
    monkeypatch.undo()
    tefe_train.main(job("resumed", work_dir=str(work)))
    assert not work.exists()  # the outputs are written: nothing left to resume
    plain, resumed = (torch.load(tmp_path / d / "model.pt", weights_only=True) for d in ("plain", "resumed"))
    for a, b in zip(plain["state_dict"].values(), resumed["state_dict"].values(), strict=True):
        assert torch.equal(a, b)


def test_improvement_rule():
    best = {"UA": 0.7, "loss": 0.5}
    assert improved({"UA": 0.71, "loss": 0.9}, best, "UA", 0.0)
    assert not improved({"UA": 0.71, "loss": 0.4}, best, "UA", 0.02)
    assert improved({"UA": 0.7, "loss": 0.4}, best, "UA", 0.0)  # tie -> lower loss
    assert not improved({"UA": 0.7, "loss": 0.6}, best, "UA", 0.0)
    assert improved({"UA": 0.1, "loss": 0.4}, best, "loss", 0.0)


def test_class_weights():
    y = np.array([0, 0, 0, 1])
    torch.testing.assert_close(class_weight_vector(y, 2, "balanced", CLASSES), torch.tensor([4 / 6, 2.0]))
    assert class_weight_vector(y, 2, "none", CLASSES) is None
    explicit = class_weight_vector(y, 2, {"neutral": 1, "negative": 3}, CLASSES)
    torch.testing.assert_close(explicit, torch.tensor([1.0, 3.0]))
    with pytest.raises(ValueError, match="a weight for each of"):
        class_weight_vector(y, 2, {"neutral": 1}, CLASSES)
    with pytest.raises(ValueError, match=r"lacks classes \['negative'\]"):
        class_weight_vector(np.array([0, 0]), 2, "balanced", CLASSES)


def test_unknown_label_names_file_and_utterance():
    with pytest.raises(ValueError, match="dev.tsv: labels not in task.classes.*utt_id 'b' has 'happy'"):
        encode_labels(["neutral", "happy"], CLASSES, "dev.tsv", ["a", "b"])


def test_vectors_file(tmp_path, corpus):
    texts = corpus[3][0]
    vocab, _, _ = build_embedding(texts, TINY_TEXT, TINY_EMBEDDING)
    path = tmp_path / "vectors.txt"
    known = [t for t in vocab.tokens[2:] if t != "tôi"]
    lines = [f"{len(known) + 1} 4"] + [f"{t.upper()} 1 2 3 {i}" for i, t in enumerate(known)] + ["<unk> 9 9 9 9"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = {**TINY_EMBEDDING, "dim": 4, "source": "file", "vectors": str(path), "seed": 5}
    vocab2, matrix, summary = build_embedding(texts, TINY_TEXT, settings)
    assert summary["coverage"]["random"] == 1 and summary["coverage"]["random_examples"] == ["tôi"]
    np.testing.assert_array_equal(matrix[vocab2.index[known[0]]], [1, 2, 3, 0])  # keys normalised (lowercase)
    np.testing.assert_array_equal(matrix[UNK_ID], [9, 9, 9, 9])
    assert matrix[vocab2.index["tôi"]].any()
    np.testing.assert_array_equal(build_embedding(texts, TINY_TEXT, settings)[1], matrix)  # seeded
    with pytest.raises(ValueError, match="vectors have width 4, but tefe.embedding.dim is 16"):
        build_embedding(texts, TINY_TEXT, {**settings, "dim": 16})
    bad = tmp_path / "bad.txt"
    bad.write_text("tôi 1 2 3\nđi 1 x 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.txt, line 2: not a number"):
        read_word2vec_text(bad, {"đi"}, True)
    with pytest.raises(FileNotFoundError, match="missing.txt: word vectors file not found"):
        build_embedding(texts, TINY_TEXT, {**settings, "vectors": str(tmp_path / "missing.txt")})
