"""The results layout, defined once: the rules, the scripts and predict import it.

Templates hold Snakemake wildcards (``{split}``, ``{backend}`` ...); rules use them as
patterns and ``expand()`` them, Python fills them with ``str.format``. Every path starts
with ``RESULTS``; :func:`in_run` moves one into another run directory (predict). Logs and
benchmarks come from :func:`log` and :func:`benchmark`, never written by hand.

Scope, the one way to put a result under an ASR system (asr.systems): a result that may be
shared by every system or exist once per system holds the ``{scope}`` segment, whose value is
``SHARED_SCOPE`` ("shared", results/shared/...) or ``system_scope(name)`` ("systems/<name>",
results/systems/<name>/...); ``fusion.rows.row_scope`` / ``feature_set_scope`` say which one a
row or feature set takes, ``scope_system`` reads the system back. A result that is always per
system (transcripts, ASR scores, TEFE features and tokens) holds ``SYSTEM_DIR``, which is
``system_scope("{system}")``: the same directory, with the system as its own wildcard.
"""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = "results"
LOGS = "logs"
BENCHMARKS = f"{RESULTS}/benchmarks"

# The {scope} of a result that reads no transcripts: built once, shared by every ASR system.
SHARED_SCOPE = "shared"


def system_scope(system: str) -> str:
    """The {scope} of a result of ASR system ``system`` (``"systems/<system>"``)."""
    return f"systems/{system}"


def scope_system(scope: str) -> str | None:
    """The ASR system of a {scope} value (``"systems/<name>"`` -> ``name``), None for ``SHARED_SCOPE``."""
    if scope == SHARED_SCOPE:
        return None
    prefix = system_scope("")
    system = scope.removeprefix(prefix)
    if not scope.startswith(prefix) or not system or "/" in system:
        raise ValueError(f"{scope!r} is neither {SHARED_SCOPE!r} nor {system_scope('<system>')!r}")
    return system


def log(stage: str, rule: str, *wildcards: str) -> str:
    """The log file of a rule's job: ``logs/<stage>/<rule>[/<wildcard>...].log``
    (e.g. ``log("fusion", "train_classifier", "{scope}", "{classifier}", "{feature_set}")``)."""
    return "/".join((LOGS, stage, rule, *wildcards)) + ".log"


def benchmark(stage: str, rule: str, *wildcards: str) -> str:
    """The benchmark file of a rule's job: ``results/benchmarks/<stage>/<rule>[/<wildcard>...].tsv``."""
    return "/".join((BENCHMARKS, stage, rule, *wildcards)) + ".tsv"


def shard_file(template: str) -> str:
    """The file of one shard (config ``scale.shards``) of a per-split file: ``<dir>/{split}.<ext>`` ->
    ``<dir>/shards/{split}/{shard}.<ext>`` (a shard step writes it, a gather rule joins them)."""
    directory, _, name = template.rpartition("/")
    split, _, extension = name.partition(".")
    if split != "{split}" or not extension:
        raise ValueError(f"{template!r}: a per-split file is <dir>/{{split}}.<ext>")
    return f"{directory}/shards/{{split}}/{{shard}}.{extension}"


_SHARD_FILE = re.compile(r"^(?P<directory>.+)/shards/(?P<split>[^/]+)/[^/]+?(?P<extension>\.[^/]+)$")


def split_file(path: str) -> str:
    """The split's file of a filled :func:`shard_file` path (``.../shards/train/2-of-4.tsv`` ->
    ``.../train.tsv``); any other string as it is."""
    match = _SHARD_FILE.match(path)
    return f"{match['directory']}/{match['split']}{match['extension']}" if match else path


# Results that are always per ASR system: transcripts and their scores, the text features.
SYSTEM_DIR = f"{RESULTS}/{system_scope('{system}')}"
# Results that are shared or per system (see the module docstring).
SCOPE_DIR = f"{RESULTS}/{{scope}}"
# The expensive rules' finished outputs by fingerprint, restored by a rerun that matches (common/keep.py).
# No rule declares it, so Snakemake never deletes it.
KEEP = f"{RESULTS}/.keep"

