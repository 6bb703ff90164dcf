"""Physics tests of the forward-modelling engine (``data_prep.forward``).

Every tolerance below is listed, with the reason for its value, in the tolerance table of
``docs/forward_modelling.md``. Grids are small so the file runs in about a minute on two CPU cores; each
distinct grid/config costs one XLA compilation (1-3 s), so tests share geometries where they can.
"""

from __future__ import annotations

import dataclasses
import warnings

import keras
import numpy as np
import pytest

from data_prep.forward import (
    AMPLITUDE_CONVENTION,
    CRITICAL_COURANT_NUMBER,
    EngineConfig,
    available_cpu_count,
    check_dispersion,
    check_stability,
    engine_settings,
    resolved_checkpoint_segments,
    simulate,
)
from data_prep.geometry import AcquisitionGeometry
from data_prep.wavelets import openfwi_ricker_delay_s, ricker

PEAK_HZ = 15.0
#: The engine's default Ricker delay at 15 Hz and 1 ms (OpenFWI's, in our recording convention).
DELAY_S = 0.072


def analytic_trace(distance_m: float, velocity_mps: float, times_s: np.ndarray) -> np.ndarray:
    """2D Green's function of (1/c^2) d2/dt2 - laplacian, convolved with a unit-peak Ricker source.

    This is the field of a point source of strength ``s(t)`` = the Ricker; the engine's "openfwi" amplitude
    convention injects the wavelet as a source of strength ``dx^2 w(t)``, so its traces are ``dx^2`` times
    this (see ``engine_trace_expected``).

    ``G(r, t) = H(t - r/c) / (2 pi sqrt(t^2 - r^2/c^2))``. With ``tau = r/c + w^2`` the integrable
    singularity at the arrival disappears: ``p(t) = int_0^inf s(t - r/c - w^2) / (pi sqrt(w^2 + 2r/c)) dw``,
    a smooth integrand evaluated by the trapezoidal rule on a fine grid.
    """
    travel_time = distance_m / velocity_mps
    w = np.linspace(0.0, np.sqrt(max(times_s[-1] - travel_time, 1e-9)), 40001)
    kernel = 1.0 / (np.pi * np.sqrt(w**2 + 2.0 * travel_time))
    trace = np.zeros_like(times_s)
    for index, t in enumerate(times_s):
        tau = t - travel_time - w**2
        argument = (np.pi * PEAK_HZ * (tau - DELAY_S)) ** 2
        source = np.where(tau >= 0.0, (1.0 - 2.0 * argument) * np.exp(-argument), 0.0)
        trace[index] = np.trapezoid(source * kernel, w)
    return trace


def engine_trace_expected(
    distance_m: float, velocity_mps: float, times_s: np.ndarray, dx: float
) -> np.ndarray:
    """What the engine must record for a unit Ricker in its amplitude convention: ``dx^2`` x the analytic
    point-source trace (written out independently of the engine, from the convention's definition)."""
    return dx**2 * analytic_trace(distance_m, velocity_mps, times_s)


def amplitude_ratio(trace: np.ndarray, reference: np.ndarray) -> float:
    """Least-squares gain ``<trace, reference> / <reference, reference>``: 1 when the amplitudes agree."""
    return float(np.dot(trace, reference) / np.dot(reference, reference))


def direct_arrival_error(
    trace: np.ndarray, reference: np.ndarray, times_s: np.ndarray, arrival_s: float
) -> float:
    """Relative L2 error over a window from t=0 to 2 periods after the wavelet peak has arrived."""
    window = times_s < arrival_s + DELAY_S + 2.0 / PEAK_HZ
    return float(np.linalg.norm(trace[window] - reference[window]) / np.linalg.norm(reference[window]))


def as_numpy(tensor) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(tensor))


