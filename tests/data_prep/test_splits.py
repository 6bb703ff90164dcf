"""Splits stratified by family: every family is split with the fractions on its own."""

from __future__ import annotations

import numpy as np
import pytest

from data_prep.splits import check_splits, extend_splits, make_splits, split_sizes


def _per_family(splits, families):
    families = np.asarray(families)
    return {
        family: tuple(int(np.sum(families[splits[name]] == family)) for name in ("train", "val", "test"))
        for family in sorted(set(families.tolist()))
    }


def test_each_family_is_split_with_the_fractions():
    # 100 FlatVel-A samples and 10 CurveFault-B samples, interleaved.
    families = np.array(["flatvel-a"] * 100 + ["curvefault-b"] * 10)
    families = families[np.random.default_rng(3).permutation(110)]
    splits = make_splits(110, (0.8, 0.1, 0.1), seed=2, groups=families)
    assert check_splits(splits, 110) == []
    assert _per_family(splits, families) == {
        "curvefault-b": split_sizes(10, (0.8, 0.1, 0.1)),  # (8, 1, 1)
        "flatvel-a": split_sizes(100, (0.8, 0.1, 0.1)),  # (80, 10, 10)
    }


def test_a_small_family_is_not_left_out_by_chance():
    """Unstratified, a family of 3 among 300 samples lands in val and test together only rarely."""
    families = np.array(["big"] * 300 + ["rare"] * 3)
    for seed in range(20):
        splits = make_splits(303, (0.8, 0.1, 0.1), seed=seed, groups=families)
        assert _per_family(splits, families)["rare"] == (1, 1, 1), f"seed {seed}"


def test_one_family_equals_the_unstratified_split_and_seeds_matter():
    plain = make_splits(50, (0.7, 0.2, 0.1), seed=4)
    grouped = make_splits(50, (0.7, 0.2, 0.1), seed=4, groups=["flatvel-a"] * 50)
    assert all(np.array_equal(plain[name], grouped[name]) for name in plain)
    families = ["a"] * 25 + ["b"] * 25
    first = make_splits(50, (0.7, 0.2, 0.1), seed=4, groups=families)
    again = make_splits(50, (0.7, 0.2, 0.1), seed=4, groups=families)
    other = make_splits(50, (0.7, 0.2, 0.1), seed=5, groups=families)
    assert all(np.array_equal(first[name], again[name]) for name in first), "same seed, same splits"
    assert not np.array_equal(first["train"], other["train"]), "another seed, other splits"


def test_extended_splits_stratify_the_new_samples_and_keep_the_old():
    old = make_splits(20, (0.8, 0.1, 0.1), seed=1, groups=["a"] * 20)
    new_families = ["b"] * 10 + ["c"] * 10
    extended = extend_splits(old, 20, (0.8, 0.1, 0.1), seed=1, groups=new_families)
    assert check_splits(extended, 40) == []
    for name in old:
        assert np.array_equal(extended[name][extended[name] < 20], old[name])
    families = np.array(["a"] * 20 + new_families)
    assert _per_family(extended, families) == {"a": (16, 2, 2), "b": (8, 1, 1), "c": (8, 1, 1)}


def test_groups_must_label_every_sample():
    with pytest.raises(ValueError, match=r"one label per sample \(5\)"):
        make_splits(5, groups=["a"] * 4)
