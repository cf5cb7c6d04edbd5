"""ASR backends behind one interface: Whisper (sequence to sequence) and CTC models via transformers, and
Whisper in CTranslate2 through faster-whisper (``ct2``).

A model is named by a local directory (save_pretrained format) or a Hugging Face hub id.
:func:`~workflow_scripts.common.hub.resolve_model_source` turns either into a local directory before transformers sees
it, so an unreachable hub fails in seconds with a message on how to supply the model
(rather than after minutes of retries), and every load below is ``local_files_only``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workflow_scripts.common.devices import resolve_device
from workflow_scripts.common.hub import resolve_model_source
from workflow_scripts.common.names import ASR_BACKENDS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendSpec:
    """Which model to run and how (a backbone entry or the ``asr.transcribe`` block)."""

    backend: str
    model: str
    language: str = "vi"
    task: str = "transcribe"
    num_beams: int = 1
    max_new_tokens: int | None = None
    precision: str = "auto"
    hub_timeout_s: float = 10.0

    @classmethod
    def from_dict(cls, block: Mapping[str, Any]) -> BackendSpec:
        """Take the keys this class knows from a config block (others belong to the caller)."""
        fields = {k: block[k] for k in cls.__dataclass_fields__ if k in block}
        spec = cls(**fields)
        if spec.backend not in ASR_BACKENDS:
            raise ValueError(f"backend {spec.backend!r} is not one of {ASR_BACKENDS}")
        return spec


def inference_dtype(precision: str, device: torch.device) -> torch.dtype:
    """fp16 on CUDA by default; the CPU computes in fp32 unless bf16 is asked for."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if precision == "int8":
        raise ValueError("precision int8 is for the ct2 backend only (transformers backends: auto, fp32, fp16, bf16)")
    if precision == "fp16" and device.type != "cuda":
        log.warning("precision fp16 needs CUDA; running in fp32 on %s", device)
        return torch.float32
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


class AsrBackend(ABC):
    """Transcribes batches of mono waveforms sampled at :attr:`sampling_rate`."""

    sampling_rate: int
    #: Longest input in seconds the model sees at once (None: no limit).
    max_input_seconds: float | None = None

    @abstractmethod
    def transcribe(self, waveforms: Sequence[np.ndarray]) -> list[str]:
        """Text of each waveform, in input order."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Model, backend and settings, for the metadata of what it produced."""


class WhisperBackend(AsrBackend):
    """``WhisperForConditionalGeneration`` + ``WhisperProcessor``; language and task set explicitly."""

    def __init__(self, spec: BackendSpec, model_dir: str, device: torch.device) -> None:
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.spec, self.model_dir, self.device = spec, model_dir, device
        self.dtype = inference_dtype(spec.precision, device)
        self.processor = WhisperProcessor.from_pretrained(model_dir, local_files_only=True)
        self.model = WhisperForConditionalGeneration.from_pretrained(model_dir, local_files_only=True, dtype=self.dtype)
        self.model.to(device).eval()
        extractor = self.processor.feature_extractor
        self.sampling_rate = int(extractor.sampling_rate)
        self.max_input_seconds = extractor.n_samples / extractor.sampling_rate

    def transcribe(self, waveforms: Sequence[np.ndarray]) -> list[str]:
        features = self.processor.feature_extractor(
            list(waveforms), sampling_rate=self.sampling_rate, return_tensors="pt"
        ).input_features.to(self.device, self.dtype)
        kwargs: dict[str, Any] = {
            "language": self.spec.language,
            "task": self.spec.task,
            "num_beams": self.spec.num_beams,
        }
        if self.spec.max_new_tokens:
            kwargs["max_new_tokens"] = self.spec.max_new_tokens
        with torch.inference_mode():
            ids = self.model.generate(features, **kwargs)
        return [text.strip() for text in self.processor.batch_decode(ids, skip_special_tokens=True)]

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "whisper",
            "model": self.spec.model,
            "model_dir": self.model_dir,
            "language": self.spec.language,
            "task": self.spec.task,
            "num_beams": self.spec.num_beams,
            "dtype": str(self.dtype).removeprefix("torch."),
        }


