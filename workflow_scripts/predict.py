"""Predict the emotion of audio files with the trained artifacts of a finished run.

    python -m workflow_scripts.predict --run-dir results [--configfile config.yaml] \
        [--variant hybrid | xattn | <an ablation of fusion.heads.ablations>] \
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

``--variant`` names a neural fusion head variant instead (``xattn`` or one of its ablations; the
run must have trained it, ``fusion.heads.variants``): the transcripts come from the ASR stage as
above, the head reads the SEFE backend's frame matrices and, with ``text_encoder: frozen``, the
selected TEFE encoder's token states (as rules extract_sefe_frames / extract_tefe_tokens), or with
``finetune`` the transcripts' token ids in the vocabulary saved with the head; the head's saved
checkpoint (``fusion/heads/<variant>/model.pt``) gives the probabilities. Only ``--hook asr``
applies to a head.
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
from workflow_scripts.common.names import ENSEMBLE_FEATURE_SET, ENSEMBLE_MEMBERS, FINETUNED, HEADLINE_VARIANT
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

# What predict reads from a run directory, by stage: (template in common.paths, the rule that
# builds it, wildcards). A stage replaced by --hook needs none of its own.
RUN_ARTIFACTS: dict[str, list[tuple[str, str, dict[str, str]]]] = {
    "fusion": [("ENSEMBLE_WEIGHTS", "tune_ensemble", {})]
    + [
        (template, "train_classifier", {"feature_set": ENSEMBLE_FEATURE_SET, "classifier": name})
        for name in ENSEMBLE_MEMBERS
        for template in ("CLASSIFIER_MODEL", "CLASSIFIER_SUMMARY")
    ],
    "tefe": [("TEFE_SELECTION", "select_tefe", {})],
    # + TEFE_MODEL / TEFE_MODEL_VOCAB of the selected architecture (train_tefe), see missing_artifacts
    "asr": [("ASR_FINETUNED_MODEL", "finetune_whisper", {})],  # when asr.transcribe.model is finetuned
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


def _artifact_line(template: str, rule: str, wildcards: Mapping[str, str], run_dir: Path) -> str:
    target = getattr(paths, template).format(**wildcards)
    return f"{paths.in_run(getattr(paths, template), run_dir, **wildcards)} (built by rule {rule}: snakemake {target})"


def head_variant(config: Mapping[str, Any], variant: str) -> Any:
    """The head variant (fusion/heads/variants.HeadVariant) named ``variant``, or None for the hybrid."""
    from workflow_scripts.fusion.heads.variants import head_variants

    if variant == HEADLINE_VARIANT:
        return None
    heads = head_variants(config.get("fusion", {}).get("heads", {}))
    if variant not in heads:
        raise SystemExit(
            f"predict: --variant {variant!r}; expected {HEADLINE_VARIANT} or a head variant of the config "
            f"{sorted(heads)}"
        )
    if heads[variant].head != "xattn":
        raise SystemExit(f"predict: --variant {variant!r}: predict does not run the {heads[variant].head} head yet")
    return heads[variant]


def missing_artifacts(
    config: Mapping[str, Any], run_dir: str | Path, factories: Mapping[str, str], variant: str = HEADLINE_VARIANT
) -> list[str]:
    """Each artifact of ``run_dir`` that predict needs and that is absent, with the rule / target that builds it."""
    run_dir = Path(run_dir)
    head = head_variant(config, variant)
    wanted = list(RUN_ARTIFACTS["fusion"]) if head is None else [("HEAD_MODEL", "train_xattn", {"variant": variant})]
    # The pooled TEFE features (hybrid, unless hooked), or a frozen head's token states, need the encoder.
    if (head is None and factories.get("tefe") == STAGE_FACTORIES["tefe"]) or (
        head is not None and head.block["text_encoder"] == "frozen"
    ):
        wanted += RUN_ARTIFACTS["tefe"]
        selection = paths.in_run(paths.TEFE_SELECTION, run_dir)
        if selection.exists():
            arch = read_json(selection)["selected"]
            wanted += [(t, "train_tefe", {"arch": arch}) for t in ("TEFE_MODEL", "TEFE_MODEL_VOCAB")]
    asr_model = config.get("asr", {}).get("transcribe", {}).get("model")
    if factories.get("asr") == STAGE_FACTORIES["asr"] and asr_model == FINETUNED:
        wanted += RUN_ARTIFACTS["asr"]
    return [
        _artifact_line(template, rule, wildcards, run_dir)
        for template, rule, wildcards in wanted
        if not paths.in_run(getattr(paths, template), run_dir, **wildcards).exists()
    ]


def check_run_dir(
    config: Mapping[str, Any], run_dir: str | Path, factories: Mapping[str, str], variant: str = HEADLINE_VARIANT
) -> None:
    """Fail naming every missing artifact of ``run_dir`` and how to build it."""
    missing = missing_artifacts(config, run_dir, factories, variant)
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
    def from_run(cls, run_dir: str | Path) -> FusionPredictor:
        """Load the ensemble's models and summaries (``<run_dir>/fusion/early/<classifier>/``) and
        weights (``<run_dir>/ensemble/weights.json``): the results layout of common.paths."""
        import joblib

        check_run_dir({}, run_dir, {})
        weights = read_json(paths.in_run(paths.ENSEMBLE_WEIGHTS, run_dir))["weights"]
        models, summaries = {}, {}
        for name in ENSEMBLE_MEMBERS:
            run = {"feature_set": ENSEMBLE_FEATURE_SET, "classifier": name}
            summaries[name] = read_json(paths.in_run(paths.CLASSIFIER_SUMMARY, run_dir, **run))
            models[name] = joblib.load(paths.in_run(paths.CLASSIFIER_MODEL, run_dir, **run))
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


class HeadPredictor:
    """A neural fusion head of a finished run (``xattn`` or an ablation): its saved checkpoint over
    the frame matrices of the SEFE backend and the token states (or ids) of the transcripts."""

    def __init__(
        self,
        model: Any,
        classes: Sequence[str],
        frames: Callable[[Sequence[str]], list[np.ndarray]],
        tokens: Callable[[Sequence[str]], list[np.ndarray]] | None,
        vocab: Any = None,
    ) -> None:
        self.model, self.classes, self.frames, self.tokens, self.vocab = model, list(classes), frames, tokens, vocab
        self.dims = {"acoustic": int(model.audio_mean.shape[0]), "text": int(model.text_proj.in_features)}

    @classmethod
    def from_run(cls, config: Mapping[str, Any], run_dir: str | Path, variant: str, threads: int) -> HeadPredictor:
        from workflow_scripts.fusion.heads.xattn import load_head
        from workflow_scripts.sefe.frames import load_frame_extractor
        from workflow_scripts.tefe.tokens import load_token_encoder

        for modality, override in config["fusion"]["heads"]["sequences"].items():
            if override:
                raise SystemExit(
                    f"predict: the run's {modality} sequences were precomputed (fusion.heads.sequences.{modality}); "
                    "predict can compute only the SEFE backend's frames and the TEFE encoder's token states"
                )
        model, header, vocab = load_head(paths.in_run(paths.HEAD_MODEL, run_dir, variant=variant))
        tokens = None if vocab is not None else load_token_encoder(config, run_dir, threads)
        return cls(model, header["classes"], load_frame_extractor(config, run_dir, threads), tokens, vocab)

    def predict(self, audio: Sequence[str], transcripts: Sequence[str], stages: StageFunctions) -> np.ndarray:
        from workflow_scripts.fusion.heads.xattn import predict_sequences

        frames = self.frames(audio)
        text = list(transcripts) if self.tokens is None else self.tokens(transcripts)
        for modality, matrices in (("acoustic", frames), ("text", [] if self.tokens is None else text)):
            widths = {int(m.shape[1]) for m in matrices} - {self.dims[modality]}
            if widths:
                raise ValueError(
                    f"{modality} sequences of width {sorted(widths)}, but the head was trained on width "
                    f"{self.dims[modality]} (another sefe / tefe configuration than the run's?)"
                )
        return predict_sequences(self.model, frames, text, self.vocab)


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
    batch: Sequence[str], stages: StageFunctions, predictor: FusionPredictor | HeadPredictor
) -> list[tuple[str, np.ndarray]]:
    transcripts = stages.transcribe(batch)
    return list(zip(transcripts, predictor.predict(batch, transcripts, stages), strict=True))


def predict_files(
    paths: Sequence[Path], stages: StageFunctions, predictor: FusionPredictor | HeadPredictor, batch_size: int = 16
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
        help=f"{HEADLINE_VARIANT} (DFAT, the default) or a neural head variant the run trained (xattn, its ablations)",
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
    files = collect_audio(args.inputs)
    check_run_dir(config, args.run_dir, factories, args.variant)
    if head_variant(config, args.variant) is None:
        predictor = FusionPredictor.from_run(args.run_dir)
        stages = load_stage_functions(config, Path(args.run_dir), args.threads, factories)
    else:
        predictor = HeadPredictor.from_run(config, args.run_dir, args.variant, args.threads)
        stages = load_stage_functions(config, Path(args.run_dir), args.threads, factories, stages=("asr",))
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
