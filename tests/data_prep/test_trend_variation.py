"""Depth-trend variety in synthesis (issue 21): a chosen model's gradient tilted before it is simulated."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.config import CONFIG_DIR, load_config
from core.errors import UserError
from data_prep.forward import simulate
from data_prep.synthesize import Chunk, SynthesizeConfig, read_manifest, simulate_chunk, synthesize
from data_prep.velocity_models import family_parameters, generate_model
from data_prep.velocity_models.trend_variation import TrendVariationConfig, tilt_trend

SMALL = CONFIG_DIR / "data" / "small.yaml"
TILTED = TrendVariationConfig(probability=1.0, gradient_range=(-0.4, 0.4))


def _small_config(**values) -> SynthesizeConfig:
    return load_config(SynthesizeConfig, files=[SMALL], values=values)


def test_a_tilt_keeps_mid_depth_and_moves_top_and_bottom_by_half_the_gradient():
    velocity = np.full((11, 4), 3000.0, np.float32)
    velocity[6:] = 3600.0  # an interface: it stays where it is
    tilted = tilt_trend(velocity, 0.2)
    np.testing.assert_allclose(tilted[0], 3000.0 * 0.9)
    np.testing.assert_allclose(tilted[5], 3000.0)
    np.testing.assert_allclose(tilted[-1], 3600.0 * 1.1)
    jumps = np.flatnonzero(np.abs(np.diff(tilted[:, 0])) > 100)
    assert jumps.tolist() == [5]


def test_draws_are_seeded_within_range_and_keep_every_model_inside_the_bounds():
    draws = []
    for family in ("flatvel-a", "structural", "salt"):
        parameters = family_parameters(family)
        for index in range(40):
            velocity = generate_model(parameters, 3, index, (70, 70)).velocity_mps
            gradient = TILTED.draw(velocity, 3, index)
            assert gradient == TILTED.draw(velocity, 3, index), "depends on (seed, index) only"
            tilted = tilt_trend(velocity, gradient)
            assert tilted.min() >= 1500.0 - 1e-2 and tilted.max() <= 4500.0 + 1e-2
            draws.append(gradient)
    draws = np.asarray(draws)
    assert np.all(np.abs(draws) <= 0.4) and draws.min() < -0.3 and draws.max() > 0.25, "drawn over the range"
    # A model that spans the bounds at top and bottom has no room: its trend is kept.
    spanning = np.full((10, 3), 1500.0, np.float32)
    spanning[-1] = 4500.0
    assert TILTED.draw(spanning, 0, 0) == 0.0
    # Probability: about half are chosen at 0.5, none at 0.
    half = TrendVariationConfig(probability=0.5)
    flat = np.full((10, 3), 3000.0, np.float32)
    chosen = sum(half.draw(flat, 0, index) != 0.0 for index in range(200))
    assert 70 < chosen < 130
    assert not TrendVariationConfig().enabled and TrendVariationConfig().draw(flat, 0, 0) == 0.0


def test_synthesis_simulates_the_tilted_model_and_records_the_setting(tmp_path):
    config = dataclasses.replace(_small_config(family="flatvel-a", count=2), trend=TILTED)
    velocity, seismic, _ = simulate_chunk(
        config, Chunk(index=0, first_model=0, num_models=2, family="flatvel-a")
    )
    for index in range(2):
        plain = generate_model(family_parameters("flatvel-a"), config.seed, index, config.geometry.grid_shape)
        gradient = TILTED.draw(plain.velocity_mps, config.seed, index)
        assert gradient != 0.0
        np.testing.assert_allclose(velocity[index], tilt_trend(plain.velocity_mps, gradient), rtol=1e-6)
        expected = np.asarray(simulate(velocity[index], config.geometry, config.engine))[0]
        np.testing.assert_allclose(seismic[index], expected, atol=1e-5 * np.abs(expected).max())
        untilted = np.asarray(simulate(plain.velocity_mps, config.geometry, config.engine))[0]
        assert np.linalg.norm(seismic[index] - untilted) > 0.05 * np.linalg.norm(untilted)
    synthesize(config, tmp_path / "tilted", progress=False)
    assert read_manifest(tmp_path / "tilted")["trend_variation"]["gradient_range"] == [-0.4, 0.4]
    other = dataclasses.replace(config, trend=TrendVariationConfig(probability=0.5))
    with pytest.raises(UserError, match="trend_variation.probability"):
        synthesize(other, tmp_path / "tilted", progress=False)
    synthesize(_small_config(family="flatvel-a", count=2), tmp_path / "plain", progress=False)
    assert "trend_variation" not in read_manifest(tmp_path / "plain")


@pytest.mark.parametrize(
    "values, message",
    [
        ({"probability": 1.5}, r"trend.probability must lie in \[0, 1\]"),
        ({"gradient_range": (0.5, -0.5)}, "trend.gradient_range must be"),
        ({"gradient_range": (-1.0, 0.5)}, "trend.gradient_range must be"),
        ({"bounds_mps": (4500.0, 1500.0)}, "trend.bounds_mps must be"),
    ],
)
def test_bad_trend_settings(values, message):
    with pytest.raises(ValueError, match=message):
        TrendVariationConfig(**values)
