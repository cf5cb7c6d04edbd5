# Helpers shared by the rules files (config validation, wildcard constraints, input and params
# functions). The rules files hold rules only. Names and result paths come from
# workflow_scripts.common.names / .paths, defined once for the rules, the scripts and predict.
from pathlib import Path

from workflow_scripts.common import names, paths
from workflow_scripts.common.code_inputs import code_inputs
from workflow_scripts.common.config_schema import validate_config
from workflow_scripts.common.files import read_json
from workflow_scripts.data.corpus_config import check_split_block

# Fails before any job runs, naming the key path and what was expected; fills defaults.
validate_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")

SPLITS = config["task"]["splits"]
# train fits, selection chooses checkpoints and stops early; the test splits are only ever
# evaluated, never used for training, tuning, selection or early stopping (ASR, TEFE and fusion alike).
ROLES = names.split_roles(config["task"])
TEST_SPLITS = list(ROLES.test)
CLASSES = config["task"]["classes"]
SER_CORPUS = config["ser_corpus"]
TEXT_SPLITS = list(names.TEXT_SPLITS)

if SER_CORPUS not in config["corpora"]:
    raise ValueError(f"config: ser_corpus {SER_CORPUS!r} is not a key of corpora {sorted(config['corpora'])}")
# --- data --- split.fractions must name the splits: fail in a dry run, not at job time.
for _name, _block in config["corpora"].items():
    check_split_block(_block, SPLITS, f"corpora.{_name}")
check_split_block(config["text_corpus"], TEXT_SPLITS, "text_corpus")


wildcard_constraints:
    corpus="|".join(config["corpora"]),
    split="|".join(SPLITS),


def script_path(step):
    """The script of a step: workflow_scripts/<stage>/<step>.py (see workflow_scripts.common.rule)."""
    return str(Path(workflow.basedir) / "workflow_scripts" / f"{step}.py")


def script_code(step):
    """The code= inputs of script_path(step): the script and the modules it imports."""
    return code_inputs(f"workflow_scripts/{step}.py", workflow.basedir)


def corpus_tables(block):
    """The table path(s) of a corpus block: ``table`` is one path or a mapping split -> path."""
    table = block["table"]
    return list(table.values()) if isinstance(table, dict) else [table]


def get_corpus_table(wildcards):
    """The table(s) of a speech corpus: produced by the demo rule or supplied by the user."""
    return corpus_tables(config["corpora"][wildcards.corpus])


def ser_manifest(split):
    """Manifest of one split of the emotion-recognition corpus."""
    return paths.SPEECH_MANIFEST.format(corpus=SER_CORPUS, split=split)


def get_final_targets():
    """What `snakemake` builds by default."""
    targets = [paths.SPEECH_SUMMARY.format(corpus=SER_CORPUS), paths.TEXT_SUMMARY]
    targets += expand(paths.ASR_WER, split=SPLITS) + [paths.ASR_BENCHMARK_JSON]
    targets += get_sefe_targets() + get_tefe_targets() + get_fusion_targets() + get_challenge_targets()
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


# --- sefe ---
def get_sefe_backend_block(wildcards):
    """The block of extract_sefe's backend (sefe.<backend>): editing another backend's block reruns nothing here."""
    return config["sefe"][wildcards.backend]


def get_sefe_model_inputs(wildcards):
    """The model directory of the backend's block when this workflow builds it (the converted Whisper
    base of whisper_encoder, or the ASR stage's model for `finetuned`)."""
    model = config["sefe"][wildcards.backend].get("model", "")
    return [paths.ASR_FINETUNED_MODEL] if model == names.FINETUNED else get_asr_model_inputs(model)


def get_sefe_resource(key):
    """Scheduling resource `key` of extract_sefe; the weights-free backend never asks for a GPU."""

    def resource(wildcards):
        if key == "gpu" and wildcards.backend == "handcrafted":
            return 0
        return gpu_rule_resource("extract_sefe", key)

    return resource


def get_sefe_targets(backend=None):
    """The SEFE evaluation of the configured backend (it needs the features of every split)."""
    return [paths.SEFE_EVALUATION.format(backend=backend or config["sefe"]["backend"])]


# --- asr ---
def get_asr_model_inputs(*refs):
    """The model directories among ``refs`` that rules of this workflow build, the fine-tuned one aside.

    Inputs for the DAG only: such a reference is the directory itself, and the script loads it as configured.
    """
    built = [ref for ref in refs if ref != names.FINETUNED and ref.startswith(f"{paths.RESULTS}/")]
    return sorted(set(built))


def get_asr_finetuned_input(*refs):
    """The fine-tuned model directory when one of ``refs`` is names.FINETUNED (the rule's `finetuned` input)."""
    return [paths.ASR_FINETUNED_MODEL] if names.FINETUNED in refs else []


