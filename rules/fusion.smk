# Fusion stage: pooled SEFE / TEFE features -> LR, RF and Optuna-tuned XGBoost per feature set
# (acoustic, text, early = both) -> the Optuna-weighted ensemble -> metrics of the five variants,
# Table 2, Figure 2 and confusion matrices. One rule per classifier, each given only its own
# config sub-block; only the training split is fitted, tuned or selected on.


rule pool_features:
    input:
        features=get_modality_features,
        manifests=[ser_manifest(split) for split in SPLITS],
        code=modules("fusion/pooling", "common/features", "common/manifest"),
    output:
        expand("results/fusion/pooled/{{modality}}/{split}.parquet", split=SPLITS),
    log:
        "logs/fusion/pool_features/{modality}.log",
    benchmark:
        "results/benchmarks/fusion/pool_features/{modality}.tsv"
    params:
        cfg=lambda wildcards: as_json(config["fusion"]["pooling"][wildcards.modality]),
        classes=CLASSES,
        splits=SPLITS,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m workflow_scripts.fusion.pooling --modality {wildcards.modality} --config {params.cfg:q}"
        " --classes {params.classes} --splits {params.splits} --features {input.features}"
        " --manifests {input.manifests} --outputs {output} > {log} 2>&1"


rule train_lr:
    input:
        pooled=get_pooled_features,
        code=modules("fusion/classifiers", "fusion/pooling", "common/metrics", "common/features", "common/manifest"),
    output:
        model="results/fusion/{feature_set}/lr/model.joblib",
        probabilities=expand("results/fusion/{{feature_set}}/lr/probabilities/{split}.parquet", split=SPLITS),
        oof="results/fusion/{feature_set}/lr/oof_train.parquet",
        summary="results/fusion/{feature_set}/lr/summary.json",
    log:
        "logs/fusion/train_lr/{feature_set}.log",
    benchmark:
        "results/benchmarks/fusion/train_lr/{feature_set}.tsv"
    params:
        cfg=as_json(config["fusion"]["classifiers"]["lr"]),
        cv=as_json(config["fusion"]["cv"]),
        classes=CLASSES,
        out_dir=lambda wildcards, output: output.model.rsplit("/", 1)[0],
    threads: 1
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m workflow_scripts.fusion.classifiers lr --config {params.cfg:q} --cv {params.cv:q}"
        " --classes {params.classes} --feature-set {wildcards.feature_set} --pooled {input.pooled}"
        " --out-dir {params.out_dir} --threads {threads} > {log} 2>&1"


rule train_rf:
    input:
        pooled=get_pooled_features,
        code=modules("fusion/classifiers", "fusion/pooling", "common/metrics", "common/features", "common/manifest"),
    output:
        model="results/fusion/{feature_set}/rf/model.joblib",
        probabilities=expand("results/fusion/{{feature_set}}/rf/probabilities/{split}.parquet", split=SPLITS),
        oof="results/fusion/{feature_set}/rf/oof_train.parquet",
        summary="results/fusion/{feature_set}/rf/summary.json",
    log:
        "logs/fusion/train_rf/{feature_set}.log",
    benchmark:
        "results/benchmarks/fusion/train_rf/{feature_set}.tsv"
    params:
        cfg=as_json(config["fusion"]["classifiers"]["rf"]),
        cv=as_json(config["fusion"]["cv"]),
        classes=CLASSES,
        out_dir=lambda wildcards, output: output.model.rsplit("/", 1)[0],
    threads: 1
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m workflow_scripts.fusion.classifiers rf --config {params.cfg:q} --cv {params.cv:q}"
        " --classes {params.classes} --feature-set {wildcards.feature_set} --pooled {input.pooled}"
        " --out-dir {params.out_dir} --threads {threads} > {log} 2>&1"


rule tune_xgboost:
    input:
        pooled=get_pooled_features,
        code=modules("fusion/classifiers", "fusion/pooling", "common/metrics", "common/features", "common/manifest"),
    output:
        model="results/fusion/{feature_set}/xgboost/model.joblib",
        booster="results/fusion/{feature_set}/xgboost/model.json",
        trials="results/fusion/{feature_set}/xgboost/trials.csv",
        probabilities=expand(
            "results/fusion/{{feature_set}}/xgboost/probabilities/{split}.parquet", split=SPLITS
        ),
        oof="results/fusion/{feature_set}/xgboost/oof_train.parquet",
        summary="results/fusion/{feature_set}/xgboost/summary.json",
    log:
        "logs/fusion/tune_xgboost/{feature_set}.log",
    benchmark:
        "results/benchmarks/fusion/tune_xgboost/{feature_set}.tsv"
    params:
        cfg=as_json(config["fusion"]["classifiers"]["xgboost"]),
        cv=as_json(config["fusion"]["cv"]),
        classes=CLASSES,
        out_dir=lambda wildcards, output: output.model.rsplit("/", 1)[0],
    threads: 1
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m workflow_scripts.fusion.classifiers xgboost --config {params.cfg:q} --cv {params.cv:q}"
        " --classes {params.classes} --feature-set {wildcards.feature_set} --pooled {input.pooled}"
        " --out-dir {params.out_dir} --threads {threads} > {log} 2>&1"


