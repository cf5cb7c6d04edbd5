"""Seeded, stratified splits, speaker-disjoint when speakers are known."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def _largest_remainder(total: int, fractions: Sequence[float]) -> np.ndarray:
    """Integer counts summing to ``total`` in proportion to ``fractions``."""
    exact = np.asarray(fractions, dtype=float) / float(sum(fractions)) * total
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def stratified_split(labels: pd.Series, fractions: Mapping[str, float], seed: int) -> pd.Series:
    """Assign each row to a split so that every label is divided in the given proportions.

    Returns a Series of split names aligned with ``labels``' index.
    """
    names = list(fractions)
    rng = np.random.default_rng(seed)
    assignment = pd.Series(index=labels.index, dtype=object)
    for label in sorted(labels.unique()):
        rows = labels.index[labels == label].to_numpy()
        rows = rows[rng.permutation(len(rows))]
        counts = _largest_remainder(len(rows), [fractions[n] for n in names])
        start = 0
        for name, count in zip(names, counts, strict=True):
            assignment.loc[rows[start : start + count]] = name
            start += count
    return assignment


def speaker_disjoint_split(
    labels: pd.Series, speakers: pd.Series, fractions: Mapping[str, float], seed: int
) -> pd.Series:
    """Assign whole speakers to splits, matching the target sizes and label balance.

    Greedy: speakers in a seeded order (largest first) go to the split whose size and
    per-label counts are furthest below target. Every split receives at least one speaker.
    """
    names = list(fractions)
    speaker_ids = sorted(speakers.unique())
    if len(speaker_ids) < len(names):
        raise ValueError(
            f"speaker-disjoint split needs at least {len(names)} speakers for splits {names}, "
            f"found {len(speaker_ids)}; lower the number of splits or set speaker_disjoint: false"
        )
    rng = np.random.default_rng(seed)
    table = pd.crosstab(speakers, labels)
    class_totals = table.sum(axis=0).to_numpy(dtype=float)
    weights = np.array([fractions[n] for n in names], dtype=float)
    weights /= weights.sum()
    targets = np.outer(weights, class_totals)  # split x class
    filled = np.zeros_like(targets)
    order = [speaker_ids[i] for i in rng.permutation(len(speaker_ids))]
    order.sort(key=lambda s: -int(table.loc[s].sum()))  # stable: ties keep the seeded order
    owner: dict[object, str] = {}
    empty = list(range(len(names)))
    for position, speaker in enumerate(order):
        counts = table.loc[speaker].to_numpy(dtype=float)
        remaining = len(order) - position
        if len(empty) >= remaining:  # the last speakers go to still-empty splits
            candidates = empty
        else:
            candidates = range(len(names))
        deficit = [((targets[i] - filled[i]) * counts).sum() / max(counts.sum(), 1.0) for i in candidates]
        choice = list(candidates)[int(np.argmax(deficit))]
        filled[choice] += counts
        owner[speaker] = names[choice]
        if choice in empty:
            empty.remove(choice)
    return speakers.map(owner)


def assign_splits(
    labels: pd.Series,
    fractions: Mapping[str, float],
    seed: int,
    speakers: pd.Series | None = None,
) -> pd.Series:
    """Stratified split; speaker-disjoint when ``speakers`` is given."""
    if any(v <= 0 for v in fractions.values()):
        raise ValueError(f"split fractions must be positive, got {dict(fractions)}")
    if speakers is not None:
        return speaker_disjoint_split(labels, speakers, fractions, seed)
    return stratified_split(labels, fractions, seed)
