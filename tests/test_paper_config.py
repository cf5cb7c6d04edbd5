"""configs/paper_vlsp.yaml (the paper's full setup) validates and plans the whole DAG once its paths are filled in."""

from __future__ import annotations

from pathlib import Path

import yaml

from conftest import run_snakemake
from snakemake_runner import parse_plan
from workflow_copy import recorded_params

SPLITS = ["train", "dev", "public_test", "private_test"]


def _fill_in_paths(root: Path) -> dict:
    """Small tables at the places the user would fill in (the dry run reads none of them)."""
    root.mkdir(parents=True, exist_ok=True)
    vlsp = {}
    for split in SPLITS:
        table = root / f"vlsp_{split}.tsv"
        table.write_text(
            f"id\tpath\ttranscript\temotion\tspeaker\n{split}1\t{split}1.wav\txin chào\tneutral\ts_{split}\n"
        )
        vlsp[split] = str(table)
    asr_tables = {}
    for name in ("phoaudiobook", "vn28k"):
        table = root / f"{name}.tsv"
        table.write_text("id\tpath\ttranscript\temotion\tspeaker\na1\ta1.wav\txin chào\tneutral\tspk\n")
        asr_tables[name] = {"table": {"train": str(table)}, "audio_root": str(root)}
    visec = root / "visec.tsv"
    visec.write_text("sentence\temotion\nxin chào\tneutral\n")
    return {
        "corpora": {"vlsp": {"table": vlsp, "audio_root": str(root)}, **asr_tables},
        "text_corpus": {"table": str(visec)},
    }


def test_paper_config_validates_and_dry_runs_every_stage(workflow_dir):
    paths = workflow_dir / "my_paths.yaml"
    paths.write_text(yaml.safe_dump(_fill_in_paths(workflow_dir / "user_data")))
    result = run_snakemake(workflow_dir, "-n", "--configfile", "configs/paper_vlsp.yaml", str(paths))
    plan = parse_plan(result.stdout + result.stderr).counts
    # Whisper fine-tuned from the hub checkpoint (no demo model), emotion2vec features, all four
    # TEFE architectures, every fusion variant, the ASR backbone benchmark.
    assert plan["finetune_whisper"] == 1 and "build_demo_asr_model" not in plan, plan
    assert plan["ingest_speech_corpus"] == 3  # vlsp, phoaudiobook, vn28k
    assert plan["extract_sefe"] == 4 and plan["train_tefe"] == 4, plan
    # The shared acoustic row, and four ASR systems (fine-tuned, two zero-shot backbones, the oracle):
    # the text-dependent rows of each.
    assert plan["evaluate_variant"] == 1 + 4 * 4 and plan["tune_ensemble"] == 4, plan
    assert plan["benchmark_asr_backbones"] == 1 and plan["transcribe"] == 4 * 4, plan
    features = "results/sefe/emotion2vec/train.parquet"
    run_snakemake(workflow_dir, "--touch", "-F", features, "--configfile", "configs/paper_vlsp.yaml", str(paths))
    assert any("iic/emotion2vec_plus_large" in value for value in recorded_params(workflow_dir, [features])[features])
