"""A water column on top of chosen models in synthesis (issue 21: marine surveys)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from core.config import CONFIG_DIR, load_config
from core.errors import UserError
from data_prep.edges import edge_map
from data_prep.synthesize import Chunk, SynthesizeConfig, read_manifest, simulate_chunk, synthesize
from data_prep.velocity_models import family_parameters, generate_model
from data_prep.velocity_models.water_layer import WaterLayerConfig, add_water

SMALL = CONFIG_DIR / "data" / "small.yaml"
ALWAYS = WaterLayerConfig(probability=1.0, depth_m=(50.0, 150.0), max_dip_deg=10.0)


def test_each_column_is_pushed_down_under_its_own_water_depth():
    velocity = np.arange(5 * 3, dtype=np.float32).reshape(5, 3) + 2000.0
    watered = add_water(velocity, np.array([0, 1, 3]), 1490.0)
    np.testing.assert_array_equal(watered[:, 0], velocity[:, 0])
    np.testing.assert_array_equal(watered[:, 1], [1490.0, *velocity[:4, 1]])
    np.testing.assert_array_equal(watered[:, 2], [1490.0, 1490.0, 1490.0, *velocity[:2, 2]])
    assert watered.dtype == np.float32
    with pytest.raises(ValueError, match=r"water_cells must be \(3,\) whole cells in \[0, 4\]"):
        add_water(velocity, np.array([0, 1, 5]), 1500.0)
    with pytest.raises(ValueError, match="water_cells must be"):
        add_water(velocity, np.array([0, 1]), 1500.0)


def test_draws_are_seeded_within_the_depth_and_dip_ranges():
    spacing, shape = 10.0, (70, 70)
    depths, dips = [], []
    for index in range(60):
        water = ALWAYS.draw(4, index, shape, spacing)
        np.testing.assert_array_equal(water, ALWAYS.draw(4, index, shape, spacing))  # (seed, index) only
        middle = 0.5 * (water[34] + water[35]) * spacing
        dip = math.degrees(math.atan((water[-1] - water[0]) * spacing / ((shape[1] - 1) * spacing)))
        depths.append(middle)
        dips.append(dip)
        assert np.all(np.abs(np.diff(water)) <= 1), "a sea floor of at most 10 degrees moves a cell at a time"
    depths, dips = np.asarray(depths), np.asarray(dips)
    assert depths.min() >= 50.0 - 10.0 and depths.max() <= 150.0 + 10.0
    assert depths.max() - depths.min() > 60.0, "drawn over the range"
    assert np.all(np.abs(dips) <= 10.0 + 1.0) and dips.min() < -5.0 and dips.max() > 5.0
    assert not np.array_equal(ALWAYS.draw(4, 0, shape, spacing), ALWAYS.draw(5, 0, shape, spacing))
    # Probability: about a third chosen at 0.3, none when off; a deep sea is clipped to leave one row of rock.
    third = WaterLayerConfig(probability=0.3)
    chosen = sum(third.draw(0, index, shape, spacing) is not None for index in range(300))
    assert 60 < chosen < 120
    assert not WaterLayerConfig().enabled and WaterLayerConfig().draw(0, 0, shape, spacing) is None
    deep = WaterLayerConfig(probability=1.0, depth_m=(5000.0, 5000.0), max_dip_deg=0.0)
    assert np.all(deep.draw(0, 0, shape, spacing) == shape[0] - 1)


def test_the_water_bottom_is_an_edge_of_the_labels():
    velocity = generate_model(family_parameters("salt"), 0, 0, (70, 70)).velocity_mps
    watered = add_water(velocity, np.full(70, 20), 1500.0)
    edges = edge_map(watered)
    assert np.all(watered[:20] == 1500.0) and not np.any(edges[:18])
    assert edges[18:22].any(axis=0).all(), "the sea floor is an edge in every column"


def test_synthesis_simulates_the_model_under_water_and_records_the_setting(tmp_path):
    config = dataclasses.replace(
        load_config(SynthesizeConfig, files=[SMALL], values={"family": "flatvel-a", "count": 2}), water=ALWAYS
    )
    velocity, _, _ = simulate_chunk(config, Chunk(index=0, first_model=0, num_models=2, family="flatvel-a"))
    grid_shape = config.geometry.grid_shape
    for index in range(2):
        dry = generate_model(family_parameters("flatvel-a"), config.seed, index, grid_shape).velocity_mps
        water = ALWAYS.draw(config.seed, index, grid_shape, config.geometry.grid_spacing_m)
        np.testing.assert_array_equal(velocity[index], add_water(dry, water, 1500.0))
        assert water.min() >= 1 and np.all(velocity[index][0] == 1500.0)
    synthesize(config, tmp_path / "marine", progress=False)
    recorded = read_manifest(tmp_path / "marine")["water_layer"]
    assert recorded["probability"] == 1.0 and recorded["depth_m"] == [50.0, 150.0]
    other = dataclasses.replace(config, water=WaterLayerConfig(probability=0.5))
    with pytest.raises(UserError, match="water_layer.probability"):
        synthesize(other, tmp_path / "marine", progress=False)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"probability": -0.1}, r"water.probability must lie in \[0, 1\]"),
        ({"depth_m": (300.0, 20.0)}, "water.depth_m must be"),
        ({"depth_m": (-10.0, 20.0)}, "water.depth_m must be"),
        ({"max_dip_deg": 60.0}, r"water.max_dip_deg must lie in \[0, 45\)"),
        ({"velocity_mps": 1.5}, "multiply by 1000"),
    ],
)
def test_bad_water_settings(values, message):
    with pytest.raises(ValueError, match=message):
        WaterLayerConfig(**values)
