"""The prosody F0 trackers side by side (sefe.prosody.f0.tracker: yin, pyin, crepe): agreement and speed.

Every clip is read as extract_prosody_f0 reads it (sefe.preprocessing of --config) and tracked by
each tracker with the config's sefe.prosody.f0 block (``track_f0``, what the rule runs). Printed per
pair of trackers: voicing agreement (% of frames with the same voiced flag) and, on the frames both
call voiced, the median and 90th percentile of |F0 difference| in cents; per tracker: voiced share
and CPU / wall seconds per clip (one torch thread). Example (EmoDB, every clip; the demo's wav folder
after `snakemake results/demo/speech_corpus.tsv`):

    python benchmarks/prosody_trackers.py --audio ../shared/data/speech/emodb_2s/wav --trackers yin pyin crepe
    python benchmarks/prosody_trackers.py --audio ../shared/data/speech/emodb_2s/wav --limit 20 \\
        --trackers yin crepe crepe:full crepe:viterbi
"""

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workflow_scripts.common.config_schema import block_defaults  # noqa: E402
from workflow_scripts.sefe.preprocess import Preprocessing, load_waveform  # noqa: E402
from workflow_scripts.sefe.prosody import track_f0  # noqa: E402

# tracker[:variant] -> keys over the config's f0 block
VARIANTS = {"full": {"crepe_model": "full"}, "viterbi": {"crepe_viterbi": True}, "tiny": {"crepe_model": "tiny"}}


def tracker_block(name: str, base: dict) -> dict:
    """The f0 block of ``tracker[:variant[:variant]]`` (e.g. ``crepe:full:viterbi``) over ``base``."""
    tracker, *variants = name.split(":")
    block = {**base, "tracker": tracker}
    for variant in variants:
        block.update(VARIANTS[variant])
    return block


def agreement(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[int, int, np.ndarray]:
    """(frames with the same voicing, frames, |cents| on frames both voiced) of two (f0, voiced) tracks."""
    n = min(len(a[0]), len(b[0]))
    (fa, va), (fb, vb) = (a[0][:n], a[1][:n]), (b[0][:n], b[1][:n])
    both = va & vb
    return int((va == vb).sum()), n, np.abs(1200.0 * np.log2(fa[both] / fb[both]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", required=True, help="folder of .wav files")
    parser.add_argument("--config", default="config.yaml", help="sefe.preprocessing and sefe.prosody.f0 from here")
    parser.add_argument("--trackers", nargs="+", default=["yin", "pyin", "crepe"])
    parser.add_argument("--limit", type=int, default=None, help="the first N files (sorted by name)")
    parser.add_argument("--output", default=None, help="also write the figures as JSON here")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    config = yaml.safe_load(Path(args.config).read_text())
    sefe = config.get("sefe", {})
    settings = Preprocessing.from_config(block_defaults("sefe.preprocessing", sefe.get("preprocessing", {})))
    base = block_defaults("sefe.prosody.f0", sefe.get("prosody", {}).get("f0", {}))
    files = sorted(Path(args.audio).glob("*.wav"))[: args.limit]
    tracks: dict[str, list] = {name: [] for name in args.trackers}
    seconds = {name: [0.0, 0.0] for name in args.trackers}
    for path in files:
        waveform = load_waveform(str(path), settings)
        for name in args.trackers:
            cpu, wall = time.process_time(), time.perf_counter()
            tracks[name].append(track_f0(waveform, settings.sample_rate, tracker_block(name, base)))
            seconds[name][0] += time.process_time() - cpu
            seconds[name][1] += time.perf_counter() - wall
    figures = {"clips": len(files), "audio": args.audio, "trackers": {}, "pairs": {}}
    for name in args.trackers:
        voiced = sum(int(v.sum()) for _, v in tracks[name]) / max(1, sum(len(v) for _, v in tracks[name]))
        figures["trackers"][name] = {
            "voiced_share": round(voiced, 3),
            "cpu_s_per_clip": round(seconds[name][0] / max(1, len(files)), 3),
            "wall_s_per_clip": round(seconds[name][1] / max(1, len(files)), 3),
        }
        print(name, json.dumps(figures["trackers"][name]), flush=True)
    for a, b in itertools.combinations(args.trackers, 2):
        same, frames, cents = 0, 0, []
        for track_a, track_b in zip(tracks[a], tracks[b], strict=True):
            s, n, c = agreement(track_a, track_b)
            same, frames = same + s, frames + n
            cents.append(c)
        cents = np.concatenate(cents) if cents else np.zeros(0)
        figures["pairs"][f"{a} vs {b}"] = {
            "voicing_agreement_pct": round(100.0 * same / max(1, frames), 1),
            "both_voiced_frames": int(len(cents)),
            "median_abs_cents": round(float(np.median(cents)), 1) if len(cents) else None,
            "p90_abs_cents": round(float(np.percentile(cents, 90)), 1) if len(cents) else None,
        }
        print(f"{a} vs {b}", json.dumps(figures["pairs"][f"{a} vs {b}"]), flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
