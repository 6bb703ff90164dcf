"""Band limitation of the frequency continuation: the zero-phase low-pass of a stage.

Part of ``pipeline.refine``. Each stage of the schedule (``RefineConfig.stages``) compares data and
synthetics low-passed alike below its cut-off, so that a wrong model is less than half a period off. The
filter is a real frequency-domain taper on zero-padded traces: its own transpose, so the adjoint source of
the band-limited misfit is the band-limited residual.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from pipeline.wavelet_estimation import FFT_WORKERS


def lowpass_response(
    num_samples: int, sample_interval_s: float, cutoff_hz: float | None
) -> np.ndarray | None:
    """Real, zero-phase low-pass response on the ``rfft`` bins of ``2 x num_samples`` (None: full band).

    1 up to ``cutoff_hz``, a cosine-squared roll-off to 0 at ``1.5 x cutoff_hz``.
    """
    if cutoff_hz is None:
        return None
    frequencies = np.fft.rfftfreq(2 * num_samples, d=sample_interval_s)
    fraction = np.clip((frequencies - cutoff_hz) / (0.5 * cutoff_hz), 0.0, 1.0)
    return np.cos(0.5 * np.pi * fraction) ** 2


def band_limit(gathers: np.ndarray, response: np.ndarray | None) -> np.ndarray:
    """Applies ``lowpass_response`` along time (axis 1 of ``(shots, time, receivers)``); symmetric operator."""
    gathers = np.asarray(gathers, np.float64)
    if response is None:
        return gathers
    num_samples = gathers.shape[1]
    length = 2 * num_samples  # zero padding: no wrap-around of late energy onto early samples
    spectrum = scipy.fft.rfft(gathers, n=length, axis=1, workers=FFT_WORKERS) * response[None, :, None]
    return scipy.fft.irfft(spectrum, n=length, axis=1, workers=FFT_WORKERS)[:, :num_samples]
