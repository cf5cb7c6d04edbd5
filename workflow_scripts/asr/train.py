"""Fine-tune a Whisper checkpoint (or train the demo's small Whisper) with transformers' Seq2SeqTrainer.

AdamW with linear warmup and decay, gradient accumulation, evaluation on the dev split by WER
(hypotheses and references normalised as for scoring), early stopping, the best checkpoint
kept, seeded. Checkpoints go to a work directory next to the output; a restarted job with the
same configuration and data resumes from the last one. The output directory (save_pretrained
format: model, generation config, processor, training_config.json) appears only on success, with
the snapshots of ``snapshot_steps`` (the model in training at those steps, e.g. the model of an
early-checkpoint ASR system; kept in the work directory until then, so a resumed run has them).

``processes: N`` > 1 runs the same training as N data-parallel processes (DistributedDataParallel
through the Trainer; gloo on the CPU, nccl on CUDA), launched by ``torch.distributed.run`` from this
step (``launch_processes``; each process is ``asr/train_worker.py``): the config's batch is the
global batch, ``batch_size / N`` per process; only rank 0 writes. The feature and encoder-state
caches are files under the work directory (asr/disk_cache.py), so memory does not grow with the
corpus.
"""

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from workflow_scripts.asr.disk_cache import DiskArrayCache
from workflow_scripts.asr.speed_perturb import draw_factor, speed_perturb
from workflow_scripts.asr.text import NormalizeConfig, normalize_text, score_transcripts
from workflow_scripts.asr.waveforms import cut_to_window, load_waveform, report_long_clips
from workflow_scripts.common.checksums import record_checksum
from workflow_scripts.common.devices import resolve_device
from workflow_scripts.common.files import atomic_path, write_json
from workflow_scripts.common.hub import resolve_model_source
from workflow_scripts.common.manifest import read_manifest
from workflow_scripts.common.rule import run_rule

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "fingerprint.json"
# Under the work directory: the caches (one folder per dataset) and the launch of N processes.
CACHE_DIR = "cache"
LAUNCH_FILE = "launch.json"


