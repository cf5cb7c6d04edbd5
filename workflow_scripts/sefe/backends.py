"""Acoustic encoder backends of SEFE behind one interface: waveforms in, frame-level features out.

* ``handcrafted``: weights-free frame features with librosa (log-mel, MFCC, F0 by YIN, log
  energy, with deltas); for machines without any checkpoint and the offline demo.
* ``emotion2vec``: funasr's ``AutoModel`` (hub id such as ``iic/emotion2vec_plus_large`` or a
  local directory with config.yaml + model.pt), frames from
  ``generate(granularity="frame", extract_embedding=True)``.
* ``wavlm``: any transformers speech encoder loadable with ``AutoModel`` +
  ``AutoFeatureExtractor`` (WavLM, HuBERT, wav2vec 2.0, data2vec-audio), a chosen hidden
  layer or the average of the transformer layers.
* ``whisper_encoder``: the frozen encoder of a transformers Whisper (the converted Whisper base
  of the ``weights`` extra, the fine-tuned ASR model, a hub id or a local directory); frames of
  the clip's own length (the 30 s padding cut off), a chosen layer or the layers' average.
* ``egemaps``, ``compare``: openSMILE's eGeMAPSv02 and ComParE_2016 feature sets (the ``opensmile``
  extra; audEERING's research licence): their functionals per utterance are the feature files'
  one statistic, their low-level descriptors the frames.

Every backend maps a list of mono float32 waveforms at its ``sample_rate`` to a list of
(frames, dim) float32 arrays, one per waveform, with ``dim`` known before the first call. The
feature files hold the frames' pooled ``statistics`` (names.SEFE_STATISTICS), or, for a backend
that computes its own utterance features, what ``utterance_statistics`` returns.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from workflow_scripts.common.devices import resolve_device
from workflow_scripts.common.hub import resolve_funasr_model, resolve_transformers_model
from workflow_scripts.common.names import FUNCTIONALS, SEFE_STATISTICS
from workflow_scripts.common.registry import lookup
from workflow_scripts.sefe.registry import SEFE_BACKENDS

log = logging.getLogger(__name__)

#: ``layer: auto``: chosen on the training / selection split by rule choose_sefe_layer (sefe/layer_choice.py).
AUTO_LAYER = "auto"


class Backend(ABC):
    """Waveforms -> frame-level features; subclasses set ``dim``, ``checkpoint`` and ``frame_rate_hz``."""

    name: str
    dim: int
    checkpoint: str
    frame_rate_hz: float
    #: True when extraction may run it in forked worker processes (CPU-only, no torch state).
    process_parallel: bool = False
    #: The statistics of its feature files: the frames' pooled ones (extraction pools them), or the
    #: backend's own utterance features (names.FUNCTIONALS, from utterance_statistics).
    statistics: tuple[str, ...] = SEFE_STATISTICS
    #: True when the backend computes those statistics itself (utterance_statistics), not from its frames.
    utterance_level: bool = False

    @abstractmethod
    def frames(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One (frames, dim) float32 array per waveform, in order."""

    @property
    def statistics_dim(self) -> int:
        """The width of each statistic in its feature files (the frames' width unless it has its own)."""
        return self.dim

    def utterance_statistics(self, waveforms: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """statistic -> (len(waveforms), statistics_dim) float32, for a backend whose ``statistics`` are its own."""
        raise NotImplementedError(f"backend {self.name} has no utterance statistics of its own (its frames are pooled)")

    def metadata(self) -> dict[str, Any]:
        """What a feature file records about the encoder beyond its name and checkpoint."""
        return {"frame_rate_hz": self.frame_rate_hz}


def equal_length_groups(waveforms: Sequence[np.ndarray], length: Callable[[int], int] = int) -> list[list[int]]:
    """Indices of the waveforms grouped by exact length (or by ``length`` of it), in order of first appearance.

    Waveforms of one length stack into a batch without padding, which reproduces one-by-one
    outputs for models whose padded batches do not (no attention mask support, emotion2vec).
    """
    groups: dict[int, list[int]] = {}
    for index, waveform in enumerate(waveforms):
        groups.setdefault(length(len(waveform)), []).append(index)
    return list(groups.values())


def forward_in_groups(
    forward: Callable[[list[np.ndarray]], list[np.ndarray]], waveforms: Sequence[np.ndarray], groups: list[list[int]]
) -> list[np.ndarray]:
    """``forward`` run on each group of waveforms; the outputs back in input order."""
    output: list[np.ndarray | None] = [None] * len(waveforms)
    for group in groups:
        for index, feats in zip(group, forward([waveforms[i] for i in group]), strict=True):
            output[index] = feats
    return output  # type: ignore[return-value]


# --- weights-free -------------------------------------------------------------------------


def handcrafted_feature_names(cfg: Mapping[str, Any]) -> list[str]:
    """Names of the frame features of the handcrafted backend, in column order (the width is their count)."""
    base = [f"mfcc_{i:02d}" for i in range(cfg["n_mfcc"])]
    if cfg["f0"]["enabled"]:
        base.append("log_f0")
    if cfg["energy"]:
        base.append("log_energy")
    names = [f"logmel_{i:02d}" for i in range(cfg["n_mels"])] + list(base)
    for order in range(1, cfg["delta_order"] + 1):
        names += [f"{'d' * order}_{name}" for name in base]
    return names


class HandcraftedBackend(Backend):
    """Log-mel, MFCC, log F0 (YIN) and log RMS energy per frame, plus deltas of all but log-mel.

    Frames of ``win_length_ms`` every ``hop_length_ms``, centred, so all contours align.
    """

    name = "handcrafted"
    process_parallel = True

    def __init__(self, cfg: Mapping[str, Any], sample_rate: int, threads: int = 1) -> None:
        """``threads`` is unused: extraction parallelises this backend by process (``process_parallel``)."""
        import librosa

        self.cfg = dict(cfg)
        self.sample_rate = sample_rate
        self.hop = int(round(cfg["hop_length_ms"] * sample_rate / 1000))
        self.win = int(round(cfg["win_length_ms"] * sample_rate / 1000))
        self.n_fft = int(2 ** np.ceil(np.log2(self.win)))
        self.f0_frame = int(round(cfg["f0"]["frame_length_ms"] * sample_rate / 1000))
        if cfg["f0"]["enabled"] and sample_rate / cfg["f0"]["fmin"] >= self.f0_frame / 2:
            raise ValueError(
                f"sefe.handcrafted.f0: frame_length_ms {cfg['f0']['frame_length_ms']} is too short for fmin "
                f"{cfg['f0']['fmin']} Hz (needs more than two periods, > {2000 / cfg['f0']['fmin']:.1f} ms)"
            )
        self.names = handcrafted_feature_names(cfg)
        self.dim = len(self.names)
        self.checkpoint = "none (weights-free)"
        self.frame_rate_hz = sample_rate / self.hop
        self._mel_basis = librosa.filters.mel(
            sr=sample_rate, n_fft=self.n_fft, n_mels=cfg["n_mels"], fmin=cfg["fmin"], fmax=cfg["fmax"]
        )
        # librosa imports its submodules (scipy.signal: seconds) on first use: pay that once here,
        # before extraction forks its worker processes, not once per worker
        self._one(np.random.default_rng(0).standard_normal(sample_rate // 2).astype(np.float32))

    def _one(self, waveform: np.ndarray) -> np.ndarray:
        import librosa

        cfg = self.cfg
        spec = (
            np.abs(librosa.stft(waveform, n_fft=self.n_fft, hop_length=self.hop, win_length=self.win, center=True)) ** 2
        )
        log_mel = librosa.power_to_db(self._mel_basis @ spec, ref=1.0, amin=1e-10, top_db=None)
        rows = [librosa.feature.mfcc(S=log_mel, n_mfcc=cfg["n_mfcc"])]
        frames = log_mel.shape[1]
        if cfg["f0"]["enabled"]:
            f0 = librosa.yin(
                waveform,
                fmin=cfg["f0"]["fmin"],
                fmax=cfg["f0"]["fmax"],
                sr=self.sample_rate,
                frame_length=self.f0_frame,
                hop_length=self.hop,
                center=True,
            )
            rows.append(np.log(f0[:frames])[None, :])
        if cfg["energy"]:
            rms = librosa.feature.rms(y=waveform, frame_length=self.win, hop_length=self.hop, center=True)
            rows.append(20.0 * np.log10(np.maximum(rms[:, :frames], 1e-5)))
        base = np.concatenate(rows, axis=0)
        blocks = [log_mel, base]
        for order in range(1, cfg["delta_order"] + 1):
            # mode "nearest" also works for utterances shorter than the delta window
            blocks.append(librosa.feature.delta(base, order=order, width=9, mode="nearest"))
        return np.concatenate(blocks, axis=0).T.astype(np.float32)

    def frames(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self._one(w) for w in waveforms]

    def metadata(self) -> dict[str, Any]:
        return {"frame_rate_hz": self.frame_rate_hz, "frame_features": self.names}


# --- emotion2vec (funasr) -------------------------------------------------------------------


class Emotion2vecBackend(Backend):
    """emotion2vec through funasr's AutoModel; frames of the last layer at 50 frames/s."""

    name = "emotion2vec"
    frame_rate_hz = 50.0

    def __init__(self, cfg: Mapping[str, Any], sample_rate: int, threads: int) -> None:
        if sample_rate != 16000:
            raise ValueError(f"sefe.preprocessing.sample_rate is {sample_rate}; emotion2vec expects 16000")
        self.cfg = dict(cfg)
        path = resolve_funasr_model(cfg["model"], cfg["hub"])
        from funasr import AutoModel

        self.device = str(resolve_device(cfg["device"]))
        self.auto = AutoModel(
            model=path,
            hub=cfg["hub"],
            disable_update=True,
            device=self.device,
            ncpu=threads,
            disable_pbar=True,
            disable_log=True,
        )
        self.model = self.auto.model
        self.dim = int(self.model.cfg.get("embed_dim"))
        self.checkpoint = cfg["model"] if path == cfg["model"] else f"{cfg['model']} ({path})"
        self.stack = bool(cfg["stack_equal_lengths"])

    def _generate(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
        results = self.auto.generate(
            list(waveforms), granularity="frame", extract_embedding=True, batch_size=len(waveforms)
        )
        return [np.asarray(r["feats"], dtype=np.float32) for r in results]

    def _stacked(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """One forward pass over equal-length waveforms: what generate() computes per waveform."""
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            source = torch.from_numpy(np.stack(waveforms)).to(self.device)
            if self.model.cfg.get("normalize"):  # generate() layer-normalises each waveform over all its samples
                source = F.layer_norm(source, source.shape[-1:])
            out = self.model.extract_features(source, padding_mask=None)["x"]
        return out.float().cpu().numpy()

    def frames(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
        output: list[np.ndarray | None] = [None] * len(waveforms)
        singles = []
        for group in equal_length_groups(waveforms) if self.stack else [[i] for i in range(len(waveforms))]:
            if len(group) == 1:
                singles.append(group[0])
                continue
            stacked = self._stacked([waveforms[i] for i in group])
            for row, index in enumerate(group):
                output[index] = stacked[row]
        if singles:
            for index, feats in zip(singles, self._generate([waveforms[i] for i in singles]), strict=True):
                output[index] = feats
        return output  # type: ignore[return-value]

    def metadata(self) -> dict[str, Any]:
        return {"frame_rate_hz": self.frame_rate_hz, "device": self.device, "layer": "last (funasr feats)"}


# --- transformers speech encoders -------------------------------------------------------------


class TransformersBackend(Backend):
    """A transformers speech encoder (AutoModel + AutoFeatureExtractor), one hidden layer or their average.

    Padded batches with an attention mask where the feature extractor returns one (the model
    then ignores padding, e.g. WavLM-Large, wav2vec2-large-lv60); otherwise only waveforms of
    equal length are batched, since zero padding without a mask changes the outputs.
    """

    name = "wavlm"

    def __init__(self, cfg: Mapping[str, Any], sample_rate: int, threads: int) -> None:
        import torch
        from transformers import AutoFeatureExtractor, AutoModel

        torch.set_num_threads(threads)
        self.cfg = dict(cfg)
        path = resolve_transformers_model(cfg["model"])
        self.extractor = AutoFeatureExtractor.from_pretrained(path)
        expected = getattr(self.extractor, "sampling_rate", sample_rate)
        if expected != sample_rate:
            raise ValueError(f"sefe.preprocessing.sample_rate is {sample_rate}; {cfg['model']} expects {expected}")
        self.device = str(resolve_device(cfg["device"]))
        self.model = AutoModel.from_pretrained(path).to(self.device).eval()
        self.sample_rate = sample_rate
        self.layer = cfg["layer"]
        layers = int(self.model.config.num_hidden_layers)
        if isinstance(self.layer, int) and not -(layers + 1) <= self.layer <= layers:
            raise ValueError(f"sefe.wavlm.layer: {self.layer} is out of range for {layers} layers (0..{layers})")
        self.dim = int(self.model.config.hidden_size)
        self.checkpoint = cfg["model"] if path == cfg["model"] else f"{cfg['model']} ({path})"
        self.masked = bool(getattr(self.extractor, "return_attention_mask", False)) and hasattr(
            self.model, "_get_feat_extract_output_lengths"
        )
        conv_stride = getattr(self.model.config, "conv_stride", None)
        self.frame_rate_hz = sample_rate / float(np.prod(conv_stride)) if conv_stride else float("nan")

    def _forward(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch

        inputs = self.extractor(
            list(waveforms),
            sampling_rate=self.sample_rate,
            return_tensors="pt",
            padding=True,
            return_attention_mask=self.masked,
        )
        with torch.no_grad():
            out = self.model(**{k: v.to(self.device) for k, v in inputs.items()}, output_hidden_states=True)
        if self.layer == "last":
            hidden = out.last_hidden_state
        elif self.layer == "average":
            hidden = torch.stack(out.hidden_states[1:]).mean(dim=0)
        else:
            hidden = out.hidden_states[self.layer]
        hidden = hidden.float().cpu().numpy()
        if self.masked:
            lengths = self.model._get_feat_extract_output_lengths(inputs["attention_mask"].sum(-1)).tolist()
        else:
            lengths = [hidden.shape[1]] * len(waveforms)
        return [hidden[i, : int(n)] for i, n in enumerate(lengths)]

    def frames(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self.masked:
            return self._forward(waveforms)
        return forward_in_groups(self._forward, waveforms, equal_length_groups(waveforms))

    def metadata(self) -> dict[str, Any]:
        return {
            "frame_rate_hz": self.frame_rate_hz,
            "device": self.device,
            "layer": self.layer,
            "architecture": type(self.model).__name__,
            "padded_batches": self.masked,
        }


class WhisperEncoderBackend(Backend):
    """The frozen encoder of a Whisper model: 50 frames/s (whisper-*), only the clip's own frames.

    ``input_window: full`` pads every clip to the model's window (30 s for whisper-*) as Whisper
    was trained, encodes it and keeps the frames covering the clip; ``clip`` encodes only the
    clip's own mel frames (positions 0..n; faster, but inputs shorter than the model ever saw).
    Hidden states: 0 the embeddings with positions, i the output of layer i; ``last`` is the
    encoder's output (after its final layer norm, what the decoder attends to); ``average`` the
    mean of the layers' outputs.
    """

    name = "whisper_encoder"

    def __init__(self, cfg: Mapping[str, Any], sample_rate: int, threads: int) -> None:
        import torch
        from transformers import WhisperFeatureExtractor, WhisperModel

        from workflow_scripts.common.names import FINETUNED
        from workflow_scripts.common.paths import ASR_FINETUNED_MODEL

        torch.set_num_threads(threads)
        self.cfg = dict(cfg)
        reference = ASR_FINETUNED_MODEL if cfg["model"] == FINETUNED else cfg["model"]
        path = resolve_transformers_model(reference, key="sefe.whisper_encoder.model")
        self.extractor = WhisperFeatureExtractor.from_pretrained(path)
        if self.extractor.sampling_rate != sample_rate:
            expected = self.extractor.sampling_rate
            raise ValueError(f"sefe.preprocessing.sample_rate is {sample_rate}; {cfg['model']} expects {expected}")
        self.device = str(resolve_device(cfg["device"]))
        self.encoder = WhisperModel.from_pretrained(path).get_encoder().to(self.device).eval()
        self.sample_rate = sample_rate
        self.layer = cfg["layer"]
        self.window = cfg["input_window"]
        layers = len(self.encoder.layers)
        if isinstance(self.layer, int) and not -(layers + 1) <= self.layer <= layers:
            raise ValueError(
                f"sefe.whisper_encoder.layer: {self.layer} is out of range for {layers} layers (0..{layers})"
            )
        self.layer_dim = int(self.encoder.config.d_model)
        # layer auto before its choice (extract_sefe_layers): every candidate side by side
        self.dim = self.layer_dim * (len(self.layer_names()) if self.layer == AUTO_LAYER else 1)
        self.checkpoint = cfg["model"] if path == reference else f"{cfg['model']} ({path})"
        # mel frames per encoder frame (the convolutions' strides) and samples per encoder frame
        self.stride = int(self.encoder.conv1.stride[0] * self.encoder.conv2.stride[0])
        self.samples_per_frame = int(self.extractor.hop_length) * self.stride
        self.frame_rate_hz = sample_rate / self.samples_per_frame
        self.max_frames = int(self.encoder.config.max_source_positions)

    def clip_frames(self, samples: int) -> int:
        """Encoder frames covering ``samples`` samples (at most the model's window)."""
        return max(1, min(self.max_frames, -(-samples // self.samples_per_frame)))

    def hidden_states(self, features) -> list:
        """The encoder's hidden states of mel ``features`` at the clip's own length: the embeddings,
        then every layer's output (before the final layer norm)."""
        import torch.nn.functional as F

        encoder = self.encoder
        x = F.gelu(encoder.conv2(F.gelu(encoder.conv1(features)))).permute(0, 2, 1)
        x = x + encoder.embed_positions.weight[: x.shape[1]]
        hidden = [x]
        for layer in encoder.layers:
            x = layer(x, None)
            x = x[0] if isinstance(x, tuple) else x
            hidden.append(x)
        return hidden

    def layer_names(self) -> list[str]:
        """The layers ``layer: auto`` chooses among: every hidden state (0 .. N), last and average."""
        return [str(i) for i in range(len(self.encoder.layers) + 1)] + ["last", "average"]

    def _encode(self, features):
        """The configured layer's states of mel ``features``: the normed output, the layer average or one
        layer; with ``layer: auto`` every one of :meth:`layer_names` concatenated along the features."""
        import torch

        hidden = self.hidden_states(features)
        states = {
            "last": lambda: self.encoder.layer_norm(hidden[-1]),
            "average": lambda: torch.stack(hidden[1:]).mean(0),
        }
        if self.layer == AUTO_LAYER:
            return torch.cat([hidden[int(n)] if n.isdigit() else states[n]() for n in self.layer_names()], dim=-1)
        if self.layer in states:
            return states[self.layer]()
        return hidden[self.layer]

    def _forward(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch

        features = self.extractor(list(waveforms), sampling_rate=self.sample_rate, return_tensors="pt").input_features
        frames = [self.clip_frames(len(w)) for w in waveforms]
        if self.window == "clip":  # equal lengths only (see frames()): one cut for the batch
            features = features[..., : frames[0] * self.stride]
        with torch.inference_mode():
            hidden = self._encode(features.to(self.device)).float().cpu().numpy()
        return [np.ascontiguousarray(hidden[i, :n]) for i, n in enumerate(frames)]

    def frames(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self.window == "full":  # every clip fills the same window: any batch is exact
            return self._forward(waveforms)
        return forward_in_groups(self._forward, waveforms, equal_length_groups(waveforms, self.clip_frames))

    def metadata(self) -> dict[str, Any]:
        return {
            "frame_rate_hz": self.frame_rate_hz,
            "device": self.device,
            "layer": self.layer,
            "input_window": self.window,
            "layers": len(self.encoder.layers),
            **({"layer_names": self.layer_names(), "layer_dim": self.layer_dim} if self.layer == AUTO_LAYER else {}),
        }


# --- openSMILE (audEERING's research licence: the `opensmile` extra, never the default install) ---


def import_opensmile() -> Any:
    """The ``opensmile`` package, or an ImportError saying how to install it and under which licence."""
    try:
        import opensmile
    except ImportError as error:
        raise ImportError(
            "sefe.backend egemaps / compare need the opensmile package, which the default install does not "
            "carry (openSMILE is under audEERING's own research licence, see docs/sefe.md): "
            "pip install 'dfat-workflow[opensmile]' (opensmile==2.6.0)"
        ) from error
    return opensmile


class OpenSmileBackend(Backend):
    """One openSMILE feature set (``feature_set``, an ``opensmile.FeatureSet`` name): its functionals per
    utterance as the feature files' one statistic (names.FUNCTIONALS), its low-level descriptors
    (LLDs, one row per 10 ms frame) as the frames of the sequence contract.

    Weights-free and CPU only: extraction parallelises it by process, as the handcrafted backend.
    """

    feature_set: str
    process_parallel = True
    statistics = (FUNCTIONALS,)
    utterance_level = True
    #: openSMILE's LLD frame step in both feature sets (10 ms).
    frame_rate_hz = 100.0

    def __init__(self, cfg: Mapping[str, Any], sample_rate: int, threads: int = 1) -> None:
        """``threads`` is unused: extraction parallelises this backend by process (``process_parallel``)."""
        opensmile = import_opensmile()
        feature_set = getattr(opensmile.FeatureSet, self.feature_set)
        self.cfg = dict(cfg)
        self.sample_rate = sample_rate
        self.smile_functionals = opensmile.Smile(feature_set, opensmile.FeatureLevel.Functionals)
        self.smile_lld = opensmile.Smile(feature_set, opensmile.FeatureLevel.LowLevelDescriptors)
        self.names = list(self.smile_lld.feature_names)
        self.dim = len(self.names)
        self._statistics_dim = len(self.smile_functionals.feature_names)
        self.checkpoint = f"none (openSMILE {self.feature_set}, opensmile {opensmile.__version__}; weights-free)"

    @property
    def statistics_dim(self) -> int:
        return self._statistics_dim

    def frames(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self.smile_lld.process_signal(w, self.sample_rate).to_numpy(dtype=np.float32) for w in waveforms]

    def utterance_statistics(self, waveforms: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        rows = [self.smile_functionals.process_signal(w, self.sample_rate).to_numpy(np.float32) for w in waveforms]
        return {FUNCTIONALS: np.concatenate(rows) if rows else np.zeros((0, self.statistics_dim), np.float32)}

    def metadata(self) -> dict[str, Any]:
        return {
            "frame_rate_hz": self.frame_rate_hz,
            "feature_set": self.feature_set,
            "frame_features": self.names,
            "functionals": self.statistics_dim,
            "licence": "openSMILE: audEERING research licence",
        }


class EgemapsBackend(OpenSmileBackend):
    """eGeMAPS v02: 88 functionals, 25 LLDs (the field's reference acoustic baseline)."""

    name = "egemaps"
    feature_set = "eGeMAPSv02"


class CompareBackend(OpenSmileBackend):
    """ComParE 2016: 6,373 functionals, 65 LLDs."""

    name = "compare"
    feature_set = "ComParE_2016"


def build_backend(name: str, cfg: Mapping[str, Any], sample_rate: int, threads: int = 1) -> Backend:
    """The backend ``name`` (sefe/registry.py) configured by its block ``cfg`` (sefe.<name>)."""
    return lookup(SEFE_BACKENDS, name, "SEFE backend").load()(cfg, sample_rate, threads)
