"""The transformer text backend: a pretrained encoder (transformers AutoModel + AutoTokenizer).

``tefe.transformer.model`` is a hub id or a local ``save_pretrained`` directory (a PhoBERT or
multilingual-E5 style checkpoint), resolved through :mod:`workflow_scripts.common.hub`: a
local directory or a cached copy loads offline; otherwise an unreachable hub raises
:class:`~workflow_scripts.common.hub.ModelUnavailableError` at once, saying how to provide a
local directory. Nothing is downloaded when the hub is unreachable.

Two modes (``tefe.transformer.mode``):

* ``mean_pool``: the encoder stays frozen; the features are the masked mean of its last hidden
  states. A logistic regression (standardised features, fitted on the training split only)
  gives the class predictions for the dev scores and the TEFE table.
* ``finetune``: a classification head (dropout + linear) over the masked mean is trained with
  the encoder on the training split; after each epoch the selection (dev) split is scored and
  the best epoch's weights are kept (early stopping with ``patience``). The features are the
  pooled states of the fine-tuned encoder; predictions come from its head.

Features (the features contract, :mod:`workflow_scripts.common.features`): ``sentence`` (the
masked mean of the last hidden states, so it equals ``mean``) and ``mean`` / ``var`` / ``max`` /
``min`` over the token states at the attention mask's positions (special tokens included),
width = the encoder's hidden size. :meth:`TransformerBackend.token_states` gives the same token
states per text for the sequence contract (:mod:`workflow_scripts.common.sequences`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workflow_scripts.common.checksums import record_checksum, verify_checksum
from workflow_scripts.common.devices import resolve_device
from workflow_scripts.common.files import atomic_path, read_json, write_json
from workflow_scripts.common.hub import resolve_transformers_model
from workflow_scripts.common.model_files import load_estimator, save_estimator
from workflow_scripts.common.seeding import seed_everything
from workflow_scripts.common.training import Stopping, class_weight_vector, split_scores, train_with_early_stopping
from workflow_scripts.tefe.models import STATISTICS, batch_indices, token_statistics
from workflow_scripts.tefe.text import _pyvi_tokenizer, normalize_text

log = logging.getLogger(__name__)

FORMAT = "dfat-tefe-transformer-2"  # 2: the classifier as skops, the directory's SHA256SUMS
SETTINGS_FILE = "backend.json"
CLASSIFIER_FILE = "classifier.skops"
ENCODER_DIR = "encoder"
HEAD_FILE = "head.pt"


def transformer_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the validated tefe.transformer block (defaults and checks: schemas/tefe.schema.yaml)."""
    return {**config, "finetune": dict(config["finetune"])}


def _linear_classifier(settings: Mapping[str, Any]):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(),
        LogisticRegression(
            C=float(settings["C"]),
            class_weight="balanced" if settings["class_weight"] == "balanced" else None,
            max_iter=2000,
            random_state=int(settings["seed"]),
        ),
    )


