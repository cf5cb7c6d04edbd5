# Helpers shared by the rules files (config validation, wildcard constraints, input and params
# functions). The rules files hold rules only. Names and result paths come from
# workflow_scripts.common.names / .paths, defined once for the rules, the scripts and predict.
import os
import re
from pathlib import Path

from workflow_scripts.common import names, paths
from workflow_scripts.common.code_inputs import code_inputs
from workflow_scripts.common.config_schema import validate_config
from workflow_scripts.common.files import read_json
from workflow_scripts.data.corpus_config import check_split_block
from workflow_scripts.fusion.heads.variants import head_variants

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


# --- asr systems --- (asr.systems): every transcript-dependent result exists once per system.
# name -> asr.transcribe with the system's own keys over it.
ASR_SYSTEMS = names.asr_systems(config["asr"])
PRIMARY_SYSTEM = names.primary_system(config["asr"])


wildcard_constraints:
    corpus="|".join(config["corpora"]),
    split="|".join(SPLITS),
    system="|".join(re.escape(name) for name in ASR_SYSTEMS),


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
    targets += expand(paths.ASR_WER, system=ASR_SYSTEMS, split=SPLITS) + [paths.ASR_BENCHMARK_JSON]
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


def get_asr_system_block(wildcards):
    """The transcribe rule's params: asr.transcribe with the system's own keys (asr.systems) over it, so
    editing one system reruns only that system's chain."""
    return ASR_SYSTEMS[wildcards.system]


def get_asr_system_models(wildcards):
    """The transcribe rule's model inputs: ``finetuned`` (the fine-tuned model, when the system names it) and
    ``models`` (another directory this workflow builds, e.g. a snapshot); none for the oracle."""
    block = get_asr_system_block(wildcards)
    if block["backend"] == names.ORACLE_BACKEND:
        return {"finetuned": [], "models": []}
    return {"finetuned": get_asr_finetuned_input(block["model"]), "models": get_asr_model_inputs(block["model"])}


def get_asr_snapshots():
    """finetune_whisper's snapshot directories (asr.finetune.snapshot_steps), in that order."""
    return [paths.ASR_SNAPSHOT.format(step=step) for step in config["asr"]["finetune"]["snapshot_steps"]]


def feature_set_path(template, feature_set, system, **wildcards):
    """A path of feature set (or modality) ``feature_set`` for ``system``: shared when it holds no text
    features (names.feature_set_reads_transcripts), else under the system's directory."""
    reads_text = names.feature_set_reads_transcripts(feature_set)
    return paths.for_system(template, reads_text, system).format(feature_set=feature_set, **wildcards)


def variant_path(template, variant, system, **wildcards):
    """A path of report row ``variant`` for ``system``: shared when it reads no transcripts
    (reads_text), else under the system's directory."""
    return paths.for_system(template, reads_text(variant), system).format(variant=variant, **wildcards)


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
    files += [ser_manifest(split) for split in TEST_SPLITS]
    files += expand(paths.TRANSCRIPTS, system=ASR_SYSTEMS, split=TEST_SPLITS)
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


def get_tefe_refused_extra_texts():
    """build_tefe_embedding's params: the extra texts (tefe.embedding.extra_texts) that are a test split's
    text, which the rule refuses; only these, so that adding an ASR system (more test transcripts) reruns nothing."""
    test_texts = {os.path.realpath(path): path for path in get_tefe_test_texts()}
    extra = [os.path.realpath(path) for path in config["tefe"]["embedding"]["extra_texts"]]
    return [test_texts[path] for path in extra if path in test_texts]


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


def get_tefe_backend_gpus(rule_name):
    """GPUs of one backend job: resources.<rule_name>.gpu for the transformer; TF-IDF needs none."""

    def gpus(wildcards):
        return 0 if wildcards.backend == "tfidf" else gpu_rule_resource(rule_name, "gpu")

    return gpus


