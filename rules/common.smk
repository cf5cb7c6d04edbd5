# Helpers shared by the rules files (config validation, wildcard constraints, input and params
# functions). The rules files hold rules only.
import json
from pathlib import Path

from workflow_scripts.config_schema import validate_config

# Fails before any job runs, naming the key path and what was expected; fills defaults.
validate_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")

SPLITS = config["task"]["splits"]
CLASSES = config["task"]["classes"]
SER_CORPUS = config["ser_corpus"]
TEXT_SPLITS = ["train", "dev", "test"]

if SER_CORPUS not in config["corpora"]:
    raise ValueError(f"config: ser_corpus {SER_CORPUS!r} is not a key of corpora {sorted(config['corpora'])}")

# Python modules of workflow_scripts that every entry point imports: a change reruns its rules.
COMMON_MODULES = ["workflow_scripts/io_utils.py"]


wildcard_constraints:
    corpus="|".join(config["corpora"]),
    split="|".join(SPLITS),


def as_json(value):
    """A config block as compact JSON, for a rule's params (a change of the block reruns the rule)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def modules(*names):
    """Paths of workflow_scripts modules a rule imports, declared as inputs."""
    return COMMON_MODULES + [f"workflow_scripts/{name}.py" for name in names]


def get_corpus_table(wildcards):
    """The table(s) of a speech corpus: produced by the demo rule or supplied by the user."""
    table = config["corpora"][wildcards.corpus]["table"]
    return list(table.values()) if isinstance(table, dict) else [table]


def get_text_table(wildcards):
    table = config["text_corpus"]["table"]
    return list(table.values()) if isinstance(table, dict) else [table]


def ser_manifest(split):
    """Manifest of one split of the emotion-recognition corpus."""
    return f"results/data/speech/{SER_CORPUS}/{split}.tsv"


def get_final_targets():
    """What `snakemake` builds by default; later stages extend this list."""
    targets = [f"results/data/speech/{SER_CORPUS}/summary.json", "results/data/text/summary.json"]
    return targets


GPU_RULE_DEFAULTS = {"gpu": 1, "mem_mb": 8000, "runtime": 120}


def gpu_rule_resource(rule_name, key):
    """A scheduling resource of a GPU-capable rule: config `resources.<rule>.<key>` or the default."""
    return config["resources"].get(rule_name, {}).get(key, GPU_RULE_DEFAULTS.get(key))


# --- slurm ---
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
