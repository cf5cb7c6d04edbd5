# SEFE stage: acoustic features per backend and split, and their acoustic-only evaluation.


rule extract_sefe:
    input:
        manifest=get_split_manifest,
        models=get_sefe_model_inputs,
        layer_choice=get_sefe_layer_choice,
        code=script_code("sefe/extract"),
    output:
        features=per_split(paths.SEFE_FEATURES),
    log:
        paths.log("sefe", "extract_sefe", "{backend}", "{split}", *SHARD),
    benchmark:
        paths.benchmark("sefe", "extract_sefe", "{backend}", "{split}", *SHARD)
    params:
        backend=get_sefe_backend_block,
        preprocessing=config["sefe"]["preprocessing"],
    threads: config["sefe"]["threads"]
    resources:
        **gpu_rule_resources("extract_sefe", gpu=sefe_gpus("extract_sefe")),
    conda:
        "../envs/gpu.yaml"
    script:
        script_path("sefe/extract")


rule evaluate_sefe:
    input:
        features=expand(paths.SEFE_FEATURES, split=SPLITS, allow_missing=True),
        manifests=[ser_manifest(split) for split in SPLITS],
        code=script_code("sefe/evaluate"),
    output:
        evaluation=report(
            paths.SEFE_EVALUATION,
            caption="../report/sefe_evaluation.rst",
            category="SEFE",
            labels={"backend": "{backend}"},
        ),
    log:
        paths.log("sefe", "evaluate_sefe", "{backend}"),
    benchmark:
        paths.benchmark("sefe", "evaluate_sefe", "{backend}")
    params:
        evaluation=config["sefe"]["evaluation"],
        classes=CLASSES,
        splits=SPLITS,
        train_split=ROLES.train,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("sefe/evaluate")


# layer: auto (workflow_scripts/sefe/layer_choice.py): every candidate layer pooled for the training and
# selection splits only (one encoder pass each), the choice from them, then extract_sefe with the chosen layer.
rule extract_sefe_layers:
    input:
        manifest=lambda wildcards: ser_manifest(wildcards.split),
        models=get_sefe_model_inputs,
        code=script_code("sefe/extract"),
    output:
        features=paths.SEFE_LAYER_FEATURES,
    log:
        paths.log("sefe", "extract_sefe_layers", "{backend}", "{split}"),
    benchmark:
        paths.benchmark("sefe", "extract_sefe_layers", "{backend}", "{split}")
    params:
        backend=get_sefe_backend_block,
        preprocessing=config["sefe"]["preprocessing"],
    threads: config["sefe"]["threads"]
    resources:
        **gpu_rule_resources("extract_sefe_layers", gpu=sefe_gpus("extract_sefe_layers")),
    conda:
        "../envs/gpu.yaml"
    wildcard_constraints:
        split=one_of([ROLES.train, ROLES.selection]),
    script:
        script_path("sefe/extract")


rule choose_sefe_layer:
    input:
        unpack(get_layer_choice_inputs),
        code=script_code("sefe/choose_layer"),
    output:
        choice=paths.SEFE_LAYER_CHOICE,
    log:
        paths.log("sefe", "choose_sefe_layer", "{backend}"),
    benchmark:
        paths.benchmark("sefe", "choose_sefe_layer", "{backend}")
    params:
        evaluation=config["sefe"]["evaluation"],
        layer_choice=lambda wildcards: config["sefe"][wildcards.backend]["layer_choice"],
        classes=CLASSES,
        train_split=ROLES.train,
        selection_split=ROLES.selection,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("sefe/choose_layer")


# Frame matrices before pooling (the sequence contract), for the neural fusion heads only.
rule extract_sefe_frames:
    input:
        manifest=get_split_manifest,
        layer_choice=get_sefe_layer_choice,
        code=script_code("sefe/frames"),
    output:
        frames=per_split(paths.SEFE_FRAMES),
    log:
        paths.log("sefe", "extract_sefe_frames", "{backend}", "{split}", *SHARD),
    benchmark:
        paths.benchmark("sefe", "extract_sefe_frames", "{backend}", "{split}", *SHARD)
    params:
        backend=get_sefe_backend_block,
        preprocessing=config["sefe"]["preprocessing"],
    threads: config["sefe"]["threads"]
    resources:
        **gpu_rule_resources("extract_sefe_frames", gpu=sefe_gpus("extract_sefe_frames")),
    conda:
        "../envs/gpu.yaml"
    script:
        script_path("sefe/frames")


# Prosody tokens (seed paper 003; one step module per rule, sefe/prosody_f0.py, prosody_bins.py,
# prosody_tokens.py, over the library workflow_scripts/sefe/prosody.py), built only for the fusion
# heads whose nodes read them (the graph head's prosody node): F0 + voicing per split, bins
# fitted on the TRAINING split's F0 alone, token ids per split.
rule extract_prosody_f0:
    input:
        manifest=get_split_manifest,
        code=script_code("sefe/prosody_f0"),
    output:
        f0=per_split(paths.PROSODY_F0),
    log:
        paths.log("sefe", "extract_prosody_f0", "{split}", *SHARD),
    benchmark:
        paths.benchmark("sefe", "extract_prosody_f0", "{split}", *SHARD)
    params:
        f0=config["sefe"]["prosody"]["f0"],
        preprocessing=config["sefe"]["preprocessing"],
    threads: prosody_f0_threads()
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("sefe/prosody_f0")


rule fit_prosody_bins:
    input:
        f0=paths.PROSODY_F0.format(split=ROLES.train),
        code=script_code("sefe/prosody_bins"),
    output:
        bins=paths.PROSODY_BINS,
        bins_sha256=paths.checksum_of(paths.PROSODY_BINS),
    log:
        paths.log("sefe", "fit_prosody_bins"),
    benchmark:
        paths.benchmark("sefe", "fit_prosody_bins")
    params:
        quantizer=config["sefe"]["prosody"]["quantizer"],
        train_split=ROLES.train,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("sefe/prosody_bins")


rule extract_prosody_tokens:
    input:
        f0=paths.PROSODY_F0,
        bins=paths.PROSODY_BINS,
        code=script_code("sefe/prosody_tokens"),
    output:
        tokens=paths.PROSODY_TOKENS,
    log:
        paths.log("sefe", "extract_prosody_tokens", "{split}"),
    benchmark:
        paths.benchmark("sefe", "extract_prosody_tokens", "{split}")
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("sefe/prosody_tokens")
