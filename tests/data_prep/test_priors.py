"""The ``prior`` family: a user's model or profile plus structural perturbations, and every refusal.

Each prior file is written here by code (``.npy``, ``.csv``, SEG-Y through segyio); each bad one must give its
documented message, naming what was found and what to do.
"""

from __future__ import annotations

import numpy as np
import pytest

from data_prep.priors import PriorError, load_prior, prior_on_grid
from data_prep.velocity_models import PRIOR_FAMILY, family_parameters, generate_model, generate_models

GRID = (70, 70)
SPACING_M = 10.0


def _profile(depth_m):
    return 1600.0 + 1.2 * np.asarray(depth_m, dtype=np.float64)  # 1600 m/s at the top, 1.2 /s gradient


@pytest.fixture
def profile_npy(tmp_path):
    path = tmp_path / "profile.npy"
    np.save(path, _profile(np.arange(100) * 10.0))  # 0-990 m at 10 m
    return path


def test_a_profile_prior_is_the_background_of_every_model(profile_npy):
    parameters = family_parameters(PRIOR_FAMILY, prior_path=str(profile_npy))
    models = list(generate_models(parameters, 30, 0))
    velocity = np.stack([m.velocity_mps for m in models]).astype(np.float64)
    # The layer offsets average out over models: the mean model follows the prior within ~100 m/s.
    expected = _profile(np.arange(GRID[0]) * SPACING_M)
    mean_profile = velocity.mean(axis=(0, 2))
    assert np.abs(mean_profile - expected).max() < 150, np.abs(mean_profile - expected).max()
    # Each model differs from the prior by its structure: layer offsets of a few hundred m/s.
    deviation = np.abs(velocity[0] - expected[:, None])
    assert 50 < deviation.mean() < 600
    assert models[0].family == PRIOR_FAMILY and models[0].num_layers >= 3
    # Reproducible: the same (seed, index) gives the same model.
    np.testing.assert_array_equal(generate_model(parameters, 0, 3).velocity_mps, models[3].velocity_mps)


def test_table_and_segy_and_2d_priors(tmp_path):
    table = tmp_path / "well.csv"
    depths = np.array([0.0, 200.0, 450.0, 800.0])
    table.write_text("depth_m,velocity_mps\n" + "\n".join(f"{d},{_profile(d)}" for d in depths) + "\n")
    prior = load_prior(table)
    assert prior.is_profile
    np.testing.assert_allclose(prior_on_grid(prior, GRID, SPACING_M)[:, 5], _profile(np.arange(70) * 10.0))

    # A 2-D model wider than the grid: windows at random positions, each a slice of it.
    wide = _profile(np.arange(80) * 10.0)[:, None] + np.linspace(0, 500, 200)[None, :]
    np.save(tmp_path / "wide.npy", wide)
    prior = load_prior(tmp_path / "wide.npy", spacing_m=10.0)
    window = prior_on_grid(prior, GRID, SPACING_M, np.random.default_rng(1))
    assert window.shape == GRID
    start = np.argmin(np.abs(wide[0] - window[0, 0]))
    np.testing.assert_allclose(window, wide[:70, start : start + 70], atol=3.0)

    import segyio

    path = tmp_path / "prior.segy"
    spec = segyio.spec()
    spec.format, spec.samples, spec.tracecount = 5, list(range(80)), 90
    with segyio.create(path, spec) as handle:
        for x in range(90):
            handle.header[x] = {segyio.TraceField.TRACE_SEQUENCE_LINE: x + 1}
            handle.trace[x] = _profile(np.arange(80) * 10.0).astype(np.float32) + x
    prior = load_prior(path, spacing_m=10.0)
    assert prior.velocity_mps.shape == (80, 90)
    np.testing.assert_allclose(prior.velocity_mps[:, 7], _profile(np.arange(80) * 10.0) + 7, rtol=1e-6)


