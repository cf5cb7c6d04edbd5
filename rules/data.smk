# Data stage: the synthesised demo corpus and validated manifests per corpus and split.


rule synthesize_demo_corpus:
    input:
        modules("data/demo_corpus", "data/espeak"),
    output:
        speech_table="results/demo/speech_corpus.tsv",
        wav_dir=directory("results/demo/wav"),
        text_table="results/demo/text_corpus.tsv",
        asr_table="results/demo/asr_corpus.tsv",
        asr_wav_dir=directory("results/demo/asr_wav"),
    log:
        "logs/data/synthesize_demo_corpus.log",
    benchmark:
        "results/benchmarks/data/synthesize_demo_corpus.tsv"
    params:
        demo=as_json(config.get("demo", {})),
    threads: 1
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m workflow_scripts.data.demo_corpus --config {params.demo:q}"
        " --speech-table {output.speech_table} --wav-dir {output.wav_dir}"
        " --text-table {output.text_table} --asr-table {output.asr_table} --asr-wav-dir {output.asr_wav_dir}"
        " > {log} 2>&1"


rule ingest_speech_corpus:
    input:
        table=get_corpus_table,
        code=modules("data/ingest", "common/manifest", "common/audio", "data/splits"),
    output:
        manifests=expand("results/data/speech/{{corpus}}/{split}.tsv", split=SPLITS),
        skipped="results/data/speech/{corpus}/skipped.tsv",
        summary=report(
            "results/data/speech/{corpus}/summary.json",
            caption="../report/data_summary.rst",
            category="Data",
            labels={"corpus": "{corpus}"},
        ),
    log:
        "logs/data/ingest_speech_corpus/{corpus}.log",
    benchmark:
        "results/benchmarks/data/ingest_speech_corpus/{corpus}.tsv"
    params:
        corpus=lambda wildcards: as_json(config["corpora"][wildcards.corpus]),
        classes=CLASSES,
        splits=SPLITS,
        seed=config["seed"],
    threads: 2
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m workflow_scripts.data.ingest speech --corpus-config {params.corpus:q}"
        " --classes {params.classes} --splits {params.splits} --seed {params.seed}"
        " --threads {threads} --out-dir results/data/speech/{wildcards.corpus} > {log} 2>&1"


rule ingest_text_corpus:
    input:
        table=get_text_table,
        code=modules("data/ingest", "common/manifest", "data/splits"),
    output:
        manifests=expand("results/data/text/{split}.tsv", split=TEXT_SPLITS),
        skipped="results/data/text/skipped.tsv",
        summary="results/data/text/summary.json",
    log:
        "logs/data/ingest_text_corpus.log",
    benchmark:
        "results/benchmarks/data/ingest_text_corpus.tsv"
    params:
        corpus=as_json(config["text_corpus"]),
        classes=CLASSES,
        splits=TEXT_SPLITS,
        seed=config["seed"],
    threads: 1
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m workflow_scripts.data.ingest text --corpus-config {params.corpus:q}"
        " --classes {params.classes} --splits {params.splits} --seed {params.seed}"
        " --out-dir results/data/text > {log} 2>&1"
