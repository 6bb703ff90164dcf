"""Source wavelets for the forward-modelling engine (``data_prep.forward``).

Kept apart from the engine because the synthesis CLI, the benchmark and the physics tests all need the
same wavelet without pulling in the engine's backend machinery.

The default delay of the Ricker peak follows OpenFWI's recipe (see :func:`openfwi_ricker_delay_s`), so
that gathers synthesised here line up sample for sample with OpenFWI's published data.
"""

from __future__ import annotations

import math

import numpy as np

#: OpenFWI's wavelet spans ``2.2 / f`` and peaks in its middle: ``1.1`` periods after its first sample.
OPENFWI_DELAY_PERIODS = 1.1


def openfwi_ricker_delay_s(peak_frequency_hz: float, sample_interval_s: float) -> float:
    """The Ricker delay that reproduces OpenFWI's time axis in this engine's recording convention.

    OpenFWI's modeller (the PyTorch ``FWIForward`` of the OpenFWI/UPFWI authors) builds a Ricker of
    ``2 floor(1.1 / (f dt)) + 1`` samples whose peak is sample ``floor(1.1 / (f dt))``, injects sample ``n``
    in the step from ``p[n]`` to ``p[n+1]`` (as this engine does) and stores ``p[k+1]`` as its sample ``k``,
    one step later than this engine, whose sample ``k`` is ``p[k]`` (time ``k dt``, sample 0 = the state at
    rest). Peaking one sample earlier than OpenFWI's wavelet therefore makes our sample ``k`` equal to
    OpenFWI's sample ``k``: ``(floor(1.1 / (f dt)) - 1) dt``, 72 ms for 15 Hz at 1 ms (1.08 periods).

    At that delay the wavelet is ``-2e-4`` of its peak at ``t = 0`` (a negligible start-up step; 1.5 periods,
    Deepwave's examples' choice, would give ``1e-8`` but shifts every arrival 28 ms later than OpenFWI's).

    Args:
        peak_frequency_hz: Ricker peak frequency ``f``, Hz.
        sample_interval_s: the *recorded* sample interval ``dt``, s (OpenFWI steps at its sample interval).

    Returns:
        Delay of the wavelet's peak in seconds.
    """
    if not peak_frequency_hz > 0 or not sample_interval_s > 0:
        raise ValueError(
            "peak_frequency_hz and sample_interval_s must be positive. "
            f"Received: {peak_frequency_hz!r}, {sample_interval_s!r}"
        )
    # The tiny tolerance keeps an exact ratio (e.g. 1.1 / (10 Hz * 2 ms) = 55) from flooring to 54.
    centre = math.floor(OPENFWI_DELAY_PERIODS / (peak_frequency_hz * sample_interval_s) + 1e-9)
    # Rounded to 12 significant digits so a manifest shows 0.072, not 0.07200000000000001.
    return float(f"{max(centre - 1, 0) * float(sample_interval_s):.12g}")


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
        delay_s: time of the wavelet's peak in seconds; ``None`` means OpenFWI's delay for this
            frequency and sample interval (:func:`openfwi_ricker_delay_s`, 72 ms at 15 Hz and 1 ms). When
            sampling at a finer internal time step, pass the delay of the recorded sample interval.

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
        delay_s = openfwi_ricker_delay_s(peak_frequency_hz, sample_interval_s)
    # Evaluate in float64 and round once, so the float32 samples are exact to half an ulp.
    argument = (np.pi * peak_frequency_hz * (np.arange(int(num_samples)) * sample_interval_s - delay_s)) ** 2
    return ((1.0 - 2.0 * argument) * np.exp(-argument)).astype(np.float32)


def reshape_source(
    traces: np.ndarray,
    sample_interval_s: float,
    reference: tuple[float, float],
    target: tuple[float, float, float],
    axis: int = -2,
) -> np.ndarray:
    """Traces simulated with a reference Ricker turned into the traces of another wavelet.

    The acoustic wave equation is linear and time-invariant in its source, so the traces of wavelet ``w``
    are those of ``w_ref`` filtered by ``W / W_ref``. For Ricker wavelets with the target's peak frequency at
    or below the reference's, the ratio ``(f_ref^3 / f^3) exp(-f^2 (1 / f^2 - 1 / f_ref^2))`` is bounded and
    decays: the reshaping is exact where the reference has energy and suppresses everything above the
    target's band (including the reference's grid dispersion).

    Args:
        traces: float array with time along ``axis`` (e.g. ``(shots, time, receivers)``, axis -2).
        sample_interval_s: time sampling, s.
        reference: ``(peak_frequency_hz, delay_s)`` of the Ricker the traces were simulated with.
        target: ``(peak_frequency_hz, delay_s, phase_deg)`` of the wanted wavelet; the peak frequency must
            not exceed the reference's.

    Returns:
        float32 traces of the same shape.

    Raises:
        ValueError: a target peak frequency above the reference's (that would amplify noise without bound).
    """
    reference_frequency, reference_delay = reference
    target_frequency, target_delay, target_phase = target
    if target_frequency > reference_frequency * (1 + 1e-9):
        raise ValueError(
            f"The target peak frequency {target_frequency:g} Hz exceeds the reference's {reference_frequency:g} "
            "Hz: reshaping can only lower it. Simulate with the highest peak frequency of the range."
        )
    traces = np.asarray(traces, dtype=np.float64)
    length = traces.shape[axis]
    # Twice the length: a (de)lay or phase rotation spreads energy; the padding keeps it from wrapping around.
    size = 2 * length
    frequencies = np.fft.rfftfreq(size, sample_interval_s)
    # W / W_ref in closed form (a quotient of the two spectra would be 0 / 0 where both underflow):
    # (f_ref / f)^3 exp(-f^2 (1 / f_t^2 - 1 / f_ref^2)), the delay difference, and the rotation. At 0 Hz both
    # spectra vanish but a finite record still has a mean (the truncated tail of the 2-D Green's function): it
    # gets the magnitude's limit and cos(phase) (a polarity flip negates it, a Hilbert transform removes it).
    magnitude = (reference_frequency / target_frequency) ** 3 * np.exp(
        -(frequencies**2) * (1.0 / target_frequency**2 - 1.0 / reference_frequency**2)
    )
    phase = np.deg2rad(target_phase)
    rotation = np.where(frequencies > 0, np.exp(-1j * phase), np.cos(phase))
    ratio = magnitude * np.exp(-2j * np.pi * frequencies * (target_delay - reference_delay)) * rotation
    shape = [1] * traces.ndim
    shape[axis] = ratio.shape[0]
    spectrum = np.fft.rfft(traces, n=size, axis=axis) * ratio.reshape(shape)
    reshaped = np.fft.irfft(spectrum, n=size, axis=axis)
    return np.take(reshaped, np.arange(length), axis=axis).astype(np.float32)


__all__ = ["OPENFWI_DELAY_PERIODS", "openfwi_ricker_delay_s", "reshape_source", "ricker"]
