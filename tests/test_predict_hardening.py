"""Issue 18: predict finishes the good files, reports each failed file in an error column and exits
non-zero with a one-line summary; a run directory missing an artifact names it and the rule that
builds it. A tiny run directory (a logistic regression as every ensemble member) and stage hooks
defined here stand in for a finished run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from workflow_scripts import predict
from workflow_scripts.asr.transcribe import load_transcriber
from workflow_scripts.common import paths
from workflow_scripts.common.checksums import record_checksum, write_checked_json
from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.common.model_files import ModelFileError, load_estimator, save_estimator
from workflow_scripts.common.names import ENSEMBLE_FEATURE_SET, ENSEMBLE_MEMBERS
from workflow_scripts.fusion.heads.registry import HEADS

from conftest import PROJECT_ROOT, write_tone

CLASSES = ["neutral", "negative"]
HOOKS = [
    "--hook",
    "asr=test_predict_hardening:fake_asr",
    "--hook",
    "sefe=test_predict_hardening:fake_sefe",
    "--hook",
    "tefe=test_predict_hardening:fake_tefe",
]


def fake_asr(config, run_dir, threads):
    return lambda audio_paths: [Path(p).stem for p in audio_paths]


def fake_sefe(config, run_dir, threads):
    def extract(audio_paths):
        crashing = [p for p in audio_paths if "crash" in Path(p).name]
        if crashing:
            raise RuntimeError(f"encoder exploded on {crashing[0]}\nsecond line of the traceback text")
        return {"mean": np.array([[len(p) % 3, 1.0] for p in audio_paths], dtype=np.float32)}

    return extract


def fake_tefe(config, run_dir, threads):
    return lambda texts: {"mean": np.array([[len(t), 0.5] for t in texts], dtype=np.float32)}


def _run_dir(root: Path, system: str = "finetuned") -> Path:
    """A stand-in run directory with the fusion models of ASR system ``system`` (config.yaml's primary one)."""
    run = root / "run"
    features = [
        {"modality": "acoustic", "statistics": ["mean"], "dim": 2, "model": "toy"},
        {"modality": "text", "statistics": ["mean"], "dim": 2, "model": "toy"},
    ]
    rng = np.random.default_rng(0)
    model = make_pipeline(LogisticRegression()).fit(rng.normal(size=(20, 4)), np.arange(20) % 2)
    for name in ENSEMBLE_MEMBERS:
        where = {"scope": paths.system_scope(system), "feature_set": ENSEMBLE_FEATURE_SET, "classifier": name}
        summary = paths.in_run(paths.CLASSIFIER_SUMMARY, run, **where)
        summary.parent.mkdir(parents=True, exist_ok=True)
        write_checked_json(summary, {"features": features, "classes": CLASSES})
        save_estimator(model, paths.in_run(paths.CLASSIFIER_MODEL, run, **where))
    weights = paths.in_run(paths.ENSEMBLE_WEIGHTS, run, scope=paths.system_scope(system))
    write_checked_json(weights, {"weights": {name: 1 / len(ENSEMBLE_MEMBERS) for name in ENSEMBLE_MEMBERS}})
    return run


def _argv(run: Path, output: Path, *inputs: Path) -> list[str]:
    config = str(PROJECT_ROOT / "config.yaml")
    return ["--run-dir", str(run), "--configfile", config, *HOOKS, "--output", str(output), *map(str, inputs)]


def test_bad_files_get_an_error_row_the_good_ones_a_prediction_and_the_exit_is_one_line(tmp_path):
    run = _run_dir(tmp_path)
    good = [write_tone(tmp_path / "in" / f"good{i}.wav", seconds=0.3) for i in range(2)]
    corrupt = tmp_path / "in" / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    crash = write_tone(tmp_path / "in" / "crash.wav", seconds=0.3)
    output = tmp_path / "out.csv"
    with pytest.raises(SystemExit) as exit_info:
        predict.main(_argv(run, output, good[0], corrupt, crash, good[1]))
    message = str(exit_info.value)
    assert "\n" not in message
    assert message == f"predict: 2 of 4 file(s) failed, 2 predicted; the reasons are in the error column of {output}"
    frame = pd.read_csv(output, keep_default_na=False).set_index("path")
    assert list(frame.columns) == ["transcript", "label", "p_neutral", "p_negative", "error"]
    for path in good:
        row = frame.loc[str(path)]
        assert row["error"] == "" and row["label"] in CLASSES
        assert float(row["p_neutral"]) + float(row["p_negative"]) == pytest.approx(1.0)
    assert "unreadable audio" in frame.loc[str(corrupt), "error"] and frame.loc[str(corrupt), "label"] == ""
    assert frame.loc[str(crash), "error"] == f"RuntimeError: encoder exploded on {crash}"


def test_json_output_of_a_failed_file_is_valid_json_with_nulls(tmp_path):
    run = _run_dir(tmp_path)
    corrupt = tmp_path / "bad.wav"
    corrupt.write_bytes(b"")
    good = write_tone(tmp_path / "good.wav", seconds=0.3)
    with pytest.raises(SystemExit, match="1 of 2 file"):
        predict.main(_argv(run, tmp_path / "out.json", good, corrupt))
    rows = json.loads((tmp_path / "out.json").read_text())
    assert rows[1]["p_neutral"] is None and rows[1]["error"]
    assert rows[0]["error"] == "" and rows[0]["p_neutral"] is not None


def test_all_good_files_exit_zero_with_an_empty_error_column(tmp_path):
    run = _run_dir(tmp_path)
    good = write_tone(tmp_path / "good.wav", seconds=0.3)
    predict.main(_argv(run, tmp_path / "out.csv", good))
    assert pd.read_csv(tmp_path / "out.csv", keep_default_na=False)["error"].tolist() == [""]


def test_a_half_finished_run_directory_names_each_missing_artifact_and_its_rule(tmp_path):
    run = _run_dir(tmp_path)
    scope = {"scope": paths.system_scope("finetuned")}
    paths.in_run(paths.ENSEMBLE_WEIGHTS, run, **scope).unlink()
    rf = {**scope, "feature_set": ENSEMBLE_FEATURE_SET, "classifier": "rf"}
    paths.in_run(paths.CLASSIFIER_MODEL, run, **rf).unlink()
    good = write_tone(tmp_path / "good.wav", seconds=0.3)
    with pytest.raises(SystemExit) as exit_info:
        predict.main(_argv(run, tmp_path / "out.csv", good))
    message = str(exit_info.value)
    assert f"the run directory {run} lacks 2 artifact(s)" in message
    weights = "systems/finetuned/ensemble/weights.json"
    assert f"{run}/{weights} (built by rule tune_ensemble: snakemake results/{weights})" in message
    rf_model = paths.CLASSIFIER_MODEL.format(**rf)
    assert f"(built by rule train_classifier: snakemake {rf_model})" in message
    assert not (tmp_path / "out.csv").exists()


def test_default_stages_need_the_tefe_selection_and_the_finetuned_asr_model(tmp_path):
    run = _run_dir(tmp_path)
    config = {"asr": block_defaults("asr", {"transcribe": {"model": "finetuned"}})}
    missing = predict.missing_artifacts(config, run, predict.STAGE_FACTORIES)
    assert any("(built by rule select_tefe" in line for line in missing)
    assert any("(built by rule finetune_whisper" in line for line in missing)


def test_asr_system_chooses_the_fusion_models_and_the_oracle_cannot_transcribe(tmp_path):
    run = _run_dir(tmp_path, system="early")
    good = write_tone(tmp_path / "good.wav", seconds=0.3)
    predict.main([*_argv(run, tmp_path / "early.csv", good), "--asr-system", "early"])
    assert pd.read_csv(tmp_path / "early.csv", keep_default_na=False)["error"].tolist() == [""]
    with pytest.raises(SystemExit) as exit_info:  # the primary system's models are not in this run
        predict.main(_argv(run, tmp_path / "out.csv", good))
    assert f"{run}/systems/finetuned/ensemble/weights.json" in str(exit_info.value)
    # The oracle has fusion models of its own but no ASR model: here the hook transcribes, and its models
    # are not in this run; the default ASR stage refuses it.
    with pytest.raises(SystemExit, match=r"systems/oracle/ensemble/weights.json"):
        predict.main([*_argv(run, tmp_path / "out.csv", good), "--asr-system", "oracle"])
    oracle = {"asr": {"transcribe": {}, "systems": [{"name": "oracle", "backend": "oracle"}], "primary_system": None}}
    with pytest.raises(ValueError, match="'oracle' is the oracle"):
        load_transcriber(oracle, run, threads=1)
    with pytest.raises(SystemExit, match=r"--asr-system 'nope' is not one of the run's asr.systems"):
        predict.main([*_argv(run, tmp_path / "out.csv", good), "--asr-system", "nope"])


def test_each_artifact_is_an_output_of_the_rule_named_for_it():
    rules_text = "\n".join(p.read_text() for p in sorted((PROJECT_ROOT / "rules").glob("*.smk")))
    blocks = dict(re.findall(r"^(?:rule|checkpoint) (\w+):\n(.*?)(?=^\S|\Z)", rules_text, re.S | re.M))
    artifacts = [*predict.ARTIFACT_RULES.items(), *(("HEAD_MODEL", spec.rule) for spec in HEADS.values())]
    for template, rule in artifacts:
        output = blocks[rule].split("output:", 1)[1].split("log:", 1)[0]
        assert f"paths.{template}" in output, (template, rule)


def test_a_yaml_error_in_a_config_file_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1\n", encoding="utf-8")
    good = write_tone(tmp_path / "good.wav", seconds=0.3)
    with pytest.raises(SystemExit, match=rf"^predict: {bad}: not valid YAML at line 2, column 1"):
        predict.main(["--configfile", str(bad), "--output", str(tmp_path / "o.csv"), str(good)])


def test_a_clip_shorter_than_the_corpus_minimum_is_refused_per_file(tmp_path):
    run = _run_dir(tmp_path)
    good = write_tone(tmp_path / "good.wav", seconds=0.3)
    short = write_tone(tmp_path / "short.wav", seconds=0.01)
    with pytest.raises(SystemExit, match="1 of 2 file"):
        predict.main(_argv(run, tmp_path / "out.csv", good, short))
    frame = pd.read_csv(tmp_path / "out.csv", keep_default_na=False).set_index("path")
    assert frame.loc[str(good), "error"] == "" and frame.loc[str(short), "label"] == ""
    assert (
        frame.loc[str(short), "error"] == f"{short}: clip of 0.010 s is shorter than the minimum 0.1 s (min_duration_s)"
    )


def _lr_model(run: Path) -> Path:
    where = {"scope": paths.system_scope("finetuned"), "feature_set": ENSEMBLE_FEATURE_SET, "classifier": "lr"}
    return paths.in_run(paths.CLASSIFIER_MODEL, run, **where)


def test_a_tampered_model_file_is_refused_naming_it(tmp_path):
    run = _run_dir(tmp_path)
    model = _lr_model(run)
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte (a crafted file would differ more)
    model.write_bytes(bytes(data))
    good = write_tone(tmp_path / "good.wav", seconds=0.3)
    with pytest.raises(SystemExit) as exit_info:
        predict.main(_argv(run, tmp_path / "out.csv", good))
    message = str(exit_info.value)
    assert f"refusing the run directory {run}: 1 artifact(s) fail their SHA-256 check" in message
    assert f"{model}: SHA-256 " in message and "changed, replaced or truncated" in message
    assert "(rule train_classifier builds it" in message
    assert not (tmp_path / "out.csv").exists()


def test_a_truncated_model_file_is_refused_naming_it_with_no_traceback(tmp_path):
    run = _run_dir(tmp_path)
    model = _lr_model(run)
    model.write_bytes(model.read_bytes()[:100])
    good = write_tone(tmp_path / "good.wav", seconds=0.3)
    with pytest.raises(SystemExit, match=rf"{re.escape(str(model))}: SHA-256 .* \(100 bytes now\)"):
        predict.main(_argv(run, tmp_path / "out.csv", good))
    # Past the check (a file truncated before its record was written): still a message naming it.
    record_checksum(model)
    with pytest.raises(ModelFileError, match=rf"{re.escape(str(model))}: not a readable model file .* truncated"):
        load_estimator(model)


def test_a_model_file_holding_other_types_is_refused_even_with_a_matching_record(tmp_path):
    """A crafted file with its own record (someone who can write the run directory): skops refuses the types."""
    path = tmp_path / "crafted.skops"
    save_estimator({"payload": predict.Artifact("T", "r", {})}, path)
    with pytest.raises(ModelFileError, match=r"crafted.skops: holds types this workflow does not trust .*Artifact"):
        load_estimator(path)


def test_model_files_are_byte_reproducible_and_predict_as_before(tmp_path):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    models = [make_pipeline(LogisticRegression()).fit(X, y) for _ in range(2)]
    for i, model in enumerate(models):
        save_estimator(model, tmp_path / f"m{i}.skops")
    assert (tmp_path / "m0.skops").read_bytes() == (tmp_path / "m1.skops").read_bytes()
    loaded = load_estimator(tmp_path / "m0.skops")
    np.testing.assert_array_equal(loaded.predict_proba(X), models[0].predict_proba(X))


def test_no_model_file_is_unpickled():
    """joblib / pickle never load a file; torch loads weights only (the one exception: the resume state of a
    rule's own work directory, common/training.py, which predict never reads)."""
    sources = {p: p.read_text(encoding="utf-8") for p in (PROJECT_ROOT / "workflow_scripts").rglob("*.py")}
    assert not [p for p, text in sources.items() if re.search(r"\b(joblib|pickle|cloudpickle|dill)\.load", text)]
    loads = [(p.name, call) for p, text in sources.items() for call in re.findall(r"torch\.load\([^)]*\)", text)]
    unsafe = [(name, call) for name, call in loads if "weights_only=True" not in call]
    assert unsafe == [("training.py", 'torch.load(path, map_location="cpu", weights_only=False)')]