def get_tefe_token_files(system):
    """Token-state sequence files (SPLITS order) of an ASR system's transcripts for the fusion heads: the
    configured backend's own (names.TEFE_TOKEN_BACKENDS), else the selected neural encoder's."""
    backend = config["tefe"]["backend"]
    if backend in names.TEFE_TOKEN_BACKENDS:
        return expand(paths.TEFE_BACKEND_TOKENS, system=system, backend=backend, split=SPLITS)
    return expand(paths.TEFE_TOKENS, system=system, split=SPLITS)


def get_tefe_transcript_column(wildcards):
    """Transcript column a feature set is extracted from."""
    return names.TEFE_FEATURE_SETS[wildcards.feature_set]


def get_tefe_targets():
    """TEFE's final artifacts: features of every split for every ASR system (and of the reference
    transcripts, once, with the primary system's files, if configured), the table."""
    backend = config["tefe"]["backend"]
    template = paths.TEFE_FEATURES if backend == "neural" else paths.TEFE_BACKEND_FEATURES
    features = expand(template, backend=backend, system=ASR_SYSTEMS, feature_set="features", split=SPLITS)
    if config["tefe"]["reference_features"]:
        features += expand(
            template, backend=backend, system=PRIMARY_SYSTEM, feature_set="features_reference", split=SPLITS
        )
    return features + [paths.TEFE_TABLE_MD]


# --- fusion ---
# The neural heads' variants (each head and its ablations), checked once when the DAG is built.
HEAD_VARIANTS = head_variants(config["fusion"]["heads"])


wildcard_constraints:
    modality="|".join(names.MODALITIES),
    feature_set="|".join(names.FEATURE_SETS),
    classifier="|".join(names.CLASSIFIERS),
    variant="|".join(names.CLASSIFIER_VARIANTS + tuple(HEAD_VARIANTS)),


def head_sequence_modalities(variant):
    """The sequence feature sets a head variant reads: its graph nodes' sources, else all of them (xattn)."""
    block = HEAD_VARIANTS[variant].block
    if "nodes" in block:
        return {names.GRAPH_NODE_SOURCES[node] for node in block["nodes"]}
    return set(names.SEQUENCE_MODALITIES)


# Which of the variants beyond the classifier ones read transcripts (names.reads_transcripts): a head
# that reads the text token sequences; the vote when one of its members does.
OTHER_VARIANTS_READ_TEXT = {name: "text" in head_sequence_modalities(name) for name in HEAD_VARIANTS}


def reads_text(name):
    """Whether report row ``name`` depends on the transcripts, so exists once per ASR system."""
    return names.reads_transcripts(name, OTHER_VARIANTS_READ_TEXT)


OTHER_VARIANTS_READ_TEXT[names.VOTE_VARIANT] = any(reads_text(m) for m in config["fusion"]["vote"]["members"])


def get_head_work_dir(wildcards):
    """The per-epoch training state of a head job (its system's, when it has one)."""
    template = paths.per_system(paths.HEAD_WORK) if hasattr(wildcards, "system") else paths.HEAD_WORK
    return template.format(**wildcards)


def get_head_constraint(head, per_system):
    """The wildcard constraint of the head's training (per_system: of its per-system twin); the head and its
    ablations that read (per_system) or do not read transcripts."""
    chosen = [n for n, v in HEAD_VARIANTS.items() if v.head == head and reads_text(n) == per_system]
    return "|".join(chosen) or "(?!)"


# evaluate_vote's log and benchmark (with the {system} wildcard when its outputs are per system).
if reads_text(names.VOTE_VARIANT):
    VOTE_LOG, VOTE_BENCHMARK = (
        "logs/fusion/evaluate_vote/{system}.log",
        "results/benchmarks/fusion/evaluate_vote/{system}.tsv",
    )
else:
    VOTE_LOG, VOTE_BENCHMARK = "logs/fusion/evaluate_vote.log", "results/benchmarks/fusion/evaluate_vote.tsv"


def vote_path(template, **wildcards):
    """An output of evaluate_vote: per system ({system} wildcard) when the vote reads transcripts."""
    return paths.for_system(template, reads_text(names.VOTE_VARIANT), "{system}").format(
        variant=names.VOTE_VARIANT, system="{system}", **wildcards
    )


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


