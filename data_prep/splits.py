"""Seeded train/validation/test splits of a dataset's samples.

Used by ``data_prep.ingest`` and ``data_prep.openfwi`` when they write a dataset; the index arrays are
stored in the HDF5 file (``splits/train``, ``splits/val``, ``splits/test``) so training, evaluation and the
normalisation statistics all use the same partition.

Splits are **stratified** by family when the samples' families are given (``groups``): each family is split
with the fractions on its own, so every family of a mixed dataset (FlatVel-A next to CurveFault-B) is
represented in train, validation and test in proportion, and a small family is not left out of a split by
chance. With one family the result equals the unstratified split.

Appending samples to a dataset (``ingest --append``) keeps every existing sample in its split and splits
only the new samples (stratified by their families), with the same fractions and a seed derived from
``(seed, first new index)``. A model trained before the append therefore never sees a former validation or
test sample in training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPLIT_NAMES = ("train", "val", "test")


def split_sizes(num_samples: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Sizes of the three splits: rounded fractions that sum to ``num_samples``.

    Every split with a positive fraction gets at least one sample when there are enough samples, so a small
    dataset still has a validation and a test sample.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(
            f"split fractions must be three non-negative numbers (train, val, test) summing to 1. Received: {fractions}"
        )
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0. Received: {num_samples}")
    val = int(round(fractions[1] * num_samples))
    test = int(round(fractions[2] * num_samples))
    positive = [f > 0 for f in fractions]
    if num_samples >= sum(positive):
        val = max(val, 1) if positive[1] else 0
        test = max(test, 1) if positive[2] else 0
    train = num_samples - val - test
    if train < (1 if positive[0] and num_samples >= sum(positive) else 0):
        # Rounding took everything: give train its share back from the larger of val/test.
        deficit = 1 - train
        if val >= test:
            val -= deficit
        else:
            test -= deficit
        train = 1
    return train, val, test


def make_splits(
    num_samples: int,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    offset: int = 0,
    groups: Sequence[str] | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Random disjoint splits of ``offset .. offset + num_samples - 1``, stratified by ``groups`` if given.

    Args:
        num_samples: how many samples to split.
        fractions: ``(train, val, test)`` fractions summing to 1.
        seed: random seed; the same ``(seed, offset, num_samples, fractions, groups)`` gives the same splits.
        offset: index of the first sample (non-zero when appending to a dataset).
        groups: ``(num_samples,)`` group label (family) of each sample; each group is split with
            ``fractions`` on its own (``split_sizes`` of the group's size), groups in sorted order from one
            random stream. None (or a single group) gives the unstratified split.

    Returns:
        ``{"train": ..., "val": ..., "test": ...}``: sorted int64 index arrays, disjoint, covering the range.
    """
    rng = np.random.default_rng([int(seed), int(offset)])
    if groups is None:
        members = [np.arange(num_samples)]
    else:
        labels = np.asarray(groups).astype(str)
        if labels.shape != (num_samples,):
            raise ValueError(
                f"groups must hold one label per sample ({num_samples}). Received shape {labels.shape}."
            )
        members = [np.flatnonzero(labels == label) for label in sorted(set(labels.tolist()))]
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLIT_NAMES}
    for indices in members:
        sizes = split_sizes(len(indices), fractions)
        permutation = indices[rng.permutation(len(indices))] + offset
        bounds = np.cumsum((0, *sizes))
        for i, name in enumerate(SPLIT_NAMES):
            parts[name].append(permutation[bounds[i] : bounds[i + 1]])
    if not members:
        split_sizes(0, fractions)  # validates the fractions
    return {
        name: np.sort(np.concatenate(parts[name]) if parts[name] else np.empty(0)).astype(np.int64)
        for name in SPLIT_NAMES
    }


def extend_splits(
    existing: dict[str, np.ndarray],
    num_new: int,
    fractions: tuple[float, float, float],
    seed: int,
    groups: Sequence[str] | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Existing splits plus the split of ``num_new`` samples appended after them (see module docstring).

    ``groups``: the new samples' families (stratifies their split), or None.
    """
    offset = sum(len(existing[name]) for name in SPLIT_NAMES)
    new = make_splits(num_new, fractions, seed, offset=offset, groups=groups)
    return {name: np.concatenate([np.asarray(existing[name], np.int64), new[name]]) for name in SPLIT_NAMES}


def check_splits(splits: dict[str, np.ndarray], num_samples: int) -> list[str]:
    """Problems with a set of splits (empty list when they are disjoint, sorted, in range and complete)."""
    problems = []
    missing = [name for name in SPLIT_NAMES if name not in splits]
    if missing:
        return [f"splits {missing} are missing"]
    seen = np.zeros(num_samples, dtype=np.int64)
    for name in SPLIT_NAMES:
        indices = np.asarray(splits[name])
        if indices.size and (indices.min() < 0 or indices.max() >= num_samples):
            problems.append(f"split {name!r} has indices outside 0..{num_samples - 1}")
            continue
        if indices.size and np.any(np.diff(indices) <= 0):
            problems.append(f"split {name!r} is not sorted and unique")
        np.add.at(seen, indices, 1)
    if np.any(seen > 1):
        problems.append(
            f"{int(np.sum(seen > 1))} sample(s) belong to more than one split (first: {int(np.argmax(seen > 1))})"
        )
    if np.any(seen == 0):
        problems.append(
            f"{int(np.sum(seen == 0))} sample(s) belong to no split (first: {int(np.argmax(seen == 0))})"
        )
    return problems
