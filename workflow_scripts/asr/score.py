"""WER, CER and SyER of one split's transcripts (jiwer, after the shared normalisation) -> JSON."""

from typing import Any

from workflow_scripts.asr.text import NormalizeConfig, score_transcripts
from workflow_scripts.asr.transcripts import read_transcripts
from workflow_scripts.common.files import write_json
from workflow_scripts.common.rule import run_rule


def main(job: Any) -> None:
    """Entry point of the score_asr rule (``job``: the rule's ``snakemake`` object)."""
    normalize = NormalizeConfig.from_dict(job.params.normalize)
    frame = read_transcripts(job.input.transcripts)
    scores = score_transcripts(frame["reference"].tolist(), frame["hypothesis"].tolist(), normalize)
    write_json(job.output.scores, {"split": job.wildcards.split, "transcripts": job.input.transcripts, **scores})


if __name__ == "__main__":
    run_rule(main)
