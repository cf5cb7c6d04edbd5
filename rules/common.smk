# What every rules file shares: the validated config, the run's constants, every global wildcard
# constraint, script paths, scheduling resources and the scope of a job. Each stage's input and
# params functions live beside its rules in rules/<stage>_inputs.smk; the rules files hold rules
# only. Names, result paths and which rows read transcripts come from workflow_scripts.common.names,
# .paths and workflow_scripts.fusion.rows, defined once for the rules, the scripts and predict.
import re
from pathlib import Path

from workflow_scripts.common import names, paths
from workflow_scripts.common.code_inputs import code_inputs
from workflow_scripts.config import validate_config
from workflow_scripts.fusion import rows
from workflow_scripts.fusion.heads.variants import head_variants

# Fails before any job runs, naming the key path and what was expected; fills defaults. The schema and
# every cross-key check (workflow_scripts/<stage>/config_checks.py): what the checker
# `python -m workflow_scripts.config` accepts, the DAG accepts.
validate_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")

SPLITS = config["task"]["splits"]
# train fits, selection chooses checkpoints and stops early; the test splits are only ever
# evaluated, never used for training, tuning, selection or early stopping (ASR, TEFE and fusion alike).
ROLES = names.split_roles(config["task"])
TEST_SPLITS = list(ROLES.test)
CLASSES = config["task"]["classes"]
SER_CORPUS = config["ser_corpus"]
TEXT_SPLITS = list(names.TEXT_SPLITS)
# asr.systems: name -> asr.transcribe with the system's own keys over it. Every transcript-dependent
# result exists once per system (paths: SYSTEM_DIR, or the {scope} segment).
ASR_SYSTEMS = names.asr_systems(config["asr"])
PRIMARY_SYSTEM = names.primary_system(config["asr"])
TEFE_ARCHITECTURES = config["tefe"]["architectures"]
# The neural heads' variants (each head and its ablations), checked once when the DAG is built.
HEAD_VARIANTS = head_variants(config["fusion"]["heads"])


def one_of(values):
    """A wildcard constraint matching exactly one of ``values`` (none: nothing)."""
    return "|".join(re.escape(value) for value in values) or "(?!)"


# --- shards (config scale.shards; docs/architecture.md "Sharded steps") ---
SHARDED = config["scale"]["shards"] > 1
SHARD_NAMES = names.shard_names(config["scale"]["shards"]) if SHARDED else []
# The {shard} segment of a sharded step's log and benchmark paths (none with one shard per split).
SHARD = ["{shard}"] if SHARDED else []


# Per-rule constraints narrow these (e.g. a head's rule to its variants).
wildcard_constraints:
    corpus=one_of(config["corpora"]),
    split=one_of(SPLITS),
    system=one_of(ASR_SYSTEMS),
    scope=one_of([paths.SHARED_SCOPE] + [paths.system_scope(system) for system in ASR_SYSTEMS]),
    backend=one_of(names.SEFE_BACKENDS),
    modality=one_of(names.POOLED_MODALITIES),
    feature_set=one_of(names.FEATURE_SETS),
    classifier=one_of(names.CLASSIFIERS),
    variant=one_of(names.CLASSIFIER_VARIANTS + tuple(HEAD_VARIANTS)),
    shard=one_of(SHARD_NAMES),


def script_path(step):
    """The script of a step: workflow_scripts/<stage>/<step>.py (see workflow_scripts.common.rule)."""
    return str(Path(workflow.basedir) / "workflow_scripts" / f"{step}.py")


def script_code(step):
    """The code= inputs of script_path(step): the script and the modules it imports."""
    return code_inputs(f"workflow_scripts/{step}.py", workflow.basedir)


def ser_manifest(split):
    """Manifest of one split of the emotion-recognition corpus."""
    return paths.SPEECH_MANIFEST.format(corpus=SER_CORPUS, split=split)


def per_split(template):
    """Where a sharded step (SHARDED_STEPS) writes: the split's contract file ``template``, or with
    scale.shards > 1 one shard's file (paths.shard_file), which its gather rule joins into ``template``."""
    return paths.shard_file(template) if SHARDED else template


def get_split_manifest(wildcards):
    """The manifest a sharded step reads: the split's, or with scale.shards > 1 the job's shard of it."""
    if SHARDED:
        return paths.SPEECH_SHARD_MANIFEST.format(corpus=SER_CORPUS, split=wildcards.split, shard=wildcards.shard)
    return ser_manifest(wildcards.split)


def template_wildcards(template):
    """The wildcards of a path template, in order, as log / benchmark segments (``"{split}"`` ...)."""
    return re.findall(r"\{\w+\}", template)


