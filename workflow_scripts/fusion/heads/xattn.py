"""Fusion variant ``xattn``: the cross-modal attention head of seed paper 004 (rule train_xattn).

Audio branch: frame-level acoustic features (standardised with training-split statistics,
averaged over ``frame_stride`` consecutive frames) -> bidirectional LSTM -> projection to
``d_model``; its temporal mean pooling is the utterance's audio vector. Text branch: the
selected TEFE encoder's token states projected to ``d_model`` by one dense layer (the paper:
DeBERTa-v3 states, 768 -> 256). Fusion: ``heads``-head cross-modal attention with the audio
frames as queries over the text tokens; the attended frames (residual + LayerNorm) are mean
pooled and concatenated with the audio vector -> two-layer MLP -> classes. Dropout, gradient
clipping and AdamW as configured (the paper: 0.3, clipping, batch 64).

Ablation switches of the paper's Table 2: ``temporal: mean`` (no BiLSTM: plain mean pooling of
the projected frames), ``fusion: concat`` (no cross-attention: the mean text vector is
concatenated instead) and ``text_encoder``: ``frozen`` reads the selected TEFE encoder's token
states as features (rule extract_tefe_tokens); ``finetune`` loads that encoder from its
checkpoint into the head, feeds it the token ids of the ASR hypotheses (its own vocabulary) and
trains its layers with the head, at ``text_learning_rate`` (layer-wise AdamW, the paper: 2e-5 for
the pretrained text layers, ``learning_rate`` for the rest). Its word embedding stays frozen, as
in TEFE training; its class output layer is unused. Before training the fine-tuned branch gives
exactly the frozen token states.

Trained by :mod:`workflow_scripts.fusion.heads.trainer` on the training split with early
stopping on the selection split; the test splits are read only after training, to predict.
Writes the variant's metrics (the evaluate_variant document shape) and probabilities.
"""

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from workflow_scripts.common import names
from workflow_scripts.common.rule import run_rule
from workflow_scripts.common.sequences import SequenceFile, pad_batch
from workflow_scripts.fusion.heads import outputs
from workflow_scripts.fusion.heads.prediction import SequenceInputs, check_widths
from workflow_scripts.fusion.heads.trainer import fit, run_fingerprint
from workflow_scripts.tefe.extract import read_transcript_texts
from workflow_scripts.tefe.models import TextEncoder, load_encoder
from workflow_scripts.tefe.text import Vocabulary

HEAD = "xattn"
TITLE = "Cross-modal attention (seed 004)"
CHECKPOINT_FORMAT = "dfat-head-xattn-1"
# The transcript column a fine-tuned text encoder reads (the ASR hypotheses, as extract_tefe_tokens).
TRANSCRIPT_COLUMN = names.TEFE_FEATURE_SETS["features"]
# The model's keys of the head's block (their defaults: schemas/fusion.schema.yaml, fusion.heads.xattn).
MODEL_KEYS = (
    "temporal",
    "fusion",
    "lstm_units",
    "d_model",
    "heads",
    "mlp_hidden",
    "dropout",
    "frame_stride",
    "text_encoder",
    "text_learning_rate",
)


def model_settings(block: Mapping[str, Any]) -> dict[str, Any]:
    """The model keys of the head's block (validated, defaults filled), checked."""
    s = {key: block[key] for key in MODEL_KEYS}
    if s["temporal"] not in ("bilstm", "mean"):
        raise ValueError(f"fusion.heads.xattn.temporal {s['temporal']!r}, expected bilstm or mean")
    if s["fusion"] not in ("attention", "concat"):
        raise ValueError(f"fusion.heads.xattn.fusion {s['fusion']!r}, expected attention or concat")
    if s["text_encoder"] not in ("frozen", "finetune"):
        raise ValueError(f"fusion.heads.xattn.text_encoder {s['text_encoder']!r}, expected frozen or finetune")
    if int(s["d_model"]) % int(s["heads"]):
        raise ValueError(f"fusion.heads.xattn: d_model {s['d_model']} is not divisible by heads {s['heads']}")
    return s


