# Input and params functions of the TEFE stage (rules/tefe.smk).
import os

from workflow_scripts.common.files import read_json
from workflow_scripts.tefe.registry import TEXT_BACKENDS

# tefe.backend's registry entry: a standalone backend has its own rules (train_tefe_backend ...),
# the neural one is the architecture select_tefe chose.
TEFE_BACKEND = TEXT_BACKENDS[config["tefe"]["backend"]]
# The standalone backends in the table: the TF-IDF reference, and the configured backend if another.
TEFE_TABLE_BACKENDS = tuple(
    dict.fromkeys([names.TEFE_REFERENCE_BACKEND] + ([TEFE_BACKEND.name] if TEFE_BACKEND.standalone else []))
)


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


def get_tefe_backend_block(wildcards):
    """tefe.<backend>: only that block refits that backend."""
    return config["tefe"][wildcards.backend]


def get_tefe_backend_threads(wildcards):
    """CPU threads of a backend's jobs: tefe.<backend>.threads for a threaded backend (its registry entry), else 1."""
    block = config["tefe"][wildcards.backend]
    return int(block["threads"]) if TEXT_BACKENDS[wildcards.backend].threaded else 1


def tefe_backend_gpus(rule_name):
    """GPUs of one job of a text backend's rule: resources.<rule_name>.gpu where the backend needs one (its
    registry entry; TF-IDF needs none)."""
    return backend_gpus(rule_name, lambda backend: TEXT_BACKENDS[backend].needs_gpu)


def get_tefe_token_files(system):
    """Token-state sequence files (SPLITS order) of an ASR system's transcripts for the fusion heads: the
    configured backend's own (one that writes_tokens), else the selected neural encoder's."""
    if TEFE_BACKEND.writes_tokens:
        return expand(paths.TEFE_BACKEND_TOKENS, system=system, backend=TEFE_BACKEND.name, split=SPLITS)
    return expand(paths.TEFE_TOKENS, system=system, split=SPLITS)


def get_tefe_transcript_column(wildcards):
    """Transcript column a feature set is extracted from."""
    return names.TEFE_FEATURE_SETS[wildcards.feature_set]


def get_tefe_targets():
    """TEFE's final artifacts: features of every split for every ASR system (and of the reference
    transcripts, once, with the primary system's files, if configured), the table."""
    backend = TEFE_BACKEND.name
    template = paths.TEFE_BACKEND_FEATURES if TEFE_BACKEND.standalone else paths.TEFE_FEATURES
    features = expand(template, backend=backend, system=ASR_SYSTEMS, feature_set="features", split=SPLITS)
    if config["tefe"]["reference_features"]:
        features += expand(
            template, backend=backend, system=PRIMARY_SYSTEM, feature_set="features_reference", split=SPLITS
        )
    return features + [paths.TEFE_TABLE_MD]
