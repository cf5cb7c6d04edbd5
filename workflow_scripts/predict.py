"""Predict the emotion of audio files with the trained artifacts of a finished run.

    python -m workflow_scripts.predict --run-dir results [--configfile config.yaml] \
        [--variant hybrid | xattn | graph | <an ablation of fusion.heads.ablations> | vote] \
        [--asr-system NAME] \
        --output predictions.csv  clip1.wav more_clips/ ...

For every file: the transcript, the predicted label and the class probabilities (CSV, or JSON
when the output ends in .json), and an ``error`` column: a file that cannot be read or
processed gets its reason there (label and probabilities empty), the other files are still
predicted, and the command exits with status 1 and a one-line summary. A run directory that
lacks an artifact is named with the artifact and the rule / target that builds it. Every artifact
loaded is checked first against the SHA-256 recorded when the workflow wrote it (common/checksums.py):
a changed, replaced or truncated file is refused, named. Model files are data (skops, XGBoost's
UBJSON, torch weights only: common/model_files.py); nothing in a run directory runs as code.

The pipeline is the workflow's: the ASR stage transcribes, the SEFE and TEFE stages turn
audio and transcript into per-utterance statistics, and the fusion part (the same pooling, the
three early-fusion models and the tuned ensemble weights of the run, i.e. the hybrid / DFAT
variant, fusion/ensemble.load_predictor) gives the probabilities.

Each encoder stage plugs in through a factory ``factory(config, run_dir, threads) -> function``
named ``module:function`` (defaults in :data:`STAGE_FACTORIES`, or ``--hook stage=module:function``):

* ``asr``: ``function(audio_paths) -> list[str]`` (transcripts);
* ``sefe``: ``function(audio_paths) -> {statistic: array (n, dim)}``;
* ``tefe``: ``function(transcripts) -> {statistic: array (n, dim)}``.

``--variant`` names a neural fusion head variant instead (``xattn``, ``graph`` or one of their
ablations; the run must have trained it, ``fusion.heads.variants``): the transcripts come from the
ASR stage as above, the head reads the SEFE backend's frame matrices and the selected TEFE
encoder's token states (as rules extract_sefe_frames / extract_tefe_tokens; an ``xattn`` with
``text_encoder: finetune`` takes the transcripts' token ids in the vocabulary saved with it), and
the ``graph`` head's prosody node the prosody tokens (F0 as extract_prosody_f0, quantized with the
run's training-split bins as extract_prosody_tokens): :data:`SEQUENCE_FACTORIES`. The head's module
loads its saved checkpoint (``<scope>/fusion/heads/<variant>/model.pt``) and predicts: the head's
registry entry (fusion/heads/registry.py) names its ``predictor`` and the sources it reads. Only
``--hook asr`` applies to a head. ``--variant vote``: each member of ``fusion.vote.members`` (the
hybrid or head variants) predicts as above, then their majority vote (``fusion/vote.majority_vote``)
gives the vote's probabilities.

``--asr-system NAME`` (a name of the run's ``asr.systems``; default ``asr.primary_system``) chooses
the ASR system: its model transcribes, and the models trained on its transcripts
(``results/systems/NAME/``) predict; acoustic-only models are shared (``results/shared/``): where
each lives is fusion/rows.py's answer, as for the rules.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workflow_scripts.common import paths
from workflow_scripts.common.audio import AudioError, check_audio
from workflow_scripts.common.checksums import ChecksumError, verify_checksum
from workflow_scripts.common.config_schema import ConfigError, load_config_file, merge_config
from workflow_scripts.common.files import atomic_path, read_json
from workflow_scripts.common.logs import setup_logging
from workflow_scripts.common.names import (
    ENSEMBLE_FEATURE_SET,
    ENSEMBLE_MEMBERS,
    FINETUNED,
    HEADLINE_VARIANT,
    ORACLE_BACKEND,
    VOTE_VARIANT,
    asr_systems,
    primary_system,
)
from workflow_scripts.common.registry import resolve
from workflow_scripts.config import validate_config
from workflow_scripts.fusion.heads.registry import HEADS
from workflow_scripts.fusion.heads.variants import HeadVariant, head_variants
from workflow_scripts.fusion.rows import feature_set_scope, row_scope

log = logging.getLogger(__name__)

# The stages' inference entry points, as "module:function" factories. The ASR, SEFE and TEFE
# stages provide these functions (the same code their rules run); see docs/fusion.md.
STAGE_FACTORIES = {
    "asr": "workflow_scripts.asr.transcribe:load_transcriber",
    "sefe": "workflow_scripts.sefe.extract:load_extractor",
    "tefe": "workflow_scripts.tefe.extract:load_featurizer",
}
# The sequence features a head reads, computed from new audio / transcripts as their rules compute
# them: acoustic (extract_sefe_frames), text (extract_tefe_tokens), prosody (extract_prosody_f0 +
# extract_prosody_tokens with the run's bins); factories as STAGE_FACTORIES'.
SEQUENCE_FACTORIES = {
    "acoustic": "workflow_scripts.sefe.frames:load_frame_extractor",
    "text": "workflow_scripts.tefe.tokens:load_token_encoder",
    "prosody": "workflow_scripts.sefe.prosody:load_token_extractor",
}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}

# The rule that writes each artifact predict reads (a template name of common.paths); a head's model
# (HEAD_MODEL) is written by its head's rule (fusion/heads/registry.py).
ARTIFACT_RULES = {
    "ENSEMBLE_WEIGHTS": "tune_ensemble",
    "CLASSIFIER_MODEL": "train_classifier",
    "CLASSIFIER_SUMMARY": "train_classifier",
    "TEFE_SELECTION": "select_tefe",
    "TEFE_MODEL": "train_tefe",
    "TEFE_MODEL_VOCAB": "train_tefe",
    "PROSODY_BINS": "fit_prosody_bins",
    "ASR_FINETUNED_MODEL": "finetune_whisper",
}


@dataclass(frozen=True)
class Artifact:
    """A file of the run predict reads: its template (a name in common.paths), the rule that builds it
    and the template's wildcards."""

    template: str
    rule: str
    wildcards: dict[str, str]

    @classmethod
    def of(cls, template: str, **wildcards: str) -> Artifact:
        """The artifact ``template``, built by the rule ARTIFACT_RULES names."""
        return cls(template, ARTIFACT_RULES[template], wildcards)

    def target(self) -> str:
        """The path the rule writes (the snakemake target, relative to the workflow directory)."""
        return getattr(paths, self.template).format(**self.wildcards)

    def in_run(self, run_dir: str | Path) -> Path:
        """Where it is in the run directory ``run_dir``."""
        return paths.in_run(getattr(paths, self.template), run_dir, **self.wildcards)


