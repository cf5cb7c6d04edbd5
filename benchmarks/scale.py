"""How each stage grows with the corpus: wall, CPU, peak RSS and disk per stage and size, and the
fitted growth exponents (log-log slopes against N).

Synthetic corpora of N utterances (seeded noise clips of 0.25-0.75 s at 16 kHz with Vietnamese
sentences as text; N = a multiple of the demo's 640, ``--sizes 1x 10x 100x``), then each stage's
step through its rule's entry point (the step module's ``main(job)``, as Snakemake's ``script:``
calls it), one child process per stage and size, measured with ``os.wait4`` (CPU seconds of the
child and its workers, the largest peak RSS among them), with the demo's small models so that the
data path dominates:

* ``transcribe``: the demo's tiny Whisper (``asr.demo_model``, random weights; ``max_new_tokens``
  4 so that decoding a clip costs the same at every size), ``asr.transcribe`` otherwise;
* ``sefe``: extract_sefe with the weights-free ``handcrafted`` backend, ``sefe.threads`` workers;
* ``frames``: extract_sefe_frames, the same backend's frame matrices (the neural heads' input);
* ``f0``: extract_prosody_f0 (``sefe.prosody.f0``);
* ``tefe``: extract_tefe with a random-initialised LSTM encoder (``tefe.models.LSTM``, 1024-d
  embedding) over transcripts equal to the reference text;
* ``pool``: pool_features of the acoustic features (``fusion.pooling.acoustic``);
* ``ingest``: ingest_speech_corpus on ``--rows`` table rows over as many short files (0.25 s,
  8 kHz), once per ``--ingest-checks`` mode (``audio_check`` full and header).

    python benchmarks/scale.py --sizes 1x 10x 100x --workdir /tmp/scale --csv docs/figures/scale.csv
    python benchmarks/scale.py --stages ingest --rows 1000000 --workdir /tmp/scale
    python benchmarks/scale.py --stages transcribe --sizes 1x --threads 1

Corpora are kept under ``--workdir`` and reused by later runs; every run appends its rows to the
CSV (stage, mode, n, wall_s, cpu_s, peak_rss_mb, disk_mb, load) and prints the table and, per
stage, the exponents fitted over the sizes in the CSV.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
import yaml

import workflow_scripts
from workflow_scripts.common.manifest import SPEECH_COLUMNS, write_manifest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fusion_scale import run_job  # noqa: E402 - the same child-process job runner

REPO = Path(workflow_scripts.__file__).resolve().parents[1]
DEMO_UTTERANCES = 640
STAGES = ["sefe", "frames", "f0", "tefe", "pool", "transcribe", "ingest"]
SPLIT = "train"
CLASSES = ["neutral", "negative"]
SENTENCES = [
    "tôi đi học mỗi ngày",
    "mẹ tôi nấu cơm",
    "hôm nay trời đẹp quá",
    "anh ấy rất tức giận",
    "chị ấy buồn lắm",
    "chúng tôi đọc sách",
    "tại sao anh lại làm như vậy",
    "bộ phim này thật là hay",
]
CLIP_SECONDS = (0.25, 0.75)  # short clips: the per-utterance path, not the audio length, is measured
CSV_COLUMNS = ["stage", "mode", "n", "wall_s", "cpu_s", "peak_rss_mb", "disk_mb", "load"]


def config() -> dict[str, Any]:
    """config.yaml validated against the schemas (defaults and seeds filled in)."""
    from workflow_scripts.common.config_schema import validate_schema

    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    return validate_schema(raw, REPO / "schemas" / "config.schema.yaml")


def size_of(text: str) -> int:
    """``10x`` -> 10 x the demo's 640 utterances; a plain number is taken as is."""
    return int(float(text[:-1]) * DEMO_UTTERANCES) if text.endswith("x") else int(text)


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """A 16-bit mono PCM WAV file of ``samples`` (int16): the 44-byte header and the data."""
    data = samples.astype("<i2").tobytes()
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, rate, 2 * rate, 2, 16)  # PCM, mono, 16 bit
    riff = struct.pack("<4sI4s", b"RIFF", 36 + len(data), b"WAVE")
    return riff + fmt + struct.pack("<4sI", b"data", len(data)) + data


