# Input and params functions of the challenge stage (rules/challenge.smk).

# The output name of apply_lexicon_rules: "{variant}+rules" (variant: the row the rules follow).
RULES_VARIANT_WILDCARD = f"{{variant}}{names.RULES_SUFFIX}"


def get_rules_system(wildcards):
    """The ASR system of an apply_lexicon_rules job (a +rules row always reads transcripts)."""
    return row_system(wildcards, names.rules_variant(wildcards.variant))


def get_rules_transcripts(wildcards):
    """The transcripts the lexicon rules read, one per split (challenge.rules.transcripts): the job's ASR
    system's, the manifests' reference text, or a template with {split} (and {system})."""
    source = config["challenge"]["rules"]["transcripts"]
    system = get_rules_system(wildcards)
    if source == "asr":
        return expand(paths.TRANSCRIPTS, system=system, split=SPLITS)
    if source == "reference":
        return [ser_manifest(split) for split in SPLITS]
    return [source.format(split=split, system=system) for split in SPLITS]


def get_rules_base_inputs(wildcards):
    """The metrics and probabilities of the row the lexicon rules follow (shared, or the job's system's)."""
    system = get_rules_system(wildcards)
    return {
        "metrics": variant_metrics(wildcards.variant, system),
        "probabilities": [
            variant_file(paths.VARIANT_PROBABILITIES, wildcards.variant, system, split=split) for split in SPLITS
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


def get_augmented_sefe_features():
    """SEFE features of the augmented training copies (the configured backend)."""
    return paths.SEFE_AUGMENTED_FEATURES.format(backend=config["sefe"]["backend"], split=ROLES.train)
