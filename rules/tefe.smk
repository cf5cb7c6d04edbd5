# TEFE stage: vocabulary and frozen embedding, the four text encoders (one job each), the
# choice of one on validation scores, the table of all four, and the chosen encoder's
# features of every speech split's transcripts, per ASR system (the encoders are trained on the
# text corpus, never on transcripts: shared by every system).


rule build_tefe_embedding:
    input:
        train=tefe_text_manifest("train"),
        vectors=get_tefe_vectors,
        extra_texts=config["tefe"]["embedding"]["extra_texts"],
        code=script_code("tefe/embedding"),
    output:
        vocab=paths.TEFE_VOCAB,
        embedding=paths.TEFE_EMBEDDING,
        summary=paths.TEFE_EMBEDDING_SUMMARY,
    log:
        paths.log("tefe", "build_tefe_embedding"),
    benchmark:
        paths.benchmark("tefe", "build_tefe_embedding")
    params:
        text=config["tefe"]["text"],
        embedding=config["tefe"]["embedding"],
        # Extra embedding texts that hold a test split's text (get_tefe_test_texts): refused.
        test_texts=get_tefe_refused_extra_texts(),
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("tefe/embedding")


rule train_tefe:
    input:
        train=tefe_text_manifest("train"),
        dev=tefe_text_manifest("dev"),
        vocab=rules.build_tefe_embedding.output.vocab,
        embedding=rules.build_tefe_embedding.output.embedding,
        code=script_code("tefe/train"),
    output:
        model=paths.TEFE_MODEL,
        vocab=paths.TEFE_MODEL_VOCAB,
        # The SHA-256 records predict checks (common/checksums.py).
        model_sha256=paths.checksum_of(paths.TEFE_MODEL),
        vocab_sha256=paths.checksum_of(paths.TEFE_MODEL_VOCAB),
        metrics=paths.TEFE_MODEL_METRICS,
    log:
        paths.log("tefe", "train_tefe", "{arch}"),
    benchmark:
        paths.benchmark("tefe", "train_tefe", "{arch}")
    params:
        model=get_tefe_model_config,
        training=config["tefe"]["training"],
        # Only whether the embedding is trained (tefe.embedding.trainable); the vectors are an input.
        embedding={"trainable": config["tefe"]["embedding"]["trainable"]},
        classes=CLASSES,
        # Per-epoch state: a restarted (killed) job resumes after its last finished epoch.
        work_dir=lambda wildcards: paths.TEFE_WORK.format(arch=wildcards.arch),
    # tefe.training.threads (demo: 1): CPU results depend on the thread count, so a configured
    # count keeps them the same whatever --cores is (as long as --cores allows it).
    threads: get_tefe_train_threads
    resources:
        **gpu_rule_resources("train_tefe"),
    conda:
        "../envs/gpu.yaml"
    wildcard_constraints:
        arch=one_of(TEFE_ARCHITECTURES),
    script:
        script_path("tefe/train")


# A checkpoint: which model extract_tefe reads is known only once this has run. Its inputs
# are validation scores only, so no test data can reach the choice.
checkpoint select_tefe:
    input:
        # In the order of params.architectures.
        metrics=expand(paths.TEFE_MODEL_METRICS, arch=TEFE_ARCHITECTURES),
        code=script_code("tefe/select"),
    output:
        selection=paths.TEFE_SELECTION,
        selection_sha256=paths.checksum_of(paths.TEFE_SELECTION),
    log:
        paths.log("tefe", "select_tefe"),
    benchmark:
        paths.benchmark("tefe", "select_tefe")
    params:
        selection=config["tefe"]["selection"],
        architectures=TEFE_ARCHITECTURES,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("tefe/select")


# The other text backends (tefe.backend; names.TEFE_OTHER_BACKENDS): fitted on the text training
# split, scored on its dev split. The TF-IDF reference is always fitted (seconds), for the table.
rule train_tefe_backend:
    input:
        train=tefe_text_manifest("train"),
        dev=tefe_text_manifest("dev"),
        code=script_code("tefe/train_backend"),
    output:
        model=directory(paths.TEFE_BACKEND_MODEL),
        metrics=paths.TEFE_BACKEND_METRICS,
    log:
        paths.log("tefe", "train_tefe_backend", "{backend}"),
    benchmark:
        paths.benchmark("tefe", "train_tefe_backend", "{backend}")
    params:
        block=get_tefe_backend_block,
        classes=CLASSES,
    threads: get_tefe_backend_threads
    # The transformer asks for resources.train_tefe_backend's GPUs; TF-IDF for none.
    resources:
        **gpu_rule_resources("train_tefe_backend", gpu=tefe_backend_gpus("train_tefe_backend")),
    conda:
        "../envs/gpu.yaml"
    wildcard_constraints:
        backend=one_of(names.TEFE_OTHER_BACKENDS),
    script:
        script_path("tefe/train_backend")


rule extract_tefe_backend:
    input:
        model=paths.TEFE_BACKEND_MODEL,
        transcripts=per_split(paths.TRANSCRIPTS),
        manifest=get_split_manifest,
        code=script_code("tefe/extract_backend"),
    output:
        features=per_split(paths.TEFE_BACKEND_FEATURES),
    log:
        paths.log("tefe", "extract_tefe_backend", "{system}", "{backend}", "{feature_set}", "{split}", *SHARD),
    benchmark:
        paths.benchmark("tefe", "extract_tefe_backend", "{system}", "{backend}", "{feature_set}", "{split}", *SHARD)
    params:
        column=get_tefe_transcript_column,
        batch_size=config["tefe"]["extract"]["batch_size"],
    threads: get_tefe_backend_threads
    resources:
        **gpu_rule_resources("extract_tefe_backend", gpu=tefe_backend_gpus("extract_tefe_backend")),
    conda:
        "../envs/gpu.yaml"
    wildcard_constraints:
        backend=one_of(names.TEFE_OTHER_BACKENDS),
        feature_set=one_of(names.TEFE_FEATURE_SETS),
    script:
        script_path("tefe/extract_backend")


