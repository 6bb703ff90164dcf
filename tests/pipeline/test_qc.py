"""Physics QC: source correction, data misfit, velocity errors, flags, engine settings, summary."""

from __future__ import annotations

import numpy as np
import pytest

from data_prep.schema import DatasetGeometry
from pipeline.qc import (
    QCConfig,
    aggregate,
    data_misfit,
    engine_setup,
    simulate_windows,
    source_correction,
    summary_table,
    velocity_errors,
    window_flags,
    window_qc,
)
from pipeline.windows import ModelLayout
from tests.pipeline import line_fixtures as F


@pytest.fixture(scope="module")
def layout():
    return ModelLayout.from_geometry(DatasetGeometry.from_acquisition(F.window_geometry()))


def random_gathers(seed=0, shape=(3, 128, 10)):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape)


def test_scale_correction_recovers_the_amplitude_factor():
    simulated = random_gathers()
    observed = -3.5 * simulated
    corrected, scale = source_correction(observed, simulated, "scale")
    assert scale == pytest.approx(-3.5)
    assert data_misfit(observed, corrected) == pytest.approx(0.0, abs=1e-12)
    assert data_misfit(observed, simulated) == pytest.approx(4.5 / 3.5)


def test_wavelet_correction_absorbs_a_different_source_signature():
    rng = np.random.default_rng(1)
    simulated = np.zeros((3, 200, 8))
    simulated[:, 20:180] = rng.standard_normal((3, 160, 8))
    # Observed = simulated convolved with a short two-spike filter (another wavelet, delayed, scaled).
    observed = 2.0 * simulated + np.roll(-1.2 * simulated, 3, axis=1)
    _, scale_only = source_correction(observed, simulated, "scale")
    misfit_scale = data_misfit(observed, source_correction(observed, simulated, "scale")[0])
    corrected, gain = source_correction(observed, simulated, "wavelet", damping=1e-6)
    misfit_wavelet = data_misfit(observed, corrected)
    assert misfit_wavelet < 1e-3, misfit_wavelet
    assert misfit_scale > 0.5, "a scalar cannot absorb the filter: the test needs that to be true"
    assert gain == pytest.approx(np.linalg.norm(observed) / np.linalg.norm(simulated), rel=1e-3)
    unchanged, one = source_correction(observed, simulated, "none")
    assert one == 1.0 and np.array_equal(unchanged, simulated)
    with pytest.raises(ValueError, match="Unknown source correction"):
        source_correction(observed, simulated, "magic")


def test_misfit_and_velocity_errors_on_known_values():
    observed = np.ones((2, 4, 3))
    assert data_misfit(observed, np.zeros_like(observed)) == pytest.approx(1.0)
    assert data_misfit(observed, 0.5 * observed) == pytest.approx(0.5)
    assert np.isnan(data_misfit(np.zeros((2, 4, 3)), observed))
    truth = np.full((4, 5), 2000.0)
    predicted = truth.copy()
    predicted[0, 0] = 2100.0  # one cell 100 m/s off
    predicted[1, 1] = 1900.0
    errors = velocity_errors(predicted, truth)
    assert errors["velocity_mae_mps"] == pytest.approx(200.0 / 20)
    assert errors["velocity_rmse_mps"] == pytest.approx(np.sqrt(2 * 100.0**2 / 20))
    assert errors["velocity_max_error_mps"] == pytest.approx(100.0)
    assert errors["velocity_relative_mae"] == pytest.approx(10.0 / 2000.0)
    truth[:, 4] = np.nan  # outside the truth's extent: ignored
    assert velocity_errors(predicted, truth)["velocity_mae_mps"] == pytest.approx(200.0 / 16)


def test_flags():
    config = QCConfig(misfit_threshold=0.3, velocity_mae_threshold_mps=100.0)
    assert window_flags({"data_misfit": 0.2, "velocity_mae_mps": 50.0}, config) == []
    assert window_flags({"data_misfit": 0.4, "velocity_mae_mps": 150.0}, config) == ["misfit", "velocity"]
    assert window_flags({"data_misfit": np.nan, "qc_error": "CFL", "no_signal": True}, config) == [
        "qc_failed",
        "no_signal",
    ]


def test_engine_setup_reads_the_bundled_settings(layout):
    setup = engine_setup(layout, F.engine_settings_dict())
    assert setup.config.spatial_order == F.ENGINE.spatial_order
    assert setup.config.absorbing_width_cells == F.ENGINE.absorbing_width_cells
    assert setup.geometry.source_cells == ((0, 0), (0, 12), (0, 22))
    assert setup.geometry.receiver_cells == tuple((0, x) for x in range(24))
    assert setup.geometry.peak_frequency_hz == F.PEAK_FREQUENCY_HZ
    assert setup.notes == []
    fallback = engine_setup(layout, {})
    assert any("unknown" in note for note in fallback.notes), fallback.notes
    off_grid = ModelLayout.from_geometry(
        DatasetGeometry(
            source_positions_m=np.array([[0.0, 3.0]]),
            receiver_positions_m=np.array([[0.0, 0.0], [0.0, 10.0]]),
            sample_interval_s=0.001,
            num_samples=10,
            grid_spacing_m=10.0,
            grid_shape=(4, 4),
        )
    )
    with pytest.raises(ValueError, match="not on its 10 m velocity grid"):
        engine_setup(off_grid, {})