# The per-split steps that shard, by the name of the gather rule in rules/shards.smk, each with its stage, the
# contract file its step writes with one shard, and the step's own wildcard constraints.
SHARDED_STEPS = {
    "gather_transcripts": ("asr", paths.TRANSCRIPTS, {}),
    "gather_sefe_features": ("sefe", paths.SEFE_FEATURES, {}),
    "gather_sefe_frames": ("sefe", paths.SEFE_FRAMES, {}),
    "gather_prosody_f0": ("sefe", paths.PROSODY_F0, {}),
    "gather_tefe_features": ("tefe", paths.TEFE_FEATURES, {"feature_set": one_of(names.TEFE_FEATURE_SETS)}),
    "gather_tefe_tokens": ("tefe", paths.TEFE_TOKENS, {}),
    "gather_tefe_backend_features": (
        "tefe",
        paths.TEFE_BACKEND_FEATURES,
        {"backend": one_of(names.TEFE_OTHER_BACKENDS), "feature_set": one_of(names.TEFE_FEATURE_SETS)},
    ),
    "gather_tefe_backend_tokens": ("tefe", paths.TEFE_BACKEND_TOKENS, {"backend": one_of(names.TEFE_TOKEN_BACKENDS)}),
}


def row_scope(row, system):
    """The {scope} of report row ``row`` for ASR ``system`` (None: a shared row's; fusion.rows.row_scope)."""
    return rows.row_scope(row, system, config["fusion"])


def scope_system(wildcards, expected_scope):
    """The ASR system of the job's {scope} (None when shared), checked against the scope its row or
    feature set takes: ``expected_scope(system)``, e.g. ``lambda system: row_scope(variant, system)``."""
    system = paths.scope_system(wildcards.scope)
    expected = expected_scope(system)  # raises for a shared scope where the result reads transcripts
    if expected != wildcards.scope:
        raise ValueError(f"{dict(wildcards)}: this result belongs under {expected!r}, not {wildcards.scope!r}")
    return system


def row_system(wildcards, row):
    """The ASR system of a job writing report row ``row`` (None when the row is shared)."""
    return scope_system(wildcards, lambda system: row_scope(row, system))


def feature_set_system(wildcards, feature_set):
    """The ASR system of a job writing results of feature set (or modality) ``feature_set`` (None: shared)."""
    return scope_system(wildcards, lambda system: rows.feature_set_scope(feature_set, system))


def get_final_targets():
    """What `snakemake` builds by default."""
    targets = get_data_targets() + get_asr_targets() + get_sefe_targets() + get_tefe_targets()
    return targets + get_fusion_targets() + get_challenge_targets()


# --- scheduling resources (GPU-capable rules; docs/cluster.md) ---
GPU_RULE_DEFAULTS = {"gpu": 1, "mem_mb": 8000, "runtime": 120}


def gpu_rule_resource(rule_name, key):
    """A scheduling resource of a GPU-capable rule: config `resources.<rule>.<key>` or the default."""
    return config["resources"].get(rule_name, {}).get(key, GPU_RULE_DEFAULTS.get(key))


def gpu_rule_resources(rule_name, gpu=None):
    """Every scheduling resource of a GPU-capable rule, for `resources: **gpu_rule_resources("<rule>")`.

    Values come from config `resources.<rule>` or GPU_RULE_DEFAULTS. mem_mb and runtime are the
    first attempt's; a retried job (profile `retries`) asks for attempt times as much, so a job
    killed for memory or time gets more. cpus_per_gpu, gpu_model and slurm_partition are passed
    only where configured, and cpus_per_gpu / gpu_model only to jobs that ask for a GPU.
    `gpu`: optional function of the wildcards giving one job's GPUs instead of the configured
    number (e.g. 0 for a backend that needs none).
    """
    settings = {**GPU_RULE_DEFAULTS, **config["resources"].get(rule_name, {})}
    mem_mb, runtime = settings["mem_mb"], settings["runtime"]
    resources = {
        "gpu": settings["gpu"] if gpu is None else gpu,
        "mem_mb": lambda wildcards, attempt: mem_mb * attempt,
        "runtime": lambda wildcards, attempt: runtime * attempt,
    }
    if "slurm_partition" in settings:
        resources["slurm_partition"] = settings["slurm_partition"]
    for key in ("cpus_per_gpu", "gpu_model"):
        if key not in settings:
            continue
        if gpu is not None:  # the job's own GPU count decides (None leaves the resource unset)
            resources[key] = lambda wildcards, value=settings[key]: value if gpu(wildcards) > 0 else None
        elif settings["gpu"] > 0:
            resources[key] = settings[key]
    return resources


def backend_gpus(rule_name, needs_gpu):
    """GPUs of one job whose backend may need none: resources.<rule_name>.gpu where
    ``needs_gpu(wildcards.backend)``, else 0 (a weights-free backend never asks for a GPU)."""

    def gpus(wildcards):
        return gpu_rule_resource(rule_name, "gpu") if needs_gpu(wildcards.backend) else 0

    return gpus
