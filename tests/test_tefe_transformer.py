"""The transformer text backend (tefe.transformer) on tiny random BERT / XLM-R checkpoints the tests build.

No pretrained Vietnamese transformer is reachable offline: these checkpoints only test the
contracts (features, token-state sequences, storage, determinism, which splits fine-tuning
reads), not the scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from workflow_scripts.common.features import read_features
from workflow_scripts.common.hub import ModelUnavailableError
from workflow_scripts.common.sequences import SequenceFile
from workflow_scripts.tefe.backends import build_text_backend, load_text_backend
from workflow_scripts.tefe.extract_backend import extract_backend_features
from workflow_scripts.tefe.train_backend import fit_backend
from workflow_scripts.tefe.transformer import TransformerBackend

CLASSES = ["neutral", "negative"]
NEUTRAL = ["hôm nay trời đẹp", "tôi đi làm", "mình ăn cơm rồi", "bạn đi học chưa", "cuối tuần đi chơi"]
NEGATIVE = ["tôi rất buồn", "thật là tức giận", "chán quá đi", "sợ lắm luôn", "ghét cái này quá"]
TRAIN = (NEUTRAL + NEGATIVE) * 2
Y_TRAIN = np.array([0] * 5 + [1] * 5 + [0] * 5 + [1] * 5)
DEV = (["trời đẹp quá", "buồn quá đi", "đi học", "tức giận lắm"], np.array([0, 1, 0, 1]))


def build_checkpoint(directory, kind: str = "bert") -> str:
    """A tiny random encoder + a WordLevel tokenizer trained on a few sentences, saved with save_pretrained."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import AutoModel, BertConfig, PreTrainedTokenizerFast, XLMRobertaConfig

    specials = ["<pad>", "<unk>", "<s>", "</s>"] if kind == "xlmr" else ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    pad, unk, cls, sep = specials
    tokenizer = Tokenizer(models.WordLevel(unk_token=unk))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(TRAIN + list(DEV[0]), trainers.WordLevelTrainer(special_tokens=specials))
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=pad, unk_token=unk, cls_token=cls, sep_token=sep
    )
    size = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    if kind == "xlmr":
        config = XLMRobertaConfig(
            vocab_size=len(fast), pad_token_id=fast.pad_token_id, max_position_embeddings=40, **size
        )
    else:
        config = BertConfig(vocab_size=len(fast), pad_token_id=fast.pad_token_id, max_position_embeddings=32, **size)
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(directory)
    fast.save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_checkpoint(tmp_path_factory.mktemp("tiny_bert"))


# tefe.transformer.finetune as the schema fills it.
FINETUNE = {
    "epochs": 3,
    "patience": 1,
    "learning_rate": 2.0e-5,
    "weight_decay": 0.01,
    "batch_size": 16,
    "dropout": 0.1,
    "grad_clip": 1.0,
    "class_weights": "balanced",
    "monitor": "UA",
}


def block(model: str, finetune: dict | None = None, **extra):
    """A tefe.transformer block as the schema fills it (seed 42), on the CPU with tiny batches."""
    settings = {"model": model, "mode": "mean_pool", "max_length": 16, "lowercase": False, "segmentation": "none"}
    settings.update(batch_size=3, C=1.0, class_weight="balanced", device="cpu", threads=1, seed=42)
    return {**settings, "finetune": {**FINETUNE, **(finetune or {})}, **extra}


def test_unreachable_hub_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelUnavailableError, match="tefe.transformer.model"):
        build_text_backend("transformer", block("vinai/phobert-base-v2"), CLASSES)
    with pytest.raises(ModelUnavailableError, match="not a directory"):
        build_text_backend("transformer", block(str(tmp_path / "missing/dir")), CLASSES)


@pytest.mark.parametrize("kind", ["bert", "xlmr"])
def test_mean_pool_contract_and_determinism(tmp_path, kind):
    model = build_checkpoint(tmp_path / kind, kind)
    backend, metrics = fit_backend("transformer", block(model), (TRAIN, Y_TRAIN), DEV, CLASSES)
    assert metrics["feature_dim"] == 16 and metrics["validation"]["n"] == 4 and metrics["mode"] == "mean_pool"
    texts = ["tôi rất buồn", "", "hôm nay trời đẹp quá đi"]
    features = backend.features(texts)
    assert list(features) == ["sentence", "mean", "var", "max", "min"]
    assert all(v.shape == (3, 16) and v.dtype == np.float32 and np.isfinite(v).all() for v in features.values())
    np.testing.assert_array_equal(features["sentence"], features["mean"])
    assert (features["min"] <= features["mean"] + 1e-6).all() and (features["var"] >= 0).all()
    # Deterministic, and independent of batching and padding (a text alone gives the same features).
    again = backend.features(texts)
    for name in features:
        np.testing.assert_array_equal(features[name], again[name])
    alone = backend.features(texts[2:])
    np.testing.assert_allclose(alone["mean"][0], features["mean"][2], atol=1e-5)
    # Stored and loaded: the same predictions and features.
    backend.save(tmp_path / "model")
    loaded = load_text_backend("transformer", tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(DEV[0]), backend.predict(DEV[0]))
    np.testing.assert_allclose(loaded.features(texts)["max"], features["max"], atol=1e-6)


