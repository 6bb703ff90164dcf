"""The velocity-spectrum view (``models.moveout``): semblance values, its geometry, and the U-Net option."""

from __future__ import annotations

import numpy as np
import pytest

import models
from models.moveout import (
    MoveoutSemblance,
    ShotsAlongLine,
    receivers_from_shots,
    scan_from_geometry,
    semblance_gather_plan,
)

DT = 0.004
SPACING = 10.0
RECEIVERS = 61
STEPS = 200
SHOTS = (0.0, 30.0, 60.0)
VELOCITIES = (1500.0, 4500.0)


def hyperbolic_gathers(t0_s: float, velocity: float, delay_s: float) -> np.ndarray:
    """``(time, receivers, shots)``: one reflection of a 15 Hz Ricker on every shot, peak ``delay_s`` late."""
    time = np.arange(STEPS)[:, None] * DT
    image = np.zeros((STEPS, RECEIVERS, len(SHOTS)), np.float32)
    for index, shot in enumerate(SHOTS):
        offset = np.abs(np.arange(RECEIVERS) - shot)[None, :] * SPACING
        arrival = np.sqrt(t0_s**2 + (offset / velocity) ** 2) + delay_s
        argument = (np.pi * 15.0 * (time - arrival)) ** 2
        image[..., index] = (1 - 2 * argument) * np.exp(-argument)
    return image


def spectrum(image: np.ndarray, **options) -> np.ndarray:
    layer = MoveoutSemblance(
        SHOTS,
        DT,
        SPACING,
        velocity_range_m_s=VELOCITIES,
        num_velocities=31,
        t0_stride=2,
        receiver_stride=1,
        **options,
    )
    return np.asarray(layer(image[None]))[0]


def test_the_spectrum_peaks_at_the_reflection_s_velocity_whatever_its_polarity_and_scale():
    image = hyperbolic_gathers(t0_s=0.296, velocity=2500.0, delay_s=0.06)
    result = spectrum(image, wavelet_delay_s=0.06)
    assert result.shape == (3, 100, 31)
    assert 0.0 <= result.min() and result.max() <= 1.0 + 1e-5
    velocities = np.linspace(*VELOCITIES, 31)
    row = round(0.296 / (2 * DT))  # t0 is sampled every other input row
    for shot in range(3):
        assert velocities[result[shot, row].argmax()] == pytest.approx(2500.0, abs=100.0), shot
        assert result[shot, row].max() > 0.95
        # Away from the event (0.1 s before and after it: a t0 up to 0.08 s off still fits it with another
        # velocity), nothing is coherent.
        assert result[shot, : row - 12].max() < 0.3 and result[shot, row + 13 :].max() < 0.3
    # A ratio: the traces' sign and scale do not change it.
    np.testing.assert_allclose(spectrum(-25.0 * image, wavelet_delay_s=0.06), result, atol=1e-4)
    # Without the wavelet's delay the event reads as t0 + delay and a lower velocity: the bias that
    # wavelet_delay_s removes.
    late = spectrum(image)
    assert velocities[late[1, round(0.356 / (2 * DT))].argmax()] < 2400.0


def test_incoherent_noise_has_a_low_spectrum():
    noise = np.random.default_rng(0).normal(size=(STEPS, RECEIVERS, len(SHOTS))).astype(np.float32)
    result = spectrum(noise, wavelet_delay_s=0.06)
    assert result[:, 10:].mean() < 0.1
    assert np.isfinite(result).all()
    # Dead (all-zero) gathers give zeros, not NaNs.
    assert np.abs(spectrum(np.zeros_like(noise))).max() == 0.0


def test_the_gather_plan_masks_stretched_and_late_samples():
    velocities = np.array([2000.0])
    indices, valid = semblance_gather_plan(STEPS, RECEIVERS, SHOTS, DT, SPACING, velocities, 1, 1, 0.5, 0.0)
    assert indices.shape == valid.shape == (3, STEPS, 1, RECEIVERS)
    t0 = np.arange(STEPS)[:, None] * DT
    offsets = np.abs(np.arange(RECEIVERS) - SHOTS[0]) * SPACING
    times = np.sqrt(t0**2 + (offsets / 2000.0) ** 2)
    expected = (times <= 1.5 * t0) & (np.rint(times / DT) < STEPS)
    np.testing.assert_array_equal(valid[0, :, 0].astype(bool), expected)
    # A valid entry reads its own shot's trace at its receiver and the hyperbola's sample.
    shot, t0_index, receiver = 2, 120, 40
    sample = int(np.rint(np.sqrt((t0_index * DT) ** 2 + (20 * SPACING / 2000.0) ** 2) / DT))
    assert valid[shot, t0_index, 0, receiver] == 1.0
    assert indices[shot, t0_index, 0, receiver] == (shot * STEPS + sample) * RECEIVERS + receiver


