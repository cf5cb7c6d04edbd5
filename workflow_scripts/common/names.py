"""Every name list of the workflow, defined once (the rules, the scripts and predict import it).

Only the standard library here: the rules import it whenever Snakemake builds the DAG.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# --- data ---
TEXT_SPLITS = ("train", "dev", "test")

# --- asr ---
ASR_BACKENDS = ("whisper", "ctc", "ct2")
# The model reference that means the model fine_tune_whisper builds.
FINETUNED = "finetuned"
# The backend of an ASR system (asr.systems) that "transcribes" with the manifests' reference text (WER 0).
ORACLE_BACKEND = "oracle"
SYSTEM_BACKENDS = (*ASR_BACKENDS, ORACLE_BACKEND)


def asr_systems(asr: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ASR systems of the asr block (``asr.systems``): name -> its transcription settings, i.e.
    ``asr.transcribe`` with the system's own keys over it (the block as validated, defaults filled); an
    oracle system is ``{"backend": "oracle"}`` alone (it reads no model, so no transcription setting)."""
    systems: dict[str, dict[str, Any]] = {}
    for entry in asr["systems"]:
        if entry["name"] in systems:
            raise ValueError(f"config asr.systems: the name {entry['name']!r} is listed twice")
        own = {key: value for key, value in entry.items() if key != "name"}
        oracle = own.get("backend") == ORACLE_BACKEND
        systems[entry["name"]] = {"backend": ORACLE_BACKEND} if oracle else {**asr["transcribe"], **own}
    return systems


def primary_system(asr: Mapping[str, Any]) -> str:
    """``asr.primary_system``, or the first of ``asr.systems`` when it is null."""
    names = [entry["name"] for entry in asr["systems"]]
    primary = asr["primary_system"] or names[0]
    if primary not in names:
        raise ValueError(f"config asr.primary_system: {primary!r} is not a name of asr.systems {names}")
    return primary


# --- scale ---
def shard_names(count: int) -> list[str]:
    """The {shard} values of ``scale.shards`` = ``count``: ``1-of-<count>`` ... ``<count>-of-<count>``
    (the count in the name, so that another count writes other files)."""
    if count < 1:
        raise ValueError(f"config scale.shards: {count}, expected at least 1")
    return [f"{index}-of-{count}" for index in range(1, count + 1)]


# --- sefe ---
SEFE_BACKENDS = ("handcrafted", "emotion2vec", "wavlm", "whisper_encoder", "egemaps", "compare")
# Statistics pooled over frames into the feature files.
SEFE_STATISTICS = ("mean", "var", "max", "min")
# The one statistic of a backend that computes its own utterance features (openSMILE's functionals):
# a feature file holding it is read whole, whatever statistics a consumer chooses among the pooled ones.
FUNCTIONALS = "functionals"

# --- tefe ---
TEFE_ARCHITECTURES = ("CNN", "LSTM", "BiLSTM", "BiLSTM_CNN")
# Text feature sets and the transcript column each is extracted from.
TEFE_FEATURE_SETS = {"features": "hypothesis", "features_reference": "reference"}
# Text backends fusion can read (tefe.backend): "neural" is the architecture select_tefe chose;
# the others are trained and extracted by their own rules (train_tefe_backend, extract_tefe_backend).
TEFE_BACKENDS = ("neural", "tfidf", "transformer")
TEFE_OTHER_BACKENDS = ("tfidf", "transformer")
# Backends that write their own token states (extract_tefe_backend_tokens) for the fusion heads;
# with any other tefe.backend the heads read the selected neural encoder's (extract_tefe_tokens).
TEFE_TOKEN_BACKENDS = ("transformer",)
# The backend every TEFE table shows as its reference row.
TEFE_REFERENCE_BACKEND = "tfidf"

# --- fusion ---
MODALITIES = ("acoustic", "text")
# Reference acoustic feature sets: the features of a fixed SEFE backend whatever sefe.backend is, each
# pooled by pool_features as a modality of its own and read by the variant of the same name
# (fusion.reference_variants): the field's baseline rows of Table 2.
REFERENCE_FEATURE_SETS = {"acoustic_egemaps": "egemaps"}
# The modalities pool_features pools: the two of the contract and the reference acoustic sets.
POOLED_MODALITIES = (*MODALITIES, *REFERENCE_FEATURE_SETS)


def modality_of(pooled: str) -> str:
    """The modality (MODALITIES) of what pool_features pools (POOLED_MODALITIES): a reference acoustic
    feature set's is acoustic (its pooling block, its pooled files' recorded modality)."""
    return "acoustic" if pooled in REFERENCE_FEATURE_SETS else pooled


