"""One XGBoost fold fit on wide pooled features: time, memory and held-out score per setting.

What the fusion stage's tuning repeats (trials x folds): a hist booster trained on one fold's
fitting rows. On seeded synthetic early-fusion features (benchmarks/fusion_scale.py's), each
setting runs in its own process and prints wall / CPU seconds of the training, the process's peak
RSS before and after it (the growth is XGBoost's own: the per-node histogram cache) and the
held-out balanced accuracy:

    python benchmarks/xgboost_fold_fit.py --n 5000 --d 2000 --bins 256 128 64 32
    python benchmarks/xgboost_fold_fit.py --n 5000 --d 8000 --depth 8 --rounds 10 --bins 64 --cache none 64
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fusion_scale import CLASSES, MODALITIES, synthesize  # noqa: E402

from workflow_scripts.fusion.pooling import load_feature_set  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fit_once(data: Path, bins: int, cache: str, args: argparse.Namespace) -> None:
    """Child process: quantize, train one booster on the first 80% of rows, score the rest."""
    import xgboost
    from sklearn.metrics import balanced_accuracy_score

    train = load_feature_set([data / "pooled" / m / "train.parquet" for m in MODALITIES])["train"]
    y = (np.asarray(train.labels) == CLASSES[1]).astype(int)
    cut = int(0.8 * len(y))
    fit = xgboost.QuantileDMatrix(train.X[:cut], y[:cut], max_bin=bins, nthread=args.threads)
    params = {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "max_bin": bins,
        "max_depth": args.depth,
        "learning_rate": 0.03,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 1,
        "seed": 42,
        "nthread": args.threads,
    }
    if cache != "none":
        params["max_cached_hist_node"] = int(cache)
    before = peak_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    booster = xgboost.train(params, fit, args.rounds)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    score = balanced_accuracy_score(y[cut:], booster.inplace_predict(train.X[cut:]) > 0.5)
    print(
        f"  bins {bins:>4} cache {cache:>5}: {wall:7.1f} s wall {cpu:7.1f} s cpu, "
        f"peak RSS {before:6.0f} -> {peak_mb():6.0f} MB, held-out BA {score:.4f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="training utterances (80%% fitted, 20%% held out)")
    parser.add_argument("--d", type=int, default=2000, help="early-fusion width")
    parser.add_argument("--bins", type=int, nargs="+", default=[256, 64])
    parser.add_argument("--cache", nargs="+", default=["none"], help="max_cached_hist_node values, or none")
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        fit_once(Path(args.one[0]), int(args.one[1]), args.one[2], args)
        return
    print(f"n={args.n} d={args.d} depth {args.depth}, {args.rounds} rounds, {args.threads} threads")
    with tempfile.TemporaryDirectory() as temporary:
        synthesize(Path(temporary), args.n, args.d, args.seed)
        for bins in args.bins:
            for cache in args.cache:
                subprocess.run([sys.executable, *sys.argv, "--one", temporary, str(bins), cache], check=True)


if __name__ == "__main__":
    main()
