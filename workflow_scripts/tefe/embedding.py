"""The vocabulary and frozen embedding matrix of the text encoders (rule build_tefe_embedding).

Built once from the text corpus's training split and shared by the four architectures:

* ``vocab.json``: tokens (``<PAD>`` = 0, ``<UNK>`` = 1, then the training vocabulary) and the
  text settings (see :mod:`workflow_scripts.tefe.text`);
* ``embedding.npy``: float32 [vocabulary, dim]. Row ``<PAD>`` is zero. The other rows are
  word2vec vectors trained on the tokenised training split (gensim skip-gram, window 3 as in
  the paper's code, one worker and a seed, so the vectors are reproducible), or vectors read
  from a user's word2vec text file;
* ``summary.json``: sizes, source and coverage.

``<UNK>`` gets the word2vec vector of the ``<UNK>`` token when the training split holds tokens
below ``min_count`` (they are replaced by it before word2vec, so it is learnt), else the mean
vector. Vocabulary words a vectors file lacks get seeded random vectors with the file's spread.
"""

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from workflow_scripts.common.files import atomic_path, write_json
from workflow_scripts.common.manifest import TEXT_COLUMNS, read_manifest
from workflow_scripts.common.rule import run_rule
from workflow_scripts.tefe.text import (
    PAD_ID,
    UNK,
    UNK_ID,
    Vocabulary,
    build_vocabulary,
    normalize_text,
    text_settings,
    tokenize,
)

log = logging.getLogger(__name__)

EMBEDDING_DEFAULTS: dict[str, Any] = {"dim": 1024, "source": "word2vec", "vectors": None, "seed": 42}
WORD2VEC_DEFAULTS: dict[str, Any] = {
    "architecture": "skipgram",
    "window": 3,
    "epochs": 10,
    "negative": 5,
    "sample": 1.0e-3,
    "alpha": 0.025,
    "seed": 42,
}


