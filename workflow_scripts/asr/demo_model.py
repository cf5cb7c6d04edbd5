"""The offline demo's ASR model: a small Whisper, randomly initialised, with a tokenizer built here.

The tokenizer is a byte-level BPE trained with `tokenizers` on the normalised reference text of
the training split only, wrapped as a ``WhisperTokenizer`` whose special tokens follow
Whisper's layout (text tokens, then <|endoftext|>, <|startoftranscript|>, the language tokens
in Whisper's order, task tokens, <|notimestamps|> last and no timestamp tokens). Language and
task prefixes, ``generate(language=..., task=...)`` and decoding therefore behave as with
openai/whisper-*, and the fine-tuning rule trains this model exactly as it fine-tunes those.
"""

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from workflow_scripts.asr.text import NormalizeConfig, normalize_text
from workflow_scripts.common.files import atomic_path, write_json
from workflow_scripts.common.manifest import read_manifest
from workflow_scripts.common.rule import run_rule
from workflow_scripts.common.seeding import seed_everything

log = logging.getLogger(__name__)

END, START, NO_TIMESTAMPS = "<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>"
TASK_TOKENS = ["<|translate|>", "<|transcribe|>"]
TRAILING_SPECIALS = ["<|startoflm|>", "<|startofprev|>", "<|nospeech|>", NO_TIMESTAMPS]


def whisper_special_tokens() -> list[str]:
    """Whisper's special tokens in Whisper's id order (language ids are offsets from <|startoftranscript|>)."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return [END, START, *[f"<|{code}|>" for code in LANGUAGES], *TASK_TOKENS, *TRAILING_SPECIALS]


def train_bpe(
    texts: Iterable[str], vocab_size: int, min_frequency: int
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE vocabulary and merges learnt from ``texts`` (words keep their leading space)."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(list(texts), trainer)
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    return tokenizer.get_vocab(), [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]


def build_whisper_tokenizer(vocab: Mapping[str, int], merges: list[tuple[str, str]], language: str, task: str):
    """A ``WhisperTokenizer`` over ``vocab`` with Whisper's special tokens appended after the text tokens."""
    from tokenizers import AddedToken
    from transformers import WhisperTokenizer

    full = dict(vocab)
    specials = whisper_special_tokens()
    clash = [token for token in specials if token in full]
    if clash:
        raise ValueError(f"BPE vocabulary already holds special tokens {clash[:3]}; the training text contains them")
    for offset, token in enumerate(specials):
        full[token] = len(vocab) + offset
    tokenizer = WhisperTokenizer(
        vocab=full, merges=merges, add_prefix_space=True, language=language, task=task, predict_timestamps=False
    )
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [AddedToken(t, special=True, normalized=False) for t in specials[1:]]}
    )
    tokenizer.set_prefix_tokens(language=language, task=task, predict_timestamps=False)
    return tokenizer


