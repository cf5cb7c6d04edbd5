"""The whole fusion stage at the paper's scale: time, peak memory and CV / test scores.

Seeded synthetic pooled features shaped like the paper's (n training utterances, d-wide early
fusion = d/2 acoustic + d/2 text, two classes, speakers for grouped folds, n/5 test
utterances), then every job of the fusion stage as the workflow runs it (the rules' entry
points, one subprocess per job, run one after another with ``--threads`` each): LR, RF and
XGBoost on each feature set (acoustic, text, early), the ensemble, the five variants. Printed
per size and config: wall seconds of the stage and of its slowest jobs, the largest peak RSS
of any job, each classifier's CV balanced accuracy and each variant's test UA, so that speed
never comes from worse models.

Configs: ``demo`` (config.yaml's fusion block), ``paper`` (configs/paper_vlsp.yaml's) and
``dfat`` (the paper block at the DFAT authors' script constants: 10 XGBoost trials, 2-fold CV,
5 ensemble trials). The config files and schemas are read from the repository that provides
``workflow_scripts`` on PYTHONPATH, so the same script measures an older checkout:

    python benchmarks/fusion_scale.py --sizes 1000x2000 5000x2000 --configs demo dfat
    PYTHONPATH=/tmp/old_checkout python benchmarks/fusion_scale.py --sizes 1000x2000 --label before
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

import workflow_scripts
from workflow_scripts.common import paths
from workflow_scripts.common.manifest import SPEECH_COLUMNS, write_manifest
from workflow_scripts.fusion.pooling import Pooled, write_pooled

try:  # the schema step alone (its defaults are all this script needs)
    from workflow_scripts.common.config_schema import validate_schema
except ImportError:  # a checkout older than issue 24, measured by this script too
    from workflow_scripts.common.config_schema import validate_config as validate_schema

REPO = Path(workflow_scripts.__file__).resolve().parents[1]
CLASSES = ["neutral", "negative"]
SPLITS = ["train", "test"]
MODALITIES = ["acoustic", "text"]
FEATURE_SETS = ["acoustic", "text", "early"]
CLASSIFIERS = ["lr", "rf", "xgboost"]
MEMBERS = ["xgboost", "rf", "lr"]
VARIANT_SETS = {
    "acoustic": ["acoustic"],
    "text": ["text"],
    "early": ["early"],
    "late": ["acoustic", "text"],
    "hybrid": ["early"],
}
DFAT = {"cv": {"folds": 2}, "classifiers": {"xgboost": {"trials": 10}}, "ensemble": {"trials": 5, "folds": 2}}


def merge(base: dict, overlay: dict) -> dict:
    """Snakemake's --configfile merge: nested dicts updated key by key (common.config_schema's
    merge_config, kept here so that the script still measures checkouts older than it)."""
    result = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def override(text: str) -> dict[str, Any]:
    """``a.b.c=VALUE`` (VALUE read as YAML) as the nested overlay {a: {b: {c: VALUE}}} of the fusion block."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(
            f"--set {text!r}: expected KEY.PATH=VALUE, e.g. classifiers.xgboost.params.max_bin=64"
        )
    overlay: dict[str, Any] = yaml.safe_load(value)
    for part in reversed(key.split(".")):
        overlay = {part: overlay}
    return overlay


def fusion_config(name: str, overrides: list[dict[str, Any]], seed: int | None) -> dict[str, Any]:
    """The validated fusion block (defaults and seeds filled in) of a named config, with ``overrides``
    (fusion-block overlays) applied and the workflow's top-level ``seed`` replaced where given."""
    config = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    if seed is not None:
        config["seed"] = seed
    if name in ("paper", "dfat"):
        paper = yaml.safe_load((REPO / "configs" / "paper_vlsp.yaml").read_text(encoding="utf-8"))
        config = merge(config, {"fusion": paper["fusion"]})
    if name == "dfat":
        config = merge(config, {"fusion": DFAT})
    for overlay in overrides:
        config = merge(config, {"fusion": overlay})
    return validate_schema(config, REPO / "schemas" / "config.schema.yaml")["fusion"]


