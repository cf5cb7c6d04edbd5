"""SEFE extraction throughput and peak memory on synthesised short utterances.

For every backend and corpus size: utterances per second, real-time factor (extraction
seconds per second of audio) and peak resident memory of the extraction process and of its
worker processes, each run in a fresh process through the function the extract_sefe rule
runs (``workflow_scripts.sefe.extract.extract_features``, after ``tune_process``). Peak memory
should not grow with the corpus.

    python benchmarks/sefe_throughput.py --sizes 1000 10000 --backends handcrafted
    python benchmarks/sefe_throughput.py --sizes 1000 --backends handcrafted emotion2vec wavlm --tiny-models

``--tiny-models`` measures the model backends with the tests' tiny random checkpoints (the
pipeline's own overhead); pass ``--emotion2vec-model DIR`` / ``--wavlm-model DIR`` for real
ones. Figures are printed and written to benchmarks/results/sefe_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's workflow_scripts, also in the measuring child process

from workflow_scripts.common.names import SEFE_BACKENDS  # noqa: E402


def synthesise(directory: Path, count: int, sample_rate: int, seed: int) -> Path:
    """``count`` distinct speech-like clips of 0.5-2.0 s (harmonic glide, envelope, noise) + a manifest."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        seconds = float(rng.uniform(0.5, 2.0))
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        f0 = rng.uniform(90, 280) * (1 + rng.uniform(-0.3, 0.3) * t / seconds)
        phase = 2 * np.pi * np.cumsum(f0) / sample_rate
        signal = sum(np.sin(k * phase) * rng.uniform(0.2, 1.0) / k for k in range(1, 6))
        envelope = np.abs(np.sin(np.pi * t * rng.uniform(1.5, 4.0) / seconds))
        audio = 0.3 * envelope * signal / 2 + 0.003 * rng.standard_normal(len(t))
        path = directory / f"b{index:05d}.wav"
        sf.write(path, audio.astype(np.float32), sample_rate, subtype="PCM_16")
        rows.append(
            {
                "utt_id": f"b{index:05d}",
                "audio_path": str(path),
                "duration_s": round(seconds, 4),
                "sample_rate": sample_rate,
                "text": "",
                "label": "neutral",
                "split": "train",
                "speaker": "s0",
            }
        )
    manifest = directory / "manifest.tsv"
    pd.DataFrame(rows).to_csv(manifest, sep="\t", index=False, quoting=3)
    return manifest


