"""Sharded steps (config scale.shards): the shards of a manifest, the gather, and what a change of N
runs, in the demo's DAG (docs/architecture.md "Sharded steps")."""

from __future__ import annotations

import filecmp
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from rerun_plans import copy_stand_in, planned

from workflow_scripts.asr.transcripts import write_transcripts
from workflow_scripts.common import names, paths
from workflow_scripts.common.features import FeatureWriter
from workflow_scripts.common.manifest import SPEECH_COLUMNS, read_manifest, write_manifest
from workflow_scripts.common.sequences import SequenceWriter
from workflow_scripts.common.shards import gather_shards, merged_metadata, shard_index, write_shard_manifests

from conftest import run_snakemake

# The per-split steps that shard and their gather rules in the demo's default DAG (rules/common.smk).
STEPS = {
    "transcribe": "gather_transcripts",
    "extract_sefe": "gather_sefe_features",
    "extract_sefe_frames": "gather_sefe_frames",
    "extract_prosody_f0": "gather_prosody_f0",
    "extract_tefe": "gather_tefe_features",
    "extract_tefe_tokens": "gather_tefe_tokens",
}
# What a change of scale.shards never reruns: everything before the sharded steps, and what reads no
# gathered file (the ASR benchmark reads manifests).
UPSTREAM = {
    "synthesize_demo_corpus",
    "ingest_speech_corpus",
    "ingest_text_corpus",
    "build_demo_asr_model",
    "finetune_whisper",
    "benchmark_asr_backbones",
    "build_tefe_embedding",
    "train_tefe",
    "select_tefe",
    "train_tefe_backend",
}


def manifest_frame(count: int, split: str = "dev") -> pd.DataFrame:
    ids = [f"{split}_{index:04d}" for index in range(count)]
    return pd.DataFrame(
        {
            "utt_id": ids,
            "audio_path": [f"wav/{u}.wav" for u in ids],
            "duration_s": 1.25,
            "sample_rate": 16000,
            "text": [f"câu {index}" for index in range(count)],
            "label": "neutral",
            "split": split,
            "speaker": "s1",
        }
    )


def shard_manifests(tmp_path, count: int, shards: int) -> tuple[str, list[str]]:
    """A split manifest of ``count`` rows and its ``shards`` shard manifests (shard_manifest's layout)."""
    manifest = tmp_path / "results" / "data" / "speech" / "demo" / "dev.tsv"
    manifest.parent.mkdir(parents=True)
    write_manifest(manifest_frame(count), manifest, SPEECH_COLUMNS)
    template = paths.SPEECH_SHARD_MANIFEST.format(corpus="demo", split="dev", shard="{shard}")
    outputs = [str(tmp_path / template.format(shard=name)) for name in names.shard_names(shards)]
    write_shard_manifests(manifest, outputs)
    return str(manifest), outputs


def test_shard_of_an_utterance_is_a_stable_hash_of_its_id():
    # Fixed values: the same on every machine and Python version (hash() is salted per process).
    assert shard_index("dev_0001", 4) == 1 and shard_index("thứ_nhất", 7) == 4
    sizes = np.bincount([shard_index(f"u{i}", 4) for i in range(4000)], minlength=4)
    assert sizes.min() > 900  # about even


def test_shard_manifests_partition_the_split_in_its_order(tmp_path):
    manifest, outputs = shard_manifests(tmp_path, 40, 3)
    assert [name.rsplit("/", 1)[1] for name in outputs] == ["1-of-3.tsv", "2-of-3.tsv", "3-of-3.tsv"]
    whole = read_manifest(manifest)
    shards = [read_manifest(path) for path in outputs]
    ids = [u for shard in shards for u in shard["utt_id"]]
    assert sorted(ids) == sorted(whole["utt_id"]) and len(ids) == len(set(ids))
    for index, shard in enumerate(shards):
        order = whole["utt_id"].tolist()
        assert [order.index(u) for u in shard["utt_id"]] == sorted(order.index(u) for u in shard["utt_id"])
        assert {shard_index(u, 3) for u in shard["utt_id"]} == {index}
        pd.testing.assert_frame_equal(
            shard.reset_index(drop=True), whole.loc[whole["utt_id"].isin(shard["utt_id"])].reset_index(drop=True)
        )


def test_a_split_too_small_for_its_shards_names_the_empty_shard(tmp_path):
    with pytest.raises(ValueError, match=r"leave \d+ of 8 shards empty .*scale.shards"):
        shard_manifests(tmp_path, 3, 8)