def length_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask[:, :, None].to(states.dtype)
    return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class CrossModalAttentionHead(nn.Module):
    """BiLSTM audio branch, projected text tokens, multi-head cross-modal attention, MLP."""

    def __init__(
        self,
        acoustic_dim: int,
        text_dim: int,
        n_classes: int,
        settings: Mapping[str, Any],
        audio_mean: np.ndarray | None = None,
        audio_std: np.ndarray | None = None,
        text_encoder: TextEncoder | None = None,
    ) -> None:
        super().__init__()
        s = self.settings = model_settings(settings)
        d = int(s["d_model"])
        # text_encoder: finetune -> the TEFE encoder trained inside the head (token ids in);
        # frozen -> None (token states in). Its embedding stays frozen; its class layer is unused.
        if (text_encoder is not None) != (s["text_encoder"] == "finetune"):
            raise ValueError("fusion.heads.xattn: text_encoder finetune needs the TEFE encoder (and frozen none)")
        self.text_encoder = text_encoder
        if text_encoder is not None:
            text_dim = text_encoder.feature_dim
            text_encoder.output.requires_grad_(False)
        mean = np.zeros(acoustic_dim, np.float32) if audio_mean is None else audio_mean
        std = np.ones(acoustic_dim, np.float32) if audio_std is None else audio_std
        self.register_buffer("audio_mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("audio_std", torch.as_tensor(std, dtype=torch.float32))
        self.lstm = None
        audio_out = acoustic_dim
        if s["temporal"] == "bilstm":
            self.lstm = nn.LSTM(acoustic_dim, int(s["lstm_units"]), batch_first=True, bidirectional=True)
            audio_out = 2 * int(s["lstm_units"])
        self.audio_proj = nn.Linear(audio_out, d)
        self.text_proj = nn.Linear(text_dim, d)
        self.attention = None
        if s["fusion"] == "attention":
            self.attention = nn.MultiheadAttention(d, int(s["heads"]), dropout=float(s["dropout"]), batch_first=True)
            self.norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(float(s["dropout"]))
        self.classifier = nn.Sequential(
            nn.Linear(2 * d, int(s["mlp_hidden"])),
            nn.ReLU(),
            nn.Dropout(float(s["dropout"])),
            nn.Linear(int(s["mlp_hidden"]), n_classes),
        )

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        audio, audio_len = batch["audio"], batch["audio_len"]
        text, text_len = batch["text"], batch["text_len"]
        audio_mask = length_mask(audio_len, audio.shape[1])
        text_mask = length_mask(text_len, text.shape[1])
        a = (audio - self.audio_mean) / self.audio_std
        if self.lstm is not None:
            packed = pack_padded_sequence(a, audio_len.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            a, _ = pad_packed_sequence(out, batch_first=True, total_length=audio.shape[1])
        a = self.audio_proj(a)
        if self.text_encoder is not None:
            _, text, _ = self.text_encoder.encode(text, text_len)
        t = self.text_proj(text)
        audio_vector = masked_mean(a, audio_mask)  # temporal mean pooling of the hidden states
        if self.attention is not None:
            attended, _ = self.attention(a, t, t, key_padding_mask=~text_mask, need_weights=False)
            other = masked_mean(self.norm(a + attended), audio_mask)
        else:
            other = masked_mean(t, text_mask)
        return self.classifier(self.dropout(torch.cat([audio_vector, other], dim=1)))

    def parameter_groups(self, learning_rate: float) -> list[dict[str, Any]]:
        """Layer-wise AdamW groups: the fine-tuned text encoder at ``text_learning_rate``, the rest at
        ``learning_rate`` (frozen parameters in neither)."""
        text = {id(p) for p in self.text_encoder.parameters()} if self.text_encoder is not None else set()
        trainable = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in trainable if id(p) not in text], "lr": float(learning_rate)}]
        if text:
            lr = float(self.settings["text_learning_rate"])
            groups.append({"params": [p for p in trainable if id(p) in text], "lr": lr})
        return groups

    def input_widths(self) -> dict[str, int]:
        """The width of the sequences each modality's input reads (text: the token states' width, which a
        fine-tuned text encoder computes itself from token ids)."""
        return {"acoustic": int(self.audio_mean.shape[0]), "text": int(self.text_proj.in_features)}


def downsample(matrix: np.ndarray, stride: int) -> np.ndarray:
    """Means of consecutive windows of ``stride`` frames (the last may be shorter)."""
    if stride <= 1:
        return matrix
    starts = np.arange(0, len(matrix), stride)
    counts = np.diff(np.append(starts, len(matrix)))[:, None]
    return (np.add.reduceat(matrix, starts, axis=0) / counts).astype(np.float32)


