"""The synthesised demo corpus and its manifests, built by the workflow itself."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from pathlib import Path

import pandas as pd
import pytest
import yaml

from workflow_scripts.common.manifest import read_manifest
from workflow_scripts.config import validate_config
from workflow_scripts.data.demo_corpus import asr_corpus_plan, plan_utterances, synthesize_corpus

from conftest import PROJECT_ROOT, run_snakemake

SPLITS = ["train", "dev", "public_test", "private_test"]


@pytest.fixture(scope="module")
def demo_config() -> dict:
    """The demo block as the rule receives it (validated: its seed is the top-level seed)."""
    with open(PROJECT_ROOT / "config.yaml", encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    return validate_config(config, PROJECT_ROOT / "schemas" / "config.schema.yaml")["demo"]


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_plan_is_deterministic_and_prosody_follows_emotion(demo_config):
    plan = plan_utterances(demo_config)
    assert plan.equals(plan_utterances(demo_config))
    assert not plan.equals(plan_utterances({**demo_config, "seed": 7}))
    assert len(plan) == len(demo_config["voices"]) * demo_config["utterances_per_voice"] >= 600
    assert plan["text"].nunique() >= 300  # several hundred distinct sentences
    by_emotion = plan.groupby("emotion")[["rate", "pitch", "volume"]].mean()
    assert by_emotion.loc["angry", "pitch"] > by_emotion.loc["neutral", "pitch"] > by_emotion.loc["sad", "pitch"]
    assert by_emotion.loc["angry", "rate"] > by_emotion.loc["neutral", "rate"] > by_emotion.loc["sad", "rate"]
    # Each negative utterance shows its emotion in words, voice or both; each modality misses some.
    negative = plan[plan["emotion"].isin(["angry", "sad"])]
    shares = negative["cue"].value_counts(normalize=True)
    for cue, share in demo_config["negative_cues"].items():
        assert abs(shares[cue] - share / sum(demo_config["negative_cues"].values())) < 0.07, cue
    plain_words = ~plan["text"].str.contains("|".join(["tức giận", "không chịu nổi", "buồn lắm", "cảm thấy"]))
    voice_only = negative["cue"] == "voice_only"
    assert plain_words[negative.index[voice_only]].all() and not plain_words[negative.index[~voice_only]].any()
    calm = negative[negative["cue"] == "words_only"][["pitch_range", "volume"]].mean()
    neutral = plan[plan["emotion"] == "neutral"][["pitch_range", "volume"]].mean()
    assert (abs(calm - neutral) < 8).all()  # negative words spoken with neutral prosody
    assert (plan.loc[~plan["emotion"].isin(["angry", "sad"]), "cue"] == "words_and_voice").all()


def test_asr_corpus_shares_no_voice_and_no_sentence_with_the_emotion_corpus(demo_config):
    speech = plan_utterances(demo_config)
    asr = asr_corpus_plan(demo_config, set(speech["text"]))
    assert len(asr) == len(demo_config["asr_corpus"]["voices"]) * demo_config["asr_corpus"]["utterances_per_voice"]
    assert not set(asr["voice"]) & set(speech["voice"]) and not set(asr["speaker"]) & set(speech["speaker"])
    assert not set(asr["text"]) & set(speech["text"])
    assert (asr["split"] == "train").all() and asr["utt_id"].is_unique
    assert asr.equals(asr_corpus_plan(demo_config, set(speech["text"])))


def test_small_corpus_is_byte_identical_across_runs(tmp_path, demo_config):
    config = {
        **demo_config,
        "voices": ["vi", "vi+f2"],
        "utterances_per_voice": 5,
        "text_sentences": 20,
        "asr_corpus": {"voices": ["vi+m2"], "utterances_per_voice": 4},
    }
    outputs = []
    # Each run in a fresh process, as the rule runs (espeak-ng keeps state between utterances).
    spawn = multiprocessing.get_context("spawn")
    for run in ("a", "b"):
        directory = tmp_path / run
        process = spawn.Process(
            target=synthesize_corpus,
            args=(
                config,
                directory / "speech.tsv",
                directory / "wav",
                directory / "text.tsv",
                directory / "asr.tsv",
                directory / "asr_wav",
            ),
        )
        process.start()
        process.join()
        assert process.exitcode == 0
        outputs.append(
            (
                _digest(directory / "wav"),
                _digest(directory / "asr_wav"),
                (directory / "speech.tsv").read_text(),
                (directory / "text.tsv").read_text(),
                (directory / "asr.tsv").read_text(),
            )
        )
    assert outputs[0] == outputs[1]
    texts = pd.read_csv(tmp_path / "a" / "text.tsv", sep="\t")
    spoken = set(pd.read_csv(tmp_path / "a" / "speech.tsv", sep="\t")["text"])
    assert len(texts) == 20 and not spoken & set(texts["text"])  # the text corpus never holds a spoken sentence


def test_workflow_builds_demo_manifests_offline_and_deterministically(workflow_dir):
    targets = ["results/data/speech/demo/summary.json", "results/data/text/summary.json"]
    run_snakemake(workflow_dir, *targets)
    speech = workflow_dir / "results" / "data" / "speech" / "demo"
    manifests = {split: read_manifest(speech / f"{split}.tsv") for split in SPLITS}
    summary = json.loads((speech / "summary.json").read_text())
    assert summary["utterances"] == sum(len(m) for m in manifests.values()) == 640
    assert summary["skipped"] == 0
    assert len(manifests["train"]) == 400 and all(len(manifests[s]) == 80 for s in SPLITS[1:])
    speakers = {split: set(m["speaker"]) for split, m in manifests.items()}
    assert sum(len(s) for s in speakers.values()) == len(set().union(*speakers.values())) == 16  # disjoint
    overall = pd.concat(manifests.values())["label"].eq("negative").mean()
    for split, manifest in manifests.items():
        assert abs(manifest["label"].eq("negative").mean() - overall) < 0.1, split
        assert (manifest["text"] != "").all() and manifest["duration_s"].between(1.0, 8.0).all()
    text_summary = json.loads((workflow_dir / "results" / "data" / "text" / "summary.json").read_text())
    assert text_summary["utterances"] == 1500

    before = {split: (speech / f"{split}.tsv").read_bytes() for split in SPLITS}
    wavs = _digest(workflow_dir / "results" / "demo" / "wav")
    run_snakemake(workflow_dir, "--forceall", *targets)
    assert before == {split: (speech / f"{split}.tsv").read_bytes() for split in SPLITS}
    assert wavs == _digest(workflow_dir / "results" / "demo" / "wav")
