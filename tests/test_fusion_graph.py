"""Prosody tokens (quantizer), the graph-attention head (a GAT layer checked by hand, training
that never sees a test split) and the majority vote, on tiny data the tests build."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_fusion_heads import BOOTSTRAP, CLASSES, SPLITS, TRAINER, write_synthetic

from workflow_scripts.common import paths
from workflow_scripts.common.code_inputs import code_inputs
from workflow_scripts.common.files import read_json
from workflow_scripts.common.sequences import SequenceFile, SequenceWriter
from workflow_scripts.fusion.heads import trainer
from workflow_scripts.fusion.heads.graph import GraphAttentionLayer, train_and_evaluate
from workflow_scripts.fusion.heads.outputs import HeadRun
from workflow_scripts.fusion.vote import evaluate_vote, majority_vote
from workflow_scripts.sefe import prosody, prosody_bins, prosody_f0, prosody_tokens

from conftest import PROJECT_ROOT, write_tone
from rule_job import rule_job
from snakemake_runner import dry_run

F0 = {
    "tracker": "yin",
    "fmin": 60.0,
    "fmax": 500.0,
    "frame_length_ms": 40.0,
    "hop_length_ms": 10.0,
    "voicing_threshold": 0.4,
    "silence_db": 40.0,
    "pyin_resolution": 0.1,
}


def f0_matrix(hz, voiced):
    return np.stack([np.where(voiced, hz, 0.0), np.asarray(voiced, np.float32)], axis=1).astype(np.float32)


# --- prosody tokens -------------------------------------------------------------------------


def test_f0_of_a_tone_is_voiced_and_silence_is_the_unvoiced_token():
    rate = 16000
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 200.0 * t)).astype(np.float32)
    waveform = np.concatenate([tone, np.zeros(rate // 2, np.float32)])  # 1 s at 200 Hz, 0.5 s silence
    f0, voiced = prosody.track_f0(waveform, rate, F0)
    again = prosody.track_f0(waveform, rate, F0)
    np.testing.assert_array_equal(f0, again[0])  # deterministic
    assert len(f0) == 151  # 1.5 s at 100 frames/s, centred frames
    assert voiced[5:95].all() and not voiced[110:].any()
    assert np.allclose(f0[5:95], 200.0, rtol=0.01) and (f0[~voiced] == 0).all()
    uniform = {"bins": 8, "method": "uniform", "range_hz": [60.0, 500.0]}
    quantizer = prosody_bins.fit_bins([f0_matrix(f0, voiced)], uniform)
    tokens = prosody.quantize(f0_matrix(f0, voiced), quantizer)
    assert (tokens[~voiced] == prosody.UNVOICED).all() and (tokens[voiced] >= 1).all()
    # 200 Hz in mel (HTK) between mel(60) and mel(500) in 8 even bins
    expected = 1 + int(
        (prosody.hz_to_mel(200.0) - prosody.hz_to_mel(60.0))
        / (quantizer["range_mel"][1] - quantizer["range_mel"][0])
        * 8
    )
    assert set(tokens[10:90]) == {expected}


def test_quantile_bins_come_from_the_training_frames_and_clip_to_the_range():
    hz = np.array([100.0, 110.0, 120.0, 130.0, 140.0, 150.0, 160.0, 170.0])
    voiced = np.ones(8, bool)
    train = [f0_matrix(hz[:4], voiced[:4]), f0_matrix(hz[4:], voiced[4:]), f0_matrix(np.zeros(3), np.zeros(3, bool))]
    quantizer = prosody_bins.fit_bins(train, {"bins": 4, "method": "quantile", "range_hz": [60.0, 500.0]})
    mel = prosody.hz_to_mel(hz)
    np.testing.assert_allclose(quantizer["edges"], np.quantile(mel, [0.25, 0.5, 0.75]))
    assert quantizer["vocabulary_size"] == 5 and quantizer["voiced_frames"] == 8 and quantizer["frames"] == 11
    # every bin holds two training frames; unvoiced frames take no part in the edges
    assert prosody.quantize(train[0], quantizer).tolist() == [1, 1, 2, 2]
    assert prosody.quantize(train[1], quantizer).tolist() == [3, 3, 4, 4]
    # beyond the training range: the end bins (and clipped to range_hz); unvoiced stays 0
    other = f0_matrix(np.array([30.0, 90.0, 1000.0, 0.0]), np.array([True, True, True, False]))
    assert prosody.quantize(other, quantizer).tolist() == [1, 1, 4, 0]
    with pytest.raises(ValueError, match="no voiced frame"):
        prosody_bins.fit_bins(train[2:], {"bins": 4, "method": "quantile", "range_hz": [60.0, 500.0]})


def test_the_bins_step_fits_the_f0_it_is_given_and_the_tokens_follow(tmp_path):
    manifests, f0_files = {}, {}
    for split, frequency in (("train", 150.0), ("dev", 300.0)):
        import pandas as pd

        wav = write_tone(tmp_path / f"{split}.wav", seconds=0.5, frequency=frequency)
        manifests[split] = tmp_path / f"{split}.tsv"
        row = {"utt_id": f"{split}_0", "audio_path": str(wav), "duration_s": 0.5, "sample_rate": 16000}
        pd.DataFrame([{**row, "text": "x", "label": "neutral", "split": split, "speaker": "s"}]).to_csv(
            manifests[split], sep="\t", index=False
        )
        f0_files[split] = tmp_path / f"f0_{split}.parquet"
        prosody_f0.extract_f0(manifests[split], f0_files[split], F0, {"fixed_length_s": None}, split)
    quantizer = {"bins": 16, "method": "quantile", "range_hz": [60.0, 500.0]}
    job = rule_job(
        {"f0": str(f0_files["train"])},
        {"bins": str(tmp_path / "bins.json")},
        {"quantizer": quantizer, "train_split": "train"},
    )
    prosody_bins.main(job)
    bins = read_json(tmp_path / "bins.json")
    assert bins["fitted_on"]["split"] == "train" and bins["vocabulary_size"] == 17
    # a 150 Hz tone: all training edges sit at (about) mel(150)
    assert np.allclose(bins["edges"], prosody.hz_to_mel(150.0), rtol=5e-3)
    job = rule_job(
        {"f0": str(f0_files["dev"]), "bins": str(tmp_path / "bins.json")}, {"tokens": str(tmp_path / "tok.parquet")}
    )
    prosody_tokens.main(job)
    tokens = SequenceFile(tmp_path / "tok.parquet")
    assert tokens.metadata["kind"] == "tokens" and tokens.metadata["vocabulary_size"] == 17
    ids = tokens.read([0])[0][:, 0]
    assert set(ids[5:-5]) == {16}  # 300 Hz: above every training edge -> the last bin
    assert tokens.utt_ids == ["dev_0"] and tokens.lengths.tolist() == [51]


def test_the_dag_fits_the_prosody_bins_on_the_training_splits_f0_alone(workflow_dir):
    """Seed 003's quantizer as the DAG wires it: one fit_prosody_bins job whose only data input is the
    training split's F0; each split's tokens read that split's F0 and those bins."""

    def data_inputs(job) -> list[str]:
        return sorted(path for path in job.input if not path.startswith("workflow_scripts/"))

    plan = dry_run(workflow_dir, *[paths.PROSODY_TOKENS.format(split=split) for split in SPLITS], timeout=300)
    jobs = plan.by_rule()
    (fit,) = jobs["fit_prosody_bins"]
    assert data_inputs(fit) == [paths.PROSODY_F0.format(split="train")]
    tokens = {job.wildcards["split"]: data_inputs(job) for job in jobs["extract_prosody_tokens"]}
    assert tokens == {split: sorted([paths.PROSODY_F0.format(split=split), paths.PROSODY_BINS]) for split in SPLITS}


