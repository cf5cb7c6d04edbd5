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


# --- asr ---
ASR_FINETUNED_MODEL = "results/asr/model"
# Splits after train and dev are test splits: never used for training, selection or early stopping.
ASR_TEST_SPLITS = SPLITS[2:]


def get_asr_model_path(ref):
    """A model reference of the asr block as a directory or hub id ("finetuned": the fine-tuned model)."""
    return ASR_FINETUNED_MODEL if ref == "finetuned" else ref


def get_asr_model_inputs(*refs):
    """The model directories among ``refs`` that rules of this workflow build (declared as inputs)."""
    paths = [get_asr_model_path(ref) for ref in refs]
    return sorted({path for path in paths if path.startswith("results/")})


def get_asr_train_manifests():
    """Manifests of the ASR training data: train_splits of train_corpora (never a test split)."""
    block = config["asr"]["finetune"]
    unknown = [c for c in block["train_corpora"] if c not in config["corpora"]]
    if unknown:
        raise ValueError(f"config asr.finetune.train_corpora: {unknown} are not keys of corpora {sorted(config['corpora'])}")
    forbidden = [s for s in block["train_splits"] if s in ASR_TEST_SPLITS or s == block["eval_split"]]
    if forbidden:
        raise ValueError(
            f"config asr.finetune.train_splits: {forbidden} may not be trained on "
            f"(test splits {ASR_TEST_SPLITS}; eval_split {block['eval_split']!r})"
        )
    return [f"results/data/speech/{c}/{s}.tsv" for c in block["train_corpora"] for s in block["train_splits"]]


def get_asr_eval_manifest():
    """Manifest of the split that selects the ASR checkpoint (dev of the emotion corpus)."""
    split = config["asr"]["finetune"]["eval_split"]
    if split not in SPLITS or split in ASR_TEST_SPLITS:
        raise ValueError(f"config asr.finetune.eval_split: {split!r} must be one of {SPLITS[:2]} (not a test split)")
    return ser_manifest(split)


def get_asr_benchmark_refs(only=None):
    """Model references of the benchmark's backbones (or just those equal to ``only``)."""
    refs = [entry["model"] for entry in config["asr"]["benchmark"]["backbones"]]
    return [ref for ref in refs if only is None or ref == only]
