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
    targets += get_tefe_targets()
    return targets


GPU_RULE_DEFAULTS = {"gpu": 1, "mem_mb": 8000, "runtime": 120}


def gpu_rule_resource(rule_name, key):
    """A scheduling resource of a GPU-capable rule: config `resources.<rule>.<key>` or the default."""
    return config["resources"].get(rule_name, {}).get(key, GPU_RULE_DEFAULTS.get(key))


# --- tefe ---
# validate() fills defaults only in the schema it is given, not through a $ref: validating
# the block against its own schema fills them, so a config may leave out any tefe key.
validate(config.setdefault("tefe", {}), schema="../schemas/tefe.schema.yaml")
TEFE_ARCHITECTURES = config["tefe"]["architectures"]
# Speech splits that are only ever evaluated: the TEFE table reports its encoders on them.
TEFE_TEST_SPLITS = [split for split in SPLITS if split not in ("train", "dev")]


def get_tefe_model_config(wildcards):
    """tefe.models.<arch> as JSON (its training overrides included): only that block retrains it."""
    return as_json(config["tefe"]["models"][wildcards.arch])


def get_tefe_vectors(wildcards):
    """The user's word vectors file when tefe.embedding.source is file (an input: a new file rebuilds)."""
    embedding = config["tefe"]["embedding"]
    return [embedding["vectors"]] if embedding["source"] == "file" else []


def get_tefe_metrics_pairs():
    """ARCH=metrics.json arguments of select_tefe, in the order of tefe.architectures."""
    return [f"{arch}=results/tefe/models/{arch}/metrics.json" for arch in TEFE_ARCHITECTURES]


def get_tefe_encoder(wildcards):
    """model.pt and vocab.json of the encoder that select_tefe chose (read once the checkpoint ran).

    Only the chosen model is an input, so retraining another architecture that stays unchosen
    does not rerun feature extraction.
    """
    with open(checkpoints.select_tefe.get().output.selection, encoding="utf-8") as handle:
        arch = json.load(handle)["selected"]
    return {"model": f"results/tefe/models/{arch}/model.pt", "vocab": f"results/tefe/models/{arch}/vocab.json"}


def get_tefe_transcript_column(wildcards):
    """Transcript column a feature set is extracted from."""
    return "hypothesis" if wildcards.feature_set == "features" else "reference"


def get_tefe_targets():
    """TEFE's final artifacts: features of every split (and of the references if configured), the table."""
    feature_sets = ["features"] + (["features_reference"] if config["tefe"]["reference_features"] else [])
    targets = expand("results/tefe/{feature_set}/{split}.parquet", feature_set=feature_sets, split=SPLITS)
    return targets + ["results/tefe/table.md"]
