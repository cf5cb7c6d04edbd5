# Data stage: the synthesised demo corpus and validated manifests per corpus and split.


rule synthesize_demo_corpus:
    input:
        code=script_code("data/demo_corpus"),
    output:
        speech_table=paths.DEMO_SPEECH_TABLE,
        wav_dir=directory(paths.DEMO_WAV_DIR),
        text_table=paths.DEMO_TEXT_TABLE,
        asr_table=paths.DEMO_ASR_TABLE,
        asr_wav_dir=directory(paths.DEMO_ASR_WAV_DIR),
    log:
        paths.log("data", "synthesize_demo_corpus"),
    benchmark:
        paths.benchmark("data", "synthesize_demo_corpus")
    params:
        demo=config.get("demo", {}),
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("data/demo_corpus")


rule ingest_speech_corpus:
    input:
        table=get_corpus_table,
        code=script_code("data/ingest_speech"),
    output:
        manifests=expand(paths.SPEECH_MANIFEST, split=SPLITS, allow_missing=True),
        skipped=paths.SPEECH_SKIPPED,
        summary=report(
            paths.SPEECH_SUMMARY,
            caption="../report/data_summary.rst",
            category="Data",
            labels={"corpus": "{corpus}"},
        ),
    log:
        paths.log("data", "ingest_speech_corpus", "{corpus}"),
    benchmark:
        paths.benchmark("data", "ingest_speech_corpus", "{corpus}")
    params:
        corpus=lambda wildcards: config["corpora"][wildcards.corpus],
        classes=CLASSES,
        splits=SPLITS,
        train_split=ROLES.train,
        # The emotion corpus needs every split; a corpus used only for ASR training may leave some empty.
        strict=lambda wildcards: wildcards.corpus == SER_CORPUS,
    threads: 2
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("data/ingest_speech")


rule ingest_text_corpus:
    input:
        table=corpus_tables(config["text_corpus"]),
        code=script_code("data/ingest_text"),
    output:
        manifests=expand(paths.TEXT_MANIFEST, split=TEXT_SPLITS),
        skipped=paths.TEXT_SKIPPED,
        summary=paths.TEXT_SUMMARY,
    log:
        paths.log("data", "ingest_text_corpus"),
    benchmark:
        paths.benchmark("data", "ingest_text_corpus")
    params:
        corpus=config["text_corpus"],
        classes=CLASSES,
        splits=TEXT_SPLITS,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("data/ingest_text")
