"""The TF-IDF text backend: word and character n-gram TF-IDF with a logistic regression.

A strong, cheap reference for the text branch (on real Vietnamese text it beats the paper's
frozen-word2vec CNN / LSTM; docs/tefe.md), and a text backend fusion can read
(``tefe.backend: tfidf``). Fitted on the text corpus's training split only (vocabulary, IDF
weights, the classifier and the optional projection); the dev split is only scored.

* Text: Unicode NFC, lowercase (diacritics kept), whitespace collapsed
  (:func:`workflow_scripts.tefe.text.normalize_text`).
* Word n-grams over syllables and punctuation / emoji tokens, and ``char_wb`` (characters
  inside word boundaries) n-grams; each TF-IDF block (sublinear tf, L2 normalised) is
  optional, and the blocks are concatenated.
* Logistic regression (liblinear-free ``lbfgs``, seeded) on the concatenation.

Features (the ``sentence`` statistic of the features contract, :mod:`workflow_scripts.common.features`):

* ``scores`` (default): the classifier's log-probability of each class (width = classes);
* ``projection``: a truncated SVD of the TF-IDF vector fitted on the training split (width
  ``projection_dim``, at most the number of TF-IDF columns - 1).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from workflow_scripts.common.checksums import record_checksum, verify_checksum
from workflow_scripts.common.files import atomic_path, read_json, write_json
from workflow_scripts.common.model_files import load_estimator, save_estimator
from workflow_scripts.tefe.text import normalize_text

FORMAT = "dfat-tefe-tfidf-2"
SETTINGS_FILE = "settings.json"
MODEL_FILE = "model.skops"
# Syllables / words (with inner "_") and single punctuation or symbol characters (emoji included).
TOKEN_PATTERN = r"(?u)[\w\u0300-\u036f]+|[^\w\s]"


def tfidf_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The tefe.tfidf block (validated, defaults filled), checked for what the schema cannot see."""
    settings = dict(config)
    for key in ("word_ngrams", "char_ngrams"):
        value = settings[key]
        if value is not None and not 1 <= int(value[0]) <= int(value[1]):
            raise ValueError(f"tefe.tfidf.{key}: {value!r}, expected [low, high] with 1 <= low <= high, or null")
    if settings["word_ngrams"] is None and settings["char_ngrams"] is None:
        raise ValueError("tefe.tfidf: word_ngrams and char_ngrams are both null; enable at least one")
    return settings


