"""Geometry regularisation: bring shot gathers onto a dataset's time axis and receiver positions.

Used by ``data_prep.ingest`` when ``regularization.enabled`` is set and an input's geometry differs from
the dataset's (or from the configured target). Without it, ingest refuses such inputs and lists every
difference. Source positions are never changed: a shot cannot be moved by interpolation.

* Time: ``resample_time`` uses polyphase resampling (``scipy.signal.resample_poly``), whose FIR low-pass
  filter removes energy above the new Nyquist frequency before decimating, so downsampling does not alias.
  The result is then cut or zero-padded to the target sample count.
* Receivers: ``interpolate_receivers`` interpolates linearly between neighbouring receivers along x. It
  refuses to extrapolate: every target receiver must lie within the recorded spread.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly


def resample_ratio(from_interval_s: float, to_interval_s: float, max_denominator: int = 1000) -> tuple[int, int]:
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
        raise ValueError(f"Recorded receiver x positions repeat; cannot interpolate. Received: {from_x_m.tolist()}")
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