def get_tefe_features(split, system):
    """The text feature file of a split of an ASR system's transcripts: fusion.features.text (a template
    with {split}, and {system} where the files differ by system), else the output of the TEFE backend tefe.backend."""
    override = config["fusion"]["features"]["text"]
    if override:
        return override.format(split=split, system=system)
    backend = config["tefe"]["backend"]
    if backend == "neural":
        return paths.TEFE_FEATURES.format(system=system, feature_set="features", split=split)
    return paths.TEFE_BACKEND_FEATURES.format(system=system, backend=backend, feature_set="features", split=split)


def get_modality_features(wildcards):
    """Feature files of one modality, one per split in SPLITS order (text: the system's)."""
    if wildcards.modality == "acoustic":
        return [get_sefe_features(split) for split in SPLITS]
    return [get_tefe_features(split, wildcards.system) for split in SPLITS]


def get_pooled_features(wildcards):
    """Pooled files (every split) of the modalities a feature set is made of (early: both; text: the system's)."""
    modalities = names.MODALITIES if wildcards.feature_set == "early" else [wildcards.feature_set]
    system = wildcards.get("system")
    return [
        paths.for_system(paths.POOLED, names.feature_set_reads_transcripts(m), system).format(modality=m, split=split)
        for m in modalities
        for split in SPLITS
    ]


# The split of each wildcard's values between the shared rules and their per-system twins
# (`<rule>_per_system`, outputs under paths.per_system): acoustic-only values are shared.
def shared_and_per_system(values, reads_text):
    """``values`` split into (shared, per-system) wildcard constraints by ``reads_text``."""
    shared = [value for value in values if not reads_text(value)]
    per_system = [value for value in values if reads_text(value)]
    return "|".join(map(re.escape, shared)) or "(?!)", "|".join(map(re.escape, per_system)) or "(?!)"


SHARED_MODALITIES, SYSTEM_MODALITIES = shared_and_per_system(names.MODALITIES, names.feature_set_reads_transcripts)
SHARED_FEATURE_SETS, SYSTEM_FEATURE_SETS = shared_and_per_system(
    names.FEATURE_SETS, names.feature_set_reads_transcripts
)
SHARED_VARIANTS, SYSTEM_VARIANTS = shared_and_per_system(names.CLASSIFIER_VARIANTS, reads_text)


def get_ensemble_inputs(wildcards):
    """tune_ensemble's inputs for the job's ASR system: the ensemble members' models, summaries and out-of-fold
    probabilities on names.ENSEMBLE_FEATURE_SET (members in names.ENSEMBLE_MEMBERS order), and the pooled
    TRAINING files of both modalities (nothing of any other split)."""
    feature_set = names.ENSEMBLE_FEATURE_SET

    def members(template):
        return [feature_set_path(template, feature_set, wildcards.system, classifier=c) for c in names.ENSEMBLE_MEMBERS]

    return {
        "models": members(paths.CLASSIFIER_MODEL),
        "summaries": members(paths.CLASSIFIER_SUMMARY),
        "oof": members(paths.CLASSIFIER_OOF),
        "pooled_train": [
            paths.for_system(paths.POOLED, names.feature_set_reads_transcripts(m), wildcards.system).format(
                modality=m, split=ROLES.train
            )
            for m in names.MODALITIES
        ],
    }


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
    system = wildcards.get("system")
    runs = [
        {"feature_set": feature_set, "classifier": classifier}
        for feature_set in names.VARIANT_FEATURE_SETS[wildcards.variant]
        for classifier in names.CLASSIFIERS
    ]

    def at(template, run, **more):
        return feature_set_path(template, run["feature_set"], system, classifier=run["classifier"], **more)

    inputs = {
        "summaries": [at(paths.CLASSIFIER_SUMMARY, run) for run in runs],
        "probabilities": [at(paths.CLASSIFIER_PROBABILITIES, run, split=split) for run in runs for split in SPLITS],
        "oof": [at(paths.CLASSIFIER_OOF, run) for run in runs],
    }
    if wildcards.variant == "hybrid":
        inputs["weights"] = paths.per_system(paths.ENSEMBLE_WEIGHTS).format(system=system)
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
    (fusion.heads.variants), the vote (when fusion.vote.members is set), then the +rules rows."""
    variants = [v for v in names.CLASSIFIER_VARIANTS if v != names.AUGMENTED_VARIANT]
    if config["challenge"]["augmentation"]["enabled"]:
        variants.append(names.AUGMENTED_VARIANT)
    variants += list(config["fusion"]["heads"]["variants"])
    variants += [names.VOTE_VARIANT] if config["fusion"]["vote"]["members"] else []
    return variants + [names.rules_variant(v) for v in config["challenge"]["rules"]["variants"]]


def get_text_report_variants():
    """The report rows that read transcripts (one per ASR system): Table 3's columns."""
    return [variant for variant in get_report_variants() if reads_text(variant)]


