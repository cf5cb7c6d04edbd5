"""The four TEFE architectures of the DFAT paper (section 4.3.2) over a frozen word embedding.

Every encoder maps token ids to

* a sentence vector (the layer before the output, the paper's text feature), and
* token states: the encoder's last sequence layer at every non-padding position, the same
  width as the sentence vector, from which feature extraction takes mean / var / max / min.

================  ==========================================  ===================================
architecture      sentence vector                             token states
================  ==========================================  ===================================
CNN               max over positions of the token states      the four Conv1D branches (BN, ReLU)
                                                              concatenated, one row per window start
LSTM              final hidden state at the last real token   LSTM outputs
BiLSTM            final forward state ++ final backward state BiLSTM outputs (forward ++ backward)
BiLSTM_CNN        max over positions of the token states      the Conv1D branches over the BiLSTM
================  ==========================================  ===================================

Padding never leaks into a result: recurrent layers run on packed sequences; the Conv1D
branches right-pad each sequence with zeros (k - 1 positions, so every window starting at a
real token exists), normalise only windows that start at a real token (masked BatchNorm) and
pool only over those. Then Dropout and one dense layer over the task's classes.

Checkpoints (``model.pt``) hold the architecture, its settings, the classes and all weights,
the frozen embedding included; :func:`load_encoder` pairs one with its ``vocab.json``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from workflow_scripts.common.checksums import write_checked
from workflow_scripts.common.names import TEFE_ARCHITECTURES
from workflow_scripts.tefe.text import Vocabulary

CHECKPOINT_FORMAT = "dfat-tefe-1"
# The text features of every TEFE encoder and text backend: the sentence vector and statistics of the token states.
STATISTICS = ("sentence", "mean", "var", "max", "min")

# Totals the paper reports (Keras, with the paper's vocabulary inside the embedding).
PAPER_TOTAL_PARAMETERS = {"CNN": 8.56e6, "LSTM": 12.23e6, "BiLSTM": 10.13e6, "BiLSTM_CNN": 8.82e6}

# The hyperparameters of each architecture (tefe.models.<arch>; schemas/tefe.schema.yaml holds their
# defaults, the paper's sizes), in the order a checkpoint records them.
MODEL_KEYS: dict[str, tuple[str, ...]] = {
    "CNN": ("filters", "kernel_sizes", "dropout"),
    "LSTM": ("units", "dropout"),
    "BiLSTM": ("units", "dropout"),
    "BiLSTM_CNN": ("units", "filters", "kernel_sizes", "dropout"),
}


def model_settings(arch: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """An architecture's hyperparameters (tefe.models.<arch> as validated, without its training overrides)."""
    if arch not in MODEL_KEYS:
        raise ValueError(f"unknown TEFE architecture {arch!r}; expected one of {TEFE_ARCHITECTURES}")
    given, expected = set(config) - {"training"}, set(MODEL_KEYS[arch])
    for problem, keys in (("unknown", given - expected), ("missing", expected - given)):
        if keys:
            raise ValueError(f"tefe.models.{arch}: {problem} key(s) {sorted(keys)}; expected {sorted(expected)}")
    return {key: config[key] for key in MODEL_KEYS[arch]}


def length_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """Boolean [batch, width]: True at positions before each sequence's length."""
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


