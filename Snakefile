# DFAT: Dual-stage Fusion of Acoustic and Text features for speech emotion recognition.
# Usage: snakemake --cores 8 [target]   (default target: see get_final_targets in rules/common.smk)
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


# common.smk first (the config, constants, constraints), then each stage's input functions, then its rules.
include: "rules/common.smk"
include: "rules/data_inputs.smk"
include: "rules/asr_inputs.smk"
include: "rules/sefe_inputs.smk"
include: "rules/tefe_inputs.smk"
include: "rules/fusion_inputs.smk"
include: "rules/challenge_inputs.smk"
include: "rules/data.smk"
include: "rules/asr.smk"
include: "rules/sefe.smk"
include: "rules/tefe.smk"
include: "rules/fusion.smk"
include: "rules/challenge.smk"
include: "rules/shards.smk"


rule all:
    default_target: True
    input:
        get_final_targets(),