def variant_metrics(variant, system):
    """The metrics file of a report row for an ASR system (shared when the row reads no transcripts)."""
    return variant_path(paths.VARIANT_METRICS, variant, system)


def get_report_metrics(system=None):
    """The metrics file of every report variant, in get_report_variants() order, for ``system``
    (default: asr.primary_system; acoustic-only rows are shared)."""
    return [variant_metrics(variant, system or PRIMARY_SYSTEM) for variant in get_report_variants()]


def get_system_runs(variants, baseline=None):
    """One entry per ASR system (asr.systems order) for Figure 2 and Table 3: label (the name), wer (split ->
    the system's WER file) and metrics (variant -> metrics file of ``variants``; the first system also
    ``baseline``'s, a shared acoustic-only row)."""
    runs = []
    for number, system in enumerate(ASR_SYSTEMS):
        shown = list(variants) + ([baseline] if baseline and number == 0 else [])
        runs.append(
            {
                "label": system,
                "wer": {split: paths.ASR_WER.format(system=system, split=split) for split in TEST_SPLITS},
                "metrics": {variant: variant_metrics(variant, system) for variant in shown},
            }
        )
    return runs


def get_figure2_runs():
    """The points of Figure 2, one per ASR system (get_system_runs of fusion.figure2's variants and baseline)."""
    block = config["fusion"]["figure2"]
    unknown = [v for v in block["variants"] if v not in get_report_variants()]
    if unknown:
        raise ValueError(
            f"config fusion.figure2.variants: {unknown} are not made by this workflow "
            f"({get_report_variants()}; a <variant>+rules row needs <variant> in challenge.rules.variants)"
        )
    return get_system_runs(block["variants"], block["baseline"])


def get_table3_runs():
    """The rows of Table 3, one per ASR system: its WER files and its text-dependent report rows
    (fusion.table3.variants; null: all of them)."""
    chosen = config["fusion"]["table3"]["variants"]
    if chosen is None:
        return get_system_runs(get_text_report_variants())
    unknown = [v for v in chosen if v not in get_text_report_variants()]
    if unknown:
        raise ValueError(
            f"config fusion.table3.variants: {unknown} are not text-dependent rows of this workflow "
            f"({get_text_report_variants()})"
        )
    return get_system_runs(chosen)


def runs_inputs(runs):
    """Metrics and WER files of Figure 2's or Table 3's runs."""
    files = []
    for run in runs:
        files += list(run["metrics"].values()) + list(run["wer"].values())
    return list(dict.fromkeys(files))


def get_sequence_files(modality):
    """An input function: the sequence files (one per split, SPLITS order) of a modality for the job's ASR
    system: fusion.heads.sequences.<modality> (a template with {split}, and {system} where the files
    differ by system), else the configured SEFE backend's frames, the prosody tokens (both shared) or
    the TEFE token states of the system's transcripts (get_tefe_token_files)."""

    def files(wildcards):
        system = wildcards.get("system")
        override = config["fusion"]["heads"]["sequences"][modality]
        if override:
            return [override.format(split=split, system=system) for split in SPLITS]
        if modality == "acoustic":
            return expand(paths.SEFE_FRAMES, backend=config["sefe"]["backend"], split=SPLITS)
        if modality == "prosody":
            return expand(paths.PROSODY_TOKENS, split=SPLITS)
        return get_tefe_token_files(system)

    return files


