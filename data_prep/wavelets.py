"""Source wavelets for the forward-modelling engine (``data_prep.forward``).

Kept apart from the engine because the synthesis CLI, the benchmark and the physics tests all need the
same wavelet without pulling in the engine's backend machinery.
"""

from __future__ import annotations

import numpy as np

#: Default delay of the Ricker peak, in periods of the peak frequency. At 1.5 periods the wavelet has
#: decayed to ~1e-8 of its peak at t = 0, so the simulation starts from rest without a visible step.
DEFAULT_DELAY_PERIODS = 1.5


def ricker(
    peak_frequency_hz: float,
    num_samples: int,
    sample_interval_s: float,
    delay_s: float | None = None,
) -> np.ndarray:
    """A Ricker wavelet (second derivative of a Gaussian, negated), peak amplitude 1.

    ``w(t) = (1 - 2 (pi f (t - delay))^2) exp(-(pi f (t - delay))^2)``, sampled at
    ``t = k * sample_interval_s`` for ``k = 0 .. num_samples - 1``.

    Args:
        peak_frequency_hz: peak (dominant) frequency ``f`` of the amplitude spectrum, in Hz.
        num_samples: number of time samples.
        sample_interval_s: sample interval in seconds.
        delay_s: time of the wavelet's peak in seconds; ``None`` means ``1.5 / peak_frequency_hz``
            (the wavelet is then ~1e-8 of its peak at t = 0).

    Returns:
        ``(num_samples,)`` float32 array, dimensionless (peak 1).

    Raises:
        ValueError: a non-positive frequency, sample interval or sample count.
    """
    if not peak_frequency_hz > 0:
        raise ValueError(f"peak_frequency_hz must be positive. Received: {peak_frequency_hz}")
    if not sample_interval_s > 0:
        raise ValueError(f"sample_interval_s must be positive. Received: {sample_interval_s}")
    if int(num_samples) < 1 or int(num_samples) != num_samples:
        raise ValueError(f"num_samples must be a positive integer. Received: {num_samples}")
    if delay_s is None:
        delay_s = DEFAULT_DELAY_PERIODS / peak_frequency_hz
    # Evaluate in float64 and round once, so the float32 samples are exact to half an ulp.
    argument = (np.pi * peak_frequency_hz * (np.arange(int(num_samples)) * sample_interval_s - delay_s)) ** 2
    return ((1.0 - 2.0 * argument) * np.exp(-argument)).astype(np.float32)


__all__ = ["DEFAULT_DELAY_PERIODS", "ricker"]
