# SEFE stage: acoustic features per backend and split, and their acoustic-only evaluation.


wildcard_constraints:
    backend="|".join(SEFE_BACKENDS),


rule extract_sefe:
    input:
        manifest=lambda wildcards: ser_manifest(wildcards.split),
        code=modules("sefe/extract", "sefe/backends", "sefe/preprocess", "common/hub", "common/audio", "common/features", "common/manifest"),
    output:
        "results/sefe/{backend}/{split}.parquet",
    log:
        "logs/sefe/extract_sefe/{backend}/{split}.log",
    benchmark:
        "results/benchmarks/sefe/extract_sefe/{backend}/{split}.tsv"
    params:
        cfg=get_sefe_extract_config,
    threads: config["sefe"]["threads"]
    resources:
        **gpu_rule_resources("extract_sefe", gpu=get_sefe_resource("gpu")),
    conda:
        "../envs/gpu.yaml"
    shell:
        "python -m workflow_scripts.sefe.extract --config {params.cfg:q} --backend {wildcards.backend}"
        " --manifest {input.manifest} --output {output} --split {wildcards.split}"
        " --threads {threads} > {log} 2>&1"


rule evaluate_sefe:
    input:
        features=expand("results/sefe/{{backend}}/{split}.parquet", split=SPLITS),
        manifests=[ser_manifest(split) for split in SPLITS],
        code=modules("sefe/evaluate", "common/features", "common/manifest"),
    output:
        report(
            "results/sefe/{backend}/evaluation.json",
            caption="../report/sefe_evaluation.rst",
            category="SEFE",
            labels={"backend": "{backend}"},
        ),
    log:
        "logs/sefe/evaluate_sefe/{backend}.log",
    benchmark:
        "results/benchmarks/sefe/evaluate_sefe/{backend}.tsv"
    params:
        cfg=as_json(config["sefe"]["evaluation"]),
        classes=CLASSES,
        splits=SPLITS,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m workflow_scripts.sefe.evaluate --config {params.cfg:q} --backend {wildcards.backend}"
        " --classes {params.classes} --splits {params.splits} --features {input.features}"
        " --manifests {input.manifests} --output {output} > {log} 2>&1"