def load_transcribed_split(
    manifests: Sequence[str], normalize: NormalizeConfig, allowed_splits: Sequence[str]
) -> pd.DataFrame:
    """utt_id, audio_path and normalised target text of ``manifests``; rows without text are dropped.

    Every row's ``split`` must be one of ``allowed_splits``: a test split can never slip in.
    """
    frames = []
    for path in manifests:
        frame = read_manifest(path)
        foreign = sorted(set(frame["split"]) - set(allowed_splits))
        if foreign:
            raise ValueError(f"{path}: rows of split(s) {foreign}; only {list(allowed_splits)} may be used here")
        frame = frame.assign(target=[normalize_text(t, normalize) for t in frame["text"]], manifest=str(path))
        empty = frame["target"] == ""
        if empty.any():
            log.warning(
                "%s: %d utterances without reference text are left out (e.g. %s)",
                path,
                int(empty.sum()),
                frame.loc[empty, "utt_id"].iloc[0],
            )
        frames.append(frame.loc[~empty, ["utt_id", "audio_path", "duration_s", "target", "manifest"]])
    data = pd.concat(frames, ignore_index=True)
    duplicated = data["utt_id"][data["utt_id"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"{list(manifests)}: utt_id values appear in more than one manifest: {duplicated[:5]}")
    if data.empty:
        raise ValueError(f"{list(manifests)}: no utterance with reference text")
    return data


def warp_frequency(features: np.ndarray, factor: float) -> np.ndarray:
    """Stretch (factor > 1) or compress the mel axis of (bins, frames) ``features``, linearly interpolated.

    A cheap vocal-tract-length perturbation (VTLP): formants move as between speakers.
    """
    bins = features.shape[0]
    source = np.clip(np.arange(bins) / factor, 0, bins - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, bins - 1)
    weight = (source - low)[:, None]
    return (features[low] * (1 - weight) + features[high] * weight).astype(features.dtype)


class WhisperSpeechDataset(torch.utils.data.Dataset):
    """Log-mel features (computed on access, optionally cached on disk) and label ids of utterances.

    ``freq_warp`` > 0 warps each access's mel axis by a factor drawn from [1 - w, 1 + w] (training
    only), from NumPy's global generator, which the Trainer seeds and restores when resuming.
    ``speed_factors`` (training only; asr/speed_perturb.py): each access plays the clip at a factor
    drawn from them, from the same generator; the cache keeps one entry per clip and factor.
    ``cache_dir`` (None: no cache): the log-mel features of each clip and factor are computed once
    and kept as files there (asr/disk_cache.py). ``encoder`` (a frozen Whisper encoder; training
    only, with ``cache_dir``): each access returns the encoder's output states instead of the log-mel
    features, computed once per clip and factor and kept as files in ``cache_dir``/encoded.
    Audio longer than the extractor's window is cut to it (asr/waveforms.py).
    """

    def __init__(
        self,
        data: pd.DataFrame,
        processor,
        max_label_tokens: int,
        cache_dir: str | Path | None,
        freq_warp: float = 0.0,
        speed_factors: Sequence[float] = (),
        encoder: torch.nn.Module | None = None,
    ) -> None:
        tokenizer = processor.tokenizer
        labels = [tokenizer(text).input_ids for text in data["target"]]
        too_long = [i for i, ids in enumerate(labels) if len(ids) > max_label_tokens]
        if too_long:
            log.warning(
                "%d utterances have targets longer than %d tokens and are left out (e.g. %s)",
                len(too_long),
                max_label_tokens,
                data["utt_id"].iloc[too_long[0]],
            )
        dropped = set(too_long)
        keep = [i for i in range(len(labels)) if i not in dropped]
        self.utt_ids = data["utt_id"].iloc[keep].tolist()
        self.paths = data["audio_path"].iloc[keep].tolist()
        self.labels = [labels[i] for i in keep]
        self.extractor = processor.feature_extractor
        self.cache = DiskArrayCache(cache_dir) if cache_dir is not None else None
        self.freq_warp = freq_warp
        self.speed_factors = tuple(float(f) for f in speed_factors)
        if encoder is not None and cache_dir is None:
            raise ValueError("a frozen encoder's states are cached on disk: give cache_dir")
        self.encoder = encoder
        self.encoded = DiskArrayCache(Path(cache_dir) / "encoded") if encoder is not None else None

    def __len__(self) -> int:
        return len(self.labels)

    def compute_features(self, index: int, speed: float) -> np.ndarray:
        """The log-mel features of one clip played at ``speed`` (bins x frames), from its audio."""
        rate = self.extractor.sampling_rate
        waveform = speed_perturb(load_waveform(self.paths[index], rate), speed, rate)
        waveform = cut_to_window(waveform, rate, self.extractor.n_samples / rate)  # as the extractor would
        return self.extractor(waveform, sampling_rate=rate, return_tensors="np").input_features[0]

    def features(self, index: int, speed: float = 1.0) -> np.ndarray:
        """The log-mel features of one clip, from the cache when it holds them."""
        if self.cache is None:
            return self.compute_features(index, speed)
        values = self.cache.get((index, speed))
        if values is None:
            values = self.compute_features(index, speed)
            self.cache.put((index, speed), values)
        return values

    def encoder_states(self, index: int, speed: float) -> np.ndarray:
        """The frozen encoder's output for one clip (frames x d_model), computed on first access."""
        states = self.encoded.get((index, speed))
        if states is None:
            device = next(self.encoder.parameters()).device
            features = torch.from_numpy(self.compute_features(index, speed))[None].to(device)
            was_training = self.encoder.training
            self.encoder.eval()
            with torch.no_grad():
                states = self.encoder(features).last_hidden_state[0]
            self.encoder.train(was_training)
            states = states.float().cpu().numpy()
            self.encoded.put((index, speed), states)  # the states take the log-mel features' place
        return states

    def __getitem__(self, index: int) -> dict[str, Any]:
        speed = draw_factor(self.speed_factors) if self.speed_factors else 1.0
        if self.encoder is not None:
            return {"encoder_states": self.encoder_states(index, speed), "labels": self.labels[index]}
        features = self.features(index, speed)
        if self.freq_warp:
            features = warp_frequency(features, np.random.uniform(1 - self.freq_warp, 1 + self.freq_warp))
        return {"input_features": features, "labels": self.labels[index]}


@dataclass
class WhisperCollator:
    """Stack features; pad labels with -100 (ignored by the loss) and drop the decoder start token.

    The model prepends the start token itself when it shifts labels into decoder inputs. Items that
    carry a frozen encoder's states (``encoder_states``) become the model's ``encoder_outputs``.
    """

    decoder_start_token_id: int

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        key = "encoder_states" if "encoder_states" in items[0] else "input_features"
        features = torch.from_numpy(np.stack([item[key] for item in items]))
        width = max(len(item["labels"]) for item in items)
        labels = torch.full((len(items), width), -100, dtype=torch.long)
        for row, item in enumerate(items):
            labels[row, : len(item["labels"])] = torch.tensor(item["labels"], dtype=torch.long)
        if bool((labels[:, 0] == self.decoder_start_token_id).all()):
            labels = labels[:, 1:]
        if key == "encoder_states":
            return {"encoder_outputs": (features,), "labels": labels}
        return {"input_features": features, "labels": labels}


def use_deterministic_kernels(device_type: str) -> None:
    """Ask torch for deterministic kernels, so that one seed gives bit-identical weights.

    Without them two 2-thread CPU runs of the demo config differed by about 1e-6 after 100 steps
    and then drifted apart chaotically (dev WER 0.296 against 0.351 after 1300 steps); the cost
    on CPU was within timing noise. CUDA kernels without a deterministic version only warn.
    """
    if device_type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=device_type == "cuda")


