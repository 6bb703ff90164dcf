"""``--truth`` as ``.npy``/``.npz``/HDF5 velocity sections (``pipeline.section.ArrayTruth``), good and bad.

The oracle model returns each window's true velocity, so every correct truth must give velocity errors of 0
and a truth shifted by 100 m/s an MAE of exactly 100 m/s; each bad file must be refused with a message
naming what was found and what is expected.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from core.config import from_dict
from core.errors import UserError
from pipeline.infer import InferConfig, infer, main
from pipeline.section import ArrayTruth
from pipeline.windows import LineFrame
from tests.pipeline import line_fixtures as F


@pytest.fixture(scope="module")
def line():
    return F.simulate_line()


@pytest.fixture(scope="module")
def survey(tmp_path_factory, line):
    return F.write_line(tmp_path_factory.mktemp("survey") / "line.sgy", line)


def run(tmp_path, survey, line, truth, name):
    config = from_dict(
        InferConfig,
        {"truth": str(truth), "outputs": {"png": False, "segy": False}, "qc": {"enabled": False}},
    )
    return infer(
        [survey], F.OracleBundle(line.velocity_mps), tmp_path / f"run-{name}", config, progress=False
    )


def test_npy_npz_and_hdf5_truths_score_the_section(tmp_path, line, survey):
    velocity = line.velocity_mps
    x_m = np.arange(velocity.shape[1]) * F.GRID_SPACING_M
    np.save(tmp_path / "truth.npy", velocity)
    np.savez(tmp_path / "truth.npz", velocity_mps=velocity, x_m=x_m)
    np.savez(tmp_path / "map.npz", velocity_mps=velocity, map_x_m=x_m, map_y_m=np.zeros_like(x_m))
    np.savez(tmp_path / "single.npz", velocity)  # one unnamed array
    with h5py.File(tmp_path / "truth.h5", "w") as h5:
        h5["velocity_mps"] = velocity
        h5["x_m"] = x_m
        h5["depth_m"] = np.arange(F.DEPTH_CELLS) * F.GRID_SPACING_M
    with h5py.File(tmp_path / "anonymous.hdf5", "w") as h5:
        h5.create_group("model")["section"] = velocity
    for name in ("truth.npy", "truth.npz", "map.npz", "single.npz", "truth.h5", "anonymous.hdf5"):
        result = run(tmp_path, survey, line, tmp_path / name, name)
        assert result.section_errors["velocity_mae_mps"] == pytest.approx(0.0, abs=1e-3), name
        assert result.section_errors["num_cells"] == velocity.size, name
    # A section written by pipeline.infer is itself a truth (velocity_mps, x_m, depth_m).
    result = run(tmp_path, survey, line, result.section_path, "section")
    assert result.section_errors["velocity_mae_mps"] == pytest.approx(0.0, abs=1e-3)
    # The errors are real: a truth 100 m/s faster gives an MAE of 100 m/s.
    np.save(tmp_path / "faster.npy", velocity + 100.0)
    result = run(tmp_path, survey, line, tmp_path / "faster.npy", "faster")
    assert result.section_errors["velocity_mae_mps"] == pytest.approx(100.0, abs=1e-2)


def test_a_truth_on_a_shifted_grid_is_interpolated_and_nan_outside(tmp_path):
    velocity = np.tile(np.arange(10, dtype=np.float64) * 100 + 1500, (F.DEPTH_CELLS, 1))
    np.savez(tmp_path / "shifted.npz", velocity_mps=velocity, x_m=50.0 + np.arange(10) * 10.0)
    truth = ArrayTruth(tmp_path / "shifted.npz", LineFrame(), F.DEPTH_CELLS, F.GRID_SPACING_M)
    window = truth.window(np.array([40.0, 50.0, 55.0, 140.0, 150.0]))
    assert np.isnan(window[:, 0]).all() and np.isnan(window[:, -1]).all()
    np.testing.assert_allclose(window[0, 1:4], [1500.0, 1550.0, 2400.0])


@pytest.mark.parametrize(
    "make, expected",
    [
        (
            lambda v, p: np.save(p / "t.npy", v / 1000.0),
            r"values 1\.8\.\.3\.1; expected m/s within 300\.\.20000\. They look like km/s: multiply by 1000",
        ),
        (
            lambda v, p: np.save(p / "t.npy", v.T),
            r"24 depth rows \(shape \(24, 16\)\).*16 cells of 10 m.*looks transposed",
        ),
        (
            lambda v, p: np.save(p / "t.npy", v[None].repeat(2, 0)),
            r"shape \(2, 16, 24\); expected one section \(depth, x\) = \(16, columns\): a stack",
        ),
        (lambda v, p: np.save(p / "t.npy", -v), r"values -3100\.\.-1800"),
        (
            lambda v, p: np.savez(p / "t.npz", a=v, b=v),
            r"no 'velocity_mps' array and 2 other candidates \(a, b\)",
        ),
        (
            lambda v, p: np.savez(p / "t.npz", velocity_mps=v, x_m=np.zeros(24)),
            "two columns share a lateral position",
        ),
        (
            lambda v, p: np.savez(p / "t.npz", velocity_mps=v, x_m=np.arange(5.0)),
            "5 column positions for 24 columns",
        ),
        (lambda v, p: np.save(p / "t.npy", np.full_like(v, np.nan)), "no finite velocity values"),
    ],
)
def test_bad_truths_are_refused_naming_what_was_found(tmp_path, make, expected):
    velocity = F.layered_section(24).astype(np.float64)
    make(velocity, tmp_path)
    path = next(tmp_path.glob("t.*"))
    with pytest.raises(UserError, match=expected):
        ArrayTruth(path, LineFrame(), F.DEPTH_CELLS, F.GRID_SPACING_M)


def test_hdf5_truth_with_another_depth_grid_is_refused(tmp_path):
    with h5py.File(tmp_path / "t.h5", "w") as h5:
        h5["velocity_mps"] = F.layered_section(24)
        h5["depth_m"] = np.arange(F.DEPTH_CELLS) * 5.0
    with pytest.raises(
        UserError, match=r"depth_m runs 0\.\.75 m in 16 rows; the model's grid is 0\.\.150 m every 10 m"
    ):
        ArrayTruth(tmp_path / "t.h5", LineFrame(), F.DEPTH_CELLS, F.GRID_SPACING_M)


def test_cli_truth_in_km_per_second_is_a_one_line_error(tmp_path, line, survey, capsys):
    bundle = F.keras_bundle(tmp_path / "bundle")
    np.save(tmp_path / "kms.npy", line.velocity_mps / 1000.0)
    code = main(
        [
            "--model",
            str(bundle),
            "--input",
            str(survey),
            "--out",
            str(tmp_path / "run"),
            "--quiet",
            "--truth",
            str(tmp_path / "kms.npy"),
        ]
    )
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error and "They look like km/s: multiply by 1000" in error, error