def peak_rss_mb() -> float:
    """Peak resident memory of this process since it started (VmHWM).

    Not ru_maxrss: on Linux that keeps the parent's size across fork + exec, so a large
    benchmark parent would show up as the child's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(args: argparse.Namespace) -> None:
    """Child mode: one extraction in this process, as extract_sefe runs it; prints its figures as JSON."""
    from workflow_scripts.sefe.extract import extract_features, tune_process

    tune_process()
    config = json.loads(args.config)
    started = time.perf_counter()
    figures = extract_features(
        args.backend, config["backend"], config["preprocessing"], args.manifest, args.output, None, args.threads
    )
    wall = time.perf_counter() - started
    print(
        json.dumps(
            {
                "extract": figures,
                "wall_s": wall,
                "peak_rss_mb": peak_rss_mb(),
                # largest worker process; counts the pages it shares with the main process after fork
                "peak_worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            }
        )
    )


def run_one(backend: str, config: dict, manifest: Path, output: Path, threads: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--measure",
        "--backend",
        backend,
        "--config",
        json.dumps(config),
        "--manifest",
        str(manifest),
        "--output",
        str(output),
        "--threads",
        str(threads),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{backend}: extraction failed\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--backends", nargs="+", default=["handcrafted"], choices=SEFE_BACKENDS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--sample-rate", type=int, default=22050, help="rate of the synthesised files (resampled to 16 kHz)"
    )
    parser.add_argument(
        "--tiny-models", action="store_true", help="tests' tiny random checkpoints for the model backends"
    )
    parser.add_argument("--emotion2vec-model", default=None)
    parser.add_argument("--wavlm-model", default=None)
    parser.add_argument("--fixed-length-s", type=float, default=None, help="pad/trim (paper: 5.0); default full length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--corpus-dir",
        default=None,
        help="keep the synthesised corpora here (corpus_<size>/) and reuse them on the next run",
    )
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "sefe_throughput.json"))
    # child mode
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--manifest", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args)
        return

    sefe = yaml.safe_load((ROOT / "config.yaml").read_text())["sefe"]
    preprocessing = {**sefe["preprocessing"], "fixed_length_s": args.fixed_length_s}
    records = []
    with tempfile.TemporaryDirectory(prefix="sefe_bench_") as scratch:
        scratch = Path(scratch)
        models = {"emotion2vec": args.emotion2vec_model, "wavlm": args.wavlm_model}
        if args.tiny_models:
            sys.path.insert(0, str(ROOT / "tests"))
            from sefe_fixtures import write_tiny_emotion2vec, write_tiny_wavlm

            if models["emotion2vec"] is None:
                write_tiny_emotion2vec(scratch / "emotion2vec_tiny")
                models["emotion2vec"] = str(scratch / "emotion2vec_tiny")
            if models["wavlm"] is None:
                write_tiny_wavlm(scratch / "wavlm_tiny")
                models["wavlm"] = str(scratch / "wavlm_tiny")
        for size in args.sizes:
            corpus = Path(args.corpus_dir or scratch) / f"corpus_{size}_{args.sample_rate}_{args.seed}"
            manifest = corpus / "manifest.tsv"
            if manifest.exists():
                print(f"reusing {manifest}", flush=True)
            else:
                corpus.mkdir(parents=True, exist_ok=True)
                started = time.perf_counter()
                synthesise(corpus, size, args.sample_rate, args.seed)
                print(f"synthesised {size} utterances in {time.perf_counter() - started:.0f} s", flush=True)
            audio_s = float(pd.read_csv(manifest, sep="\t")["duration_s"].sum())
            for backend in args.backends:
                block = dict(sefe[backend])
                if backend != "handcrafted":
                    if models[backend] is None:
                        print(f"skip {backend}: pass --{backend}-model DIR or --tiny-models", flush=True)
                        continue
                    block.update(model=models[backend], device="cpu")
                config = {"backend": block, "preprocessing": preprocessing}
                figures = run_one(backend, config, manifest, scratch / f"{backend}_{size}.parquet", args.threads)
                extract = figures["extract"]
                record = {
                    "backend": backend,
                    "checkpoint": block.get("model", "none"),
                    "utterances": size,
                    "audio_hours": round(audio_s / 3600, 3),
                    "threads": args.threads,
                    "extract_s": extract.get("seconds"),
                    "process_s": round(figures["wall_s"], 2),
                    "utterances_per_s": extract.get("utterances_per_second"),
                    "real_time_factor": extract.get("real_time_factor"),
                    "peak_rss_mb": round(figures["peak_rss_mb"], 1),
                    "peak_worker_rss_mb": round(figures["peak_worker_rss_mb"], 1),
                }
                records.append(record)
                print(json.dumps(record), flush=True)
    print("\nbackend       utterances  audio_h  extract_s  utt/s    RTF      peak RSS MB (main / largest worker)")
    for r in records:
        print(
            f"{r['backend']:<13} {r['utterances']:>10}  {r['audio_hours']:>7}  {r['extract_s']:>9}  "
            f"{r['utterances_per_s']:>6}  {r['real_time_factor']:>7}  {r['peak_rss_mb']:>8} / {r['peak_worker_rss_mb']}"
        )
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(records, indent=2) + "\n")
    print(f"\nwritten to {args.results}")


if __name__ == "__main__":
    main()
