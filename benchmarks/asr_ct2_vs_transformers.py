"""ASR backend ct2 (faster-whisper / CTranslate2) beside the transformers backend: same weights, same clips.

Whisper base from the `weights` extra: the CTranslate2 directory (assembled and checked) and its
transformers conversion (workflow_scripts.asr.convert_ct2), both cached. One process decodes
the same waveforms with each setting (greedy, batched) and prints load and decoding seconds,
utterances per second, the real-time factor, WER, the throughput ratio to transformers and the
WER difference, with a verdict against the stated tolerance (--wer-tolerance, absolute).

    python benchmarks/asr_ct2_vs_transformers.py                     # 12 espeak-ng English sentences
    python benchmarks/asr_ct2_vs_transformers.py --manifest results/data/speech/demo/public_test.tsv --language vi
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from workflow_scripts.asr.backends import BackendSpec, load_backend, transcribe_waveforms
from workflow_scripts.asr.convert_ct2 import convert
from workflow_scripts.asr.text import NormalizeConfig, score_transcripts
from workflow_scripts.asr.waveforms import load_waveforms
from workflow_scripts.common.manifest import read_manifest
from workflow_scripts.common.pretrained import default_cache_dir, whisper_base_ct2

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "please open the window and close the door",
    "the weather is very nice this morning",
    "we will meet at the station after work",
    "she bought three apples and a loaf of bread",
    "turn left at the next corner and walk straight",
    "my brother plays the guitar every evening",
    "the children are reading books in the library",
    "can you help me carry these boxes upstairs",
    "the train leaves at seven in the morning",
    "he forgot his keys on the kitchen table",
    "the meeting has been moved to next week",
]


def english_clips(count: int) -> tuple[list, list[str]]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from weights_fixtures import english_clips as synthesize

    texts = [SENTENCES[i % len(SENTENCES)] for i in range(count)]
    return synthesize(texts), texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", help="a speech manifest (default: espeak-ng English sentences)")
    parser.add_argument("--count", type=int, default=12, help="English sentences when no manifest is given")
    parser.add_argument("--language", default="en")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--wer-tolerance", type=float, default=0.02, help="allowed |WER(ct2) - WER(transformers)|")
    parser.add_argument("--cache", default=str(default_cache_dir()), help="where the assembled/converted models go")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ct2_dir = whisper_base_ct2(args.cache)
    hf_dir = Path(args.cache) / "whisper-base"
    if not (hf_dir / "config.json").is_file():
        convert(ct2_dir, hf_dir)
    if args.manifest:
        frame = read_manifest(args.manifest)
        waveforms, references = load_waveforms(frame["audio_path"].tolist(), 16000), frame["text"].tolist()
    else:
        waveforms, references = english_clips(args.count)
    audio_s = sum(len(w) for w in waveforms) / 16000
    cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    settings = [("transformers", "whisper", str(hf_dir), "auto"), ("ct2", "ct2", str(ct2_dir), "fp32")]
    settings.append(("ct2", "ct2", str(ct2_dir), "fp16" if cuda else "int8"))
    normalize = NormalizeConfig()
    rows = []
    for label, backend_name, model, precision in settings:
        spec = BackendSpec(backend=backend_name, model=model, language=args.language, precision=precision)
        started = time.perf_counter()
        backend = load_backend(spec, device=args.device)
        load_s = time.perf_counter() - started
        transcribe_waveforms(backend, waveforms[:2], args.batch_size, progress=False)  # warm-up
        started = time.perf_counter()
        hypotheses = transcribe_waveforms(backend, waveforms, args.batch_size, progress=False)
        decode_s = time.perf_counter() - started
        wer = score_transcripts(references, hypotheses, normalize)["wer"]
        rows.append((label, backend.describe()["dtype"], load_s, decode_s, wer))
        print(
            f"{label:12s} {backend.describe()['dtype']:8s} load {load_s:6.1f} s  decode {decode_s:7.1f} s  "
            f"{len(waveforms) / decode_s:6.2f} utt/s  RTF {decode_s / audio_s:.3f}  WER {wer:.4f}",
            flush=True,
        )
        del backend
    reference = rows[0]
    print(
        f"\n{len(waveforms)} clips, {audio_s:.1f} s of audio, batch {args.batch_size}, {args.threads} threads, "
        f"device {args.device}; WER tolerance {args.wer_tolerance}"
    )
    for label, dtype, _, decode_s, wer in rows[1:]:
        verdict = "within" if abs(wer - reference[4]) <= args.wer_tolerance else "OUTSIDE"
        print(
            f"{label} {dtype}: throughput x{reference[3] / decode_s:.2f} of transformers {reference[1]}; "
            f"WER difference {wer - reference[4]:+.4f} ({verdict} tolerance)"
        )


if __name__ == "__main__":
    main()