def choose_precision(requested: str, device_type: str) -> tuple[str, str]:
    """The precision to train in and a note for the log: fp16 only on CUDA, fp32 (or bf16) elsewhere."""
    if requested == "auto":
        if device_type == "cuda":
            return "fp16", "precision auto: fp16 mixed precision on CUDA"
        return "fp32", f"precision auto: fp32 on {device_type} (fp16 needs CUDA; set precision: bf16 for bfloat16)"
    if requested == "fp16" and device_type != "cuda":
        return "fp32", f"precision fp16 requested but fp16 needs CUDA: training in fp32 on {device_type}"
    return requested, f"precision {requested} on {device_type}"


def wer_metric(tokenizer, normalize: NormalizeConfig):
    """compute_metrics for the Trainer: WER and CER of generated ids against label ids."""

    def compute(prediction) -> dict[str, float]:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        predictions = np.where(prediction.predictions == -100, pad, prediction.predictions)
        labels = np.where(prediction.label_ids == -100, pad, prediction.label_ids)
        hypotheses = tokenizer.batch_decode(predictions, skip_special_tokens=True)
        references = tokenizer.batch_decode(labels, skip_special_tokens=True)
        scores = score_transcripts(references, hypotheses, normalize)
        return {"wer": scores["wer"], "cer": scores["cer"]}

    return compute


def fingerprint(block: Mapping[str, Any], normalize: Mapping[str, Any], base_dir: str, manifests: Sequence[str]) -> str:
    """Hash of what a run depends on, so checkpoints of another run are never resumed."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"finetune": block, "normalize": normalize}, sort_keys=True).encode())
    for path in sorted(Path(base_dir).rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(base_dir)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    for manifest in manifests:
        digest.update(Path(manifest).read_bytes())
    return digest.hexdigest()


def last_complete_checkpoint(work_dir: Path) -> str | None:
    """The newest ``checkpoint-<step>`` of ``work_dir`` that holds its trainer state and weights (a run killed
    while the Trainer wrote or rotated one leaves it incomplete); None when there is none."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    steps = {}
    for path in work_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = path.name.rsplit("-", 1)[1]
        if step.isdigit() and (path / "trainer_state.json").is_file() and any(path.glob("model*.safetensors")):
            steps[int(step)] = path
    return str(steps[max(steps)]) if steps else None


def prepare_work_dir(work_dir: Path, key: str) -> str | None:
    """The last checkpoint in ``work_dir`` when it belongs to the same run; otherwise start afresh."""
    marker = work_dir / FINGERPRINT_FILE
    if work_dir.exists():
        same = marker.exists() and json.loads(marker.read_text()).get("fingerprint") == key
        if same:
            last = last_complete_checkpoint(work_dir)
            if last:
                return last
        else:
            log.info("%s holds checkpoints of another configuration or data: starting afresh", work_dir)
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True)
    marker.write_text(json.dumps({"fingerprint": key}))
    return None


def log_callback():
    """A TrainerCallback that sends the Trainer's loss / eval records to this module's log (timestamped, flushed)."""
    from transformers import TrainerCallback

    class LogRecords(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                log.info(
                    "step %d: %s",
                    state.global_step,
                    json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in logs.items()}),
                )

    return LogRecords()


def apply_training_overrides(model, block: Mapping[str, Any]) -> None:
    """Dropout and SpecAugment from the finetune block (model config keys of Whisper)."""
    if block["dropout"] is not None:
        model.config.dropout = float(block["dropout"])
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout) and module.p > 0:
                module.p = float(block["dropout"])
    spec = block["spec_augment"]
    model.config.apply_spec_augment = bool(spec["enabled"])
    model.config.mask_time_prob = float(spec["mask_time_prob"])
    model.config.mask_time_length = int(spec["mask_time_length"])
    model.config.mask_feature_prob = float(spec["mask_feature_prob"])
    model.config.mask_feature_length = int(spec["mask_feature_length"])


SNAPSHOTS_DIR = "snapshots"


