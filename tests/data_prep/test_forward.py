"""Physics tests of the forward-modelling engine (``data_prep.forward``).

Every tolerance below is listed, with the reason for its value, in the tolerance table of
``docs/forward_modelling.md``. Grids are small so the file runs in about a minute on two CPU cores; each
distinct grid/config costs one XLA compilation (1-3 s), so tests share geometries where they can.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from data_prep.forward import (
    CRITICAL_COURANT_NUMBER,
    EngineConfig,
    check_dispersion,
    check_stability,
    simulate,
)
from data_prep.geometry import AcquisitionGeometry
from data_prep.wavelets import ricker

PEAK_HZ = 15.0
DELAY_S = 1.5 / PEAK_HZ


def analytic_trace(distance_m: float, velocity_mps: float, times_s: np.ndarray) -> np.ndarray:
    """2D Green's function of (1/c^2) d2/dt2 - laplacian, convolved with the Ricker source.

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
    wavelet = ricker(PEAK_HZ, 2000, 0.0005)
    assert wavelet.dtype == np.float32 and wavelet.shape == (2000,)
    assert np.argmax(wavelet) == round(DELAY_S / 0.0005), "the peak should sit at the default delay 1.5/f"
    assert abs(wavelet[0]) < 1e-7, "the wavelet should start from rest"
    spectrum = np.abs(np.fft.rfft(wavelet, 1 << 16))
    frequencies = np.fft.rfftfreq(1 << 16, 0.0005)
    assert frequencies[np.argmax(spectrum)] == pytest.approx(PEAK_HZ, abs=0.05)


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
    ],
)
def test_engine_config_rejects_bad_values(changes, expected):
    with pytest.raises(ValueError, match=expected):
        EngineConfig(**changes)


def test_engine_yaml_holds_the_documented_defaults():
    import yaml

    from pipeline.config import CONFIG_DIR, from_dict

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
        reference = analytic_trace(distance, velocity, times)
        error = direct_arrival_error(traces[:, index], reference, times, distance / velocity)
        assert error < 0.05, f"receiver {(depth, x)}: relative L2 error {error:.4f}, expected < 5 %"


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
    reference = analytic_trace(20 * spacing, velocity, times)
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


def test_absorbing_boundary_reflection_below_one_percent():
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
    assert reflection < 0.01, f"boundary reflection {reflection:.4%} of the direct wave, expected < 1 %"


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


def test_gradient_matches_finite_difference():
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the in-process gradient test uses tf.GradientTape; JAX is covered in a subprocess")
    size = 24
    geometry = AcquisitionGeometry(
        grid_shape=(size, size),
        grid_spacing_m=10.0,
        num_samples=160,
        sample_interval_s=0.001,
        peak_frequency_hz=20.0,
        source_cells=((3, 5),),
        receiver_cells=((3, 18), (20, 12)),
    )
    config = EngineConfig(absorbing_width_cells=10)
    rng = np.random.default_rng(0)
    base = 2000.0 + 300.0 * rng.random((1, size, size))
    weights = tf.constant(rng.standard_normal((1, 1, 160, 2)), tf.float32)
    rows, columns = np.mgrid[:size, :size]
    direction = np.exp(-((rows - 12.0) ** 2 + (columns - 11.0) ** 2) / 20.0)[None]  # smooth perturbation

    def loss(model):
        return tf.reduce_sum(simulate(model, geometry, config) * weights)

    velocity = tf.constant(base, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(velocity)
        value = loss(velocity)
    gradient = tape.gradient(value, velocity).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).max() > 0
    step = 20.0  # m/s at the blob's centre: large enough for float32, small enough for the O(h^2) error
    plus = float(loss(tf.constant(base + step * direction, tf.float32)))
    minus = float(loss(tf.constant(base - step * direction, tf.float32)))
    finite_difference = (plus - minus) / (2 * step)
    analytic = float(np.sum(gradient * direction))
    assert analytic == pytest.approx(finite_difference, rel=0.01), (
        f"directional derivative: tape {analytic:.6g} vs finite difference {finite_difference:.6g}"
    )


@pytest.mark.jax
def test_engine_under_jax_matches_tensorflow(jax_runner):
    code = """
    import json, numpy as np, jax, keras
    from data_prep.forward import simulate, EngineConfig
    from data_prep.geometry import AcquisitionGeometry
    geometry = AcquisitionGeometry.surface_line((24, 24), num_sources=2, num_receivers=8, num_samples=120,
                                                peak_frequency_hz=20.0)
    model = np.full((24, 24), 1800.0, np.float32); model[12:] = 3000.0
    config = EngineConfig(spatial_order=8, absorbing_width_cells=8, free_surface=True)
    traces = simulate(model, geometry, config)
    def loss(v):
        return (simulate(v, geometry, config, velocity_bounds_mps=(1800.0, 3000.0)) ** 2).sum()
    gradient = jax.grad(loss)(jax.numpy.asarray(model))
    print(json.dumps({"backend": keras.backend.backend(), "traces": np.asarray(traces).tolist(),
                      "gradient_finite": bool(np.isfinite(np.asarray(gradient)).all()),
                      "gradient_norm": float(np.linalg.norm(np.asarray(gradient)))}))
    """
    result = jax_runner(code)
    assert result["backend"] == "jax"
    geometry = AcquisitionGeometry.surface_line(
        (24, 24), num_sources=2, num_receivers=8, num_samples=120, peak_frequency_hz=20.0
    )
    model = np.full((24, 24), 1800.0, np.float32)
    model[12:] = 3000.0
    config = EngineConfig(spatial_order=8, absorbing_width_cells=8, free_surface=True)
    expected = as_numpy(simulate(model, geometry, config))
    under_jax = np.asarray(result["traces"], np.float32)
    assert under_jax.shape == expected.shape
    difference = np.abs(under_jax - expected).max() / np.abs(expected).max()
    assert difference < 1e-4, f"JAX and TensorFlow traces differ by {difference:.2e} of the peak"
    assert result["gradient_finite"] and result["gradient_norm"] > 0, "jax.grad through simulate failed"
