"""Normalisation statistics: strict JSON (no NaN), old files with NaN, and velocity (de)normalisation for any
range and both methods, against hand-computed values."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from data_prep import schema
from data_prep.normalization import (
    NormalizationConfig,
    NormalizationStats,
    StatisticsAccumulator,
    VelocityNormalization,
    denormalize_velocity,
    normalize_velocity,
)


def _reject_constant(name):
    raise AssertionError(f"statistics JSON holds {name}: not strict JSON")


def _stats(method: str, velocity_range_mps=(1000.0, 6000.0), velocity_mps=None) -> NormalizationStats:
    rng = np.random.default_rng(0)
    accumulator = StatisticsAccumulator(
        NormalizationConfig(method=method, velocity_range_mps=velocity_range_mps)
    )
    if velocity_mps is None:
        velocity_mps = np.array([[[1000.0, 2000.0], [3000.0, 6000.0]]])  # mean 3000, std sqrt(3.5e6)
    accumulator.update(rng.normal(size=(len(velocity_mps), 2, 8, 3)).astype("float32") * 20, velocity_mps)
    return accumulator.result()


@pytest.mark.parametrize("method", ["minmax", "standard"])
def test_statistics_json_is_strict_and_round_trips(method, tmp_path):
    stats = _stats(method)
    text = json.dumps(stats.to_dict(), allow_nan=False)
    restored = NormalizationStats.from_dict(json.loads(text, parse_constant=_reject_constant))
    assert restored == stats
    if method == "minmax":
        # Not computed under minmax: null, not NaN.
        assert stats.seismic["mean"] is None and stats.seismic["std"] is None
        assert stats.seismic_raw["mean"] is None and stats.seismic_raw["std"] is None
    else:
        assert np.isfinite(stats.seismic["mean"]) and stats.seismic["std"] > 0
    # What the dataset stores (schema.write_normalization) is strict JSON too.
    with h5py.File(tmp_path / "stats.h5", "w") as h5:
        schema.write_normalization(h5, stats, np.arange(1))
        stored = h5[schema.NORMALIZATION].attrs["stats"]
    assert NormalizationStats.from_dict(json.loads(stored, parse_constant=_reject_constant)) == stats


def test_old_statistics_with_nan_are_read_and_appended_to():
    stats = _stats("minmax")
    old = stats.to_dict()
    for key in ("seismic", "seismic_raw"):
        old[key]["mean"] = old[key]["std"] = float("nan")
    old_text = json.dumps(old)  # what earlier versions wrote
    assert "NaN" in old_text
    restored = NormalizationStats.from_dict(json.loads(old_text))
    assert restored == stats and restored.seismic["mean"] is None
    assert "NaN" not in json.dumps(restored.to_dict())
    # Appending (minmax) merges into the old statistics; asking for moments they never had is refused.
    accumulator = StatisticsAccumulator(
        NormalizationConfig(velocity_range_mps=(1000.0, 6000.0)), previous=restored
    )
    accumulator.update(np.full((1, 2, 8, 3), 1000.0, np.float32), np.full((1, 2, 2), 1500.0))
    merged = accumulator.result()
    assert merged.seismic_raw["max"] == 1000.0 and merged.num_train_samples == 2
    assert merged.seismic["max"] == pytest.approx(np.log1p(1000.0), rel=1e-6)
    with pytest.raises(ValueError, match="without mean/std"):
        StatisticsAccumulator(NormalizationConfig(method="standard"), previous=restored)


def test_minmax_velocity_with_a_non_default_range_by_hand():
    stats = _stats("minmax")
    velocity = stats.velocity_normalization()
    assert velocity == VelocityNormalization("minmax", 1000.0, 6000.0)
    assert (velocity.scale_mps, velocity.offset_mps) == (2500.0, 3500.0)
    values = np.array([1000.0, 2250.0, 3500.0, 6000.0])
    assert normalize_velocity(values, stats).tolist() == [-1.0, -0.5, 0.0, 1.0]
    assert denormalize_velocity(np.array([-1.0, -0.5, 0.0, 1.0]), stats).tolist() == values.tolist()
    # velocity_range_mps: null takes the training split's range (here 1200-4800 m/s).
    stats = _stats("minmax", None, np.array([[[1200.0, 4800.0], [3000.0, 3000.0]]]))
    assert (stats.velocity_min_mps, stats.velocity_max_mps) == (1200.0, 4800.0)
    assert normalize_velocity(np.array([1200.0, 3000.0, 4800.0]), stats).tolist() == [-1.0, 0.0, 1.0]


def test_standard_velocity_by_hand():
    stats = _stats("standard")
    std = np.sqrt(
        ((1000 - 3000) ** 2 + 1000**2 + 0 + 3000**2) / 4
    )  # population std of 1000, 2000, 3000, 6000
    velocity = stats.velocity_normalization()
    assert velocity.method == "standard" and (velocity.min_mps, velocity.max_mps) == (1000.0, 6000.0)
    assert velocity.mean_mps == pytest.approx(3000.0, rel=1e-12)
    assert velocity.std_mps == pytest.approx(std, rel=1e-12)
    normalized = normalize_velocity(np.array([3000.0, 3000.0 + std, 3000.0 - 2 * std]), stats, np.float64)
    np.testing.assert_allclose(normalized, [0.0, 1.0, -2.0], atol=1e-12)
    np.testing.assert_allclose(
        denormalize_velocity(normalized, stats), [3000.0, 3000.0 + std, 3000.0 - 2 * std], rtol=1e-7
    )
    # SSIM's [0, 1] map uses the dataset's range for standard too: u = (std v + mean - 1000) / 5000.
    scale, offset = velocity.unit_interval_affine()
    assert scale == pytest.approx(std / 5000, rel=1e-12) and offset == pytest.approx(2000 / 5000, rel=1e-12)


def test_velocity_normalization_coerces_and_validates():
    stats = _stats("standard")
    expected = stats.velocity_normalization()
    assert VelocityNormalization.coerce(stats) == expected
    assert VelocityNormalization.coerce(stats.to_dict()) == expected
    assert VelocityNormalization.coerce(expected.to_dict()) == expected
    assert VelocityNormalization.coerce(None) == VelocityNormalization("minmax", 1500.0, 4500.0)
    with pytest.raises(ValueError, match="min < max"):
        VelocityNormalization("minmax", 3000.0, 3000.0)
    with pytest.raises(ValueError, match="positive std_mps"):
        VelocityNormalization("standard", 1000.0, 6000.0, mean_mps=3000.0, std_mps=0.0)
    with pytest.raises(ValueError, match="'minmax' or 'standard'"):
        VelocityNormalization("robust")
    with pytest.raises(ValueError, match="Unknown velocity normalisation keys"):
        VelocityNormalization.coerce({"velocity_range_mps": [1500, 4500]})
    with pytest.raises(TypeError, match="Received: tuple"):
        VelocityNormalization.coerce((1500.0, 4500.0))
    # Constant training velocities with a range taken from the data: a clear error, not a division by zero.
    constant = _stats("minmax", None, np.full((1, 2, 2), 2000.0))
    with pytest.raises(ValueError, match="constant training velocities"):
        normalize_velocity(np.array([2000.0]), constant)
    # A dataset without velocity models.
    accumulator = StatisticsAccumulator(NormalizationConfig())
    accumulator.update(np.ones((1, 2, 8, 3), np.float32))
    with pytest.raises(ValueError, match="no velocity models"):
        denormalize_velocity(np.zeros(3), accumulator.result(has_velocity=False))


def test_velocities_beyond_the_fixed_range_are_named_with_a_range_that_covers_them():
    """A model's tanh output maps the dataset's range and no further: training velocities beyond it by more
    than 1 % of its span are reported (how far, which range), with the whole-100 m/s range that holds them."""
    salt = np.array([[[1480.0, 2000.0], [4000.0, 5230.0]]])  # water 20 m/s under, salt 730 m/s over 4500
    stats = _stats("minmax", velocity_range_mps=(1500.0, 4500.0), velocity_mps=salt)
    assert stats.velocities_beyond() == (
        "the training velocities reach up to 5230 m/s, beyond the range 1500-4500 m/s"
    ), "1480 m/s is within 1 % of the 3000 m/s span (30 m/s): not reported"
    assert stats.covering_range_mps() == (1400.0, 5300.0)
    slow = _stats("minmax", velocity_range_mps=(1500.0, 4500.0), velocity_mps=np.array([[[1300.0, 4600.0]]]))
    assert slow.velocities_beyond() == (
        "the training velocities reach up to 4600 m/s and down to 1300 m/s, beyond the range 1500-4500 m/s"
    )
    # Against another range (a fine-tuning parent's), and a range that holds them.
    assert stats.velocities_beyond(1400.0, 5300.0) is None
    assert stats.velocities_beyond(1500.0, 5000.0).startswith("the training velocities reach up to 5230 m/s")
    assert stats.covering_range_mps(1000.0, 6000.0) == (1000.0, 6000.0)
    # The training split's own range (velocity_range_mps: null) holds everything by construction.
    assert _stats("minmax", velocity_range_mps=None, velocity_mps=salt).velocities_beyond() is None