def snapshot_callback(steps: Sequence[int], work: Path, processor):
    """A callback saving the model in training (and the processor) at each of ``steps`` to
    ``work/snapshots/step-<N>`` (save_pretrained format)."""
    from transformers import TrainerCallback

    wanted = {int(step) for step in steps}

    class Snapshot(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step in wanted and state.is_world_process_zero:
                with atomic_path(work / SNAPSHOTS_DIR / f"step-{state.global_step}", is_dir=True) as tmp:
                    model.save_pretrained(tmp)
                    processor.save_pretrained(tmp)
                log.info("snapshot of step %d saved", state.global_step)

    return Snapshot()


def write_snapshots(
    steps: Sequence[int], outputs: Sequence[str], work: Path, final_dir: str, summary: Mapping[str, Any]
) -> None:
    """Copy each step's snapshot to its output; a step the run never reached gets the final model (warned)."""
    for step, out in zip(steps, outputs, strict=True):
        source = work / SNAPSHOTS_DIR / f"step-{step}"
        note: dict[str, Any] = {"snapshot_step": int(step), "of_run": summary["global_step"]}
        if not source.is_dir():
            log.warning(
                "asr.finetune.snapshot_steps: step %d was never reached (training stopped at step %d); "
                "%s holds the final model",
                step,
                summary["global_step"],
                out,
            )
            source, note["note"] = (
                Path(final_dir),
                f"training stopped at step {summary['global_step']}: the final model",
            )
        with atomic_path(out, is_dir=True) as tmp:
            shutil.copytree(source, tmp, dirs_exist_ok=True)
            write_json(Path(tmp) / "training_config.json", {**summary, **note})
            record_checksum(tmp)  # SHA256SUMS of the directory (a copy of the model's is stale now)


def shorten_input_window(model, processor, seconds: int) -> None:
    """Cut a Whisper's input window to ``seconds`` (Whisper: 30 s), in place: feature extractor and encoder.

    The log-mel input is padded to the new window and the encoder keeps the first positional
    embeddings (sinusoids: the same values at the same positions), so encoding costs about
    window / 30 of the full one; the saved model and its processor keep the window, and
    transcription pads to it. Clips longer than the window are cut (the transcription log counts them).
    """
    from transformers import WhisperFeatureExtractor

    old = processor.feature_extractor
    if seconds >= old.chunk_length:
        log.info("input_window_s %s: the model's window is already %s s; unchanged", seconds, old.chunk_length)
        return
    extractor = WhisperFeatureExtractor(
        feature_size=old.feature_size,
        sampling_rate=old.sampling_rate,
        hop_length=old.hop_length,
        chunk_length=int(seconds),
        n_fft=old.n_fft,
        padding_value=old.padding_value,
        dither=getattr(old, "dither", 0.0),
    )
    encoder = model.get_encoder()
    positions = extractor.nb_max_frames // (encoder.conv1.stride[0] * encoder.conv2.stride[0])
    kept = encoder.embed_positions.weight.data[:positions].clone()
    encoder.embed_positions = torch.nn.Embedding(positions, kept.shape[1])
    encoder.embed_positions.weight.data.copy_(kept)
    encoder.embed_positions.requires_grad_(False)
    encoder.max_source_positions = positions
    model.config.max_source_positions = positions
    processor.feature_extractor = extractor
    log.info("input window cut from %s s to %s s (%d encoder positions)", old.chunk_length, seconds, positions)


def caches_encoder_states(block: Mapping[str, Any]) -> bool:
    """Whether the frozen encoder's training outputs are computed once: nothing may change its input per epoch."""
    return (
        bool(block["freeze_encoder"])
        and bool(block["cache_features"])
        and int(block["dataloader_num_workers"]) == 0
        and not float(block["freq_warp"])
        and not block["spec_augment"]["enabled"]
    )


@dataclass
class ModelToTrain:
    """Step 1's result: the base model with the block's overrides, its processor, and what the summary records."""

    model: Any
    processor: Any
    source_dir: str
    trainable_parameters: int
    encoder_states_cached: bool


@dataclass
class Datasets:
    """Step 2's result: the training and dev utterances, and the manifests they come from."""

    train: WhisperSpeechDataset
    dev: WhisperSpeechDataset
    train_manifests: list[str]
    dev_manifest: str


@dataclass
class TrainingSetup:
    """Step 3's result: the Trainer's arguments and what they were chosen from."""

    args: Any
    work: Path
    device: torch.device
    precision: str
    precision_note: str
    resumed_from: str | None


def load_model(block: Mapping[str, Any]) -> ModelToTrain:
    """1. Model: ``block["base_model"]`` and its processor, set to the block's language and task, with its
    dropout / SpecAugment overrides, input window and frozen encoder."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    source_dir = resolve_model_source(
        block["base_model"], config_key="asr.finetune.base_model", hub_timeout_s=float(block["hub_timeout_s"])
    )
    processor = WhisperProcessor.from_pretrained(source_dir, local_files_only=True)
    processor.tokenizer.set_prefix_tokens(language=block["language"], task=block["task"], predict_timestamps=False)
    model = WhisperForConditionalGeneration.from_pretrained(source_dir, local_files_only=True, dtype=torch.float32)
    model.generation_config.language, model.generation_config.task = block["language"], block["task"]
    model.generation_config.forced_decoder_ids = None
    model.config.forced_decoder_ids = None
    apply_training_overrides(model, block)
    if block["input_window_s"]:
        shorten_input_window(model, processor, int(block["input_window_s"]))
    if block["freeze_encoder"]:
        model.freeze_encoder()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info(
        "%d of %d parameters trained%s",
        trainable,
        model.num_parameters(),
        " (encoder frozen)" if block["freeze_encoder"] else "",
    )
    cache_states = caches_encoder_states(block)
    if block["freeze_encoder"]:
        log.info(
            "frozen encoder: %s",
            "its outputs for the training clips are computed once and kept in memory"
            if cache_states
            else "recomputed every step (cache_features off, workers, freq_warp or spec_augment)",
        )
    return ModelToTrain(model, processor, source_dir, trainable, cache_states)


def load_datasets(
    block: Mapping[str, Any],
    normalize: NormalizeConfig,
    train_manifests: Sequence[str],
    dev_manifest: str,
    base: ModelToTrain,
    work: Path,
) -> Datasets:
    """2. Datasets: the training splits (augmented as the block says) and the dev split, targets normalised;
    with ``cache_features`` their caches under ``work``/cache. Clips longer than the window are counted."""
    train_data = load_transcribed_split(train_manifests, normalize, block["train_splits"])
    dev_data = load_transcribed_split([dev_manifest], normalize, [block["eval_split"]])
    window_s = base.processor.feature_extractor.chunk_length
    for name, frame in (("training data", train_data), (dev_manifest, dev_data)):
        report_long_clips(name, frame["utt_id"].tolist(), frame["duration_s"].tolist(), window_s)
    max_labels = base.model.config.max_target_positions
    speed = block["speed_perturbation"]
    caches = {split: work / CACHE_DIR / split if block["cache_features"] else None for split in ("train", "dev")}
    train_set = WhisperSpeechDataset(
        train_data,
        base.processor,
        max_labels,
        caches["train"],
        float(block["freq_warp"]),
        speed["factors"] if speed["enabled"] else (),
        base.model.get_encoder() if base.encoder_states_cached else None,
    )
    dev_set = WhisperSpeechDataset(dev_data, base.processor, max_labels, caches["dev"])
    log.info(
        "training on %d utterances (%s), evaluating on %d (%s)",
        len(train_set),
        ", ".join(train_manifests),
        len(dev_set),
        dev_manifest,
    )
    return Datasets(train_set, dev_set, list(train_manifests), dev_manifest)


def per_process_batch(block: Mapping[str, Any]) -> int:
    """Training utterances per process and step: the config's batch (the global batch) split across
    ``processes``, so that the run does not depend on their number beyond float order."""
    batch, processes = int(block["batch_size"]), int(block["processes"])
    if batch % processes:
        raise ValueError(
            f"config asr.finetune.batch_size: {batch} is the global batch, split across asr.finetune.processes "
            f"({processes}); it must be a multiple of it"
        )
    return batch // processes


def distributed_backend(device: torch.device) -> str:
    """The collective backend of data-parallel processes on ``device``: nccl on CUDA, gloo on the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def evaluation_schedule(block: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate and save every ``eval_steps`` optimiser steps, or once per epoch when it is 0."""
    if block["eval_steps"]:
        steps = int(block["eval_steps"])
        return {"eval_strategy": "steps", "eval_steps": steps, "save_strategy": "steps", "save_steps": steps}
    return {"eval_strategy": "epoch", "save_strategy": "epoch"}


def training_arguments(
    block: Mapping[str, Any], work: Path, precision: str, device: torch.device, prompt_tokens: int
) -> Any:
    """The Seq2SeqTrainingArguments of the block: checkpoints in ``work``, the best by dev WER kept."""
    from transformers import Seq2SeqTrainingArguments

    seed = int(block["seed"])
    processes = int(block["processes"])
    return Seq2SeqTrainingArguments(
        output_dir=str(work),
        per_device_train_batch_size=per_process_batch(block),
        gradient_accumulation_steps=int(block["gradient_accumulation_steps"]),
        per_device_eval_batch_size=max(1, int(block["eval_batch_size"]) // processes),
        learning_rate=float(block["learning_rate"]),
        weight_decay=float(block["weight_decay"]),
        warmup_steps=int(block["warmup_steps"]),
        lr_scheduler_type=block["lr_scheduler"],
        num_train_epochs=float(block["max_epochs"]),
        max_steps=int(block["max_steps"]) if block["max_steps"] else -1,
        max_grad_norm=float(block["max_grad_norm"]),
        optim="adamw_torch",
        fp16=precision == "fp16",
        bf16=precision == "bf16",
        activation_checkpointing=bool(block["gradient_checkpointing"]),
        use_cache=not block["gradient_checkpointing"],
        **evaluation_schedule(block),
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="wer",
        greater_is_better=False,
        predict_with_generate=True,
        generation_num_beams=1,
        # Prompt tokens + eval_max_new_tokens: an early checkpoint that never ends a sentence costs
        # that many steps per dev clip, not the model's limit (448 for whisper-*).
        generation_max_length=prompt_tokens + int(block["eval_max_new_tokens"])
        if block["eval_max_new_tokens"]
        else None,
        logging_steps=int(block["logging_steps"]),
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=device.type == "cpu",
        dataloader_num_workers=int(block["dataloader_num_workers"]),
        train_sampling_strategy="group_by_length" if block["group_by_length"] else "random",
        remove_unused_columns=False,
        disable_tqdm=True,
        ddp_backend=distributed_backend(device) if processes > 1 else None,
    )


def open_work_dir(
    block: Mapping[str, Any],
    normalize_block: Mapping[str, Any],
    source_dir: str,
    manifests: Sequence[str],
    work: Path,
) -> str | None:
    """The work directory of this run (config, base model and data: its fingerprint), emptied when it
    belongs to another; the last checkpoint to resume from, if any."""
    resume = prepare_work_dir(work, fingerprint(block, normalize_block, source_dir, manifests))
    if resume:
        log.info("resuming from %s", resume)
    return resume


def training_setup(
    block: Mapping[str, Any], base: ModelToTrain, device: torch.device, work: Path, resume: str | None
) -> TrainingSetup:
    """3. Training arguments: the precision the device allows, the work directory (opened by
    ``open_work_dir``, ``resume`` its last checkpoint) and the Trainer's arguments."""
    precision, note = choose_precision(block["precision"], device.type)
    log.info(note)
    args = training_arguments(block, work, precision, device, len(base.processor.tokenizer.prefix_tokens))
    return TrainingSetup(args, work, device, precision, note, resume)


def data_parallel_trainer() -> type:
    """A Seq2SeqTrainer whose training loss is the mean over the tokens of the global batch, as one process's is.

    Whisper's own loss is each process's token mean, and the Trainer scales it by the number of processes
    (it takes Whisper for a model that divides by the global token count): gradients twice as large with
    two processes, weighted per process. Here each process's summed token loss is divided by the
    global count (``num_items_in_batch``, gathered over processes and accumulation steps) times the
    processes, which DistributedDataParallel's average of gradients undoes.
    """
    from transformers import Seq2SeqTrainer

    class DataParallelTrainer(Seq2SeqTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(**inputs)
            loss = outputs.loss
            if num_items_in_batch is not None:  # training (evaluation passes none: Whisper's mean)
                logits = outputs.logits
                summed = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]).float(),
                    inputs["labels"].reshape(-1).to(logits.device),
                    ignore_index=-100,
                    reduction="sum",
                )
                loss = summed / num_items_in_batch.to(summed.device) * self.accelerator.num_processes
            return (loss, outputs) if return_outputs else loss

    return DataParallelTrainer