class CtcBackend(AsrBackend):
    """``AutoModelForCTC`` with its feature extractor and CTC tokenizer; greedy decoding.

    Feature extractor and tokenizer load separately, so repositories that ship an n-gram LM
    processor (which needs pyctcdecode) still decode greedily.
    """

    def __init__(self, spec: BackendSpec, model_dir: str, device: torch.device) -> None:
        from transformers import AutoFeatureExtractor, AutoModelForCTC, AutoTokenizer

        self.spec, self.model_dir, self.device = spec, model_dir, device
        self.dtype = inference_dtype(spec.precision, device)
        self.feature_extractor = AutoFeatureExtractor.from_pretrained(model_dir, local_files_only=True)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModelForCTC.from_pretrained(model_dir, local_files_only=True, dtype=self.dtype)
        self.model.to(device).eval()
        self.sampling_rate = int(self.feature_extractor.sampling_rate)

    def transcribe(self, waveforms: Sequence[np.ndarray]) -> list[str]:
        use_mask = bool(getattr(self.feature_extractor, "return_attention_mask", False))
        inputs = self.feature_extractor(
            list(waveforms),
            sampling_rate=self.sampling_rate,
            padding=True,
            return_tensors="pt",
            return_attention_mask=use_mask,
        )
        values = inputs.input_values.to(self.device, self.dtype)
        mask = inputs.attention_mask.to(self.device) if use_mask else None
        with torch.inference_mode():
            logits = self.model(values, attention_mask=mask).logits
        ids = logits.argmax(dim=-1).cpu()
        # Frames past an utterance's own end come from padding: cut them before CTC collapsing.
        lengths = torch.tensor([len(w) for w in waveforms])
        frames = self.model._get_feat_extract_output_lengths(lengths).tolist()
        return [self.tokenizer.decode(ids[i, : frames[i]]).strip() for i in range(len(waveforms))]

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "ctc",
            "model": self.spec.model,
            "model_dir": self.model_dir,
            "decoding": "greedy",
            "dtype": str(self.dtype).removeprefix("torch."),
        }


def ct2_compute_type(precision: str, device: torch.device) -> str:
    """CTranslate2 compute type: ``auto`` is float16 on CUDA and int8 on the CPU; fp16 needs CUDA."""
    if precision == "auto":
        return "float16" if device.type == "cuda" else "int8"
    if precision in ("fp16", "bf16") and device.type != "cuda":
        log.warning("precision %s needs CUDA; running in float32 on %s", precision, device)
        return "float32"
    return {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "int8"}[precision]


