"""AcquisitionGeometry: defaults equal OpenFWI's layout, validation, derived positions in metres."""

from __future__ import annotations

import numpy as np
import pytest

from data_prep.geometry import AcquisitionGeometry


def test_default_is_openfwi_geometry():
    geometry = AcquisitionGeometry()
    assert geometry.grid_shape == (70, 70)
    assert geometry.num_sources == 5 and geometry.num_receivers == 70
    assert geometry.num_samples == 1000 and geometry.sample_interval_s == 0.001
    assert geometry.peak_frequency_hz == 15.0
    np.testing.assert_array_equal(geometry.source_positions_m()[:, 1], [0, 170, 340, 520, 690])
    np.testing.assert_array_equal(geometry.receiver_positions_m()[:, 1], np.arange(70) * 10.0)
    # OpenFWI places sources and receivers 10 m below the surface: depth row 1, not row 0.
    np.testing.assert_array_equal(geometry.source_positions_m()[:, 0], np.full(5, 10.0))
    np.testing.assert_array_equal(geometry.receiver_positions_m()[:, 0], np.full(70, 10.0))
    assert geometry.duration_s == pytest.approx(0.999)
    assert AcquisitionGeometry.openfwi() == geometry


def test_openfwi_yaml_is_the_default_geometry():
    import yaml

    from core.config import CONFIG_DIR, from_dict

    data = yaml.safe_load((CONFIG_DIR / "data" / "openfwi.yaml").read_text())
    assert from_dict(AcquisitionGeometry, data["geometry"]) == AcquisitionGeometry(), (
        "configs/data/openfwi.yaml drifted from AcquisitionGeometry's (OpenFWI) defaults"
    )
    small = yaml.safe_load((CONFIG_DIR / "data" / "small.yaml").read_text())
    small_geometry = from_dict(AcquisitionGeometry, small["geometry"])
    assert {depth for depth, _ in small_geometry.source_cells + small_geometry.receiver_cells} == {1}


def test_surface_line_matches_default_and_scales_to_other_grids():
    assert (
        AcquisitionGeometry.surface_line(source_depth_cell=1, receiver_depth_cell=1) == AcquisitionGeometry()
    )
    assert {depth for depth, _ in AcquisitionGeometry.surface_line().source_cells} == {0}
    geometry = AcquisitionGeometry.surface_line(
        grid_shape=(40, 100), num_sources=3, num_receivers=11, receiver_depth_cell=2
    )
    assert [x for _, x in geometry.source_cells] == [0, 50, 99]
    assert [x for _, x in geometry.receiver_cells] == [0, 10, 20, 30, 40, 50, 59, 69, 79, 89, 99]
    assert {depth for depth, _ in geometry.receiver_cells} == {2}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"grid_shape": (1, 70)}, "at least"),
        ({"grid_spacing_m": 0.0}, "grid_spacing_m must be positive"),
        ({"num_samples": 0}, "num_samples must be at least 1"),
        ({"source_cells": ()}, "at least one"),
        ({"source_cells": ((70, 0),)}, r"source_cells entry \(70, 0\) lies outside"),
        ({"receiver_cells": ((0, -1),)}, "receiver_cells entry"),
    ],
)
def test_invalid_geometry_is_refused_with_a_message(changes, message):
    with pytest.raises(ValueError, match=message):
        AcquisitionGeometry().replace(**changes)


def test_shift_sources_moves_each_shot_along_x_and_keeps_it_in_the_grid():
    geometry = AcquisitionGeometry()  # OpenFWI: shots at columns 0, 17, 34, 52, 69 of 70
    moved = geometry.shift_sources([0, 1, 0, -1, 3])
    assert moved.source_cells == ((1, 0), (1, 18), (1, 34), (1, 51), (1, 69)), "the last one clipped to 69"
    assert moved.receiver_cells == geometry.receiver_cells
    assert geometry.shift_sources([0] * 5) is geometry
    with pytest.raises(ValueError, match=r"one shift per source \(5\). Received: 2"):
        geometry.shift_sources([1, 2])