def test_merged_metadata_maps_shard_paths_back_and_adds_up_counts():
    shard = "results/systems/a/transcripts/shards/dev/{}-of-2.parquet"
    values = [
        {
            "manifest": f"m/shards/dev/{k}-of-2.tsv",
            "source": {"transcripts": shard.format(k)},
            "model": "x",
            "empty_texts": n,
        }
        for k, n in ((1, 3), (2, 4))
    ]
    values[0]["timing"] = {"audio_seconds": 2.0, "decode_seconds": 1.0, "real_time_factor": 0.5}
    values[1]["timing"] = {
        "audio_seconds": 6.0,
        "decode_seconds": 1.0,
        "real_time_factor": 0.1667,
    }  # equal: still summed
    merged = merged_metadata(values)
    assert merged == {
        "manifest": "m/dev.tsv",
        "source": {"transcripts": "results/systems/a/transcripts/dev.parquet"},
        "model": "x",
        "empty_texts": 7,
        "timing": {"audio_seconds": 8.0, "decode_seconds": 2.0, "real_time_factor": 0.25},
    }
    with pytest.raises(ValueError, match=r"metadata dfat.model: the shards disagree"):
        merged_metadata([{"model": "x"}, {"model": "y"}])


def write_feature_file(path, ids, metadata, batch=4):
    rng = np.random.default_rng(len(ids))
    with FeatureWriter(path, ["mean", "max"], 3, metadata) as writer:
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            writer.write(chunk, {s: rng.normal(size=(len(chunk), 3)).astype(np.float32) for s in ("mean", "max")})


def shard_paths(tmp_path, stem, count):
    return [str(tmp_path / "out" / stem / "shards" / "dev" / f"{k}-of-{count}.parquet") for k in range(1, count + 1)]


def matrices_of(ids):
    return [np.full((1 + int(u[-2:]) % 5, 2), float(u[-2:]), np.float32) for u in ids]


@pytest.mark.parametrize("kind", ["features", "sequences", "transcripts"])
def test_gathered_shards_are_the_bytes_one_job_writes(tmp_path, kind):
    """Each kind of contract file, written by one job over the split and by one job per shard (as the
    producers write them: features and sequences in row groups of 256 whatever their batches,
    transcripts whole)."""
    count = 30 if kind == "transcripts" else 300  # two row groups of features and sequences
    manifest, shard_manifest_files = shard_manifests(tmp_path, count, 3)
    whole_ids = read_manifest(manifest)["utt_id"].tolist()
    rows = {u: i for i, u in enumerate(whole_ids)}

    def write(path, manifest_path):
        ids = read_manifest(manifest_path)["utt_id"].tolist()
        meta = {"model": "m", "split": "dev", "manifest": manifest_path, "utterances": len(ids)}
        if kind == "features":
            rng = np.random.default_rng(0)
            table = rng.normal(size=(count, 2, 3)).astype(np.float32)  # the same values per utterance
            with FeatureWriter(path, ["mean", "max"], 3, meta) as writer:
                for start in range(0, len(ids), 4):
                    chunk = ids[start : start + 4]
                    picked = table[[rows[u] for u in chunk]]
                    writer.write(chunk, {"mean": picked[:, 0], "max": picked[:, 1]})
        elif kind == "sequences":
            with SequenceWriter(path, 2, "frames", meta) as writer:
                writer.write(ids, matrices_of(ids))
        else:
            frame = pd.DataFrame({"utt_id": ids, "hypothesis": [f"h {u}" for u in ids], "reference": ids})
            write_transcripts(path, frame, meta)

    whole = tmp_path / "whole.parquet"
    write(whole, manifest)
    shards = shard_paths(tmp_path, kind, 3)
    for path, shard_manifest_file in zip(shards, shard_manifest_files, strict=True):
        write(path, shard_manifest_file)
    gathered = tmp_path / "gathered.parquet"
    assert gather_shards(shards, manifest, gathered) == count
    assert filecmp.cmp(gathered, whole, shallow=False)
    assert pq.ParquetFile(gathered).num_row_groups == pq.ParquetFile(whole).num_row_groups