# --- data ---
DEMO_SPEECH_TABLE = f"{RESULTS}/demo/speech_corpus.tsv"
DEMO_WAV_DIR = f"{RESULTS}/demo/wav"
DEMO_TEXT_TABLE = f"{RESULTS}/demo/text_corpus.tsv"
DEMO_ASR_TABLE = f"{RESULTS}/demo/asr_corpus.tsv"
DEMO_ASR_WAV_DIR = f"{RESULTS}/demo/asr_wav"
SPEECH_DIR = f"{RESULTS}/data/speech/{{corpus}}"
SPEECH_MANIFEST = f"{SPEECH_DIR}/{{split}}.tsv"
# One shard of a split's manifest (scale.shards > 1): what the shard jobs of a per-split step read.
SPEECH_SHARD_MANIFEST = shard_file(SPEECH_MANIFEST)
SPEECH_SKIPPED = f"{SPEECH_DIR}/skipped.tsv"
SPEECH_SUMMARY = f"{SPEECH_DIR}/summary.json"
TEXT_DIR = f"{RESULTS}/data/text"
TEXT_MANIFEST = f"{TEXT_DIR}/{{split}}.tsv"
TEXT_SKIPPED = f"{TEXT_DIR}/skipped.tsv"
TEXT_SUMMARY = f"{TEXT_DIR}/summary.json"

# --- asr ---
ASR_INIT_MODEL = f"{RESULTS}/asr/init_model"
ASR_FINETUNED_MODEL = f"{RESULTS}/asr/model"
ASR_FINETUNE_WORK = f"{RESULTS}/asr/finetune_work"
# A named intermediate model of the fine-tuning run (asr.finetune.snapshot_steps), e.g. an ASR system.
ASR_SNAPSHOT = f"{RESULTS}/asr/snapshots/step-{{step}}"
TRANSCRIPTS = f"{SYSTEM_DIR}/transcripts/{{split}}.parquet"
ASR_WER = f"{SYSTEM_DIR}/asr/wer_{{split}}.json"
ASR_BENCHMARK_JSON = f"{RESULTS}/asr/benchmark.json"
ASR_BENCHMARK_MD = f"{RESULTS}/asr/benchmark.md"
# Whisper base from the `weights` extra: the assembled CTranslate2 directory and its transformers conversion.
PRETRAINED_WHISPER_BASE_CT2 = f"{RESULTS}/pretrained/whisper-base-ct2"
PRETRAINED_WHISPER_BASE = f"{RESULTS}/pretrained/whisper-base"

# --- sefe ---
SEFE_FEATURES = f"{RESULTS}/sefe/{{backend}}/{{split}}.parquet"
SEFE_EVALUATION = f"{RESULTS}/sefe/{{backend}}/evaluation.json"
# Sequence features (common/sequences.py): the frame matrices before pooling.
SEFE_FRAMES = f"{RESULTS}/sefe/{{backend}}/frames/{{split}}.parquet"
# layer: auto (sefe/layer_choice.py): every candidate layer's pooled statistics of the training and
# selection splits, and the layer chosen from them.
SEFE_LAYER_FEATURES = f"{RESULTS}/sefe/{{backend}}/layers/{{split}}.parquet"
SEFE_LAYER_CHOICE = f"{RESULTS}/sefe/{{backend}}/layer_choice.json"
# Prosody tokens (sefe/prosody_f0.py, prosody_bins.py, prosody_tokens.py): F0 + voicing per frame, the
# training split's bins, token ids.
PROSODY_F0 = f"{RESULTS}/sefe/prosody/f0/{{split}}.parquet"
PROSODY_BINS = f"{RESULTS}/sefe/prosody/bins.json"
PROSODY_TOKENS = f"{RESULTS}/sefe/prosody/tokens/{{split}}.parquet"

# --- tefe ---
TEFE_VOCAB = f"{RESULTS}/tefe/embedding/vocab.json"
TEFE_EMBEDDING = f"{RESULTS}/tefe/embedding/embedding.npy"
TEFE_EMBEDDING_SUMMARY = f"{RESULTS}/tefe/embedding/summary.json"
TEFE_MODEL_DIR = f"{RESULTS}/tefe/models/{{arch}}"
TEFE_MODEL = f"{TEFE_MODEL_DIR}/model.pt"
# Per-epoch training state for resuming a killed train_tefe job; removed once the job's outputs exist.
TEFE_WORK = f"{TEFE_MODEL_DIR}/work"
TEFE_MODEL_VOCAB = f"{TEFE_MODEL_DIR}/vocab.json"
TEFE_MODEL_METRICS = f"{TEFE_MODEL_DIR}/metrics.json"
TEFE_SELECTION = f"{RESULTS}/tefe/selection.json"
TEFE_TABLE_MD = f"{RESULTS}/tefe/table.md"
TEFE_TABLE_JSON = f"{RESULTS}/tefe/table.json"
TEFE_FEATURES = f"{SYSTEM_DIR}/tefe/{{feature_set}}/{{split}}.parquet"
# The other text backends (names.TEFE_OTHER_BACKENDS): model directory, dev scores, features.
TEFE_BACKEND_MODEL = f"{RESULTS}/tefe/{{backend}}/model"
TEFE_BACKEND_METRICS = f"{RESULTS}/tefe/{{backend}}/metrics.json"
TEFE_BACKEND_FEATURES = f"{SYSTEM_DIR}/tefe/{{backend}}/{{feature_set}}/{{split}}.parquet"
TEFE_BACKEND_TOKENS = f"{SYSTEM_DIR}/tefe/{{backend}}/tokens/{{split}}.parquet"
# Sequence features (common/sequences.py): the chosen encoder's token states of the ASR hypotheses.
TEFE_TOKENS = f"{SYSTEM_DIR}/tefe/tokens/{{split}}.parquet"

