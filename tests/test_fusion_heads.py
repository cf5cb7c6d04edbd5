"""Sequence features, the neural-head trainer and the xattn head on tiny synthetic data, and the
head's rerun plan (a touch run of a workflow copy; nothing trains)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from workflow_scripts.common.sequences import SequenceFile, SequenceWriter, read_sequence_metadata
from workflow_scripts.fusion.heads import trainer
from workflow_scripts.fusion.heads.outputs import HeadRun
from workflow_scripts.fusion.heads.variants import head_variants
from workflow_scripts.fusion.heads.xattn import train_and_evaluate

from conftest import run_snakemake
from snakemake_runner import dry_run
from workflow_copy import recorded_params

CLASSES = ["neutral", "negative"]
SPLITS = {"train": 40, "dev": 12, "public_test": 10}
# The trainer's keys of a head block, as the schema fills them (fusion.heads.xattn's defaults, on the CPU).
TRAINER = {
    "epochs": 10,
    "patience": 3,
    "monitor": "UA",
    "min_delta": 0.0,
    "batch_size": 64,
    "learning_rate": 1.0e-4,
    "weight_decay": 0.01,
    "grad_clip": 1.0,
    "class_weights": "none",
    "seed": 42,
    "device": "cpu",
    "lr_schedule": "constant",
}
TINY = {
    **TRAINER,
    "lstm_units": 8,
    "d_model": 16,
    "heads": 2,
    "mlp_hidden": 16,
    "frame_stride": 2,
    "epochs": 4,
    "patience": 2,
    "batch_size": 8,
    "learning_rate": 0.01,
    "seed": 7,
    "device": "cpu",
    # The other model keys as the schema's defaults (code reads validated blocks).
    "temporal": "bilstm",
    "fusion": "attention",
    "dropout": 0.3,
    "text_encoder": "frozen",
    "text_learning_rate": 2.0e-5,
    "in_memory_mb": 1024,
}
BOOTSTRAP = {"resamples": 20, "confidence": 0.9, "seed": 1}


def _matrices(rng, n, dim, low, high, labels=None):
    out = []
    for i in range(n):
        m = rng.standard_normal((int(rng.integers(low, high)), dim)).astype(np.float32)
        if labels is not None:
            m[:, 0] += 1.5 * labels[i]  # a learnable signal
        out.append(m)
    return out


def write_synthetic(directory: Path, seed: int = 0, test_shift: float = 0.0) -> dict[str, dict[str, str]]:
    """Manifests and acoustic / text sequence files per split (utt_ids shuffled in the files)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    files: dict[str, dict[str, str]] = {"acoustic": {}, "text": {}, "manifests": {}}
    for split, n in SPLITS.items():
        ids = [f"{split}_{i:03d}" for i in range(n)]
        y = np.arange(n) % 2
        manifest = pd.DataFrame(
            {
                "utt_id": ids,
                "audio_path": [f"{u}.wav" for u in ids],
                "duration_s": 1.0,
                "sample_rate": 16000,
                "text": "x",
                "label": [CLASSES[k] for k in y],
                "split": split,
                "speaker": "s",
            }
        )
        files["manifests"][split] = str(directory / f"{split}.tsv")
        manifest.to_csv(files["manifests"][split], sep="\t", index=False)
        order = rng.permutation(n)  # files need not follow manifest order: joined by utt_id
        for modality, dim, (low, high) in (("acoustic", 5, (6, 20)), ("text", 4, (1, 6))):
            matrices = _matrices(rng, n, dim, low, high, y)
            if split == "public_test":
                matrices = [m + test_shift for m in matrices]
            path = directory / f"{modality}_{split}.parquet"
            with SequenceWriter(path, dim, "frames" if modality == "acoustic" else "tokens", {"model": "toy"}, 7) as w:
                w.write([ids[i] for i in order], [matrices[i] for i in order])
            files[modality][split] = str(path)
    return files


