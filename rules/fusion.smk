# Fusion stage: pooled SEFE / TEFE features -> LR, RF and Optuna-tuned XGBoost per feature set
# (acoustic, text, early = both) -> the Optuna-weighted ensemble -> metrics of the five variants,
# Table 2, Figure 2 and confusion matrices. One rule for the classifiers, each job given only its
# classifier's config sub-block; only the training split is fitted, tuned or selected on.
# A result that reads an ASR system's transcripts lives under that system's {scope}
# (results/systems/<system>/), any other under the shared one (results/shared/): each rule below
# writes both, and its input functions (rules/fusion_inputs.smk) take the system from the scope.


rule pool_features:
    input:
        features=get_modality_features,
        manifests=[ser_manifest(split) for split in SPLITS],
        code=script_code("fusion/pooling"),
    output:
        pooled=expand(paths.POOLED, split=SPLITS, allow_missing=True),
    log:
        paths.log("fusion", "pool_features", "{scope}", "{modality}"),
    benchmark:
        paths.benchmark("fusion", "pool_features", "{scope}", "{modality}")
    params:
        pooling=get_pooling_block,
        classes=CLASSES,
        splits=SPLITS,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("fusion/pooling")


# LR and RF: their fixed configuration; XGBoost: tuned by Optuna. Each writes the same files.
rule train_classifier:
    input:
        pooled=get_pooled_features,
        code=script_code("fusion/classifiers"),
    output:
        model=paths.CLASSIFIER_MODEL,
        # The SHA-256 records predict checks (common/checksums.py).
        model_sha256=paths.checksum_of(paths.CLASSIFIER_MODEL),
        summary_sha256=paths.checksum_of(paths.CLASSIFIER_SUMMARY),
        trials=paths.CLASSIFIER_TRIALS,
        probabilities=expand(paths.CLASSIFIER_PROBABILITIES, split=SPLITS, allow_missing=True),
        oof=paths.CLASSIFIER_OOF,
        summary=paths.CLASSIFIER_SUMMARY,
    log:
        paths.log("fusion", "train_classifier", "{scope}", "{classifier}", "{feature_set}"),
    benchmark:
        paths.benchmark("fusion", "train_classifier", "{scope}", "{classifier}", "{feature_set}")
    params:
        classifier=get_classifier_block,
        cv=config["fusion"]["cv"],
        classes=CLASSES,
        splits=SPLITS,
        train_split=ROLES.train,
    # fusion.threads.<classifier> (capped by --cores): XGBoost's nthread, RF's n_jobs, BLAS.
    threads: get_classifier_threads
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("fusion/classifiers")


# Tuned on the training split only: its inputs are the early-fusion models and the pooled
# TRAINING files, nothing of any other split (get_ensemble_inputs). One per ASR system.
rule tune_ensemble:
    input:
        # models, summaries, the members' own out-of-fold probabilities (reused where their folds
        # are the ensemble's), pooled_train.
        unpack(get_ensemble_inputs),
        code=script_code("fusion/ensemble"),
    output:
        weights=report(
            paths.ENSEMBLE_WEIGHTS,
            caption="../report/ensemble_weights.rst",
            category="Fusion",
            subcategory="Ensemble",
            labels={"scope": "{scope}"},
        ),
        weights_sha256=paths.checksum_of(paths.ENSEMBLE_WEIGHTS),
        trials=paths.ENSEMBLE_TRIALS,
        oof=paths.ENSEMBLE_OOF,
    log:
        paths.log("fusion", "tune_ensemble", "{scope}"),
    benchmark:
        paths.benchmark("fusion", "tune_ensemble", "{scope}")
    params:
        ensemble=config["fusion"]["ensemble"],
        classes=CLASSES,
        train_split=ROLES.train,
    threads: 2
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("fusion/ensemble")


rule evaluate_variant:
    input:
        unpack(get_variant_inputs),
        manifests=[ser_manifest(split) for split in SPLITS],
        code=script_code("fusion/variants"),
    output:
        metrics=paths.VARIANT_METRICS,
        probabilities=expand(paths.VARIANT_PROBABILITIES, split=SPLITS, allow_missing=True),
    log:
        paths.log("fusion", "evaluate_variant", "{scope}", "{variant}"),
    benchmark:
        paths.benchmark("fusion", "evaluate_variant", "{scope}", "{variant}")
    params:
        variants=get_variant_config,
        bootstrap=config["fusion"]["bootstrap"],
        classes=CLASSES,
        splits=SPLITS,
        train_split=ROLES.train,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    wildcard_constraints:
        variant=one_of(names.CLASSIFIER_VARIANTS),
    script:
        script_path("fusion/variants")