# Token states (the sequence contract) of the ASR hypotheses from a backend that has them
# (names.TEFE_TOKEN_BACKENDS: the transformer), for the neural fusion heads only.
rule extract_tefe_backend_tokens:
    input:
        model=paths.TEFE_BACKEND_MODEL,
        transcripts=per_split(paths.TRANSCRIPTS),
        manifest=get_split_manifest,
        code=script_code("tefe/backend_tokens"),
    output:
        tokens=per_split(paths.TEFE_BACKEND_TOKENS),
    log:
        paths.log("tefe", "extract_tefe_backend_tokens", "{system}", "{backend}", "{split}", *SHARD),
    benchmark:
        paths.benchmark("tefe", "extract_tefe_backend_tokens", "{system}", "{backend}", "{split}", *SHARD)
    params:
        column=names.TEFE_FEATURE_SETS["features"],
        batch_size=config["tefe"]["extract"]["batch_size"],
    threads: get_tefe_backend_threads
    resources:
        **gpu_rule_resources("extract_tefe_backend_tokens", gpu=tefe_backend_gpus("extract_tefe_backend_tokens")),
    conda:
        "../envs/gpu.yaml"
    wildcard_constraints:
        backend=one_of(names.TEFE_TOKEN_BACKENDS),
    script:
        script_path("tefe/backend_tokens")


rule tefe_table:
    input:
        # models, vocabs, metrics in the order of params.architectures; transcripts and
        # manifests in the order of params.test_splits.
        models=expand(paths.TEFE_MODEL, arch=TEFE_ARCHITECTURES),
        vocabs=expand(paths.TEFE_MODEL_VOCAB, arch=TEFE_ARCHITECTURES),
        metrics=expand(paths.TEFE_MODEL_METRICS, arch=TEFE_ARCHITECTURES),
        selection=paths.TEFE_SELECTION,
        # The other backends' model directories and metrics, in the order of params.backends.
        backend_models=expand(paths.TEFE_BACKEND_MODEL, backend=TEFE_TABLE_BACKENDS),
        backend_metrics=expand(paths.TEFE_BACKEND_METRICS, backend=TEFE_TABLE_BACKENDS),
        validation=tefe_text_manifest("dev"),
        text_test=tefe_text_manifest("test"),
        # The primary ASR system's (asr.primary_system).
        transcripts=expand(paths.TRANSCRIPTS, system=PRIMARY_SYSTEM, split=TEST_SPLITS),
        manifests=[ser_manifest(split) for split in TEST_SPLITS],
        code=script_code("tefe/evaluate"),
    output:
        table=report(paths.TEFE_TABLE_MD, caption="../report/tefe_table.rst", category="TEFE"),
        json=paths.TEFE_TABLE_JSON,
    log:
        paths.log("tefe", "tefe_table"),
    benchmark:
        paths.benchmark("tefe", "tefe_table")
    params:
        architectures=TEFE_ARCHITECTURES,
        backends=list(TEFE_TABLE_BACKENDS),
        fusion_backend=config["tefe"]["backend"],
        test_splits=TEST_SPLITS,
        classes=CLASSES,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("tefe/evaluate")


rule extract_tefe:
    input:
        unpack(get_tefe_encoder),
        transcripts=per_split(paths.TRANSCRIPTS),
        manifest=get_split_manifest,
        code=script_code("tefe/extract"),
    output:
        features=per_split(paths.TEFE_FEATURES),
    log:
        paths.log("tefe", "extract_tefe", "{system}", "{feature_set}", "{split}", *SHARD),
    benchmark:
        paths.benchmark("tefe", "extract_tefe", "{system}", "{feature_set}", "{split}", *SHARD)
    params:
        extract=config["tefe"]["extract"],
        column=get_tefe_transcript_column,
        # The chosen model as params too: a change of choice reruns extraction even where that
        # model is older than the features. (Placeholders until select_tefe has run.)
        model=lambda wildcards, input: input.get("model", "<chosen by select_tefe>"),
        vocab=lambda wildcards, input: input.get("vocab", "<chosen by select_tefe>"),
    threads: 1
    conda:
        "../envs/cpu.yaml"
    wildcard_constraints:
        feature_set=one_of(names.TEFE_FEATURE_SETS),
    script:
        script_path("tefe/extract")


# Token states before pooling (the sequence contract) of the ASR hypotheses, for the neural
# fusion heads only.
rule extract_tefe_tokens:
    input:
        unpack(get_tefe_encoder),
        transcripts=per_split(paths.TRANSCRIPTS),
        manifest=get_split_manifest,
        code=script_code("tefe/tokens"),
    output:
        tokens=per_split(paths.TEFE_TOKENS),
    log:
        paths.log("tefe", "extract_tefe_tokens", "{system}", "{split}", *SHARD),
    benchmark:
        paths.benchmark("tefe", "extract_tefe_tokens", "{system}", "{split}", *SHARD)
    params:
        extract=config["tefe"]["extract"],
        column=names.TEFE_FEATURE_SETS["features"],
        model=lambda wildcards, input: input.get("model", "<chosen by select_tefe>"),
        vocab=lambda wildcards, input: input.get("vocab", "<chosen by select_tefe>"),
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("tefe/tokens")