def test_sequence_contract_keys_lengths_and_row_groups(tmp_path):
    rng = np.random.default_rng(0)
    matrices = _matrices(rng, 10, 3, 1, 9)
    ids = [f"u{i}" for i in range(10)]
    path = tmp_path / "seq.parquet"
    with SequenceWriter(path, 3, "frames", {"model": "toy", "frame_rate_hz": 100.0}, row_group_size=4) as writer:
        writer.write(ids[:6], matrices[:6])
        writer.write(ids[6:], matrices[6:])
    sequences = SequenceFile(path)
    assert sequences.utt_ids == ids and sequences.dim == 3
    assert sequences.lengths.tolist() == [len(m) for m in matrices]
    assert sequences._file.num_row_groups == 3  # 4 + 4 + 2: written group by group
    assert read_sequence_metadata(path)["frame_rate_hz"] == 100.0
    positions = sequences.positions(["u9", "u0", "u5"])
    for got, index in zip(sequences.read(positions), (9, 0, 5), strict=True):
        np.testing.assert_array_equal(got, matrices[index])
    with pytest.raises(ValueError, match="no sequence for 1 utterance"):
        sequences.positions(["u0", "nope"])
    bad = tmp_path / "bad.parquet"
    with pytest.raises(ValueError, match="duplicate utt_id 'a'"):
        with SequenceWriter(bad, 3, "tokens", {}) as writer:
            writer.write(["a", "a"], matrices[:2])
    with pytest.raises(ValueError, match=r"utt_id 'b' has a matrix of shape \(0, 3\)"):
        with SequenceWriter(bad, 3, "tokens", {}) as writer:
            writer.write(["b"], [np.zeros((0, 3))])
    assert not bad.exists()  # a failed write leaves nothing behind


def test_head_is_deterministic_and_never_trains_on_a_test_split(tmp_path):
    torch.set_num_threads(1)  # as the rule runs it (CPU results depend on the thread count)
    first = train_and_evaluate(**_args(write_synthetic(tmp_path / "a")))
    second = train_and_evaluate(**_args(write_synthetic(tmp_path / "b")))

    def history(run):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in run[1]["history"]]

    assert history(first) == history(second)
    for split in SPLITS:
        np.testing.assert_array_equal(first[3][split][1], second[3][split][1])
    # Other test-split features: the same training, the same model, other test predictions.
    shifted = train_and_evaluate(**_args(write_synthetic(tmp_path / "c", test_shift=3.0)))
    for a, b in zip(first[0].state_dict().values(), shifted[0].state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not np.array_equal(first[3]["public_test"][1], shifted[3]["public_test"][1])
    document = first[2]
    assert document["variant"] == "xattn" and document["selection"]["data"] == "dev"
    assert set(document["splits"]) == set(SPLITS) and "ci" in document["splits"]["public_test"]
    assert first[1]["train_size"] == SPLITS["train"] and first[1]["selection_size"] == SPLITS["dev"]


def _args(files):
    block = {**TINY, "in_memory_mb": 0}  # read per batch from row groups
    return {
        "acoustic": files["acoustic"],
        "text": files["text"],
        "manifests": files["manifests"],
        "run": HeadRun(block, BOOTSTRAP, CLASSES, "train", "dev", "xattn", "Cross-modal attention (seed 004)"),
    }


class Toy:
    """A batch source of one-feature rows."""

    def __init__(self, x, y):
        self.x, self.labels = np.asarray(x, np.float32), np.asarray(y, np.int64)

    def batches(self, rows, batch_size):
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            yield chunk, {"x": torch.from_numpy(self.x[chunk]), "y": torch.from_numpy(self.labels[chunk])}


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 2)

    def forward(self, batch):
        return self.layer(batch["x"])


def test_trainer_stops_early_on_the_selection_split_and_keeps_the_best_epoch():
    rng = np.random.default_rng(0)
    y = np.arange(60) % 2
    train = Toy((y * 2.0 - 1.0 + 0.3 * rng.standard_normal(60))[:, None], y)
    # Selection labels are the opposite: it gets worse as training learns, so it stops early.
    selection = Toy(train.x[:20], 1 - y[:20])
    block = {**TRAINER, "epochs": 30, "patience": 2, "monitor": "loss", "batch_size": 16, "learning_rate": 0.05}
    block["seed"] = 3
    model, report = trainer.fit(Linear, train, selection, CLASSES, block)
    losses = [row["selection_loss"] for row in report["history"]]
    assert report["stopped_early"] and report["epochs_run"] == report["best_epoch"] + 2
    assert report["best_epoch"] == int(np.argmin(losses)) + 1
    assert report["selection"]["loss"] == pytest.approx(min(losses))
    probabilities = trainer.predict_probabilities(model, selection, 16, torch.device("cpu"))
    assert trainer.score(probabilities, selection.labels, None)["loss"] == pytest.approx(min(losses), rel=1e-5)
    _, again = trainer.fit(Linear, train, selection, CLASSES, block)
    assert [r["selection_loss"] for r in again["history"]] == losses  # seeded: the same run