# Neural fusion head of seed paper 004 and its ablations (fusion.heads.xattn, updated by the
# variant's fusion.heads.ablations entry: its only config): trained on the training split on
# sequence features (text_encoder finetune: the transcripts and the chosen TEFE encoder instead of
# its token states), stopped early on the selection split; writes the same metrics and
# probabilities as evaluate_variant.
rule train_xattn:
    input:
        unpack(get_xattn_text_inputs),
        acoustic=get_sequence_files("acoustic"),
        manifests=[ser_manifest(split) for split in SPLITS],
        code=script_code("fusion/heads/xattn"),
    output:
        model=paths.HEAD_MODEL,
        model_sha256=paths.checksum_of(paths.HEAD_MODEL),
        summary=paths.HEAD_SUMMARY,
        metrics=paths.VARIANT_METRICS,
        probabilities=expand(paths.VARIANT_PROBABILITIES, split=SPLITS, allow_missing=True),
    log:
        paths.log("fusion", "train_xattn", "{scope}", "{variant}"),
    benchmark:
        paths.benchmark("fusion", "train_xattn", "{scope}", "{variant}")
    params:
        head=get_head_block,
        overrides=get_head_overrides,
        bootstrap=config["fusion"]["bootstrap"],
        classes=CLASSES,
        splits=SPLITS,
        train_split=ROLES.train,
        selection_split=ROLES.selection,
        # Per-epoch state: a restarted (killed) job resumes after its last finished epoch.
        work_dir=get_head_work_dir,
    # One thread: CPU results depend on the thread count (raise it with --set-threads).
    threads: 1
    resources:
        **gpu_rule_resources("train_xattn"),
    conda:
        "../envs/gpu.yaml"
    wildcard_constraints:
        variant=get_head_constraint("xattn"),
    script:
        script_path("fusion/heads/xattn")


# Graph-attention fusion of seed paper 003 and its ablations (fusion.heads.graph, updated by the
# variant's fusion.heads.ablations entry: its only config): modality nodes (speech, text, prosody
# tokens, spectral statistics), multi-head attention + GAT layers, SwiGLU classifier; reads only
# the sequence files its nodes need. Trained on the training split, stopped early on the selection
# split; writes the same metrics and probabilities as evaluate_variant.
rule train_graph:
    input:
        acoustic=get_head_sequence_files("acoustic"),
        text=get_head_sequence_files("text"),
        prosody=get_head_sequence_files("prosody"),
        manifests=[ser_manifest(split) for split in SPLITS],
        code=script_code("fusion/heads/graph"),
    output:
        model=paths.HEAD_MODEL,
        model_sha256=paths.checksum_of(paths.HEAD_MODEL),
        summary=paths.HEAD_SUMMARY,
        metrics=paths.VARIANT_METRICS,
        probabilities=expand(paths.VARIANT_PROBABILITIES, split=SPLITS, allow_missing=True),
    log:
        paths.log("fusion", "train_graph", "{scope}", "{variant}"),
    benchmark:
        paths.benchmark("fusion", "train_graph", "{scope}", "{variant}")
    params:
        head=get_head_block,
        overrides=get_head_overrides,
        bootstrap=config["fusion"]["bootstrap"],
        classes=CLASSES,
        splits=SPLITS,
        train_split=ROLES.train,
        selection_split=ROLES.selection,
        # Per-epoch state: a restarted (killed) job resumes after its last finished epoch.
        work_dir=get_head_work_dir,
    # One thread: CPU results depend on the thread count (raise it with --set-threads).
    threads: 1
    resources:
        **gpu_rule_resources("train_graph"),
    conda:
        "../envs/gpu.yaml"
    wildcard_constraints:
        variant=get_head_constraint("graph"),
    script:
        script_path("fusion/heads/graph")