def test_shot_features_are_placed_along_the_line_between_the_shots():
    matrix = receivers_from_shots([60.0, 0.0, 30.0], RECEIVERS)
    assert matrix.shape == (RECEIVERS, 3)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    np.testing.assert_allclose(matrix[0], [0, 1, 0])
    np.testing.assert_allclose(matrix[15], [0, 0.5, 0.5])
    np.testing.assert_allclose(matrix[60], [1, 0, 0])
    values = np.arange(3, dtype=np.float32).reshape(1, 3, 1, 1) + 1  # shot k carries k + 1
    placed = np.asarray(ShotsAlongLine([60.0, 0.0, 30.0], RECEIVERS)(values))
    assert placed.shape == (1, 1, RECEIVERS, 1)
    np.testing.assert_allclose(placed[0, 0, [0, 15, 30, 45, 60], 0], [2, 2.5, 3, 2, 1])


def test_bad_layer_arguments_are_refused():
    with pytest.raises(ValueError, match="velocity_range_m_s=\\(3000, 2000\\)"):
        MoveoutSemblance(SHOTS, DT, SPACING, velocity_range_m_s=(3000, 2000))
    with pytest.raises(ValueError, match="window=2"):
        MoveoutSemblance(SHOTS, DT, SPACING, window=2)
    with pytest.raises(ValueError, match="receiver_spacing_m=0"):
        MoveoutSemblance(SHOTS, DT, 0)
    with pytest.raises(ValueError, match="fills them in from the dataset.*moveout_scan=True"):
        models.DualDecoderUNet(moveout_scan=True)
    with pytest.raises(ValueError, match="3 shot positions for 2 shots"):
        MoveoutSemblance(SHOTS, DT, SPACING)(np.zeros((1, STEPS, RECEIVERS, 2), np.float32))


def geometry_scan(options, receivers=None, sources=(0.0, 300.0, 600.0), start=0.0):
    receivers = np.arange(RECEIVERS) * SPACING if receivers is None else receivers
    return scan_from_geometry(
        options,
        sample_interval_s=0.001,
        start_time_s=start,
        source_x_m=sources,
        receiver_x_m=receivers,
        default_wavelet_delay_s=0.072,
    )


def test_the_scan_is_completed_from_the_geometry():
    scan = geometry_scan(True, start=0.012)
    assert scan == {
        "source_receivers": [0.0, 30.0, 60.0],
        "time_step_s": 0.001,
        "receiver_spacing_m": 10.0,
        "wavelet_delay_s": pytest.approx(0.06),
    }
    chosen = geometry_scan({"wavelet_delay_s": 0.09, "num_velocities": 12, "receiver_spacing_m": 10.0})
    assert chosen["wavelet_delay_s"] == 0.09 and chosen["num_velocities"] == 12


def test_geometry_the_scan_cannot_read_is_refused():
    uneven = np.concatenate([np.arange(30) * 10.0, 300.0 + np.arange(31) * 20.0])
    with pytest.raises(ValueError, match="evenly spaced.*10..20 m"):
        geometry_scan(True, receivers=uneven)
    with pytest.raises(ValueError, match="shots at 900 m lie outside the receivers' span \\(0..600 m\\)"):
        geometry_scan(True, sources=(0.0, 900.0))
    with pytest.raises(ValueError, match="time_step_s=0.002 does not match the data \\(0.001\\)"):
        geometry_scan({"time_step_s": 0.002})


def test_the_unet_option_adds_spectrum_channels_and_round_trips(tmp_path):
    import keras

    scan = {
        "source_receivers": [0, 15],
        "time_step_s": 0.002,
        "receiver_spacing_m": 10.0,
        "wavelet_delay_s": 0.05,
    }
    options = {
        "seismic_shape": (2, 64, 16),
        "grid_shape": (16, 16),
        "time_pooling": 2,
        "front_end_filters": (4,),
        "front_end_kernel_sizes": (3,),
        "encoder_filters": (4, 8),
    }
    model = models.DualDecoderUNet(moveout_scan=scan, **options)
    plain = models.DualDecoderUNet(**options)
    # The layer sees the pooled record, so its sample interval is the data's times the pooling.
    assert model.get_layer("moveout_semblance").time_step_s == pytest.approx(0.004)
    assert model.get_layer("moveout_concat").output.shape[-1] == 4 + 8
    assert model.count_params() > plain.count_params()
    assert model.get_config()["moveout_scan"] == scan
    seismic = np.random.default_rng(0).uniform(-1, 1, (3, 2, 64, 16)).astype(np.float32)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        np.asarray(loaded(seismic)["velocity"]), np.asarray(model(seismic)["velocity"]), atol=1e-6
    )