def layered_model(depth: int, width: int) -> np.ndarray:
    """Three layers 1500/3000/4500 m/s with a dipping second interface (a reproducible test model)."""
    model = np.full((depth, width), 1500.0, np.float32)
    rows, columns = np.mgrid[:depth, :width]
    model[rows >= depth // 4] = 3000.0
    model[rows >= depth // 2 + columns // 6] = 4500.0
    return model


# --- Wavelet and checks -------------------------------------------------------------------------------------


def test_ricker_peaks_at_delay_with_requested_peak_frequency():
    wavelet = ricker(PEAK_HZ, 2000, 0.0005, delay_s=0.1)
    assert wavelet.dtype == np.float32 and wavelet.shape == (2000,)
    assert np.argmax(wavelet) == 200, "the peak should sit at the requested delay (0.1 s = sample 200)"
    assert wavelet.max() == pytest.approx(1.0) and abs(wavelet[0]) < 1e-7
    spectrum = np.abs(np.fft.rfft(wavelet, 1 << 16))
    frequencies = np.fft.rfftfreq(1 << 16, 0.0005)
    assert frequencies[np.argmax(spectrum)] == pytest.approx(PEAK_HZ, abs=0.05)


@pytest.mark.parametrize(
    ("peak_hz", "interval_s", "expected_s"),
    [(15.0, 0.001, 0.072), (10.0, 0.002, 0.108), (25.0, 0.0008, 0.0432), (15.0, 0.0005, 0.0725)],
)
def test_default_ricker_delay_is_openfwis_in_our_recording_convention(peak_hz, interval_s, expected_s):
    # OpenFWI's wavelet peaks at sample floor(1.1 / (f dt)) (73 at 15 Hz, 1 ms) and OpenFWI stores the
    # wavefield one step later than we do, so our peak sits one sample earlier: 72 ms.
    assert openfwi_ricker_delay_s(peak_hz, interval_s) == pytest.approx(expected_s, abs=1e-12)
    wavelet = ricker(peak_hz, 400, interval_s)
    assert np.argmax(wavelet) == round(expected_s / interval_s)
    assert abs(wavelet[0]) < 3e-4, "OpenFWI's delay starts the wavelet at ~2e-4 of its peak"
    geometry = AcquisitionGeometry(peak_frequency_hz=peak_hz, sample_interval_s=interval_s)
    assert EngineConfig().resolved_ricker_delay_s(geometry) == pytest.approx(expected_s, abs=1e-12)
    assert EngineConfig(ricker_delay_s=0.1).resolved_ricker_delay_s(geometry) == 0.1


def test_engine_settings_record_every_setting_as_plain_values():
    import json

    geometry = AcquisitionGeometry()
    settings = EngineConfig().settings(geometry)
    assert settings == engine_settings(geometry, EngineConfig())
    assert json.loads(json.dumps(settings)) == settings, "settings must be JSON-ready"
    expected = {
        "wavelet": "ricker",
        "peak_frequency_hz": 15.0,
        "ricker_delay_s": 0.072,
        "amplitude_convention": AMPLITUDE_CONVENTION,
        "spatial_order": 4,
        "free_surface": False,
        "absorbing_width_cells": 14,
        "time_step_s": 0.001,
        "substeps_per_sample": 1,
        "sample_interval_s": 0.001,
        "num_samples": 1000,
        "grid_spacing_m": 10.0,
    }
    assert {key: settings[key] for key in expected} == expected
    assert settings["source_depth_m"] == [10.0] * 5 and settings["receiver_depth_m"] == [10.0] * 70
    custom = engine_settings(
        geometry, EngineConfig(spatial_order=8, time_step_s=0.0005, free_surface=True), wavelet=np.zeros(1000)
    )
    assert (custom["wavelet"], custom["ricker_delay_s"]) == ("custom", None)
    assert (custom["spatial_order"], custom["time_step_s"], custom["substeps_per_sample"]) == (8, 0.0005, 2)
    assert custom["free_surface"] is True


def test_worker_count_follows_the_cpu_affinity_mask():
    import os

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this OS")
    assert available_cpu_count() == len(os.sched_getaffinity(0))


def test_cfl_refusal_names_the_stable_time_step():
    with pytest.raises(ValueError) as error:
        check_stability(4500.0, 5.0, 0.001, 4)
    message = str(error.value)
    stable_ms = 1e3 * CRITICAL_COURANT_NUMBER[4] * 5.0 / 4500.0  # 0.68 ms
    assert "CFL number 0.90 exceeds 0.61 for 4th-order stencil" in message, message
    assert f"reduce dt below {stable_ms:.2f} ms" in message, message
    assert "Received: dt=1 ms, dx=5 m, vmax=4500 m/s" in message, message
    # The stable value it names is indeed accepted, and the 8th-order limit is lower.
    assert check_stability(4500.0, 5.0, stable_ms * 1e-3 * 0.999, 4) <= CRITICAL_COURANT_NUMBER[4]
    assert CRITICAL_COURANT_NUMBER[8] < CRITICAL_COURANT_NUMBER[4]


def test_simulate_refuses_unstable_geometry_before_running():
    geometry = AcquisitionGeometry.surface_line((20, 20), num_sources=1, grid_spacing_m=5.0, num_samples=10)
    with pytest.raises(ValueError, match="reduce dt below 0.68 ms"):
        simulate(np.full((20, 20), 4500.0), geometry)
    # Sub-stepping with the suggested time step makes the same survey acceptable.
    config = EngineConfig(time_step_s=0.0005)
    assert as_numpy(simulate(np.full((20, 20), 4500.0), geometry, config)).shape == (1, 1, 10, 20)


def test_dispersion_warning_depends_on_order():
    with pytest.warns(RuntimeWarning, match="3.20 cells per wavelength"):
        check_dispersion(1500.0, 12.5, PEAK_HZ, EngineConfig(spatial_order=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_dispersion(1500.0, 12.5, PEAK_HZ, EngineConfig(spatial_order=8)) == pytest.approx(3.2)
        # OpenFWI's geometry (1500 m/s, 10 m, 15 Hz) sits on the 4th-order threshold and is accepted.
        check_dispersion(1500.0, 10.0, PEAK_HZ, EngineConfig(spatial_order=4))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"spatial_order": 6}, "spatial_order must be 4 or 8"),
        ({"absorbing_width_cells": 0}, "absorbing_width_cells must be a positive integer"),
        ({"time_step_s": -1.0}, "time_step_s must be positive"),
        ({"max_concurrent_calls": 0}, "max_concurrent_calls must be a positive integer"),
        ({"ricker_delay_s": -0.01}, "ricker_delay_s must be a non-negative number"),
    ],
)
def test_engine_config_rejects_bad_values(changes, expected):
    with pytest.raises(ValueError, match=expected):
        EngineConfig(**changes)