# acoustic_aug: the acoustic features with augmented training copies (challenge.augmentation).
FEATURE_SETS = ("acoustic", "text", "early", "acoustic_aug", *REFERENCE_FEATURE_SETS)
# The pooled files (rules pool_features, pool_augmented_acoustic) each feature set's classifiers read.
FEATURE_SET_POOLED = {
    "acoustic": ("acoustic",),
    "text": ("text",),
    "early": MODALITIES,
    "acoustic_aug": ("acoustic_aug",),
    **{feature_set: (feature_set,) for feature_set in REFERENCE_FEATURE_SETS},
}
CLASSIFIERS = ("lr", "rf", "xgboost")
# Ensemble members in the order of the paper's weights w1, w2, w3.
ENSEMBLE_MEMBERS = ("xgboost", "rf", "lr")
# The feature sets each variant's classifiers are trained on: the only features it reads.
VARIANT_FEATURE_SETS = {
    "acoustic": ("acoustic",),
    "text": ("text",),
    "early": ("early",),
    "late": ("acoustic", "text"),
    "hybrid": ("early",),
    # Only when challenge.augmentation.enabled (fusion/rows.report_rows).
    "acoustic_aug": ("acoustic_aug",),
    # Only those named in fusion.reference_variants (fusion/rows.report_rows).
    **{feature_set: (feature_set,) for feature_set in REFERENCE_FEATURE_SETS},
}
# Variants evaluated from classifier outputs (rule evaluate_variant).
CLASSIFIER_VARIANTS = tuple(VARIANT_FEATURE_SETS)
# The variants that combine their classifiers with the tuned ensemble weights (rule tune_ensemble).
ENSEMBLE_VARIANTS = ("hybrid",)
# The fusion.variants keys each classifier variant reads (an ensemble variant: none), in this order.
VARIANT_CONFIG_KEYS = {
    **{variant: ("classifier", "selection_metric") for variant in CLASSIFIER_VARIANTS},
    "late": ("classifier", "selection_metric", "late_weights"),
    **{variant: () for variant in ENSEMBLE_VARIANTS},
}
# Neural fusion heads on sequence features, each trained by its own rule (fusion.heads.<head>);
# their ablations are variants named in fusion.heads.ablations (fusion/heads/variants.py).
HEADS = ("xattn", "graph")
# The graph head's nodes and the sequence feature set each reads (fusion.heads.graph.nodes).
GRAPH_NODE_SOURCES = {"speech": "acoustic", "text": "text", "prosody": "prosody", "spectral": "acoustic"}
# The majority vote over trained variants (fusion.vote; rule evaluate_vote).
VOTE_VARIANT = "vote"
# What a variant may be called (a row of Table 2; files are named after it).
VARIANT_NAME = re.compile(r"[a-z][a-z0-9_]*")
# Sequence feature sets: frame matrices (acoustic) and token matrices (text).
SEQUENCE_MODALITIES = ("acoustic", "text")
# Feature sets that read no transcripts: built once and shared by every ASR system (asr.systems).
# Every other feature set, and so every variant reading one, exists once per system.
ACOUSTIC_ONLY_FEATURE_SETS = ("acoustic", "acoustic_aug", *REFERENCE_FEATURE_SETS)
# The feature set the ensemble (and so the hybrid variant and predict) is built on.
ENSEMBLE_FEATURE_SET = "early"
HEADLINE_VARIANT = "hybrid"

# --- challenge (the VLSP 2025 challenge's practice; docs/challenge.md) ---
# "<variant>+rules": a variant's predictions, then the lexicon cue rules on the transcripts.
RULES_SUFFIX = "+rules"
# The Table 2 row of the emotion-driven augmentation ablation (acoustic only, augmented training data).
AUGMENTED_VARIANT = "acoustic_aug"
# Augmented copy k of utterance u is "u" + AUGMENTED_ID_MARK + "k".
AUGMENTED_ID_MARK = "~aug"


def is_augmented_copy(utt_id: str) -> bool:
    """Whether ``utt_id`` names an augmented copy of a training utterance."""
    return AUGMENTED_ID_MARK in utt_id


def rules_variant(variant: str) -> str:
    """The name of ``variant`` followed by the lexicon cue rules (a Table 2 row)."""
    if not VARIANT_NAME.fullmatch(variant):
        raise ValueError(f"lexicon rules apply to a variant ({VARIANT_NAME.pattern}), not {variant!r}")
    return variant + RULES_SUFFIX


def base_variant(name: str) -> str:
    """The variant behind a report row (``hybrid+rules`` -> ``hybrid``)."""
    base = name.removesuffix(RULES_SUFFIX)
    if not VARIANT_NAME.fullmatch(base):
        raise ValueError(f"{name!r} is neither a variant name ({VARIANT_NAME.pattern}) nor one + {RULES_SUFFIX!r}")
    return base


def feature_set_reads_transcripts(feature_set: str) -> bool:
    """Whether a feature set (names.FEATURE_SETS) or modality holds text features (one per ASR system);
    which report rows read transcripts: fusion/rows.py."""
    return feature_set not in ACOUSTIC_ONLY_FEATURE_SETS


@dataclass(frozen=True)
class SplitRoles:
    """What each split of the speech corpora is for.

    ``train`` fits every model; ``selection`` chooses checkpoints and stops training early;
    ``test`` splits are only ever evaluated, never read by tuning, selection or early stopping.
    """

    train: str
    selection: str
    test: tuple[str, ...]

    @property
    def fitting(self) -> tuple[str, str]:
        """The splits that fitting, tuning and selection may read."""
        return (self.train, self.selection)


def split_roles(task: Mapping[str, Any]) -> SplitRoles:
    """The roles of ``task.splits`` from the task block (``train_split``, ``selection_split``)."""
    splits: Sequence[str] = task["splits"]
    train, selection = task["train_split"], task["selection_split"]
    for key, name in (("train_split", train), ("selection_split", selection)):
        if name not in splits:
            raise ValueError(f"config task.{key}: {name!r} is not one of task.splits {list(splits)}")
    if train == selection:
        raise ValueError(f"config task.train_split and task.selection_split are both {train!r}")
    test = tuple(split for split in splits if split not in (train, selection))
    if not test:
        raise ValueError(
            f"config task.splits {list(splits)}: at least one test split is needed beside {train!r} and {selection!r}"
        )
    return SplitRoles(train, selection, test)