def get_asr_train_manifests():
    """Manifests of the ASR training data: train_splits of train_corpora (never a test split)."""
    block = config["asr"]["finetune"]
    unknown = [c for c in block["train_corpora"] if c not in config["corpora"]]
    if unknown:
        raise ValueError(
            f"config asr.finetune.train_corpora: {unknown} are not keys of corpora {sorted(config['corpora'])}"
        )
    forbidden = [s for s in block["train_splits"] if s in TEST_SPLITS or s == block["eval_split"]]
    if forbidden:
        raise ValueError(
            f"config asr.finetune.train_splits: {forbidden} may not be trained on "
            f"(test splits {TEST_SPLITS}; eval_split {block['eval_split']!r})"
        )
    return expand(paths.SPEECH_MANIFEST, corpus=block["train_corpora"], split=block["train_splits"])


def get_asr_eval_manifest():
    """Manifest of the split of ser_corpus that selects the ASR checkpoint (a fitting split, never a test split)."""
    split = config["asr"]["finetune"]["eval_split"]
    if split not in ROLES.fitting:
        raise ValueError(
            f"config asr.finetune.eval_split: {split!r} must be one of {list(ROLES.fitting)} "
            f"(not a test split {TEST_SPLITS})"
        )
    return ser_manifest(split)


def get_asr_benchmark_refs():
    """Model references of the benchmark's backbones."""
    return [entry["model"] for entry in config["asr"]["benchmark"]["backbones"]]


# --- tefe ---

TEFE_ARCHITECTURES = config["tefe"]["architectures"]


def tefe_text_manifest(split):
    """A split of the text corpus: train fits the encoders, dev stops them early and chooses one, test is reported."""
    if split not in names.TEXT_SPLITS:
        raise ValueError(f"tefe_text_manifest: {split!r} is not one of {names.TEXT_SPLITS}")
    return paths.TEXT_MANIFEST.format(split=split)


def get_tefe_model_config(wildcards):
    """tefe.models.<arch> (its training overrides included): only that block retrains it."""
    return config["tefe"]["models"][wildcards.arch]


def get_tefe_train_threads(wildcards):
    """torch threads of one architecture's training: its training override, else tefe.training.threads."""
    override = config["tefe"]["models"][wildcards.arch].get("training", {})
    return int(override.get("threads", config["tefe"]["training"]["threads"]))


def get_tefe_test_texts():
    """Every file holding a test split's text (never embedding training text): the text corpus's test
    split (manifest and table), and each speech test split's manifest, transcripts and table."""
    files = [tefe_text_manifest("test")]
    files += [ser_manifest(split) for split in TEST_SPLITS] + expand(paths.TRANSCRIPTS, split=TEST_SPLITS)
    # A table split by the workflow holds its test rows too: the whole table is refused.
    text_table = config.get("text_corpus", {}).get("table")
    if isinstance(text_table, dict):
        files += [text_table["test"]] if "test" in text_table else []
    elif text_table:
        files.append(text_table)
    speech_table = config["corpora"][SER_CORPUS].get("table")
    if isinstance(speech_table, dict):
        files += [speech_table[split] for split in TEST_SPLITS if split in speech_table]
    elif speech_table:
        files.append(speech_table)
    return files


def get_tefe_vectors(wildcards):
    """The user's word vectors file when tefe.embedding.source is file (an input: a new file rebuilds)."""
    embedding = config["tefe"]["embedding"]
    return [embedding["vectors"]] if embedding["source"] == "file" else []


def get_tefe_encoder(wildcards):
    """model.pt and vocab.json of the encoder that select_tefe chose (read once the checkpoint ran).

    Only the chosen model is an input, so retraining another architecture that stays unchosen
    does not rerun feature extraction.
    """
    arch = read_json(checkpoints.select_tefe.get().output.selection)["selected"]
    return {"model": paths.TEFE_MODEL.format(arch=arch), "vocab": paths.TEFE_MODEL_VOCAB.format(arch=arch)}


# The other backends in the table: the TF-IDF reference, and the configured backend if another.
TEFE_TABLE_BACKENDS = list(
    dict.fromkeys([names.TEFE_REFERENCE_BACKEND] + [b for b in [config["tefe"]["backend"]] if b != "neural"])
)


def get_tefe_backend_block(wildcards):
    """tefe.<backend>: only that block refits that backend."""
    return config["tefe"][wildcards.backend]


def get_tefe_backend_threads(wildcards):
    """CPU threads of a backend's jobs (tefe.<backend>.threads; TF-IDF: 1)."""
    return int(config["tefe"][wildcards.backend].get("threads", 1))


