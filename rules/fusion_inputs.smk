# Input and params functions of the fusion stage (rules/fusion.smk). A result that reads an ASR
# system's transcripts lives under that system's {scope}, any other under the shared one
# (workflow_scripts.fusion.rows); each function derives the job's system from wildcards.scope.


# --- features ---
def get_sefe_features(split):
    """The acoustic feature file of a split: fusion.features.acoustic, else the SEFE stage's output."""
    override = config["fusion"]["features"]["acoustic"]
    if override:
        return override.format(split=split)
    return paths.SEFE_FEATURES.format(backend=config["sefe"]["backend"], split=split)


def get_tefe_features(split, system):
    """The text feature file of a split of an ASR system's transcripts: fusion.features.text (a template
    with {split}, and {system} where the files differ by system), else the output of the TEFE backend tefe.backend."""
    override = config["fusion"]["features"]["text"]
    if override:
        return override.format(split=split, system=system)
    template = paths.TEFE_BACKEND_FEATURES if TEFE_BACKEND.standalone else paths.TEFE_FEATURES
    return template.format(system=system, backend=TEFE_BACKEND.name, feature_set="features", split=split)


def get_modality_features(wildcards):
    """Feature files of one modality, one per split in SPLITS order (text: the job's system's; a reference
    acoustic feature set: its own SEFE backend's, names.REFERENCE_FEATURE_SETS)."""
    system = feature_set_system(wildcards, wildcards.modality)
    if names.feature_set_reads_transcripts(wildcards.modality):
        return [get_tefe_features(split, system) for split in SPLITS]
    if wildcards.modality in names.REFERENCE_FEATURE_SETS:
        backend = names.REFERENCE_FEATURE_SETS[wildcards.modality]
        return [paths.SEFE_FEATURES.format(backend=backend, split=split) for split in SPLITS]
    return [get_sefe_features(split) for split in SPLITS]


def get_pooling_block(wildcards):
    """fusion.pooling.<modality>; a reference acoustic feature set takes the acoustic one."""
    return config["fusion"]["pooling"][names.modality_of(wildcards.modality)]


def pooled_files(feature_set, system, splits):
    """The pooled files of ``splits`` of the modalities feature set ``feature_set`` is made of
    (names.FEATURE_SET_POOLED), each under its own scope for ASR ``system``."""
    return [
        paths.POOLED.format(scope=rows.feature_set_scope(modality, system), modality=modality, split=split)
        for modality in names.FEATURE_SET_POOLED[feature_set]
        for split in splits
    ]


def get_pooled_features(wildcards):
    """Pooled files (every split) of the modalities the job's feature set is made of."""
    system = feature_set_system(wildcards, wildcards.feature_set)
    return pooled_files(wildcards.feature_set, system, SPLITS)


# --- classifiers, ensemble, variants ---
def get_classifier_block(wildcards):
    """fusion.classifiers.<classifier>: only that block retrains that classifier."""
    return config["fusion"]["classifiers"][wildcards.classifier]


def get_classifier_threads(wildcards):
    """fusion.threads.<classifier>: a scheduling setting, not a param (changing it reruns nothing)."""
    return int(config["fusion"]["threads"][wildcards.classifier])


def classifier_file(template, feature_set, classifier, system, **fields):
    """A file of classifier ``classifier`` on ``feature_set`` for ASR ``system`` (shared when acoustic-only)."""
    scope = rows.feature_set_scope(feature_set, system)
    return template.format(scope=scope, feature_set=feature_set, classifier=classifier, **fields)


def ensemble_file(template, system):
    """A file of the ensemble (tuned on names.ENSEMBLE_FEATURE_SET) for ASR ``system``."""
    return template.format(scope=rows.feature_set_scope(names.ENSEMBLE_FEATURE_SET, system))


def get_ensemble_inputs(wildcards):
    """tune_ensemble's inputs for the job's ASR system: the ensemble members' models, summaries and out-of-fold
    probabilities on names.ENSEMBLE_FEATURE_SET (members in names.ENSEMBLE_MEMBERS order), and the pooled
    TRAINING files of both modalities (nothing of any other split)."""
    feature_set = names.ENSEMBLE_FEATURE_SET
    system = feature_set_system(wildcards, feature_set)

    def members(template):
        return [classifier_file(template, feature_set, member, system) for member in names.ENSEMBLE_MEMBERS]

    return {
        "models": members(paths.CLASSIFIER_MODEL),
        "summaries": members(paths.CLASSIFIER_SUMMARY),
        "oof": members(paths.CLASSIFIER_OOF),
        "pooled_train": pooled_files(feature_set, system, [ROLES.train]),
    }


def get_variant_inputs(wildcards):
    """What a variant reads: its classifiers' outputs (and, for an ensemble variant, the ensemble weights).

    One run per (feature set, classifier) of the variant, feature set outermost: ``summaries``
    and ``oof`` hold one file per run, ``probabilities`` one per run and split (runs in that
    order, SPLITS order within a run).
    """
    system = row_system(wildcards, wildcards.variant)
    runs = [
        (feature_set, classifier)
        for feature_set in names.VARIANT_FEATURE_SETS[wildcards.variant]
        for classifier in names.CLASSIFIERS
    ]
    inputs = {
        "summaries": [classifier_file(paths.CLASSIFIER_SUMMARY, *run, system) for run in runs],
        "probabilities": [
            classifier_file(paths.CLASSIFIER_PROBABILITIES, *run, system, split=split)
            for run in runs
            for split in SPLITS
        ],
        "oof": [classifier_file(paths.CLASSIFIER_OOF, *run, system) for run in runs],
    }
    if wildcards.variant in names.ENSEMBLE_VARIANTS:
        inputs["weights"] = ensemble_file(paths.ENSEMBLE_WEIGHTS, system)
    return inputs


