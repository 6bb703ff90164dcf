"""The kinematic misfit of the refinement's region stage (``pipeline.refine.traveltime``)."""

from __future__ import annotations

import numpy as np
import pytest

from data_prep.wavelets import ricker
from pipeline.refine.traveltime import traveltime_misfit

DT = 0.001
SAMPLES = 600


def events(times_s, amplitudes=(1.0, 0.5), frequency=8.0) -> np.ndarray:
    """One trace: a Ricker of ``frequency`` at each time (peak), with the given amplitudes."""
    trace = np.zeros(SAMPLES)
    for time_s, amplitude in zip(times_s, amplitudes, strict=False):
        trace += amplitude * ricker(frequency, SAMPLES, DT, delay_s=time_s)
    return trace


def gathers(shift_first_s: float, shift_second_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(observed, simulated) ``(2 shots, time, 3 receivers)``: two events per trace; the synthetics' first
    event ``shift_first_s`` earlier than the data's, the second ``shift_second_s`` earlier."""
    observed = np.zeros((2, SAMPLES, 3))
    simulated = np.zeros_like(observed)
    for shot in range(2):
        for receiver in range(3):
            first, second = 0.15 + 0.01 * receiver, 0.42 + 0.02 * shot
            observed[shot, :, receiver] = events((first, second))
            simulated[shot, :, receiver] = events((first - shift_first_s, second - shift_second_s))
    return observed, simulated


def test_the_lag_of_each_window_is_the_time_the_data_arrive_later():
    """Synthetics 20 ms early on the first event, 15 ms late on the second: the windows around them measure
    +20 and -15 ms (within the taper's pull of the neighbouring event: 4 ms), identical data measure 0."""
    observed, simulated = gathers(0.020, -0.015)
    value, _, shifts = traveltime_misfit(observed, simulated, DT, 0.06, 0.2)
    assert value > 0
    lags = shifts.lag_s[0, 0][shifts.valid[0, 0]]
    assert np.max(lags) == pytest.approx(0.020, abs=0.004), lags
    assert np.min(lags) == pytest.approx(-0.015, abs=0.004), lags
    same, _, zero = traveltime_misfit(observed, observed, DT, 0.06, 0.2)
    assert same == pytest.approx(0.0, abs=1e-12) and zero.rms_lag_s == pytest.approx(0.0, abs=1e-9)


def test_the_adjoint_source_is_the_misfit_s_gradient():
    """Against a central finite difference along a random direction: within 2 % (the parabolic sub-sample
    peak is not exactly the continuous one the implicit derivative assumes; measured 0.7 %). A wrong sign
    or a missing factor is off by O(1)."""
    observed, simulated = gathers(0.020, -0.015)
    _, gradient, _ = traveltime_misfit(observed, simulated, DT, 0.06, 0.2)
    direction = np.random.default_rng(0).normal(size=simulated.shape) * 0.01
    step = 1e-3
    plus = traveltime_misfit(observed, simulated + step * direction, DT, 0.06, 0.2, gradient=False)[0]
    minus = traveltime_misfit(observed, simulated - step * direction, DT, 0.06, 0.2, gradient=False)[0]
    assert float(np.sum(gradient * direction)) == pytest.approx((plus - minus) / (2 * step), rel=0.02)


def test_a_step_down_the_gradient_brings_the_synthetics_closer_in_time():
    """Moving the synthetics a little against the gradient lowers the misfit: the adjoint source points the
    synthetic events towards the data's times."""
    observed, simulated = gathers(0.020, -0.015)
    value, gradient, _ = traveltime_misfit(observed, simulated, DT, 0.06, 0.2)
    step = 0.1 * value / float(np.sum(gradient**2))
    lower = traveltime_misfit(observed, simulated - step * gradient, DT, 0.06, 0.2, gradient=False)[0]
    assert lower < value


def test_windows_that_cannot_be_timed_do_not_count():
    """A window whose correlation peak is negative (here a one-signed pulse against its reverse: negative at
    every lag), a shift beyond the lag range (the correlation largest at its end) and silent windows are left out; nothing left:
    misfit 0 and a zero gradient, not NaN."""
    observed, simulated = gathers(0.0, 0.0)
    pulse = np.exp(-(((np.arange(SAMPLES) * DT - 0.3) / 0.02) ** 2))[None, :, None]
    _, _, reversed_shifts = traveltime_misfit(pulse, -pulse, DT, 0.06, 0.2)
    assert not np.any(reversed_shifts.valid)
    late = np.exp(-(((np.arange(SAMPLES) * DT - 0.39) / 0.02) ** 2))[None, :, None]
    value, gradient, far = traveltime_misfit(late, pulse, DT, 0.03, 0.2)  # 90 ms: the peak lies beyond
    assert not np.any(far.valid) and value == 0.0 and not np.any(gradient)
    observed[:, 300:], simulated[:, 300:] = 0.0, 0.0  # nothing after 0.3 s
    _, _, silent = traveltime_misfit(observed, simulated, DT, 0.06, 0.2)
    assert np.all(silent.valid[..., :2]) and not np.any(silent.valid[..., 3:]), "windows from 0.3 s are silent"
    with pytest.raises(ValueError, match="one shape"):
        traveltime_misfit(observed, simulated[:, :100], DT, 0.06, 0.2)
