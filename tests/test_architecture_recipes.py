"""docs/architecture.md's recipes, followed once: a new SEFE backend and a new classifier work from their
registry entries alone (no code that switches on names changes)."""

from __future__ import annotations

import numpy as np

from workflow_scripts.common.registry import Spec
from workflow_scripts.fusion import classifiers
from workflow_scripts.sefe import backends, extract
from workflow_scripts.sefe import registry as sefe_registry


class MeanEnergyBackend(backends.Backend):
    """A stand-in backend: two frame features (mean and energy of 10 ms hops)."""

    name = "mean_energy"
    dim = 2
    checkpoint = "none"
    frame_rate_hz = 100.0

    def __init__(self, block, sample_rate, threads):
        self.hop = sample_rate // 100

    def frames(self, waveforms):
        out = []
        for waveform in waveforms:
            hops = waveform[: len(waveform) // self.hop * self.hop].reshape(-1, self.hop)
            out.append(np.stack([hops.mean(axis=1), (hops**2).mean(axis=1)], axis=1).astype(np.float32))
        return out


def test_a_registered_sefe_backend_is_built_and_pooled_without_other_changes(monkeypatch):
    spec = Spec("mean_energy", False, f"{__name__}:MeanEnergyBackend")
    monkeypatch.setitem(sefe_registry.SEFE_BACKENDS, spec.name, spec)
    backend = backends.build_backend("mean_energy", {}, 16000)
    assert type(backend).__name__ == "MeanEnergyBackend" and backend.hop == 160
    waveform = np.sin(np.linspace(0, 100, 16000)).astype(np.float32)
    chunk = extract.encode_waveforms(backend, [("u1", "u1.wav")], [waveform], 16000)
    frames = backend.frames([waveform])[0]
    np.testing.assert_allclose(chunk.stats["mean"][0], frames.mean(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(chunk.stats["max"][0], frames.max(axis=0))


def test_a_registered_classifier_is_built_and_fitted_without_other_changes(monkeypatch):
    spec = classifiers.ClassifierSpec(
        "knn",
        False,
        "sklearn.neighbors:KNeighborsClassifier",
        lambda block: {"n_neighbors": block["k"]},
        scaled=True,
        threaded=True,
    )
    monkeypatch.setitem(classifiers.CLASSIFIER_SPECS, spec.name, spec)
    pipeline = classifiers.build_classifier("knn", classifiers.estimator_params("knn", {"k": 3}), threads=2)
    assert [name for name, _ in pipeline.steps] == ["scale", "model"]
    assert pipeline.named_steps["model"].get_params()["n_neighbors"] == 3
    assert pipeline.named_steps["model"].get_params()["n_jobs"] == 2
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (20, 3)), rng.normal(4, 1, (20, 3))])
    y = np.repeat([0, 1], 20)
    probabilities = classifiers.predict_proba(pipeline.fit(X, y), X, 2)
    assert probabilities.shape == (40, 2) and (probabilities.argmax(axis=1) == y).mean() > 0.9
