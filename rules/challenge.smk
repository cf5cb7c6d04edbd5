# The VLSP 2025 challenge's practice (docs/challenge.md): lexicon cue rules after a variant's
# prediction (<variant>+rules rows of Table 2) and the challenge score of every variant per test
# split (results/challenge.{md,json}).


# One per ASR system (a +rules row reads transcripts; workflow_scripts.fusion.rows), after the
# system's row of the variant (or the shared one of an acoustic-only variant).
rule apply_lexicon_rules:
    input:
        # metrics and probabilities (one per split) of the row the rules follow.
        unpack(get_rules_base_inputs),
        manifests=[ser_manifest(split) for split in SPLITS],
        # One transcripts file per split (the manifests themselves for reference transcripts).
        transcripts=get_rules_transcripts,
        lexicon=config["challenge"]["rules"]["lexicon"],
        code=script_code("challenge/lexicon"),
    output:
        metrics=paths.VARIANT_METRICS.replace("{variant}", RULES_VARIANT_WILDCARD),
        probabilities=expand(
            paths.VARIANT_PROBABILITIES, variant=RULES_VARIANT_WILDCARD, split=SPLITS, allow_missing=True
        ),
        changes=paths.LEXICON_RULES_CHANGES,
    log:
        paths.log("challenge", "apply_lexicon_rules", "{scope}", "{variant}"),
    benchmark:
        paths.benchmark("challenge", "apply_lexicon_rules", "{scope}", "{variant}")
    params:
        rules={key: config["challenge"]["rules"][key] for key in ("match", "transcripts")},
        bootstrap=config["fusion"]["bootstrap"],
        classes=CLASSES,
        splits=SPLITS,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("challenge/lexicon")


# The primary ASR system's rows and SyER (asr.primary_system); Table 3 has every system's WER and rows.
rule challenge_report:
    input:
        metrics=get_report_metrics(),
        # The primary system's ASR scores per test split (none when challenge.score.syer is a number).
        syer=get_challenge_syer_inputs(),
        code=script_code("challenge/score"),
    output:
        md=report(paths.CHALLENGE_MD, caption="../report/challenge.rst", category="Challenge"),
        json=paths.CHALLENGE_JSON,
    log:
        paths.log("challenge", "challenge_report"),
    benchmark:
        paths.benchmark("challenge", "challenge_report")
    params:
        score=config["challenge"]["score"],
        splits=TEST_SPLITS,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("challenge/score")


# Emotion-driven augmentation (challenge.augmentation.enabled): copies of the TRAINING split's
# utterances only -> their SEFE features -> the acoustic_aug feature set -> the acoustic_aug row.
rule augment_training_audio:
    input:
        manifest=ser_manifest(ROLES.train),
        code=script_code("challenge/augment"),
    output:
        wav_dir=directory(paths.AUGMENTED_WAV_DIR),
        manifest=paths.AUGMENTED_MANIFEST,
        record=paths.AUGMENTED_RECORD,
    log:
        paths.log("challenge", "augment_training_audio"),
    benchmark:
        paths.benchmark("challenge", "augment_training_audio")
    params:
        augmentation=get_augmentation_block(),
        train_split=ROLES.train,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("challenge/augment")


rule extract_sefe_augmented:
    input:
        manifest=paths.AUGMENTED_MANIFEST,
        layer_choice=get_sefe_layer_choice,
        code=script_code("sefe/extract"),
    output:
        features=paths.SEFE_AUGMENTED_FEATURES,
    log:
        paths.log("challenge", "extract_sefe_augmented", "{backend}", "{split}"),
    benchmark:
        paths.benchmark("challenge", "extract_sefe_augmented", "{backend}", "{split}")
    params:
        backend=get_sefe_backend_block,
        preprocessing=config["sefe"]["preprocessing"],
    threads: config["sefe"]["threads"]
    resources:
        **gpu_rule_resources("extract_sefe_augmented", gpu=sefe_gpus("extract_sefe_augmented")),
    conda:
        "../envs/gpu.yaml"
    script:
        script_path("sefe/extract")


rule pool_augmented_acoustic:
    input:
        features=[get_sefe_features(split) for split in SPLITS],
        manifests=[ser_manifest(split) for split in SPLITS],
        augmented=get_augmented_sefe_features(),
        augmented_manifest=paths.AUGMENTED_MANIFEST,
        code=script_code("challenge/pool_augmented"),
    output:
        pooled=pooled_files(names.AUGMENTED_VARIANT, None, SPLITS),
    log:
        paths.log("challenge", "pool_augmented_acoustic"),
    benchmark:
        paths.benchmark("challenge", "pool_augmented_acoustic")
    params:
        pooling=config["fusion"]["pooling"]["acoustic"],
        classes=CLASSES,
        splits=SPLITS,
        train_split=ROLES.train,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("challenge/pool_augmented")