def get_variant_config(wildcards):
    """The keys of fusion.variants a variant uses (names.VARIANT_CONFIG_KEYS), so editing the rest reruns nothing else."""
    return {key: config["fusion"]["variants"][key] for key in names.VARIANT_CONFIG_KEYS[wildcards.variant]}


# --- neural heads and the vote ---
def get_head_constraint(head):
    """The wildcard constraint of a head's rule: the head and its ablations."""
    return one_of([name for name, variant in HEAD_VARIANTS.items() if variant.head == head])


def get_head_block(wildcards):
    """The head's block updated by the variant's ablation overrides: the variant's only config."""
    return HEAD_VARIANTS[wildcards.variant].block


def get_head_overrides(wildcards):
    """The variant's ablation overrides (fusion.heads.ablations.<variant>; none for a head itself)."""
    return HEAD_VARIANTS[wildcards.variant].overrides


def get_head_work_dir(wildcards):
    """The per-epoch training state of a head job (under the job's scope)."""
    return paths.HEAD_WORK.format(scope=wildcards.scope, variant=wildcards.variant)


def get_sequence_files(modality):
    """An input function: the sequence files (one per split, SPLITS order) of a modality for the job's ASR
    system: fusion.heads.sequences.<modality> (a template with {split}, and {system} where the files
    differ by system), else the configured SEFE backend's frames, the prosody tokens (both shared) or
    the TEFE token states of the system's transcripts (get_tefe_token_files)."""

    def files(wildcards):
        system = row_system(wildcards, wildcards.variant)
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
    """An input function: the sequence files of ``modality`` when the job's head variant reads them, else none."""

    def files(wildcards):
        reads = modality in HEAD_VARIANTS[wildcards.variant].sequence_modalities
        return get_sequence_files(modality)(wildcards) if reads else []

    return files


def get_xattn_text_inputs(wildcards):
    """The text side of an xattn variant: token-state sequence files (text_encoder frozen), or the
    ASR transcripts and the chosen TEFE encoder that the head fine-tunes (finetune)."""
    if HEAD_VARIANTS[wildcards.variant].block["text_encoder"] == "finetune":
        system = row_system(wildcards, wildcards.variant)
        return {"transcripts": expand(paths.TRANSCRIPTS, system=system, split=SPLITS), **get_tefe_encoder(wildcards)}
    return {"text": get_sequence_files("text")(wildcards)}


def get_vote_inputs(wildcards):
    """The members' probabilities (member outermost, SPLITS order within) and metrics for the job's system."""
    system = row_system(wildcards, names.VOTE_VARIANT)
    members = config["fusion"]["vote"]["members"]
    return {
        "probabilities": [
            variant_file(paths.VARIANT_PROBABILITIES, m, system, split=s) for m in members for s in SPLITS
        ],
        "metrics": [variant_metrics(member, system) for member in members],
    }


# --- report rows ---
def variant_file(template, variant, system, **fields):
    """A file of report row ``variant`` for ASR ``system`` (shared when the row reads no transcripts)."""
    return template.format(scope=row_scope(variant, system), variant=variant, **fields)


def variant_metrics(variant, system):
    """The metrics file of a report row for an ASR system (shared when the row reads no transcripts)."""
    return variant_file(paths.VARIANT_METRICS, variant, system)


def get_report_variants():
    """Rows of Table 2, the confusion matrices and the challenge report (fusion.rows.report_rows)."""
    return rows.report_rows(config)


def get_text_report_variants():
    """The report rows that read transcripts (one per ASR system): Table 3's columns."""
    return [variant for variant in get_report_variants() if rows.reads_transcripts(variant, config["fusion"])]


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
    return get_system_runs(block["variants"], block["baseline"])


def get_table3_runs():
    """The rows of Table 3, one per ASR system: its WER files and its text-dependent report rows
    (fusion.table3.variants; null: all of them)."""
    chosen = config["fusion"]["table3"]["variants"]
    return get_system_runs(get_text_report_variants() if chosen is None else chosen)


def runs_inputs(runs):
    """Metrics and WER files of Figure 2's or Table 3's runs."""
    files = []
    for run in runs:
        files += list(run["metrics"].values()) + list(run["wer"].values())
    return list(dict.fromkeys(files))


def get_fusion_targets():
    """The fusion stage's final artifacts (the headline metrics and everything in the report)."""
    return [
        paths.HEADLINE_METRICS,
        ensemble_file(paths.ENSEMBLE_WEIGHTS, PRIMARY_SYSTEM),
        paths.TABLE2_MD,
        paths.TABLE2_CSV,
        paths.FIGURE2_PNG,
        paths.FIGURE2_SVG,
        paths.CONFUSION_MATRICES,
        paths.TABLE3_MD,
        paths.TABLE3_CSV,
    ]
