"""predict --variant for the graph head (prosody tokens of new audio through the run's bins) and the
majority vote (its members' predictions, then the vote), on the session's tiny run (conftest ``tiny_run``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_fusion_graph import TINY as GRAPH_TINY
from test_fusion_head_xattn import assert_predict_gives_the_rule
from test_fusion_heads import BOOTSTRAP, CLASSES

from workflow_scripts import predict
from workflow_scripts.common import paths
from workflow_scripts.common.files import read_json
from workflow_scripts.fusion.heads.graph import main as train_graph
from workflow_scripts.fusion.vote import main as evaluate_vote
from workflow_scripts.sefe import prosody_bins, prosody_f0, prosody_tokens

from conftest import PROJECT_ROOT
from head_fixtures import SPLITS, head_file
from rule_job import rule_job

GRAPH_VARIANTS = {"graph": {}, "graph_seed1": {"seed": 1}}
VOTE_MEMBERS = ["xattn", "graph", "graph_seed1"]


def _outputs(run: Path, variant: str) -> dict:
    return {
        "model": str(head_file(run, paths.HEAD_MODEL, variant=variant)),
        "summary": str(head_file(run, paths.HEAD_SUMMARY, variant=variant)),
        "metrics": str(head_file(run, paths.VARIANT_METRICS, variant=variant)),
        "probabilities": [str(head_file(run, paths.VARIANT_PROBABILITIES, variant=variant, split=s)) for s in SPLITS],
    }


@pytest.fixture(scope="module")
def graph_run(tiny_run):
    """The tiny run plus prosody tokens (the run's bins), two graph variants and their vote with xattn."""
    root, run, files, _ = tiny_run
    config = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())["sefe"]
    files["prosody"] = {}
    for split in SPLITS:
        f0 = root / f"f0_{split}.parquet"
        prosody_f0.extract_f0(files["manifests"][split], f0, config["prosody"]["f0"], config["preprocessing"], split)
        if split == "train":  # the bins of the training split alone, where predict reads them
            bins_path = paths.in_run(paths.PROSODY_BINS, run)
            job = rule_job(
                {"f0": str(f0)},
                {"bins": str(bins_path)},
                {"quantizer": {**config["prosody"]["quantizer"], "bins": 8}, "train_split": split},
            )
            prosody_bins.main(job)
        files["prosody"][split] = str(root / f"prosody_{split}.parquet")
        prosody_tokens.write_tokens(f0, read_json(bins_path), files["prosody"][split], str(bins_path))
    common = {"bootstrap": BOOTSTRAP, "classes": CLASSES, "splits": list(SPLITS)}
    common |= {"train_split": "train", "selection_split": "dev"}
    for variant, overrides in GRAPH_VARIANTS.items():
        inputs = {source: list(files[source].values()) for source in ("acoustic", "text", "prosody", "manifests")}
        work = head_file(run, paths.HEAD_WORK, variant=variant)
        params = {"head": {**GRAPH_TINY, **overrides}, "overrides": overrides, "work_dir": str(work), **common}
        train_graph(
            rule_job(input=inputs, output=_outputs(run, variant), params=params, wildcards={"variant": variant})
        )
        assert not work.exists()  # the resume state is removed once the outputs are written
    probabilities = [_outputs(run, m)["probabilities"] for m in VOTE_MEMBERS]
    vote = _outputs(run, "vote")
    evaluate_vote(
        rule_job(
            input={
                "probabilities": [p for member in probabilities for p in member],
                "metrics": [_outputs(run, m)["metrics"] for m in VOTE_MEMBERS],
                "manifests": list(files["manifests"].values()),
            },
            output={"metrics": vote["metrics"], "probabilities": vote["probabilities"]},
            params={"members": VOTE_MEMBERS, **common},
        )
    )
    # The run's config: the shipped one, its vote over these members.
    config_file = root / "vote.yaml"
    config_file.write_text(yaml.safe_dump({"fusion": {"vote": {"members": VOTE_MEMBERS}}}))
    return run, files, [str(PROJECT_ROOT / "config.yaml"), str(config_file)]


@pytest.mark.parametrize("variant", ["graph", "vote"])
def test_predict_graph_and_vote_give_the_rule_probabilities(graph_run, tmp_path, variant):
    run, files, configs = graph_run
    manifest = pd.read_csv(files["manifests"]["public_test"], sep="\t")
    assert_predict_gives_the_rule(run, configs, variant, manifest, tmp_path)


def test_predict_names_the_graph_heads_artifacts_and_a_vote_it_cannot_run(graph_run):
    run, _, _ = graph_run
    config = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())
    from workflow_scripts.config import validate_config

    validate_config(config, PROJECT_ROOT / "schemas" / "config.schema.yaml")
    hooked = {**predict.STAGE_FACTORIES, "asr": "head_fixtures:fake_asr"}
    assert predict.missing_artifacts(config, run, hooked, "graph") == []
    missing = predict.missing_artifacts(config, run, hooked, "graph_gat1")
    assert (
        len(missing) == 1
        and "rule train_graph: snakemake results/systems/finetuned/fusion/heads/graph_gat1/model.pt" in missing[0]
    )
    # The shipped vote: graph x 4 seeds and the hybrid, whose ensemble this run lacks.
    missing = predict.missing_artifacts(config, run, hooked, "vote")
    assert any("graph_seed2/model.pt" in line for line in missing)
    assert any("rule tune_ensemble" in line for line in missing)
    config["fusion"]["vote"]["members"] = ["graph", "acoustic"]
    with pytest.raises(SystemExit, match=r"members \['acoustic'\] are neither hybrid nor a head"):
        predict.missing_artifacts(config, run, hooked, "vote")