def test_finetune_reads_train_for_gradients_and_dev_only_for_stopping(checkpoint, tmp_path, monkeypatch):
    seen: list[tuple[tuple[str, ...], bool]] = []
    original = TransformerBackend._encode

    def recording(self, texts):
        seen.append((tuple(texts), torch.is_grad_enabled()))
        return original(self, texts)

    monkeypatch.setattr(TransformerBackend, "_encode", recording)
    config = block(checkpoint, mode="finetune", finetune={"epochs": 3, "patience": 3, "learning_rate": 1e-3})
    backend, metrics = fit_backend("transformer", config, (TRAIN, Y_TRAIN), DEV, CLASSES)
    trained = {t for texts, grad in seen if grad for t in texts}
    scored = {t for texts, grad in seen if not grad for t in texts}
    assert trained == set(TRAIN)  # gradients only from the training split
    assert scored == set(DEV[0])  # the selection split only scored (early stopping), without gradients
    assert metrics["epochs_run"] == 3 and 1 <= metrics["best_epoch"] <= 3
    assert len(metrics["history"]) == 3 and "dev_UA" in metrics["history"][0]
    # The features are the fine-tuned encoder's: they differ from the frozen checkpoint's.
    frozen = build_text_backend("transformer", block(checkpoint), CLASSES)
    tuned = backend.features(DEV[0])["mean"]
    assert not np.allclose(tuned, frozen.features(DEV[0])["mean"])
    # Stored (encoder, tokenizer, head) and loaded: the same predictions and features.
    backend.save(tmp_path / "model")
    loaded = load_text_backend("transformer", tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(DEV[0]), backend.predict(DEV[0]))
    np.testing.assert_allclose(loaded.features(DEV[0])["mean"], tuned, atol=1e-6)
    # Seeded: the same fit twice gives the same model.
    twice, _ = fit_backend("transformer", config, (TRAIN, Y_TRAIN), DEV, CLASSES)
    np.testing.assert_array_equal(twice.features(DEV[0])["mean"], tuned)


def test_feature_and_token_files_follow_the_contracts(checkpoint, tmp_path):
    backend, _ = fit_backend("transformer", block(checkpoint), (TRAIN, Y_TRAIN), DEV, CLASSES)
    backend.save(tmp_path / "model")
    utt_ids = ["u3", "u1", "u2", "u0"]
    texts = ["tôi rất buồn", "", "hôm nay trời đẹp quá đi", "đi học"]
    pd.DataFrame({"utt_id": utt_ids, "hypothesis": texts, "reference": texts}).to_parquet(tmp_path / "t.parquet")
    manifest = tmp_path / "m.tsv"
    pd.DataFrame(
        {
            "utt_id": sorted(utt_ids),
            "audio_path": "a.wav",
            "duration_s": 1.0,
            "sample_rate": 16000,
            "text": "x",
            "label": "neutral",
            "split": "dev",
            "speaker": "s",
        }
    ).to_csv(manifest, sep="\t", index=False)
    model, transcripts = str(tmp_path / "model"), str(tmp_path / "t.parquet")
    out = tmp_path / "features.parquet"
    extract_backend_features("transformer", model, transcripts, "hypothesis", str(out), 3, str(manifest))
    ids, means, metadata = read_features(out, ["mean"])
    assert ids == sorted(utt_ids) and means.shape == (4, 16)  # manifest order
    assert metadata["statistics"] == ["sentence", "mean", "var", "max", "min"] and metadata["backend"] == "transformer"
    tokens = tmp_path / "tokens.parquet"
    meta = extract_backend_features(
        "transformer", model, transcripts, "hypothesis", str(tokens), 3, str(manifest), kind="tokens"
    )
    assert meta["model"] == "tefe/transformer/mean_pool"
    sequences = SequenceFile(tokens)
    assert sequences.dim == 16 and sequences.metadata["kind"] == "tokens"
    assert sequences.utt_ids == sorted(utt_ids)
    by_id = dict(zip(utt_ids, texts, strict=True))
    states = backend.token_states([by_id[u] for u in sorted(utt_ids)])
    for position, (utt, expected) in enumerate(zip(sorted(utt_ids), states, strict=True)):
        matrix = sequences.read([position])[0]
        np.testing.assert_allclose(matrix, expected, atol=1e-6)
        assert matrix.shape[0] == len(by_id[utt].split()) + 2  # [CLS] tokens [SEP]; the empty text: 2 rows
    # The pooled mean is the mean of the token states.
    np.testing.assert_allclose(means[2], sequences.read([2])[0].mean(axis=0), atol=1e-5)


