"""CTranslate2 Whisper -> transformers: ``python -m workflow_scripts.asr.convert_ct2 SRC DST``.

SRC is a CTranslate2 Whisper directory (model.bin, config.json, tokenizer.json,
vocabulary.txt: what faster-whisper loads, e.g. the assembled ``weights`` extra,
:mod:`workflow_scripts.common.pretrained`); DST becomes a ``save_pretrained`` directory of
``WhisperForConditionalGeneration`` with its ``WhisperProcessor`` (feature extractor and
tokenizer) and the generation settings openai/whisper-* ship with, loadable offline by every
Whisper code path of the workflow (transcription, fine-tuning, the ``whisper_encoder`` SEFE
backend).

model.bin is read directly (CTranslate2's binary layout: version, spec name, revision, then
each variable's name, shape, dtype and bytes, then aliases); the variables map one to one onto
transformers' parameters, except the fused projections, which are split: self-attention
``linear_0`` = q, k, v; cross-attention ``linear_1`` = k, v (the key bias is zero in
CTranslate2 and absent in transformers). float16 weights become float32. Quantised (int8)
models cannot be converted back.

Also the ``convert_whisper_base`` rule's script (the assembled base -> results/pretrained/).
"""

import json
import logging
import os
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from workflow_scripts.common.files import atomic_path
from workflow_scripts.common.rule import run_rule

log = logging.getLogger(__name__)

# CTranslate2's DataType enum (include/ctranslate2/types.h).
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
END, START, NO_TIMESTAMPS, PREV = "<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "<|startofprev|>"
TASK_TOKENS = {"transcribe": "<|transcribe|>", "translate": "<|translate|>"}


def read_ct2_variables(path: str | os.PathLike) -> tuple[str, dict[str, np.ndarray]]:
    """The spec name and every variable of a CTranslate2 model.bin (aliases resolved)."""
    path = Path(path)
    data = path.read_bytes()
    offset = 0

    def take(fmt: str) -> Any:
        nonlocal offset
        value = struct.unpack_from(fmt, data, offset)
        offset += struct.calcsize(fmt)
        return value[0]

    def string() -> str:
        nonlocal offset
        length = take("H")
        text = data[offset : offset + length - 1].decode("utf-8")
        offset += length
        return text

    version = take("I")
    if version < 5:
        raise ValueError(f"{path}: CTranslate2 binary version {version} is not supported (>= 5 expected)")
    spec = string()
    take("I")  # revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = string()
        shape = [take("I") for _ in range(take("B"))]
        dtype = _DTYPES.get(take("B"))
        nbytes = take("I")
        raw = data[offset : offset + nbytes]
        offset += nbytes
        if dtype is None:
            raise ValueError(f"{path}: variable {name} has an unknown dtype")
        if dtype == "bfloat16":
            array = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=dtype)
        variables[name] = array.reshape(shape)
    for _ in range(take("I")):
        alias, target = string(), string()
        variables[alias] = variables[target]
    return spec, variables


def _layers(variables: Mapping[str, np.ndarray], prefix: str) -> int:
    count = 0
    while f"{prefix}/layer_{count}/ffn/linear_0/weight" in variables:
        count += 1
    return count