def test_window_qc_separates_the_true_model_from_a_wrong_one(layout):
    """Observed = the engine's gathers of the true window; the truth fits, a 15 % too fast model does not."""
    line = F.simulate_line()
    truth = np.stack([line.velocity_mps[:, s : s + 24] for s in (0, 48)])
    setup = engine_setup(layout, F.engine_settings_dict())
    simulated, _ = simulate_windows(
        truth, setup, None, pad_to=QCConfig().batch_windows
    )  # the shape QC compiles
    observed = [5.0 * gathers for gathers in simulated] * 2
    config = QCConfig(misfit_threshold=0.2, velocity_mae_threshold_mps=100.0)
    wrong = truth * 1.15
    rows = window_qc(
        observed,
        np.concatenate([truth, wrong]),
        setup,
        config,
        F.VELOCITY_RANGE_MPS,
        truth_mps=[truth[0], truth[1], truth[0], truth[1]],
    )
    for row in rows[:2]:
        assert row["data_misfit"] < 1e-3, row
        assert row["source_scale"] == pytest.approx(5.0, rel=1e-3)
        assert row["velocity_mae_mps"] == 0.0 and row["flags"] == []
    for row in rows[2:]:
        assert row["data_misfit"] > 0.25, row  # measured 0.38 and 0.40: the direct wave is still fitted
        assert row["velocity_mae_mps"] == pytest.approx(0.15 * np.mean(truth), rel=0.1)
        assert row["flags"] == ["misfit", "velocity"]
        assert row["clipped_cells"] > 0, "3100 m/s * 1.15 exceeds the 3500 m/s training maximum"


def test_window_qc_reports_an_engine_refusal_per_window(layout):
    setup = engine_setup(layout, F.engine_settings_dict())
    observed = [np.ones((3, F.NUM_SAMPLES, 24), np.float32)]
    too_fast = np.full((1, 16, 24), 9000.0, np.float32)  # CFL violated at 1 ms and 10 m
    rows = window_qc(observed, too_fast, setup, QCConfig(), bounds_mps=None)
    assert rows[0]["qc_error"] and "qc_failed" in rows[0]["flags"]
    assert np.isnan(rows[0]["data_misfit"])


def test_summary_table_and_aggregate():
    rows = [
        {
            "window": k,
            "x_start_m": 100.0 * k,
            "x_end_m": 100.0 * k + 230,
            "calibration_factor": 1.0 + k,
            "source_scale": 2.0,
            "data_misfit": 0.1 * k,
            "velocity_mae_mps": np.nan,
            "flags": ["misfit"] if k > 3 else [],
        }
        for k in range(6)
    ]
    text = summary_table(rows)
    lines = text.splitlines()
    assert len(lines) == 7 and "misfit" in lines[0] and lines[-1].rstrip().endswith("misfit")
    assert "0.500" in lines[-1]
    short = summary_table(rows, max_rows=2)
    assert "the 2 windows with the largest misfit of 6" in short and len(short.splitlines()) == 4
    numbers = aggregate(rows)
    assert numbers["num_windows"] == 6 and numbers["num_flagged"] == 2
    assert numbers["data_misfit_median"] == pytest.approx(0.25)
    assert "velocity_mae_mps_median" not in numbers


def test_window_qc_simulates_moved_shots_where_they_were_fired(layout):
    """--regrid may use a survey shot one cell from the model's position: simulated there, the true model
    explains the data; simulated at the model's position, it does not (the benchmark's floor 0.03 vs 0.4)."""
    from pipeline.qc import shifted_setup

    line = F.simulate_line()
    truth = line.velocity_mps[None, :, 24:48]
    setup = engine_setup(layout, F.engine_settings_dict())
    shifts = (1, 0, -1)
    moved = shifted_setup(setup, shifts)
    assert moved.geometry.source_cells == ((0, 1), (0, 12), (0, 21))
    assert shifted_setup(setup, (-1, 0, 5)).geometry.source_cells == ((0, 0), (0, 12), (0, 23)), (
        "kept in the grid"
    )
    observed, _ = simulate_windows(truth, moved, None, pad_to=QCConfig().batch_windows)
    config = QCConfig(source_correction="scale")
    at_shots = window_qc([observed[0]], truth, setup, config, None, source_shift_cells=[shifts])
    at_model = window_qc([observed[0]], truth, setup, config, None)
    assert at_shots[0]["data_misfit"] < 1e-3, at_shots
    assert at_model[0]["data_misfit"] > 0.2, at_model


def test_auto_source_correction_and_threshold_from_the_floor():
    from pipeline.qc import MISFIT_FLOOR

    auto = QCConfig()
    foreign = auto.resolved(recorded_elsewhere=True)
    assert foreign.source_correction == "wavelet"
    assert foreign.misfit_floor == MISFIT_FLOOR["wavelet"]
    assert foreign.misfit_threshold == pytest.approx(MISFIT_FLOOR["wavelet"] + auto.misfit_margin)
    assert auto.resolved(recorded_elsewhere=False).source_correction == "scale"
    own = QCConfig(source_correction="wavelet", misfit_floor=0.39, misfit_margin=0.1).resolved(False)
    assert own.misfit_threshold == pytest.approx(0.49), "a floor measured for the survey replaces the default"
    assert QCConfig(misfit_threshold=0.3).resolved(True).misfit_threshold == 0.3
    assert window_flags({"data_misfit": 0.5}, QCConfig(misfit_floor=0.39)) == []
    assert window_flags({"data_misfit": 0.6}, QCConfig(misfit_floor=0.39)) == ["misfit"]