class Ct2Backend(AsrBackend):
    """A CTranslate2 Whisper through faster-whisper (the ``weights`` extra): batched greedy or beam decoding.

    ``model`` is a CTranslate2 Whisper directory (model.bin, config.json, tokenizer.json), such as
    results/pretrained/whisper-base-ct2. Each clip is padded to the 30 s window (audio zero-padded
    before the log-mel, as openai-whisper and the transformers backend do) and a batch is decoded
    in one ``generate`` call with the prompt <|startoftranscript|><|lang|><|task|><|notimestamps|>;
    no voice-activity filter, no temperature fallback, no conditioning on earlier text.
    """

    def __init__(self, spec: BackendSpec, model_dir: str, device: torch.device) -> None:
        try:
            import ctranslate2
            from faster_whisper import WhisperModel
            from faster_whisper.tokenizer import Tokenizer
        except ImportError as error:
            from workflow_scripts.common.pretrained import INSTALL_HINT

            raise ImportError(f"ASR backend ct2 needs faster-whisper and ctranslate2: {INSTALL_HINT}") from error
        self.spec, self.model_dir, self.device = spec, model_dir, device
        self.compute_type = self.dtype = ct2_compute_type(spec.precision, device)
        self._storage = ctranslate2.StorageView.from_array
        self.whisper = WhisperModel(
            model_dir,
            device=device.type,
            device_index=device.index or 0,
            compute_type=self.compute_type,
            cpu_threads=torch.get_num_threads(),
        )
        self.tokenizer = Tokenizer(
            self.whisper.hf_tokenizer, self.whisper.model.is_multilingual, task=spec.task, language=spec.language
        )
        self.prompt = [*self.tokenizer.sot_sequence, self.tokenizer.no_timestamps]
        extractor = self.whisper.feature_extractor
        self.sampling_rate = int(extractor.sampling_rate)
        self.window = int(extractor.n_samples)
        self.max_input_seconds = self.window / self.sampling_rate

    def features(self, waveform: np.ndarray) -> np.ndarray:
        """Log-mel of the waveform zero-padded (or cut) to the model's window: (mels, frames)."""
        clip = np.asarray(waveform, dtype=np.float32)[: self.window]
        padded = np.pad(clip, (0, self.window - len(clip)))
        return self.whisper.feature_extractor(padded, padding=0)[:, : self.whisper.feature_extractor.nb_max_frames]

    def transcribe(self, waveforms: Sequence[np.ndarray]) -> list[str]:
        batch = np.ascontiguousarray(np.stack([self.features(w) for w in waveforms]).astype(np.float32))
        max_length = len(self.prompt) + self.spec.max_new_tokens if self.spec.max_new_tokens else 448
        results = self.whisper.model.generate(
            self._storage(batch),
            [self.prompt] * len(waveforms),
            beam_size=self.spec.num_beams,
            max_length=max_length,
            suppress_blank=True,
        )
        return [self.tokenizer.decode(result.sequences_ids[0]).strip() for result in results]

    def describe(self) -> dict[str, Any]:
        return {**WhisperBackend.describe(self), "backend": "ct2"}  # type: ignore[arg-type]


def load_backend(spec: BackendSpec, device: str = "auto", config_key: str = "model") -> AsrBackend:
    """Resolve ``spec.model`` to a local directory and load it with the backend it names."""
    model_dir = resolve_model_source(spec.model, config_key=config_key, hub_timeout_s=spec.hub_timeout_s)
    torch_device = resolve_device(device)
    log.info("loading %s backend from %s on %s", spec.backend, model_dir, torch_device)
    if spec.backend == "whisper":
        return WhisperBackend(spec, model_dir, torch_device)
    if spec.backend == "ct2":
        return Ct2Backend(spec, model_dir, torch_device)
    return CtcBackend(spec, model_dir, torch_device)


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (little padding; OOM shows early)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def transcribe_batches(
    backend: AsrBackend,
    lengths: Sequence[int],
    load: Callable[[Sequence[int]], list[np.ndarray]],
    batch_size: int,
    progress: bool = True,
) -> list[str]:
    """Transcribe utterances ``0 .. len(lengths) - 1`` in length-sorted batches; texts in input order.

    ``load(indices)`` gives the waveforms of one batch when it is decoded, so at most one batch of
    audio is in memory (``batch_size`` bounds it); only the texts are kept for the whole split.
    """
    from tqdm import tqdm

    texts: list[str | None] = [None] * len(lengths)
    batches = length_sorted_batches(lengths, batch_size)
    with tqdm(total=len(lengths), unit="utt", disable=not progress, mininterval=2.0) as bar:
        for batch in batches:
            for index, text in zip(batch, backend.transcribe(load(batch)), strict=True):
                texts[index] = text
            bar.update(len(batch))
    return [t if t is not None else "" for t in texts]


def transcribe_waveforms(
    backend: AsrBackend, waveforms: Sequence[np.ndarray], batch_size: int, progress: bool = True
) -> list[str]:
    """Transcribe waveforms already in memory in length-sorted batches; texts come back in input order."""
    return transcribe_batches(
        backend, [len(w) for w in waveforms], lambda batch: [waveforms[i] for i in batch], batch_size, progress
    )
