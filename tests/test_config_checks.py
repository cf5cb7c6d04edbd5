"""The config checker (workflow_scripts.config) refuses what a dry run refuses, naming the key.

Each case is an overlay merged over config.yaml, as ``snakemake --configfile`` merges it.
"""

from __future__ import annotations

import pytest
import yaml

from workflow_scripts.common.config_schema import ConfigError, block_defaults
from workflow_scripts.config import main as check_config

from conftest import PROJECT_ROOT, run_snakemake
from workflow_copy import copy_workflow

SYSTEM = {"name": "finetuned", "model": "finetuned"}
FRACTIONS = {"train": 0.8, "valid": 0.2}
MINE = {"table": "mine.tsv", "columns": {"audio_path": "wav", "label": "emotion"}, "label_map": {"neu": "neutral"}}

# id -> (overlay over config.yaml, what the message says: the key first).
REFUSED = {
    # The four cases of issue 24 that the checker used to pass.
    "duplicate-asr-system": ({"asr": {"systems": [SYSTEM, SYSTEM]}}, "config asr.systems: the name 'finetuned'"),
    "absent-primary-system": (
        {"asr": {"primary_system": "whisper-small"}},
        "config asr.primary_system: 'whisper-small' is not a name of asr.systems",
    ),
    "bad-ablation": (
        {"fusion": {"heads": {"ablations": {"xattn_wide": {"head": "xattn", "width": 3}}}}},
        "config fusion.heads.ablations.xattn_wide: ['width'] are not keys of fusion.heads.xattn",
    ),
    "missing-vote-member": (
        {"fusion": {"vote": {"members": ["graph", "xattn_seed9", "hybrid"]}}},
        "config fusion.vote.members: ['xattn_seed9'] are not variants of this workflow",
    ),
    # Every other check that moved from rules/common.smk, names and heads/variants.py.
    "selection-split-not-a-split": (
        {"task": {"selection_split": "valid"}},
        "config task.selection_split: 'valid' is not one of task.splits",
    ),
    "ser-corpus-not-a-corpus": ({"ser_corpus": "visec"}, "config: ser_corpus 'visec' is not a key of corpora"),
    "fractions-not-the-splits": (
        {"corpora": {"mine": {**MINE, "split": {"policy": "stratified", "fractions": FRACTIONS}}}},
        "invalid config at 'corpora.mine.split.fractions': keys ['train', 'valid'] must be the splits",
    ),
    "text-fractions-not-the-splits": (
        {"text_corpus": {"split": {"fractions": FRACTIONS}}},
        "invalid config at 'text_corpus.split.fractions': keys ['dev', 'test', 'train', 'valid'] must be the splits",
    ),
    "asr-train-corpus-unknown": (
        {"asr": {"finetune": {"train_corpora": ["vn28k"]}}},
        "config asr.finetune.train_corpora: ['vn28k'] are not keys of corpora",
    ),
    "asr-trains-on-a-test-split": (
        {"asr": {"finetune": {"train_splits": ["train", "public_test"]}}},
        "config asr.finetune.train_splits: ['public_test'] may not be trained on",
    ),
    "asr-selects-on-a-test-split": (
        {"asr": {"finetune": {"eval_split": "private_test"}}},
        "config asr.finetune.eval_split: 'private_test' must be one of ['train', 'dev']",
    ),
    "asr-batch-does-not-split": (
        {"asr": {"finetune": {"batch_size": 16, "processes": 3}}},
        "config asr.finetune.batch_size: 16 is the global batch, split across asr.finetune.processes (3)",
    ),
    "head-variant-unknown": (
        {"fusion": {"heads": {"variants": ["xattn", "xattn_wide"]}}},
        "config fusion.heads.variants: ['xattn_wide'] are neither heads",
    ),
    "figure2-row-not-made": (
        {"fusion": {"figure2": {"variants": ["late+rules"]}}},
        "config fusion.figure2.variants: ['late+rules'] are not made by this workflow",
    ),
    "table3-row-reads-no-text": (
        {"fusion": {"table3": {"variants": ["hybrid", "acoustic"]}}},
        "config fusion.table3.variants: ['acoustic'] are not text-dependent rows of this workflow",
    ),
    "augmented-asr-without-the-train-split": (
        {
            "asr": {"finetune": {"train_splits": ["dev"], "eval_split": "train"}},
            "challenge": {"augmentation": {"asr": True}},
        },
        "config challenge.augmentation.asr: the copies are rows of the training split 'train'",
    ),
    "augmentation-with-precomputed-acoustic-features": (
        {"challenge": {"augmentation": {"enabled": True}}, "fusion": {"features": {"acoustic": "f/{split}.parquet"}}},
        "config challenge.augmentation.enabled needs the SEFE stage's features of the augmented audio",
    ),
    # Issue 27, item 5: what a job would find only when it runs, after other jobs ran.
    "tefe-transformer-model-missing": (
        {"tefe": {"transformer": {"model": "./models/phobert-missing"}}},
        "config tefe.transformer.model: './models/phobert-missing' is not a directory",
    ),
    "whisper-encoder-model-missing": (
        {"sefe": {"whisper_encoder": {"model": "/no/such/whisper"}}},
        "config sefe.whisper_encoder.model: '/no/such/whisper' is not a directory",
    ),
    "whisper-encoder-layer-beyond-the-built-model": (
        {"sefe": {"whisper_encoder": {"layer": 99}}},
        "config sefe.whisper_encoder.layer: 99 is out of range for sefe.whisper_encoder.model "
        "'results/pretrained/whisper-base', which has 6 layers",
    ),
    "asr-base-model-missing": (
        {"asr": {"finetune": {"base_model": "../whisper-small-copy"}}},
        "config asr.finetune.base_model: '../whisper-small-copy' is not a directory",
    ),
    "cuda-device-not-visible": (
        {"fusion": {"heads": {"xattn": {"device": "cuda:7"}}}},
        "config fusion.heads.xattn.device: 'cuda:7' requested, but this machine sees",
    ),
    "cuda-device-of-a-system-not-visible": (
        {"asr": {"systems": [{**SYSTEM, "device": "cuda:7"}]}},
        "config asr.systems[0].device: 'cuda:7' requested",
    ),
}
# The cases of issue 24 that a dry run refused and the checker passed, and issue 27's settings that
# failed only at job time: run both (a few seconds each).
PROBES = [
    "duplicate-asr-system",
    "absent-primary-system",
    "bad-ablation",
    "missing-vote-member",
    "whisper-encoder-layer-beyond-the-built-model",
    "cuda-device-not-visible",
]
# Accepted: hub ids are not looked up (nor their depth), and a cluster's jobs see their own GPUs.
ACCEPTED = {
    "hub-ids": {
        "tefe": {"transformer": {"model": "nobody/no-such-model"}},
        "sefe": {"whisper_encoder": {"model": "openai/whisper-small", "layer": 99}},
    },
    "cuda-on-a-cluster": {"cluster": True, "fusion": {"heads": {"xattn": {"device": "cuda:7"}}}},
}