def test_engine_yaml_holds_the_documented_defaults():
    import yaml

    from core.config import CONFIG_DIR, from_dict

    data = yaml.safe_load((CONFIG_DIR / "data" / "engine.yaml").read_text())
    assert from_dict(EngineConfig, data["engine"]) == EngineConfig(), "configs/data/engine.yaml drifted"


def test_simulate_rejects_bad_inputs():
    geometry = AcquisitionGeometry.surface_line((20, 20), num_sources=1, num_samples=10)
    with pytest.raises(ValueError, match=r"Received: shape \(1, 20, 21\)"):
        simulate(np.full((1, 20, 21), 2000.0), geometry)
    with pytest.raises(ValueError, match="must be positive everywhere"):
        simulate(np.zeros((20, 20)), geometry)
    with pytest.raises(ValueError, match="integer number of times"):
        simulate(np.full((20, 20), 2000.0), geometry, EngineConfig(time_step_s=0.0003))
    with pytest.raises(ValueError, match=r"wavelet must have shape"):
        simulate(np.full((20, 20), 2000.0), geometry, wavelet=np.zeros(11))


# --- Physics ------------------------------------------------------------------------------------------------


def test_direct_arrival_matches_analytic_green_function_4th_order():
    """Homogeneous 2000 m/s on OpenFWI's discretisation (10 m, 1 ms, 15 Hz): 5.3 cells per wavelength."""
    velocity, size = 2000.0, 60
    geometry = AcquisitionGeometry(
        grid_shape=(size, size),
        grid_spacing_m=10.0,
        num_samples=400,
        sample_interval_s=0.001,
        peak_frequency_hz=PEAK_HZ,
        source_cells=((30, 30),),
        receiver_cells=((30, 50), (10, 30), (45, 45)),
    )
    traces = as_numpy(simulate(np.full((size, size), velocity), geometry))[0, 0]
    times = geometry.times_s()
    for index, (depth, x) in enumerate(geometry.receiver_cells):
        distance = 10.0 * np.hypot(depth - 30, x - 30)
        # Amplitude included: the reference is the analytic field in the engine's amplitude convention
        # (dx^2 x the unit point-source field), not rescaled to the trace.
        reference = engine_trace_expected(distance, velocity, times, geometry.grid_spacing_m)
        window = times < distance / velocity + DELAY_S + 2.0 / PEAK_HZ
        gain = amplitude_ratio(traces[window, index], reference[window])
        assert gain == pytest.approx(1.0, abs=0.01), (
            f"receiver {(depth, x)}: amplitude {gain:.4f} x the analytic one, expected 1 +- 1 %"
        )
        peak = np.abs(traces[:, index]).max() / np.abs(reference).max()
        assert peak == pytest.approx(1.0, abs=0.02), (
            f"receiver {(depth, x)}: peak ratio {peak:.4f}, expected 1 +- 2 %"
        )
        error = direct_arrival_error(traces[:, index], reference, times, distance / velocity)
        assert error < 0.05, f"receiver {(depth, x)}: relative L2 error {error:.4f}, expected < 5 %"