# --- fusion ---
# Under {scope}: shared, or the ASR system's when it reads transcripts (fusion/rows.py).
POOLED = f"{SCOPE_DIR}/fusion/pooled/{{modality}}/{{split}}.parquet"
CLASSIFIER_DIR = f"{SCOPE_DIR}/fusion/{{feature_set}}/{{classifier}}"
# A skops file (common/model_files.py), never a pickle.
CLASSIFIER_MODEL = f"{CLASSIFIER_DIR}/model.skops"
CLASSIFIER_TRIALS = f"{CLASSIFIER_DIR}/trials.csv"
CLASSIFIER_PROBABILITIES = f"{CLASSIFIER_DIR}/probabilities/{{split}}.parquet"
CLASSIFIER_OOF = f"{CLASSIFIER_DIR}/oof_train.parquet"
CLASSIFIER_SUMMARY = f"{CLASSIFIER_DIR}/summary.json"
ENSEMBLE_WEIGHTS = f"{SCOPE_DIR}/ensemble/weights.json"
ENSEMBLE_TRIALS = f"{SCOPE_DIR}/ensemble/trials.csv"
ENSEMBLE_OOF = f"{SCOPE_DIR}/ensemble/oof_train.parquet"
VARIANT_METRICS = f"{SCOPE_DIR}/metrics/{{variant}}.json"
VARIANT_PROBABILITIES = f"{SCOPE_DIR}/fusion/variants/{{variant}}/{{split}}.parquet"
HEAD_DIR = f"{SCOPE_DIR}/fusion/heads/{{variant}}"
HEAD_MODEL = f"{HEAD_DIR}/model.pt"
HEAD_SUMMARY = f"{HEAD_DIR}/summary.json"
# Per-epoch training state for resuming a killed head job; removed once the job's outputs exist.
HEAD_WORK = f"{HEAD_DIR}/work"
HEADLINE_METRICS = f"{RESULTS}/hybrid_metrics.json"
TABLE2_MD = f"{RESULTS}/table2.md"
TABLE2_CSV = f"{RESULTS}/table2.csv"
FIGURE2_PNG = f"{RESULTS}/figure2.png"
FIGURE2_SVG = f"{RESULTS}/figure2.svg"
FIGURE2_POINTS = f"{RESULTS}/figure2_points.csv"
# Table 3: per ASR system, WER / CER per test split and the SER metrics of the text-dependent rows.
TABLE3_MD = f"{RESULTS}/table3.md"
TABLE3_CSV = f"{RESULTS}/table3.csv"
CONFUSION_MATRICES = f"{RESULTS}/fusion/confusion_matrices.png"

# --- challenge ---
# A "<variant>+rules" row writes VARIANT_METRICS / VARIANT_PROBABILITIES under its own name.
LEXICON_RULES_CHANGES = f"{SCOPE_DIR}/challenge/rules/{{variant}}.tsv"
AUGMENTED_WAV_DIR = f"{RESULTS}/augment/wav"
AUGMENTED_MANIFEST = f"{RESULTS}/augment/train.tsv"
AUGMENTED_RECORD = f"{RESULTS}/augment/copies.json"
SEFE_AUGMENTED_FEATURES = f"{RESULTS}/sefe/{{backend}}/{{split}}_augmented.parquet"
CHALLENGE_MD = f"{RESULTS}/challenge.md"
CHALLENGE_JSON = f"{RESULTS}/challenge.json"


# The checksum record written beside a model file predict loads (common/checksums.py); a directory
# holds its own, CHECKSUM_DIRECTORY_RECORD.
# Files Snakemake itself writes into directory outputs (a directory's timestamp flag): not content.
SNAKEMAKE_DIRECTORY_FLAGS = frozenset({".snakemake_timestamp"})
CHECKSUM_SUFFIX = ".sha256"
CHECKSUM_DIRECTORY_RECORD = "SHA256SUMS"


def checksum_of(template: str) -> str:
    """The checksum record of the file ``template`` (a declared output beside the file)."""
    return template + CHECKSUM_SUFFIX


def in_run(template: str, run_dir: str | Path, **wildcards: str) -> Path:
    """``template`` filled with ``wildcards`` inside another run directory than ``RESULTS``."""
    relative = template.format(**wildcards).removeprefix(RESULTS + "/")
    return Path(run_dir) / relative