def test_each_prosody_rule_has_its_own_step_module():
    """Editing one step reruns its rule alone; the library (prosody.py) is what they share."""
    steps = {"prosody_f0", "prosody_bins", "prosody_tokens"}
    for step in steps:
        inputs = set(code_inputs(f"workflow_scripts/sefe/{step}.py", PROJECT_ROOT))
        assert "workflow_scripts/sefe/prosody.py" in inputs, step
        assert not {f"workflow_scripts/sefe/{other}.py" for other in steps - {step}} & inputs, (step, inputs)


# --- the graph attention layer and head -------------------------------------------------------


def test_gat_layer_on_a_three_node_graph_by_hand():
    layer = GraphAttentionLayer(2, 2, heads=1, negative_slope=0.2)
    with torch.no_grad():
        layer.weight.weight.copy_(torch.eye(2))
        layer.a_dst.copy_(torch.tensor([[1.0, 0.0]]))
        layer.a_src.copy_(torch.tensor([[0.0, -2.0]]))
    h = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    with torch.no_grad():
        out, alpha = layer(h)
    # e_ij = LeakyReLU(a_dst . h_i + a_src . h_j) = LeakyReLU(h_i[0] - 2 h_j[1]):
    # node 0: [1, -1, -1] -> [1, -0.2, -0.2]; softmax -> e^1, e^-0.2, e^-0.2 over 4.3557433
    a0 = np.array([math.e, math.exp(-0.2), math.exp(-0.2)]) / (math.e + 2 * math.exp(-0.2))
    # node 1: [0, -2, -2] -> [0, -0.4, -0.4]; node 2 = node 0 (same h_i[0])
    a1 = np.array([1.0, math.exp(-0.4), math.exp(-0.4)]) / (1 + 2 * math.exp(-0.4))
    np.testing.assert_allclose(a0, [0.624068, 0.187966, 0.187966], atol=1e-6)
    np.testing.assert_allclose(alpha[0, :, :, 0].numpy(), np.stack([a0, a1, a0]), atol=1e-6)
    # h'_i = sum_j alpha_ij W h_j: node 0 -> [a00 + a02, a01 + a02] = [0.812034, 0.375932]
    np.testing.assert_allclose(
        out[0].numpy(), [[0.812034, 0.375932], [0.713617, 0.572767], [0.812034, 0.375932]], atol=1e-6
    )
    # an adjacency without the edge 0 -> 1: node 0 spreads its attention over nodes 0 and 2 only
    adjacency = torch.ones(3, 3, dtype=torch.bool)
    adjacency[0, 1] = False
    with torch.no_grad():
        _, masked = layer(h, adjacency)
    np.testing.assert_allclose(
        masked[0, 0, :, 0].numpy(),
        [math.e / (math.e + math.exp(-0.2)), 0.0, math.exp(-0.2) / (math.e + math.exp(-0.2))],
        atol=1e-6,
    )