def openfwi_reference_traces(model: np.ndarray, geometry: AcquisitionGeometry, padding: int) -> np.ndarray:
    """OpenFWI's modelling recipe written out in float64 numpy, independently of the engine.

    Leapfrog with the 4th-order Laplacian on the model extended by ``padding`` edge cells (no absorbing
    layer: the window is too short for anything to come back from ``padding`` cells away), the source added
    as ``(v dt)^2 src[i]`` after step ``i``, and ``p`` after step ``i`` stored as sample ``i``. ``src`` is
    OpenFWI's Ricker: ``2 floor(1.1 / (f dt)) + 1`` samples peaking at sample ``floor(1.1 / (f dt))``.
    Returns ``(time, receivers)`` for the first source.
    """
    dt, dx, f = geometry.sample_interval_s, geometry.grid_spacing_m, geometry.peak_frequency_hz
    centre = int(np.floor(1.1 / (f * dt) + 1e-9))
    phase = (np.pi * f * dt * (centre - np.arange(2 * centre + 1))) ** 2
    source = np.zeros(geometry.num_samples)
    source[: 2 * centre + 1] = ((1.0 - 2.0 * phase) * np.exp(-phase))[: geometry.num_samples]
    velocity = np.pad(model.astype(np.float64), padding, mode="edge")
    courant = (velocity * dt / dx) ** 2
    ((source_depth, source_x),) = geometry.source_cells[:1]
    source_cell = (source_depth + padding, source_x + padding)
    receivers = np.asarray(geometry.receiver_cells) + padding
    previous, current = np.zeros_like(velocity), np.zeros_like(velocity)
    traces = np.zeros((geometry.num_samples, len(receivers)))
    for step in range(geometry.num_samples):
        laplacian = -5.0 * current
        for shift, weight in ((1, 4.0 / 3.0), (2, -1.0 / 12.0)):
            for axis in (0, 1):
                laplacian += weight * (np.roll(current, shift, axis) + np.roll(current, -shift, axis))
        following = 2.0 * current - previous + courant * laplacian
        following[source_cell] += (velocity[source_cell] * dt) ** 2 * source[step]
        traces[step] = following[receivers[:, 0], receivers[:, 1]]
        previous, current = current, following
    return traces


def test_default_engine_reproduces_openfwis_recipe_sample_for_sample():
    """Amplitude convention, polarity, Ricker delay and time axis at once: with the defaults (OpenFWI
    geometry's row-1 source, OpenFWI's delay, the "openfwi" amplitude convention) the engine's sample k
    equals sample k of OpenFWI's recipe, without any rescaling or shift."""
    depth_cells, x_cells = 40, 60
    model = np.full((depth_cells, x_cells), 2000.0, np.float32)
    model[18:] = 3200.0  # a reflector, so the comparison covers a velocity contrast too
    geometry = AcquisitionGeometry(
        grid_shape=(depth_cells, x_cells),
        num_samples=260,
        source_cells=((1, 30),),
        receiver_cells=((1, 30), (1, 34), (1, 45), (1, 59), (12, 30), (30, 20)),
    )
    ours = as_numpy(simulate(model, geometry))[0, 0].astype(np.float64)
    reference = openfwi_reference_traces(model, geometry, padding=120)
    assert reference.max() > 20.0 and reference.max() == np.abs(reference).max(), (
        "OpenFWI's direct wave at the source is positive with tens of units at 10 m / 1 ms"
    )
    difference = np.abs(ours - reference).max() / np.abs(reference).max()
    assert difference < 5e-4, f"engine vs OpenFWI's recipe: max difference {difference:.2e} of the peak"
    shifted = np.abs(ours[1:] - reference[:-1]).max() / np.abs(reference).max()
    assert shifted > 10 * difference, "a one-sample shift must be clearly worse (the test sees timing)"


def test_flatvel_a_gathers_have_openfwis_amplitude_range():
    """OpenFWI's FlatVel-A data span about -27 to +53 with the largest excursion positive: synthesised
    gathers must lie within a factor of 2 of that (max |amplitude| 20-110) with the same polarity."""
    from data_prep.velocity_models import generate_models

    models = np.stack([model.velocity_mps for model in generate_models("flatvel-a", 2, 1)])
    seismic = as_numpy(simulate(models, AcquisitionGeometry()))
    for index, gathers in enumerate(seismic):
        largest = np.abs(gathers).max()
        assert 20.0 < largest < 110.0, f"model {index}: max |amplitude| {largest:.1f}, expected 20-110"
        assert gathers.max() == largest, f"model {index}: the largest excursion should be positive"
        assert gathers.min() < -0.3 * largest, "the Ricker's side lobes should give a clear negative part"