def test_editing_a_head_block_reruns_only_its_variants_and_the_report(workflow_dir):
    for name in ("acoustic", "text"):
        for kind in ("features", "sequences", "prosody"):
            for split in ("train", "dev", "public_test", "private_test"):
                path = workflow_dir / "pre" / f"{kind}_{name}_{split}.parquet"
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(b"")
    overlay = {
        "fusion": {
            "features": {
                "acoustic": "pre/features_acoustic_{split}.parquet",
                "text": "pre/features_text_{split}.parquet",
            },
            "heads": {
                "variants": ["xattn", "xattn_mean", "graph", "graph_noprosody"],
                "sequences": {
                    "acoustic": "pre/sequences_acoustic_{split}.parquet",
                    "text": "pre/sequences_text_{split}.parquet",
                    "prosody": "pre/prosody_acoustic_{split}.parquet",
                },
            },
            "vote": {"members": ["graph", "graph_noprosody", "hybrid"]},
            "figure2": {"variants": ["hybrid", "text", "xattn"]},
        },
        # One ASR system, the reference transcripts (the precomputed features stand for its own).
        "asr": {"systems": [{"name": "oracle", "backend": "oracle"}]},
    }
    (workflow_dir / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    targets = ["results/table2.md", "results/fusion/confusion_matrices.png", "results/figure2.png"]
    plan = dry_run(workflow_dir, *targets, "--configfile", "overlay.yaml", timeout=300).by_rule()
    for rule in ("table2", "plot_confusion_matrices", "figure2"):  # the report reads the head's metrics
        block = plan[rule][0].input
        assert "results/systems/oracle/metrics/xattn.json" in block, (rule, block)
    head_inputs = ", ".join(plan["train_xattn"][0].input)
    assert "pre/sequences_acoustic_train.parquet" in head_inputs and "/fusion/pooled" not in head_inputs
    # graph reads the prosody tokens, its ablation without the prosody node does not
    jobs = plan["train_graph"]
    for variant, reads_prosody in (("graph", True), ("graph_noprosody", False)):
        (job,) = [job for job in jobs if job.wildcards == {"scope": "systems/oracle", "variant": variant}]
        inputs = job.input
        assert ("pre/prosody_acoustic_train.parquet" in inputs) == reads_prosody, (variant, inputs)
    vote_inputs = plan["evaluate_vote"][0].input
    assert "results/systems/oracle/fusion/variants/hybrid/public_test.parquet" in vote_inputs
    assert not any(path.startswith("pre/") or "/fusion/pooled/" in path for path in vote_inputs)  # probabilities only

    def recorded(*configfiles):
        run_snakemake(workflow_dir, "--touch", "-F", *targets, "--configfile", *configfiles, timeout=300)
        return recorded_params(workflow_dir, OUTPUTS)

    def changed_by(edit):
        (workflow_dir / "edit.yaml").write_text(yaml.safe_dump({"fusion": {"heads": edit}}))
        edited = recorded("overlay.yaml", "edit.yaml")
        return {output for output in OUTPUTS if edited[output] != base[output]}

    base = recorded("overlay.yaml")
    assert all(value is not None for value in base.values()), base
    # Only the head's jobs see the edit (its ablation trains with the head's block); the report
    # reruns because its inputs (the variants' metrics) change.
    head_outputs = {f"{SYSTEM}/metrics/{v}.json" for v in ("xattn", "xattn_mean")}
    head_outputs |= {f"{SYSTEM}/fusion/heads/{v}/model.pt" for v in ("xattn", "xattn_mean")}
    assert changed_by({"xattn": {"dropout": 0.2}}) == head_outputs
    ablation = {"ablations": {"xattn_mean": {"head": "xattn", "temporal": "mean", "dropout": 0.1}}}
    assert changed_by(ablation) == {f"{SYSTEM}/metrics/xattn_mean.json", f"{SYSTEM}/fusion/heads/xattn_mean/model.pt"}
    # editing the graph head's block reruns the graph variants only (then the vote and the report,
    # whose inputs change), never xattn
    graph_outputs = {f"{SYSTEM}/metrics/{v}.json" for v in ("graph", "graph_noprosody")}
    graph_outputs |= {f"{SYSTEM}/fusion/heads/{v}/model.pt" for v in ("graph", "graph_noprosody")}
    assert changed_by({"graph": {"gat_layers": 1}}) == graph_outputs


def test_head_variants_are_the_heads_and_their_checked_ablations():
    heads = {"variants": ["xattn_mean"], "xattn": {"temporal": "bilstm", "dropout": 0.3, "seed": 11}}
    heads["ablations"] = {"xattn_mean": {"head": "xattn", "temporal": "mean"}}
    heads["ablations"]["xattn_s2"] = {"head": "xattn", "seed_offset": 2}
    variants = head_variants(heads)
    assert variants["xattn_mean"].block == {"temporal": "mean", "dropout": 0.3, "seed": 11}
    assert variants["xattn_s2"].block["seed"] == 13  # another seed that follows the head's
    assert variants["xattn_mean"].overrides == {"temporal": "mean"} and variants["xattn"].overrides == {}
    for ablations, message in (
        ({"hybrid": {"head": "xattn"}}, "already a variant"),
        ({"x": {"head": "graphs"}}, r"ablations\.x\.head: 'graphs'"),
        ({"x": {"head": "xattn", "tempo": "mean"}}, r"\['tempo'\] are not keys of fusion.heads.xattn"),
    ):
        with pytest.raises(ValueError, match=message):
            head_variants({**heads, "variants": [], "ablations": ablations})
    with pytest.raises(ValueError, match=r"fusion.heads.variants: \['xattn_max'\]"):
        head_variants({**heads, "variants": ["xattn_max"]})


HEAD_ROWS = ("xattn", "xattn_mean", "graph", "graph_noprosody")
# The text-dependent rows are the (one) ASR system's, the acoustic-only ones shared.
SYSTEM = "results/systems/oracle"
OUTPUTS = ["results/shared/metrics/acoustic.json"]
OUTPUTS += [f"{SYSTEM}/metrics/{v}.json" for v in ("text", "early", "late", "hybrid", *HEAD_ROWS, "vote")]
OUTPUTS += [f"{SYSTEM}/fusion/heads/{v}/model.pt" for v in HEAD_ROWS]
OUTPUTS += [
    "results/shared/fusion/pooled/acoustic/train.parquet",
    "results/systems/oracle/fusion/early/xgboost/model.skops",
    "results/systems/oracle/ensemble/weights.json",
    "results/table2.md",
    "results/fusion/confusion_matrices.png",
    "results/figure2.png",
]


def test_sefe_frames_are_the_backend_frames_before_pooling(tmp_path):
    from workflow_scripts.sefe.extract import build_extractor
    from workflow_scripts.sefe.frames import extract_frames
    from workflow_scripts.sefe.preprocess import load_waveform

    from conftest import write_tone

    sefe = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())["sefe"]
    ids = ["b", "a", "d", "c", "e"]
    seconds = (0.5, 0.8, 0.3, 0.6, 0.4)
    manifest = pd.DataFrame(
        {
            "utt_id": ids,
            "audio_path": [str(write_tone(tmp_path / f"{u}.wav", seconds=s)) for u, s in zip(ids, seconds)],
            "duration_s": seconds,
            "sample_rate": 16000,
            "text": "x",
            "label": "neutral",
            "split": "train",
            "speaker": "s",
        }
    )
    manifest.to_csv(tmp_path / "train.tsv", sep="\t", index=False)
    out = tmp_path / "frames.parquet"
    extract_frames(
        tmp_path / "train.tsv", out, "handcrafted", sefe["handcrafted"], sefe["preprocessing"], split="train"
    )
    sequences = SequenceFile(out)
    backend, settings = build_extractor("handcrafted", sefe["handcrafted"], sefe["preprocessing"], 1)
    assert sequences.utt_ids == ids and sequences.metadata["kind"] == "frames" and sequences.dim == backend.dim
    for matrix, path in zip(sequences.read(list(range(len(ids)))), manifest["audio_path"], strict=True):
        np.testing.assert_allclose(matrix, backend.frames([load_waveform(path, settings)])[0], rtol=1e-6)
    # Two forked workers, one utterance per task (several tasks in flight): the same file.
    workers = tmp_path / "workers.parquet"
    one_each = {**sefe["handcrafted"], "batch_size": 1}
    extract_frames(tmp_path / "train.tsv", workers, "handcrafted", one_each, sefe["preprocessing"], threads=2)
    assert SequenceFile(workers).utt_ids == ids
    for got, want in zip(SequenceFile(workers).read(list(range(len(ids)))), sequences.read(list(range(len(ids))))):
        np.testing.assert_array_equal(got, want)
