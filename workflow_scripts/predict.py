"""Predict the emotion of audio files with the trained artifacts of a finished run.

    python -m workflow_scripts.predict --run-dir results [--configfile config.yaml] \
        [--variant hybrid | xattn | graph | <an ablation of fusion.heads.ablations> | vote] \
        [--asr-system NAME] \
        --output predictions.csv  clip1.wav more_clips/ ...

For every file: the transcript, the predicted label and the class probabilities (CSV, or JSON
when the output ends in .json), and an ``error`` column: a file that cannot be read or
processed gets its reason there (label and probabilities empty), the other files are still
predicted, and the command exits with status 1 and a one-line summary. A run directory that
lacks an artifact is named with the artifact and the rule / target that builds it.

The pipeline is the workflow's: the ASR stage transcribes, the SEFE and TEFE stages turn
audio and transcript into per-utterance statistics, and the fusion part (the same pooling, the
three early-fusion models and the tuned ensemble weights of the run, i.e. the hybrid / DFAT
variant) gives the probabilities.

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
run's training-split bins as extract_prosody_tokens); the head's saved checkpoint
(``fusion/heads/<variant>/model.pt``) gives the probabilities. Only ``--hook asr`` applies to a
head. ``--variant vote``: each member of ``fusion.vote.members`` (the hybrid or head variants)
predicts as above, then their majority vote (``fusion/vote.majority_vote``) gives the vote's
probabilities.

``--asr-system NAME`` (a name of the run's ``asr.systems``; default ``asr.primary_system``) chooses
the ASR system: its model transcribes, and the models trained on its transcripts
(``results/systems/NAME/``) predict; acoustic-only models are shared.
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
from workflow_scripts.common.config_schema import ConfigError, load_config_file, merge_config, validate_config
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
    feature_set_reads_transcripts,
    primary_system,
)
from workflow_scripts.fusion.pooling import concat_statistics

log = logging.getLogger(__name__)

# The stages' inference entry points, as "module:function" factories. The ASR, SEFE and TEFE
# stages provide these functions (the same code their rules run); see docs/fusion.md.
STAGE_FACTORIES = {
    "asr": "workflow_scripts.asr.transcribe:load_transcriber",
    "sefe": "workflow_scripts.sefe.extract:load_extractor",
    "tefe": "workflow_scripts.tefe.extract:load_featurizer",
}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}
# The heads predict runs (their rule: train_<head>).
PREDICTED_HEADS = ("xattn", "graph")

# What predict reads from a run directory, by stage: (template in common.paths, the rule that
# builds it, wildcards). A stage replaced by --hook needs none of its own. An artifact with a
# "system" wildcard is the chosen ASR system's (its copy under results/systems/<system>/).
_CLASSIFIER_RULE = "train_classifier" + ("_per_system" if feature_set_reads_transcripts(ENSEMBLE_FEATURE_SET) else "")
RUN_ARTIFACTS: dict[str, list[tuple[str, str, dict[str, str]]]] = {
    "fusion": [("ENSEMBLE_WEIGHTS", "tune_ensemble", {"system": ""})]
    + [
        (template, _CLASSIFIER_RULE, {"system": "", "feature_set": ENSEMBLE_FEATURE_SET, "classifier": name})
        for name in ENSEMBLE_MEMBERS
        for template in ("CLASSIFIER_MODEL", "CLASSIFIER_SUMMARY")
    ],
    "tefe": [("TEFE_SELECTION", "select_tefe", {})],
    # + TEFE_MODEL / TEFE_MODEL_VOCAB of the selected architecture (train_tefe), see missing_artifacts
    "asr": [("ASR_FINETUNED_MODEL", "finetune_whisper", {})],  # when the ASR system's model is finetuned
}


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


def _template(name: str, wildcards: Mapping[str, str]) -> str:
    """The template ``paths.<name>``; with a ``system`` wildcard, the system's copy (shared when its
    feature set reads no transcripts)."""
    template = getattr(paths, name)
    if "system" not in wildcards or "{system}" in template:
        return template
    return paths.for_system(template, feature_set_reads_transcripts(wildcards.get("feature_set", "text")), "{system}")


def _artifact_line(template: str, rule: str, wildcards: Mapping[str, str], run_dir: Path) -> str:
    target = _template(template, wildcards).format(**wildcards)
    where = paths.in_run(_template(template, wildcards), run_dir, **wildcards)
    return f"{where} (built by rule {rule}: snakemake {target})"


def head_reads_text(head: Any) -> bool:
    """Whether a head variant reads the transcripts (so its model is per ASR system): xattn always, graph
    with its text node."""
    return "text" in head.block["nodes"] if head.head == "graph" else True


def head_variant(config: Mapping[str, Any], variant: str) -> Any:
    """The head variant (fusion/heads/variants.HeadVariant) named ``variant``, or None for the hybrid
    and the vote."""
    from workflow_scripts.fusion.heads.variants import head_variants

    if variant in (HEADLINE_VARIANT, VOTE_VARIANT):
        return None
    heads = head_variants(config.get("fusion", {}).get("heads", {}))
    if variant not in heads:
        raise SystemExit(
            f"predict: --variant {variant!r}; expected {HEADLINE_VARIANT} or a head variant of the config "
            f"{sorted(heads)}, or {VOTE_VARIANT}"
        )
    if heads[variant].head not in PREDICTED_HEADS:
        raise SystemExit(f"predict: --variant {variant!r}: predict does not run the {heads[variant].head} head yet")
    return heads[variant]


def vote_members(config: Mapping[str, Any]) -> list[str]:
    """The members of the run's vote (``fusion.vote.members``), each the hybrid or a head variant."""
    members = list(config.get("fusion", {}).get("vote", {}).get("members") or [])
    if len(members) < 2:
        raise SystemExit(f"predict: --variant {VOTE_VARIANT}: the config's fusion.vote.members {members} is no vote")
    from workflow_scripts.fusion.heads.variants import head_variants

    heads = head_variants(config["fusion"]["heads"])
    others = [m for m in members if m != HEADLINE_VARIANT and m not in heads]
    if others:
        raise SystemExit(
            f"predict: --variant {VOTE_VARIANT}: members {others} are neither {HEADLINE_VARIANT} nor a head "
            "variant, the variants predict runs"
        )
    return members


