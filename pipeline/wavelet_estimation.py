"""Source-wavelet estimation: the short matching filter that maps simulated gathers onto recorded ones.

Pipeline position: used by ``pipeline.refine`` at every evaluation of its objective (variable projection), so
that the velocity update does not absorb what the data's source does differently from the training data's
engine: another wavelet shape, a time delay, the opposite polarity, other amplitude units. A survey recorded
by someone else always differs in these; if the refinement cannot explain them with a wavelet it explains
them with the velocity, and the velocity gets worse while the data misfit falls (issue 22).

The estimate is the classic least-squares (Wiener) matching filter of FWI source estimation (Pratt 1999),
with a **finite length**: ``f`` with taps at lags ``-max_lag .. +max_lag`` samples minimising

    sum over traces ||d - f * s||^2 + damping x R_ss(0) x ||f||^2

(``d`` observed, ``s`` simulated, ``*`` convolution along time). Its normal equations are a symmetric Toeplitz
system in the traces' summed autocorrelation ``R_ss`` and cross-correlation ``R_ds``, solved by Levinson
recursion (``scipy.linalg.solve_toeplitz``). The finite length is what keeps the estimate honest: an
unconstrained frequency-domain filter (``pipeline.qc.match_source(..., "wavelet")``) may put large gains where
the simulation has little energy, while ``2 max_lag`` samples of filter can represent a wavelet, a delay of up
to ``max_lag`` and a polarity, but not the offset-dependent time shifts of a wrong velocity (one filter is
shared by all traces of a shot or of the window).

``scope``: ``"window"`` one filter for all shots (the source is the same for the whole line: the usual case),
``"shot"`` one filter per shot (shot-to-shot variations, more freedom).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

#: Threads of each FFT (``scipy.fft``'s ``workers``): all cores, like the engine's shots. The refinement calls
#: these transforms between engine passes, when the cores are otherwise idle.
FFT_WORKERS = -1


@dataclass(frozen=True)
class MatchingFilter:
    """A matching filter as a linear operator on ``(shots, time, receivers)`` gathers.

    Attributes:
        taps: ``(filters, 2 max_lag + 1)`` filter samples at lags ``centre - max_lag .. centre + max_lag``; ``filters`` is 1
            (shared by all shots) or the number of shots.
        spectrum: ``(filters, bins)`` the taps on the ``rfft`` bins of ``2 x num_samples`` (zero padding: a
            linear, not circular, convolution), negative lags wrapped to the end.
        gain: ``||f * s|| / ||s||`` on the gathers it was estimated from (the polarity is ``polarity``).
        polarity: +1, or -1 when the data are reversed relative to the simulation (the sign of the estimated
            wavelet's largest sample against the reference wavelet's, or of the filter's largest tap).
        lag_s: the delay of that sample in seconds (positive: the data arrive later).
    """

    taps: np.ndarray
    spectrum: np.ndarray
    gain: float
    polarity: float
    lag_s: float

    def apply(self, simulated: np.ndarray) -> np.ndarray:
        return _filter(np.asarray(simulated, np.float64), self.spectrum)

    def adjoint(self, residual: np.ndarray) -> np.ndarray:
        """The exact transpose of ``apply`` (zero-pad, circular correlation, truncate)."""
        return _filter(np.asarray(residual, np.float64), np.conj(self.spectrum))


def _filter(gathers: np.ndarray, spectrum: np.ndarray) -> np.ndarray:
    num_samples = gathers.shape[1]
    length = 2 * num_samples
    transformed = scipy.fft.rfft(gathers, n=length, axis=1, workers=FFT_WORKERS)
    return _filtered(transformed, spectrum, num_samples)


def _filtered(transformed: np.ndarray, spectrum: np.ndarray, num_samples: int) -> np.ndarray:
    """Gathers whose ``rfft`` on ``2 x num_samples`` is ``transformed``, filtered by ``spectrum``."""
    product = transformed * spectrum[:, :, None]
    return scipy.fft.irfft(product, n=2 * num_samples, axis=1, workers=FFT_WORKERS)[:, :num_samples]


def estimate_matching_filter(
    observed: np.ndarray,
    simulated: np.ndarray,
    max_lag_samples: int,
    damping: float = 1e-3,
    scope: str = "window",
    sample_interval_s: float = 1.0,
    reference_wavelet: np.ndarray | None = None,
    centre_lag_samples: int = 0,
) -> MatchingFilter:
    """The least-squares filter of ``2 max_lag_samples + 1`` taps mapping ``simulated`` onto ``observed``.

    Args:
        observed, simulated: ``(shots, time, receivers)`` gathers (any units).
        max_lag_samples: the filter spans lags ``centre - max_lag .. centre + max_lag`` samples (>= 0; 0 = a
            scalar times a shift by ``centre``).
        damping: Tikhonov stabilisation relative to the simulated gathers' zero-lag autocorrelation.
        scope: ``"window"`` (one filter) or ``"shot"`` (one per shot).
        sample_interval_s: for ``lag_s`` only.
        reference_wavelet: ``(time,)`` the simulation's source wavelet. With it, ``polarity`` and ``lag_s``
            describe the estimated source wavelet ``f * reference`` against the reference (largest sample's
            sign and time): robust where the filter itself is noisy outside the wavelet's band. Without it,
            the filter's largest tap.
        centre_lag_samples: the delay the filter's lags are centred on (samples; positive: the data arrive
            later), e.g. the delay ``pipeline.input_correction`` estimated from the direct wave: a short
            filter then absorbs the source's delay without the room to absorb a velocity's time shifts too.

    Raises:
        ValueError: shapes that differ, a negative lag, an unknown scope.
    """
    observed = np.asarray(observed, np.float64)
    simulated = np.asarray(simulated, np.float64)
    if observed.shape != simulated.shape or observed.ndim != 3:
        raise ValueError(
            "observed and simulated must be (shots, time, receivers) gathers of the same shape. "
            f"Received: {observed.shape} and {simulated.shape}"
        )
    if scope not in ("window", "shot"):
        raise ValueError(f"The wavelet scope must be 'window' or 'shot'. Received: {scope!r}")
    num_shots, num_samples, _ = simulated.shape
    max_lag = int(max_lag_samples)
    if max_lag < 0:
        raise ValueError(f"max_lag_samples must be >= 0. Received: {max_lag_samples}")
    max_lag = min(max_lag, num_samples - 1)
    length = 2 * num_samples
    spectrum_s = scipy.fft.rfft(simulated, n=length, axis=1, workers=FFT_WORKERS)
    spectrum_d = scipy.fft.rfft(observed, n=length, axis=1, workers=FFT_WORKERS)
    if scope == "window":
        auto = np.sum(np.abs(spectrum_s) ** 2, axis=(0, 2))[None]
        cross = np.sum(spectrum_d * np.conj(spectrum_s), axis=(0, 2))[None]
    else:
        auto = np.sum(np.abs(spectrum_s) ** 2, axis=2)
        cross = np.sum(spectrum_d * np.conj(spectrum_s), axis=2)
    autocorrelation = scipy.fft.irfft(auto, n=length, axis=1)  # lag k at index k (negative lags at the end)
    crosscorrelation = scipy.fft.irfft(cross, n=length, axis=1)
    limit = num_samples - 1 - max_lag  # every lag within the zero padding: a linear convolution
    lags = int(np.clip(centre_lag_samples, -limit, limit)) + np.arange(-max_lag, max_lag + 1)
    taps = np.zeros((auto.shape[0], lags.size))
    for index in range(auto.shape[0]):
        column = autocorrelation[index, : 2 * max_lag + 1].copy()
        if not column[0] > 0:
            continue  # a silent simulation: no filter maps it onto anything
        column[0] *= 1.0 + damping
        taps[index] = _solve_symmetric_toeplitz(column, crosscorrelation[index, lags % length])
    spectrum = scipy.fft.rfft(_wrapped(taps, lags, length), n=length, axis=1)
    match = MatchingFilter(taps, spectrum, 0.0, 1.0, 0.0)
    energy = float(np.sum(simulated * simulated))
    gain = (
        float(np.sqrt(np.sum(_filtered(spectrum_s, spectrum, num_samples) ** 2) / energy))
        if energy > 0
        else 0.0
    )
    if reference_wavelet is not None:
        reference = np.asarray(reference_wavelet, np.float64).reshape(1, -1, 1)
        estimated = match.apply(np.broadcast_to(reference, (taps.shape[0], reference.shape[1], 1)))[:, :, 0]
        peak = int(np.argmax(np.abs(reference[0, :, 0])))
        shot, sample = np.unravel_index(int(np.argmax(np.abs(estimated))), estimated.shape)
        polarity = float(np.sign(estimated[shot, sample] * reference[0, peak, 0]) or 1.0)
        return MatchingFilter(taps, spectrum, gain, polarity, float(sample - peak) * sample_interval_s)
    largest = np.unravel_index(int(np.argmax(np.abs(taps))), taps.shape)
    polarity = float(np.sign(taps[largest]) or 1.0)
    return MatchingFilter(taps, spectrum, gain, polarity, float(lags[largest[1]]) * sample_interval_s)


def _wrapped(taps: np.ndarray, lags: np.ndarray, length: int) -> np.ndarray:
    circular = np.zeros((taps.shape[0], length))
    circular[:, lags % length] = taps
    return circular


def _solve_symmetric_toeplitz(column: np.ndarray, right_hand_side: np.ndarray) -> np.ndarray:
    from scipy.linalg import LinAlgError, solve_toeplitz

    try:
        return solve_toeplitz(column, right_hand_side)
    except (LinAlgError, ValueError):  # a singular (e.g. all but silent) system: least squares
        from scipy.linalg import toeplitz

        return np.linalg.lstsq(toeplitz(column), right_hand_side, rcond=None)[0]


__all__ = ["MatchingFilter", "estimate_matching_filter"]