# Tuned on the training split only: its inputs are the early-fusion models and the pooled
# TRAINING files, nothing of any other split.
rule tune_ensemble:
    input:
        models=expand("results/fusion/early/{classifier}/model.joblib", classifier=FUSION_ENSEMBLE_MEMBERS),
        summaries=expand("results/fusion/early/{classifier}/summary.json", classifier=FUSION_ENSEMBLE_MEMBERS),
        pooled_train=expand("results/fusion/pooled/{modality}/train.parquet", modality=FUSION_MODALITIES),
        code=modules("fusion/ensemble", "fusion/classifiers", "fusion/pooling", "common/metrics", "common/features", "common/manifest"),
    output:
        weights=report(
            "results/ensemble/weights.json",
            caption="../report/ensemble_weights.rst",
            category="Fusion",
            subcategory="Ensemble",
        ),
        trials="results/ensemble/trials.csv",
        oof="results/ensemble/oof_train.parquet",
    log:
        "logs/fusion/tune_ensemble.log",
    benchmark:
        "results/benchmarks/fusion/tune_ensemble.tsv"
    params:
        cfg=as_json(config["fusion"]["ensemble"]),
        classes=CLASSES,
    threads: 2
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m workflow_scripts.fusion.ensemble --config {params.cfg:q} --classes {params.classes}"
        " --feature-set early --models {input.models} --pooled-train {input.pooled_train}"
        " --weights {output.weights} --trials {output.trials} --oof {output.oof}"
        " --threads {threads} > {log} 2>&1"


rule evaluate_variant:
    input:
        unpack(get_variant_inputs),
        manifests=[ser_manifest(split) for split in SPLITS],
        code=modules("fusion/variants", "fusion/ensemble", "fusion/classifiers", "fusion/pooling", "common/metrics",
                     "common/features", "common/manifest"),
    output:
        metrics="results/metrics/{variant}.json",
        probabilities=expand("results/fusion/variants/{{variant}}/{split}.parquet", split=SPLITS),
    log:
        "logs/fusion/evaluate_variant/{variant}.log",
    benchmark:
        "results/benchmarks/fusion/evaluate_variant/{variant}.tsv"
    params:
        cfg=get_variant_config,
        bootstrap=as_json(config["fusion"]["bootstrap"]),
        classes=CLASSES,
        splits=SPLITS,
        weights=lambda wildcards, input: f"--weights {input.weights}" if "weights" in input.keys() else "",
        out_dir=lambda wildcards: f"results/fusion/variants/{wildcards.variant}",
    threads: 1
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m workflow_scripts.fusion.variants --variant {wildcards.variant} --config {params.cfg:q}"
        " --bootstrap {params.bootstrap:q} --classes {params.classes} --splits {params.splits}"
        " --manifests {input.manifests} --members {input.summaries} {params.weights}"
        " --metrics {output.metrics} --probabilities-dir {params.out_dir} > {log} 2>&1"


rule headline_metrics:
    input:
        "results/metrics/hybrid.json",
    output:
        report(
            "results/hybrid_metrics.json",
            caption="../report/hybrid_metrics.rst",
            category="Fusion",
            subcategory="Metrics",
        ),
    log:
        "logs/fusion/headline_metrics.log",
    benchmark:
        "results/benchmarks/fusion/headline_metrics.tsv"
    threads: 1
    conda:
        "../envs/cpu.yaml"
    shell:
        "cp {input} {output} 2> {log}"


rule table2:
    input:
        metrics=expand("results/metrics/{variant}.json", variant=FUSION_VARIANTS),
        code=modules("fusion/report", "common/metrics"),
    output:
        md=report("results/table2.md", caption="../report/table2.rst", category="Fusion", subcategory="Table 2"),
        csv=report("results/table2.csv", caption="../report/table2.rst", category="Fusion", subcategory="Table 2"),
    log:
        "logs/fusion/table2.log",
    benchmark:
        "results/benchmarks/fusion/table2.tsv"
    params:
        splits=TEST_SPLITS,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m workflow_scripts.fusion.report table2 --metrics {input.metrics} --splits {params.splits}"
        " --md {output.md} --csv {output.csv} > {log} 2>&1"


rule figure2:
    input:
        runs=get_figure2_inputs,
        code=modules("fusion/report", "common/metrics"),
    output:
        png=report("results/figure2.png", caption="../report/figure2.rst", category="Fusion", subcategory="Figure 2"),
        svg=report("results/figure2.svg", caption="../report/figure2.rst", category="Fusion", subcategory="Figure 2"),
        points="results/figure2_points.csv",
    log:
        "logs/fusion/figure2.log",
    benchmark:
        "results/benchmarks/fusion/figure2.tsv"
    params:
        # A function: the WER path templates hold "{split}", which is not a wildcard of this rule.
        cfg=lambda wildcards: as_json(config["fusion"]["figure2"]),
        splits=TEST_SPLITS,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m workflow_scripts.fusion.report figure2 --config {params.cfg:q} --splits {params.splits}"
        " --png {output.png} --svg {output.svg} --points {output.points} > {log} 2>&1"


rule plot_confusion_matrices:
    input:
        metrics=expand("results/metrics/{variant}.json", variant=FUSION_VARIANTS),
        code=modules("fusion/report", "common/metrics"),
    output:
        report(
            "results/fusion/confusion_matrices.png",
            caption="../report/confusion_matrices.rst",
            category="Fusion",
            subcategory="Metrics",
        ),
    log:
        "logs/fusion/plot_confusion_matrices.log",
    benchmark:
        "results/benchmarks/fusion/plot_confusion_matrices.tsv"
    params:
        splits=TEST_SPLITS,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    shell:
        "python -m workflow_scripts.fusion.report confusion --metrics {input.metrics} --splits {params.splits}"
        " --png {output} > {log} 2>&1"
