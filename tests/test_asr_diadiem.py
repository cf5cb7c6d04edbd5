"""Real Vietnamese speech through the ASR stage (configs/diadiem.yaml, ../shared/data/speech/diadiem_vi):
a short decoder-only fine-tune of the real Whisper base lowers the dev WER it starts from.

Bounded for CI: a subset (a few clips per keyword), a few optimiser steps with the encoder frozen and
the 5 s window of the config. The full-size figures: benchmarks/asr_diadiem.py, docs/asr.md.
"""

from pathlib import Path

import pandas as pd
import pytest
import torch

from workflow_scripts.asr.benchmark import benchmark_backbone
from workflow_scripts.asr.text import NormalizeConfig
from workflow_scripts.asr.train import finetune
from workflow_scripts.common.config_schema import load_config_file, merge_config
from workflow_scripts.common.manifest import SPEECH_COLUMNS, write_manifest
from workflow_scripts.config import validate_config
from workflow_scripts.data.ingest_speech import build_speech_manifest

from conftest import PROJECT_ROOT, SHARED_DATA

CORPUS = SHARED_DATA / "speech" / "diadiem_vi"
# A module mark, not conftest.shared_data: the session fixture converting Whisper base would be built
# before a test body could skip.
pytestmark = pytest.mark.skipif(
    not CORPUS.exists(), reason=f"real corpus {CORPUS} is absent (../shared/data is not beside this checkout)"
)
# Clips per keyword (8 keywords) and optimiser steps: 32 training clips encoded once, then 4 epochs of
# decoder steps on their cached encoder states (cheap).
TRAIN_PER_KEYWORD = 4
DEV_PER_KEYWORD = 2
STEPS = 16


def diadiem_config() -> dict:
    """config.yaml with configs/diadiem.yaml over it, the corpus at ../shared's absolute path, validated."""
    config = merge_config(
        load_config_file(PROJECT_ROOT / "config.yaml"), load_config_file(PROJECT_ROOT / "configs" / "diadiem.yaml")
    )
    config["corpora"]["diadiem"].update(table=str(CORPUS / "labels.tsv"), audio_root=str(CORPUS))
    return validate_config(config)


def subset_manifests(config: dict, root: Path) -> tuple[Path, Path]:
    """The config's seeded split of the corpus, cut to the first clips of each keyword: (train, dev) manifests."""
    spec = config["corpora"]["diadiem"]
    manifest, _, _ = build_speech_manifest(
        spec, config["task"]["classes"], config["task"]["splits"], spec["split"]["seed"]
    )
    paths = []
    for split, per_keyword in (("train", TRAIN_PER_KEYWORD), ("dev", DEV_PER_KEYWORD)):
        rows = manifest[manifest["split"] == split].groupby("text", sort=False).head(per_keyword)
        path = root / f"{split}.tsv"
        write_manifest(pd.DataFrame(rows), path, SPEECH_COLUMNS)
        paths.append(path)
    return paths[0], paths[1]


def dev_wer(model: str, dev: Path, normalize: NormalizeConfig) -> float:
    """WER of ``model`` (a transformers Whisper directory) on ``dev``, through the benchmark rule's code."""
    entry = {"name": "model", "backend": "whisper", "model": model, "language": "vi", "max_new_tokens": 12}
    return benchmark_backbone(entry, {"dev": str(dev)}, 16, "cpu", normalize)["splits"]["dev"]["wer"]


def test_short_finetune_lowers_dev_wer(whisper_base_hf, tmp_path):
    torch.set_num_threads(2)
    config = diadiem_config()
    normalize = NormalizeConfig.from_dict(config["asr"]["normalize"])
    train, dev = subset_manifests(config, tmp_path)
    before = dev_wer(str(whisper_base_hf), dev, normalize)

    block = {**config["asr"]["finetune"], "base_model": str(whisper_base_hf), "max_steps": STEPS, "eval_steps": STEPS}
    out = tmp_path / "model"
    summary = finetune(block, config["asr"]["normalize"], [str(train)], str(dev), str(out), str(tmp_path / "work"), 2)
    after = dev_wer(str(out), dev, normalize)

    assert summary["encoder_states_cached"] and summary["global_step"] == STEPS
    print(f"dev WER {before:.3f} before, {after:.3f} after {STEPS} steps")
    assert after < before - 0.1, f"dev WER {before:.3f} before, {after:.3f} after {STEPS} steps"