def build_trainer(
    block: Mapping[str, Any],
    setup: TrainingSetup,
    base: ModelToTrain,
    data: Datasets,
    normalize: NormalizeConfig,
    callbacks: Sequence[Any],
) -> Any:
    """4. Trainer: dev WER as the metric, early stopping, ``callbacks``, snapshots, the log instead of the printer."""
    from transformers import EarlyStoppingCallback, PrinterCallback, Seq2SeqTrainer

    trainer_class = data_parallel_trainer() if int(block["processes"]) > 1 else Seq2SeqTrainer
    trainer = trainer_class(
        model=base.model,
        args=setup.args,
        train_dataset=data.train,
        eval_dataset=data.dev,
        data_collator=WhisperCollator(base.model.config.decoder_start_token_id),
        processing_class=base.processor,
        compute_metrics=wer_metric(base.processor.tokenizer, normalize),
        callbacks=[
            EarlyStoppingCallback(
                early_stopping_patience=int(block["early_stopping_patience"]),
                early_stopping_threshold=float(block["early_stopping_threshold"]),
            ),
            *callbacks,
        ],
    )
    if block["snapshot_steps"]:
        trainer.add_callback(snapshot_callback(block["snapshot_steps"], setup.work, base.processor))
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(log_callback())
    return trainer


