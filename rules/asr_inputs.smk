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


def get_asr_eval_manifest():
    """Manifest of the split of ser_corpus that selects the ASR checkpoint (a fitting split, never a test split)."""
    split = config["asr"]["finetune"]["eval_split"]
    if split not in ROLES.fitting:
        raise ValueError(
            f"config asr.finetune.eval_split: {split!r} must be one of {list(ROLES.fitting)} "
            f"(not a test split {TEST_SPLITS})"
        )
    return ser_manifest(split)


def get_asr_snapshots():
    """finetune_whisper's snapshot directories (asr.finetune.snapshot_steps), in that order."""
    return [paths.ASR_SNAPSHOT.format(step=step) for step in config["asr"]["finetune"]["snapshot_steps"]]


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