def test_feature_files_hold_row_groups_of_256_whatever_the_batches_and_each_id_once(tmp_path):
    path = tmp_path / "f.parquet"
    ids = [f"u{i:03d}" for i in range(600)]
    write_feature_file(path, ids, {"model": "m"}, batch=7)
    parquet = pq.ParquetFile(path)
    groups = [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]
    assert groups == [256, 256, 88] and parquet.read(columns=["utt_id"]).column(0).to_pylist() == ids
    for writer_of, write in [
        (lambda: FeatureWriter(path, ["mean"], 1, {}), lambda w, u: w.write(u, {"mean": np.zeros((len(u), 1))})),
        (lambda: SequenceWriter(path, 1, "frames", {}), lambda w, u: w.write(u, [np.zeros((1, 1))] * len(u))),
    ]:
        with pytest.raises(ValueError, match=r"f.parquet: duplicate utt_id 'u001', 'u300'"):
            with writer_of() as writer:
                write(writer, ids[:301])
                write(writer, ["u300", "u001"])
        assert pq.ParquetFile(path).metadata.num_rows == 600  # the earlier file stays
        assert sorted(p.name for p in tmp_path.iterdir()) == ["f.parquet"]  # no partial file left


def test_gather_refuses_shards_that_do_not_cover_the_split(tmp_path):
    manifest, _ = shard_manifests(tmp_path, 12, 2)
    ids = read_manifest(manifest)["utt_id"].tolist()
    (tmp_path / "s").mkdir()
    first, second = str(tmp_path / "s" / "a.parquet"), str(tmp_path / "s" / "b.parquet")
    write_feature_file(first, ids[:6], {"model": "m"})
    write_feature_file(second, ids[5:11], {"model": "m"})
    with pytest.raises(ValueError, match=r"dev_0005.* in more than one shard"):
        gather_shards([first, second], manifest, tmp_path / "g.parquet")
    write_feature_file(second, ids[6:11], {"model": "m"})
    with pytest.raises(ValueError, match=r"do not cover .*dev.tsv: 1 utterances missing \(e.g. \['dev_0011'\]\)"):
        gather_shards([first, second], manifest, tmp_path / "g.parquet")
    write_feature_file(second, ids[11:5:-1], {"model": "m"})
    with pytest.raises(ValueError, match=r"b.parquet: rows are not in the order of .*dev.tsv"):
        gather_shards([first, second], manifest, tmp_path / "g.parquet")
    assert not (tmp_path / "g.parquet").exists()


@pytest.mark.slow
def test_changing_the_shard_count_reruns_the_shards_the_gathers_and_their_readers(stand_in_demo, tmp_path):
    """One shard per split plans nothing new; three shards plan the shard manifests, every sharded step
    per shard, one gather per split file, and (Snakemake plans readers of a rewritten input before it
    is written) everything that reads a gathered file; nothing before the sharded steps."""
    demo = copy_stand_in(stand_in_demo, tmp_path / "demo")
    (demo / "one.yaml").write_text(yaml.safe_dump({"scale": {"shards": 1}}))
    assert planned(demo, "--configfile", str(demo / "one.yaml")) == {}
    (demo / "three.yaml").write_text(yaml.safe_dump({"scale": {"shards": 3}}))
    jobs = planned(demo, "--configfile", str(demo / "three.yaml"))
    splits = {job["split"] for job in jobs["shard_manifest"]}
    assert len(splits) == 4 and not set(jobs) & UPSTREAM
    for step, gather in STEPS.items():
        assert {job["shard"] for job in jobs[step]} == set(names.shard_names(3)), step
        unsharded = {tuple(sorted((k, v) for k, v in job.items() if k != "shard")) for job in jobs[step]}
        assert len(jobs[step]) == 3 * len(unsharded) and len(jobs[gather]) == len(unsharded), step
    shutil.rmtree(demo)


@pytest.mark.slow
def test_a_sharded_target_gathers_the_bytes_of_the_unsharded_run(workflow_dir):
    """One split's SEFE statistics, oracle transcripts and TF-IDF text features, built with one job per
    split and then with three shards: the gathered files are byte-identical (about 40 s on 2 idle cores)."""
    targets = [
        paths.SEFE_FEATURES.format(backend="handcrafted", split="dev"),
        paths.TRANSCRIPTS.format(system="oracle", split="dev"),
        paths.TEFE_BACKEND_FEATURES.format(system="oracle", backend="tfidf", feature_set="features", split="dev"),
    ]
    run_snakemake(workflow_dir, *targets)
    for target in targets:
        shutil.copy2(workflow_dir / target, workflow_dir / f"{target}.unsharded")
    (workflow_dir / "three.yaml").write_text(yaml.safe_dump({"scale": {"shards": 3}}))
    result = run_snakemake(workflow_dir, *targets, "--configfile", "three.yaml")
    log = result.stdout + result.stderr
    assert "rule gather_tefe_backend_features:" in log and "rule extract_sefe:" in log
    for target in targets:
        assert filecmp.cmp(workflow_dir / target, workflow_dir / f"{target}.unsharded", shallow=False), target
