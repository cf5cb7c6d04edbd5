"""Issue 24 item 2: names.py lists the names, the registries beside the code implement them; both agree,
the registries import at DAG-build time without the heavy libraries, and every implementation resolves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workflow_scripts.common import names
from workflow_scripts.common.code_inputs import code_inputs
from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.common.registry import Spec, lookup, registry, resolve
from workflow_scripts.fusion.classifiers import CLASSIFIER_SPECS
from workflow_scripts.fusion.heads import graph as graph_module
from workflow_scripts.fusion.heads.registry import HEADS, HeadSpec
from workflow_scripts.sefe.registry import SEFE_BACKENDS
from workflow_scripts.tefe.registry import TEXT_BACKENDS

from conftest import PROJECT_ROOT, write_tone

LIGHT = ("workflow_scripts.sefe.registry", "workflow_scripts.tefe.registry", "workflow_scripts.fusion.heads.registry")


def test_every_registry_has_the_names_of_its_list_in_order():
    assert tuple(SEFE_BACKENDS) == names.SEFE_BACKENDS
    assert tuple(TEXT_BACKENDS) == names.TEFE_BACKENDS
    assert tuple(n for n, s in TEXT_BACKENDS.items() if s.standalone) == names.TEFE_OTHER_BACKENDS
    assert tuple(n for n, s in TEXT_BACKENDS.items() if s.writes_tokens) == names.TEFE_TOKEN_BACKENDS
    assert tuple(HEADS) == names.HEADS
    assert tuple(CLASSIFIER_SPECS) == names.CLASSIFIERS
    assert set(names.ENSEMBLE_MEMBERS) <= set(CLASSIFIER_SPECS)
    for table in (SEFE_BACKENDS, TEXT_BACKENDS, HEADS, CLASSIFIER_SPECS):
        assert all(spec.name == name for name, spec in table.items())


def test_the_weights_free_backends_need_no_gpu():
    assert [n for n, s in SEFE_BACKENDS.items() if not s.needs_gpu] == ["handcrafted", "egemaps", "compare"]
    assert [n for n, s in TEXT_BACKENDS.items() if not s.needs_gpu] == ["tfidf"]
    assert all(s.needs_gpu for s in HEADS.values())
    assert not any(s.needs_gpu for s in CLASSIFIER_SPECS.values())


def test_heads_name_the_sequence_sources_their_blocks_read():
    assert HEADS["graph"].sequence_sources({"nodes": ["speech", "prosody"]}) == {"acoustic", "prosody"}
    assert HEADS["graph"].sequence_sources({"nodes": list(names.GRAPH_NODE_SOURCES)}) == {
        "acoustic",
        "text",
        "prosody",
    }
    frozen, finetune = {"text_encoder": "frozen"}, {"text_encoder": "finetune"}
    assert HEADS["xattn"].sequence_sources(frozen) == set(names.SEQUENCE_MODALITIES)
    assert HEADS["xattn"].sequence_sources(finetune) == set(names.SEQUENCE_MODALITIES)
    assert HEADS["xattn"].predict_sources(finetune) == {"acoustic"}


@pytest.mark.parametrize("table", [SEFE_BACKENDS, TEXT_BACKENDS, HEADS, CLASSIFIER_SPECS])
def test_every_implementation_resolves(table):
    for spec in table.values():
        assert callable(spec.load()), spec
        if hasattr(spec, "predictor"):
            assert callable(resolve(spec.predictor)), spec


def test_registries_import_without_the_heavy_libraries():
    code = (
        "import sys\n"
        + "".join(f"import {module}\n" for module in LIGHT)
        + "heavy = {'torch', 'sklearn', 'numpy', 'pandas', 'xgboost'} & set(sys.modules)\n"
        + "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True)


def test_a_registry_reference_is_a_code_input_and_one_head_is_no_input_of_the_other():
    """Editing a text backend reruns the rules that build it by name; editing one head does not rerun the other."""
    backends = code_inputs("workflow_scripts/tefe/train_backend.py", PROJECT_ROOT)
    assert {"workflow_scripts/tefe/tfidf.py", "workflow_scripts/tefe/transformer.py"} <= set(backends)
    assert "workflow_scripts/fusion/heads/xattn.py" not in code_inputs(
        "workflow_scripts/fusion/heads/graph.py", PROJECT_ROOT
    )
    assert "workflow_scripts/fusion/heads/graph.py" not in code_inputs(
        "workflow_scripts/fusion/heads/xattn.py", PROJECT_ROOT
    )
    assert graph_module.sources(["spectral", "text"]) == sorted(
        HEADS["graph"].sequence_sources({"nodes": ["spectral", "text"]})
    )


def test_the_spec_helpers_name_what_is_wrong():
    table = registry(Spec("a", False, "json:dumps"))
    assert lookup(table, "a", "thing").load() is resolve("json:dumps")
    with pytest.raises(ValueError, match=r"unknown thing 'b'; expected one of \['a'\]"):
        lookup(table, "b", "thing")
    with pytest.raises(ValueError, match="registered twice"):
        registry(Spec("a", False, "json:dumps"), Spec("a", True, "json:loads"))
    with pytest.raises(ValueError, match="not a 'module:attribute'"):
        resolve("json")


# --- the recipe of a new head, for predict: its registry entry and its module's loader, nothing in predict ---


def fake_asr(config, run_dir, threads):
    return lambda audio_paths: ["" for _ in audio_paths]


def fake_frames(config, run_dir, threads):
    return lambda audio_paths: [np.ones((3 + i, 2), np.float32) for i, _ in enumerate(audio_paths)]


class ToyPredictor:
    """A head predictor: the share of frames in an utterance's first half, as two class probabilities."""

    classes = ["neutral", "negative"]

    def __init__(self, inputs):
        self.inputs = inputs

    def predict(self, audio, transcripts):
        lengths = np.array([len(m) for m in self.inputs("acoustic", audio)], dtype=np.float64)
        return np.column_stack([1.0 / lengths, 1.0 - 1.0 / lengths])


