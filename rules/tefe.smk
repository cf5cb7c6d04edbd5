# TEFE stage: vocabulary and frozen embedding, the four text encoders (one job each), the
# choice of one on validation scores, the table of all four, and the chosen encoder's
# features of every speech split's transcripts.


rule build_tefe_embedding:
    input:
        train="results/data/text/train.tsv",
        vectors=get_tefe_vectors,
        code=modules("tefe/embedding", "tefe/text", "common/manifest"),
    output:
        vocab="results/tefe/embedding/vocab.json",
        embedding="results/tefe/embedding/embedding.npy",
        summary="results/tefe/embedding/summary.json",
    log:
        "logs/tefe/build_tefe_embedding.log",
    benchmark:
        "results/benchmarks/tefe/build_tefe_embedding.tsv"
    params:
        text=as_json(config["tefe"]["text"]),
        embedding=as_json(config["tefe"]["embedding"]),
    threads: 1
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m workflow_scripts.tefe.embedding --text-config {params.text:q}"
        " --embedding-config {params.embedding:q} --train {input.train} --vocab {output.vocab}"
        " --embedding {output.embedding} --summary {output.summary} > {log} 2>&1"


rule train_tefe:
    input:
        train="results/data/text/train.tsv",
        dev="results/data/text/dev.tsv",
        vocab=rules.build_tefe_embedding.output.vocab,
        embedding=rules.build_tefe_embedding.output.embedding,
        code=modules("tefe/train", "tefe/models", "tefe/text", "common/manifest"),
    output:
        model="results/tefe/models/{arch}/model.pt",
        vocab="results/tefe/models/{arch}/vocab.json",
        metrics="results/tefe/models/{arch}/metrics.json",
    log:
        "logs/tefe/train_tefe/{arch}.log",
    benchmark:
        "results/benchmarks/tefe/train_tefe/{arch}.tsv"
    params:
        model=get_tefe_model_config,
        training=as_json(config["tefe"]["training"]),
        classes=CLASSES,
    # One thread: CPU results depend on the thread count, so a fixed count keeps them the same
    # whatever --cores is (raise it with --set-threads train_tefe=N; GPUs are unaffected).
    threads: 1
    resources:
        **gpu_rule_resources("train_tefe"),
    conda:
        "../envs/gpu.yaml"
    wildcard_constraints:
        arch="|".join(TEFE_ARCHITECTURES),
    shell:
        "python -m workflow_scripts.tefe.train --arch {wildcards.arch} --model-config {params.model:q}"
        " --training-config {params.training:q} --classes {params.classes}"
        " --train {input.train} --dev {input.dev} --vocab {input.vocab} --embedding {input.embedding}"
        " --out-model {output.model} --out-vocab {output.vocab} --out-metrics {output.metrics}"
        " --threads {threads} > {log} 2>&1"


# A checkpoint: which model extract_tefe reads is known only once this has run. Its inputs
# are validation scores only, so no test data can reach the choice.
checkpoint select_tefe:
    input:
        metrics=expand("results/tefe/models/{arch}/metrics.json", arch=TEFE_ARCHITECTURES),
        code=modules("tefe/select"),
    output:
        selection="results/tefe/selection.json",
    log:
        "logs/tefe/select_tefe.log",
    benchmark:
        "results/benchmarks/tefe/select_tefe.tsv"
    params:
        selection=as_json(config["tefe"]["selection"]),
        metrics=get_tefe_metrics_pairs(),
    threads: 1
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m workflow_scripts.tefe.select --config {params.selection:q}"
        " --metrics {params.metrics} --out {output.selection} > {log} 2>&1"


rule tefe_table:
    input:
        models=expand(
            "results/tefe/models/{arch}/{name}",
            arch=TEFE_ARCHITECTURES,
            name=["model.pt", "vocab.json", "metrics.json"],
        ),
        selection="results/tefe/selection.json",
        validation="results/data/text/dev.tsv",
        text_test="results/data/text/test.tsv",
        transcripts=expand("results/transcripts/{split}.parquet", split=TEST_SPLITS),
        manifests=[ser_manifest(split) for split in TEST_SPLITS],
        code=modules("tefe/evaluate", "tefe/extract", "tefe/select", "tefe/train", "tefe/models", "tefe/text", "common/manifest", "common/features"),
    output:
        table=report("results/tefe/table.md", caption="../report/tefe_table.rst", category="TEFE"),
        json="results/tefe/table.json",
    log:
        "logs/tefe/tefe_table.log",
    benchmark:
        "results/benchmarks/tefe/tefe_table.tsv"
    params:
        models=[f"{arch}=results/tefe/models/{arch}" for arch in TEFE_ARCHITECTURES],
        transcripts=[f"{split}=results/transcripts/{split}.parquet" for split in TEST_SPLITS],
        manifests=[f"{split}={ser_manifest(split)}" for split in TEST_SPLITS],
        classes=CLASSES,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m workflow_scripts.tefe.evaluate --models {params.models} --selection {input.selection}"
        " --classes {params.classes} --validation {input.validation} --text-test {input.text_test}"
        " --transcripts {params.transcripts} --manifests {params.manifests}"
        " --out-md {output.table} --out-json {output.json} --threads {threads} > {log} 2>&1"


rule extract_tefe:
    input:
        unpack(get_tefe_encoder),
        transcripts="results/transcripts/{split}.parquet",
        manifest=lambda wildcards: ser_manifest(wildcards.split),
        code=modules("tefe/extract", "tefe/models", "tefe/text", "common/manifest", "common/features"),
    output:
        "results/tefe/{feature_set}/{split}.parquet",
    log:
        "logs/tefe/extract_tefe/{feature_set}/{split}.log",
    benchmark:
        "results/benchmarks/tefe/extract_tefe/{feature_set}/{split}.tsv"
    params:
        extract=as_json(config["tefe"]["extract"]),
        column=get_tefe_transcript_column,
        # The chosen model as params too: a change of choice reruns extraction even where that
        # model is older than the features. (Placeholders until select_tefe has run.)
        model=lambda wildcards, input: input.get("model", "<chosen by select_tefe>"),
        vocab=lambda wildcards, input: input.get("vocab", "<chosen by select_tefe>"),
    threads: 1
    conda:
        "../envs/cpu.yaml"
    wildcard_constraints:
        feature_set="features|features_reference",
    shell:
        "python -m workflow_scripts.tefe.extract --config {params.extract:q} --model {params.model:q}"
        " --vocab {params.vocab:q} --transcripts {input.transcripts} --column {params.column}"
        " --manifest {input.manifest} --out {output} --threads {threads} > {log} 2>&1"
