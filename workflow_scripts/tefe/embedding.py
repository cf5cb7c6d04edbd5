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


def embedding_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The tefe.embedding block (validated, defaults filled), checked for what the schema cannot see."""
    if config["source"] == "file" and not config["vectors"]:
        raise ValueError("tefe.embedding.source is 'file' but tefe.embedding.vectors names no file")
    return {**config, "extra_texts": list(config["extra_texts"] or [])}


def check_extra_text_files(files: Sequence[str], forbidden: Sequence[str]) -> None:
    """Refuse extra embedding texts that are a test split's text (``forbidden``: the test splits' files)."""
    banned = {os.path.realpath(f): f for f in forbidden}
    for path in files:
        if os.path.realpath(path) in banned:
            raise ValueError(
                f"tefe.embedding.extra_texts: {path} is the text of a test split ({banned[os.path.realpath(path)]}); "
                "test text may never train the embedding"
            )


def read_extra_texts(files: Sequence[str]) -> list[str]:
    """Unlabelled texts for the embedding: one per line, or a .tsv / .csv table's ``text`` column."""
    import pandas as pd

    texts: list[str] = []
    for path in files:
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: extra embedding text file not found (tefe.embedding.extra_texts)")
        if path.endswith((".tsv", ".csv")):
            frame = pd.read_csv(path, sep="\t" if path.endswith(".tsv") else ",", dtype=str, keep_default_na=False)
            if "text" not in frame.columns:
                raise ValueError(
                    f"{path}: no 'text' column (columns: {list(frame.columns)}); expected a table with one"
                )
            texts += frame["text"].tolist()
        else:
            with open(path, encoding="utf-8") as handle:
                texts += [line.strip() for line in handle if line.strip()]
    return texts


def corpus_tokens(texts: Sequence[str], vocab: Vocabulary) -> list[list[str]]:
    """Tokenised texts with out-of-vocabulary tokens replaced by ``<UNK>`` (word2vec's corpus)."""
    sentences = []
    for text in texts:
        tokens = tokenize(text, vocab.settings)
        sentences.append([t if t in vocab.index else UNK for t in tokens])
    return [s for s in sentences if s]


def _gensim_model(kind: str, sentences: list[list[str]], dim: int, config: Mapping[str, Any]):
    """A gensim Word2Vec or FastText model (single worker, seeded, so reproducible)."""
    from gensim.models import FastText, Word2Vec

    extra = {key: int(config[key]) for key in ("min_n", "max_n", "bucket")} if kind == "fasttext" else {}
    return (FastText if kind == "fasttext" else Word2Vec)(
        sentences=sentences,
        vector_size=int(dim),
        window=int(config["window"]),
        sg=1 if config["architecture"] == "skipgram" else 0,
        negative=int(config["negative"]),
        sample=float(config["sample"]),
        alpha=float(config["alpha"]),
        epochs=int(config["epochs"]),
        min_count=1,  # the vocabulary already applied tefe.text.min_count
        seed=int(config["seed"]),
        workers=1,  # several workers interleave updates non-deterministically
        **extra,
    )


def train_word2vec(sentences: list[list[str]], dim: int, config: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Word vectors of every token in ``sentences`` (gensim Word2Vec, single worker, seeded)."""
    model = _gensim_model("word2vec", sentences, dim, config)
    return {word: model.wv[word] for word in model.wv.index_to_key}


def train_fasttext(sentences: list[list[str]], dim: int, config: Mapping[str, Any]):
    """A gensim FastText model (subword n-grams; single worker, seeded): vectors for any word."""
    return _gensim_model("fasttext", sentences, dim, config)


def read_fasttext_bin(path: str | os.PathLike, wanted: set[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Vectors of the ``wanted`` tokens from a fastText ``.bin`` model (subwords: every token gets one)."""
    from gensim.models.fasttext import load_facebook_vectors

    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: fastText model not found (tefe.embedding.vectors)")
    try:
        vectors = load_facebook_vectors(str(path))
    except Exception as error:  # gensim raises several types for a bad file
        raise ValueError(f"{path}: not a fastText .bin model ({error})") from error
    found = {word: vectors[word] for word in wanted}
    sample = vectors.vectors[: min(len(vectors.vectors), 10000)]
    return found, {"dim": int(vectors.vector_size), "rows": len(vectors.key_to_index), "std": float(np.std(sample))}


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
    train_texts: Sequence[str],
    text_config: Mapping[str, Any],
    embedding_config: Mapping[str, Any],
    extra_texts: Sequence[str] = (),
) -> tuple[Vocabulary, np.ndarray, dict[str, Any]]:
    """Vocabulary, embedding matrix and a summary from the training texts and the two config blocks.

    ``extra_texts``: unlabelled texts that train the word2vec / FastText vectors too (never a
    test split's); the vocabulary still comes from the training split only.
    """
    vocab = build_vocabulary(train_texts, text_settings(text_config))
    cfg = embedding_settings(embedding_config)
    dim = int(cfg["dim"])
    summary: dict[str, Any] = {
        "vocabulary_size": len(vocab),
        "dim": dim,
        "source": cfg["source"],
        "training_texts": len(train_texts),
        "extra_texts": len(extra_texts),
        "trainable": bool(cfg["trainable"]),
    }
    if cfg["source"] in ("word2vec", "fasttext"):
        sentences = corpus_tokens(train_texts, vocab)
        # Extra texts keep their own words: they give context, only vocabulary words are kept.
        sentences += [tokens for tokens in (tokenize(t, vocab.settings) for t in extra_texts) if tokens]
        block = cfg[cfg["source"]]
        if cfg["source"] == "word2vec":
            vectors = train_word2vec(sentences, dim, block)
        else:
            model = train_fasttext(sentences, dim, block)
            vectors = {token: model.wv[token] for token in vocab.tokens[2:]}
            vectors[UNK] = model.wv[UNK] if UNK in model.wv.key_to_index else None
            vectors = {k: v for k, v in vectors.items() if v is not None}
        summary[cfg["source"]] = {**block, "sentences": len(sentences), "tokens": sum(len(s) for s in sentences)}
        random_std = float(np.std(np.stack(list(vectors.values())))) if vectors else 0.1
    else:
        wanted = set(vocab.tokens) | {UNK.lower()}
        if str(cfg["vectors"]).endswith(".bin"):
            vectors, info = read_fasttext_bin(cfg["vectors"], set(vocab.tokens[2:]))
        else:
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
    extra_files = [str(f) for f in job.input.get("extra_texts", [])]
    check_extra_text_files(extra_files, list(job.params.get("test_texts", [])))
    extra = read_extra_texts(extra_files)
    vocab, matrix, summary = build_embedding(texts, job.params.text, job.params.embedding, extra)
    summary["train_manifest"] = str(job.input.train)
    summary["extra_text_files"] = extra_files
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