def training_summary(
    block: Mapping[str, Any],
    normalize_block: Mapping[str, Any],
    base: ModelToTrain,
    data: Datasets,
    setup: TrainingSetup,
    trainer: Any,
    training_loss: float,
    elapsed: float,
) -> dict[str, Any]:
    """5a. What the run was and how it went: saved as training_config.json beside the model."""
    state = trainer.state
    evaluations = [
        {"step": e["step"], "epoch": e.get("epoch"), "wer": e["eval_wer"], "cer": e["eval_cer"]}
        for e in state.log_history
        if "eval_wer" in e
    ]
    log.info(
        "best dev WER %.4f at %s after %d steps (%.0f s)",
        state.best_metric,
        state.best_model_checkpoint,
        state.global_step,
        elapsed,
    )
    return {
        "base_model": block["base_model"],
        "base_model_dir": base.source_dir,
        "train_manifests": data.train_manifests,
        "dev_manifest": data.dev_manifest,
        "n_train": len(data.train),
        "n_dev": len(data.dev),
        "device": str(setup.device),
        "processes": int(block["processes"]),
        "precision": setup.precision,
        "precision_note": setup.precision_note,
        "resumed_from": setup.resumed_from,
        "trainable_parameters": base.trainable_parameters,
        "encoder_states_cached": base.encoder_states_cached,
        "input_window_s": base.processor.feature_extractor.chunk_length,
        "global_step": state.global_step,
        "epochs": state.epoch,
        "train_seconds": round(elapsed, 1),
        "train_loss": training_loss,
        "best_checkpoint": state.best_model_checkpoint,
        "best_dev_wer": state.best_metric,
        "stopped_early": state.global_step < state.max_steps,
        "evaluations": evaluations,
        "finetune": dict(block),
        "normalize": dict(normalize_block),
    }