class TokenIds:
    """Token ids of a split's ASR hypotheses in a fine-tuned encoder's vocabulary, keyed by utt_id
    (the ``SequenceFile`` methods a :class:`SequenceSplit` reads; each row an id vector)."""

    def __init__(self, utt_ids: Sequence[str], texts: Sequence[str], vocab: Vocabulary, metadata: Mapping[str, Any]):
        self.utt_ids = list(utt_ids)
        self.ids, self.lengths = vocab.encode(list(texts))
        self.metadata = dict(metadata)
        self.index = {utt_id: row for row, utt_id in enumerate(self.utt_ids)}

    @classmethod
    def from_transcripts(cls, path: str, manifest: str, vocab: Vocabulary, metadata: Mapping[str, Any]) -> "TokenIds":
        frame = read_transcript_texts(path, TRANSCRIPT_COLUMN, manifest)  # exactly the manifest's utterances
        return cls(frame["utt_id"].tolist(), frame["text"].tolist(), vocab, metadata)

    def positions(self, utt_ids: Sequence[str], where: str = "") -> np.ndarray:
        missing = [u for u in utt_ids if u not in self.index]
        if missing:
            raise ValueError(f"{where}: no transcript for {len(missing)} utterance(s), e.g. {missing[:3]}")
        return np.array([self.index[u] for u in utt_ids], dtype=np.int64)

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Ids cut to the batch's longest text, and the lengths."""
        lengths = self.lengths[rows]
        return torch.from_numpy(self.ids[rows, : int(lengths.max())]), torch.from_numpy(lengths.astype(np.int64))


