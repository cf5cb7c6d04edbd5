# Sharded steps (config scale.shards > 1; docs/architecture.md "Sharded steps"): the shard manifests of
# each split, and one gather rule per step of SHARDED_STEPS (rules/common.smk) that joins the step's
# shard files into the split's contract file. With one shard per split (the default) none of these
# rules exists: each step writes its contract file itself.

if SHARDED:

    rule shard_manifest:
        input:
            manifest=paths.SPEECH_MANIFEST,
            code=script_code("data/shard_manifest"),
        output:
            shards=expand(paths.SPEECH_SHARD_MANIFEST, shard=SHARD_NAMES, allow_missing=True),
        log:
            paths.log("data", "shard_manifest", "{corpus}", "{split}"),
        benchmark:
            paths.benchmark("data", "shard_manifest", "{corpus}", "{split}")
        threads: 1
        conda:
            "../envs/cpu.yaml"
        script:
            script_path("data/shard_manifest")

    for gather, (stage, template, constraints) in SHARDED_STEPS.items():

        rule:
            name:
                gather
            input:
                # In shard order; the rows are put in the split manifest's order.
                shards=expand(paths.shard_file(template), shard=SHARD_NAMES, allow_missing=True),
                manifest=lambda wildcards: ser_manifest(wildcards.split),
                code=script_code("common/gather_shards"),
            output:
                gathered=template,
            log:
                paths.log(stage, gather, *template_wildcards(template)),
            benchmark:
                paths.benchmark(stage, gather, *template_wildcards(template))
            threads: 1
            conda:
                "../envs/cpu.yaml"
            wildcard_constraints:
                **constraints,
            script:
                script_path("common/gather_shards")
