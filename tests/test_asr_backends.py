"""ASR backends: checkpoints the tests build, saved and loaded through the hub-checkpoint code path."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from workflow_scripts.asr.backends import BackendSpec, length_sorted_batches, load_backend, transcribe_waveforms
from workflow_scripts.asr.benchmark import main as benchmark_asr_backbones
from workflow_scripts.asr.demo_model import build_demo_whisper
from workflow_scripts.asr.transcribe import load_transcriber, model_source, transcribe_manifest
from workflow_scripts.asr.transcribe import main as transcribe_rule
from workflow_scripts.asr.transcripts import read_transcripts, write_transcripts
from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.common.hub import ModelUnavailableError, resolve_model_source

from asr_fixtures import SENTENCES, TINY_WHISPER, write_corpus
from rule_job import rule_job

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_whisper_dir(tmp_path_factory):
    model, processor = build_demo_whisper(SENTENCES, TINY_WHISPER)
    path = tmp_path_factory.mktemp("whisper") / "tiny-whisper"
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def waveforms(n, rate=16000):
    rng = np.random.default_rng(3)
    return [rng.normal(0, 0.1, int(rate * (0.5 + 0.2 * i))).astype(np.float32) for i in range(n)]


def test_demo_tokenizer_follows_whisper_layout(tiny_whisper_dir):
    backend = load_backend(BackendSpec(backend="whisper", model=str(tiny_whisper_dir)))
    tokenizer, generation = backend.processor.tokenizer, backend.model.generation_config
    ids = tokenizer("mẹ tôi nấu cơm").input_ids
    start, vi, transcribe, no_ts = tokenizer.convert_tokens_to_ids(
        ["<|startoftranscript|>", "<|vi|>", "<|transcribe|>", "<|notimestamps|>"]
    )
    assert ids[:4] == [start, vi, transcribe, no_ts] and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True).strip() == "mẹ tôi nấu cơm"
    assert generation.lang_to_id["<|vi|>"] == vi and generation.task_to_id["transcribe"] == transcribe
    # No id above <|notimestamps|>: generate() would take such tokens for timestamps.
    assert no_ts == len(tokenizer) - 1 == backend.model.config.vocab_size - 1


def test_whisper_batched_equals_one_by_one(tiny_whisper_dir):
    backend = load_backend(BackendSpec(backend="whisper", model=str(tiny_whisper_dir), max_new_tokens=12))
    clips = waveforms(7)
    batched = transcribe_waveforms(backend, clips, batch_size=4, progress=False)
    single = [backend.transcribe([clip])[0] for clip in clips]
    assert batched == single
    assert any(batched), "the untrained model should still emit tokens"


def test_transcripts_parquet_keeps_manifest_order(tiny_whisper_dir, tmp_path):
    manifest = write_corpus(tmp_path, "dev", 5)
    backend = load_backend(BackendSpec(backend="whisper", model=str(tiny_whisper_dir), max_new_tokens=6))
    transcripts, timing = transcribe_manifest(manifest, backend, batch_size=2, progress=False)
    write_transcripts(tmp_path / "dev.parquet", transcripts, backend.describe())
    back = read_transcripts(tmp_path / "dev.parquet")
    assert back["utt_id"].tolist() == [f"dev_{i:03d}" for i in range(5)]
    assert back["reference"].iloc[1] == "Mẹ tôi nấu cơm."
    assert timing["utterances"] == 5 and timing["audio_seconds"] > 5


def test_streamed_transcription_equals_whole_split_in_memory(tiny_whisper_dir, tmp_path, monkeypatch):
    """Batches smaller than the split, audio read per batch: the texts of the former in-memory path
    (every waveform loaded first), and never more than one batch of waveforms read at once."""
    import workflow_scripts.asr.transcribe as transcribe_module
    from workflow_scripts.asr.waveforms import load_waveform, waveform_length

    manifest = write_corpus(tmp_path, "dev", 7)  # 22,050 Hz files: resampled to 16 kHz
    backend = load_backend(BackendSpec(backend="whisper", model=str(tiny_whisper_dir), max_new_tokens=6))
    paths = [str(tmp_path / "wav" / f"dev_{i:03d}.wav") for i in range(7)]
    in_memory = [load_waveform(path, backend.sampling_rate) for path in paths]
    assert [waveform_length(path, backend.sampling_rate) for path in paths] == [len(w) for w in in_memory]
    expected = transcribe_waveforms(backend, in_memory, batch_size=3, progress=False)
    reads = []
    real_load = transcribe_module.load_waveforms
    monkeypatch.setattr(
        transcribe_module, "load_waveforms", lambda ps, rate: reads.append(len(ps)) or real_load(ps, rate)
    )
    transcripts, timing = transcribe_manifest(manifest, backend, batch_size=3, progress=False)
    assert transcripts["hypothesis"].tolist() == expected and any(expected)
    assert reads == [3, 3, 1]
    assert timing["audio_seconds"] == round(sum(len(w) for w in in_memory) / backend.sampling_rate, 2)


TRANSCRIBE = {
    "model": "finetuned",
    "backend": "whisper",
    "language": "vi",
    "task": "transcribe",
    "batch_size": 2,
    "num_beams": 1,
    "max_new_tokens": 6,
    "precision": "auto",
    "device": "cpu",
    "hub_timeout_s": 2,
}


def test_transcribe_rule_loads_the_finetuned_input(tiny_whisper_dir, tmp_path):
    manifest = write_corpus(tmp_path, "dev", 3)
    out = tmp_path / "transcripts" / "dev.parquet"
    transcribe_rule(
        rule_job(
            input={"manifest": str(manifest), "finetuned": [str(tiny_whisper_dir)], "models": []},
            output={"transcripts": str(out)},
            params={"transcribe": TRANSCRIBE},
            wildcards={"split": "dev"},
        )
    )
    assert read_transcripts(out)["utt_id"].tolist() == ["dev_000", "dev_001", "dev_002"]
    metadata = json.loads(pq.read_schema(out).metadata[b"dfat"])
    assert metadata["model"] == str(tiny_whisper_dir) and metadata["manifest"] == str(manifest)
    assert metadata["batch_size"] == 2 and metadata["timing"]["utterances"] == 3


def test_model_reference_finetuned_needs_the_finetuned_input():
    assert model_source("openai/whisper-small", []) == "openai/whisper-small"
    assert model_source("finetuned", ["results/asr/model"]) == "results/asr/model"
    with pytest.raises(ValueError, match="'finetuned' stands for the fine-tuned model"):
        model_source("finetuned", [])


def test_predict_transcriber_loads_the_runs_finetuned_model(tiny_whisper_dir, tmp_path):
    shutil.copytree(tiny_whisper_dir, tmp_path / "run" / "asr" / "model")
    transcribe = load_transcriber(
        {"asr": block_defaults("asr", {"transcribe": TRANSCRIBE})}, tmp_path / "run", threads=1
    )
    manifest = write_corpus(tmp_path, "dev", 2)
    backend = load_backend(BackendSpec(backend="whisper", model=str(tiny_whisper_dir), max_new_tokens=6))
    expected, _ = transcribe_manifest(manifest, backend, batch_size=2, progress=False)
    audio = [str(tmp_path / "wav" / f"dev_{i:03d}.wav") for i in range(2)]
    assert transcribe(audio) == expected["hypothesis"].tolist()


def test_benchmark_rule_scores_every_backbone_on_every_split(tiny_whisper_dir, tmp_path):
    manifests = [str(write_corpus(tmp_path / split, split, 2, offset=i)) for i, split in enumerate(["a", "b"])]
    block = {
        "splits": ["a", "b"],
        "batch_size": 2,
        "device": "cpu",
        "backbones": [
            {"name": "tuned", "backend": "whisper", "model": "finetuned", "max_new_tokens": 4},
            {"name": "by-path", "backend": "whisper", "model": str(tiny_whisper_dir), "max_new_tokens": 4},
        ],
    }
    normalize = {"lowercase": True, "remove_punctuation": True, "numbers_to_words": True, "abbreviations": {}}
    out = {"json": str(tmp_path / "benchmark.json"), "md": str(tmp_path / "benchmark.md")}
    job = rule_job(
        input={"manifests": manifests, "finetuned": [str(tiny_whisper_dir)], "models": []},
        output=out,
        params={"benchmark": block, "normalize": normalize},
    )
    benchmark_asr_backbones(job)
    result = json.loads((tmp_path / "benchmark.json").read_text())
    assert result["splits"] == ["a", "b"] and [b["name"] for b in result["backbones"]] == ["tuned", "by-path"]
    tuned, by_path = result["backbones"]
    assert tuned["model"] == by_path["model"] == str(tiny_whisper_dir)
    assert tuned["splits"]["a"]["wer"] == by_path["splits"]["a"]["wer"] and tuned["splits"]["b"]["n_utterances"] == 2
    table = (tmp_path / "benchmark.md").read_text()
    assert (
        table.startswith("| Backbone | Backend | Model | WER a | WER b | CER a | CER b | SyER a | SyER b | RTF |")
        and "| tuned |" in table
    )
    with pytest.raises(ValueError, match="'finetuned' stands for the fine-tuned model"):
        benchmark_asr_backbones(
            rule_job(
                input={"manifests": manifests, "finetuned": []},
                output=out,
                params={"benchmark": block, "normalize": normalize},
            )
        )
    with pytest.raises(ValueError, match="1 manifests given for splits"):
        benchmark_asr_backbones(
            rule_job(
                input={"manifests": manifests[:1], "finetuned": [str(tiny_whisper_dir)]},
                output=out,
                params={"benchmark": block, "normalize": normalize},
            )
        )


def build_tiny_ctc(path):
    from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

    letters = sorted(set("".join(SENTENCES).replace(" ", "")))
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{ch: i + 3 for i, ch in enumerate(letters)}}
    path.mkdir(parents=True)
    (path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tokenizer = Wav2Vec2CTCTokenizer(
        str(path / "vocab.json"), pad_token="<pad>", unk_token="<unk>", word_delimiter_token="|"
    )
    extractor = Wav2Vec2FeatureExtractor(
        sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )
    torch.manual_seed(0)
    config = Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16, 16),
        conv_stride=(5, 4, 4),
        conv_kernel=(10, 4, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        pad_token_id=0,
        ctc_loss_reduction="mean",
    )
    model = Wav2Vec2ForCTC(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    extractor.save_pretrained(path)
    return model, vocab


def greedy_ctc_reference(logits, vocab):
    """Independent greedy CTC decoding: argmax, merge repeats, drop blanks, | -> space."""
    inverse = {i: t for t, i in vocab.items()}
    best = logits.argmax(-1).tolist()
    merged = [t for k, t in enumerate(best) if k == 0 or t != best[k - 1]]
    return "".join(" " if inverse[t] == "|" else inverse[t] for t in merged if t != vocab["<pad>"]).strip()


def test_ctc_backend_greedy_decodes_batched_like_single(tmp_path):
    model, vocab = build_tiny_ctc(tmp_path / "tiny-ctc")
    backend = load_backend(BackendSpec(backend="ctc", model=str(tmp_path / "tiny-ctc")))
    clips = waveforms(5)
    batched = transcribe_waveforms(backend, clips, batch_size=3, progress=False)
    expected = []
    for clip in clips:
        values = (clip - clip.mean()) / np.sqrt(clip.var() + 1e-7)
        with torch.no_grad():
            logits = model.eval()(torch.from_numpy(values)[None]).logits[0]
        expected.append(" ".join(greedy_ctc_reference(logits, vocab).split()))
    assert [" ".join(t.split()) for t in batched] == expected
    assert any(expected)


def test_batches_are_length_sorted_and_cover_every_index():
    lengths = [5, 1, 9, 3, 9, 2, 7]
    batches = length_sorted_batches(lengths, 3)
    assert batches == [[2, 4, 6], [0, 3, 5], [1]]
    with pytest.raises(ValueError):
        length_sorted_batches(lengths, 0)


def test_missing_local_directory_is_named(tmp_path):
    with pytest.raises(ModelUnavailableError, match="asr.transcribe.model: .*not a directory"):
        resolve_model_source(str(tmp_path / "no" / "such" / "model"), config_key="asr.transcribe.model")


UNREACHABLE = """
import sys, time
from workflow_scripts.asr.backends import BackendSpec, load_backend
from workflow_scripts.common.hub import ModelUnavailableError
started = time.perf_counter()
try:
    load_backend(BackendSpec(backend="whisper", model="openai/whisper-small", hub_timeout_s=2.0),
                 config_key="asr.finetune.base_model")
except ModelUnavailableError as error:
    print(f"{time.perf_counter() - started:.2f}")
    print(error)
    sys.exit(0)
sys.exit("loaded a model that should be unreachable")
"""


@pytest.mark.parametrize(
    "env",
    [
        {"HF_HUB_OFFLINE": "1"},
        # Nothing listens there: the connection is refused at once.
        {"HF_ENDPOINT": "http://127.0.0.1:9"},
        # A non-routable address: only the timeout ends the wait.
        {"HF_ENDPOINT": "http://10.255.255.1"},
    ],
    ids=["offline", "refused", "blackhole"],
)
def test_unreachable_hub_fails_in_seconds_with_instructions(tmp_path, env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    environment.update({"HF_HOME": str(tmp_path / "hf"), **env})
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", UNREACHABLE], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    wall = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-2000:]
    seconds, message = result.stdout.split("\n", 1)
    assert float(seconds) < 8, f"took {seconds} s to give up ({wall:.1f} s with start-up)"
    assert "asr.finetune.base_model: cannot load 'openai/whisper-small'" in message
    assert "hf download openai/whisper-small --local-dir models/whisper-small" in message
    assert "asr.finetune.base_model: models/whisper-small" in message
