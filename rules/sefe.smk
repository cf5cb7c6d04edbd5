# SEFE stage: acoustic features per backend and split, and their acoustic-only evaluation.


wildcard_constraints:
    backend="|".join(names.SEFE_BACKENDS),


rule extract_sefe:
    input:
        manifest=lambda wildcards: ser_manifest(wildcards.split),
        models=get_sefe_model_inputs,
        code=script_code("sefe/extract"),
    output:
        features=paths.SEFE_FEATURES,
    log:
        "logs/sefe/extract_sefe/{backend}/{split}.log",
    benchmark:
        "results/benchmarks/sefe/extract_sefe/{backend}/{split}.tsv"
    params:
        backend=get_sefe_backend_block,
        preprocessing=config["sefe"]["preprocessing"],
    threads: config["sefe"]["threads"]
    resources:
        **gpu_rule_resources("extract_sefe", gpu=get_sefe_resource("gpu")),
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
        "logs/sefe/evaluate_sefe/{backend}.log",
    benchmark:
        "results/benchmarks/sefe/evaluate_sefe/{backend}.tsv"
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


# Frame matrices before pooling (the sequence contract), for the neural fusion heads only.
rule extract_sefe_frames:
    input:
        manifest=lambda wildcards: ser_manifest(wildcards.split),
        code=script_code("sefe/frames"),
    output:
        frames=paths.SEFE_FRAMES,
    log:
        "logs/sefe/extract_sefe_frames/{backend}/{split}.log",
    benchmark:
        "results/benchmarks/sefe/extract_sefe_frames/{backend}/{split}.tsv"
    params:
        backend=get_sefe_backend_block,
        preprocessing=config["sefe"]["preprocessing"],
    threads: config["sefe"]["threads"]
    resources:
        **gpu_rule_resources("extract_sefe", gpu=get_sefe_resource("gpu")),
    conda:
        "../envs/gpu.yaml"
    script:
        script_path("sefe/frames")