def _overlay(directory, case: str):
    path = directory / f"{case}.yaml"
    path.write_text(yaml.safe_dump(REFUSED[case][0]), encoding="utf-8")
    return path


@pytest.mark.parametrize("case", list(REFUSED))
def test_checker_refuses_naming_the_key(tmp_path, case):
    with pytest.raises(SystemExit) as error:
        check_config([str(_overlay(tmp_path, case))])
    assert REFUSED[case][1] in str(error.value)


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_checker_accepts_what_it_cannot_or_need_not_check_here(tmp_path, case, capsys):
    overlay = tmp_path / f"{case}.yaml"
    overlay.write_text(yaml.safe_dump(ACCEPTED[case]), encoding="utf-8")
    check_config([str(overlay)])
    assert capsys.readouterr().out.startswith("config OK: ")


@pytest.mark.parametrize("layer, refused", [(2, False), (-3, False), (3, True), (-4, True)])
def test_a_layer_index_is_checked_against_the_local_models_config(tmp_path, layer, refused):
    model = tmp_path / "whisper-tiny"
    model.mkdir()
    (model / "config.json").write_text('{"encoder_layers": 2}')
    overlay = tmp_path / "layer.yaml"
    overlay.write_text(yaml.safe_dump({"sefe": {"whisper_encoder": {"model": str(model), "layer": layer}}}))
    if not refused:
        check_config([str(overlay)])
        return
    with pytest.raises(SystemExit) as error:
        check_config([str(overlay)])
    assert f"config sefe.whisper_encoder.layer: {layer} is out of range for sefe.whisper_encoder.model" in str(
        error.value
    )
    assert "expected an index in -3..2" in str(error.value)


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("config_checks") / "workflow")


@pytest.mark.parametrize("case", PROBES)
def test_dry_run_refuses_as_the_checker_does(workflow_copy, case):
    result = run_snakemake(workflow_copy, "-n", "--configfile", str(_overlay(workflow_copy, case)), check=False)
    assert result.returncode != 0
    assert REFUSED[case][1] in result.stdout + result.stderr


@pytest.mark.parametrize("overlay", ["config.yaml", *sorted(p.name for p in (PROJECT_ROOT / "configs").glob("*.yaml"))])
def test_checker_accepts_the_shipped_configs(overlay, capsys):
    check_config([] if overlay == "config.yaml" else [str(PROJECT_ROOT / "configs" / overlay)])
    assert capsys.readouterr().out.startswith("config OK: ")


def test_block_defaults_fills_a_block_from_the_schema():
    block = block_defaults("fusion.heads.xattn", {"epochs": 2})
    assert block["epochs"] == 2 and block["temporal"] == "bilstm" and block["patience"] == 3
    assert block["seed"] == 42  # a null block seed takes the schema's top-level seed
    corpus = block_defaults(
        "corpora.mine", {"table": "t.tsv", "columns": {"audio_path": "a", "label": "l"}, "label_map": {"x": "y"}}
    )
    assert corpus["split"]["policy"] == "stratified" and corpus["on_invalid"] == "error"
    assert block_defaults("sefe.handcrafted")["f0"]["enabled"] is True


@pytest.mark.parametrize(
    "key_path, values, expected",
    [
        ("fusion.heads.xattn", {"epochs": "two"}, "at 'fusion.heads.xattn.epochs': 'two' is not of type 'integer'"),
        ("fusion.heads.xattn", {"widht": 3}, "at 'fusion.heads.xattn': Additional properties are not allowed ('widht'"),
        ("fusion.head", {}, "at 'fusion': Additional properties are not allowed ('head'"),
        ("corpora.mine", {}, "at 'corpora.mine': 'table' is a required property"),
    ],
)
def test_block_defaults_refuses_a_bad_block(key_path, values, expected):
    with pytest.raises(ConfigError, match="invalid config") as error:
        block_defaults(key_path, values)
    assert expected in str(error.value)


def test_the_slurm_profile_marks_the_run_as_a_cluster_run(workflow_copy):
    """A CUDA device this machine lacks passes the dry run under profiles/slurm (its jobs run on the
    cluster's nodes: config cluster), and is refused without it (test_dry_run_refuses_as_the_checker_does)."""
    overlay = _overlay(workflow_copy, "cuda-device-not-visible")
    args = ["-n", "--configfile", str(overlay), "--workflow-profile", "profiles/slurm", "--executor", "local"]
    run_snakemake(workflow_copy, *args)