def write_clips(folder: Path, n: int, rate: int, seconds: tuple[float, float], seed: int) -> list[str]:
    """``n`` seeded noise clips (16-bit WAV) of uniform random length in ``seconds``; their paths.

    Each clip is a slice of one noise buffer (written as bytes: a million files in minutes), its
    first two samples set to its index, so no two clips hold the same bytes (ingestion refuses the
    same audio in two splits).
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 3000, rate * 60).clip(-32768, 32767).astype(np.int16)
    lengths = (rate * rng.uniform(*seconds, size=n)).astype(int)
    starts = rng.integers(0, len(noise) - lengths.max(), size=n)
    paths = [str(folder / f"u{i:07d}.wav") for i in range(n)]
    for index, (path, start, length) in enumerate(zip(paths, starts, lengths, strict=True)):
        if not os.path.exists(path):
            clip = noise[start : start + length].copy()
            clip[:2] = (index >> 15, index & 0x7FFF)
            Path(path).write_bytes(wav_bytes(clip, rate))
    return paths


def write_corpus(root: Path, n: int, seed: int = 0) -> Path:
    """A manifest of ``n`` utterances (clips under ``root/wav``), and transcripts equal to its text."""
    manifest = root / f"{SPLIT}.tsv"
    if manifest.exists():
        return root
    from workflow_scripts.asr.transcripts import write_transcripts

    paths = write_clips(root / "wav", n, 16000, CLIP_SECONDS, seed)
    rng = np.random.default_rng(seed + 1)
    frame = pd.DataFrame(
        {
            "utt_id": [Path(p).stem for p in paths],
            "audio_path": paths,
            "duration_s": [round(sf.info(p).duration, 4) for p in paths],  # as ingestion writes it
            "sample_rate": 16000,
            "text": [SENTENCES[i] for i in rng.integers(0, len(SENTENCES), n)],
            "label": [CLASSES[i] for i in rng.integers(0, 2, n)],
            "split": SPLIT,
            "speaker": [f"spk{i % 40:02d}" for i in range(n)],
        }
    )
    transcripts = frame.loc[:, ["utt_id", "text"]].assign(hypothesis=frame["text"], reference=frame["text"])
    write_transcripts(root / "transcripts.parquet", transcripts, {"backend": "synthetic"})
    write_manifest(frame, manifest, SPEECH_COLUMNS)
    return root


def build_models(models: Path, cfg: dict[str, Any]) -> None:
    """The demo's tiny Whisper (random weights) and a random-initialised LSTM text encoder."""
    import torch

    from workflow_scripts.asr.demo_model import build_demo_whisper
    from workflow_scripts.tefe.models import TextEncoder, save_checkpoint
    from workflow_scripts.tefe.text import build_vocabulary, text_settings

    whisper = models / "whisper"
    if not (whisper / "config.json").exists():
        model, processor = build_demo_whisper(SENTENCES, cfg["asr"]["demo_model"])
        model.save_pretrained(whisper)
        processor.save_pretrained(whisper)
    if not (models / "tefe.pt").exists():
        tefe = cfg["tefe"]
        vocab = build_vocabulary(SENTENCES, text_settings(tefe["text"]))
        vocab.save(models / "vocab.json")
        torch.manual_seed(0)
        embedding = torch.randn(len(vocab), int(tefe["embedding"]["dim"]))
        encoder = TextEncoder("LSTM", embedding, len(CLASSES), tefe["models"]["LSTM"])
        save_checkpoint(models / "tefe.pt", encoder, CLASSES)


