"""Transcribe one split with the selected ASR model -> parquet (utt_id, hypothesis, reference).

Utterances are decoded in length-sorted batches with a progress bar; the parquet keeps the
manifest's row order and carries the model and settings as schema metadata (``dfat``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from workflow_scripts.asr.backends import AsrBackend, BackendSpec, load_backend, load_waveform, transcribe_waveforms
from workflow_scripts.common.features import METADATA_KEY
from workflow_scripts.common.files import atomic_path, parse_json_argument
from workflow_scripts.common.logs import setup_logging
from workflow_scripts.common.manifest import read_manifest

log = logging.getLogger(__name__)

TRANSCRIPT_COLUMNS = ["utt_id", "hypothesis", "reference"]
# The model reference that stands for the output of finetune_whisper.
FINETUNED = "finetuned"


def load_waveforms(paths: Sequence[str], sampling_rate: int) -> list[np.ndarray]:
    """Every file as mono float32 at ``sampling_rate``."""
    return [load_waveform(path, sampling_rate) for path in paths]


def transcribe_manifest(
    manifest: str | os.PathLike, backend: AsrBackend, batch_size: int, progress: bool = True
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Transcripts of every utterance of ``manifest`` and timing figures (seconds, real-time factor)."""
    frame = read_manifest(manifest)
    waveforms = load_waveforms(frame["audio_path"].tolist(), backend.sampling_rate)
    audio_seconds = sum(len(w) for w in waveforms) / backend.sampling_rate
    if backend.max_input_seconds:
        longer = [u for u, w in zip(frame["utt_id"], waveforms) if len(w) > backend.max_input_seconds * backend.sampling_rate]
        if longer:
            log.warning("%s: %d utterances are longer than the model's %.1f s window and are cut (e.g. %s)",
                        manifest, len(longer), backend.max_input_seconds, longer[0])
    started = time.perf_counter()
    hypotheses = transcribe_waveforms(backend, waveforms, batch_size, progress=progress)
    seconds = time.perf_counter() - started
    transcripts = pd.DataFrame({"utt_id": frame["utt_id"], "hypothesis": hypotheses, "reference": frame["text"]})
    timing = {"utterances": len(frame), "audio_seconds": round(audio_seconds, 2), "decode_seconds": round(seconds, 2),
              "real_time_factor": round(seconds / audio_seconds, 4) if audio_seconds else None}
    return transcripts, timing


def write_transcripts(path: str | os.PathLike, transcripts: pd.DataFrame, metadata: dict[str, Any]) -> None:
    """Parquet with the contract's columns and ``metadata`` as JSON, written atomically."""
    missing = [c for c in TRANSCRIPT_COLUMNS if c not in transcripts.columns]
    if missing:
        raise ValueError(f"{path}: transcripts lack columns {missing}")
    table = pa.Table.from_pandas(transcripts.loc[:, TRANSCRIPT_COLUMNS], preserve_index=False)
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata, ensure_ascii=False).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_transcripts(path: str | os.PathLike) -> pd.DataFrame:
    """A transcript parquet, checking the contract's columns and unique utt_id."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: transcripts not found")
    frame = pd.read_parquet(path)
    missing = [c for c in TRANSCRIPT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: transcripts lack columns {missing} (has {list(frame.columns)})")
    duplicated = frame["utt_id"][frame["utt_id"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"{path}: duplicate utt_id values {duplicated[:5]}")
    return frame


def load_transcriber(config: Mapping[str, Any], run_dir: str | os.PathLike, threads: int):
    """predict's ASR stage: ``transcribe(audio_paths) -> list[str]`` with a finished run's model."""
    import torch

    torch.set_num_threads(max(1, threads))
    block = config["asr"]["transcribe"]
    model = str(Path(run_dir) / "asr" / "model") if block["model"] == FINETUNED else block["model"]
    backend = load_backend(BackendSpec.from_dict({**block, "model": model}), device=block["device"],
                           config_key="asr.transcribe.model")

    def transcribe(paths: Sequence[str]) -> list[str]:
        waveforms = load_waveforms(list(paths), backend.sampling_rate)
        return transcribe_waveforms(backend, waveforms, int(block["batch_size"]), progress=False)

    return transcribe


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="asr.transcribe block as JSON")
    parser.add_argument("--model-dir", nargs="?", help="the model directory when a rule of this workflow built it")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    setup_logging()
    import torch

    torch.set_num_threads(args.threads)
    block = parse_json_argument(args.config)
    model = args.model_dir or block["model"]
    if model == FINETUNED:
        raise SystemExit("asr.transcribe.model is 'finetuned' but no --model-dir was given")
    spec = BackendSpec.from_dict({**block, "model": model})
    backend = load_backend(spec, device=block["device"], config_key="asr.transcribe.model")
    transcripts, timing = transcribe_manifest(args.manifest, backend, int(block["batch_size"]))
    log.info("%s: %d utterances, %.1f s of audio in %.1f s (real-time factor %.3f)", args.manifest,
             timing["utterances"], timing["audio_seconds"], timing["decode_seconds"], timing["real_time_factor"] or 0)
    write_transcripts(args.out, transcripts, {**backend.describe(), "manifest": args.manifest, "batch_size": block["batch_size"],
                                              "timing": timing})


if __name__ == "__main__":
    main()
