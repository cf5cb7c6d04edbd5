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
    targets += get_fusion_targets()
    return targets


GPU_RULE_DEFAULTS = {"gpu": 1, "mem_mb": 8000, "runtime": 120}


def gpu_rule_resource(rule_name, key):
    """A scheduling resource of a GPU-capable rule: config `resources.<rule>.<key>` or the default."""
    return config["resources"].get(rule_name, {}).get(key, GPU_RULE_DEFAULTS.get(key))


# --- fusion ---
# validate() fills defaults only in the top-level schema, not through $ref: fill the fusion
# block's from its own schema.
validate(config["fusion"], schema="../schemas/fusion.schema.yaml")

FUSION_MODALITIES = ["acoustic", "text"]
FUSION_FEATURE_SETS = ["acoustic", "text", "early"]
FUSION_CLASSIFIERS = ["lr", "rf", "xgboost"]
# Ensemble members in the order of the paper's weights w1, w2, w3.
FUSION_ENSEMBLE_MEMBERS = ["xgboost", "rf", "lr"]
# The feature sets each variant's classifiers are trained on: the only features it reads.
FUSION_VARIANT_FEATURE_SETS = {
    "acoustic": ["acoustic"],
    "text": ["text"],
    "early": ["early"],
    "late": ["acoustic", "text"],
    "hybrid": ["early"],
}
FUSION_VARIANTS = list(FUSION_VARIANT_FEATURE_SETS)
# Fusion fits, tunes and selects on train only; these are only ever evaluated.
FUSION_TEST_SPLITS = [s for s in SPLITS if s not in ("train", "dev")]

if "train" not in SPLITS or not FUSION_TEST_SPLITS:
    raise ValueError(f"config: task.splits {SPLITS} needs a 'train' split and at least one test split for fusion")


wildcard_constraints:
    modality="|".join(FUSION_MODALITIES),
    feature_set="|".join(FUSION_FEATURE_SETS),
    variant="|".join(FUSION_VARIANTS),


def get_sefe_features(split):
    """The acoustic feature file of a split: fusion.features.acoustic, else the SEFE stage's output."""
    override = config["fusion"]["features"]["acoustic"]
    if override:
        return override.format(split=split)
    if "backend" not in config.get("sefe", {}):
        raise ValueError(
            "config: fusion reads the SEFE features results/sefe/<sefe.backend>/<split>.parquet, but the "
            "config has no sefe.backend (add the SEFE stage's `sefe` block, or point "
            "fusion.features.acoustic at precomputed files)"
        )
    return f"results/sefe/{config['sefe']['backend']}/{split}.parquet"


def get_tefe_features(split):
    """The text feature file of a split: fusion.features.text, else the TEFE stage's output."""
    override = config["fusion"]["features"]["text"]
    return override.format(split=split) if override else f"results/tefe/features/{split}.parquet"


def get_modality_features(wildcards):
    """Feature files of one modality, one per split in SPLITS order."""
    get = get_sefe_features if wildcards.modality == "acoustic" else get_tefe_features
    return [get(split) for split in SPLITS]


def get_pooled_features(wildcards):
    """Pooled files (every split) of the modalities a feature set is made of (early: both)."""
    modalities = FUSION_MODALITIES if wildcards.feature_set == "early" else [wildcards.feature_set]
    return expand("results/fusion/pooled/{modality}/{split}.parquet", modality=modalities, split=SPLITS)


def get_variant_inputs(wildcards):
    """What a variant reads: its classifiers' outputs (and, for hybrid, the ensemble weights)."""
    runs = expand(
        "results/fusion/{feature_set}/{classifier}",
        feature_set=FUSION_VARIANT_FEATURE_SETS[wildcards.variant],
        classifier=FUSION_CLASSIFIERS,
    )
    inputs = {
        "summaries": [f"{run}/summary.json" for run in runs],
        "probabilities": [f"{run}/probabilities/{split}.parquet" for run in runs for split in SPLITS],
        "oof": [f"{run}/oof_train.parquet" for run in runs],
    }
    if wildcards.variant == "hybrid":
        inputs["weights"] = "results/ensemble/weights.json"
    return inputs


def get_variant_config(wildcards):
    """The part of fusion.variants a variant uses (hybrid: none), so editing the rest reruns nothing else."""
    block = config["fusion"]["variants"]
    if wildcards.variant == "hybrid":
        return as_json({})
    keys = ["classifier", "selection_metric"] + (["late_weights"] if wildcards.variant == "late" else [])
    return as_json({key: block[key] for key in keys})


def get_figure2_inputs(wildcards):
    """Metrics and WER files of every run plotted in Figure 2."""
    block = config["fusion"]["figure2"]
    files = []
    for number, run in enumerate(block["runs"]):
        variants = block["variants"] + ([block["baseline"]] if block["baseline"] and number == 0 else [])
        files += [f"{run['results_dir']}/metrics/{variant}.json" for variant in variants]
        if isinstance(run["wer"], str):
            files += [run["wer"].format(split=split) for split in FUSION_TEST_SPLITS]
    return files


def get_fusion_targets():
    """The fusion stage's final artifacts (the headline metrics and everything in the report)."""
    return [
        "results/hybrid_metrics.json",
        "results/ensemble/weights.json",
        "results/table2.md",
        "results/table2.csv",
        "results/figure2.png",
        "results/figure2.svg",
        "results/fusion/confusion_matrices.png",
    ]
