"""Zero-shot ASR benchmark: WER / CER of each configured backbone on the test splits (paper Table 3).

Every backbone decodes the same audio through the same backend interface as the transcription
rule and is scored with the same normalisation; results -> JSON and a Markdown table.
"""

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from workflow_scripts.asr.backends import BackendSpec, load_backend
from workflow_scripts.asr.text import NormalizeConfig, score_transcripts
from workflow_scripts.asr.transcribe import model_source, transcribe_manifest
from workflow_scripts.common.files import atomic_path, write_json
from workflow_scripts.common.rule import run_rule

log = logging.getLogger(__name__)


def benchmark_backbone(
    entry: Mapping[str, Any], manifests: Mapping[str, str], batch_size: int, device: str, normalize: NormalizeConfig
) -> dict[str, Any]:
    """Load one backbone and score it on every split of ``manifests``."""
    spec = BackendSpec.from_dict(entry)
    started = time.perf_counter()
    backend = load_backend(spec, device=device, config_key=f"asr.benchmark.backbones[{entry['name']}].model")
    result: dict[str, Any] = {
        "name": entry["name"],
        **backend.describe(),
        "load_seconds": round(time.perf_counter() - started, 2),
        "splits": {},
    }
    for split, manifest in manifests.items():
        transcripts, timing = transcribe_manifest(manifest, backend, batch_size, progress=False)
        scores = score_transcripts(transcripts["reference"].tolist(), transcripts["hypothesis"].tolist(), normalize)
        result["splits"][split] = {**scores, **timing}
        log.info(
            "%s on %s: WER %.4f CER %.4f (%.1f s)",
            entry["name"],
            split,
            scores["wer"],
            scores["cer"],
            timing["decode_seconds"],
        )
    return result


def render_markdown(results: Sequence[Mapping[str, Any]], splits: Sequence[str]) -> str:
    """The benchmark as a Markdown table: one row per backbone, WER and CER per split."""
    header = ["Backbone", "Backend", "Model", *[f"{m} {s}" for m in ("WER", "CER", "SyER") for s in splits], "RTF"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in results:
        rtf = [row["splits"][s]["real_time_factor"] for s in splits if row["splits"][s]["real_time_factor"] is not None]
        cells = [
            row["name"],
            row["backend"],
            f"`{row['model']}`",
            *[f"{row['splits'][s]['wer']:.3f}" for s in splits],
            *[f"{row['splits'][s]['cer']:.3f}" for s in splits],
            *[f"{row['splits'][s]['syer']:.3f}" for s in splits],
            f"{sum(rtf) / len(rtf):.4f}" if rtf else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        "",
        "WER / CER / SyER (syllable error rate) by jiwer after the asr.normalize normalisation; "
        "RTF: decoding seconds per second of audio "
        "(batched, on the benchmark's device).",
    ]
    return "\n".join(lines + notes) + "\n"


def run_benchmark(
    block: Mapping[str, Any], normalize: NormalizeConfig, manifests: Sequence[str], finetuned: Sequence[str]
) -> dict[str, Any]:
    """Every backbone of the ``asr.benchmark`` block on ``manifests`` (one per ``block["splits"]``, in order).

    ``finetuned``: the fine-tuned model directory that ``model: finetuned`` stands for (empty when unused).
    """
    if len(manifests) != len(block["splits"]):
        raise ValueError(f"{len(manifests)} manifests given for splits {block['splits']}")
    names = [entry["name"] for entry in block["backbones"]]
    if len(set(names)) != len(names):
        raise ValueError(f"asr.benchmark.backbones: names must be unique, got {names}")
    entries = [{**entry, "model": model_source(entry["model"], finetuned)} for entry in block["backbones"]]
    by_split = dict(zip(block["splits"], manifests, strict=True))
    batch_size = int(block["batch_size"])
    results = [benchmark_backbone(entry, by_split, batch_size, block["device"], normalize) for entry in entries]
    return {"splits": list(block["splits"]), "backbones": results}


def main(job: Any) -> None:
    """Entry point of the benchmark_asr_backbones rule (``job``: the rule's ``snakemake`` object)."""
    import torch

    torch.set_num_threads(job.threads)
    block = job.params.benchmark
    normalize = NormalizeConfig.from_dict(job.params.normalize)
    benchmark = run_benchmark(block, normalize, [str(m) for m in job.input.manifests], list(job.input.finetuned))
    write_json(job.output.json, benchmark)
    with atomic_path(job.output.md) as tmp:
        tmp.write_text(render_markdown(benchmark["backbones"], block["splits"]), encoding="utf-8")


if __name__ == "__main__":
    run_rule(main)