def test_8th_order_is_accurate_where_4th_order_disperses():
    """12.5 m cells at 1500 m/s: 3.2 cells per wavelength at 37.5 Hz. 8th order stays within 5 %; 4th
    order is visibly dispersed (and warned about), which shows the 8th-order stencil is really in use."""
    velocity, size, spacing = 1500.0, 60, 12.5
    geometry = AcquisitionGeometry(
        grid_shape=(size, size),
        grid_spacing_m=spacing,
        num_samples=400,
        sample_interval_s=0.001,
        peak_frequency_hz=PEAK_HZ,
        source_cells=((30, 30),),
        receiver_cells=((30, 50),),
    )
    times = geometry.times_s()
    reference = engine_trace_expected(20 * spacing, velocity, times, spacing)
    arrival = 20 * spacing / velocity
    eighth = as_numpy(simulate(np.full((size, size), velocity), geometry, EngineConfig(spatial_order=8)))
    error_8 = direct_arrival_error(eighth[0, 0, :, 0], reference, times, arrival)
    with pytest.warns(RuntimeWarning, match="Numerical dispersion"):
        fourth = as_numpy(simulate(np.full((size, size), velocity), geometry, EngineConfig(spatial_order=4)))
    error_4 = direct_arrival_error(fourth[0, 0, :, 0], reference, times, arrival)
    assert error_8 < 0.05, f"8th order: relative L2 error {error_8:.4f}, expected < 5 %"
    assert error_4 > 2 * error_8, (
        f"4th order ({error_4:.4f}) should be clearly worse than 8th ({error_8:.4f})"
    )


def test_absorbing_boundary_reflection_below_five_hundredths_of_a_percent():
    """Layered 1500-4500 m/s model; the same survey on a grid extended by 90 cells per side (edge
    velocities continued) is reflection-free within the 0.6 s window; the difference is the reflection."""
    size, extension = 60, 90
    model = layered_model(size, size)
    receivers = ((30, 57), (2, 30), (57, 57), (30, 40), (2, 2))
    geometry = AcquisitionGeometry(
        grid_shape=(size, size),
        grid_spacing_m=10.0,
        num_samples=600,
        sample_interval_s=0.001,
        peak_frequency_hz=PEAK_HZ,
        source_cells=((30, 45),),
        receiver_cells=receivers,
    )
    big = geometry.replace(
        grid_shape=(size + 2 * extension, size + 2 * extension),
        source_cells=((30 + extension, 45 + extension),),
        receiver_cells=tuple((d + extension, x + extension) for d, x in receivers),
    )
    small_traces = as_numpy(simulate(model, geometry))[0, 0]
    reference = as_numpy(simulate(np.pad(model, extension, mode="edge"), big))[0, 0]
    reflection = np.abs(small_traces - reference).max() / np.abs(reference).max()
    # Measured 0.015 % at the default 14 cells (0.028 % at 12); the bound leaves ~3x margin.
    assert reflection < 5e-4, f"boundary reflection {reflection:.4%} of the direct wave, expected < 0.05 %"


def test_source_receiver_reciprocity():
    size = 50
    model = layered_model(size, size)
    point_a, point_b = (5, 8), (40, 37)
    geometry = AcquisitionGeometry(
        grid_shape=(size, size),
        grid_spacing_m=10.0,
        num_samples=500,
        sample_interval_s=0.001,
        peak_frequency_hz=PEAK_HZ,
        source_cells=(point_a, point_b),
        receiver_cells=(point_a, point_b),
    )
    traces = as_numpy(simulate(model, geometry))[0]
    a_to_b, b_to_a = traces[0, :, 1], traces[1, :, 0]
    mismatch = np.linalg.norm(a_to_b - b_to_a) / np.linalg.norm(a_to_b)
    assert np.abs(a_to_b).max() > 1e-3, "the test needs a real arrival between the two points"
    assert mismatch < 1e-3, f"reciprocity mismatch {mismatch:.2e}, expected < 1e-3"


def test_free_surface_adds_opposite_polarity_ghost():
    """With a pressure-release surface half a cell above row 0, the field is the direct wave minus the
    wave of the image source. On one vertical line the image path equals a direct path of
    ``depth_receiver + depth_source + 1`` cells, which an absorbing-top run records directly."""
    depth_cells, width = 80, 40
    source, receiver = (6, 20), (20, 20)
    # A receiver as far below the source as the image source is from the receiver.
    image_receiver = (source[0] + receiver[0] + source[0] + 1, 20)
    geometry = AcquisitionGeometry(
        grid_shape=(depth_cells, width),
        grid_spacing_m=10.0,
        num_samples=450,
        sample_interval_s=0.001,
        peak_frequency_hz=PEAK_HZ,
        source_cells=(source,),
        receiver_cells=(receiver, image_receiver),
    )
    model = np.full((depth_cells, width), 2000.0)
    free = as_numpy(simulate(model, geometry, EngineConfig(free_surface=True)))[0, 0]
    absorbing = as_numpy(simulate(model, geometry))[0, 0]
    expected = absorbing[:, 0] - absorbing[:, 1]
    ghost = free[:, 0] - absorbing[:, 0]
    assert np.dot(ghost, absorbing[:, 1]) < 0, "the surface ghost should have opposite polarity"
    error = np.linalg.norm(free[:, 0] - expected) / np.linalg.norm(expected)
    assert error < 0.01, (
        f"free-surface trace vs direct-minus-image: relative L2 error {error:.4f}, expected < 1 %"
    )