def get_tefe_transcript_column(wildcards):
    """Transcript column a feature set is extracted from."""
    return names.TEFE_FEATURE_SETS[wildcards.feature_set]


def get_tefe_targets():
    """TEFE's final artifacts: features of every split (and of the references if configured), the table."""
    feature_sets = ["features"] + (["features_reference"] if config["tefe"]["reference_features"] else [])
    backend = config["tefe"]["backend"]
    if backend == "neural":
        features = expand(paths.TEFE_FEATURES, feature_set=feature_sets, split=SPLITS)
    else:
        features = expand(paths.TEFE_BACKEND_FEATURES, backend=backend, feature_set=feature_sets, split=SPLITS)
    return features + [paths.TEFE_TABLE_MD]


# --- fusion ---
wildcard_constraints:
    modality="|".join(names.MODALITIES),
    feature_set="|".join(names.FEATURE_SETS),
    classifier="|".join(names.CLASSIFIERS),
    variant="|".join(names.VARIANTS),


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
    return paths.SEFE_FEATURES.format(backend=config["sefe"]["backend"], split=split)


def get_tefe_features(split):
    """The text feature file of a split: fusion.features.text, else the output of the TEFE backend tefe.backend."""
    override = config["fusion"]["features"]["text"]
    if override:
        return override.format(split=split)
    backend = config["tefe"]["backend"]
    if backend == "neural":
        return paths.TEFE_FEATURES.format(feature_set="features", split=split)
    return paths.TEFE_BACKEND_FEATURES.format(backend=backend, feature_set="features", split=split)


def get_modality_features(wildcards):
    """Feature files of one modality, one per split in SPLITS order."""
    get = get_sefe_features if wildcards.modality == "acoustic" else get_tefe_features
    return [get(split) for split in SPLITS]


def get_pooled_features(wildcards):
    """Pooled files (every split) of the modalities a feature set is made of (early: both)."""
    modalities = names.MODALITIES if wildcards.feature_set == "early" else [wildcards.feature_set]
    return expand(paths.POOLED, modality=modalities, split=SPLITS)


def get_classifier_block(wildcards):
    """fusion.classifiers.<classifier>: only that block retrains that classifier."""
    return config["fusion"]["classifiers"][wildcards.classifier]


def get_classifier_threads(wildcards):
    """fusion.threads.<classifier>: a scheduling setting, not a param (changing it reruns nothing)."""
    return int(config["fusion"]["threads"][wildcards.classifier])


def get_variant_inputs(wildcards):
    """What a variant reads: its classifiers' outputs (and, for hybrid, the ensemble weights).

    One run per (feature set, classifier) of the variant, feature set outermost: ``summaries``
    and ``oof`` hold one file per run, ``probabilities`` one per run and split (runs in that
    order, SPLITS order within a run).
    """
    runs = [
        {"feature_set": feature_set, "classifier": classifier}
        for feature_set in names.VARIANT_FEATURE_SETS[wildcards.variant]
        for classifier in names.CLASSIFIERS
    ]
    inputs = {
        "summaries": [paths.CLASSIFIER_SUMMARY.format(**run) for run in runs],
        "probabilities": [
            paths.CLASSIFIER_PROBABILITIES.format(**run, split=split) for run in runs for split in SPLITS
        ],
        "oof": [paths.CLASSIFIER_OOF.format(**run) for run in runs],
    }
    if wildcards.variant == "hybrid":
        inputs["weights"] = paths.ENSEMBLE_WEIGHTS
    return inputs


def get_variant_config(wildcards):
    """The part of fusion.variants a variant uses (hybrid: none), so editing the rest reruns nothing else."""
    block = config["fusion"]["variants"]
    if wildcards.variant == "hybrid":
        return {}
    keys = ["classifier", "selection_metric"] + (["late_weights"] if wildcards.variant == "late" else [])
    return {key: block[key] for key in keys}


def get_report_variants():
    """Rows of Table 2, the confusion matrices and the challenge report: the classifier variants
    (acoustic_aug only with challenge.augmentation.enabled), the enabled neural heads
    (fusion.heads.variants), then the +rules rows."""
    variants = [v for v in names.CLASSIFIER_VARIANTS if v != names.AUGMENTED_VARIANT]
    if config["challenge"]["augmentation"]["enabled"]:
        variants.append(names.AUGMENTED_VARIANT)
    variants += list(config["fusion"]["heads"]["variants"])
    return variants + [names.rules_variant(v) for v in config["challenge"]["rules"]["variants"]]


def get_report_metrics():
    """The metrics file of every report variant, in get_report_variants() order."""
    return [paths.VARIANT_METRICS.format(variant=variant) for variant in get_report_variants()]


