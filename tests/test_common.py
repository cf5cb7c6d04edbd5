"""The shared package: code inputs from imports, seeds, split roles, CV folds, labels, paths."""

import logging
import re
from pathlib import Path

import numpy as np
import pytest

from workflow_scripts.common import names, paths
from workflow_scripts.common.code_inputs import NOT_CODE, code_inputs
from workflow_scripts.common.config_schema import inherit_seed
from workflow_scripts.common.cv import cv_folds
from workflow_scripts.common.labels import encode_labels

from conftest import PROJECT_ROOT, run_snakemake


def write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / "workflow_scripts" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_code_inputs_follow_imports_transitively_and_skip_what_changes_no_result(tmp_path):
    write_package(
        tmp_path,
        {
            "__init__.py": "",
            "common/__init__.py": "",
            "common/logs.py": "import logging\n",
            "common/rule.py": "from workflow_scripts.common.logs import setup_logging\n",
            "common/names.py": "",
            "common/metrics.py": "import numpy\n",
            "common/files.py": "import json\n",
            "stage/__init__.py": "",
            "stage/helper.py": "from ..common import metrics\nfrom . import sibling\n",
            "stage/sibling.py": "import workflow_scripts.common.files\n",
            "stage/unused.py": "",
            "stage/step.py": (
                "import os\nfrom workflow_scripts.stage.helper import thing\n"
                "from workflow_scripts.common.rule import run_rule\nfrom workflow_scripts.common import names\n"
                "def main(job):\n    from workflow_scripts.common.files import write_json\n"
            ),
        },
    )
    assert code_inputs("workflow_scripts/stage/step.py", tmp_path) == [
        "workflow_scripts/common/files.py",  # through a function-level import and through sibling
        "workflow_scripts/common/metrics.py",  # a relative import two levels up
        "workflow_scripts/stage/helper.py",
        "workflow_scripts/stage/sibling.py",  # `from . import sibling`
        "workflow_scripts/stage/step.py",
    ]


def test_code_inputs_of_a_missing_script_fail(tmp_path):
    with pytest.raises(FileNotFoundError, match="no script"):
        code_inputs("workflow_scripts/none.py", tmp_path)


# The expensive steps, whose outputs are kept by fingerprint (run_rule(main, keep=True); common/keep.py).
KEPT_STEPS = {
    "asr/train",
    "asr/assemble_weights",
    "asr/convert_ct2",
    "tefe/train",
    "tefe/train_backend",
    "fusion/heads/xattn",
    "fusion/heads/graph",
    "fusion/classifiers",
}


def test_every_rule_script_is_a_step_module_with_code_inputs():
    """Each rule's script ends in run_rule(main) (keep=True for the expensive steps: KEPT_STEPS),
    declares its code inputs, and counts no NOT_CODE module."""
    rules = "".join(path.read_text() for path in sorted((PROJECT_ROOT / "rules").glob("*.smk")))
    steps = set(re.findall(r'script_path\("([\w/]+)"\)', rules))
    assert steps, "no rule runs a script_path() script"
    assert steps == set(re.findall(r'script_code\("([\w/]+)"\)', rules))
    for step in sorted(steps):
        script = f"workflow_scripts/{step}.py"
        text = (PROJECT_ROOT / script).read_text()
        entry = text.partition('if __name__ == "__main__":')[2]
        call = "run_rule(main, keep=True)" if step in KEPT_STEPS else "run_rule(main)"
        assert call in entry, f"{script}: its __main__ block does not call {call}"
        assert "from __future__" not in text, f"{script}: a future import breaks Snakemake's script preamble"
        inputs = code_inputs(script, PROJECT_ROOT)
        assert script in inputs
        assert not {f"workflow_scripts/{name}" for name in NOT_CODE} & set(inputs), script


def test_code_inputs_rerun_a_rule_when_its_imports_change_and_not_for_logging(workflow_dir):
    """score_asr for real, then: editing the logging module plans nothing, editing the text
    normalisation it imports (through asr.text) plans it again."""
    import pandas as pd

    from workflow_scripts.asr.transcripts import write_transcripts

    transcripts = workflow_dir / paths.TRANSCRIPTS.format(system="finetuned", split="dev")
    frame = pd.DataFrame(
        {"utt_id": ["a", "b"], "hypothesis": ["xin chào", "tôi đi"], "reference": ["xin chào", "tôi về"]}
    )
    write_transcripts(transcripts, frame, {})
    target = paths.ASR_WER.format(system="finetuned", split="dev")
    only = ["--allowed-rules", "score_asr"]
    run_snakemake(workflow_dir, target, *only)
    assert '"wer": 0.25' in (workflow_dir / target).read_text()

    def append(module):
        path = workflow_dir / "workflow_scripts" / module
        path.write_text(path.read_text() + "\n# edited\n")

    append("common/logs.py")
    assert "Nothing to be done" in run_snakemake(workflow_dir, "-n", target, *only).stdout
    append("asr/text.py")
    plan = run_snakemake(workflow_dir, "-n", target, *only).stdout
    assert "score_asr" in plan and "asr/text.py" in plan


