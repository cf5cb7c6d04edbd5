# Helpers shared by the rule files: config validation, wildcard constraints, input/params
# functions. Rule files hold rules only.
import json

from snakemake.utils import validate

# Fails before any job runs, naming the key path and what was expected; fills defaults.
validate(config, schema="../schemas/config.schema.yaml")

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
    targets = expand("results/data/speech/{corpus}/summary.json", corpus=config["corpora"])
    targets.append("results/data/text/summary.json")
    return targets


GPU_RULE_DEFAULTS = {"gpu": 1, "mem_mb": 8000, "runtime": 120}


def gpu_rule_resource(rule_name, key):
    """A scheduling resource of a GPU-capable rule: config `resources.<rule>.<key>` or the default."""
    return config["resources"].get(rule_name, {}).get(key, GPU_RULE_DEFAULTS.get(key))


# --- sefe ---
SEFE_BACKENDS = ["handcrafted", "emotion2vec", "wavlm"]


def get_sefe_extract_config(wildcards):
    """The blocks extract_sefe needs: its backend's own block and the preprocessing (nothing else)."""
    sefe = config["sefe"]
    return as_json({"backend": sefe[wildcards.backend], "preprocessing": sefe["preprocessing"]})


def get_sefe_resource(key):
    """Scheduling resource `key` of extract_sefe; the weights-free backend never asks for a GPU."""

    def resource(wildcards):
        if key == "gpu" and wildcards.backend == "handcrafted":
            return 0
        return gpu_rule_resource("extract_sefe", key)

    return resource


def get_sefe_targets(backend=None):
    """The SEFE evaluation of the configured backend (it needs the features of every split)."""
    return [f"results/sefe/{backend or config['sefe']['backend']}/evaluation.json"]
