"""Transcription throughput: one-by-one vs length-sorted batches, and the real-time factor.

Prints utterances per second, real-time factor (decoding seconds per second of audio) and
whether every batch size gives the same text as one-by-one decoding. Audio is read and
resampled before timing starts, so only decoding is measured.

    python benchmarks/asr_throughput.py                       # the demo's fine-tuned model, public_test
    python benchmarks/asr_throughput.py --model openai/whisper-small --batch-sizes 1 8 16
"""

from __future__ import annotations

import argparse
import time

import torch

from workflow_scripts.asr.backends import BackendSpec, load_backend, transcribe_waveforms
from workflow_scripts.asr.waveforms import load_waveforms
from workflow_scripts.common.manifest import read_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="results/asr/model", help="model directory or hub id")
    parser.add_argument("--backend", default="whisper", choices=["whisper", "ctc"])
    parser.add_argument("--manifest", default="results/data/speech/demo/public_test.tsv")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes per setting (the best is kept)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    backend = load_backend(BackendSpec(backend=args.backend, model=args.model), device=args.device)
    frame = read_manifest(args.manifest)
    waveforms = load_waveforms(frame["audio_path"].tolist(), backend.sampling_rate)
    audio_s = sum(len(w) for w in waveforms) / backend.sampling_rate
    transcribe_waveforms(backend, waveforms[:4], batch_size=4, progress=False)  # warm-up

    def timed(batch_size: int) -> tuple[float, list[str]]:
        best, texts = float("inf"), []
        for _ in range(args.repeats):
            started = time.perf_counter()
            texts = transcribe_waveforms(backend, waveforms, batch_size=batch_size, progress=False)
            best = min(best, time.perf_counter() - started)
        return best, texts

    print(
        f"model {args.model} ({args.backend}), {args.manifest}: {len(waveforms)} utterances, {audio_s:.1f} s of audio,"
        f" {args.threads} threads, device {args.device}"
    )
    single_s, single_texts = timed(1)
    print(f"{'batch':>6} {'seconds':>8} {'utt/s':>7} {'RTF':>7} {'speed-up':>8}  same text as one-by-one")
    print(f"{1:>6} {single_s:8.2f} {len(waveforms) / single_s:7.1f} {single_s / audio_s:7.4f} {1.0:8.2f}  -")
    for batch_size in args.batch_sizes:
        seconds, texts = timed(batch_size)
        differing = sum(a != b for a, b in zip(texts, single_texts, strict=True))
        same = "yes" if differing == 0 else f"no ({differing} differ)"
        print(
            f"{batch_size:>6} {seconds:8.2f} {len(waveforms) / seconds:7.1f} {seconds / audio_s:7.4f}"
            f" {single_s / seconds:8.2f}  {same}"
        )


if __name__ == "__main__":
    main()
