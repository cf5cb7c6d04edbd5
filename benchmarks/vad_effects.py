"""Silero VAD (asr.transcribe.vad) on real Vietnamese speech: zero-shot WER of Whisper base with and without it.

The diadiem keywords (../shared/data/speech/diadiem_vi, 8 kHz telephone-band recordings, README there)
are loaded as the transcribe rule loads them (mono, 16 kHz), trimmed by the workflow's one VAD
function (workflow_scripts.common.vad, the schema's defaults unless set here), and decoded by the
ct2 backend (Whisper base from the `weights` extra, greedy, int8) exactly as `transcribe` decodes.
Prints the seconds removed, WER / CER without and with the VAD, how many hypotheses ran away (more
than three times the reference's words), decoding seconds and CPU seconds.

    python benchmarks/vad_effects.py                       # 10 clips per keyword (80)
    python benchmarks/vad_effects.py --per-keyword 0       # all 640
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from workflow_scripts.asr.backends import BackendSpec, load_backend, transcribe_waveforms
from workflow_scripts.asr.text import NormalizeConfig, score_transcripts
from workflow_scripts.asr.waveforms import load_waveforms
from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.common.pretrained import default_cache_dir, whisper_base_ct2
from workflow_scripts.common.vad import VadTally, trim_non_speech

DIADIEM = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech" / "diadiem_vi"


def clips(corpus: Path, per_keyword: int) -> pd.DataFrame:
    """The first ``per_keyword`` clips of each keyword (0: all), in file order."""
    table = pd.read_csv(corpus / "labels.tsv", sep="\t", quoting=3)
    if per_keyword:
        table = table.groupby("text", sort=False).head(per_keyword)
    return table.reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(DIADIEM))
    parser.add_argument("--per-keyword", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--threshold", type=float, default=None, help="VAD threshold (default: the schema's)")
    parser.add_argument("--show", type=int, default=0, help="print this many reference -> hypothesis pairs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        raise SystemExit(f"{corpus} is absent (../shared/data is not beside this checkout)")

    table = clips(corpus, args.per_keyword)
    waveforms = load_waveforms([str(corpus / p) for p in table["path"]], 16000)
    vad = block_defaults("asr.transcribe.vad", {"enabled": True})
    if args.threshold is not None:
        vad["threshold"] = args.threshold
    started, cpu = time.perf_counter(), time.process_time()
    tally, trimmed = VadTally(), []
    for waveform in waveforms:
        result = trim_non_speech(waveform, 16000, vad)
        tally.add(result)
        trimmed.append(result.waveform)
    vad_s, vad_cpu = time.perf_counter() - started, time.process_time() - cpu
    audio_s = sum(len(w) for w in waveforms) / 16000
    print(f"{len(waveforms)} clips, {audio_s:.1f} s of audio; VAD {vad}")
    print(f"{tally.describe('diadiem')}; {vad_s:.1f} s wall, {vad_cpu:.1f} s CPU", flush=True)

    spec = BackendSpec(backend="ct2", model=str(whisper_base_ct2(default_cache_dir())), language="vi", precision="int8")
    backend = load_backend(spec, device="cpu")
    normalize = NormalizeConfig()
    for label, audio in (("without VAD", waveforms), ("with VAD", trimmed)):
        started, cpu = time.perf_counter(), time.process_time()
        hypotheses = transcribe_waveforms(backend, audio, args.batch_size, progress=False)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        scores = score_transcripts(table["text"].tolist(), hypotheses, normalize)
        # Whisper's failure mode on short clips: a repetition loop, many words for a 1-3 word keyword
        runaway = sum(len(h.split()) > 3 * len(r.split()) for r, h in zip(table["text"], hypotheses, strict=True))
        figures = f"WER {scores['wer']:.4f}  CER {scores['cer']:.4f}  runaway {runaway}/{len(hypotheses)}"
        print(f"{label:12s} {figures}  decode {wall:6.1f} s wall, {cpu:6.1f} s CPU", flush=True)
        for reference, hypothesis in list(zip(table["text"], hypotheses, strict=True))[: args.show]:
            print(f"    {reference!r} -> {hypothesis[:120]!r}")


if __name__ == "__main__":
    main()
