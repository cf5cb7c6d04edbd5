"""The fit_prosody_bins rule: the quantizer of the prosody tokens, from the TRAINING split's F0 file only.

F0 of voiced frames -> mel (HTK formula, 2595 log10(1 + f/700)), clipped to ``range_hz``;
``method: quantile`` puts the ``bins - 1`` inner edges at the training frames' quantiles (every
bin holds about as many training frames), ``uniform`` spaces them evenly in mel over ``range_hz``
(nothing learnt from data, still recorded). Written to :data:`paths.PROSODY_BINS` with the
vocabulary (``bins + 1``: token 0 is the unvoiced token) and the file it was fitted on.
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from workflow_scripts.common.checksums import write_checked_json
from workflow_scripts.common.rule import run_rule
from workflow_scripts.common.sequences import SequenceFile
from workflow_scripts.sefe.prosody import BINS_FORMAT, UNVOICED, hz_to_mel

log = logging.getLogger(__name__)

METHODS = ("quantile", "uniform")


def voiced_mel(matrices: Sequence[np.ndarray]) -> np.ndarray:
    """Mel values of the voiced frames of (frames, 2) F0 matrices, concatenated."""
    parts = [hz_to_mel(m[m[:, 1] > 0.5, 0]) for m in matrices]
    return np.concatenate(parts) if parts else np.zeros(0)


def fit_bins(train_matrices: Sequence[np.ndarray], cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The quantizer (inner edges in mel) fitted on the training split's F0 matrices."""
    bins, method = int(cfg["bins"]), cfg["method"]
    low, high = (float(v) for v in cfg["range_hz"])
    if bins < 1 or not 0 < low < high or method not in METHODS:
        raise ValueError(
            f"sefe.prosody.quantizer: bins {bins} (>= 1), range_hz {[low, high]} (0 < low < high), "
            f"method {method!r} (one of {METHODS})"
        )
    lo, hi = float(hz_to_mel(low)), float(hz_to_mel(high))
    values = np.clip(voiced_mel(train_matrices), lo, hi)
    if method == "uniform":
        edges = np.linspace(lo, hi, bins + 1)[1:-1]
    else:
        if len(values) == 0:
            raise ValueError("sefe.prosody.quantizer: the training split has no voiced frame to fit quantile bins on")
        edges = np.quantile(values, np.arange(1, bins) / bins)
    return {
        "format": BINS_FORMAT,
        "bins": bins,
        "method": method,
        "scale": "mel (HTK: 2595 log10(1 + f / 700))",
        "range_hz": [low, high],
        "range_mel": [lo, hi],
        "edges": [float(e) for e in edges],
        "unvoiced_id": UNVOICED,
        "vocabulary_size": bins + 1,
        "voiced_frames": int(len(values)),
        "frames": int(sum(len(m) for m in train_matrices)),
        "utterances": len(train_matrices),
    }


def main(job: Any) -> None:
    """Entry point of the fit_prosody_bins rule (``job``: the rule's ``snakemake`` object)."""
    train = SequenceFile(job.input.f0)
    quantizer = fit_bins(train.read(np.arange(len(train))), job.params.quantizer)
    quantizer["fitted_on"] = {"split": job.params.train_split, "file": str(job.input.f0)}
    write_checked_json(job.output.bins, quantizer)
    log.info("prosody bins: %s", {k: v for k, v in quantizer.items() if k != "edges"})


if __name__ == "__main__":
    run_rule(main)