def build_demo_whisper(texts: list[str], block: Mapping[str, Any]):
    """Tokenizer, feature extractor and random-initialised model of the demo; returns (model, processor)."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

    seed_everything(int(block["seed"]))
    vocab, merges = train_bpe(texts, int(block["vocab_size"]), int(block["min_frequency"]))
    tokenizer = build_whisper_tokenizer(vocab, merges, block["language"], block["task"])
    extractor = WhisperFeatureExtractor(
        feature_size=int(block["num_mel_bins"]),
        sampling_rate=16000,
        hop_length=int(block["hop_length"]),
        chunk_length=int(block["chunk_seconds"]),
        n_fft=int(block["n_fft"]),
    )
    # The encoder's two convolutions halve the frame rate: one position per two mel frames.
    source_positions = extractor.nb_max_frames // 2
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in (END, START, NO_TIMESTAMPS)}
    d_model = int(block["d_model"])
    # Encoder and decoder are alike: layers of their own, the same heads and feed-forward width.
    layers = {key: int(block[key]) for key in ("encoder_layers", "decoder_layers")}
    heads, ffn_dim = int(block["attention_heads"]), int(block["ffn_dim"])
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=int(block["num_mel_bins"]),
        d_model=d_model,
        **layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=ffn_dim,
        decoder_ffn_dim=ffn_dim,
        max_source_positions=source_positions,
        max_target_positions=int(block["max_target_positions"]),
        pad_token_id=ids[END],
        bos_token_id=ids[END],
        eos_token_id=ids[END],
        decoder_start_token_id=ids[START],
        dropout=float(block["dropout"]),
        attention_dropout=0.0,
        activation_dropout=0.0,
        suppress_tokens=[],
        begin_suppress_tokens=[ids[END]],
    )
    model = WhisperForConditionalGeneration(config)
    configure_generation(model, tokenizer, block["language"], block["task"])
    return model, WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer)


def configure_generation(model, tokenizer, language: str, task: str) -> None:
    """Give a self-built model the generation settings openai/whisper-* checkpoints ship with.

    ``GenerationConfig.update()`` drops the Whisper-specific attributes, so they are set directly.
    The vocabulary has no timestamp tokens, so generation never re-seeks on a "timestamp".
    """
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    generation = model.generation_config
    generation.lang_to_id = {f"<|{code}|>": tokenizer.convert_tokens_to_ids(f"<|{code}|>") for code in LANGUAGES}
    generation.task_to_id = {t.strip("<|>"): tokenizer.convert_tokens_to_ids(t) for t in TASK_TOKENS}
    generation.is_multilingual = True
    generation.no_timestamps_token_id = tokenizer.convert_tokens_to_ids(NO_TIMESTAMPS)
    generation.decoder_start_token_id = model.config.decoder_start_token_id
    generation.eos_token_id = generation.pad_token_id = model.config.eos_token_id
    generation.forced_decoder_ids = None
    generation.suppress_tokens = []
    generation.begin_suppress_tokens = [model.config.eos_token_id]
    generation.max_length = model.config.max_target_positions
    generation.language, generation.task = language, task
    generation.return_timestamps = False
    # A config marked as derived from the model config drops non-standard keys when loaded again.
    generation._from_model_config = False


def read_training_texts(manifests: list[str], normalize: NormalizeConfig) -> list[str]:
    """Normalised, non-empty reference texts of the training manifests."""
    texts = []
    for path in manifests:
        frame = read_manifest(path)
        texts += [t for t in (normalize_text(x, normalize) for x in frame["text"]) if t]
    if not texts:
        raise ValueError(f"{manifests}: no reference text to train the demo tokenizer on")
    return texts


def build_demo_model(
    block: Mapping[str, Any], normalize_block: Mapping[str, Any], train_manifests: list[str], out_dir: str
) -> None:
    """Build the demo Whisper from the training manifests' text and save it to ``out_dir`` (atomically)."""
    texts = read_training_texts(train_manifests, NormalizeConfig.from_dict(normalize_block))
    model, processor = build_demo_whisper(texts, block)
    log.info(
        "demo Whisper: %d parameters, vocabulary %d, %d mel bins, %.1f s window, tokenizer from %d sentences",
        model.num_parameters(),
        model.config.vocab_size,
        model.config.num_mel_bins,
        processor.feature_extractor.chunk_length,
        len(texts),
    )
    with atomic_path(out_dir, is_dir=True) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        build_config = {
            "demo_model": dict(block),
            "normalize": dict(normalize_block),
            "train_manifests": list(train_manifests),
            "n_sentences": len(texts),
        }
        write_json(Path(tmp) / "build_config.json", build_config)


def main(job: Any) -> None:
    """Entry point of the build_demo_asr_model rule (``job``: the rule's ``snakemake`` object)."""
    manifests = [str(path) for path in job.input.manifests]
    build_demo_model(job.params.demo_model, job.params.normalize, manifests, str(job.output.model))


if __name__ == "__main__":
    run_rule(main)
