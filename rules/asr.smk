# ASR stage: the demo's small Whisper, fine-tuning, transcription of every split, WER / CER,
# and the zero-shot backbone benchmark (docs/asr.md).


rule build_demo_asr_model:
    input:
        manifests=get_asr_train_manifests(),
        code=modules("asr/demo_model", "asr/text", "common/manifest"),
    output:
        directory("results/asr/init_model"),
    log:
        "logs/asr/build_demo_asr_model.log",
    benchmark:
        "results/benchmarks/asr/build_demo_asr_model.tsv"
    params:
        cfg=as_json(config["asr"]["demo_model"]),
        normalize=as_json(config["asr"]["normalize"]),
    threads: 1
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m workflow_scripts.asr.demo_model --config {params.cfg:q} --normalize {params.normalize:q}"
        " --train-manifests {input.manifests} --out-dir {output} > {log} 2>&1"


rule finetune_whisper:
    input:
        base_model=get_asr_model_inputs(config["asr"]["finetune"]["base_model"]),
        train=get_asr_train_manifests(),
        dev=get_asr_eval_manifest(),
        code=modules("asr/train", "asr/backends", "asr/text", "common/manifest", "common/audio"),
    output:
        directory(ASR_FINETUNED_MODEL),
    log:
        "logs/asr/finetune_whisper.log",
    benchmark:
        "results/benchmarks/asr/finetune_whisper.tsv"
    params:
        cfg=as_json(config["asr"]["finetune"]),
        normalize=as_json(config["asr"]["normalize"]),
        # Checkpoints for resuming a restarted job; removed after success unless keep_checkpoints.
        work_dir="results/asr/finetune_work",
    threads: 2
    resources:
        **gpu_rule_resources("finetune_whisper"),
    conda:
        "../envs/gpu.yaml"
    shell:
        "python -m workflow_scripts.asr.train --config {params.cfg:q} --normalize {params.normalize:q}"
        " --train-manifests {input.train} --dev-manifest {input.dev} --out-dir {output}"
        " --work-dir {params.work_dir} --threads {threads} > {log} 2>&1"


rule transcribe:
    input:
        manifest=lambda wildcards: ser_manifest(wildcards.split),
        model=get_asr_model_inputs(config["asr"]["transcribe"]["model"]),
        code=modules("asr/transcribe", "asr/backends", "common/features", "common/manifest", "common/audio"),
    output:
        "results/transcripts/{split}.parquet",
    log:
        "logs/asr/transcribe/{split}.log",
    benchmark:
        "results/benchmarks/asr/transcribe/{split}.tsv"
    params:
        cfg=as_json(config["asr"]["transcribe"]),
    threads: 2
    resources:
        **gpu_rule_resources("transcribe"),
    conda:
        "../envs/gpu.yaml"
    shell:
        "python -m workflow_scripts.asr.transcribe --config {params.cfg:q} --model-dir {input.model}"
        " --manifest {input.manifest} --out {output} --threads {threads} > {log} 2>&1"


rule score_asr:
    input:
        transcripts=paths.TRANSCRIPTS,
        code=script_code("asr/score"),
    output:
        scores=report(
            paths.ASR_WER,
            caption="../report/asr_wer.rst",
            category="ASR",
            labels={"split": "{split}"},
        ),
    log:
        "logs/asr/score_asr/{split}.log",
    benchmark:
        "results/benchmarks/asr/score_asr/{split}.tsv"
    params:
        normalize=config["asr"]["normalize"],
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("asr/score")


rule benchmark_asr_backbones:
    input:
        manifests=[ser_manifest(split) for split in config["asr"]["benchmark"]["splits"]],
        finetuned=get_asr_model_inputs(*get_asr_benchmark_refs("finetuned")),
        models=get_asr_model_inputs(*get_asr_benchmark_refs()),
        code=modules("asr/benchmark", "asr/transcribe", "asr/backends", "asr/text", "common/features", "common/manifest", "common/audio"),
    output:
        json="results/asr/benchmark.json",
        md=report("results/asr/benchmark.md", caption="../report/asr_benchmark.rst", category="ASR"),
    log:
        "logs/asr/benchmark_asr_backbones.log",
    benchmark:
        "results/benchmarks/asr/benchmark_asr_backbones.tsv"
    params:
        cfg=as_json(config["asr"]["benchmark"]),
        normalize=as_json(config["asr"]["normalize"]),
    threads: 2
    resources:
        **gpu_rule_resources("benchmark_asr_backbones"),
    conda:
        "../envs/gpu.yaml"
    shell:
        "python -m workflow_scripts.asr.benchmark --config {params.cfg:q} --normalize {params.normalize:q}"
        " --manifests {input.manifests} --finetuned-model {input.finetuned} --out-json {output.json}"
        " --out-md {output.md} --threads {threads} > {log} 2>&1"
