"""Peak memory of the Whisper fine-tune against the size of its corpus (issue 26, item 2).

Builds the demo's small Whisper (config.yaml ``asr.demo_model``, tokenizer from the corpus text) and
a synthetic ASR corpus of ``--base`` clips (default 800, the demo ASR corpus: 16 voices x 50; tones
with noise, 1.5-5 s, 16 kHz), then fine-tunes it for ``--epochs`` epochs (config.yaml's
``asr.finetune`` block, one evaluation per epoch on a fixed dev split) on 1x, 10x, 50x ... that
corpus: the scaled corpora repeat the base clips' audio under new utterance ids, so every row is
a clip of its own to the caches (features, encoder states) and the sampler. Each scale runs in a
fresh process; its peak RSS (``ru_maxrss``) and CPU seconds are printed with the wall time.

    nice -n 5 python -m benchmarks.asr_finetune_memory --scales 1 10 50
    nice -n 5 python -m benchmarks.asr_finetune_memory --scales 1 10 --freeze-encoder

``--window`` cuts the model's input window (``asr.finetune.input_window_s``) to make the larger
scales affordable on two cores; it changes the cost per clip, not what grows with the corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import soundfile as sf
import yaml

from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.common.manifest import SPEECH_COLUMNS, write_manifest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16000
SENTENCES = [
    "tôi đi học mỗi ngày",
    "mẹ tôi nấu cơm rất ngon",
    "hôm nay trời đẹp quá",
    "anh ấy rất tức giận vì chuyện đó",
    "chị ấy buồn lắm",
    "chúng tôi đọc sách ở thư viện",
    "bạn có khỏe không",
    "ngày mai chúng ta đi chơi nhé",
]


def write_clips(directory: Path, count: int, seed: int = 0) -> list[tuple[str, float]]:
    """``count`` tone-with-noise clips of 1.5-5 s; (path, seconds) of each."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    clips = []
    for index in range(count):
        seconds = float(rng.uniform(1.5, 5.0))
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        f0 = 100 + 10 * (index % 30)
        wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5)) * 0.2 + rng.normal(0, 0.01, t.size)
        path = directory / f"clip{index:05d}.wav"
        sf.write(path, wave.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
        clips.append((str(path), round(seconds, 3)))
    return clips


def write_split(path: Path, split: str, clips: list[tuple[str, float]], rows: int) -> Path:
    """A manifest of ``rows`` utterances cycling over ``clips`` (distinct utt_ids, repeated audio)."""
    records = []
    for row in range(rows):
        audio, seconds = clips[row % len(clips)]
        records.append(
            {
                "utt_id": f"{split}_{row:06d}",
                "audio_path": audio,
                "duration_s": seconds,
                "sample_rate": SAMPLE_RATE,
                "text": SENTENCES[row % len(SENTENCES)],
                "label": "neutral",
                "split": split,
                "speaker": f"spk{row % 16}",
            }
        )
    write_manifest(pd.DataFrame(records), path, SPEECH_COLUMNS)
    return path


def build_model(root: Path, train_manifest: Path, config: dict) -> Path:
    """The demo's small Whisper, as the build_demo_asr_model rule makes it."""
    from workflow_scripts.asr.demo_model import main as build_demo_asr_model

    out = root / "init_model"
    job = SimpleNamespace(
        input=SimpleNamespace(manifests=[str(train_manifest)]),
        output=SimpleNamespace(model=str(out)),
        params=SimpleNamespace(
            demo_model=block_defaults("asr.demo_model", config["asr"]["demo_model"]),
            normalize=config["asr"]["normalize"],
        ),
        threads=1,
    )
    build_demo_asr_model(job)
    return out


# One fine-tune, the child process of a scale: the code of --code-root (e.g. a checkout of main, to compare).
RUN_ONE = """
import json, sys
from workflow_scripts.asr.train import finetune
summary = finetune(**json.load(open(sys.argv[1])))
print(json.dumps({k: summary[k] for k in ("n_train", "global_step", "epochs", "train_seconds")}))
"""


def measure(spec: dict, root: Path, name: str, code_root: Path) -> dict:
    """Run one fine-tune in a child process: its peak RSS (MB), CPU and wall seconds, its summary."""
    spec_file = root / f"{name}.json"
    spec_file.write_text(json.dumps(spec))
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", RUN_ONE, str(spec_file)],
        cwd=code_root,
        env={**os.environ, "PYTHONPATH": str(code_root)},
        stdout=subprocess.PIPE,
        stderr=open(root / f"{name}.log", "w"),  # noqa: SIM115 - the child's log, closed at exit
        text=True,
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"scale {name} failed: see {root / (name + '.log')}")
    summary = json.loads(child.stdout.read().strip().splitlines()[-1])
    return {
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "wall_s": round(wall, 1),
        **summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--base", type=int, default=800, help="clips of the 1x corpus (the demo ASR corpus: 800)")
    parser.add_argument("--dev", type=int, default=40, help="dev clips (fixed across scales)")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--window", type=int, default=None, help="input_window_s (None: the demo model's 6 s)")
    parser.add_argument("--freeze-encoder", action="store_true", help="freeze_encoder: the encoder-state cache")
    parser.add_argument("--work", default=None, help="directory for corpora and runs (default: a temporary one)")
    parser.add_argument("--code-root", default=str(ROOT), help="the workflow whose fine-tune runs (default: this one)")
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    root = Path(args.work or tempfile.mkdtemp(prefix="asr_memory_"))
    clips = write_clips(root / "wav", args.base)
    dev = write_split(root / "dev.tsv", "dev", clips, args.dev)
    base_model = build_model(root, write_split(root / "train_1x.tsv", "train", clips, args.base), config)
    values = {
        **config["asr"]["finetune"],
        "base_model": str(base_model),
        "max_epochs": args.epochs,
        "max_steps": None,
        "eval_steps": None,  # one evaluation per epoch
        "eval_max_new_tokens": 24,
        "snapshot_steps": [],
        "freeze_encoder": args.freeze_encoder,
        "input_window_s": args.window,
        "device": "cpu",
        "seed": 42,
    }
    block = block_defaults("asr.finetune", values)
    print(f"corpus base {args.base} clips, dev {args.dev}, {args.epochs} epochs, window {args.window or 'model'} s, ")
    print(f"freeze_encoder {args.freeze_encoder}, cache_features {block['cache_features']}; code {args.code_root}")
    print("| scale | train clips | steps | peak RSS (MB) | CPU s | wall s |")
    print("|---|---|---|---|---|---|")
    for scale in args.scales:
        train = write_split(root / f"train_{scale}x.tsv", "train", clips, args.base * scale)
        spec = {
            "block": block,
            "normalize_block": config["asr"]["normalize"],
            "train_manifests": [str(train)],
            "dev_manifest": str(dev),
            "out_dir": str(root / f"model_{scale}x"),
            "work_dir": str(root / f"work_{scale}x"),
            "threads": args.threads,
        }
        result = measure(spec, root, f"scale_{scale}x", Path(args.code_root))
        print(
            f"| {scale}x | {result['n_train']} | {result['global_step']} | {result['peak_rss_mb']} "
            f"| {result['cpu_s']} | {result['wall_s']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