# The files of each ensemble member predict reads.
MEMBER_FILES = ("CLASSIFIER_MODEL", "CLASSIFIER_SUMMARY")


def ensemble_weights(system: str) -> Artifact:
    """The hybrid's tuned weights, of ASR system ``system``."""
    return Artifact.of("ENSEMBLE_WEIGHTS", scope=feature_set_scope(ENSEMBLE_FEATURE_SET, system))


def ensemble_member(template: str, classifier: str, system: str) -> Artifact:
    """A file (MEMBER_FILES) of the hybrid's member ``classifier``, of ASR system ``system``."""
    scope = feature_set_scope(ENSEMBLE_FEATURE_SET, system)
    return Artifact.of(template, scope=scope, feature_set=ENSEMBLE_FEATURE_SET, classifier=classifier)


def ensemble_artifacts(system: str) -> list[Artifact]:
    """The hybrid's weights and its members' models and summaries, of ASR system ``system``."""
    members = [ensemble_member(t, name, system) for name in ENSEMBLE_MEMBERS for t in MEMBER_FILES]
    return [ensemble_weights(system), *members]


def head_model(config: Mapping[str, Any], variant: str, system: str) -> Artifact:
    """The checkpoint of head variant ``variant`` (ASR system ``system``'s where it reads transcripts)."""
    head = head_variant(config, variant)
    scope = row_scope(variant, system, config["fusion"])
    return Artifact("HEAD_MODEL", HEADS[head.head].rule, {"scope": scope, "variant": variant})