def ct2_state_dict(variables: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """transformers ``WhisperForConditionalGeneration`` parameters (float32) from CTranslate2 variables."""
    if any(name.endswith("weight_scale") for name in variables):
        raise ValueError("the CTranslate2 model is quantised (int8 weight_scale variables); convert a float model")
    state: dict[str, np.ndarray] = {}

    def put(target: str, source: str) -> None:
        state[target] = np.asarray(variables[source], dtype=np.float32)

    def linear(target: str, source: str) -> None:
        put(f"{target}.weight", f"{source}/weight")
        put(f"{target}.bias", f"{source}/bias")

    def norm(target: str, source: str) -> None:
        put(f"{target}.weight", f"{source}/gamma")
        put(f"{target}.bias", f"{source}/beta")

    def split(target: str, source: str, names: list[str]) -> None:
        weights = np.split(np.asarray(variables[f"{source}/weight"], dtype=np.float32), len(names))
        biases = np.split(np.asarray(variables[f"{source}/bias"], dtype=np.float32), len(names))
        for name, weight, bias in zip(names, weights, biases, strict=True):
            state[f"{target}.{name}.weight"] = weight
            if name == "k_proj":
                if np.abs(bias).max() > 0:
                    raise ValueError(f"{source}: non-zero key bias, which transformers' Whisper has no place for")
            else:
                state[f"{target}.{name}.bias"] = bias

    for side in ("encoder", "decoder"):
        put(f"model.{side}.embed_positions.weight", f"{side}/position_encodings/encodings")
        norm(f"model.{side}.layer_norm", f"{side}/layer_norm")
        for i in range(_layers(variables, side)):
            src, dst = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            split(f"{dst}.self_attn", f"{src}/self_attention/linear_0", ["q_proj", "k_proj", "v_proj"])
            linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
            norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
            if side == "decoder":
                linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
                split(f"{dst}.encoder_attn", f"{src}/attention/linear_1", ["k_proj", "v_proj"])
                linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
                norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
            linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
            linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
            norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    put("model.decoder.embed_tokens.weight", "decoder/embeddings/weight")
    put("proj_out.weight", "decoder/projection/weight")
    return state


def build_tokenizer(src: Path):
    """``WhisperTokenizer`` from tokenizer.json, with the timestamp tokens of vocabulary.txt appended."""
    from tokenizers import AddedToken
    from transformers import WhisperTokenizer

    tokenizer = WhisperTokenizer(tokenizer_file=str(src / "tokenizer.json"), predict_timestamps=False)
    vocabulary = (src / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    extra = vocabulary[len(tokenizer) :]
    if extra:
        tokenizer.add_tokens([AddedToken(token, special=True, normalized=False) for token in extra])
    if len(tokenizer) != len(vocabulary):
        raise ValueError(f"{src}: tokenizer has {len(tokenizer)} tokens, vocabulary.txt {len(vocabulary)}")
    return tokenizer


def convert(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write the transformers version of the CTranslate2 Whisper in ``src`` to ``dst`` (atomically)."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    src = Path(src)
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        if not (src / name).is_file():
            raise FileNotFoundError(f"{src}: {name} is missing (expected a CTranslate2 Whisper directory)")
    spec, variables = read_ct2_variables(src / "model.bin")
    if spec != "WhisperSpec":
        raise ValueError(f"{src / 'model.bin'}: spec {spec!r} is not a Whisper model (WhisperSpec)")
    ct2_config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    state = ct2_state_dict(variables)
    tokenizer = build_tokenizer(src)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in (END, START, NO_TIMESTAMPS, PREV)}
    d_model, n_mels = variables["encoder/conv1/weight"].shape[:2]
    config = WhisperConfig(
        vocab_size=int(variables["decoder/embeddings/weight"].shape[0]),
        num_mel_bins=int(n_mels),
        d_model=int(d_model),
        encoder_layers=_layers(variables, "encoder"),
        decoder_layers=_layers(variables, "decoder"),
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(variables["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(variables["decoder/position_encodings/encodings"].shape[0]),
        pad_token_id=ids[END],
        bos_token_id=ids[END],
        eos_token_id=ids[END],
        decoder_start_token_id=ids[START],
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])),
        tie_word_embeddings=True,
    )
    model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()}, strict=False)
    missing = [k for k in missing if k != "proj_out.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise ValueError(f"{src}: conversion left parameters missing {missing[:5]} / unexpected {unexpected[:5]}")
    model.eval()
    generation = model.generation_config
    lang_ids = set(ct2_config.get("lang_ids", []))
    generation.lang_to_id = {
        f"<|{code}|>": tokenizer.convert_tokens_to_ids(f"<|{code}|>")
        for code in LANGUAGES
        if tokenizer.convert_tokens_to_ids(f"<|{code}|>") in lang_ids
    }
    generation.task_to_id = {task: tokenizer.convert_tokens_to_ids(token) for task, token in TASK_TOKENS.items()}
    generation.is_multilingual = len(generation.lang_to_id) > 1
    generation.no_timestamps_token_id = ids[NO_TIMESTAMPS]
    generation.prev_sot_token_id = ids[PREV]
    generation.decoder_start_token_id = ids[START]
    generation.eos_token_id = generation.pad_token_id = generation.bos_token_id = ids[END]
    generation.forced_decoder_ids = None
    generation.suppress_tokens = list(config.suppress_tokens)
    generation.begin_suppress_tokens = list(config.begin_suppress_tokens)
    generation.alignment_heads = ct2_config.get("alignment_heads")
    generation.max_initial_timestamp_index = 50
    generation.max_length = config.max_target_positions
    generation.return_timestamps = False
    generation._from_model_config = False
    extractor = WhisperFeatureExtractor(feature_size=int(n_mels))
    processor = WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer)
    with atomic_path(dst, is_dir=True) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / "conversion.json").write_text(
            json.dumps({"source": str(src.resolve()), "format": "ctranslate2", "spec": spec}, indent=2) + "\n",
            encoding="utf-8",
        )
    log.info("converted %s (%d parameters) -> %s", src, sum(v.size for v in state.values()), dst)
    return Path(dst)


def main(job: Any) -> None:
    """Entry point of the convert_whisper_base rule (``job``: the rule's ``snakemake`` object)."""
    import torch

    torch.set_num_threads(job.threads)
    convert(job.input.ct2, job.output.model)


def cli(argv: list[str]) -> None:
    """``python -m workflow_scripts.asr.convert_ct2 SRC DST``."""
    from workflow_scripts.common.logs import setup_logging

    if len(argv) != 2 or argv[0] in ("-h", "--help"):
        raise SystemExit(
            "usage: python -m workflow_scripts.asr.convert_ct2 SRC DST\n"
            "  SRC: a CTranslate2 Whisper directory (model.bin, config.json, tokenizer.json, vocabulary.txt)\n"
            "  DST: the transformers save_pretrained directory to write (model, processor, generation config)"
        )
    setup_logging()
    print(convert(argv[0], argv[1]))


if __name__ == "__main__":
    if "snakemake" in vars(sys.modules["__main__"]):
        run_rule(main, keep=True)
    else:
        cli(sys.argv[1:])