class SequenceSplit:
    """One split: acoustic and text sequence files aligned to the manifest's utt_ids, and its labels."""

    def __init__(
        self,
        acoustic: SequenceFile,
        text: SequenceFile | TokenIds,
        utt_ids: Sequence[str],
        labels: np.ndarray,
        stride: int,
        where: str,
    ) -> None:
        self.acoustic, self.text = acoustic, text
        self.utt_ids = list(utt_ids)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.stride = int(stride)
        self.audio_rows = acoustic.positions(self.utt_ids, where)
        self.text_rows = text.positions(self.utt_ids, where)

    def batches(self, rows: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
        for start in range(0, len(rows), batch_size):
            chunk = np.asarray(rows[start : start + batch_size])
            audio = [downsample(m, self.stride) for m in self.acoustic.read(self.audio_rows[chunk])]
            audio, audio_len = pad_batch(audio)
            if isinstance(self.text, TokenIds):
                text, text_len = self.text.batch(self.text_rows[chunk])
            else:
                text, text_len = map(torch.from_numpy, pad_batch(self.text.read(self.text_rows[chunk])))
            yield (
                chunk,
                {
                    "audio": torch.from_numpy(audio),
                    "audio_len": torch.from_numpy(audio_len),
                    "text": text,
                    "text_len": text_len,
                    "y": torch.from_numpy(self.labels[chunk]),
                },
            )

    def audio_statistics(self, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and standard deviation of the split's (downsampled) frames, streamed."""
        total, squares, count = None, None, 0
        for start in range(0, len(self.utt_ids), batch_size):
            for matrix in self.acoustic.read(self.audio_rows[start : start + batch_size]):
                m = downsample(matrix, self.stride).astype(np.float64)
                total = m.sum(axis=0) if total is None else total + m.sum(axis=0)
                squares = (m**2).sum(axis=0) if squares is None else squares + (m**2).sum(axis=0)
                count += len(m)
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
        return mean.astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32)


def open_sequences(path: str, in_memory_mb: float) -> SequenceFile:
    """A sequence file, loaded whole when its matrices fit in ``in_memory_mb``, else read per batch."""
    sequences = SequenceFile(path)
    if sequences.nbytes <= in_memory_mb * 2**20:
        sequences.load()
    return sequences


def load_head(path: str | os.PathLike) -> tuple[CrossModalAttentionHead, dict[str, Any], Vocabulary | None]:
    """A saved head (eval mode, CPU), its checkpoint header and (fine-tuned text) its vocabulary.

    The rule saves it with :func:`outputs.write_outputs`; with a fine-tuned text encoder the
    checkpoint's ``text_encoder`` entry holds the encoder's TEFE header (architecture, settings,
    classes, embedding shape) and vocabulary, so the file alone rebuilds it."""
    payload = outputs.read_head_checkpoint(path, CHECKPOINT_FORMAT, HEAD)
    encoder, vocab, header = None, None, payload.get("text_encoder")
    if header is not None:
        rows, dim = header["embedding_shape"]
        encoder = TextEncoder(header["arch"], torch.zeros(rows, dim), len(header["classes"]), header["settings"])
        vocab = Vocabulary(list(header["vocabulary"]["tokens"]), dict(header["vocabulary"]["settings"]))
    dims, classes = payload["dims"], payload["classes"]
    model = CrossModalAttentionHead(
        dims["acoustic"], dims["text"], len(classes), payload["settings"], text_encoder=encoder
    )
    model.load_state_dict(payload["state_dict"])
    return model.eval(), {k: payload[k] for k in outputs.CHECKPOINT_HEADER}, vocab


@torch.no_grad()
def predict_sequences(
    model: CrossModalAttentionHead,
    frames: Sequence[np.ndarray],
    text: Sequence[np.ndarray] | Sequence[str],
    vocab: Vocabulary | None = None,
) -> np.ndarray:
    """Class probabilities of utterances given as frame matrices and token-state matrices (frozen
    text) or transcripts (fine-tuned text, with the head's ``vocab``): predict's path."""
    model.eval()
    stride = int(model.settings["frame_stride"])
    audio, audio_len = pad_batch([downsample(np.asarray(m, np.float32), stride) for m in frames])
    if model.text_encoder is not None:
        ids = TokenIds([str(i) for i in range(len(text))], list(text), vocab, {})
        tokens, tokens_len = ids.batch(np.arange(len(text)))
    else:
        tokens, tokens_len = map(torch.from_numpy, pad_batch([np.asarray(m, np.float32) for m in text]))
    batch = {
        "audio": torch.from_numpy(audio),
        "audio_len": torch.from_numpy(audio_len),
        "text": tokens,
        "text_len": tokens_len,
    }
    return torch.softmax(model(batch).float(), dim=1).numpy().astype(np.float64)


class XattnPredictor:
    """A trained xattn variant for predict: its checkpoint over the SEFE frames of new audio and the
    TEFE token states of its transcripts (fine-tuned text encoder: the transcripts' token ids in the
    vocabulary saved with it)."""

    def __init__(
        self, model: CrossModalAttentionHead, classes: Sequence[str], inputs: SequenceInputs, vocab: Vocabulary | None
    ) -> None:
        self.model, self.classes, self.inputs, self.vocab = model, list(classes), inputs, vocab
        widths = model.input_widths()
        self.widths = widths if vocab is None else {"acoustic": widths["acoustic"]}

    def predict(self, audio: Sequence[str], transcripts: Sequence[str]) -> np.ndarray:
        """Class probabilities of audio files and their transcripts."""
        frames = self.inputs("acoustic", audio)
        text = list(transcripts) if self.vocab is not None else self.inputs("text", transcripts)
        check_widths({"acoustic": frames, **({} if self.vocab is not None else {"text": text})}, self.widths, "head")
        return predict_sequences(self.model, frames, text, self.vocab)


def load_predictor(path: str | os.PathLike, inputs: SequenceInputs) -> XattnPredictor:
    """predict's loader of a trained xattn variant (fusion/heads/registry.py): its saved checkpoint."""
    model, header, vocab = load_head(path)
    return XattnPredictor(model, header["classes"], inputs, vocab)


def train_and_evaluate(
    acoustic: Mapping[str, str],
    text: Mapping[str, str],
    manifests: Mapping[str, str],
    run: outputs.HeadRun,
    encoder: Mapping[str, str] | None = None,
) -> tuple[CrossModalAttentionHead, dict[str, Any], dict[str, Any], dict[str, tuple[list[str], np.ndarray]]]:
    """Train on the run's training split, stop early on its selection split; then predict every split.

    ``run`` names the result (the head, or one of its ablations: its block then holds the
    ablation's overrides) and holds the resume work dir. ``text`` holds per split the token-state sequence files
    (``text_encoder: frozen``) or the transcripts (``finetune``: ``encoder`` then names the TEFE
    encoder's ``model`` and ``vocab`` files).

    Returns the model, the training summary, the metrics document and split -> (utt_ids, probabilities).
    """
    block, classes, variant = run.block, list(run.classes), run.variant
    settings = model_settings(block)
    stride = int(settings["frame_stride"])
    memory = float(block["in_memory_mb"])
    tefe, vocab, header = None, None, None
    if settings["text_encoder"] == "finetune":
        if not encoder:
            raise ValueError(f"fusion.heads.{variant}: text_encoder finetune needs the TEFE encoder's model and vocab")
        tefe, vocab, header = load_encoder(encoder["model"], encoder["vocab"])
        header["vocabulary"] = {"tokens": list(vocab.tokens), "settings": dict(vocab.settings)}
        text_metadata = {"model": f"tefe/{header['arch']}", "checkpoint": str(encoder["model"]), "fine_tuned": True}

    def load(split: str) -> SequenceSplit:
        utt_ids, y = outputs.split_labels(manifests[split], classes, split)
        if tefe is not None:
            tokens = TokenIds.from_transcripts(text[split], manifests[split], vocab, text_metadata)
        else:
            tokens = open_sequences(text[split], memory)
        return SequenceSplit(
            open_sequences(acoustic[split], memory),
            tokens,
            utt_ids,
            y,
            stride,
            f"{manifests[split]}",
        )

    started = time.perf_counter()
    train, selection = load(run.train_split), load(run.selection_split)
    mean, std = train.audio_statistics()
    dims = {"acoustic": train.acoustic.dim, "text": tefe.feature_dim if tefe is not None else train.text.dim}

    def build() -> CrossModalAttentionHead:
        return CrossModalAttentionHead(dims["acoustic"], dims["text"], len(classes), settings, mean, std, tefe)

    files = [*acoustic.values(), *text.values(), *manifests.values(), *(encoder or {}).values()]
    fingerprint = run_fingerprint({**block, "variant": variant}, classes, files)
    model, report = fit(build, train, selection, classes, block, variant, run.work_dir, fingerprint)
    loaded = {run.train_split: train, run.selection_split: selection}
    predictions, splits = outputs.predict_splits(model, report, list(manifests), loaded, load, classes, run.bootstrap)
    sequences = {"acoustic": train.acoustic.metadata.get("model"), "text": train.text.metadata.get("model")}
    summary = outputs.training_summary(variant, settings, dims, report, started, sequences)
    features = {
        "acoustic": {"model": sequences["acoustic"], "dim": dims["acoustic"], "stride": stride},
        "text": {"model": sequences["text"], "dim": dims["text"]},
    }
    feature_sets = ["acoustic_sequences", "text_sequences"]
    document = outputs.metrics_document(HEAD, run, report, splits, feature_sets, features)
    summary["text_encoder"] = header
    return model, summary, document, predictions


def main(job: Any) -> None:
    """Entry point of the train_xattn rule (``job``: the rule's ``snakemake`` object).

    ``input.acoustic``, ``input.text`` (token states; or, text_encoder finetune, ``input.transcripts``
    with the TEFE encoder's ``input.model`` / ``input.vocab``) and ``input.manifests`` hold one file
    per split, in ``params.splits`` order; ``params.head`` is the variant's block,
    ``params.overrides`` what its ablation changed, ``params.work_dir`` the per-epoch state (resume).
    """
    run = outputs.head_run(job, TITLE)
    splits = list(job.params.splits)
    per_split = {key: dict(zip(splits, getattr(job.input, key), strict=True)) for key in ("acoustic", "manifests")}
    finetune = "transcripts" in job.input.keys()
    per_split["text"] = dict(zip(splits, job.input.transcripts if finetune else job.input.text, strict=True))
    encoder = {key: str(job.input[key]) for key in ("model", "vocab")} if finetune else None
    model, summary, document, predictions = train_and_evaluate(
        per_split["acoustic"],
        per_split["text"],
        per_split["manifests"],
        run,
        encoder=encoder,
    )
    text_encoder = summary["text_encoder"]
    outputs.write_outputs(job, CHECKPOINT_FORMAT, model, summary, document, predictions, text_encoder=text_encoder)


if __name__ == "__main__":
    run_rule(main, keep=True)
