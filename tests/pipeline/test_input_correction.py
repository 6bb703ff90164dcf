"""Input correction: the survey wavelet's polarity, delay and phase estimated from the data and undone.

Lines (``line_fixtures.simulate_line``) simulated by the engine with the model's 15 Hz Ricker, with the same
wavelet 12 ms later, with a 10 Hz Ricker, sign-flipped (``flipped``) and phase-rotated (Hilbert transform).
The estimate must find what was done to the line; the corrected line must be what the model was trained on;
and through ``pipeline.infer`` a sign-flipped line must give the same section.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.signal import hilbert

from data_prep.schema import DatasetGeometry
from pipeline.infer import InferConfig, infer
from pipeline.input_correction import (
    InputCorrection,
    InputCorrectionConfig,
    correlate_window,
    estimate_from,
    reference_direct_waves,
)
from pipeline.qc import engine_setup
from pipeline.section import read_section
from pipeline.windows import ModelLayout, RegridConfig, WindowReader, check_geometry, read_survey_line
from tests.pipeline import line_fixtures as F

#: The engine's default Ricker delay at 15 Hz and 1 ms (``data_prep.wavelets.openfwi_ricker_delay_s``).
TRAINING_DELAY_S = 0.072


@pytest.fixture(scope="module")
def layout():
    return ModelLayout.from_geometry(DatasetGeometry.from_acquisition(F.window_geometry()))


@pytest.fixture(scope="module")
def reference(layout):
    setup = engine_setup(layout, F.engine_settings_dict())
    return reference_direct_waves(layout, setup, InputCorrectionConfig(), F.VELOCITY_RANGE_MPS)


def rotated(line: F.Line, degrees: float) -> F.Line:
    """The line's traces with their phase rotated by ``degrees`` (``cos t x + sin t H[x]``)."""
    theta = np.radians(degrees)
    gathers = np.cos(theta) * line.gathers + np.sin(theta) * np.imag(hilbert(line.gathers, axis=1))
    return dataclasses.replace(line, gathers=gathers.astype(np.float32))


def windows_of(tmp_path, line, layout, name):
    path = F.write_line(tmp_path / f"{name}.sgy", line)
    survey = read_survey_line([path], grid_spacing_m=F.GRID_SPACING_M)
    plan = check_geometry(survey, layout).raise_if_refused()
    reader = WindowReader(survey, layout, plan, RegridConfig())
    return [reader.read(w) for w in range(plan.num_windows)], plan


def line_estimate(tmp_path, line, layout, reference, name):
    config = InputCorrectionConfig()
    gathers, plan = windows_of(tmp_path, line, layout, name)
    parts = [
        correlate_window(g, layout, reference, config, plan.shot_offset_m[w]) for w, g in enumerate(gathers)
    ]
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return (
        estimate_from(total, reference, config),
        [estimate_from(p, reference, config) for p in parts],
        gathers,
    )


def test_the_training_wavelet_is_found_unchanged(tmp_path, layout, reference):
    estimate, windows, _ = line_estimate(tmp_path, F.simulate_line(), layout, reference, "base")
    assert estimate.polarity == 1 and estimate.applied
    assert abs(estimate.delay_s) < 0.001, "within one sample of no delay (measured -0.4 ms)"
    assert abs(estimate.phase_deg) < 5.0, estimate
    assert estimate.coherence > 0.95, "the near traces are the direct wave of the reference (measured 0.997)"
    assert not estimate.differs_from_training(F.SAMPLE_INTERVAL_S)
    assert 1600 < estimate.velocity_mps < 2000, "the top layer is 1800 m/s"
    assert all(w.polarity == 1 for w in windows)


def test_a_delayed_line_gets_its_delay_estimated_within_a_sample(tmp_path, layout, reference):
    base, _, _ = line_estimate(tmp_path, F.simulate_line(), layout, reference, "base")
    late = F.simulate_line(ricker_delay_s=TRAINING_DELAY_S + 0.012)
    estimate, windows, _ = line_estimate(tmp_path, late, layout, reference, "late")
    assert estimate.delay_s == pytest.approx(0.012, abs=0.001), estimate
    assert estimate.delay_s - base.delay_s == pytest.approx(0.012, abs=2e-4), (
        "a pure shift moves the peak by 12 ms"
    )
    assert all(abs(w.delay_s - 0.012) <= 0.002 for w in windows), [w.delay_s for w in windows]
    assert estimate.polarity == 1 and estimate.differs_from_training(F.SAMPLE_INTERVAL_S)
    early = F.simulate_line(ricker_delay_s=TRAINING_DELAY_S - 0.008)
    estimate, _, _ = line_estimate(tmp_path, early, layout, reference, "early")
    assert estimate.delay_s == pytest.approx(-0.008, abs=0.001), estimate


def test_reversed_polarity_and_a_phase_rotation_are_found(tmp_path, layout, reference):
    line = F.simulate_line()
    flipped, _, _ = line_estimate(tmp_path, F.flipped(line), layout, reference, "flipped")
    assert flipped.polarity == -1 and abs(abs(flipped.phase_deg) - 180) < 5, flipped
    assert flipped.differs_from_training(F.SAMPLE_INTERVAL_S)
    quarter, _, _ = line_estimate(tmp_path, rotated(line, 90.0), layout, reference, "quarter")
    assert quarter.phase_deg == pytest.approx(90.0, abs=5.0) and abs(quarter.delay_s) < 0.001, quarter
    reversed_rotated, _, _ = line_estimate(
        tmp_path, F.flipped(rotated(line, -45.0)), layout, reference, "rot"
    )
    assert reversed_rotated.phase_deg == pytest.approx(135.0, abs=5.0) and reversed_rotated.polarity == -1


