"""Token states of a text backend (rule extract_tefe_backend_tokens; names.TEFE_TOKEN_BACKENDS).

The sequence contract (:mod:`workflow_scripts.common.sequences`) for the neural fusion heads,
like extract_tefe_tokens for the paper's encoders: per utterance of a speech split, the
``(tokens, hidden)`` matrix of the backend's token states (the transformer's last hidden states
at the attention mask's positions) of its ASR hypothesis, keyed by utt_id, in manifest order.
Every matrix has at least one row (the tokenizer's special tokens; an empty text included).
Written by :func:`workflow_scripts.tefe.extract_backend.extract_backend_features` (``kind`` tokens).
"""

from typing import Any

from workflow_scripts.common.rule import run_rule
from workflow_scripts.tefe.extract_backend import extract_backend_features, job_arguments


def main(job: Any) -> None:
    """Entry point of the extract_tefe_backend_tokens rule (``job``: the rule's ``snakemake`` object)."""
    extract_backend_features(*job_arguments(job, "tokens"))


if __name__ == "__main__":
    run_rule(main)