def text_encoder_artifacts(run_dir: Path) -> list[Artifact]:
    """The selected TEFE encoder (its selection, then its model and vocabulary once the selection exists)."""
    selection = Artifact.of("TEFE_SELECTION")
    if not selection.in_run(run_dir).exists():
        return [selection]
    arch = read_json(selection.in_run(run_dir))["selected"]
    return [selection, Artifact.of("TEFE_MODEL", arch=arch), Artifact.of("TEFE_MODEL_VOCAB", arch=arch)]


def source_artifacts(source: str, run_dir: Path) -> list[Artifact]:
    """What computing sequence source ``source`` (SEQUENCE_FACTORIES) of new audio reads from the run."""
    if source == "text":
        return text_encoder_artifacts(run_dir)
    return [Artifact.of("PROSODY_BINS")] if source == "prosody" else []


@dataclass(frozen=True)
class StageFunctions:
    """The encoder stages' inference functions bound to one run."""

    transcribe: Callable[[Sequence[str]], list[str]]
    acoustic_features: Callable[[Sequence[str]], Mapping[str, np.ndarray]]
    text_features: Callable[[Sequence[str]], Mapping[str, np.ndarray]]


def resolve_factory(stage: str, spec: str) -> Callable[..., Any]:
    """Import ``module:function``, with a message naming the stage when it is not available."""
    module_name, _, function_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise SystemExit(
            f"predict: the {stage} stage's inference function {spec} is not available ({error}); "
            f"this checkout lacks the {stage} stage, or pass --hook {stage}=module:function"
        ) from error
    if not hasattr(module, function_name):
        raise SystemExit(f"predict: module {module_name} has no function {function_name!r} (--hook {stage}=...)")
    return getattr(module, function_name)


def head_variant(config: Mapping[str, Any], variant: str) -> HeadVariant:
    """The head variant (fusion/heads/variants.HeadVariant) named ``variant``."""
    heads = head_variants(config["fusion"]["heads"])
    if variant not in heads:
        raise SystemExit(
            f"predict: --variant {variant!r}; expected {HEADLINE_VARIANT} or a head variant of the config "
            f"{sorted(heads)}, or {VOTE_VARIANT}"
        )
    return heads[variant]


def vote_members(config: Mapping[str, Any]) -> list[str]:
    """The members of the run's vote (``fusion.vote.members``), each the hybrid or a head variant."""
    members = list(config["fusion"]["vote"]["members"])
    if len(members) < 2:
        raise SystemExit(f"predict: --variant {VOTE_VARIANT}: the config's fusion.vote.members {members} is no vote")
    heads = head_variants(config["fusion"]["heads"])
    others = [m for m in members if m != HEADLINE_VARIANT and m not in heads]
    if others:
        raise SystemExit(
            f"predict: --variant {VOTE_VARIANT}: members {others} are neither {HEADLINE_VARIANT} nor a head "
            "variant, the variants predict runs"
        )
    return members


def predicted_variants(config: Mapping[str, Any], variant: str) -> list[str]:
    """The variants predicting ``variant`` runs: the vote's members, else ``variant`` itself."""
    return vote_members(config) if variant == VOTE_VARIANT else [variant]