# Majority vote over fusion.vote.members (variants trained on the training split): reads only
# their saved probabilities and metrics, tunes nothing. One per ASR system when a member reads transcripts.
rule evaluate_vote:
    input:
        # probabilities (member outermost, SPLITS order within), then metrics.
        unpack(get_vote_inputs),
        manifests=[ser_manifest(split) for split in SPLITS],
        code=script_code("fusion/vote"),
    output:
        metrics=paths.VARIANT_METRICS.replace("{variant}", names.VOTE_VARIANT),
        probabilities=expand(paths.VARIANT_PROBABILITIES, variant=names.VOTE_VARIANT, split=SPLITS, allow_missing=True),
    log:
        paths.log("fusion", "evaluate_vote", "{scope}"),
    benchmark:
        paths.benchmark("fusion", "evaluate_vote", "{scope}")
    params:
        members=config["fusion"]["vote"]["members"],
        bootstrap=config["fusion"]["bootstrap"],
        classes=CLASSES,
        splits=SPLITS,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("fusion/vote")


# The primary ASR system's hybrid row (asr.primary_system).
rule headline_metrics:
    input:
        metrics=variant_metrics(names.HEADLINE_VARIANT, PRIMARY_SYSTEM),
    output:
        headline=report(
            paths.HEADLINE_METRICS,
            caption="../report/hybrid_metrics.rst",
            category="Fusion",
            subcategory="Metrics",
        ),
    log:
        paths.log("fusion", "headline_metrics"),
    benchmark:
        paths.benchmark("fusion", "headline_metrics")
    threads: 1
    conda:
        "../envs/cpu.yaml"
    shell:
        "cp {input.metrics} {output.headline} 2> {log}"


rule table2:
    input:
        metrics=get_report_metrics(),
        code=script_code("fusion/table2"),
    output:
        md=report(paths.TABLE2_MD, caption="../report/table2.rst", category="Fusion", subcategory="Table 2"),
        csv=report(paths.TABLE2_CSV, caption="../report/table2.rst", category="Fusion", subcategory="Table 2"),
    log:
        paths.log("fusion", "table2"),
    benchmark:
        paths.benchmark("fusion", "table2")
    params:
        splits=TEST_SPLITS,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("fusion/table2")


# One point per ASR system (asr.systems), the acoustic-only baseline as a band.
rule figure2:
    input:
        runs=lambda wildcards: runs_inputs(get_figure2_runs()),
        code=script_code("fusion/figure2"),
    output:
        png=report(paths.FIGURE2_PNG, caption="../report/figure2.rst", category="Fusion", subcategory="Figure 2"),
        svg=report(paths.FIGURE2_SVG, caption="../report/figure2.rst", category="Fusion", subcategory="Figure 2"),
        points=paths.FIGURE2_POINTS,
    log:
        paths.log("fusion", "figure2"),
    benchmark:
        paths.benchmark("fusion", "figure2")
    params:
        figure2={key: config["fusion"]["figure2"][key] for key in ("variants", "baseline", "wer_key")},
        # A function: Snakemake would try to fill any "{...}" in a string param with wildcards.
        runs=lambda wildcards: get_figure2_runs(),
        splits=TEST_SPLITS,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("fusion/figure2")


# Table 3: per ASR system, WER / CER on each test split and the text-dependent rows' SER metrics.
rule table3:
    input:
        runs=lambda wildcards: runs_inputs(get_table3_runs()),
        code=script_code("fusion/table3"),
    output:
        md=report(paths.TABLE3_MD, caption="../report/table3.rst", category="Fusion", subcategory="Table 3"),
        csv=report(paths.TABLE3_CSV, caption="../report/table3.rst", category="Fusion", subcategory="Table 3"),
    log:
        paths.log("fusion", "table3"),
    benchmark:
        paths.benchmark("fusion", "table3")
    params:
        runs=lambda wildcards: get_table3_runs(),
        splits=TEST_SPLITS,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("fusion/table3")


rule plot_confusion_matrices:
    input:
        metrics=get_report_metrics(),
        code=script_code("fusion/confusion_matrices"),
    output:
        png=report(
            paths.CONFUSION_MATRICES,
            caption="../report/confusion_matrices.rst",
            category="Fusion",
            subcategory="Metrics",
        ),
    log:
        paths.log("fusion", "plot_confusion_matrices"),
    benchmark:
        paths.benchmark("fusion", "plot_confusion_matrices")
    params:
        splits=TEST_SPLITS,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("fusion/confusion_matrices")
