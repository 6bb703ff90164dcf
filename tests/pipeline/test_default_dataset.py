"""The default dataset's recipe: cached names, and windows wider than OpenFWI's (``data.default.width_cells``)."""

from __future__ import annotations

import dataclasses

import pytest

from data_prep import schema
from data_prep.geometry import AcquisitionGeometry
from data_prep.velocity_models.trend_variation import TrendVariationConfig
from data_prep.velocity_models.water_layer import WaterLayerConfig
from pipeline.training.config import DefaultDatasetConfig
from pipeline.training.default_dataset import default_dataset_path, ensure_default_dataset


def test_openfwi_s_layout_keeps_the_names_datasets_were_cached_under():
    assert DefaultDatasetConfig().geometry() == AcquisitionGeometry.openfwi()
    assert default_dataset_path(DefaultDatasetConfig()).name == "default-flatvel-a-1000-seed0.h5"
    mix = DefaultDatasetConfig(families=("flatvel-a", "salt"), count=10)
    assert default_dataset_path(mix).name == "default-mix2-b49f91bd-10-seed0.h5"


def test_trend_variety_gets_its_own_name():
    mix = DefaultDatasetConfig(families=("flatvel-a", "salt"), count=10)
    varied = default_dataset_path(dataclasses.replace(mix, trend=TrendVariationConfig(probability=0.5)))
    assert varied.name.startswith("default-mix2-") and varied != default_dataset_path(mix)
    single = DefaultDatasetConfig(family="salt", count=10, trend=TrendVariationConfig(probability=0.5))
    assert default_dataset_path(single).name.startswith("default-salt-")
    assert default_dataset_path(single) != default_dataset_path(DefaultDatasetConfig(family="salt", count=10))


def test_a_water_column_gets_its_own_name():
    mix = DefaultDatasetConfig(families=("flatvel-a", "salt"), count=10)
    marine = dataclasses.replace(mix, water=WaterLayerConfig(probability=0.3))
    names = {default_dataset_path(config) for config in (mix, marine)}
    names.add(default_dataset_path(dataclasses.replace(marine, water=WaterLayerConfig(probability=0.6))))
    assert len(names) == 3 and all(path.name.startswith("default-mix2-") for path in names)


def test_a_wider_window_spreads_the_shots_over_it_and_gets_its_own_name():
    wide = DefaultDatasetConfig(width_cells=140)
    geometry = wide.geometry()
    assert geometry.grid_shape == (70, 140) and geometry.num_receivers == 140
    assert [x for _, x in geometry.source_cells] == [0, 35, 70, 104, 139]
    assert {depth for depth, _ in (*geometry.source_cells, *geometry.receiver_cells)} == {1}
    assert geometry.num_samples == 1000 and geometry.sample_interval_s == 0.001
    names = {default_dataset_path(config).name for config in (DefaultDatasetConfig(), wide)}
    names.add(default_dataset_path(dataclasses.replace(wide, num_sources=9)).name)
    assert len(names) == 3 and all(name.startswith("default-flatvel-a-") for name in names)


def test_a_wider_default_dataset_is_made_on_that_geometry(tmp_path):
    config = DefaultDatasetConfig(
        family="flatvel-a", count=10, width_cells=24, num_sources=3, directory=str(tmp_path)
    )
    path = ensure_default_dataset(config, echo=lambda text: None)
    with schema.open_dataset(path) as h5:
        assert h5[schema.SEISMIC].shape == (10, 3, 1000, 24)
        assert h5[schema.VELOCITY].shape == (10, 70, 24)
        geometry = schema.read_geometry(h5)
    assert geometry.source_positions_m[:, 1].tolist() == [0.0, 120.0, 230.0]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"width_cells": 4}, "width_cells must be a whole number of cells >= 8"),
        ({"num_sources": 0}, r"num_sources must be 1..width_cells \(70\)"),
        ({"width_cells": 10, "num_sources": 11}, r"num_sources must be 1..width_cells \(10\)"),
    ],
)
def test_bad_window_settings_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        DefaultDatasetConfig(**values)


def test_the_shipped_general_configs_give_openfwi_window_and_the_wide_window_shot_every_340_m():
    from core.config import CONFIG_DIR, load_config
    from pipeline.train import TrainConfig

    general = CONFIG_DIR / "train" / "general.yaml"
    default = load_config(TrainConfig, files=[general]).data.default
    assert default.openfwi_layout  # OpenFWI-geometry samples (70 x 70) fit the general model
    wide = load_config(TrainConfig, files=[general, CONFIG_DIR / "train" / "general_wide.yaml"]).data.default
    geometry = wide.geometry()
    assert geometry.grid_shape == (70, 137) and not wide.openfwi_layout
    # Shots every 34 cells (340 m): on any line shot every 340, 170, 85 or 68 m, a window can start on a shot.
    assert [x for _, x in geometry.source_cells] == [0, 34, 68, 102, 136]
    assert [x for _, x in geometry.receiver_cells] == list(range(137))
    assert wide.families == default.families and wide.source == default.source  # only the window differs


def test_a_wider_velocity_range_gets_its_own_name_and_reaches_the_ingested_statistics(tmp_path):
    """``data.default.velocity_range_mps``: what the ingest maps to [-1, 1] (the model's output range, and the
    bounds of velocity scaling); OpenFWI's range keeps the cached names, another gets its own; bad ranges are
    refused naming the key."""
    from core.config import from_dict
    from pipeline.training.config import TrainConfig

    assert DefaultDatasetConfig(velocity_range_mps=[1500, 4500]) == DefaultDatasetConfig()
    wide = DefaultDatasetConfig(
        family="flatvel-a", count=4, width_cells=24, num_sources=3, directory=str(tmp_path)
    )
    wider = dataclasses.replace(wide, velocity_range_mps=(1400.0, 5500.0))
    assert default_dataset_path(wider) != default_dataset_path(wide)
    single = DefaultDatasetConfig(velocity_range_mps=(1400.0, 5500.0))
    assert default_dataset_path(single).name.startswith("default-flatvel-a-") and default_dataset_path(
        single
    ) != default_dataset_path(DefaultDatasetConfig())
    loaded = from_dict(TrainConfig, {"data": {"default": {"velocity_range_mps": [1400, 5500]}}})
    assert loaded.data.default.velocity_range_mps == (1400.0, 5500.0)
    stats = schema.read_normalization(ensure_default_dataset(wider, echo=lambda text: None))
    assert (stats.velocity_min_mps, stats.velocity_max_mps) == (1400.0, 5500.0)
    for bad in ((4500.0, 1500.0), (0.0, 4500.0), (1500.0, 3000.0, 4500.0), ("slow", "fast")):
        with pytest.raises(ValueError, match=r"data.default.velocity_range_mps must be \[min, max\]"):
            DefaultDatasetConfig(velocity_range_mps=bad)