def test_batched_call_equals_per_model_calls():
    size = 40
    models = np.stack(
        [layered_model(size, size), np.full((size, size), 2500.0), layered_model(size, size)[::-1]]
    )
    geometry = AcquisitionGeometry.surface_line(
        (size, size), num_sources=3, num_receivers=20, num_samples=300, peak_frequency_hz=PEAK_HZ
    )
    single_call = EngineConfig(max_concurrent_calls=1)
    batched = as_numpy(simulate(models, geometry, single_call))
    assert batched.shape == (3, 3, 300, 20) and batched.dtype == np.float32
    scale = np.abs(batched).max()
    for index, model in enumerate(models):
        alone = as_numpy(simulate(model, geometry, single_call))[0]
        difference = np.abs(batched[index] - alone).max() / scale
        assert difference < 1e-6, f"model {index}: batched differs from alone by {difference:.2e} of the peak"
    # Splitting the batch over concurrent calls (numpy input, the synthesis path) changes nothing either.
    split = as_numpy(simulate(models, geometry, EngineConfig(max_concurrent_calls=2)))
    assert np.abs(split - batched).max() / scale < 1e-6, "splitting the models over calls changed the result"
    split_shots = as_numpy(simulate(models[:1], geometry, EngineConfig(max_concurrent_calls=2)))
    assert np.abs(split_shots - batched[:1]).max() / scale < 1e-6, "splitting the shots changed the result"


#: One small gradient case shared by the TensorFlow, JAX (subprocess) and checkpointing tests, built by
#: the same code in every process so each backend differentiates exactly the same loss.
GRADIENT_CASE = """
import numpy as np
from data_prep.forward import EngineConfig
from data_prep.geometry import AcquisitionGeometry
size = 24
geometry = AcquisitionGeometry(
    grid_shape=(size, size), grid_spacing_m=10.0, num_samples=160, sample_interval_s=0.001,
    peak_frequency_hz=20.0, source_cells=((3, 5),), receiver_cells=((3, 18), (20, 12)),
)
config = EngineConfig(absorbing_width_cells=10)
rng = np.random.default_rng(0)
base = (2000.0 + 300.0 * rng.random((1, size, size))).astype(np.float32)
weights = rng.standard_normal((1, 1, 160, 2)).astype(np.float32)
rows, columns = np.mgrid[:size, :size]
direction = np.exp(-((rows - 12.0) ** 2 + (columns - 11.0) ** 2) / 20.0)[None]  # smooth perturbation
bounds = (1900.0, 2400.0)
"""


def gradient_case() -> dict:
    case: dict = {}
    exec(GRADIENT_CASE, case)
    return case


