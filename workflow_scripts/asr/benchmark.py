"""Zero-shot ASR benchmark: WER / CER of each configured backbone on the test splits (paper Table 3).

Every backbone decodes the same audio through the same backend interface as the transcription
rule and is scored with the same normalisation; results -> JSON and a Markdown table.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from workflow_scripts.asr.backends import BackendSpec, load_backend
from workflow_scripts.asr.text import NormalizeConfig, score_transcripts
from workflow_scripts.asr.transcribe import FINETUNED, transcribe_manifest
from workflow_scripts.common.files import atomic_path, parse_json_argument, write_json
from workflow_scripts.common.logs import setup_logging

log = logging.getLogger(__name__)


def benchmark_backbone(
    entry: Mapping[str, Any], manifests: Mapping[str, str], batch_size: int, device: str, normalize: NormalizeConfig
) -> dict[str, Any]:
    """Load one backbone and score it on every split of ``manifests``."""
    spec = BackendSpec.from_dict(entry)
    started = time.perf_counter()
    backend = load_backend(spec, device=device, config_key=f"asr.benchmark.backbones[{entry['name']}].model")
    result: dict[str, Any] = {"name": entry["name"], **backend.describe(),
                              "load_seconds": round(time.perf_counter() - started, 2), "splits": {}}
    for split, manifest in manifests.items():
        transcripts, timing = transcribe_manifest(manifest, backend, batch_size, progress=False)
        scores = score_transcripts(transcripts["reference"].tolist(), transcripts["hypothesis"].tolist(), normalize)
        result["splits"][split] = {**scores, **timing}
        log.info("%s on %s: WER %.4f CER %.4f (%.1f s)", entry["name"], split, scores["wer"], scores["cer"],
                 timing["decode_seconds"])
    return result


def render_markdown(results: Sequence[Mapping[str, Any]], splits: Sequence[str]) -> str:
    """The benchmark as a Markdown table: one row per backbone, WER and CER per split."""
    header = ["Backbone", "Backend", "Model", *[f"WER {s}" for s in splits], *[f"CER {s}" for s in splits], "RTF"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in results:
        rtf = [row["splits"][s]["real_time_factor"] for s in splits if row["splits"][s]["real_time_factor"] is not None]
        cells = [row["name"], row["backend"], f"`{row['model']}`",
                 *[f"{row['splits'][s]['wer']:.3f}" for s in splits], *[f"{row['splits'][s]['cer']:.3f}" for s in splits],
                 f"{sum(rtf) / len(rtf):.4f}" if rtf else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = ["", "WER / CER by jiwer after the asr.normalize normalisation; RTF: decoding seconds per second of audio "
             "(batched, on the benchmark's device)."]
    return "\n".join(lines + notes) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="asr.benchmark block as JSON")
    parser.add_argument("--normalize", required=True, help="asr.normalize block as JSON")
    parser.add_argument("--manifests", nargs="+", required=True, help="one speech manifest per configured split, in order")
    parser.add_argument("--finetuned-model", nargs="?", help="directory that model: finetuned stands for")
    parser.add_argument("--out-json", required=True)
    parser.add_argument("--out-md", required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    setup_logging()
    import torch

    torch.set_num_threads(args.threads)
    block = parse_json_argument(args.config)
    normalize = NormalizeConfig.from_dict(parse_json_argument(args.normalize, "--normalize"))
    if len(args.manifests) != len(block["splits"]):
        raise SystemExit(f"--manifests: {len(args.manifests)} given for splits {block['splits']}")
    manifests = dict(zip(block["splits"], args.manifests))
    names = [entry["name"] for entry in block["backbones"]]
    if len(set(names)) != len(names):
        raise SystemExit(f"asr.benchmark.backbones: names must be unique, got {names}")
    if any(entry["model"] == FINETUNED for entry in block["backbones"]) and not args.finetuned_model:
        raise SystemExit("asr.benchmark.backbones: a backbone uses model 'finetuned' but no --finetuned-model was given")
    results = []
    for entry in block["backbones"]:
        model = args.finetuned_model if entry["model"] == FINETUNED else entry["model"]
        results.append(benchmark_backbone({**entry, "model": model}, manifests, int(block["batch_size"]),
                                          block["device"], normalize))
    write_json(args.out_json, {"splits": list(block["splits"]), "backbones": results})
    with atomic_path(args.out_md) as tmp:
        tmp.write_text(render_markdown(results, block["splits"]), encoding="utf-8")


if __name__ == "__main__":
    main()
