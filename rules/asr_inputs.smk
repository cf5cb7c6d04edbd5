# Input and params functions of the ASR stage (rules/asr.smk).


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
    return expand(paths.SPEECH_MANIFEST, corpus=block["train_corpora"], split=block["train_splits"])


def get_asr_augmented_manifests():
    """The augmented training copies as ASR training data (challenge.augmentation.asr), else nothing.
    The copies are rows of ROLES.train, which asr.finetune.train_splits lists (a config check)."""
    return [paths.AUGMENTED_MANIFEST] if config["challenge"]["augmentation"]["asr"] else []


def get_asr_eval_manifest():
    """Manifest of the split of ser_corpus that selects the ASR checkpoint (a fitting split, never a test split)."""
    return ser_manifest(config["asr"]["finetune"]["eval_split"])


def get_asr_snapshots():
    """finetune_whisper's snapshot directories (asr.finetune.snapshot_steps), in that order."""
    return [paths.ASR_SNAPSHOT.format(step=step) for step in config["asr"]["finetune"]["snapshot_steps"]]


def get_finetune_gpus(wildcards):
    """GPUs of the finetune_whisper job: one per data-parallel process (asr.finetune.processes > 1) when it
    is a GPU job (resources.finetune_whisper.gpu > 0); with one process resources.finetune_whisper.gpu."""
    configured = gpu_rule_resource("finetune_whisper", "gpu")
    processes = config["asr"]["finetune"]["processes"]
    return processes if configured > 0 and processes > 1 else configured


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


def get_asr_benchmark_refs():
    """Model references of the benchmark's backbones."""
    return [entry["model"] for entry in config["asr"]["benchmark"]["backbones"]]


def get_asr_targets():
    """The ASR stage's final artifacts: every system's WER on every split, the backbone benchmark."""
    return expand(paths.ASR_WER, system=ASR_SYSTEMS, split=SPLITS) + [paths.ASR_BENCHMARK_JSON]