def get_figure2_runs():
    """The runs of Figure 2 with their files: label, wer (a number, or split -> WER file) and
    metrics (variant -> metrics file; the first run also the baseline variant's)."""
    block = config["fusion"]["figure2"]
    unknown = [v for v in block["variants"] if v not in get_report_variants()]
    if unknown:
        raise ValueError(
            f"config fusion.figure2.variants: {unknown} are not made by this workflow "
            f"({get_report_variants()}; a <variant>+rules row needs <variant> in challenge.rules.variants)"
        )
    runs = []
    for number, run in enumerate(block["runs"]):
        variants = [v for v in block["variants"] if v in get_report_variants()]
        variants += [block["baseline"]] if block["baseline"] and number == 0 else []
        wer = run["wer"]
        runs.append(
            {
                "label": run["label"],
                "wer": {split: wer.format(split=split) for split in TEST_SPLITS} if isinstance(wer, str) else wer,
                "metrics": {
                    v: str(paths.in_run(paths.VARIANT_METRICS, run["results_dir"], variant=v)) for v in variants
                },
            }
        )
    return runs


def get_figure2_inputs(wildcards):
    """Metrics and WER files of every run plotted in Figure 2."""
    files = []
    for run in get_figure2_runs():
        files += list(run["metrics"].values())
        if isinstance(run["wer"], dict):
            files += list(run["wer"].values())
    return files


def get_sequence_files(modality):
    """Sequence files (one per split, SPLITS order) of a modality: fusion.heads.sequences.<modality>,
    else the configured SEFE backend's frames or the chosen TEFE encoder's token states."""
    override = config["fusion"]["heads"]["sequences"][modality]
    if override:
        return [override.format(split=split) for split in SPLITS]
    if modality == "acoustic":
        return expand(paths.SEFE_FRAMES, backend=config["sefe"]["backend"], split=SPLITS)
    return expand(paths.TEFE_TOKENS, split=SPLITS)


def get_fusion_targets():
    """The fusion stage's final artifacts (the headline metrics and everything in the report)."""
    return [
        paths.HEADLINE_METRICS,
        paths.ENSEMBLE_WEIGHTS,
        paths.TABLE2_MD,
        paths.TABLE2_CSV,
        paths.FIGURE2_PNG,
        paths.FIGURE2_SVG,
        paths.CONFUSION_MATRICES,
    ]


# --- challenge ---
# The output name of apply_lexicon_rules: "{variant}+rules" (variant: the row the rules follow).
RULES_VARIANT_WILDCARD = f"{{variant}}{names.RULES_SUFFIX}"


def get_rules_transcripts(split):
    """The transcripts the lexicon rules read for ``split`` (challenge.rules.transcripts)."""
    source = config["challenge"]["rules"]["transcripts"]
    if source == "asr":
        return paths.TRANSCRIPTS.format(split=split)
    if source == "reference":
        return ser_manifest(split)
    return source.format(split=split)


def get_challenge_syer_inputs():
    """The ASR scores files of the test splits that give SyER (none when challenge.score.syer is a number)."""
    source = config["challenge"]["score"]["syer"]
    if isinstance(source, (int, float)):
        return []
    template = paths.ASR_WER if source == "asr" else source
    return [template.format(split=split) for split in TEST_SPLITS]


def get_challenge_targets():
    """The challenge report (its inputs: every report variant, the +rules rows included)."""
    return [paths.CHALLENGE_MD, paths.CHALLENGE_JSON]


def get_augmentation_block():
    """challenge.augmentation without its switches (which say who reads the copies, not how they are made)."""
    return {key: value for key, value in config["challenge"]["augmentation"].items() if key not in ("enabled", "asr")}


def get_asr_augmented_manifests():
    """The augmented training copies as ASR training data (challenge.augmentation.asr), else nothing.
    The copies are rows of ROLES.train, so that split must be one of asr.finetune.train_splits."""
    if not config["challenge"]["augmentation"]["asr"]:
        return []
    train_splits = config["asr"]["finetune"]["train_splits"]
    if ROLES.train not in train_splits:
        raise ValueError(
            f"config challenge.augmentation.asr: the copies are rows of the training split {ROLES.train!r}, "
            f"which asr.finetune.train_splits {train_splits} does not list"
        )
    return [paths.AUGMENTED_MANIFEST]


def get_augmented_sefe_features():
    """SEFE features of the augmented training copies (the configured backend)."""
    if config["challenge"]["augmentation"]["enabled"] and config["fusion"]["features"]["acoustic"]:
        raise ValueError(
            "config challenge.augmentation.enabled needs the SEFE stage's features of the augmented audio; "
            "fusion.features.acoustic points at precomputed files instead"
        )
    return paths.SEFE_AUGMENTED_FEATURES.format(backend=config["sefe"]["backend"], split=ROLES.train)
