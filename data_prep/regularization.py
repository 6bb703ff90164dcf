"""Geometry regularisation: bring shot gathers onto a dataset's time axis and receiver positions.

Used by ``data_prep.ingest`` when ``regularization.enabled`` is set and an input's geometry differs from
the dataset's (or from the configured target). Without it, ingest refuses such inputs and lists every
difference. Source positions are never changed: a shot cannot be moved by interpolation.

* Time: ``resample_time`` uses polyphase resampling (``scipy.signal.resample_poly``), whose FIR low-pass
  filter removes energy above the new Nyquist frequency before decimating, so downsampling does not alias.
  The result is then cut or zero-padded to the target sample count.
* Receivers: ``interpolate_receivers`` interpolates linearly between neighbouring receivers along x. It
  refuses to extrapolate: every target receiver must lie within the recorded spread.
* Start time: ``align_start_times`` shifts traces recorded with a delay (DelayRecordingTime) onto a common
  time origin by whole samples, zero-filling what was not recorded (``regularization.start_time_s``).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly


def resample_ratio(
    from_interval_s: float, to_interval_s: float, max_denominator: int = 1000
) -> tuple[int, int]:
    """``(up, down)`` with ``up / down = from_interval_s / to_interval_s`` exactly (within 1e-9)."""
    if not (from_interval_s > 0 and to_interval_s > 0):
        raise ValueError(
            f"Sample intervals must be positive. Received: {from_interval_s} s -> {to_interval_s} s"
        )
    ratio = Fraction(from_interval_s / to_interval_s).limit_denominator(max_denominator)
    if abs(float(ratio) - from_interval_s / to_interval_s) > 1e-9 * (from_interval_s / to_interval_s):
        raise ValueError(
            f"Cannot resample from {from_interval_s * 1e3:g} ms to {to_interval_s * 1e3:g} ms: the ratio is not a "
            f"fraction with denominator <= {max_denominator}. Choose a target interval with a simpler ratio."
        )
    return ratio.numerator, ratio.denominator


def resample_time(
    traces: np.ndarray,
    from_interval_s: float,
    to_interval_s: float,
    num_samples: int,
    axis: int = -1,
) -> np.ndarray:
    """Resamples traces to a new sample interval (anti-aliased) and sample count.

    Args:
        traces: float array with time along ``axis``; the first sample is at t = 0 in both grids.
        from_interval_s: the input's sample interval, seconds.
        to_interval_s: the target sample interval, seconds.
        num_samples: target number of samples (the result is cut or zero-padded at the end).
        axis: the time axis.

    Returns:
        float32 array with ``num_samples`` along ``axis``.
    """
    traces = np.asarray(traces, dtype=np.float32)
    if abs(from_interval_s - to_interval_s) <= 1e-12:
        result = traces
    else:
        up, down = resample_ratio(from_interval_s, to_interval_s)
        result = resample_poly(traces, up, down, axis=axis).astype(np.float32)
    axis = axis % traces.ndim
    have = result.shape[axis]
    if have >= num_samples:
        return np.take(result, np.arange(num_samples), axis=axis)
    padding = [(0, 0)] * result.ndim
    padding[axis] = (0, num_samples - have)
    return np.pad(result, padding)


def receiver_interpolation_matrix(from_x_m: np.ndarray, to_x_m: np.ndarray) -> np.ndarray:
    """``(len(to_x_m), len(from_x_m))`` linear-interpolation weights between receiver x positions.

    Raises:
        ValueError: a target receiver lies outside the recorded spread (no extrapolation), or the recorded
            positions repeat.
    """
    from_x_m = np.asarray(from_x_m, dtype=np.float64)
    to_x_m = np.asarray(to_x_m, dtype=np.float64)
    order = np.argsort(from_x_m, kind="stable")
    sorted_x = from_x_m[order]
    if np.any(np.diff(sorted_x) <= 0):
        raise ValueError(
            f"Recorded receiver x positions repeat; cannot interpolate. Received: {from_x_m.tolist()}"
        )
    tolerance = 1e-6
    outside = (to_x_m < sorted_x[0] - tolerance) | (to_x_m > sorted_x[-1] + tolerance)
    if outside.any():
        raise ValueError(
            f"Target receivers at x = {to_x_m[outside].tolist()} m lie outside the recorded spread "
            f"[{sorted_x[0]:g}, {sorted_x[-1]:g}] m; interpolation does not extrapolate. Narrow the target spread."
        )
    weights = np.zeros((len(to_x_m), len(from_x_m)))
    for column, source in enumerate(order):
        unit = np.zeros(len(from_x_m))
        unit[column] = 1.0
        weights[:, source] = np.interp(to_x_m, sorted_x, unit)
    return weights


def interpolate_receivers(
    gathers: np.ndarray, from_x_m: np.ndarray, to_x_m: np.ndarray, axis: int = -1
) -> np.ndarray:
    """Interpolates gathers linearly from recorded receiver x positions onto target ones.

    Args:
        gathers: float array with receivers along ``axis`` (e.g. ``(shots, time, receivers)``).
        from_x_m: ``(receivers,)`` recorded x positions, metres.
        to_x_m: ``(target_receivers,)`` target x positions, metres.
        axis: the receiver axis.

    Returns:
        float32 array with ``len(to_x_m)`` along ``axis``.
    """
    weights = receiver_interpolation_matrix(from_x_m, to_x_m)
    moved = np.moveaxis(np.asarray(gathers, dtype=np.float64), axis, -1)
    return np.moveaxis(moved @ weights.T, -1, axis).astype(np.float32)


def start_time_shifts(
    start_times_s: np.ndarray, target_start_s: float, interval_s: float, origin: str = "the input"
) -> np.ndarray:
    """Whole-sample shifts that move traces starting at ``start_times_s`` onto a time axis from ``target_start_s``.

    Returns:
        int64 array shaped like ``start_times_s``: ``(start - target) / interval``; positive = the trace
        starts later than the target (zeros go in front of it).

    Raises:
        ValueError: a shift that is not a whole number of samples (within 1e-6 of a sample).
    """
    shifts = (np.asarray(start_times_s, dtype=np.float64) - float(target_start_s)) / float(interval_s)
    rounded = np.rint(shifts)
    bad = np.flatnonzero(np.abs(shifts - rounded).ravel() > 1e-6)
    if bad.size:
        start = float(np.asarray(start_times_s).ravel()[bad[0]])
        raise ValueError(
            f"{origin}: a trace starts at {start * 1e3:g} ms, which is not a whole number of "
            f"{interval_s * 1e3:g} ms samples from the target start time {target_start_s * 1e3:g} ms. Choose a "
            "regularization.start_time_s on the same sample grid (or resample the data first)."
        )
    return rounded.astype(np.int64)


def align_start_times(gathers: np.ndarray, shifts: np.ndarray, time_axis: int = 1) -> np.ndarray:
    """Shifts each trace of ``(shots, time, receivers)`` gathers by its whole-sample shift, zero-filling.

    Args:
        gathers: ``(shots, time, receivers)`` float array (``time_axis`` 1).
        shifts: ``(shots, receivers)`` int: output sample ``k`` is input sample ``k - shift`` (zero where that
            lies outside the recording), so a positive shift delays the trace and a negative one advances it.
        time_axis: must be 1 (the layout ``load_shot_sample`` produces).

    Returns:
        float32 array of the same shape.
    """
    if time_axis != 1:
        raise ValueError(
            f"align_start_times expects (shots, time, receivers). Received time_axis={time_axis}."
        )
    gathers = np.asarray(gathers, dtype=np.float32)
    shifts = np.asarray(shifts, dtype=np.int64)
    if not shifts.any():
        return gathers
    result = np.zeros_like(gathers)
    num_samples = gathers.shape[1]
    for shift in np.unique(shifts):
        shot, receiver = np.nonzero(shifts == shift)
        if abs(shift) >= num_samples:
            continue  # nothing recorded falls inside the target window
        if shift >= 0:
            result[shot, shift:, receiver] = gathers[shot, : num_samples - shift, receiver]
        else:
            result[shot, : num_samples + shift, receiver] = gathers[shot, -shift:, receiver]
    return result