def variant_artifacts(
    config: Mapping[str, Any], run_dir: Path, factories: Mapping[str, str], variant: str, system: str
) -> list[Artifact]:
    """What predicting ``variant`` of ASR system ``system`` reads from the run, ASR aside."""
    wanted: list[Artifact] = []
    for member in predicted_variants(config, variant):
        if member == HEADLINE_VARIANT:
            found = ensemble_artifacts(system)
            # The pooled TEFE statistics (unless hooked) need the selected encoder.
            computed = {"text"} if factories["tefe"] == STAGE_FACTORIES["tefe"] else set()
        else:
            head = head_variant(config, member)
            found = [head_model(config, member, system)]
            computed = HEADS[head.head].predict_sources(head.block)
        for source in sorted(computed):
            found += source_artifacts(source, run_dir)
        wanted += [artifact for artifact in found if artifact not in wanted]
    return wanted


def run_artifacts(
    config: Mapping[str, Any],
    run_dir: str | Path,
    factories: Mapping[str, str],
    variant: str = HEADLINE_VARIANT,
    system: str | None = None,
) -> list[Artifact]:
    """Every artifact of ``run_dir`` that predict loads for ``variant`` (the models of ASR system ``system``,
    default the config's primary one)."""
    system = system or primary_system(config["asr"])
    wanted = variant_artifacts(config, Path(run_dir), factories, variant, system)
    asr_model = asr_systems(config["asr"])[system].get("model")  # an oracle system has none
    if factories["asr"] == STAGE_FACTORIES["asr"] and asr_model == FINETUNED:
        wanted.append(Artifact.of("ASR_FINETUNED_MODEL"))
    return wanted


def missing_artifacts(config: Mapping[str, Any], run_dir: str | Path, *which: Any) -> list[str]:
    """Each artifact of ``run_dir`` that predict needs and that is absent, with the rule / target that builds it
    (``which``: the factories, the variant and the ASR system, as run_artifacts takes them)."""
    return [
        f"{artifact.in_run(run_dir)} (built by rule {artifact.rule}: snakemake {artifact.target()})"
        for artifact in run_artifacts(config, run_dir, *which)
        if not artifact.in_run(run_dir).exists()
    ]


def check_run_dir(config: Mapping[str, Any], run_dir: str | Path, factories: Mapping[str, str], *which: Any) -> None:
    """Fail naming every missing artifact of ``run_dir`` and how to build it, then every artifact whose bytes
    differ from the SHA-256 recorded when the workflow wrote it (common/checksums.py: changed, replaced or
    truncated since; ``which``: the variant and the ASR system, as run_artifacts takes them)."""
    missing = missing_artifacts(config, run_dir, factories, *which)
    if missing:
        raise SystemExit(
            f"predict: the run directory {run_dir} lacks {len(missing)} artifact(s) predict needs; build them "
            "in the workflow directory that made the run, with the run's --configfile:\n  " + "\n  ".join(missing)
        )
    refused = []
    for artifact in run_artifacts(config, run_dir, factories, *which):
        try:
            verify_checksum(artifact.in_run(run_dir))
        except ChecksumError as error:
            refused.append(f"{error} (rule {artifact.rule} builds it: snakemake {artifact.target()})")
    if refused:
        raise SystemExit(
            f"predict: refusing the run directory {run_dir}: {len(refused)} artifact(s) fail their SHA-256 "
            "check:\n  " + "\n  ".join(refused)
        )


def _not_loaded(stage: str) -> Callable[..., Any]:
    def unused(*_: Any) -> Any:
        raise RuntimeError(f"predict: the {stage} stage was not loaded for this variant")

    return unused


def load_stage_functions(
    config: Mapping[str, Any],
    run_dir: Path,
    threads: int,
    factories: Mapping[str, str] = STAGE_FACTORIES,
    stages: Sequence[str] = ("asr", "sefe", "tefe"),
) -> StageFunctions:
    """Build the stage functions of a run from their factories (those not in ``stages`` fail if called)."""
    built = {stage: resolve_factory(stage, factories[stage])(config, run_dir, threads) for stage in stages}
    return StageFunctions(*(built.get(stage) or _not_loaded(stage) for stage in ("asr", "sefe", "tefe")))