def synthesize(root: Path, n: int, d: int, seed: int) -> None:
    """Pooled files and manifests: a negative utterance's class shows in its voice and words
    (40%), words only (30%) or voice only (30%), in a few latent directions under noise and
    speaker offsets; train has 40 speakers, test 10 unseen ones."""
    rng = np.random.default_rng(seed)
    half = d // 2
    latent = 32
    loadings = {m: rng.normal(size=(latent, half)).astype(np.float32) / np.sqrt(latent) for m in MODALITIES}
    for split, rows, speakers in (("train", n, 40), ("test", max(n // 5, 50), 10)):
        y = (rng.random(rows) < 0.4).astype(int)
        where = rng.choice(3, size=rows, p=[0.4, 0.3, 0.3])  # both, text only, acoustic only
        speaker = rng.integers(0, speakers, size=rows)
        names = [f"{split}_spk{s:02d}" for s in speaker]
        ids = [f"{split}_{i:05d}" for i in range(rows)]
        manifest = pd.DataFrame({column: "" for column in SPEECH_COLUMNS}, index=range(rows))
        manifest["utt_id"], manifest["label"], manifest["speaker"] = ids, [CLASSES[v] for v in y], names
        manifest["duration_s"], manifest["sample_rate"] = 1.0, 16000
        write_manifest(manifest, root / f"{split}.tsv", SPEECH_COLUMNS)
        for modality, shown in (("acoustic", where != 1), ("text", where != 2)):
            z = rng.normal(size=(rows, latent)).astype(np.float32)
            z[:, :4] += 1.2 * (y * shown)[:, None]
            offsets = rng.normal(scale=0.5, size=(speakers, latent)).astype(np.float32)
            if modality == "acoustic":
                z += offsets[speaker]
            X = z @ loadings[modality] + rng.normal(scale=1.0, size=(rows, half)).astype(np.float32)
            info = {
                "modality": modality,
                "split": split,
                "statistics": ["mean", "var", "max", "min"],
                "statistic_dim": half // 4,
                "dim": half,
                "source": "synthetic",
                "source_metadata": {"model": "synthetic", "checkpoint": None},
            }
            write_pooled(
                root / "pooled" / modality / f"{split}.parquet", Pooled(ids, list(manifest["label"]), X, info, names)
            )


def pooled_files(root: Path, modalities: list[str], splits: list[str]) -> list[str]:
    return [str(root / "pooled" / m / f"{s}.parquet") for m in modalities for s in splits]


def jobs(root: Path, out: Path, fusion: dict[str, Any], threads: int) -> list[dict[str, Any]]:
    """Every job of the fusion stage in a runnable order: module, input, output, params, wildcards."""

    def at(template: str, **wildcards: str) -> str:
        return str(paths.in_run(template, out, **wildcards))

    common = {"classes": CLASSES, "train_split": "train"}
    found = []
    for feature_set in FEATURE_SETS:
        for classifier in CLASSIFIERS:
            run = {"feature_set": feature_set, "classifier": classifier}
            modalities = MODALITIES if feature_set == "early" else [feature_set]
            found.append(
                {
                    "module": "workflow_scripts.fusion.classifiers",
                    "name": f"{classifier}/{feature_set}",
                    "input": {"pooled": pooled_files(root, modalities, SPLITS)},
                    "output": {
                        "model": at(paths.CLASSIFIER_MODEL, **run),
                        "trials": at(paths.CLASSIFIER_TRIALS, **run),
                        "probabilities": [at(paths.CLASSIFIER_PROBABILITIES, **run, split=s) for s in SPLITS],
                        "oof": at(paths.CLASSIFIER_OOF, **run),
                        "summary": at(paths.CLASSIFIER_SUMMARY, **run),
                    },
                    "params": {
                        **common,
                        "classifier": fusion["classifiers"][classifier],
                        "cv": fusion["cv"],
                        "splits": SPLITS,
                    },
                    "wildcards": run,
                }
            )
    early = {"feature_set": "early"}
    found.append(
        {
            "module": "workflow_scripts.fusion.ensemble",
            "name": "ensemble",
            "input": {
                "models": [at(paths.CLASSIFIER_MODEL, **early, classifier=m) for m in MEMBERS],
                "summaries": [at(paths.CLASSIFIER_SUMMARY, **early, classifier=m) for m in MEMBERS],
                "oof": [at(paths.CLASSIFIER_OOF, **early, classifier=m) for m in MEMBERS],
                "pooled_train": pooled_files(root, MODALITIES, ["train"]),
            },
            "output": {
                "weights": at(paths.ENSEMBLE_WEIGHTS),
                "trials": at(paths.ENSEMBLE_TRIALS),
                "oof": at(paths.ENSEMBLE_OOF),
            },
            "params": {**common, "ensemble": fusion["ensemble"]},
            "wildcards": {},
        }
    )
    for variant, feature_sets in VARIANT_SETS.items():
        runs = [{"feature_set": fs, "classifier": c} for fs in feature_sets for c in CLASSIFIERS]
        block = fusion["variants"]
        keys = (
            [] if variant == "hybrid" else ["classifier", "selection_metric"] + (["late_weights"] * (variant == "late"))
        )
        inputs = {
            "summaries": [at(paths.CLASSIFIER_SUMMARY, **r) for r in runs],
            "oof": [at(paths.CLASSIFIER_OOF, **r) for r in runs],
            "probabilities": [at(paths.CLASSIFIER_PROBABILITIES, **r, split=s) for r in runs for s in SPLITS],
            "manifests": [str(root / f"{s}.tsv") for s in SPLITS],
        }
        if variant == "hybrid":
            inputs["weights"] = at(paths.ENSEMBLE_WEIGHTS)
        found.append(
            {
                "module": "workflow_scripts.fusion.variants",
                "name": f"variant/{variant}",
                "input": inputs,
                "output": {
                    "metrics": at(paths.VARIANT_METRICS, variant=variant),
                    "probabilities": [at(paths.VARIANT_PROBABILITIES, variant=variant, split=s) for s in SPLITS],
                },
                "params": {
                    **common,
                    "variants": {k: block[k] for k in keys},
                    "bootstrap": fusion["bootstrap"],
                    "splits": SPLITS,
                },
                "wildcards": {"variant": variant},
            }
        )
    for job in found:
        job["threads"] = threads
    return found


def run_job(spec_path: str) -> None:
    """Child process: one job through its module's main(job), as the rule's script would."""
    import importlib
    import logging

    from snakemake.iocontainers import InputFiles, OutputFiles, Params, Wildcards

    spec = json.loads(Path(spec_path).read_text())
    logging.basicConfig(filename=spec["log"], level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    class Job:
        pass

    job = Job()
    job.input = InputFiles(fromdict=spec["input"])
    job.output = OutputFiles(fromdict=spec["output"])
    job.params = Params(fromdict=spec["params"])
    job.wildcards = Wildcards(fromdict=spec["wildcards"])
    job.threads = spec["threads"]
    job.log = []
    importlib.import_module(spec["module"]).main(job)


def run_stage(
    root: Path, out: Path, fusion: dict[str, Any], threads: int, only: list[str] | None = None
) -> list[dict[str, Any]]:
    """Run every job (or those whose name matches a pattern of ``only``) in a subprocess; per job:
    name, wall seconds, CPU seconds, peak RSS (MB)."""
    timings = []
    for number, job in enumerate(jobs(root, out, fusion, threads)):
        if only and not any(fnmatch.fnmatch(job["name"], pattern) for pattern in only):
            continue
        spec = out / "jobs" / f"{number:02d}.json"
        spec.parent.mkdir(parents=True, exist_ok=True)
        spec.write_text(json.dumps({**job, "log": str(spec.with_suffix(".log"))}))
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, __file__, "--job", str(spec)])
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        if status != 0:
            raise SystemExit(f"job {job['name']} failed (status {status}); log {spec.with_suffix('.log')}")
        cpu = usage.ru_utime + usage.ru_stime
        timings.append({"job": job["name"], "seconds": seconds, "cpu_s": cpu, "peak_mb": usage.ru_maxrss / 1024})
        print(
            f"    {job['name']:<22} {seconds:8.1f} s wall {cpu:8.1f} s cpu {usage.ru_maxrss / 1024:8.0f} MB", flush=True
        )
    if not timings:
        names = [job["name"] for job in jobs(root, out, fusion, threads)]
        raise SystemExit(f"--only {only}: no job of the stage matches; its jobs are {names}")
    return timings


def scores(out: Path) -> dict[str, float]:
    """CV balanced accuracy of every classifier run and test UA of every variant (those that ran)."""
    found = {}
    for feature_set in FEATURE_SETS:
        for classifier in CLASSIFIERS:
            path = Path(paths.in_run(paths.CLASSIFIER_SUMMARY, out, feature_set=feature_set, classifier=classifier))
            if path.exists():
                summary = json.loads(path.read_text())
                found[f"cv {classifier}/{feature_set}"] = summary["cv"]["scores"]["balanced_accuracy"]
    weights = Path(paths.in_run(paths.ENSEMBLE_WEIGHTS, out))
    if weights.exists():
        found["ensemble objective"] = json.loads(weights.read_text())["objective"]["value"]
    for variant in VARIANT_SETS:
        path = Path(paths.in_run(paths.VARIANT_METRICS, out, variant=variant))
        if path.exists():
            metrics = json.loads(path.read_text())
            found[f"test UA {variant} ({metrics['selected']})"] = metrics["splits"]["test"]["UA"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["1000x2000", "5000x2000", "5000x8000"], help="NxD")
    parser.add_argument("--configs", nargs="+", default=["demo", "dfat", "paper"], choices=["demo", "dfat", "paper"])
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[2],
        help="threads of every job (jobs run one at a time); several values: the stage once per value (thread scaling)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument(
        "--model-seed",
        type=int,
        default=None,
        help="the workflow's top-level seed (folds, tuning, models; default the config's)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        type=override,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of the fusion block, e.g. classifiers.xgboost.params.max_bin=256 (repeatable)",
    )
    parser.add_argument("--label", default="", help="a name for this code version in the output")
    parser.add_argument("--workdir", default=None, help="keep the data and results here (default: a temp dir)")
    parser.add_argument("--json", default=None, help="append one JSON line per run to this file")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="PATTERN",
        help="run only the jobs whose name matches (e.g. 'xgboost/*' 'rf/early'); scores of those that ran",
    )
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        run_job(args.job)
        return
    print(f"code: {REPO} {args.label}; {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}")
    settings = " ".join(
        [f"model seed {args.model_seed}"] * (args.model_seed is not None) + [json.dumps(o) for o in args.overrides]
    )
    with tempfile.TemporaryDirectory() as temporary:
        base = Path(args.workdir or temporary)
        for size in args.sizes:
            n, d = (int(v) for v in size.lower().split("x"))
            data = base / f"data_{n}x{d}"
            if not (data / "test.tsv").exists():
                synthesize(data, n, d, args.seed)
            for name, threads in ((c, t) for c in args.configs for t in args.threads):
                fusion = fusion_config(name, args.overrides, args.model_seed)
                label = ("_" + args.label if args.label else "") + (f"_t{threads}" if len(args.threads) > 1 else "")
                out = base / f"results_{n}x{d}_{name}{label}"
                print(f"== n={n} d={d} config={name} threads={threads} {settings}", flush=True)
                started = time.perf_counter()
                timings = run_stage(data, out, fusion, threads, args.only)
                total = time.perf_counter() - started
                found = scores(out)
                peak = max(t["peak_mb"] for t in timings)
                cpu = sum(t["cpu_s"] for t in timings)
                print(
                    f"  {'jobs run' if args.only else 'stage'} {total:.1f} s wall, {cpu:.1f} s cpu, "
                    f"peak {peak:.0f} MB, load average {os.getloadavg()[0]:.2f}"
                )
                for key, value in found.items():
                    print(f"  {key:<34} {value:.4f}")
                if args.json:
                    record = {
                        "label": args.label,
                        "n": n,
                        "d": d,
                        "config": name,
                        "model_seed": args.model_seed,
                        "overrides": args.overrides,
                        "threads": threads,
                        "seconds": total,
                        "cpu_s": cpu,
                        "peak_mb": peak,
                        "jobs": timings,
                        "scores": found,
                        "load": os.getloadavg()[0],
                    }
                    with open(args.json, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