def test_workflow_plans_the_transformer_backend_from_train_and_dev_only(workflow_dir):
    """tefe.backend transformer: fitted from the text train / dev manifests only; fusion reads its
    features; the fusion heads read its token states (extract_tefe_backend_tokens)."""
    from rerun_plans import planned

    (workflow_dir / "transformer.yaml").write_text(
        "tefe: {backend: transformer}\nfusion: {heads: {variants: [xattn]}}\n"
    )
    jobs = planned(workflow_dir, "--configfile", "transformer.yaml", inputs=True)
    fits = {job["backend"]: job["input"].split(", ") for job in jobs["train_tefe_backend"]}
    assert set(fits) == {"tfidf", "transformer"}
    data = [f for f in fits["transformer"] if not f.startswith("workflow_scripts/")]
    assert data == ["results/data/text/train.tsv", "results/data/text/dev.tsv"]
    assert "workflow_scripts/tefe/transformer.py" in fits["transformer"]
    tokens = {job["split"] for job in jobs["extract_tefe_backend_tokens"]}
    assert tokens == {"train", "dev", "public_test", "private_test"}
    (xattn,) = jobs["train_xattn"]  # the primary ASR system's (its transcripts' token states)
    assert "results/systems/finetuned/tefe/transformer/tokens/dev.parquet" in xattn["input"]
    assert "/tefe/tokens/" not in xattn["input"]
    pooled = [job["input"] for job in jobs["pool_features"] if job.get("modality") == "text"]
    assert pooled and all("/tefe/transformer/features/" in files for files in pooled)


def test_rule_steps_fit_extract_and_write_tokens(checkpoint, tmp_path):
    """train_tefe_backend, extract_tefe_backend and extract_tefe_backend_tokens through main(job)."""
    from tests.rule_job import rule_job
    from tests.tefe_fixtures import tiny_corpus, write_speech_split, write_text_manifest
    from workflow_scripts.common.files import read_json
    from workflow_scripts.tefe import backend_tokens, extract_backend, train_backend

    text = {
        s: write_text_manifest(tmp_path / f"{s}.tsv", *tiny_corpus(n, seed), s)
        for s, n, seed in [("train", 30, 1), ("dev", 10, 2)]
    }
    texts, labels = tiny_corpus(5, seed=4)
    manifest, transcripts = write_speech_split(tmp_path, "dev_speech", texts, labels, texts)
    model, metrics = tmp_path / "transformer" / "model", tmp_path / "transformer" / "metrics.json"
    wildcards = {"backend": "transformer", "feature_set": "features", "split": "dev_speech"}
    train_backend.main(
        rule_job(
            input={"train": str(text["train"]), "dev": str(text["dev"])},
            output={"model": str(model), "metrics": str(metrics)},
            params={"block": block(checkpoint, mode="finetune", finetune={"epochs": 2}), "classes": CLASSES},
            wildcards={"backend": "transformer"},
        )
    )
    summary = read_json(metrics)
    assert summary["train_size"] == 30 and summary["validation"]["n"] == 10 and summary["epochs_run"] >= 1
    inputs = {"model": str(model), "transcripts": str(transcripts), "manifest": str(manifest)}
    params = {"column": "hypothesis", "batch_size": 2}
    extract_backend.main(
        rule_job(input=inputs, output={"features": str(tmp_path / "f.parquet")}, params=params, wildcards=wildcards)
    )
    backend_tokens.main(
        rule_job(input=inputs, output={"tokens": str(tmp_path / "t.parquet")}, params=params, wildcards=wildcards)
    )
    ids, values, metadata = read_features(tmp_path / "f.parquet", ["sentence"])
    sequences = SequenceFile(tmp_path / "t.parquet")
    assert sequences.utt_ids == ids and len(ids) == 5 and values.shape == (5, 16)
    assert metadata["model"] == "tefe/transformer/finetune" and sequences.metadata["kind"] == "tokens"