class SequenceSources:
    """The sequence features of new audio for the heads (fusion/heads/prediction.SequenceInputs), from
    SEQUENCE_FACTORIES: each source loaded once, and a batch computed once for all the heads of a vote."""

    def __init__(self, config: Mapping[str, Any], run_dir: str | Path, threads: int) -> None:
        self.config, self.run_dir, self.threads = config, run_dir, threads
        self.functions: dict[str, Callable[[Sequence[str]], list[np.ndarray]]] = {}
        self.last: dict[str, tuple[tuple[str, ...], list[np.ndarray]]] = {}

    def load(self, source: str) -> None:
        """Build the function of ``source`` now (a run whose sequences were precomputed cannot be predicted)."""
        for modality, override in self.config["fusion"]["heads"]["sequences"].items():
            if override:
                raise SystemExit(
                    f"predict: the run's {modality} sequences were precomputed (fusion.heads.sequences.{modality}); "
                    "predict can compute only the SEFE backend's frames, the TEFE encoder's token states and "
                    "the prosody tokens"
                )
        if source not in self.functions:
            factory = resolve_factory(source, SEQUENCE_FACTORIES[source])
            self.functions[source] = factory(self.config, self.run_dir, self.threads)

    def __call__(self, source: str, inputs: Sequence[str]) -> list[np.ndarray]:
        """The ``source`` matrices of ``inputs`` (audio paths; transcripts for ``text``)."""
        key = tuple(inputs)
        if source not in self.last or self.last[source][0] != key:
            self.load(source)
            self.last[source] = (key, self.functions[source](inputs))
        return self.last[source][1]

    def vocabulary(self, source: str) -> int:
        """The number of tokens of token source ``source``: the run's prosody bins' (the only one)."""
        if source != "prosody":
            raise ValueError(f"predict: {source} sequences are no tokens with a vocabulary")
        return int(read_json(Artifact.of("PROSODY_BINS").in_run(self.run_dir))["vocabulary_size"])


class VotePredictor:
    """The run's majority vote: each member (the hybrid or a head variant) predicts, then the vote."""

    def __init__(self, members: Mapping[str, Any]) -> None:
        self.members = dict(members)
        classes = {name: list(member.classes) for name, member in self.members.items()}
        self.classes = next(iter(classes.values()))
        if any(c != self.classes for c in classes.values()):
            raise SystemExit(f"predict: the vote's members were trained on other classes: {classes}")

    def predict(self, audio: Sequence[str], transcripts: Sequence[str]) -> np.ndarray:
        """The vote's shares of the members' predictions (fusion/vote.majority_vote, as the rule)."""
        from workflow_scripts.fusion.vote import majority_vote

        _, shares, _ = majority_vote([m.predict(audio, transcripts) for m in self.members.values()])
        return shares


def load_ensemble(run_dir: str | Path, system: str, stages: StageFunctions) -> Any:
    """The hybrid of ASR system ``system`` (fusion/ensemble.load_predictor) over the stages' statistics."""
    from workflow_scripts.fusion.ensemble import load_predictor as load_ensemble_predictor

    models, summaries = (
        {name: ensemble_member(template, name, system).in_run(run_dir) for name in ENSEMBLE_MEMBERS}
        for template in MEMBER_FILES
    )
    statistics = {"acoustic": stages.acoustic_features, "text": stages.text_features}
    return load_ensemble_predictor(ensemble_weights(system).in_run(run_dir), models, summaries, statistics)


def load_head(
    config: Mapping[str, Any], run_dir: str | Path, variant: str, system: str, inputs: SequenceSources
) -> Any:
    """Head variant ``variant`` of ASR system ``system``, loaded by its head module (HEADS[head].predictor)
    over ``inputs``, whose sources it reads are built first."""
    head = head_variant(config, variant)
    spec = HEADS[head.head]
    for source in sorted(spec.predict_sources(head.block)):
        inputs.load(source)
    return resolve(spec.predictor)(head_model(config, variant, system).in_run(run_dir), inputs)


