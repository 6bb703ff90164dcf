"""The ``section`` family: windows of a user's own 2-D velocity model, and every refusal.

Each section is written here by code (``.npy``, SEG-Y through segyio) with velocities known in closed form,
so a window can be checked cell by cell against where it was cut.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_prep.priors import PriorError
from data_prep.velocity_models import SECTION_FAMILY, family_parameters, generate_model, generate_models


def _linear(depth_m, x_m):
    """A section whose velocity is linear in depth and x: linear interpolation reproduces it exactly."""
    return 1600.0 + 1.5 * depth_m + 0.2 * x_m


@pytest.fixture
def linear_npy(tmp_path):
    depth_m, x_m = np.meshgrid(np.arange(200) * 10.0, np.arange(500) * 10.0, indexing="ij")  # 2 km x 5 km
    path = tmp_path / "linear.npy"
    np.save(path, _linear(depth_m, x_m).astype(np.float32))
    return path


def test_windows_are_cut_where_drawn_and_cover_the_section(linear_npy):
    parameters = family_parameters(
        SECTION_FAMILY, prior_path=str(linear_npy), prior_spacing_m=10, section_top_m=[0, 1000]
    )
    corners = []
    for model in generate_models(parameters, 40, 3):
        velocity = model.velocity_mps.astype(np.float64)
        assert velocity.shape == (70, 70) and model.num_layers == 1 and not model.faults
        # Linear in both axes with the section's slopes: 15 m/s per 10 m row, 2 m/s per 10 m column.
        np.testing.assert_allclose(np.diff(velocity, axis=0), 15.0, atol=0.05)
        np.testing.assert_allclose(np.diff(velocity, axis=1), 2.0, atol=0.05)
        corners.append(velocity[0, 0])
    # The top-left corner is 1600 + 1.5 top + 0.2 left, with top in [0, 1000] m and left in [0, 4310] m.
    assert 1600 - 0.1 <= min(corners) and max(corners) <= 1600 + 1500 + 862 + 0.1
    assert max(corners) - min(corners) > 1000, "windows spread over the section's depths and positions"
    np.testing.assert_array_equal(
        generate_model(parameters, 3, 7).velocity_mps, generate_model(parameters, 3, 7).velocity_mps
    )


def test_finer_sections_are_averaged_over_a_cell_in_slowness(tmp_path):
    # 2 m samples: 4500 m/s beds 2 m thick every 20 m in 2000 m/s. A 10 m cell holding one of them must keep
    # the vertical traveltime (what the wave sees), not pick whichever sample the grid point falls on.
    rows = np.arange(1000)
    column = np.where(rows % 10 == 3, 4500.0, 2000.0)
    section = np.repeat(column[:, None], 600, axis=1)
    path = tmp_path / "fine.npy"
    np.save(path, section)
    model = generate_model(family_parameters(SECTION_FAMILY, prior_path=str(path), prior_spacing_m=2), 0, 0)
    traveltime_file = np.sum(2.0 / column[: 69 * 5 + 1])
    traveltime_window = (
        np.sum(10.0 / model.velocity_mps[:, 0].astype(np.float64)) - 5.0 / model.velocity_mps[-1, 0]
    )
    assert abs(traveltime_window / traveltime_file - 1) < 0.02
    assert model.velocity_mps.max() < 3000, "no aliased 4500 m/s row"


def test_the_cell_average_follows_each_axis_spacing(tmp_path):
    # Samples every 2 m in depth and 12.5 m across: the beds must be averaged over 5 depth samples even though
    # the lateral spacing is coarser than the grid's.
    rows = np.arange(1000)
    column = np.where(rows % 10 == 3, 4500.0, 2000.0)
    path = tmp_path / "anisotropic.npy"
    np.save(path, np.repeat(column[:, None], 120, axis=1))
    parameters = family_parameters(
        SECTION_FAMILY, prior_path=str(path), prior_spacing_m=2, prior_x_spacing_m=12.5
    )
    velocity = generate_model(parameters, 0, 0).velocity_mps
    assert velocity.max() < 3000, "the 2 m beds are averaged into their 10 m cells"
    np.testing.assert_allclose(velocity, np.broadcast_to(velocity[:, :1], velocity.shape), rtol=1e-6)
    # A 10 m cell holds one 2 m bed of 4500 m/s in 2000 (every other cell) or none: 5 / (4/2000 + 1/4500).
    assert set(np.round(np.unique(velocity))) <= {2000.0, 2250.0}


def test_anisotropic_spacing_and_segy(tmp_path):
    import segyio

    depth_m, x_m = np.meshgrid(np.arange(300) * 4.0, np.arange(200) * 12.5, indexing="ij")
    values = _linear(depth_m, x_m).astype(np.float32)
    path = tmp_path / "section.segy"
    spec = segyio.spec()
    spec.format, spec.samples, spec.tracecount = 5, list(range(values.shape[0])), values.shape[1]
    with segyio.create(path, spec) as handle:
        for index in range(values.shape[1]):
            handle.trace[index] = values[:, index]
    parameters = family_parameters(
        SECTION_FAMILY, prior_path=str(path), prior_spacing_m=4, prior_x_spacing_m=12.5
    )
    velocity = generate_model(parameters, 0, 1).velocity_mps.astype(np.float64)
    # Rows 10 m apart in the grid; the top cell's average also holds the surface value repeated above it.
    np.testing.assert_allclose(np.diff(velocity[1:], axis=0), 15.0, atol=0.5)
    assert abs(velocity[1, 0] - velocity[0, 0] - 15.0) < 3.0
    np.testing.assert_allclose(np.diff(velocity, axis=1), 2.0, atol=0.2)


def test_bad_sections_are_refused(tmp_path, linear_npy):
    with pytest.raises(ValueError, match=r"cuts windows from your own 2-D velocity model: set prior_path"):
        family_parameters(SECTION_FAMILY)
    with pytest.raises(ValueError, match="section_top_m cannot be negative"):
        family_parameters(SECTION_FAMILY, prior_path=str(linear_npy), section_top_m=[-10, 0])
    too_deep = family_parameters(SECTION_FAMILY, prior_path=str(linear_npy), section_top_m=[0, 1500])
    with pytest.raises(PriorError, match=r"section_top_m reaches 1500 m.*must start at 1300 m or shallower"):
        generate_model(too_deep, 0, 0)
    profile = tmp_path / "profile.npy"
    np.save(profile, np.linspace(1500, 3000, 100))
    with pytest.raises(PriorError, match="is a 1-D profile. Use the prior family"):
        generate_model(family_parameters(SECTION_FAMILY, prior_path=str(profile)), 0, 0)
    kms = tmp_path / "kms.npy"
    np.save(kms, np.full((100, 100), 2.5))
    with pytest.raises(PriorError, match="looks like km/s"):
        generate_model(family_parameters(SECTION_FAMILY, prior_path=str(kms)), 0, 0)
    narrow = tmp_path / "narrow.npy"
    np.save(narrow, np.full((100, 40), 2500.0))
    with pytest.raises(PriorError, match="narrower than the grid's 690 m"):
        generate_model(family_parameters(SECTION_FAMILY, prior_path=str(narrow)), 0, 0)


def test_synthesize_pins_the_section_in_its_manifest(linear_npy):
    from data_prep.synthesize import SynthesizeConfig, build_manifest, plan_chunks

    config = SynthesizeConfig(
        family=SECTION_FAMILY, count=2, family_overrides={"prior_path": str(linear_npy)}
    )
    manifest = build_manifest(config, plan_chunks(2, 50, SECTION_FAMILY))
    assert manifest["prior"]["path"] == str(linear_npy.resolve())
    assert len(manifest["prior"]["sha256"]) == 64
    json.dumps(manifest)
    with pytest.raises(ValueError, match="or prior / section with family_overrides.prior_path"):
        SynthesizeConfig(family="marmousi")
