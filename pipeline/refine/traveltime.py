"""A kinematic misfit: the cross-correlation time shifts between data and synthetics, window by window.

Part of ``pipeline.refine``. A network's error on geology it has not seen is mostly a layer or a body at
the wrong velocity: the synthetics' events arrive early or late. The waveform misfit sees that only as a
difference of wiggles, whose gradient points the right way only within half a period and is pulled by
every amplitude and wavelet mismatch the source correction leaves. The time shift between an observed and
a synthetic event measures the kinematic error itself (Luo & Schuster 1991, "Wave-equation traveltime
inversion"; Tromp, Tape & Liu 2005 for the adjoint source). ``traveltime_misfit`` splits every trace into
overlapping tapered time windows, takes the lag of each window's cross-correlation maximum (parabolic
sub-sample peak, within ``max_lag_s``), and returns

    J = 1/2 · sum_w (tau_w / T)² / N

over the ``N`` windows that hold signal in both, with ``T`` the lag range, and the adjoint source
``dJ/ds``: for a window taper ``h`` and the lag's implicit derivative
``d tau / d s(t) = -h(t) d'(t + tau) / sum_t' s(t') d''(t' + tau)`` (the data's time derivatives, shifted by the
lag in the frequency domain). A window whose correlation peak is negative (another polarity) or lies at the
end of the lag range (cycle-skipped or unrelated) does not count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from pipeline.wavelet_estimation import FFT_WORKERS

#: Windows whose observed or synthetic energy is below this fraction of the shot's strongest window's are
#: not measured (no event there to time).
MIN_WINDOW_ENERGY = 1e-3


@dataclass(frozen=True)
class TimeShifts:
    """Per trace and window: the lag (s; > 0: the data arrive later than the synthetics) and whether it
    counts. Shapes ``(shots, receivers, windows)``."""

    lag_s: np.ndarray
    valid: np.ndarray

    @property
    def rms_lag_s(self) -> float:
        """Root-mean-square lag over the windows that count (nan: none does)."""
        return float(np.sqrt(np.mean(self.lag_s[self.valid] ** 2))) if np.any(self.valid) else float("nan")


def _windows(num_samples: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Start samples and the Hann taper of half-overlapping windows of ``length`` samples covering the trace."""
    hop = max(1, length // 2)
    starts = np.arange(0, max(1, num_samples - length + hop), hop)
    taper = np.hanning(length + 2)[1:-1]
    return starts, taper


def _segments(traces: np.ndarray, starts: np.ndarray, taper: np.ndarray) -> np.ndarray:
    """``(traces, windows, length)`` tapered segments (zero past the end of the record)."""
    length = taper.size
    padded = np.pad(traces, ((0, 0), (0, length)))
    index = starts[:, None] + np.arange(length)[None, :]
    return padded[:, index] * taper


def traveltime_misfit(
    observed: np.ndarray,
    simulated: np.ndarray,
    sample_interval_s: float,
    max_lag_s: float,
    window_s: float,
    gradient: bool = True,
) -> tuple[float, np.ndarray | None, TimeShifts]:
    """The windowed cross-correlation traveltime misfit of ``simulated`` against ``observed``.

    Args:
        observed, simulated: ``(shots, time, receivers)`` gathers of the same band and source correction.
        sample_interval_s: the gathers' sample interval.
        max_lag_s: the largest lag measured (less than half the band's dominant period avoids cycle skips).
        window_s: the time windows' length (half-overlapping, Hann-tapered).
        gradient: also return ``dJ/d simulated``.

    Returns:
        ``(J, dJ/d simulated or None, TimeShifts)``; ``J = 0`` and a zero gradient when no window counts.
    """
    observed = np.asarray(observed, np.float64)
    simulated = np.asarray(simulated, np.float64)
    if observed.shape != simulated.shape or observed.ndim != 3:
        raise ValueError(
            f"observed and simulated must be (shots, time, receivers) of one shape. "
            f"Received: {observed.shape} and {simulated.shape}"
        )
    shots, num_samples, receivers = observed.shape
    length = max(4, min(num_samples, int(round(window_s / sample_interval_s))))
    max_lag = max(1, min(length // 2 - 1, int(round(max_lag_s / sample_interval_s))))
    starts, taper = _windows(num_samples, length)
    # (traces, time), trace = shot * receivers + receiver
    data = np.moveaxis(observed, 1, 2).reshape(shots * receivers, num_samples)
    synth = np.moveaxis(simulated, 1, 2).reshape(shots * receivers, num_samples)
    d = _segments(data, starts, taper)
    s = _segments(synth, starts, taper)

    size = 2 * length
    data_spectrum = scipy.fft.rfft(d, n=size, axis=-1, workers=FFT_WORKERS)
    synth_spectrum = scipy.fft.rfft(s, n=size, axis=-1, workers=FFT_WORKERS)
    # C(tau) = sum_t s(t) d(t + tau): lag tau > 0 where the data arrive later.
    correlation = scipy.fft.irfft(np.conj(synth_spectrum) * data_spectrum, n=size, axis=-1, workers=FFT_WORKERS)
    lags = np.concatenate([correlation[..., : max_lag + 1], correlation[..., size - max_lag :]], axis=-1)
    lag_values = np.concatenate([np.arange(max_lag + 1), np.arange(-max_lag, 0)])
    peak = np.argmax(lags, axis=-1)
    peak_lag = lag_values[peak]
    centre = np.take_along_axis(lags, peak[..., None], -1)[..., 0]
    before = np.take_along_axis(lags, ((peak - 1) % lags.shape[-1])[..., None], -1)[..., 0]
    after = np.take_along_axis(lags, ((peak + 1) % lags.shape[-1])[..., None], -1)[..., 0]
    curvature = before - 2 * centre + after
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curvature < 0, 0.5 * (before - after) / curvature, 0.0)
    lag = peak_lag + np.clip(offset, -0.5, 0.5)  # samples

    data_energy = np.sum(d**2, axis=-1)
    synth_energy = np.sum(s**2, axis=-1)
    per_shot = lambda energy: np.max(  # noqa: E731
        energy.reshape(shots, receivers * energy.shape[-1]), axis=1
    ).repeat(receivers)[:, None]
    valid = (
        (centre > 0)
        & (np.abs(peak_lag) < max_lag)
        & (data_energy > MIN_WINDOW_ENERGY * per_shot(data_energy))
        & (synth_energy > MIN_WINDOW_ENERGY * per_shot(synth_energy))
    )
    count = int(np.sum(valid))
    shifts = TimeShifts(
        lag_s=(lag * sample_interval_s).reshape(shots, receivers, -1),
        valid=valid.reshape(shots, receivers, -1),
    )
    if count == 0:
        return 0.0, (np.zeros_like(simulated) if gradient else None), shifts
    lag_range = float(max_lag)
    value = 0.5 * float(np.sum((lag[valid] / lag_range) ** 2)) / count
    if not gradient:
        return value, None, shifts

    # d tau / d s(t) = -d'(t + tau) / sum_t s(t) d''(t + tau), in samples, for the tapered segments.
    omega = 2j * np.pi * np.fft.rfftfreq(size)  # per sample
    shift = np.exp(omega * np.where(valid, lag, 0.0)[..., None])
    derivative = scipy.fft.irfft(data_spectrum * omega * shift, n=size, axis=-1, workers=FFT_WORKERS)[..., :length]
    second = scipy.fft.irfft(data_spectrum * omega**2 * shift, n=size, axis=-1, workers=FFT_WORKERS)[..., :length]
    denominator = np.sum(s * second, axis=-1)
    usable = valid & (denominator < 0)  # a maximum of C: its second derivative is negative
    weight = np.where(usable, lag / lag_range**2 / count / np.where(usable, denominator, 1.0), 0.0)
    segment_gradient = -weight[..., None] * derivative * taper  # dJ/ds on each tapered window
    trace_gradient = np.zeros((shots * receivers, num_samples + length))
    for window, start in enumerate(starts):
        trace_gradient[:, start : start + length] += segment_gradient[:, window]
    trace_gradient = trace_gradient[:, :num_samples]
    return value, np.moveaxis(trace_gradient.reshape(shots, receivers, num_samples), 2, 1), shifts
