"""The tiny run of the xattn head (conftest's session fixture ``tiny_run``): real SEFE frames of
tones, a tiny TEFE encoder, both xattn variants trained through the rule's entry point. Built once
per session; test_fusion_head_xattn and test_fusion_head_predict (graph heads, vote) read it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml
from test_fusion_heads import BOOTSTRAP, CLASSES, TINY

from workflow_scripts.common import paths
from workflow_scripts.common.checksums import record_checksum, write_checked_json
from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.fusion.heads.xattn import main as train_xattn
from workflow_scripts.sefe.frames import extract_frames
from workflow_scripts.tefe.models import TextEncoder, save_checkpoint
from workflow_scripts.tefe.text import build_vocabulary, text_settings
from workflow_scripts.tefe.tokens import extract_tokens

from conftest import PROJECT_ROOT, write_tone
from rule_job import rule_job
from tefe_fixtures import TINY_MODELS, TINY_TEXT, tiny_corpus

# The primary ASR system of the shipped config: head variants that read text are per system.
SYSTEM = "finetuned"


def head_file(run: Path, template: str, **wildcards: str) -> Path:
    """A head variant's result file in ``run``, in the primary system's directory."""
    return paths.in_run(template, run, scope=paths.system_scope(SYSTEM), **wildcards)


SPLITS = {"train": 24, "dev": 8, "public_test": 8}
VARIANTS = {"xattn": {}, "xattn_finetune": {"text_encoder": "finetune", "text_learning_rate": 0.003}}
TRANSCRIPTS: dict[str, str] = {}  # file stem -> ASR hypothesis, for the fake ASR stage of predict


def fake_asr(config, run_dir, threads):
    return lambda audio_paths: [TRANSCRIPTS[Path(p).stem] for p in audio_paths]


def xattn_job(run: Path, files: dict[str, dict[str, str]], encoder: dict[str, str], variant: str) -> Any:
    """The train_xattn job of ``variant`` over the tiny run's input ``files``, writing into ``run``."""
    overrides = VARIANTS[variant]
    finetune = overrides.get("text_encoder") == "finetune"
    text = {"transcripts": list(files["transcripts"].values()), **encoder} if finetune else {}
    return rule_job(
        input={
            "acoustic": list(files["acoustic"].values()),
            **(text or {"text": list(files["text"].values())}),
            "manifests": list(files["manifests"].values()),
        },
        output={
            "model": str(head_file(run, paths.HEAD_MODEL, variant=variant)),
            "summary": str(head_file(run, paths.HEAD_SUMMARY, variant=variant)),
            "metrics": str(head_file(run, paths.VARIANT_METRICS, variant=variant)),
            "probabilities": [
                str(head_file(run, paths.VARIANT_PROBABILITIES, variant=variant, split=s)) for s in SPLITS
            ],
        },
        params={
            "head": {**TINY, "frame_stride": 4, **overrides},
            "overrides": overrides,
            "bootstrap": BOOTSTRAP,
            "classes": CLASSES,
            "splits": list(SPLITS),
            "train_split": "train",
            "selection_split": "dev",
            "work_dir": str(head_file(run, paths.HEAD_WORK, variant=variant)),
        },
        wildcards={"variant": variant},
        rule="train_xattn",
    )


def build_tiny_run(root: Path) -> tuple[Path, Path, dict[str, dict[str, str]], dict[str, str]]:
    """A run directory under ``root`` with what predict reads for a head, and what the rule wrote, for
    both variants: (root, run directory, input files by source and split, the TEFE encoder's files)."""
    run = root / "results"
    sefe = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())["sefe"]
    files: dict[str, dict[str, str]] = {"acoustic": {}, "text": {}, "transcripts": {}, "manifests": {}}
    texts_by_split = {}
    for offset, (split, n) in enumerate(SPLITS.items()):
        texts, labels = tiny_corpus(n, seed=offset)
        texts_by_split[split] = texts
        ids = [f"{split}_{i:03d}" for i in range(n)]
        audio = [
            str(write_tone(root / "wav" / f"{u}.wav", seconds=0.3 + 0.05 * (i % 4), frequency=220.0 * (1 + (i % 2))))
            for i, u in enumerate(ids)
        ]
        manifest = pd.DataFrame(
            {
                "utt_id": ids,
                "audio_path": audio,
                "duration_s": 0.4,
                "sample_rate": 16000,
                "text": texts,
                "label": labels,
                "split": split,
                "speaker": "s",
            }
        )
        files["manifests"][split] = str(root / f"{split}.tsv")
        manifest.to_csv(files["manifests"][split], sep="\t", index=False)
        files["transcripts"][split] = str(root / f"transcripts_{split}.parquet")
        pd.DataFrame({"utt_id": ids, "hypothesis": texts, "reference": texts}).to_parquet(files["transcripts"][split])
        TRANSCRIPTS.update(zip(ids, texts, strict=True))
        files["acoustic"][split] = str(root / f"frames_{split}.parquet")
        extract_frames(
            files["manifests"][split],
            files["acoustic"][split],
            "handcrafted",
            sefe["handcrafted"],
            sefe["preprocessing"],
            split=split,
        )
    # A tiny "selected" TEFE encoder in the run's layout, and its token states (extract_tefe_tokens).
    vocab = build_vocabulary(texts_by_split["train"], text_settings(TINY_TEXT))
    torch.manual_seed(0)
    encoder = {"model": str(paths.in_run(paths.TEFE_MODEL, run, arch="CNN"))}
    encoder["vocab"] = str(paths.in_run(paths.TEFE_MODEL_VOCAB, run, arch="CNN"))
    Path(encoder["model"]).parent.mkdir(parents=True)
    save_checkpoint(encoder["model"], TextEncoder("CNN", torch.randn(len(vocab), 8), 2, TINY_MODELS["CNN"]), CLASSES)
    vocab.save(encoder["vocab"])
    record_checksum(encoder["vocab"])  # as rule train_tefe: predict checks every artifact's SHA-256
    write_checked_json(paths.in_run(paths.TEFE_SELECTION, run), {"selected": "CNN"})
    for split in SPLITS:
        files["text"][split] = str(root / f"tokens_{split}.parquet")
        extract_tokens(
            encoder["model"],
            encoder["vocab"],
            files["transcripts"][split],
            "hypothesis",
            files["text"][split],
            block_defaults("tefe.extract", {"device": "cpu"}),
            files["manifests"][split],
        )
    torch.set_num_threads(1)
    for variant in VARIANTS:
        job = xattn_job(run, files, encoder, variant)
        train_xattn(job)
        work = Path(job.params.work_dir)
        assert not work.exists()  # removed once the outputs are written
    return root, run, files, encoder