def embedding_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The embedding block with defaults filled in and checked (keys as in tefe.embedding)."""
    unknown = sorted(set(config) - set(EMBEDDING_DEFAULTS) - {"word2vec"})
    if unknown:
        raise ValueError(f"tefe.embedding: unknown key(s) {unknown}")
    settings = {**EMBEDDING_DEFAULTS, **config}
    settings["word2vec"] = {**WORD2VEC_DEFAULTS, **config.get("word2vec", {})}
    if settings["source"] not in ("word2vec", "file"):
        raise ValueError(f"tefe.embedding.source: {settings['source']!r}, expected 'word2vec' or 'file'")
    if settings["source"] == "file" and not settings["vectors"]:
        raise ValueError("tefe.embedding.source is 'file' but tefe.embedding.vectors names no file")
    if settings["word2vec"]["architecture"] not in ("skipgram", "cbow"):
        raise ValueError("tefe.embedding.word2vec.architecture: expected 'skipgram' or 'cbow'")
    return settings


def corpus_tokens(texts: Sequence[str], vocab: Vocabulary) -> list[list[str]]:
    """Tokenised texts with out-of-vocabulary tokens replaced by ``<UNK>`` (word2vec's corpus)."""
    sentences = []
    for text in texts:
        tokens = tokenize(text, vocab.settings)
        sentences.append([t if t in vocab.index else UNK for t in tokens])
    return [s for s in sentences if s]


def train_word2vec(sentences: list[list[str]], dim: int, config: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Word vectors of every token in ``sentences`` (gensim Word2Vec, single worker, seeded)."""
    from gensim.models import Word2Vec

    cfg = {**WORD2VEC_DEFAULTS, **config}
    model = Word2Vec(
        sentences=sentences,
        vector_size=int(dim),
        window=int(cfg["window"]),
        sg=1 if cfg["architecture"] == "skipgram" else 0,
        negative=int(cfg["negative"]),
        sample=float(cfg["sample"]),
        alpha=float(cfg["alpha"]),
        epochs=int(cfg["epochs"]),
        min_count=1,  # the vocabulary already applied tefe.text.min_count
        seed=int(cfg["seed"]),
        workers=1,  # several workers interleave updates non-deterministically
    )
    return {word: model.wv[word] for word in model.wv.index_to_key}


def read_word2vec_text(
    path: str | os.PathLike, wanted: set[str], lowercase: bool
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Vectors of the ``wanted`` tokens from a word2vec text file (optional "count dim" header).

    Keys are normalised like the corpus (NFC, lowercase as configured); the first occurrence of
    a key wins. Returns (vectors, info with dim, rows read and the spread of all vectors).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: word vectors file not found (tefe.embedding.vectors)")
    found: dict[str, np.ndarray] = {}
    dim = None
    rows = 0
    total, total_sq = 0.0, 0.0
    with open(path, encoding="utf-8", errors="strict") as handle:
        for line_no, line in enumerate(handle, start=1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if line_no == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                dim = int(parts[1])
                continue
            if not line.strip():
                continue
            if dim is None:
                dim = len(parts) - 1
            if len(parts) < dim + 1:
                raise ValueError(f"{path}, line {line_no}: expected a word and {dim} numbers, got {len(parts)} fields")
            word = normalize_text(" ".join(parts[:-dim]), lowercase)
            try:
                vector = np.asarray(parts[-dim:], dtype=np.float32)
            except ValueError as error:
                raise ValueError(f"{path}, line {line_no}: not a number in the vector of {word!r} ({error})") from error
            rows += 1
            total += float(vector.sum())
            total_sq += float((vector.astype(np.float64) ** 2).sum())
            if word in wanted and word not in found:
                found[word] = vector
    if rows == 0 or dim is None:
        raise ValueError(f"{path}: no word vectors found (expected word2vec text format)")
    mean = total / (rows * dim)
    std = float(np.sqrt(max(total_sq / (rows * dim) - mean**2, 1e-12)))
    return found, {"dim": dim, "rows": rows, "std": std}


def embedding_matrix(
    vocab: Vocabulary, vectors: Mapping[str, np.ndarray], dim: int, seed: int, random_std: float
) -> tuple[np.ndarray, list[str]]:
    """[len(vocab), dim] float32: ``<PAD>`` zero, known tokens their vectors, ``<UNK>`` as documented.

    Tokens without a vector get seeded N(0, random_std) rows; their list is returned.
    """
    matrix = np.zeros((len(vocab), dim), dtype=np.float32)
    rng = np.random.default_rng(seed)
    missing = []
    known = []
    for i, token in enumerate(vocab.tokens):
        if i in (PAD_ID, UNK_ID):
            continue
        if token in vectors:
            matrix[i] = vectors[token]
            known.append(i)
        else:
            missing.append(token)
            matrix[i] = rng.normal(0.0, random_std, dim)
    unk = vectors.get(UNK, vectors.get(UNK.lower()))
    if unk is not None:
        matrix[UNK_ID] = unk
    elif known:
        matrix[UNK_ID] = matrix[known].mean(axis=0)
    return matrix, missing


def build_embedding(
    train_texts: Sequence[str], text_config: Mapping[str, Any], embedding_config: Mapping[str, Any]
) -> tuple[Vocabulary, np.ndarray, dict[str, Any]]:
    """Vocabulary, embedding matrix and a summary from the training texts and the two config blocks."""
    vocab = build_vocabulary(train_texts, text_settings(text_config))
    cfg = embedding_settings(embedding_config)
    dim = int(cfg["dim"])
    summary: dict[str, Any] = {
        "vocabulary_size": len(vocab),
        "dim": dim,
        "source": cfg["source"],
        "training_texts": len(train_texts),
    }
    if cfg["source"] == "word2vec":
        sentences = corpus_tokens(train_texts, vocab)
        vectors = train_word2vec(sentences, dim, cfg["word2vec"])
        summary["word2vec"] = {**cfg["word2vec"], "sentences": len(sentences), "tokens": sum(len(s) for s in sentences)}
        random_std = float(np.std(np.stack(list(vectors.values())))) if vectors else 0.1
    else:
        wanted = set(vocab.tokens) | {UNK.lower()}
        vectors, info = read_word2vec_text(cfg["vectors"], wanted, vocab.settings["lowercase"])
        if info["dim"] != dim:
            raise ValueError(
                f"{cfg['vectors']}: vectors have width {info['dim']}, but tefe.embedding.dim is {dim}; "
                f"set tefe.embedding.dim to {info['dim']}"
            )
        random_std = info["std"]
        summary["vectors_file"] = {"path": str(cfg["vectors"]), "rows": info["rows"]}
    matrix, missing = embedding_matrix(vocab, vectors, dim, int(cfg["seed"]), random_std)
    covered = len(vocab) - 2 - len(missing)
    if covered == 0:
        raise ValueError(f"no vocabulary word has a vector ({cfg['source']}); check the vectors file and tefe.text")
    summary["coverage"] = {"with_vector": covered, "random": len(missing), "random_examples": missing[:20]}
    return vocab, matrix, summary


def main(job: Any) -> None:
    """Entry point of the build_tefe_embedding rule (``job``: the rule's ``snakemake`` object)."""
    logging.getLogger("gensim").setLevel(logging.WARNING)  # per-epoch chatter
    texts = read_manifest(job.input.train, columns=TEXT_COLUMNS)["text"].tolist()
    vocab, matrix, summary = build_embedding(texts, job.params.text, job.params.embedding)
    summary["train_manifest"] = str(job.input.train)
    vocab.save(job.output.vocab)
    with atomic_path(job.output.embedding) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, matrix)
    write_json(job.output.summary, summary)
    log.info(
        "vocabulary %d tokens, embedding %s from %s, %d words without a vector",
        len(vocab),
        matrix.shape,
        summary["source"],
        summary["coverage"]["random"],
    )


if __name__ == "__main__":
    run_rule(main)