def reads_token_states(head: Any) -> bool:
    """Whether a head variant reads the TEFE encoder's token states (xattn frozen, graph's text node)."""
    if head.head == "graph":
        return "text" in head.block["nodes"]
    return head.block["text_encoder"] == "frozen"


def variant_artifacts(
    config: Mapping[str, Any], run_dir: Path, factories: Mapping[str, str], variant: str, system: str
) -> list[tuple[str, str, dict[str, str]]]:
    """What predicting ``variant`` of ASR system ``system`` reads from the run (template, rule, wildcards),
    ASR aside."""
    if variant == VOTE_VARIANT:
        wanted: list[tuple[str, str, dict[str, str]]] = []
        for member in vote_members(config):
            wanted += [a for a in variant_artifacts(config, run_dir, factories, member, system) if a not in wanted]
        return wanted
    head = head_variant(config, variant)
    if head is None:
        wanted = [(t, rule, {**w, "system": system}) for t, rule, w in RUN_ARTIFACTS["fusion"]]
        tefe = factories.get("tefe") == STAGE_FACTORIES["tefe"]
    else:
        # A head that reads transcripts: the system's model (rule train_<head>, graph's per-system twin).
        text = head_reads_text(head)
        rule = f"train_{head.head}" + ("_per_system" if text and head.head == "graph" else "")
        wildcards = {"variant": variant, **({"system": system} if text else {})}
        wanted, tefe = [("HEAD_MODEL", rule, wildcards)], reads_token_states(head)
        if head.head == "graph" and "prosody" in head.block["nodes"]:
            wanted.append(("PROSODY_BINS", "fit_prosody_bins", {}))
    # The pooled TEFE features (hybrid, unless hooked), or a head's token states, need the encoder.
    if tefe:
        wanted += RUN_ARTIFACTS["tefe"]
        selection = paths.in_run(paths.TEFE_SELECTION, run_dir)
        if selection.exists():
            arch = read_json(selection)["selected"]
            wanted += [(t, "train_tefe", {"arch": arch}) for t in ("TEFE_MODEL", "TEFE_MODEL_VOCAB")]
    return wanted


def missing_artifacts(
    config: Mapping[str, Any],
    run_dir: str | Path,
    factories: Mapping[str, str],
    variant: str = HEADLINE_VARIANT,
    system: str | None = None,
) -> list[str]:
    """Each artifact of ``run_dir`` that predict needs and that is absent, with the rule / target that builds it
    (the models of ASR system ``system``, default the config's primary one)."""
    run_dir = Path(run_dir)
    asr = config.get("asr") or {}
    system = system or primary_system(asr)
    wanted = variant_artifacts(config, run_dir, factories, variant, system)
    asr_model = asr_systems(asr).get(system, {}).get("model")
    if factories.get("asr") == STAGE_FACTORIES["asr"] and asr_model == FINETUNED:
        wanted += RUN_ARTIFACTS["asr"]
    return [
        _artifact_line(template, rule, wildcards, run_dir)
        for template, rule, wildcards in wanted
        if not paths.in_run(_template(template, wildcards), run_dir, **wildcards).exists()
    ]