def save_outputs(
    trainer: Any,
    processor: Any,
    summary: Mapping[str, Any],
    out_dir: str,
    snapshot_dirs: Sequence[str],
    block: Mapping[str, Any],
    work: Path,
) -> None:
    """5b. The model (the best checkpoint's weights), its processor and summary to ``out_dir``; the
    snapshots to ``snapshot_dirs``; the work directory removed unless ``keep_checkpoints``. Only the
    first of data-parallel processes writes."""
    if not trainer.is_world_process_zero():
        return
    with atomic_path(out_dir, is_dir=True) as tmp:
        trainer.model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        write_json(Path(tmp) / "training_config.json", summary)
        record_checksum(tmp)  # SHA256SUMS, which predict checks
    write_snapshots(block["snapshot_steps"], snapshot_dirs, work, out_dir, summary)
    if not block["keep_checkpoints"]:
        shutil.rmtree(work, ignore_errors=True)


def finetune(
    block: Mapping[str, Any],
    normalize_block: Mapping[str, Any],
    train_manifests: Sequence[str],
    dev_manifest: str,
    out_dir: str,
    work_dir: str,
    threads: int,
    callbacks: Sequence[Any] = (),
    snapshot_dirs: Sequence[str] = (),
) -> dict[str, Any]:
    """Train ``block["base_model"]`` on the training manifests, select by dev WER, save to ``out_dir``
    (and the model at ``block["snapshot_steps"]`` to ``snapshot_dirs``, in that order); the summary.

    In this process, or with ``block["processes"]`` > 1 in that many (``launch_processes``;
    ``callbacks`` then cannot be given).
    """
    if len(block["snapshot_steps"]) != len(snapshot_dirs):
        raise ValueError(
            f"asr.finetune.snapshot_steps {block['snapshot_steps']}: {len(snapshot_dirs)} output directories given"
        )
    per_process_batch(block)  # a batch that does not split fails before anything starts
    if int(block["processes"]) > 1:
        if callbacks:
            raise ValueError("callbacks run in this process only: not with asr.finetune.processes > 1")
        return launch_processes(
            block, normalize_block, train_manifests, dev_manifest, out_dir, work_dir, threads, snapshot_dirs
        )
    return train_process(
        block, normalize_block, train_manifests, dev_manifest, out_dir, work_dir, threads, callbacks, snapshot_dirs
    )