class TfidfBackend:
    """Word + character TF-IDF, a logistic regression over it and an optional SVD projection."""

    name = "tfidf"
    statistics = ("sentence",)

    def __init__(self, config: Mapping[str, Any], classes: Sequence[str]) -> None:
        self.settings = tfidf_settings(config)
        self.classes = list(classes)
        s = self.settings
        lower = bool(s["lowercase"])
        self.vectorizers: list[TfidfVectorizer] = []
        if s["word_ngrams"] is not None:
            self.vectorizers.append(
                TfidfVectorizer(
                    preprocessor=partial(normalize_text, lowercase=lower),
                    token_pattern=TOKEN_PATTERN,
                    ngram_range=tuple(s["word_ngrams"]),
                    min_df=int(s["min_df"]),
                    max_features=s["max_features"],
                    sublinear_tf=bool(s["sublinear_tf"]),
                    lowercase=False,
                )
            )
        if s["char_ngrams"] is not None:
            self.vectorizers.append(
                TfidfVectorizer(
                    preprocessor=partial(normalize_text, lowercase=lower),
                    analyzer="char_wb",
                    ngram_range=tuple(s["char_ngrams"]),
                    min_df=int(s["min_df"]),
                    max_features=s["max_features"],
                    sublinear_tf=bool(s["sublinear_tf"]),
                    lowercase=False,
                )
            )
        self.classifier = LogisticRegression(
            C=float(s["C"]),
            class_weight="balanced" if s["class_weight"] == "balanced" else None,
            max_iter=int(s["max_iter"]),
            random_state=int(s["seed"]),
        )
        self.projection: TruncatedSVD | None = None

    # --- fitting and inference ---
    def _matrix(self, texts: Sequence[str], fit: bool = False) -> sp.csr_matrix:
        texts = [t if isinstance(t, str) else "" for t in texts]
        blocks = [v.fit_transform(texts) if fit else v.transform(texts) for v in self.vectorizers]
        return sp.hstack(blocks, format="csr")

    def fit(self, texts: Sequence[str], y: np.ndarray, dev: Any = None) -> TfidfBackend:
        """Fit vectorizers, classifier (and projection) on the training texts and class indices (``dev`` unused)."""
        present = set(np.asarray(y).tolist())
        if len(present) < 2:
            raise ValueError(f"TF-IDF training needs at least two classes in the training split, got {sorted(present)}")
        x = self._matrix(texts, fit=True)
        self.classifier.fit(x, y)
        if self.settings["features"] == "projection":
            dim = min(int(self.settings["projection_dim"]), x.shape[1] - 1)
            if dim < 1:
                raise ValueError(f"TF-IDF projection: only {x.shape[1]} TF-IDF columns, too few to project")
            self.projection = TruncatedSVD(dim, random_state=int(self.settings["seed"])).fit(x)
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities [n, classes] in ``classes`` order."""
        proba = np.zeros((len(texts), len(self.classes)))
        proba[:, self.classifier.classes_] = self.classifier.predict_proba(self._matrix(texts))
        return proba

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Predicted class indices."""
        return self.predict_proba(texts).argmax(axis=1)

    @property
    def feature_dim(self) -> int:
        if self.settings["features"] == "projection":
            return int(self.projection.n_components)
        return len(self.classes)

    def features(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``{"sentence": float32 [n, feature_dim]}``: log-probabilities or the SVD projection."""
        if self.settings["features"] == "projection":
            values = self.projection.transform(self._matrix(texts))
        else:
            values = np.log(np.clip(self.predict_proba(texts), 1e-7, 1.0))
        return {"sentence": np.asarray(values, dtype=np.float32)}

    def metadata(self) -> dict[str, Any]:
        """What the features are, for the feature files' metadata."""
        what = (
            f"truncated SVD ({self.feature_dim}-d) of the TF-IDF vector, fitted on the text training split"
            if self.settings["features"] == "projection"
            else "log-probability of each class (task.classes order) from the logistic regression"
        )
        return {
            "model": "tefe/tfidf",
            "preprocessing": {k: self.settings[k] for k in ("lowercase", "word_ngrams", "char_ngrams", "min_df")},
            "sentence": what,
            "tfidf_columns": int(sum(len(v.vocabulary_) for v in self.vectorizers)),
        }

    def training_summary(self) -> dict[str, Any]:
        """Sizes learnt from the training split, for metrics.json."""
        return {"tfidf_columns": int(sum(len(v.vocabulary_) for v in self.vectorizers))}

    # --- storage ---
    def save(self, directory: str | os.PathLike) -> None:
        """Write the fitted backend into ``directory`` (atomically): the settings and classes as JSON, the
        fitted vectorizers, classifier and projection as a skops file (their text preprocessor, a
        function, is rebuilt from the settings on load), and the directory's SHA256SUMS."""
        fitted = {"vectorizers": [copy.copy(v) for v in self.vectorizers]}
        for vectorizer in fitted["vectorizers"]:
            vectorizer.preprocessor = None
        fitted.update(classifier=self.classifier, projection=self.projection)
        with atomic_path(directory, is_dir=True) as tmp:
            write_json(tmp / SETTINGS_FILE, {"format": FORMAT, "settings": self.settings, "classes": self.classes})
            save_estimator(fitted, tmp / MODEL_FILE, record=False)
            record_checksum(tmp)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> TfidfBackend:
        """A backend written by :meth:`save` (checked against the directory's SHA256SUMS first)."""
        path = Path(directory) / SETTINGS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no TF-IDF model (rule train_tefe_backend writes it)")
        verify_checksum(directory)
        payload = read_json(path)
        if payload.get("format") != FORMAT:
            raise ValueError(f"{path}: not a TEFE TF-IDF model (expected format {FORMAT!r})")
        backend = cls(payload["settings"], payload["classes"])
        fitted = load_estimator(Path(directory) / MODEL_FILE, checked=False)
        for vectorizer, empty in zip(backend.vectorizers, fitted["vectorizers"], strict=True):
            empty.preprocessor = vectorizer.preprocessor
        backend.vectorizers = fitted["vectorizers"]
        backend.classifier, backend.projection = fitted["classifier"], fitted["projection"]
        return backend