def test_cosine_schedule_decays_to_zero_per_step():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = trainer.cosine_schedule(optimizer, 4)
    rates = [optimizer.param_groups[0]["lr"]]
    for _ in range(4):
        optimizer.step()
        schedule.step()
        rates.append(optimizer.param_groups[0]["lr"])
    np.testing.assert_allclose(
        rates, [1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 - math.cos(math.pi / 4)) / 2, 0.0], atol=1e-12
    )


TINY = {
    **TRAINER,
    "d_model": 16,
    "heads": 4,
    "gat_layers": 2,
    "prosody_dim": 4,
    "mlp_hidden": 8,
    "epochs": 4,
    "patience": 2,
    "batch_size": 8,
    "learning_rate": 0.01,
    "seed": 5,
    "device": "cpu",
    "class_weights": "balanced",
    "lr_schedule": "cosine",
    # The other model keys as the schema's defaults (code reads validated blocks).
    "nodes": ["speech", "text", "prosody", "spectral"],
    "fusion": "graph",
    "dropout": 0.2,
}


def synthetic_graph_inputs(directory, test_shift=0.0):
    files = write_synthetic(directory, test_shift=test_shift)
    rng = np.random.default_rng(1)
    files["prosody"] = {}
    for split, path in files["acoustic"].items():
        ids = SequenceFile(path).utt_ids
        labels = [int(u.split("_")[-1]) % 2 for u in ids]  # write_synthetic's labels: index % 2
        tokens = [rng.integers(0, 5, (int(rng.integers(3, 9)), 1)) + 4 * y for y in labels]
        with SequenceWriter(
            directory / f"prosody_{split}.parquet", 1, "tokens", {"model": "toy", "vocabulary_size": 9}
        ) as w:
            w.write(ids, [t.astype(np.float32) for t in tokens])
        files["prosody"][split] = str(directory / f"prosody_{split}.parquet")
    return {k: files[k] for k in ("acoustic", "text", "prosody")}, files["manifests"]