def corpus_job(stage: str, data: Path, models: Path, out: Path, cfg: dict[str, Any], threads: int) -> dict[str, Any]:
    """The job of ``stage`` on the corpus in ``data``: module, input, output, params, wildcards, threads."""
    manifest = str(data / f"{SPLIT}.tsv")
    sefe = cfg["sefe"]
    features = str(out / "sefe.parquet")
    jobs = {
        "transcribe": {
            "module": "workflow_scripts.asr.transcribe",
            "input": {"manifest": manifest, "finetuned": []},
            "output": {"transcripts": str(out / "transcripts.parquet")},
            "params": {
                "transcribe": {**cfg["asr"]["transcribe"], "model": str(models / "whisper"), "max_new_tokens": 4}
            },
            "wildcards": {"system": "demo", "split": SPLIT},
        },
        "sefe": {
            "module": "workflow_scripts.sefe.extract",
            "input": {"manifest": manifest},
            "output": {"features": features},
            "params": {"backend": sefe["handcrafted"], "preprocessing": sefe["preprocessing"]},
            "wildcards": {"backend": "handcrafted", "split": SPLIT},
        },
        "frames": {
            "module": "workflow_scripts.sefe.frames",
            "input": {"manifest": manifest},
            "output": {"frames": str(out / "frames.parquet")},
            "params": {"backend": sefe["handcrafted"], "preprocessing": sefe["preprocessing"]},
            "wildcards": {"backend": "handcrafted", "split": SPLIT},
        },
        "f0": {
            "module": "workflow_scripts.sefe.prosody_f0",
            "input": {"manifest": manifest},
            "output": {"f0": str(out / "f0.parquet")},
            "params": {"f0": sefe["prosody"]["f0"], "preprocessing": sefe["preprocessing"]},
            "wildcards": {"split": SPLIT},
        },
        "tefe": {
            "module": "workflow_scripts.tefe.extract",
            "input": {
                "model": str(models / "tefe.pt"),
                "vocab": str(models / "vocab.json"),
                "transcripts": str(data / "transcripts.parquet"),
                "manifest": manifest,
            },
            "output": {"features": str(out / "tefe.parquet")},
            "params": {"column": "hypothesis", "extract": cfg["tefe"]["extract"]},
            "wildcards": {"split": SPLIT},
        },
        "pool": {
            "module": "workflow_scripts.fusion.pooling",
            "input": {"features": [features], "manifests": [manifest]},
            "output": {"pooled": [str(out / "pooled.parquet")]},
            "params": {"pooling": cfg["fusion"]["pooling"]["acoustic"], "classes": CLASSES, "splits": [SPLIT]},
            "wildcards": {"modality": "acoustic"},
        },
    }
    return {**jobs[stage], "threads": threads}


def ingest_job(root: Path, rows: int, mode: str, cfg: dict[str, Any], threads: int) -> dict[str, Any]:
    """ingest_speech_corpus on a table of ``rows`` short files (written once under ``root``, shared by the
    tables of every size)."""
    table = root / f"table_{rows}.tsv"
    if not table.exists():
        paths = write_clips(root / "wav", rows, 8000, (0.25, 0.25), seed=1)  # the first ``rows`` of one pool
        frame = pd.DataFrame(
            {
                "path": [os.path.relpath(p, root) for p in paths],
                "emotion": [CLASSES[i % 2] for i in range(rows)],
                "spk": [f"spk{i % 200:03d}" for i in range(rows)],
            }
        )
        frame.to_csv(table, sep="\t", index=False)
    from workflow_scripts.common.config_schema import block_defaults

    corpus = block_defaults(
        "corpora.scale",
        {
            "table": str(table),
            "columns": {"audio_path": "path", "label": "emotion", "speaker": "spk"},
            "label_map": {c: c for c in CLASSES},
            "split": {"fractions": dict(zip(cfg["task"]["splits"], [0.7, 0.1, 0.1, 0.1], strict=False)), "seed": 0},
            "audio_check": mode,
        },
    )
    splits = list(cfg["task"]["splits"])
    out = root / f"out_{rows}_{mode}"
    return {
        "module": "workflow_scripts.data.ingest_speech",
        "input": {"table": str(table)},
        "output": {
            "manifests": [str(out / f"{s}.tsv") for s in splits],
            "skipped": str(out / "skipped.tsv"),
            "summary": str(out / "summary.json"),
        },
        "params": {"corpus": corpus, "classes": CLASSES, "splits": splits, "train_split": splits[0], "strict": True},
        "wildcards": {"corpus": "scale"},
        "threads": threads,
    }


def disk_mb(paths: list[str]) -> float:
    """Size of the output files (MB)."""
    return sum(os.path.getsize(p) for p in paths if os.path.isfile(p)) / 2**20


def outputs(job: dict[str, Any]) -> list[str]:
    found = []
    for value in job["output"].values():
        found += value if isinstance(value, list) else [value]
    return found


