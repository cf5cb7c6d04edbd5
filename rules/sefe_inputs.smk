# Input and params functions of the SEFE stage (rules/sefe.smk).
from workflow_scripts.sefe.registry import SEFE_BACKENDS


def get_sefe_backend_block(wildcards):
    """The block of the job's backend (sefe.<backend>): editing another backend's block reruns nothing here."""
    return config["sefe"][wildcards.backend]


def get_sefe_model_inputs(wildcards):
    """The model directory of the backend's block when this workflow builds it (the converted Whisper
    base of whisper_encoder, or the ASR stage's model for `finetuned`)."""
    model = config["sefe"][wildcards.backend].get("model", "")
    return [paths.ASR_FINETUNED_MODEL] if model == names.FINETUNED else get_asr_model_inputs(model)


def get_sefe_layer_choice(wildcards):
    """The layer choice (written by choose_sefe_layer) when the backend's block says `layer: auto`, else nothing."""
    if config["sefe"][wildcards.backend].get("layer") != "auto":
        return []
    return [paths.SEFE_LAYER_CHOICE.format(backend=wildcards.backend)]


def get_layer_choice_inputs(wildcards):
    """What choose_sefe_layer reads: the training split's all-layer features and manifest, and the
    selection split's when the criterion is `selection`; never a test split."""
    splits = {"train": ROLES.train}
    if config["sefe"][wildcards.backend]["layer_choice"]["criterion"] == "selection":
        splits["selection"] = ROLES.selection
    inputs = {}
    for role, split in splits.items():
        inputs[f"{role}_features"] = paths.SEFE_LAYER_FEATURES.format(backend=wildcards.backend, split=split)
        inputs[f"{role}_manifest"] = ser_manifest(split)
    return inputs


def sefe_gpus(rule_name):
    """GPUs of one job of a SEFE rule: resources.<rule_name>.gpu where the backend needs one (its registry entry)."""
    return backend_gpus(rule_name, lambda backend: SEFE_BACKENDS[backend].needs_gpu)


def prosody_f0_threads():
    """Threads of an extract_prosody_f0 job: sefe.threads torch threads for the crepe network; librosa's
    trackers (yin, pyin) run on one."""
    return config["sefe"]["threads"] if config["sefe"]["prosody"]["f0"]["tracker"] == "crepe" else 1


def get_sefe_targets(backend=None):
    """The SEFE evaluation of the configured backend (it needs the features of every split)."""
    return [paths.SEFE_EVALUATION.format(backend=backend or config["sefe"]["backend"])]
