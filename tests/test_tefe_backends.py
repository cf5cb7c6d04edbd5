"""The text backends beside the paper's architectures (TF-IDF), the embedding options (FastText,
pretrained .vec / .bin, extra texts, trainable) and length-bucketed training (tiny data)."""

from __future__ import annotations

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
from workflow_scripts.common.labels import encode_labels
from workflow_scripts.tefe import embedding as tefe_embedding
from workflow_scripts.tefe import extract as tefe_extract
from workflow_scripts.tefe import extract_backend, train_backend
from workflow_scripts.tefe.embedding import build_embedding, check_extra_text_files
from workflow_scripts.tefe.models import bucketed_batch_indices
from workflow_scripts.tefe.tfidf import TfidfBackend
from workflow_scripts.tefe.train import train_encoder

CLASSES = ["neutral", "negative"]


def _data(n, seed):
    texts, labels = tiny_corpus(n, seed)
    return texts, encode_labels(labels, CLASSES, "tiny")


def _fit_and_extract(tmp_path, block):
    text = {
        s: write_text_manifest(tmp_path / f"{s}.tsv", *tiny_corpus(n, seed), s)
        for s, n, seed in [("train", 60, 1), ("dev", 20, 2)]
    }
    texts, labels = tiny_corpus(7, seed=4)
    manifest, transcripts = write_speech_split(
        tmp_path, "dev_speech", texts, labels, [t.replace("tức", "túc") for t in texts]
    )
    model = tmp_path / "tefe" / "tfidf" / "model"  # paths.TEFE_BACKEND_MODEL inside run directory tmp_path
    train_backend.main(
        rule_job(
            input={"train": str(text["train"]), "dev": str(text["dev"])},
            output={"model": str(model), "metrics": str(tmp_path / "tfidf" / "metrics.json")},
            params={"block": block, "classes": CLASSES},
            wildcards={"backend": "tfidf"},
        )
    )
    out = tmp_path / "features.parquet"
    extract_backend.main(
        rule_job(
            input={"model": str(model), "transcripts": str(transcripts), "manifest": str(manifest)},
            output={"features": str(out)},
            params={"column": "hypothesis", "batch_size": 3},
            wildcards={"backend": "tfidf", "feature_set": "features", "split": "dev_speech"},
        )
    )
    return out, manifest


def test_tfidf_features_follow_the_contract(tmp_path):
    out, manifest = _fit_and_extract(tmp_path, block_defaults("tefe.tfidf", {"seed": 3}))
    ids, matrix, meta = read_features(out, ["sentence"])
    assert len(ids) == 7 and meta["dim"] == 2 and meta["statistics"] == ["sentence"]
    assert meta["model"] == "tefe/tfidf" and meta["backend"] == "tfidf"
    # Log-probabilities of the two classes: they sum to one.
    np.testing.assert_allclose(np.exp(matrix).sum(axis=1), 1.0, rtol=1e-5)
    # Deterministic: a second fit gives the same features.
    (tmp_path / "again").mkdir()
    again, _ = _fit_and_extract(tmp_path / "again", block_defaults("tefe.tfidf", {"seed": 3}))
    np.testing.assert_array_equal(read_features(again, ["sentence"])[1], matrix)
    # predict featurizes with the same fitted backend when tefe.backend is tfidf.
    featurize = tefe_extract.load_featurizer({"tefe": {"backend": "tfidf"}}, tmp_path, 1)
    hypotheses = pd.read_parquet(tmp_path / "dev_speech.parquet")["hypothesis"].tolist()
    np.testing.assert_allclose(featurize(hypotheses)["sentence"], matrix, rtol=1e-6)


def test_tfidf_projection_width_and_training_split_only(tmp_path):
    train, dev = _data(60, 1), (["một câu chưa từng thấy zzzqqq"] * 2, np.array([0, 1]))
    backend = TfidfBackend(
        block_defaults("tefe.tfidf", {"features": "projection", "projection_dim": 8, "seed": 0}), CLASSES
    ).fit(*train)
    stats = backend.features(dev[0])
    assert backend.feature_dim == 8 and stats["sentence"].shape == (2, 8) and stats["sentence"].dtype == np.float32
    # The n-gram vocabulary comes from the training texts only.
    words = backend.vectorizers[0].vocabulary_
    assert "zzzqqq" not in words and "đi chợ" in words
    with pytest.raises(ValueError, match="word_ngrams and char_ngrams are both null"):
        TfidfBackend(block_defaults("tefe.tfidf", {"word_ngrams": None, "char_ngrams": None}), CLASSES)