def test_graph_head_is_deterministic_and_never_trains_on_a_test_split(tmp_path):
    torch.set_num_threads(1)

    def run(block):
        return HeadRun(block, BOOTSTRAP, CLASSES, "train", "dev", "graph", "Graph-attention fusion (seed 003)")

    first = train_and_evaluate(*synthetic_graph_inputs(tmp_path / "a"), run(TINY))
    second = train_and_evaluate(*synthetic_graph_inputs(tmp_path / "b"), run(TINY))
    for split in SPLITS:
        np.testing.assert_array_equal(first[3][split][1], second[3][split][1])
    shifted = train_and_evaluate(*synthetic_graph_inputs(tmp_path / "c", test_shift=3.0), run(TINY))
    for a, b in zip(first[0].state_dict().values(), shifted[0].state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the test split's features changed: the same model
    assert not np.array_equal(first[3]["public_test"][1], shifted[3]["public_test"][1])
    document = first[2]
    assert document["title"] == "Graph-attention fusion (seed 003)" and document["selection"]["data"] == "dev"
    assert document["feature_sets"] == ["acoustic_sequences", "prosody_sequences", "text_sequences"]
    assert "ci" in document["splits"]["public_test"] and first[1]["training"]["lr_schedule"] == "cosine"
    # the ablations: no prosody node reads no prosody file; concat has no attention or GAT weights
    files, manifests = synthetic_graph_inputs(tmp_path / "d")
    ablation = train_and_evaluate(
        {k: files[k] for k in ("acoustic", "text")},
        manifests,
        run({**TINY, "nodes": ["speech", "text", "spectral"]}),
    )
    assert ablation[2]["feature_sets"] == ["acoustic_sequences", "text_sequences"]
    concat = train_and_evaluate(files, manifests, run({**TINY, "fusion": "concat"}))
    assert not any(name.startswith(("attention", "gat")) for name in concat[0].state_dict())
    assert sum(name.startswith("gat.") for name in first[0].state_dict()) == 2 * 3  # 2 layers x (W, a_dst, a_src)


# --- the majority vote -----------------------------------------------------------------------


def test_majority_wins_over_a_confident_minority_and_ties_go_to_the_mean_probability():
    members = [np.array([[0.51, 0.49]]), np.array([[0.51, 0.49]]), np.array([[0.01, 0.99]])]
    predicted, shares, figures = majority_vote(members)
    assert predicted.tolist() == [0]  # two votes to one, although the mean probability favours class 1
    assert figures == {"ties": 0, "unanimous": 0} and shares.sum() == pytest.approx(1.0)
    # a 1-1 tie: the class with the higher mean probability; an exact tie: the first class
    tie = [np.array([[0.6, 0.4], [0.9, 0.1], [0.7, 0.3]]), np.array([[0.1, 0.9], [0.4, 0.6], [0.3, 0.7]])]
    predicted, shares, figures = majority_vote(tie)
    assert predicted.tolist() == [1, 0, 0] and figures["ties"] == 3
    np.testing.assert_array_equal(shares.argmax(axis=1), predicted)  # the written probabilities give the vote
    three = [np.array([[0.5, 0.3, 0.2]]), np.array([[0.2, 0.45, 0.35]]), np.array([[0.1, 0.3, 0.6]])]
    assert majority_vote(three)[0].tolist() == [2]  # one vote each: mean probabilities [0.267, 0.35, 0.383]


def test_vote_joins_by_utt_id_and_tunes_nothing_on_labels():
    rng = np.random.default_rng(0)
    ids = [f"u{i}" for i in range(30)]
    y = rng.integers(0, 2, 30)
    members = {}
    for m in range(3):
        p = np.clip(0.5 + (y - 0.5) * 0.4 + 0.3 * rng.standard_normal(30), 0.01, 0.99)
        order = rng.permutation(30)  # each member's file in its own row order
        probabilities = np.stack([1 - p, p], axis=1)
        members[f"m{m}"] = {"test": ([ids[i] for i in order], probabilities[order])}
    documents = {
        name: {"feature_sets": ["early"], "splits": {"test": {k: 0.5 for k in ("WA", "UA", "WF1")}}} for name in members
    }
    labels = {"test": (ids, [CLASSES[k] for k in y])}
    flipped = {"test": (ids, [CLASSES[1 - k] for k in y])}
    document, result = evaluate_vote(members, documents, labels, CLASSES, BOOTSTRAP)
    document_flipped, result_flipped = evaluate_vote(members, documents, flipped, CLASSES, BOOTSTRAP)
    np.testing.assert_array_equal(result["test"], result_flipped["test"])  # labels only score the vote
    assert document["splits"]["test"]["WA"] == pytest.approx(1 - document_flipped["splits"]["test"]["WA"])
    in_manifest_order = []
    for member_ids, probabilities in (members[m]["test"] for m in members):
        row = {u: i for i, u in enumerate(member_ids)}
        in_manifest_order.append(probabilities[[row[u] for u in ids]])
    np.testing.assert_array_equal(result["test"], majority_vote(in_manifest_order)[1])
    assert document["vote"]["tuned_on"] is None and document["selection"] is None
    assert document["vote"]["members"] == ["m0", "m1", "m2"] and set(document["per_classifier"]) == set(members)
    with pytest.raises(ValueError, match="at least 2 members"):
        evaluate_vote({"m0": members["m0"]}, documents, labels, CLASSES, BOOTSTRAP)