class ConvBranches(nn.Module):
    """Parallel Conv1D branches (one kernel size each) with masked BatchNorm and ReLU, concatenated."""

    def __init__(self, in_dim: int, filters: int, kernel_sizes: Sequence[int]) -> None:
        super().__init__()
        self.kernel_sizes = [int(k) for k in kernel_sizes]
        self.convs = nn.ModuleList(nn.Conv1d(in_dim, filters, k) for k in self.kernel_sizes)
        self.norms = nn.ModuleList(nn.BatchNorm1d(filters) for _ in self.kernel_sizes)
        self.out_dim = filters * len(self.kernel_sizes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [batch, time, in_dim], mask [batch, time] -> [batch, time, out_dim], zero where masked."""
        x = x.transpose(1, 2)
        branches = []
        for k, conv, norm in zip(self.kernel_sizes, self.convs, self.norms, strict=True):
            y = conv(nn.functional.pad(x, (0, k - 1))).transpose(1, 2)  # one window per start position
            normed = torch.zeros_like(y)
            # BatchNorm statistics over real windows only, so padding length changes nothing.
            normed[mask] = norm(y[mask])
            branches.append(torch.relu(normed))
        return torch.cat(branches, dim=2) * mask[:, :, None]


def masked_max(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over the unmasked positions of [batch, time, dim]."""
    return states.masked_fill(~mask[:, :, None], float("-inf")).amax(dim=1)


def token_statistics(states: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """mean / var (population) / max / min over the unmasked positions of [batch, time, dim]."""
    weights = mask[:, :, None].to(states.dtype)
    count = weights.sum(dim=1).clamp(min=1.0)
    mean = (states * weights).sum(dim=1) / count
    var = (((states - mean[:, None, :]) ** 2) * weights).sum(dim=1) / count
    blocked = ~mask[:, :, None]
    return {
        "mean": mean,
        "var": var,
        "max": states.masked_fill(blocked, float("-inf")).amax(dim=1),
        "min": states.masked_fill(blocked, float("inf")).amin(dim=1),
    }


class TextEncoder(nn.Module):
    """Frozen embedding -> architecture body -> Dropout -> dense over classes."""

    def __init__(
        self,
        arch: str,
        embedding: torch.Tensor,
        n_classes: int,
        settings: Mapping[str, Any],
        trainable_embedding: bool = False,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.settings = model_settings(arch, settings)
        s = self.settings
        # Frozen (the paper): from_pretrained(freeze=True) sets requires_grad=False, so no optimiser
        # touches it. trainable_embedding (tefe.embedding.trainable) lets training update it (a copy:
        # the caller's matrix is never changed).
        self.embedding = nn.Embedding.from_pretrained(
            embedding.float().clone(), freeze=not trainable_embedding, padding_idx=0
        )
        dim = embedding.shape[1]
        self.rnn: nn.LSTM | None = None
        self.conv: ConvBranches | None = None
        if arch == "CNN":
            self.conv = ConvBranches(dim, s["filters"], s["kernel_sizes"])
            self.feature_dim = self.conv.out_dim
        elif arch in ("LSTM", "BiLSTM", "BiLSTM_CNN"):
            bidirectional = arch != "LSTM"
            self.rnn = nn.LSTM(dim, s["units"], batch_first=True, bidirectional=bidirectional)
            self.feature_dim = s["units"] * (2 if bidirectional else 1)
            if arch == "BiLSTM_CNN":
                self.conv = ConvBranches(self.feature_dim, s["filters"], s["kernel_sizes"])
                self.feature_dim = self.conv.out_dim
        else:
            raise ValueError(f"unknown TEFE architecture {arch!r}; expected one of {TEFE_ARCHITECTURES}")
        self.dropout = nn.Dropout(s["dropout"])
        self.output = nn.Linear(self.feature_dim, n_classes)

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ids [batch, time], lengths [batch] -> (sentence [batch, dim], token states [batch, time, dim], mask)."""
        mask = length_mask(lengths, ids.shape[1])
        # Zero past each end whatever the <PAD> row holds: windows running off the end see zeros.
        x = self.embedding(ids) * mask[:, :, None]
        sentence = None
        if self.rnn is not None:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, (h_n, _) = self.rnn(packed)
            x, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
            # h_n: [directions, batch, units]; for a BiLSTM forward (last token) ++ backward (first token).
            sentence = torch.cat(list(h_n), dim=1)
        if self.conv is not None:
            x = self.conv(x, mask)
            sentence = masked_max(x, mask)
        return sentence, x, mask

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Class logits [batch, n_classes]."""
        sentence, _, _ = self.encode(ids, lengths)
        return self.output(self.dropout(sentence))


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Trainable and frozen parameter counts of a model (BatchNorm running statistics are buffers)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return {"trainable": trainable, "frozen": frozen, "total": trainable + frozen}


def _lstm_params(in_dim: int, units: int, directions: int, biases: int) -> int:
    # Per direction, four gates of (input + recurrent weights + biases); PyTorch has two bias vectors.
    return directions * 4 * (units * (in_dim + units) + biases * units)


def _conv_params(in_dim: int, filters: int, kernel_sizes: Sequence[int], norm_per_channel: int) -> int:
    return sum(filters * (in_dim * k + 1) + norm_per_channel * filters for k in kernel_sizes)


def non_embedding_parameters(
    arch: str, embedding_dim: int, n_classes: int, settings: Mapping[str, Any], keras: bool = False
) -> int:
    """Parameters outside the embedding, by formula.

    ``keras=False``: this PyTorch implementation (two LSTM bias vectors; BatchNorm weight and
    bias). ``keras=True``: as Keras counts them (one LSTM bias; BatchNorm's moving mean and
    variance counted too), for comparing with the paper's totals.
    """
    s = model_settings(arch, settings)
    biases, norm = (1, 4) if keras else (2, 2)
    count = 0
    width = embedding_dim
    if arch in ("LSTM", "BiLSTM", "BiLSTM_CNN"):
        directions = 1 if arch == "LSTM" else 2
        count += _lstm_params(width, s["units"], directions, biases)
        width = s["units"] * directions
    if arch in ("CNN", "BiLSTM_CNN"):
        count += _conv_params(width, s["filters"], s["kernel_sizes"], norm)
        width = s["filters"] * len(s["kernel_sizes"])
    return count + width * n_classes + n_classes


def expected_parameter_counts(
    arch: str, vocab_size: int, embedding_dim: int, n_classes: int, settings: Mapping[str, Any]
) -> dict[str, int]:
    """Trainable and frozen (embedding) parameter counts of :class:`TextEncoder`, by formula."""
    trainable = non_embedding_parameters(arch, embedding_dim, n_classes, settings)
    frozen = vocab_size * embedding_dim
    return {"trainable": trainable, "frozen": frozen, "total": trainable + frozen}


def paper_comparison(
    arch: str, vocab_size: int, embedding_dim: int, n_classes: int, settings: Mapping[str, Any]
) -> dict[str, Any]:
    """Our counts beside the paper's total, and the vocabulary size the paper's total implies.

    The implied vocabulary is (paper total - Keras non-embedding count) / embedding width; a
    value that disagrees with the other architectures' means the paper's layer sizes differ.
    """
    ours = expected_parameter_counts(arch, vocab_size, embedding_dim, n_classes, settings)
    keras_body = non_embedding_parameters(arch, embedding_dim, n_classes, settings, keras=True)
    paper = PAPER_TOTAL_PARAMETERS[arch]
    return {**ours, "paper_total": int(paper), "paper_implied_vocabulary": round((paper - keras_body) / embedding_dim)}


# --- running and storing encoders ---


def batch_indices(n: int, batch_size: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Batches of row indices (shuffled with ``generator``); a last batch of one row joins the previous.

    (BatchNorm cannot normalise a one-row batch in training.)
    """
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    chunks = list(torch.split(order, batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        last = chunks.pop()
        chunks[-1] = torch.cat([chunks[-1], last])
    return chunks


def bucketed_batch_indices(
    lengths: np.ndarray | torch.Tensor, batch_size: int, generator: torch.Generator, bucket_batches: int = 50
) -> list[torch.Tensor]:
    """Shuffled batches of texts of similar length (less padding, since each batch is cut to its longest text).

    The rows are shuffled, cut into buckets of ``bucket_batches`` batches, sorted by length
    within each bucket (stable, so ties keep the shuffled order) and batched; the batch order is
    shuffled again. Every row appears exactly once; a last batch of one row joins the previous.
    """
    lengths = torch.as_tensor(lengths)
    order = torch.randperm(len(lengths), generator=generator)
    span = batch_size * bucket_batches
    batches: list[torch.Tensor] = []
    for start in range(0, len(order), span):
        bucket = order[start : start + span]
        bucket = bucket[torch.sort(lengths[bucket], stable=True).indices]
        batches += list(torch.split(bucket, batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        last = batches.pop()
        batches[-1] = torch.cat([batches[-1], last])
    permutation = torch.randperm(len(batches), generator=generator)
    return [batches[int(i)] for i in permutation]


def trim_batch(ids: torch.Tensor, lengths: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows' ids cut to their longest sequence, and their lengths."""
    # Padding beyond the batch's longest sequence changes no result (masked layers), only the cost.
    batch_lengths = lengths[rows]
    return ids[rows, : int(batch_lengths.max())], batch_lengths


@torch.no_grad()
def predict_logits(
    model: TextEncoder, ids: np.ndarray, lengths: np.ndarray, batch_size: int, device: torch.device
) -> np.ndarray:
    """Class logits [n, classes] in eval mode."""
    model.eval()
    ids_t, lengths_t = torch.from_numpy(ids), torch.from_numpy(lengths)
    out = []
    for rows in batch_indices(len(ids), batch_size):
        x, n = trim_batch(ids_t, lengths_t, rows)
        out.append(model(x.to(device), n.to(device)).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.output.out_features), np.float32)


def save_checkpoint(path: str | os.PathLike, model: TextEncoder, classes: Sequence[str]) -> None:
    """Write the model (architecture, settings, classes, weights including the frozen embedding)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "arch": model.arch,
        "settings": model.settings,
        "classes": list(classes),
        "embedding_shape": list(model.embedding.weight.shape),
        "state_dict": model.state_dict(),
    }
    write_checked(path, lambda tmp: torch.save(payload, tmp))  # with its SHA-256 record (predict checks it)


def read_checkpoint(path: str | os.PathLike, expected_format: str, what: str) -> dict[str, Any]:
    """The payload of a torch checkpoint of ``expected_format`` (CPU, weights only); a clear error otherwise."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a bad file
        raise ValueError(f"{path}: cannot read the {what} checkpoint ({error})") from error
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        raise ValueError(f"{path}: not a {what} checkpoint (expected format {expected_format!r})")
    return payload


def load_encoder(
    model_path: str | os.PathLike, vocab_path: str | os.PathLike
) -> tuple[TextEncoder, Vocabulary, dict[str, Any]]:
    """A trained encoder (eval mode, CPU), its vocabulary and checkpoint header (arch, settings, classes)."""
    payload = read_checkpoint(model_path, CHECKPOINT_FORMAT, "TEFE")
    vocab = Vocabulary.load(vocab_path)
    rows, dim = payload["embedding_shape"]
    if rows != len(vocab):
        raise ValueError(f"{vocab_path}: {len(vocab)} tokens, but the embedding of {model_path} has {rows} rows")
    model = TextEncoder(payload["arch"], torch.zeros(rows, dim), len(payload["classes"]), payload["settings"])
    model.load_state_dict(payload["state_dict"])
    header = {k: payload[k] for k in ("arch", "settings", "classes", "embedding_shape")}
    return model.eval(), vocab, header