@pytest.mark.parametrize(
    "values, message",
    [
        (_profile(np.arange(100) * 10.0) / 1000, r"looks like km/s \(median 2.19\).*Multiply it by 1000"),
        (1 / _profile(np.arange(100) * 10.0), r"looks like slowness.*1 / slowness"),
        (
            np.where(np.arange(100) == 40, np.nan, _profile(np.arange(100) * 10.0)),
            r"1 NaN or infinite.*\[\[40\]\]",
        ),
        (_profile(np.arange(100) * 10.0) * 3.28, r"not P-wave velocities in m/s.*ft/s"),
        (np.zeros((2, 3, 4)) + 2000, r"\(depth,\) profile or \(depth, x\) model.*shape \(2, 3, 4\)"),
    ],
)
def test_bad_prior_values_are_refused(tmp_path, values, message):
    path = tmp_path / "bad.npy"
    np.save(path, values)
    with pytest.raises(PriorError, match=message):
        load_prior(path)


def test_priors_that_do_not_cover_the_grid_are_refused(tmp_path):
    np.save(tmp_path / "shallow.npy", _profile(np.arange(30) * 10.0))
    with pytest.raises(
        PriorError, match=r"spans depths 0-290 m, but the grid needs 0-690 m.*prior_spacing_m"
    ):
        prior_on_grid(load_prior(tmp_path / "shallow.npy"), GRID, SPACING_M)
    np.save(tmp_path / "narrow.npy", np.full((80, 40), 2500.0))
    with pytest.raises(
        PriorError, match=r"390 m wide \(40 columns of 10 m\), narrower than the grid's 690 m"
    ):
        prior_on_grid(load_prior(tmp_path / "narrow.npy"), GRID, SPACING_M)
    # Through the family: the same refusal when a model is drawn.
    parameters = family_parameters(PRIOR_FAMILY, prior_path=str(tmp_path / "shallow.npy"))
    with pytest.raises(PriorError, match="spans depths"):
        generate_model(parameters, 0, 0)


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(PriorError, match="does not exist or is not a file"):
        load_prior(tmp_path / "missing.npy")
    (tmp_path / "model.bin").write_bytes(b"\0" * 16)
    with pytest.raises(PriorError, match=r"Unknown prior format '.bin'.*\.npy"):
        load_prior(tmp_path / "model.bin")
    (tmp_path / "swapped.csv").write_text("0,1600\n100,1700\n50,1650\n")
    with pytest.raises(PriorError, match=r"must increase strictly.*100 m then 50 m"):
        load_prior(tmp_path / "swapped.csv")
    (tmp_path / "three.txt").write_text("0 1600 1\n100 1700 1\n")
    with pytest.raises(PriorError, match="exactly two columns"):
        load_prior(tmp_path / "three.txt")
    (tmp_path / "broken.segy").write_bytes(b"not a segy file" * 10)
    with pytest.raises(PriorError, match="Cannot read the prior .* as SEG-Y"):
        load_prior(tmp_path / "broken.segy")


def test_the_prior_family_needs_a_prior():
    with pytest.raises(
        ValueError, match=r"built around a prior model: set prior_path.*family_overrides.prior_path"
    ):
        family_parameters(PRIOR_FAMILY)


def test_the_manifest_pins_the_prior_by_its_digest(profile_npy):
    import hashlib

    from core.config import CONFIG_DIR, load_config
    from data_prep.synthesize import SynthesizeConfig, build_manifest, plan_chunks

    config = load_config(
        SynthesizeConfig,
        files=[CONFIG_DIR / "data" / "small.yaml"],
        values={"family": PRIOR_FAMILY, "count": 2, "family_overrides": {"prior_path": str(profile_npy)}},
    )
    manifest = build_manifest(config, plan_chunks(2, 2, PRIOR_FAMILY))
    assert manifest["prior"] == {
        "path": str(profile_npy.resolve()),
        "sha256": hashlib.sha256(profile_npy.read_bytes()).hexdigest(),
    }
    assert manifest["family_parameters"]["prior_path"] == str(profile_npy)