def acoustic_only(block):
    """The toy head reads the frames alone, so its results are shared by every ASR system."""
    return frozenset({"acoustic"})


def load_toy(path, inputs):
    assert Path(path).read_text() == "toy model"
    return ToyPredictor(inputs)


def test_predict_runs_a_new_head_from_its_registry_entry_alone(monkeypatch, tmp_path):
    from workflow_scripts import predict

    toy = HeadSpec("toy", True, "json:dumps", "train_toy", acoustic_only, acoustic_only, "test_registries:load_toy")
    monkeypatch.setitem(HEADS, "toy", toy)
    monkeypatch.setattr(names, "HEADS", (*names.HEADS, "toy"))
    monkeypatch.setitem(predict.SEQUENCE_FACTORIES, "acoustic", "test_registries:fake_frames")
    sequences = {"acoustic": None, "text": None, "prosody": None}
    heads = {"toy": {"seed": 1}, "variants": ["toy"], "ablations": {}, "sequences": sequences}
    asr = block_defaults("asr", {"transcribe": {"model": "small"}})
    config = {"asr": asr, "fusion": {"heads": heads, "vote": {"members": []}}}
    factories = {**predict.STAGE_FACTORIES, "asr": "test_registries:fake_asr"}
    (missing,) = predict.missing_artifacts(config, tmp_path, factories, "toy")
    assert missing.endswith("(built by rule train_toy: snakemake results/shared/fusion/heads/toy/model.pt)")
    model = tmp_path / "shared" / "fusion" / "heads" / "toy" / "model.pt"
    model.parent.mkdir(parents=True)
    model.write_text("toy model")
    assert predict.missing_artifacts(config, tmp_path, factories, "toy") == []
    predictor, transcribe = predict.load_predictor(config, tmp_path, "toy", 1, factories)
    clips = [write_tone(tmp_path / f"clip{i}.wav", seconds=0.3) for i in range(2)]
    frame = predict.predict_files(clips, transcribe, predictor)
    np.testing.assert_allclose(frame["p_neutral"], [1 / 3, 1 / 4])
    assert frame["label"].tolist() == ["negative", "negative"] and (frame["error"] == "").all()