def test_bucketed_batches_cover_every_row_once_with_little_padding():
    generator = torch.Generator().manual_seed(0)
    lengths = torch.from_numpy(np.random.default_rng(0).integers(1, 60, size=1001))
    batches = bucketed_batch_indices(lengths, 16, generator, bucket_batches=10)
    rows = torch.cat(batches).sort().values
    assert torch.equal(rows, torch.arange(1001))
    padded = sum(len(b) * int(lengths[b].max()) for b in batches)
    assert padded < 1.3 * int(lengths.sum())  # random batches of 16 pad to ~1.9x


def test_bucketed_training_learns():
    # A tiny corpus whose length follows its label is the hardest case for length buckets
    # (near one-class batches); the real-text comparison is benchmarks/tefe_train_speed.py.
    train, dev = _data(80, 1), _data(20, 2)
    vocab, matrix, _ = build_embedding(train[0], TINY_TEXT, TINY_EMBEDDING)
    training = {**TINY_TRAINING, "length_buckets": True, "epochs": 6, "patience": 6}
    _, metrics = train_encoder("CNN", vocab, matrix, train, dev, CLASSES, TINY_MODELS["CNN"], training, FROZEN)
    assert metrics["validation"]["UA"] >= 0.75 and metrics["training"]["length_buckets"] is True


def test_fasttext_embedding_uses_extra_texts_and_trains_when_asked():
    train, dev = _data(60, 1), _data(20, 2)
    extra = ["tôi rất tức giận hôm nay", "cô giáo đọc sách"] * 5
    fasttext = {"epochs": 3, "seed": 1, "bucket": 1000}
    config = block_defaults("tefe.embedding", {"dim": 12, "source": "fasttext", "fasttext": fasttext})
    vocab, matrix, summary = build_embedding(train[0], TINY_TEXT, config, extra)
    assert summary["source"] == "fasttext" and summary["extra_texts"] == 10
    assert summary["coverage"]["random"] == 0 and matrix.shape == (len(vocab), 12)
    assert summary["fasttext"]["sentences"] == 60 + 10
    # The vocabulary stays the training split's.
    assert "hôm" not in vocab.index
    for trainable in (False, True):
        model, metrics = train_encoder(
            "LSTM",
            vocab,
            matrix,
            train,
            dev,
            CLASSES,
            TINY_MODELS["LSTM"],
            {**TINY_TRAINING, "epochs": 1},
            {"trainable": trainable},
        )
        changed = not np.array_equal(model.embedding.weight.detach().numpy(), matrix)
        assert changed == trainable and metrics["embedding_trainable"] == trainable


def test_pretrained_fasttext_bin_gives_every_word_a_vector(tmp_path):
    from gensim.models import FastText
    from gensim.models.fasttext import save_facebook_model

    texts, _ = tiny_corpus(30, 1)
    model = FastText(
        [t.split() for t in texts[:10]], vector_size=8, min_count=1, epochs=2, bucket=500, seed=1, workers=1
    )
    path = tmp_path / "vectors.bin"
    save_facebook_model(model, str(path))
    from_file = block_defaults("tefe.embedding", {"dim": 8, "source": "file", "vectors": str(path)})
    vocab, matrix, summary = build_embedding(texts, TINY_TEXT, from_file)
    assert summary["coverage"]["random"] == 0 and matrix.shape[1] == 8
    with pytest.raises(ValueError, match="set tefe.embedding.dim to 8"):
        build_embedding(texts, TINY_TEXT, {**from_file, "dim": 16})


def test_test_split_text_never_trains_the_embedding(tmp_path):
    train = write_text_manifest(tmp_path / "train.tsv", *tiny_corpus(20, 1), "train")
    test = write_text_manifest(tmp_path / "test.tsv", *tiny_corpus(10, 2), "test")
    with pytest.raises(ValueError, match="test split"):
        check_extra_text_files([str(tmp_path / "." / "test.tsv")], [str(test)])
    job = rule_job(
        input={"train": str(train), "vectors": [], "extra_texts": [str(test)]},
        output={
            k: str(tmp_path / "emb" / f)
            for k, f in [("vocab", "v.json"), ("embedding", "e.npy"), ("summary", "s.json")]
        },
        params={"text": TINY_TEXT, "embedding": TINY_EMBEDDING, "test_texts": [str(test)]},
    )
    with pytest.raises(ValueError, match="test text may never train the embedding"):
        tefe_embedding.main(job)
    assert not (tmp_path / "emb" / "e.npy").exists()