def measure(job: dict[str, Any], spec: Path) -> dict[str, float]:
    """Run ``job`` in a child process (``--job``) under ``/usr/bin/time``: wall and CPU seconds (the
    child and its workers), the largest peak RSS among them (MB) and the size of its outputs (MB).

    Through ``time`` because a process's peak RSS counts the memory of the process it was forked
    from (Linux keeps the high-water mark across exec): ``time`` is small, this script is not.
    """
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps({**job, "log": str(spec.with_suffix(".log"))}))
    usage = spec.with_suffix(".time")
    command = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(usage), sys.executable, __file__, "--job", str(spec)]
    if subprocess.run(command, check=False).returncode != 0:
        raise SystemExit(f"{job['module']} failed; log {spec.with_suffix('.log')}")
    wall, user, system, peak_kb = (float(v) for v in usage.read_text().split()[-4:])
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(user + system, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "disk_mb": round(disk_mb(outputs(job)), 2),
        "load": round(os.getloadavg()[0], 2),
    }


def growth_exponents(rows: pd.DataFrame) -> pd.DataFrame:
    """Per stage and mode over its sizes: the log-log slopes of wall, CPU and peak RSS against N."""
    found = []
    for (stage, mode), group in rows.groupby(["stage", "mode"], sort=False):
        group = group.groupby("n", as_index=False).last()  # the latest run of each size
        if len(group) < 2:
            continue
        logn = np.log(group["n"].to_numpy(float))
        slopes = {k: float(np.polyfit(logn, np.log(group[k].to_numpy(float)), 1)[0]) for k in ("wall_s", "cpu_s")}
        slopes["peak_rss"] = float(np.polyfit(logn, np.log(group["peak_rss_mb"].to_numpy(float)), 1)[0])
        found.append({"stage": stage, "mode": mode, "sizes": len(group), **{k: round(v, 3) for k, v in slopes.items()}})
    return pd.DataFrame(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["1x", "10x", "100x"], help="Nx (x 640) or a number")
    parser.add_argument("--stages", nargs="+", default=STAGES[:-1], choices=STAGES)
    parser.add_argument("--rows", nargs="+", type=int, default=[1_000_000], help="table rows of the ingest stage")
    parser.add_argument("--ingest-checks", nargs="+", default=["header", "full"], choices=["header", "full"])
    parser.add_argument("--threads", type=int, default=2, help="threads of every job (jobs run one at a time)")
    parser.add_argument("--workdir", default=None, help="keep corpora and outputs here (default: a temp dir)")
    parser.add_argument("--csv", default=str(REPO / "docs" / "figures" / "scale.csv"), help="rows appended here")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        run_job(args.job)
        return
    print(f"code: {REPO}; {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}", flush=True)
    cfg = config()
    with tempfile.TemporaryDirectory() as temporary:
        base = Path(args.workdir or temporary)
        runs = []
        if "ingest" in args.stages:
            for rows in args.rows:
                for mode in args.ingest_checks:
                    job = ingest_job(base / "ingest", rows, mode, cfg, args.threads)
                    runs.append(("ingest", mode, rows, job, base / "ingest" / f"job_{rows}_{mode}.json"))
        corpus_stages = [s for s in args.stages if s != "ingest"]
        if corpus_stages:
            build_models(base / "models", cfg)
        sizes = [size_of(size) for size in args.sizes] if corpus_stages else []
        corpora = {n: write_corpus(base / f"corpus_{n}", n) for n in sizes}
        for n, data in corpora.items():  # size by size: every stage's small sizes come first
            for stage in corpus_stages:
                job = corpus_job(stage, data, base / "models", base / f"out_{n}", cfg, args.threads)
                runs.append((stage, "", n, job, base / f"out_{n}" / f"job_{stage}.json"))
        fresh = []
        for stage, mode, n, job, spec in runs:
            print(f"{stage} {mode} n={n} ...", flush=True)
            row = {"stage": stage, "mode": mode, "n": n, **measure(job, spec)}
            print("  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
            fresh.append(row)
            with open(args.csv, "a", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, CSV_COLUMNS)
                if handle.tell() == 0:
                    writer.writeheader()
                writer.writerow(row)
    print(pd.DataFrame(fresh).to_string(index=False))
    print("\ngrowth exponents (log-log slope against N, every size in the CSV):")
    print(growth_exponents(pd.read_csv(args.csv, keep_default_na=False)).to_string(index=False))


if __name__ == "__main__":
    main()