class TransformerBackend:
    """A pretrained transformer encoder, frozen (mean-pooled) or fine-tuned with a classification head."""

    name = "transformer"
    statistics = STATISTICS

    def __init__(self, config: Mapping[str, Any], classes: Sequence[str], threads: int = 1) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.settings = transformer_settings(config)
        self.classes = list(classes)
        torch.set_num_threads(max(1, int(threads)))
        self.device = resolve_device(self.settings["device"])
        self.source = resolve_transformers_model(self.settings["model"], key="tefe.transformer.model")
        self.tokenizer = AutoTokenizer.from_pretrained(self.source)
        self.encoder = AutoModel.from_pretrained(self.source).to(self.device).eval()
        self.head: torch.nn.Module | None = None
        self.classifier = None
        self.summary: dict[str, Any] = {}

    # --- encoding ---
    @property
    def feature_dim(self) -> int:
        return int(self.encoder.config.hidden_size)

    def prepare(self, texts: Sequence[str]) -> list[str]:
        """Texts as the encoder reads them: NFC, optional lowercase, optional pyvi word segmentation."""
        out = []
        for text in texts:
            text = normalize_text(text if isinstance(text, str) else "", bool(self.settings["lowercase"]))
            if self.settings["segmentation"] == "pyvi" and text:
                text = _pyvi_tokenizer().tokenize(text)
            out.append(text)
        return out

    def _encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Last hidden states [batch, time, hidden] and the attention mask (bool) of one batch."""
        batch = self.tokenizer(
            self.prepare(texts),
            padding=True,
            truncation=True,
            max_length=int(self.settings["max_length"]),
            return_tensors="pt",
        )
        batch = {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
        states = self.encoder(**batch).last_hidden_state
        return states, batch["attention_mask"].bool()

    @staticmethod
    def _pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask[:, :, None].to(states.dtype)
        return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    @torch.no_grad()
    def _batches(self, texts: Sequence[str]) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(row indices, states, mask) per batch of ``texts``, in eval mode."""
        self.encoder.eval()
        for rows in batch_indices(len(texts), int(self.settings["batch_size"])):
            states, mask = self._encode([texts[int(r)] for r in rows])
            yield rows, states.float(), mask

    def features(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``sentence`` (masked mean) and mean / var / max / min of the token states, float32 [n, hidden]."""
        texts = list(texts)
        out = {s: np.zeros((len(texts), self.feature_dim), np.float32) for s in self.statistics}
        for rows, states, mask in self._batches(texts):
            stats = token_statistics(states, mask)
            stats["sentence"] = stats["mean"]
            for name in self.statistics:
                out[name][rows.numpy()] = stats[name].cpu().numpy()
        return out

    def token_states(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Per text, the ``(tokens, hidden)`` last hidden states at the attention mask's positions."""
        texts = list(texts)
        out: list[np.ndarray] = [np.zeros((0, self.feature_dim), np.float32)] * len(texts)
        for rows, states, mask in self._batches(texts):
            states = states.cpu().numpy()
            lengths = mask.sum(dim=1).cpu().numpy()
            for i, row in enumerate(rows.tolist()):
                out[row] = np.ascontiguousarray(states[i, : int(lengths[i])], dtype=np.float32)
        return out

    # --- fitting ---
    def fit(
        self, texts: Sequence[str], y: np.ndarray, dev: tuple[Sequence[str], np.ndarray] | None = None
    ) -> TransformerBackend:
        """Fit on the training texts and class indices; ``dev`` (the selection split) only stops fine-tuning."""
        y = np.asarray(y, dtype=np.int64)
        present = set(y.tolist())
        if len(present) < 2:
            raise ValueError(f"transformer training needs two classes in the training split, got {sorted(present)}")
        seed_everything(int(self.settings["seed"]))
        if self.settings["mode"] == "finetune":
            if dev is None:
                raise ValueError("tefe.transformer mode finetune needs the selection (dev) split for early stopping")
            self._finetune(list(texts), y, (list(dev[0]), np.asarray(dev[1], dtype=np.int64)))
        else:
            self.classifier = _linear_classifier(self.settings).fit(self.features(texts)["sentence"], y)
        return self

    def _new_head(self) -> torch.nn.Module:
        """The classification head of finetune: dropout and a linear layer over the pooled states."""
        dropout = float(self.settings["finetune"]["dropout"])
        linear = torch.nn.Linear(self.feature_dim, len(self.classes))
        return torch.nn.Sequential(torch.nn.Dropout(dropout), linear).to(self.device)

    def _finetune(self, texts: list[str], y: np.ndarray, dev: tuple[list[str], np.ndarray]) -> None:
        cfg = self.settings["finetune"]
        n_classes = len(self.classes)
        self.head = self._new_head()
        weights = class_weight_vector(y, n_classes, cfg["class_weights"], self.classes)
        loss_weights = None if weights is None else weights.to(self.device)
        parameters = [*self.encoder.parameters(), *self.head.parameters()]
        optimizer = torch.optim.AdamW(
            parameters, lr=float(cfg["learning_rate"]), weight_decay=float(cfg["weight_decay"])
        )
        generator = torch.Generator().manual_seed(int(self.settings["seed"]))
        y_t = torch.from_numpy(y)

        def batch_losses() -> Iterator[tuple[torch.Tensor, int]]:
            for rows in batch_indices(len(texts), int(cfg["batch_size"]), generator):
                states, mask = self._encode([texts[int(r)] for r in rows])
                logits = self.head(self._pool(states, mask))
                yield (
                    torch.nn.functional.cross_entropy(logits, y_t[rows].to(self.device), weight=loss_weights),
                    len(rows),
                )

        # Encoder and head train, and are kept at their best epoch, together.
        model = torch.nn.ModuleDict({"encoder": self.encoder, "head": self.head})
        # finetune has no min_delta: any improvement counts.
        stopping = Stopping(
            int(cfg["epochs"]), int(cfg["patience"]), cfg["monitor"], 0.0, float(cfg["grad_clip"] or 0.0)
        )
        progress = train_with_early_stopping(
            model,
            optimizer,
            stopping,
            batch_losses,
            lambda: self._dev_scores(*dev, loss_weights),
            generator,
            "transformer",
            "dev",
            clip=parameters,
        )
        self.encoder.eval()
        self.head.eval()
        self.summary = {
            "best_epoch": progress.best_epoch,
            "epochs_run": len(progress.history),
            "history": progress.history,
        }

    def _dev_scores(self, texts: list[str], y: np.ndarray, weights: torch.Tensor | None) -> dict[str, float]:
        """Loss and WA / UA / WF1 of the head on the selection split (eval mode, no gradients)."""
        logits = torch.from_numpy(self._head_logits(texts))
        loss = torch.nn.functional.cross_entropy(
            logits, torch.from_numpy(y), weight=None if weights is None else weights.cpu()
        )
        return {"loss": float(loss), **split_scores(y, logits.argmax(dim=1).numpy(), len(self.classes))}

    @torch.no_grad()
    def _head_logits(self, texts: Sequence[str]) -> np.ndarray:
        self.head.eval()
        out = np.zeros((len(texts), len(self.classes)), np.float32)
        for rows, states, mask in self._batches(list(texts)):
            out[rows.numpy()] = self.head(self._pool(states, mask)).float().cpu().numpy()
        return out

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Predicted class indices (the fine-tuned head, or the logistic regression on the pooled states)."""
        texts = list(texts)
        if self.head is not None:
            return self._head_logits(texts).argmax(axis=1)
        if self.classifier is None:
            raise RuntimeError("transformer backend: predict() before fit()")
        return np.asarray(self.classifier.predict(self.features(texts)["sentence"]), dtype=np.int64)

    # --- description ---
    def metadata(self) -> dict[str, Any]:
        """What the features are, for the feature files' metadata."""
        mode = self.settings["mode"]
        return {
            "model": f"tefe/transformer/{mode}",
            "pretrained": self.settings["model"],
            "mode": mode,
            "hidden_size": self.feature_dim,
            "preprocessing": {k: self.settings[k] for k in ("lowercase", "segmentation", "max_length")},
            "sentence": "masked mean of the last hidden states"
            + (" of the fine-tuned encoder" if mode == "finetune" else " of the frozen encoder")
            + " (equals mean)",
            "token_states": "last hidden states at the attention mask's positions (special tokens included)",
        }

    def training_summary(self) -> dict[str, Any]:
        """Mode, width and (finetune) the per-epoch history, for metrics.json."""
        return {"mode": self.settings["mode"], "hidden_size": self.feature_dim, **self.summary}

    # --- storage ---
    def save(self, directory: str | os.PathLike) -> None:
        """Write the fitted backend into ``directory`` (atomically).

        mean_pool: the settings and the logistic regression (the frozen encoder stays where
        ``model`` points); finetune: also the fine-tuned encoder, its tokenizer and the head.
        """
        with atomic_path(directory, is_dir=True) as tmp:
            tmp = Path(tmp)
            write_json(tmp / SETTINGS_FILE, {"format": FORMAT, "settings": self.settings, "classes": self.classes})
            if self.head is not None:
                self.encoder.save_pretrained(tmp / ENCODER_DIR)
                self.tokenizer.save_pretrained(tmp / ENCODER_DIR)
                torch.save(self.head.state_dict(), tmp / HEAD_FILE)
            else:
                save_estimator(self.classifier, tmp / CLASSIFIER_FILE, record=False)
            record_checksum(tmp)

    @classmethod
    def load(cls, directory: str | os.PathLike, threads: int = 1) -> TransformerBackend:
        """A backend written by :meth:`save` (checked against the directory's SHA256SUMS first)."""
        directory = Path(directory)
        path = directory / SETTINGS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no transformer backend (rule train_tefe_backend writes it)")
        verify_checksum(directory)
        payload = read_json(path)
        if payload.get("format") != FORMAT:
            raise ValueError(f"{path}: not a TEFE transformer backend (expected format {FORMAT!r})")
        settings = dict(payload["settings"])
        finetuned = settings["mode"] == "finetune"
        if finetuned:
            settings["model"] = str((directory / ENCODER_DIR).resolve())
        backend = cls(settings, payload["classes"], threads)
        backend.settings["model"] = payload["settings"]["model"]
        if finetuned:
            backend.head = backend._new_head()
            state = torch.load(directory / HEAD_FILE, map_location=backend.device, weights_only=True)
            backend.head.load_state_dict(state)
            backend.head.eval()
        else:
            backend.classifier = load_estimator(directory / CLASSIFIER_FILE, checked=False)
        return backend