def get_head_sequence_files(modality):
    """Input function of the graph head: the sequence files of ``modality`` when the variant's
    nodes read them, else none."""

    def files(wildcards):
        return (
            get_sequence_files(modality)(wildcards) if modality in head_sequence_modalities(wildcards.variant) else []
        )

    return files


def get_vote_inputs(kind):
    """The members' probabilities (member outermost, SPLITS order within) or metrics of fusion.vote."""
    members = config["fusion"]["vote"]["members"]
    known = list(names.CLASSIFIER_VARIANTS) + list(HEAD_VARIANTS)
    known += [names.rules_variant(v) for v in config["challenge"]["rules"]["variants"]]
    unknown = [member for member in members if member not in known]
    if unknown:
        raise ValueError(f"config fusion.vote.members: {unknown} are not variants of this workflow ({known})")

    def files(wildcards):
        system = wildcards.get("system")
        if kind == "metrics":
            return [variant_metrics(member, system) for member in members]
        return [
            variant_path(paths.VARIANT_PROBABILITIES, member, system, split=split)
            for member in members
            for split in SPLITS
        ]

    return files


def get_xattn_text_inputs(wildcards):
    """The text side of an xattn variant: token-state sequence files (text_encoder frozen), or the
    ASR transcripts and the chosen TEFE encoder that the head fine-tunes (finetune)."""
    if HEAD_VARIANTS[wildcards.variant].block["text_encoder"] == "finetune":
        return {
            "transcripts": expand(paths.TRANSCRIPTS, system=wildcards.system, split=SPLITS),
            **get_tefe_encoder(wildcards),
        }
    return {"text": get_sequence_files("text")(wildcards)}


def get_fusion_targets():
    """The fusion stage's final artifacts (the headline metrics and everything in the report)."""
    return [
        paths.HEADLINE_METRICS,
        paths.per_system(paths.ENSEMBLE_WEIGHTS).format(system=PRIMARY_SYSTEM),
        paths.TABLE2_MD,
        paths.TABLE2_CSV,
        paths.FIGURE2_PNG,
        paths.FIGURE2_SVG,
        paths.CONFUSION_MATRICES,
        paths.TABLE3_MD,
        paths.TABLE3_CSV,
    ]


# --- challenge ---
# The output name of apply_lexicon_rules: "{variant}+rules" (variant: the row the rules follow).
RULES_VARIANT_WILDCARD = f"{{variant}}{names.RULES_SUFFIX}"


def get_rules_transcripts(wildcards):
    """The transcripts the lexicon rules read, one per split (challenge.rules.transcripts): the job's ASR
    system's, the manifests' reference text, or a template with {split} (and {system})."""
    source = config["challenge"]["rules"]["transcripts"]
    if source == "asr":
        return expand(paths.TRANSCRIPTS, system=wildcards.system, split=SPLITS)
    if source == "reference":
        return [ser_manifest(split) for split in SPLITS]
    return [source.format(split=split, system=wildcards.system) for split in SPLITS]


def get_rules_base_inputs(wildcards):
    """The metrics and probabilities of the row the lexicon rules follow (shared, or the job's system's)."""
    metrics = variant_metrics(wildcards.variant, wildcards.system)
    return {
        "metrics": metrics,
        "probabilities": [
            variant_path(paths.VARIANT_PROBABILITIES, wildcards.variant, wildcards.system, split=split)
            for split in SPLITS
        ],
    }


def get_challenge_syer_inputs():
    """The ASR scores files of the test splits that give SyER (the primary ASR system's; none when
    challenge.score.syer is a number)."""
    source = config["challenge"]["score"]["syer"]
    if isinstance(source, (int, float)):
        return []
    if source == "asr":
        return expand(paths.ASR_WER, system=PRIMARY_SYSTEM, split=TEST_SPLITS)
    return [source.format(split=split, system=PRIMARY_SYSTEM) for split in TEST_SPLITS]


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