def load_predictor(
    config: Mapping[str, Any], run_dir: str | Path, variant: str, threads: int, factories: Mapping[str, str]
) -> tuple[Any, Callable[[Sequence[str]], list[str]]]:
    """The predictor of ``variant`` (``classes``, ``predict(audio, transcripts)``) and the transcriber; the
    models of the primary ASR system (--asr-system sets it). A head needs only the ASR stage."""
    system = primary_system(config["asr"])
    members = predicted_variants(config, variant)
    stages = ("asr", "sefe", "tefe") if HEADLINE_VARIANT in members else ("asr",)
    functions = load_stage_functions(config, Path(run_dir), threads, factories, stages=stages)
    inputs = SequenceSources(config, run_dir, threads)
    predictors = {
        member: load_ensemble(run_dir, system, functions)
        if member == HEADLINE_VARIANT
        else load_head(config, run_dir, member, system, inputs)
        for member in members
    }
    predictor = VotePredictor(predictors) if variant == VOTE_VARIANT else predictors[variant]
    return predictor, functions.transcribe


def collect_audio(inputs: Sequence[str]) -> list[Path]:
    """Audio files named directly, plus those under named directories (recursively, sorted)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            if not found:
                raise SystemExit(f"predict: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) under {path}")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise SystemExit(f"predict: {path} is neither an audio file nor a directory")
    return files


def one_line(error: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _predict_batch(
    batch: Sequence[str], transcribe: Callable[[Sequence[str]], list[str]], predictor: Any
) -> list[tuple[str, np.ndarray]]:
    transcripts = transcribe(batch)
    return list(zip(transcripts, predictor.predict(batch, transcripts), strict=True))


def predict_files(
    paths: Sequence[Path],
    transcribe: Callable[[Sequence[str]], list[str]],
    predictor: Any,
    batch_size: int = 16,
    min_duration_s: float = 0.0,
) -> pd.DataFrame:
    """Transcript, label and class probabilities of every file, in batches, and an ``error`` column.

    Each file is checked first (readable, not empty, at least ``min_duration_s`` long (the run's emotion
    corpus's ``min_duration_s``), finite samples, not cut short); a batch
    that fails is redone file by file, so one bad file costs only its own row: its reason goes
    to ``error`` and its label and probabilities stay empty.
    """
    rows: dict[str, dict[str, Any]] = {}

    def failed(path: str, reason: str) -> None:
        log.warning("%s: %s", path, reason)
        rows[path] = {"path": path, "transcript": "", "label": "", "error": reason}

    def done(path: str, transcript: str, probabilities: np.ndarray) -> None:
        rows[path] = {
            "path": path,
            "transcript": transcript,
            "label": predictor.classes[int(probabilities.argmax())],
            **{f"p_{name}": float(value) for name, value in zip(predictor.classes, probabilities)},
            "error": "",
        }

    readable = []
    for path in map(str, paths):
        try:
            check_audio(path, silence_peak=0.0, min_duration_s=min_duration_s)
            readable.append(path)
        except AudioError as error:
            failed(path, str(error))
    for start in range(0, len(readable), batch_size):
        batch = readable[start : start + batch_size]
        try:
            for path, (transcript, probabilities) in zip(batch, _predict_batch(batch, transcribe, predictor)):
                done(path, transcript, probabilities)
        except Exception:  # redo one by one: the failing file is named, the others predicted
            for path in batch:
                try:
                    ((transcript, probabilities),) = _predict_batch([path], transcribe, predictor)
                    done(path, transcript, probabilities)
                except Exception as error:
                    failed(path, one_line(error))
        log.info("%d / %d files", min(start + batch_size, len(readable)), len(readable))
    columns = ["path", "transcript", "label", *(f"p_{c}" for c in predictor.classes), "error"]
    return pd.DataFrame([rows[str(p)] for p in paths], columns=columns)


def write_predictions(frame: pd.DataFrame, output: str | Path) -> None:
    """CSV, or JSON (a list of records) when ``output`` ends in .json."""
    with atomic_path(output) as tmp:
        if str(output).lower().endswith(".json"):
            records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")  # NaN -> null
            tmp.write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        else:
            frame.to_csv(tmp, index=False)


def main(argv: list[str] | None = None) -> None:
    """Command line: audio files or directories -> predictions CSV / JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="audio files and / or directories of audio files")
    parser.add_argument("--run-dir", default="results", help="results directory of the finished run")
    parser.add_argument(
        "--configfile",
        nargs="+",
        default=["config.yaml"],
        help="the run's config file(s), later ones overriding earlier ones as in snakemake",
    )
    parser.add_argument("--output", required=True, help="predictions file (.csv or .json)")
    parser.add_argument(
        "--variant",
        default=HEADLINE_VARIANT,
        help=f"{HEADLINE_VARIANT} (DFAT, the default), a neural head variant the run trained (xattn, graph, "
        f"their ablations) or {VOTE_VARIANT} (the run's majority vote)",
    )
    parser.add_argument(
        "--asr-system",
        metavar="NAME",
        help="the ASR system (a name of the run's asr.systems) whose model transcribes and whose fusion "
        "models predict; default: asr.primary_system",
    )
    parser.add_argument(
        "--hook",
        action="append",
        default=[],
        metavar="STAGE=MODULE:FUNCTION",
        help="use another factory for stage asr, sefe or tefe",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    setup_logging()
    factories = dict(STAGE_FACTORIES)
    for hook in args.hook:
        stage, _, spec = hook.partition("=")
        if stage not in factories or ":" not in spec:
            raise SystemExit(f"--hook {hook!r}: expected STAGE=MODULE:FUNCTION with STAGE one of {sorted(factories)}")
        factories[stage] = spec
    config: dict[str, Any] = {}
    try:
        for path in args.configfile:
            config = merge_config(config, load_config_file(path))
        # The workflow's own validation, which also fills in the defaults the stages rely on.
        validate_config(config, Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml")
    except ConfigError as error:
        raise SystemExit(f"predict: {error}") from None
    if args.asr_system:
        systems = [entry["name"] for entry in config["asr"]["systems"]]
        if args.asr_system not in systems:
            raise SystemExit(f"predict: --asr-system {args.asr_system!r} is not one of the run's asr.systems {systems}")
        config["asr"]["primary_system"] = args.asr_system  # the ASR stage's factory transcribes with it
    system = primary_system(config["asr"])
    oracle = asr_systems(config["asr"])[system]["backend"] == ORACLE_BACKEND
    if oracle and factories["asr"] == STAGE_FACTORIES["asr"]:  # (an --hook asr=... transcribes for it)
        raise SystemExit(
            f"predict: ASR system {system!r} is the oracle (the corpus's reference transcripts); new audio needs a "
            "system with a model: --asr-system NAME"
        )
    files = collect_audio(args.inputs)
    check_run_dir(config, args.run_dir, factories, args.variant, system)
    predictor, transcribe = load_predictor(config, args.run_dir, args.variant, args.threads, factories)
    shortest = float(config["corpora"][config["ser_corpus"]]["min_duration_s"])
    frame = predict_files(files, transcribe, predictor, args.batch_size, shortest)
    write_predictions(frame, args.output)
    bad = int((frame["error"] != "").sum())
    log.info(
        "%d files -> %s: %s", len(frame), args.output, frame.loc[frame["error"] == "", "label"].value_counts().to_dict()
    )
    if bad:
        raise SystemExit(
            f"predict: {bad} of {len(frame)} file(s) failed, {len(frame) - bad} predicted; "
            f"the reasons are in the error column of {args.output}"
        )


if __name__ == "__main__":
    main()