def check_run_dir(config: Mapping[str, Any], run_dir: str | Path, factories: Mapping[str, str], *which: Any) -> None:
    """Fail naming every missing artifact of ``run_dir`` and how to build it (``which``: the variant and the
    ASR system, as missing_artifacts takes them)."""
    missing = missing_artifacts(config, run_dir, factories, *which)
    if missing:
        raise SystemExit(
            f"predict: the run directory {run_dir} lacks {len(missing)} artifact(s) predict needs; build them "
            "in the workflow directory that made the run, with the run's --configfile:\n  " + "\n  ".join(missing)
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


class FusionPredictor:
    """The hybrid (DFAT) predictor of a finished run: pooling, early-fusion models, ensemble weights."""

    def __init__(
        self,
        models: Mapping[str, Any],
        weights: Mapping[str, float],
        features: Sequence[Mapping[str, Any]],
        classes: Sequence[str],
    ) -> None:
        self.models = dict(models)
        self.weights = dict(weights)
        self.features = list(features)
        self.classes = list(classes)

    @classmethod
    def from_run(cls, run_dir: str | Path, system: str | None = None) -> FusionPredictor:
        """Load the ensemble's models and summaries (``<run_dir>/systems/<system>/fusion/early/<classifier>/``)
        and weights (``<run_dir>/systems/<system>/ensemble/weights.json``) of an ASR system (default: the
        schema's default system): the results layout of common.paths."""
        import joblib

        system = system or FINETUNED
        check_run_dir({}, run_dir, {}, HEADLINE_VARIANT, system)
        weights = read_json(paths.in_run(_template("ENSEMBLE_WEIGHTS", {"system": system}), run_dir, system=system))
        weights = weights["weights"]
        models, summaries = {}, {}
        for name in ENSEMBLE_MEMBERS:
            run = {"system": system, "feature_set": ENSEMBLE_FEATURE_SET, "classifier": name}
            summaries[name] = read_json(paths.in_run(_template("CLASSIFIER_SUMMARY", run), run_dir, **run))
            models[name] = joblib.load(paths.in_run(_template("CLASSIFIER_MODEL", run), run_dir, **run))
        first = summaries[ENSEMBLE_MEMBERS[0]]
        for name, summary in summaries.items():
            if summary["features"] != first["features"] or summary["classes"] != first["classes"]:
                raise SystemExit(
                    f"predict: the {name} model of {run_dir} was trained on other features or classes "
                    "than the others (an unfinished or mixed run?)"
                )
        return cls(models, weights, first["features"], first["classes"])

    def pooled(self, modality_stats: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
        """The early-fusion vector of each utterance, exactly as the pool_features rule builds it."""
        blocks = []
        for spec in self.features:
            where = f"{spec['modality']} features"
            block = concat_statistics(modality_stats[spec["modality"]], spec["statistics"], where)
            if block.shape[1] != spec["dim"]:
                raise ValueError(
                    f"{where}: width {block.shape[1]} ({'+'.join(spec['statistics'])}), but the run's "
                    f"models were trained on {spec['dim']} (encoder {spec['model']})"
                )
            blocks.append(block)
        return np.concatenate(blocks, axis=1)

    def predict_proba(self, modality_stats: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
        """Ensemble class probabilities, one row per utterance (columns in ``self.classes`` order)."""
        from workflow_scripts.fusion.classifiers import predict_proba
        from workflow_scripts.fusion.ensemble import combine

        X = self.pooled(modality_stats)
        members = {name: predict_proba(model, X, len(self.classes)) for name, model in self.models.items()}
        return combine(members, self.weights)

    def predict(self, audio: Sequence[str], transcripts: Sequence[str], stages: StageFunctions) -> np.ndarray:
        """Probabilities of audio files and their transcripts through the stages' pooled features."""
        stats = {"acoustic": stages.acoustic_features(audio), "text": stages.text_features(transcripts)}
        return self.predict_proba(stats)


class SequenceSources:
    """The sequence features a run's heads read, computed from new audio / transcripts as their
    rules compute them: ``acoustic`` (extract_sefe_frames), ``text`` (extract_tefe_tokens) and
    ``prosody`` (extract_prosody_f0 + extract_prosody_tokens with the run's bins). Each stage is
    loaded once, and a batch computed once for all the heads of a vote."""

    LOADERS = {
        "acoustic": "workflow_scripts.sefe.frames:load_frame_extractor",
        "text": "workflow_scripts.tefe.tokens:load_token_encoder",
        "prosody": "workflow_scripts.sefe.prosody:load_token_extractor",
    }

    def __init__(self, config: Mapping[str, Any], run_dir: str | Path, threads: int) -> None:
        for modality, override in config["fusion"]["heads"]["sequences"].items():
            if override:
                raise SystemExit(
                    f"predict: the run's {modality} sequences were precomputed (fusion.heads.sequences.{modality}); "
                    "predict can compute only the SEFE backend's frames, the TEFE encoder's token states and "
                    "the prosody tokens"
                )
        self.config, self.run_dir, self.threads = config, run_dir, threads
        self.functions: dict[str, Callable[[Sequence[str]], list[np.ndarray]]] = {}
        self.last: dict[str, tuple[tuple[str, ...], list[np.ndarray]]] = {}

    def load(self, source: str) -> None:
        if source not in self.functions:
            factory = resolve_factory(source, self.LOADERS[source])
            self.functions[source] = factory(self.config, self.run_dir, self.threads)

    def __call__(self, source: str, inputs: Sequence[str]) -> list[np.ndarray]:
        """The ``source`` matrices of ``inputs`` (audio paths; transcripts for ``text``)."""
        key = tuple(inputs)
        if source not in self.last or self.last[source][0] != key:
            self.load(source)
            self.last[source] = (key, self.functions[source](inputs))
        return self.last[source][1]


def check_widths(matrices: Mapping[str, Sequence[np.ndarray]], dims: Mapping[str, int], what: str) -> None:
    """Sequence matrices as wide as the head was trained on, else an error naming the modality."""
    for modality, items in matrices.items():
        widths = {int(m.shape[1]) for m in items} - {int(dims[modality])}
        if widths:
            raise ValueError(
                f"{modality} sequences of width {sorted(widths)}, but the {what} was trained on width "
                f"{dims[modality]} (another sefe / tefe configuration than the run's?)"
            )


class HeadPredictor:
    """The ``xattn`` head of a finished run (or an ablation): its saved checkpoint over the frame
    matrices of the SEFE backend and the token states (or ids) of the transcripts."""

    def __init__(self, model: Any, classes: Sequence[str], sources: SequenceSources, vocab: Any = None) -> None:
        self.model, self.classes, self.sources, self.vocab = model, list(classes), sources, vocab
        self.dims = {"acoustic": int(model.audio_mean.shape[0]), "text": int(model.text_proj.in_features)}

    @classmethod
    def from_run(
        cls, run_dir: str | Path, variant: str, sources: SequenceSources, system: str | None = None
    ) -> HeadPredictor:
        from workflow_scripts.fusion.heads.xattn import load_head

        where = {"variant": variant, **({"system": system} if system else {})}
        model, header, vocab = load_head(paths.in_run(_template("HEAD_MODEL", where), run_dir, **where))
        sources.load("acoustic")
        if vocab is None:
            sources.load("text")
        return cls(model, header["classes"], sources, vocab)

    def predict(self, audio: Sequence[str], transcripts: Sequence[str], stages: StageFunctions) -> np.ndarray:
        from workflow_scripts.fusion.heads.xattn import predict_sequences

        frames = self.sources("acoustic", audio)
        text = list(transcripts) if self.vocab is not None else self.sources("text", transcripts)
        check_widths({"acoustic": frames, **({} if self.vocab is not None else {"text": text})}, self.dims, "head")
        return predict_sequences(self.model, frames, text, self.vocab)


class GraphPredictor:
    """The ``graph`` head of a finished run (or an ablation): its saved checkpoint over the node
    inputs (SEFE frames, TEFE token states, prosody tokens: those its nodes read)."""

    def __init__(self, model: Any, header: Mapping[str, Any], sources: SequenceSources) -> None:
        from workflow_scripts.fusion.heads.graph import sources as node_sources

        self.model, self.classes, self.sources = model, list(header["classes"]), sources
        self.reads = node_sources(model.nodes)
        dims = header["dims"]
        self.dims = {"text": dims.get("text"), "acoustic": dims["speech"] if "speech" in dims else None}
        if self.dims["acoustic"] is None and "spectral" in dims:
            self.dims["acoustic"] = dims["spectral"] // 3  # std, max, min per frame dimension
        self.vocabulary = dims.get("prosody")

    @classmethod
    def from_run(
        cls, run_dir: str | Path, variant: str, sources: SequenceSources, system: str | None = None
    ) -> GraphPredictor:
        from workflow_scripts.fusion.heads.graph import load_head

        where = {"variant": variant, **({"system": system} if system else {})}
        model, header = load_head(paths.in_run(_template("HEAD_MODEL", where), run_dir, **where))
        predictor = cls(model, header, sources)
        for source in predictor.reads:
            sources.load(source)
        if predictor.vocabulary is not None:
            bins = read_json(paths.in_run(paths.PROSODY_BINS, run_dir))
            if int(bins["vocabulary_size"]) != int(predictor.vocabulary):
                raise SystemExit(
                    f"predict: {paths.in_run(paths.PROSODY_BINS, run_dir)} has {bins['vocabulary_size']} prosody "
                    f"tokens, but the {variant} head was trained on {predictor.vocabulary} (a mixed run?)"
                )
        return predictor

    def predict(self, audio: Sequence[str], transcripts: Sequence[str], stages: StageFunctions) -> np.ndarray:
        from workflow_scripts.fusion.heads.graph import predict_nodes

        matrices = {s: self.sources(s, transcripts if s == "text" else audio) for s in self.reads}
        check_widths({s: m for s, m in matrices.items() if s != "prosody"}, self.dims, "graph head")
        return predict_nodes(self.model, matrices)


class VotePredictor:
    """The run's majority vote: each member (the hybrid or a head variant) predicts, then the vote."""

    def __init__(self, members: Mapping[str, Any]) -> None:
        self.members = dict(members)
        classes = {name: list(member.classes) for name, member in self.members.items()}
        self.classes = next(iter(classes.values()))
        if any(c != self.classes for c in classes.values()):
            raise SystemExit(f"predict: the vote's members were trained on other classes: {classes}")

    def predict(self, audio: Sequence[str], transcripts: Sequence[str], stages: StageFunctions) -> np.ndarray:
        from workflow_scripts.fusion.vote import majority_vote

        _, shares, _ = majority_vote([m.predict(audio, transcripts, stages) for m in self.members.values()])
        return shares


Predictor = FusionPredictor | HeadPredictor | GraphPredictor | VotePredictor


def load_predictor(
    config: Mapping[str, Any], run_dir: str | Path, variant: str, threads: int, factories: Mapping[str, str]
) -> tuple[Predictor, StageFunctions]:
    """The predictor of ``variant`` and the stage functions it uses (a head needs only the ASR stage); the
    models of the primary ASR system (--asr-system sets it)."""
    system = primary_system(config["asr"])
    members = vote_members(config) if variant == VOTE_VARIANT else [variant]
    sources = None if members == [HEADLINE_VARIANT] else SequenceSources(config, run_dir, threads)
    predictors: dict[str, Predictor] = {}
    for member in members:
        head = head_variant(config, member)
        if head is None:
            predictors[member] = FusionPredictor.from_run(run_dir, system)
        elif head.head == "graph":
            predictors[member] = GraphPredictor.from_run(
                run_dir, member, sources, system if head_reads_text(head) else None
            )
        else:
            predictors[member] = HeadPredictor.from_run(run_dir, member, sources, system)
    stages = ("asr", "sefe", "tefe") if HEADLINE_VARIANT in members else ("asr",)
    functions = load_stage_functions(config, Path(run_dir), threads, factories, stages=stages)
    return (predictors[variant] if variant != VOTE_VARIANT else VotePredictor(predictors)), functions


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


def _predict_batch(batch: Sequence[str], stages: StageFunctions, predictor: Predictor) -> list[tuple[str, np.ndarray]]:
    transcripts = stages.transcribe(batch)
    return list(zip(transcripts, predictor.predict(batch, transcripts, stages), strict=True))


def predict_files(
    paths: Sequence[Path], stages: StageFunctions, predictor: Predictor, batch_size: int = 16
) -> pd.DataFrame:
    """Transcript, label and class probabilities of every file, in batches, and an ``error`` column.

    Each file is checked first (readable, not empty, finite samples, not cut short); a batch
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
            check_audio(path, silence_peak=0.0)
            readable.append(path)
        except AudioError as error:
            failed(path, str(error))
    for start in range(0, len(readable), batch_size):
        batch = readable[start : start + batch_size]
        try:
            for path, (transcript, probabilities) in zip(batch, _predict_batch(batch, stages, predictor)):
                done(path, transcript, probabilities)
        except Exception:  # redo one by one: the failing file is named, the others predicted
            for path in batch:
                try:
                    ((transcript, probabilities),) = _predict_batch([path], stages, predictor)
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
    predictor, stages = load_predictor(config, args.run_dir, args.variant, args.threads, factories)
    frame = predict_files(files, stages, predictor, args.batch_size)
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