@pytest.fixture(scope="module")
def tensorflow_gradient():
    """``(case, loss function, loss value, gradient)`` of the shared case under tf.GradientTape."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the reference gradient uses tf.GradientTape; JAX is covered in a subprocess")
    import tensorflow as tf

    case = gradient_case()

    def loss(model, **options):
        return tf.reduce_sum(simulate(model, case["geometry"], case["config"], **options) * case["weights"])

    velocity = tf.constant(case["base"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 3.99 cells per wavelength: deliberate, small grid
        with tf.GradientTape() as tape:
            tape.watch(velocity)
            value = loss(velocity)
        gradient = tape.gradient(value, velocity).numpy()
    return case, loss, float(value), gradient


def test_gradient_matches_finite_difference(tensorflow_gradient):
    import tensorflow as tf

    case, loss, _, gradient = tensorflow_gradient
    assert np.isfinite(gradient).all() and np.abs(gradient).max() > 0
    step = 20.0  # m/s at the blob's centre: large enough for float32, small enough for the O(h^2) error
    base, direction = case["base"], case["direction"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        plus = float(loss(tf.constant(base + step * direction, tf.float32)))
        minus = float(loss(tf.constant(base - step * direction, tf.float32)))
    finite_difference = (plus - minus) / (2 * step)
    analytic = float(np.sum(gradient * direction))
    assert analytic == pytest.approx(finite_difference, rel=0.01), (
        f"directional derivative: tape {analytic:.6g} vs finite difference {finite_difference:.6g}"
    )


def test_checkpoint_levels_minimise_the_stored_wavefields():
    # 1000 samples = 500 two-step iterations: two nested levels of 6 (12 K + 2 N / K**2 = 100 fields, the
    # best single level 13 segments holds 6 x 13 + 2 x 500 / 13 = 155).
    assert resolved_checkpoint_segments(None, 500) == (6, 6)
    assert resolved_checkpoint_segments(None, 80) == (3, 3)  # the gradient case below: tails at both levels
    assert resolved_checkpoint_segments(7, 80) == (7,)
    assert resolved_checkpoint_segments(1000, 80) == (80,)
    assert resolved_checkpoint_segments(None, 1) == (1,)
    assert resolved_checkpoint_segments(None, 4) == (1,)  # (4/3)^(1/3) rounds to 1


@pytest.mark.parametrize("segments", [1, pytest.param(7, marks=pytest.mark.slow)])
def test_checkpointed_gradient_equals_the_fully_stored_one(tensorflow_gradient, segments):
    """The fixture differentiates with the default checkpointing (two nested levels of 3 segments of the 80
    two-step iterations, a tail at both levels); 1 segment stores every step, 7 segments (one level) leave
    a 3-iteration tail. Recomputing a segment repeats the same
    float32 operations, so the gradients agree to round-off."""
    import tensorflow as tf

    case, _, value, gradient = tensorflow_gradient
    config = dataclasses.replace(case["config"], checkpoint_segments=segments)
    velocity = tf.constant(case["base"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with tf.GradientTape() as tape:
            tape.watch(velocity)
            other_value = tf.reduce_sum(simulate(velocity, case["geometry"], config) * case["weights"])
        other = tape.gradient(other_value, velocity).numpy()
    assert float(other_value) == pytest.approx(value, rel=1e-6)
    difference = np.abs(other - gradient).max() / np.abs(gradient).max()
    assert difference < 1e-5, (
        f"{segments} segment(s): gradients differ by {difference:.2e} of the largest entry"
    )


def _tape_gradient(config, geometry, weights, base, bounds=None):
    import tensorflow as tf

    velocity = tf.constant(base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with tf.GradientTape() as tape:
            tape.watch(velocity)
            traces = simulate(velocity, geometry, config, velocity_bounds_mps=bounds)
            value = tf.reduce_sum(traces * weights)
        return float(value), tape.gradient(value, velocity).numpy()


@pytest.mark.parametrize(
    "changes",
    [
        {},
        pytest.param(
            {"spatial_order": 8, "absorbing_width_cells": 8, "free_surface": True, "time_step_s": 0.0005},
            marks=pytest.mark.slow,
        ),
    ],
    ids=["default", "8th-order-free-surface-substeps"],
)
def test_adjoint_state_gradient_equals_the_autodiff_gradient(tensorflow_gradient, changes):
    """The adjoint-state gradient (the default, ``gradient="adjoint"``) against the backend's reverse mode
    through the time loop (``"autodiff"``, the engine's gradient before, itself checked against finite
    differences above). Both transpose the same float32 operations in another order: they agree to
    round-off, ~3e-6 of the largest entry measured (1e-4 allowed, as for JAX against TensorFlow); a
    missing or wrong term (a CPML coefficient, the source's own velocity, a shifted adjoint source) is off
    by 1e-2 or more. The cosine similarity must be 1 within 1e-6."""
    case, _, _, default_gradient = tensorflow_gradient
    geometry = case["geometry"]
    if changes.get("free_surface"):
        geometry = dataclasses.replace(geometry, source_cells=((1, 5),), receiver_cells=((1, 18), (20, 12)))
    config = dataclasses.replace(case["config"], **changes)
    assert config.gradient == "adjoint", "the adjoint-state method is the default"
    values = {}
    for method in ("adjoint", "autodiff"):
        values[method] = _tape_gradient(
            dataclasses.replace(config, gradient=method), geometry, case["weights"], case["base"]
        )
    (adjoint_value, adjoint), (autodiff_value, autodiff) = values["adjoint"], values["autodiff"]
    if not changes:
        assert np.array_equal(adjoint, default_gradient), "the fixture's gradient is the default's"
    assert adjoint_value == pytest.approx(autodiff_value, rel=1e-6), "the traces must not depend on it"
    difference = np.abs(adjoint - autodiff).max() / np.abs(autodiff).max()
    cosine = float(np.sum(adjoint * autodiff) / (np.linalg.norm(adjoint) * np.linalg.norm(autodiff)))
    assert difference < 1e-4, f"adjoint-state vs autodiff gradient: {difference:.2e} of the largest entry"
    assert cosine > 1 - 1e-6, f"adjoint-state vs autodiff gradient: cosine similarity {cosine:.8f}"


def test_adjoint_state_gradient_matches_finite_difference_along_a_random_direction(tensorflow_gradient):
    """A random (smoothed, so that float32 differences are not lost in round-off) direction over the whole
    model, edges included (where the absorbing layer's padded cells fold back onto the model's edge cells),
    central differences of +-10 m/s at the largest cell: same 1 % bound and reasoning as the Gaussian-blob
    test above."""
    import tensorflow as tf
    from scipy.ndimage import gaussian_filter

    case, loss, _, gradient = tensorflow_gradient
    rng = np.random.default_rng(22)
    direction = gaussian_filter(rng.standard_normal(case["base"].shape[1:]), 2.0)[None]
    direction = (direction / np.abs(direction).max()).astype(np.float32)
    step = 10.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        plus = float(loss(tf.constant(case["base"] + step * direction)))
        minus = float(loss(tf.constant(case["base"] - step * direction)))
    finite_difference = (plus - minus) / (2 * step)
    analytic = float(np.sum(gradient * direction))
    assert analytic == pytest.approx(finite_difference, rel=0.01), (
        f"directional derivative: adjoint-state {analytic:.6g} vs finite difference {finite_difference:.6g}"
    )


def test_engine_config_refuses_an_unknown_gradient_method():
    with pytest.raises(ValueError, match=r"gradient must be one of 'adjoint', 'autodiff'.*Received: 'tape'"):
        EngineConfig(gradient="tape")


@pytest.mark.slow  # ~50 s on 2 idle cores: a gradient compilation of its own
def test_gradient_with_free_surface_and_8th_order_matches_finite_difference():
    """The hand-written adjoint step folds the free surface's image rows back and uses the 8th-order
    stencils: checked against central differences like the default case."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("uses tf.GradientTape")
    import tensorflow as tf

    case = gradient_case()
    config = EngineConfig(spatial_order=8, absorbing_width_cells=8, free_surface=True)
    geometry = dataclasses.replace(
        case["geometry"], source_cells=((1, 5),), receiver_cells=((1, 18), (20, 12))
    )

    def loss(model):
        return tf.reduce_sum(simulate(model, geometry, config) * case["weights"])

    base, direction = case["base"], case["direction"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        velocity = tf.constant(base)
        with tf.GradientTape() as tape:
            tape.watch(velocity)
            value = loss(velocity)
        gradient = tape.gradient(value, velocity).numpy()
        step = 20.0
        plus = float(loss(tf.constant(base + step * direction, tf.float32)))
        minus = float(loss(tf.constant(base - step * direction, tf.float32)))
    assert np.isfinite(gradient).all()
    finite_difference = (plus - minus) / (2 * step)
    analytic = float(np.sum(gradient * direction))
    assert analytic == pytest.approx(finite_difference, rel=0.01), (
        f"directional derivative: tape {analytic:.6g} vs finite difference {finite_difference:.6g}"
    )
    # The gradient near the surface is not the transposed stencil of an unreflected field: the surface
    # rows carry weight.
    assert np.abs(gradient[0, :2]).max() > 0


JAX_TRACES_CASE = """
import numpy as np
from data_prep.forward import EngineConfig
from data_prep.geometry import AcquisitionGeometry
traces_geometry = AcquisitionGeometry.surface_line(
    (24, 24), num_sources=2, num_receivers=8, num_samples=120, peak_frequency_hz=20.0
)
traces_model = np.full((24, 24), 1800.0, np.float32)
traces_model[12:] = 3000.0
traces_config = EngineConfig(spatial_order=8, absorbing_width_cells=8, free_surface=True)
"""


@pytest.mark.jax
def test_engine_under_jax_matches_tensorflow_traces_and_gradient(jax_runner, tensorflow_gradient):
    """The same simulation (8th order, free surface) and the same loss gradient (the shared case) under
    JAX, in a subprocess, and TensorFlow, here."""
    code = (
        JAX_TRACES_CASE
        + GRADIENT_CASE
        + """
import json, warnings, jax, keras
from data_prep.forward import simulate
warnings.simplefilter("ignore", RuntimeWarning)
traces = simulate(traces_model, traces_geometry, traces_config)
def loss(v):
    return (simulate(v, geometry, config, velocity_bounds_mps=bounds) * weights).sum()
gradient = jax.grad(loss)(jax.numpy.asarray(base))
print(json.dumps({"backend": keras.backend.backend(), "traces": np.asarray(traces).tolist(),
                  "gradient": np.asarray(gradient).tolist()}))
"""
    )
    result = jax_runner(code)
    assert result["backend"] == "jax"
    case: dict = {}
    exec(JAX_TRACES_CASE, case)
    expected = as_numpy(simulate(case["traces_model"], case["traces_geometry"], case["traces_config"]))
    under_jax = np.asarray(result["traces"], np.float32)
    assert under_jax.shape == expected.shape
    difference = np.abs(under_jax - expected).max() / np.abs(expected).max()
    assert difference < 1e-4, f"JAX and TensorFlow traces differ by {difference:.2e} of the peak"

    _, _, _, tf_gradient = tensorflow_gradient
    jax_gradient = np.asarray(result["gradient"], np.float32)
    assert jax_gradient.shape == tf_gradient.shape and np.isfinite(jax_gradient).all()
    gradient_difference = np.abs(jax_gradient - tf_gradient).max() / np.abs(tf_gradient).max()
    assert gradient_difference < 1e-4, (
        f"jax.grad and tf.GradientTape gradients differ by {gradient_difference:.2e} of the largest entry"
    )
