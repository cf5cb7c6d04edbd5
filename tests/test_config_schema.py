"""config.yaml is validated against schemas/config.schema.yaml before any job runs."""

from __future__ import annotations

import copy

import pytest
import yaml

from workflow_scripts.common.config_schema import ConfigError
from workflow_scripts.config import validate_config

from conftest import PROJECT_ROOT, run_snakemake

SCHEMA = str(PROJECT_ROOT / "schemas" / "config.schema.yaml")


@pytest.fixture
def config() -> dict:
    with open(PROJECT_ROOT / "config.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_shipped_config_is_valid_and_defaults_are_filled(config):
    del config["seed"], config["corpora"]["demo"]["on_invalid"], config["demo"]["noise_level"]
    validate_config(config, SCHEMA)
    assert config["seed"] == 42
    # defaults inside $ref'd stage schemas and inside additionalProperties are filled too
    assert config["demo"]["noise_level"] == pytest.approx(0.002)
    assert config["corpora"]["demo"]["on_invalid"] == "error"
    assert config["corpora"]["demo"]["silence_peak"] == pytest.approx(1e-4)
    assert config["text_corpus"]["split"]["rename"] == {}


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda c: c.update(unknown_block={}),
            "at '<top level>': Additional properties are not allowed ('unknown_block'",
        ),
        (
            lambda c: c["corpora"]["demo"].update(colums={}),
            "at 'corpora.demo': Additional properties are not allowed ('colums'",
        ),
        (lambda c: c.update(seed="forty-two"), "at 'seed': 'forty-two' is not of type 'integer'"),
        (lambda c: c["demo"].update(noise_level="1e-5"), "at 'demo.noise_level': '1e-5' is not of type 'number'"),
        (
            lambda c: c["corpora"]["demo"]["split"].update(policy="random"),
            "at 'corpora.demo.split.policy': 'random' is not one of",
        ),
        (lambda c: c["corpora"]["demo"].pop("label_map"), "at 'corpora.demo': 'label_map' is a required property"),
        (
            lambda c: c["corpora"]["demo"]["columns"].pop("audio_path"),
            "at 'corpora.demo.columns': 'audio_path' is a required",
        ),
    ],
    ids=[
        "unknown-top-level-key",
        "unknown-nested-key",
        "wrong-type",
        "yaml-float-string",
        "bad-enum",
        "missing-required",
        "missing-required-nested",
    ],
)
def test_bad_config_fails_naming_the_key(config, mutate, expected):
    bad = copy.deepcopy(config)
    mutate(bad)
    with pytest.raises(ConfigError) as error:
        validate_config(bad, SCHEMA)
    assert expected in str(error.value)


def test_workflow_refuses_bad_config_before_any_job(workflow_dir):
    config_path = workflow_dir / "config.yaml"
    text = config_path.read_text(encoding="utf-8").replace("  noise_level: 0.002", "  noise_level: loud")
    config_path.write_text(text, encoding="utf-8")
    result = run_snakemake(workflow_dir, "-n", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "invalid config at 'demo.noise_level': 'loud' is not of type 'number'" in output
    assert not (workflow_dir / "results" / "demo").exists()


def test_ser_corpus_must_name_a_corpus(workflow_dir):
    config_path = workflow_dir / "config.yaml"
    text = config_path.read_text(encoding="utf-8").replace("ser_corpus: demo", "ser_corpus: visec")
    config_path.write_text(text, encoding="utf-8")
    result = run_snakemake(workflow_dir, "-n", check=False)
    assert result.returncode != 0
    assert "ser_corpus 'visec' is not a key of corpora" in result.stdout + result.stderr


def test_own_corpus_template_merges_and_validates(config):
    from snakemake.utils import update_config

    with open(PROJECT_ROOT / "configs" / "own_corpus.yaml", encoding="utf-8") as handle:
        update_config(config, yaml.safe_load(handle))
    validate_config(config, SCHEMA)
    assert config["ser_corpus"] == "mycorpus"
    assert config["corpora"]["mycorpus"]["split"]["rename"] == {}
