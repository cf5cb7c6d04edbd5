# The VLSP 2025 challenge's practice (docs/challenge.md): lexicon cue rules after a variant's
# prediction (<variant>+rules rows of Table 2) and the challenge score of every variant per test
# split (results/challenge.{md,json}).


rule apply_lexicon_rules:
    input:
        metrics=paths.VARIANT_METRICS,
        probabilities=expand(paths.VARIANT_PROBABILITIES, split=SPLITS, allow_missing=True),
        manifests=[ser_manifest(split) for split in SPLITS],
        # One transcripts file per split (the manifests themselves for reference transcripts).
        transcripts=[get_rules_transcripts(split) for split in SPLITS],
        lexicon=config["challenge"]["rules"]["lexicon"],
        code=script_code("challenge/lexicon"),
    output:
        metrics=paths.VARIANT_METRICS.format(variant=RULES_VARIANT_WILDCARD),
        probabilities=[
            paths.VARIANT_PROBABILITIES.format(variant=RULES_VARIANT_WILDCARD, split=split)
            for split in SPLITS
        ],
        changes=paths.LEXICON_RULES_CHANGES,
    log:
        "logs/challenge/apply_lexicon_rules/{variant}.log",
    benchmark:
        "results/benchmarks/challenge/apply_lexicon_rules/{variant}.tsv"
    params:
        rules={key: config["challenge"]["rules"][key] for key in ("match", "transcripts")},
        bootstrap=config["fusion"]["bootstrap"],
        classes=CLASSES,
        splits=SPLITS,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("challenge/lexicon")


rule challenge_report:
    input:
        metrics=get_report_metrics(),
        # The ASR stage's scores per test split (none when challenge.score.syer is a number).
        syer=get_challenge_syer_inputs(),
        code=script_code("challenge/score"),
    output:
        md=report(paths.CHALLENGE_MD, caption="../report/challenge.rst", category="Challenge"),
        json=paths.CHALLENGE_JSON,
    log:
        "logs/challenge/challenge_report.log",
    benchmark:
        "results/benchmarks/challenge/challenge_report.tsv"
    params:
        score=config["challenge"]["score"],
        splits=TEST_SPLITS,
    threads: 1
    conda:
        "../envs/cpu.yaml"
    script:
        script_path("challenge/score")