def test_a_lower_frequency_wavelet_is_aligned_on_its_peak(tmp_path, layout, reference):
    """A 10 Hz Ricker peaks at 109 ms (the engine's default delay for 10 Hz), 37 ms after the training one."""
    estimate, _, _ = line_estimate(
        tmp_path, F.simulate_line(peak_frequency_hz=10.0), layout, reference, "ten"
    )
    assert estimate.delay_s == pytest.approx(0.037, abs=0.002), estimate
    assert abs(estimate.phase_deg) < 10 and estimate.polarity == 1


def test_the_correction_gives_back_the_training_wavelets_traces(tmp_path, layout, reference):
    base_windows, _ = windows_of(tmp_path, F.simulate_line(), layout, "base")
    for name, line in (
        ("flipped_late", F.flipped(F.simulate_line(ricker_delay_s=TRAINING_DELAY_S + 0.012))),
        ("rotated", rotated(F.simulate_line(), 60.0)),
    ):
        estimate, _, gathers = line_estimate(tmp_path, line, layout, reference, name)
        for window in (0, 4):
            corrected = estimate.apply(gathers[window], F.SAMPLE_INTERVAL_S)
            expected = base_windows[window]
            recorded_error = np.linalg.norm(gathers[window] - expected) / np.linalg.norm(expected)
            error = np.linalg.norm(corrected[:, :200] - expected[:, :200]) / np.linalg.norm(expected[:, :200])
            assert recorded_error > 0.9 and error < 0.1, (name, window, recorded_error, error)


def test_apply_is_exact_for_known_shifts_and_signs():
    rng = np.random.default_rng(0)
    gathers = np.zeros((2, 200, 3), np.float32)
    gathers[:, 60:120] = rng.standard_normal((2, 60, 3))
    shifted = InputCorrection(delay_s=0.010, phase_deg=180.0, coherence=1.0, applied=True)
    corrected = shifted.apply(gathers, 0.001)
    np.testing.assert_allclose(corrected[:, 50:110], -gathers[:, 60:120], atol=1e-5)
    assert np.allclose(shifted.apply(gathers, 0.001, phase="polarity"), corrected, atol=1e-5)
    not_applied = dataclasses.replace(shifted, applied=False)
    assert not_applied.apply(gathers, 0.001) is gathers
    with pytest.raises(ValueError, match="input_correction.phase must be"):
        shifted.apply(gathers, 0.001, phase="sign")


def test_config_validation():
    with pytest.raises(ValueError, match="max_delay_s must be positive"):
        InputCorrectionConfig(max_delay_s=0)
    with pytest.raises(ValueError, match="min_offset_cells <= max_offset_cells"):
        InputCorrectionConfig(min_offset_cells=5, max_offset_cells=2)


def test_a_sign_flipped_line_gives_the_same_section(tmp_path):
    """Through pipeline.infer with a real (untrained) U-Net bundle: the flipped line's section is within 1 %
    of the line's with the correction, and far from it without."""
    from core.config import from_dict

    bundle = F.keras_bundle(tmp_path / "bundle")
    line = F.simulate_line()
    paths = {
        "as_recorded": F.write_line(tmp_path / "line.sgy", line),
        "flipped": F.write_line(tmp_path / "flipped.sgy", F.flipped(line)),
    }

    def section(name, enabled):
        config = from_dict(
            InferConfig, {"outputs": {"png": False, "segy": False}, "input_correction": {"enabled": enabled}}
        )
        result = infer([paths[name]], str(bundle), tmp_path / f"{name}-{enabled}", config, progress=False)
        return read_section(result.section_path)

    corrected = {name: section(name, True) for name in paths}
    a, b = (corrected[name]["velocity_mps"] for name in paths)
    relative = np.abs(b - a) / a
    assert relative.max() < 0.01, f"largest relative difference {relative.max():.4f}"
    windows = corrected["flipped"]["windows"]
    np.testing.assert_array_equal(windows["input_polarity"], -1.0)
    np.testing.assert_array_equal(corrected["as_recorded"]["windows"]["input_polarity"], 1.0)
    assert np.all(windows["input_corrected"] == 1.0)
    report = corrected["flipped"]["qc"]["input_correction"]
    assert report["line"]["input_polarity"] == -1 and report["windows_reversed"] == 9, report
    assert corrected["flipped"]["qc"]["misfit_floor"]["source_correction"] == "wavelet", (
        "auto: data from elsewhere"
    )
    assert corrected["as_recorded"]["qc"]["misfit_floor"]["source_correction"] == "scale"

    raw = {name: section(name, False)["velocity_mps"] for name in paths}
    assert np.mean(np.abs(raw["flipped"] - raw["as_recorded"])) > 20 * max(np.mean(np.abs(b - a)), 1e-3), (
        "without the correction the polarity changes the prediction: the test has power"
    )