def train_process(
    block: Mapping[str, Any],
    normalize_block: Mapping[str, Any],
    train_manifests: Sequence[str],
    dev_manifest: str,
    out_dir: str,
    work_dir: str,
    threads: int,
    callbacks: Sequence[Any] = (),
    snapshot_dirs: Sequence[str] = (),
    resume: str | None = None,
    work_opened: bool = False,
) -> dict[str, Any]:
    """The training of one process (the only one, or a rank of ``launch_processes``, whose launcher
    opened the work directory: ``work_opened`` with its ``resume`` checkpoint); the summary.

    After seeding, in the order of transformers' seq2seq example: 1. model (load_model), 2. datasets
    (load_datasets), 3. training arguments (training_setup), 4. trainer (build_trainer) and training,
    5. summary and saving (training_summary, save_outputs).
    """
    from transformers import set_seed

    torch.set_num_threads(threads)
    set_seed(int(block["seed"]))
    device = resolve_device(block["device"])
    use_deterministic_kernels(device.type)
    normalize = NormalizeConfig.from_dict(normalize_block)
    work = Path(work_dir)

    base = load_model(block)
    if not work_opened:
        resume = open_work_dir(block, normalize_block, base.source_dir, [*train_manifests, dev_manifest], work)
    data = load_datasets(block, normalize, train_manifests, dev_manifest, base, work)
    setup = training_setup(block, base, device, work, resume)
    trainer = build_trainer(block, setup, base, data, normalize, callbacks)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=setup.resumed_from)
    elapsed = time.perf_counter() - started
    summary = training_summary(block, normalize_block, base, data, setup, trainer, result.training_loss, elapsed)
    save_outputs(trainer, base.processor, summary, out_dir, snapshot_dirs, block, setup.work)
    return summary


def launch_processes(
    block: Mapping[str, Any],
    normalize_block: Mapping[str, Any],
    train_manifests: Sequence[str],
    dev_manifest: str,
    out_dir: str,
    work_dir: str,
    threads: int,
    snapshot_dirs: Sequence[str],
) -> dict[str, Any]:
    """Run ``train_process`` as ``block["processes"]`` data-parallel processes on this node (torch.distributed.run,
    standalone) and wait for them; the summary rank 0 saved with the model.

    The work directory is opened here, before any process starts, so that they all resume from the
    same checkpoint; ``threads`` are shared among them. Their output goes where this process's goes
    (the rule's log).
    """
    processes = int(block["processes"])
    work = Path(work_dir)
    source_dir = resolve_model_source(
        block["base_model"], config_key="asr.finetune.base_model", hub_timeout_s=float(block["hub_timeout_s"])
    )
    resume = open_work_dir(block, normalize_block, source_dir, [*train_manifests, dev_manifest], work)
    launch = work / LAUNCH_FILE
    write_json(
        launch,
        {
            "block": dict(block),
            "normalize_block": dict(normalize_block),
            "train_manifests": list(train_manifests),
            "dev_manifest": dev_manifest,
            "out_dir": out_dir,
            "work_dir": work_dir,
            "threads": max(1, threads // processes),
            "snapshot_dirs": list(snapshot_dirs),
            "resume": resume,
        },
    )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        "--max-restarts=0",
        "-m",
        "workflow_scripts.asr.train_worker",
        str(launch),
    ]
    log.info("launching %d data-parallel processes: %s", processes, " ".join(command))
    environment = process_environment(max(1, threads // processes))
    code = subprocess.run(command, env=environment, preexec_fn=die_with_parent, check=False).returncode
    if code != 0:
        raise RuntimeError(
            f"the {processes} fine-tuning processes (asr.finetune.processes) failed with exit status {code}: "
            "their messages are above in this log; rerun to resume from the last checkpoint"
        )
    return json.loads((Path(out_dir) / "training_config.json").read_text())


def die_with_parent() -> None:
    """Have Linux kill this process when its parent dies (prctl PR_SET_PDEATHSIG), so that a killed job
    leaves no training process behind to race its rerun; nothing on other systems."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1: PR_SET_PDEATHSIG


def process_environment(threads: int) -> dict[str, str]:
    """The environment of launched processes: this package importable, ``threads`` intra-op threads each."""
    import workflow_scripts  # this file may be Snakemake's copy of the script: ask the package where it is

    package_root = str(Path(workflow_scripts.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": str(threads)}


def main(job: Any) -> None:
    """Entry point of the finetune_whisper rule (``job``: the rule's ``snakemake`` object)."""
    finetune(
        job.params.finetune,
        job.params.normalize,
        [str(path) for path in job.input.train],
        str(job.input.dev),
        str(job.output.model),
        job.params.work_dir,
        job.threads,
        snapshot_dirs=[str(path) for path in job.output.snapshots],
    )


if __name__ == "__main__":
    run_rule(main, keep=True)