def test_block_seeds_inherit_the_top_level_seed_unless_set():
    config = {"seed": 7, "a": {"seed": None, "b": [{"seed": None}, {"seed": 3}]}, "c": {"seed": 5}}
    inherit_seed(config, config["seed"])
    assert config == {"seed": 7, "a": {"seed": 7, "b": [{"seed": 7}, {"seed": 3}]}, "c": {"seed": 5}}


def test_shipped_config_seeds_every_block_from_the_top_level_seed():
    import yaml

    from workflow_scripts.config import validate_config

    config = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())
    config["seed"] = 11
    validate_config(config, PROJECT_ROOT / "schemas" / "config.schema.yaml")
    found = []

    def walk(block, where):
        if isinstance(block, dict):
            for key, value in block.items():
                if key == "seed":
                    found.append((where, value))
                else:
                    walk(value, f"{where}.{key}")

    walk(config, "")
    assert len(found) >= 10
    assert all(value == 11 for _, value in found), found


def test_split_roles():
    roles = names.split_roles({"splits": ["train", "dev", "a", "b"], "train_split": "train", "selection_split": "dev"})
    assert (roles.train, roles.selection, roles.test) == ("train", "dev", ("a", "b"))
    with pytest.raises(ValueError, match="task.selection_split: 'valid' is not one of"):
        names.split_roles({"splits": ["train", "dev", "a"], "train_split": "train", "selection_split": "valid"})
    with pytest.raises(ValueError, match="at least one test split"):
        names.split_roles({"splits": ["train", "dev"], "train_split": "train", "selection_split": "dev"})


def speaker_of_fold_sides(folds, speakers):
    speakers = np.asarray(speakers)
    return [set(speakers[fit]) & set(speakers[held]) for fit, held in folds]


def test_cv_folds_are_speaker_disjoint_and_seeded():
    y = np.tile([0, 1], 40)
    speakers = [f"s{i % 8}" for i in range(80)]
    folds = cv_folds(y, 3, seed=1, speakers=speakers)
    assert len(folds) == 3
    assert all(not shared for shared in speaker_of_fold_sides(folds, speakers))
    again = cv_folds(y, 3, seed=1, speakers=speakers)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))


def test_cv_folds_with_too_few_speakers_use_fewer_grouped_folds(caplog):
    y = np.tile([0, 1], 20)
    speakers = [f"s{i % 2}" for i in range(40)]
    with caplog.at_level(logging.WARNING):
        folds = cv_folds(y, 5, seed=0, speakers=speakers)
    assert len(folds) == 2
    assert all(not shared for shared in speaker_of_fold_sides(folds, speakers))
    assert "fewer than 5 folds: 2 speaker-grouped folds" in caplog.text


def test_cv_folds_without_every_speaker_are_ungrouped_and_say_so(caplog):
    y = np.tile([0, 1], 20)
    with caplog.at_level(logging.WARNING):
        folds = cv_folds(y, 4, seed=0, speakers=["s1"] * 39 + [""])
    assert len(folds) == 4
    assert "no speaker" in caplog.text
    with pytest.raises(ValueError, match="at least 4 training utterances of every class"):
        cv_folds(np.array([0] * 10 + [1] * 3), 4, seed=0)


def test_encode_labels_names_the_file_and_utterances():
    assert encode_labels(["b", "a", "b"], ["a", "b"], "x.tsv").tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match=r"x.tsv: labels not in task.classes \['a', 'b'\]: utt_id 'u2' has 'c'"):
        encode_labels(["a", "c"], ["a", "b"], "x.tsv", utt_ids=["u1", "u2"])
    with pytest.raises(ValueError, match=r"labels \['c'\]"):
        encode_labels(["a", "c"], ["a", "b"], "x.tsv")


def test_paths_fill_in_another_run_directory():
    assert paths.in_run(paths.TRANSCRIPTS, "/runs/a", system="oracle", split="dev") == Path(
        "/runs/a/systems/oracle/transcripts/dev.parquet"
    )
    # A text-dependent result of an ASR system, and a shared acoustic-only one: the {scope} segment.
    system = paths.system_scope("early")
    assert paths.VARIANT_METRICS.format(scope=system, variant="x") == "results/systems/early/metrics/x.json"
    assert paths.VARIANT_METRICS.format(scope=paths.SHARED_SCOPE, variant="x") == "results/shared/metrics/x.json"
    assert paths.scope_system(system) == "early" and paths.scope_system(paths.SHARED_SCOPE) is None
    assert paths.SYSTEM_DIR.format(system="early") == f"{paths.RESULTS}/{system}"
    for bad in ("systems/", "systems/a/b", "other"):
        with pytest.raises(ValueError, match="is neither 'shared' nor"):
            paths.scope_system(bad)
    assert (
        paths.log("fusion", "pool_features", "{scope}", "{modality}")
        == "logs/fusion/pool_features/{scope}/{modality}.log"
    )
    assert paths.benchmark("fusion", "table2") == "results/benchmarks/fusion/table2.tsv"
    assert all(
        value.startswith(paths.RESULTS + "/")
        for key, value in vars(paths).items()
        if key.isupper() and isinstance(value, str) and key not in ("RESULTS", "LOGS", "SHARED_SCOPE")
    )
