"""Which Whisper encoder layer and pooling statistics for SEFE, chosen on the dev split only.

One encoder pass per split gives every hidden state at once (0 = embeddings with positions,
1..N the layers' outputs, ``last`` = after the final layer norm, ``average`` = mean of the
layers); each (layer, statistics) pair is pooled and evaluated exactly as evaluate_sefe does
(scaler + logistic regression fitted on train, C by speaker-grouped CV on train). The pair
with the best dev UA is the choice; the test splits are printed for every pair but never
used to choose. The rules do the layer part of this with ``sefe.whisper_encoder.layer: auto``
(extract_sefe_layers, choose_sefe_layer; docs/sefe.md); this script also compares statistics.
Example (EmoDB, after `snakemake ... --configfile configs/emodb.yaml --
results/data/speech/emodb/train.tsv` and the converted model):

    python benchmarks/sefe_whisper_layers.py --manifests results/data/speech/emodb \\
        --model results/pretrained/whisper-base --work /tmp/layers --config configs/emodb.yaml
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workflow_scripts.common.features import write_features  # noqa: E402
from workflow_scripts.common.manifest import read_manifest  # noqa: E402
from workflow_scripts.sefe.backends import WhisperEncoderBackend  # noqa: E402
from workflow_scripts.sefe.evaluate import evaluate  # noqa: E402
from workflow_scripts.sefe.extract import load_chunk, pool_frames  # noqa: E402
from workflow_scripts.sefe.preprocess import Preprocessing  # noqa: E402

STATISTIC_SETS = [["mean"], ["mean", "var"], ["mean", "max", "min"], ["mean", "var", "max", "min"]]


def pooled_layers(backend: WhisperEncoderBackend, manifest_path: Path, settings: Preprocessing, batch: int):
    """utt_ids and, per layer name, the pooled statistics of one split (the backend with ``layer: auto``
    encodes every layer side by side, as rule extract_sefe_layers does)."""
    manifest = read_manifest(manifest_path)
    items = list(zip(manifest["utt_id"], manifest["audio_path"], strict=True))
    names, width = backend.layer_names(), backend.layer_dim
    pooled = {name: {s: [] for s in ("mean", "var", "max", "min")} for name in names}
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        for frames in backend.frames(load_chunk(chunk, settings)):
            for k, name in enumerate(names):
                for stat, value in pool_frames(frames[:, k * width : (k + 1) * width]).items():
                    pooled[name][stat].append(value)
    return [u for u, _ in items], {
        name: {s: np.asarray(v, dtype=np.float32) for s, v in stats.items()} for name, stats in pooled.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifests", required=True, help="folder of <split>.tsv manifests")
    parser.add_argument("--model", default="results/pretrained/whisper-base")
    parser.add_argument("--config", default="configs/emodb.yaml", help="sefe.preprocessing / sefe.evaluation from here")
    parser.add_argument("--work", required=True, help="folder for the per-layer feature files")
    parser.add_argument("--input-window", default="clip", choices=["clip", "full"])
    parser.add_argument("--splits", nargs="+", default=["train", "dev", "public_test", "private_test"])
    parser.add_argument("--selection-split", default="dev")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    config = yaml.safe_load(Path(args.config).read_text())
    sefe = config["sefe"]
    settings = Preprocessing.from_config(sefe["preprocessing"])
    evaluation = {"seed": config.get("seed", 42), **sefe["evaluation"]}
    classes = config["task"]["classes"]
    cfg = {"model": args.model, "layer": "auto", "input_window": args.input_window, "device": "cpu"}
    backend = WhisperEncoderBackend({**cfg, "batch_size": args.batch_size}, settings.sample_rate, args.threads)
    names = backend.layer_names()
    work = Path(args.work)
    started = time.perf_counter()
    for split in args.splits:
        manifest = Path(args.manifests) / f"{split}.tsv"
        utt_ids, pooled = pooled_layers(backend, manifest, settings, args.batch_size)
        for name in names:
            write_features(work / name / f"{split}.parquet", utt_ids, pooled[name], {"backend": "whisper_encoder"})
        print(f"{split}: {len(utt_ids)} clips, {time.perf_counter() - started:.0f} s", flush=True)
    rows = []
    for name in names:
        for statistics in STATISTIC_SETS:
            inputs = {s: (str(work / name / f"{s}.parquet"), f"{args.manifests}/{s}.tsv") for s in args.splits}
            record = evaluate({**evaluation, "statistics": statistics}, classes, inputs, args.splits[0])
            ua = {s: round(m["UA"], 3) for s, m in record["splits"].items()}
            rows.append({"layer": name, "statistics": "+".join(statistics), "C": record["classifier"]["C"], **ua})
            print(json.dumps(rows[-1]), flush=True)
    best = max(rows, key=lambda r: r[args.selection_split])
    print("chosen on", args.selection_split, "only:", json.dumps(best))
    (work / "layers.json").write_text(json.dumps({"rows": rows, "chosen": best}, indent=1))


if __name__ == "__main__":
    main()
