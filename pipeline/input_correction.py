"""Polarity, delay and phase of a survey's wavelet relative to the training wavelet, and the input correction.

Pipeline position: ``pipeline.infer``, between reading a window's gathers (``pipeline.windows``) and the
amplitude calibration (``pipeline.calibration``). A network trained on synthetic data has only ever seen one
source wavelet (the engine's Ricker, with its sign convention and delay). A survey recorded or simulated
elsewhere may have the opposite polarity, a wavelet that peaks earlier or later, or a rotated phase; the
network cannot know, and its prediction degrades (issue 22: reversed polarity raised the section MAE from
203 to 278 m/s). This module estimates the difference from the data and undoes it before prediction.

Estimate (``estimate_correction``):

1. **Reference**: the direct wave predicted by the model's own geometry and engine
   (``data_prep.forward.simulate`` with the training engine settings of the bundle, ``pipeline.qc
   .engine_setup``): one shot over ``trial_velocities`` homogeneous media spanning the training velocity
   range (``reference_direct_waves``), recorded at the model's source and receiver depths at offsets of
   ``min_offset_cells .. max_offset_cells`` cells. One engine call per line.
2. **Cross-correlation**: for every window, the near-offset traces (offsets taken from the window's actual
   shot positions, so a shot moved by ``--regrid`` is compared at its true offset) are cross-correlated with
   the reference traces of the same offset and summed: ``C_k(lag) = sum_traces sum_t d(t + lag) r_k(t)``
   for lags within ``+-max_delay_s``. Its analytic signal ``A_k = C_k + i H[C_k]`` has an envelope that does
   not depend on the phase: the trial velocity ``k`` and the lag of the largest normalised envelope
   ``|A_k| / sqrt(sum d^2 sum r_k^2)`` (the *coherence*, in [0, 1]) give the **delay** ``tau`` (sub-sample,
   parabolic peak), and ``-angle(A_k(tau))`` the constant **phase rotation** ``theta`` of the survey's
   wavelet: ``d(t) ~ a [cos(theta) r(t - tau) + sin(theta) H[r](t - tau)]``. **Polarity** is the sign of
   ``cos(theta)`` (reversed when ``|theta| > 90`` degrees).
3. **Line estimate**: the correlations of up to ``line_sample_windows`` windows spread along the line are
   summed before the peak is taken (one wavelet per line: the source rarely changes along a line), so every
   window is corrected the same way; ``scope: window`` uses each window's own estimate instead.

Correction (``InputCorrection.apply``): rotate the phase by ``-theta`` (``phase: rotation``; with
``phase: polarity`` only the sign is flipped when the polarity is reversed) and advance by ``tau``, in the
frequency domain on zero-padded traces (a linear, not circular, shift). A sign-flipped copy of a line gets
``theta + 180`` degrees and therefore the same corrected input (``tests/pipeline/test_input_correction.py``).
Not corrected: the wavelet's frequency content (a survey with a 10 Hz wavelet stays 10 Hz), which the QC's
``wavelet`` source correction absorbs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pipeline.windows import ModelLayout

logger = logging.getLogger(__name__)

#: Per-window values written to the window table (``section.h5`` ``/windows``, ``qc.csv``).
CORRECTION_FIELDS = (
    "input_polarity",
    "input_delay_s",
    "input_phase_deg",
    "input_coherence",
    "input_velocity_mps",
)


@dataclass(frozen=True)
class InputCorrectionConfig:
    """Estimation and correction of the survey wavelet's polarity, delay and phase (``input_correction.*``).

    Attributes:
        enabled: estimate and correct (``--set input_correction.enabled=false`` feeds the traces as recorded;
            the estimate is then neither made nor reported).
        scope: ``"line"`` (default): one correction for the whole line from ``line_sample_windows`` windows;
            ``"window"``: each window's own estimate.
        phase: ``"rotation"`` undoes the estimated constant phase rotation (which includes a reversed
            polarity); ``"polarity"`` only flips the sign when the polarity is reversed.
        max_delay_s: largest delay searched, either sign (seconds).
        min_offset_cells, max_offset_cells: source-receiver offsets (grid cells) compared with the reference;
            offset 0 (the source's near field) is left out by default.
        trial_velocities: homogeneous media simulated for the reference (geometric between the training
            velocity bounds); the best-fitting one is reported per window.
        min_coherence: an estimate with a smaller coherence (normalised correlation, 0..1) is not applied
            (the window or line is left as recorded, with a warning).
        line_sample_windows: windows, spread along the line, that make the line estimate.
    """

    enabled: bool = True
    scope: Literal["line", "window"] = "line"
    phase: Literal["rotation", "polarity"] = "rotation"
    max_delay_s: float = 0.05
    min_offset_cells: int = 1
    max_offset_cells: int = 6
    trial_velocities: int = 24
    min_coherence: float = 0.3
    line_sample_windows: int = 16

    def __post_init__(self) -> None:
        if not self.max_delay_s > 0:
            raise ValueError(f"input_correction.max_delay_s must be positive. Received: {self.max_delay_s}")
        if not 0 <= self.min_offset_cells <= self.max_offset_cells:
            raise ValueError(
                "input_correction needs 0 <= min_offset_cells <= max_offset_cells. Received: "
                f"{self.min_offset_cells}, {self.max_offset_cells}"
            )
        if self.trial_velocities < 1 or self.line_sample_windows < 1:
            raise ValueError(
                "input_correction.trial_velocities and line_sample_windows must be at least 1. Received: "
                f"{self.trial_velocities}, {self.line_sample_windows}"
            )


@dataclass(frozen=True)
class InputCorrection:
    """One estimate of the survey wavelet relative to the training wavelet, and the correction it implies.

    Attributes:
        delay_s: the survey's arrivals are this much later than the training wavelet's (seconds).
        phase_deg: constant phase rotation ``theta`` of the survey's wavelet (degrees, -180..180; 180 = a
            reversed polarity).
        coherence: normalised correlation of the near-offset traces with the reference at the peak (0..1).
        velocity_mps: the trial near-surface velocity whose direct wave fitted best.
        applied: False when the estimate was not used (coherence too low, no signal, or turned off).
    """

    delay_s: float = 0.0
    phase_deg: float = 0.0
    coherence: float = float("nan")
    velocity_mps: float = float("nan")
    applied: bool = False

    @property
    def polarity(self) -> int:
        """+1 (as trained) or -1 (reversed)."""
        return -1 if math.cos(math.radians(self.phase_deg)) < 0 else 1

    def record(self) -> dict[str, float]:
        """The per-window values (``CORRECTION_FIELDS``)."""
        return {
            "input_polarity": float(self.polarity),
            "input_delay_s": self.delay_s,
            "input_phase_deg": self.phase_deg,
            "input_coherence": self.coherence,
            "input_velocity_mps": self.velocity_mps,
        }

    def differs_from_training(self, sample_interval_s: float, phase_tolerance_deg: float = 15.0) -> bool:
        """Whether the data look recorded with another wavelet: reversed, a sample or more late/early, or
        rotated by more than ``phase_tolerance_deg``."""
        return bool(
            self.applied
            and (
                abs(self.delay_s) >= sample_interval_s
                or abs(self.phase_deg) > phase_tolerance_deg
                or self.polarity < 0
            )
        )

    def apply(self, gathers: np.ndarray, sample_interval_s: float, phase: str = "rotation") -> np.ndarray:
        """The corrected ``(shots, time, receivers)`` gathers (float32), or the input when not applied.

        Rotates by ``-phase_deg`` (``phase="rotation"``) or flips the sign of a reversed polarity
        (``"polarity"``), and advances by ``delay_s``; the traces are zero-padded to twice their length
        first, so what moves out of the record is dropped instead of wrapping around.
        """
        if not self.applied:
            return gathers
        gathers = np.asarray(gathers)
        theta = math.radians(self.phase_deg)
        if phase == "polarity":
            theta = math.pi if self.polarity < 0 else 0.0
        elif phase != "rotation":
            raise ValueError(f"input_correction.phase must be 'rotation' or 'polarity'. Received: {phase!r}")
        num_samples = gathers.shape[1]
        length = 2 * num_samples
        frequencies = np.fft.rfftfreq(length, d=sample_interval_s)
        # Undo the rotation (multiply positive frequencies by e^{+i theta}) and the delay (e^{+2 pi i f tau}).
        operator = np.exp(1j * (theta + 2 * np.pi * frequencies * self.delay_s))
        operator[0] = math.cos(theta)  # DC stays real: the rotation of a constant is its cosine
        if length % 2 == 0:
            operator[-1] = math.cos(theta + 2 * np.pi * frequencies[-1] * self.delay_s)  # Nyquist, real
        spectrum = np.fft.rfft(np.asarray(gathers, np.float64), n=length, axis=1)
        corrected = np.fft.irfft(spectrum * operator[None, :, None], n=length, axis=1)[:, :num_samples]
        return corrected.astype(np.float32)


@dataclass
class DirectWaveReference:
    """Simulated direct waves of one shot in homogeneous media (``reference_direct_waves``).

    Attributes:
        velocities_mps: ``(trials,)``.
        traces: ``(trials, time, offsets)`` float64, the training wavelet's direct wave at each offset.
        offsets_cells: ``(offsets,)`` the signed offsets (cells) of the columns of ``traces``.
        sample_interval_s: time axis of the traces.
    """

    velocities_mps: np.ndarray
    traces: np.ndarray
    offsets_cells: np.ndarray
    sample_interval_s: float

    def column(self, offset_cells: int) -> int:
        return int(np.flatnonzero(self.offsets_cells == offset_cells)[0])


def reference_direct_waves(
    layout: ModelLayout,
    setup: Any,
    config: InputCorrectionConfig,
    bounds_mps: tuple[float, float] | None,
) -> DirectWaveReference:
    """Simulates the reference direct waves with the model's source/receiver depths and engine settings.

    Args:
        layout: the model's window (grid spacing, source and receiver depths, time axis).
        setup: ``pipeline.qc.EngineSetup`` from the bundle's engine settings (engine config and wavelet).
        config: offsets and number of trial velocities.
        bounds_mps: the training velocity range; None: 1500-4500 m/s (OpenFWI's).

    Returns:
        The reference for offsets ``-max_offset_cells .. max_offset_cells``.

    Raises:
        ValueError: the model's sources or receivers are not at a single depth row on its grid.
    """
    from data_prep.forward import simulate

    spacing = layout.grid_spacing_m
    source_rows = np.unique(np.round(layout.source_depth_m / spacing).astype(int))
    receiver_rows = np.unique(np.round(layout.receiver_depth_m / spacing).astype(int))
    if len(source_rows) != 1 or len(receiver_rows) != 1:
        raise ValueError(
            "The input correction needs the model's sources (and receivers) at one depth row; found source "
            f"rows {source_rows.tolist()} and receiver rows {receiver_rows.tolist()}."
        )
    low, high = bounds_mps if bounds_mps is not None else (1500.0, 4500.0)
    velocities = np.geomspace(low, high, config.trial_velocities) if config.trial_velocities > 1 else [low]
    reach = config.max_offset_cells
    width = 2 * reach + 1
    depth = int(max(source_rows[0], receiver_rows[0]) + reach + 2)
    geometry = dataclasses.replace(
        setup.geometry,
        grid_shape=(depth, width),
        source_cells=((int(source_rows[0]), reach),),
        receiver_cells=tuple((int(receiver_rows[0]), x) for x in range(width)),
    )
    media = np.stack([np.full((depth, width), v, np.float32) for v in velocities])
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", RuntimeWarning
        )  # dispersion at the slowest trials: shape matters little
        traces = np.asarray(simulate(media, geometry, setup.config, wavelet=setup.wavelet), np.float64)
    return DirectWaveReference(
        velocities_mps=np.asarray(velocities, np.float64),
        traces=traces[:, 0],  # (trials, time, offsets): the one shot
        offsets_cells=np.arange(-reach, reach + 1),
        sample_interval_s=layout.sample_interval_s,
    )


@dataclass
class Correlation:
    """Summed cross-correlations of near-offset traces with the reference (addable across windows).

    Attributes:
        values: ``(trials, lags)`` complex: the analytic signal of ``sum d(t + lag) r_k(t)`` (real part: the
            correlation, imaginary part: its Hilbert transform), lags ``-max_lag .. max_lag`` samples.
        data_energy: ``sum d^2`` of the traces used.
        reference_energy: ``(trials,)`` ``sum r_k^2`` of the reference traces used.
        num_traces: traces used.
    """

    values: np.ndarray
    data_energy: float
    reference_energy: np.ndarray
    num_traces: int

    def __add__(self, other: Correlation) -> Correlation:
        return Correlation(
            self.values + other.values,
            self.data_energy + other.data_energy,
            self.reference_energy + other.reference_energy,
            self.num_traces + other.num_traces,
        )


def correlate_window(
    gathers: np.ndarray,
    layout: ModelLayout,
    reference: DirectWaveReference,
    config: InputCorrectionConfig,
    shot_offset_m: Sequence[float] | None = None,
) -> Correlation:
    """The cross-correlations of one window's near-offset traces with the reference.

    Args:
        gathers: ``(shots, time, receivers)`` on the model's geometry, any amplitude units.
        layout: the model's window.
        reference: from ``reference_direct_waves``.
        config: offsets and the delay range.
        shot_offset_m: ``(shots,)`` survey shot position minus the model's (``WindowPlan.shot_offset_m``):
            the traces are compared at the offsets they were recorded at.
    """
    spacing = layout.grid_spacing_m
    num_samples = gathers.shape[1]
    max_lag = int(round(config.max_delay_s / layout.sample_interval_s))
    shots = np.zeros(layout.num_shots) if shot_offset_m is None else np.asarray(shot_offset_m, np.float64)
    data, references = [], []
    for shot in range(layout.num_shots):
        offsets = np.round((layout.receiver_x_m - layout.source_x_m[shot] - shots[shot]) / spacing).astype(
            int
        )
        off_grid = np.abs(layout.receiver_x_m - layout.source_x_m[shot] - shots[shot] - offsets * spacing)
        use = (
            (np.abs(offsets) >= config.min_offset_cells)
            & (np.abs(offsets) <= config.max_offset_cells)
            & (off_grid <= 0.25 * spacing)
        )
        for receiver in np.flatnonzero(use):
            data.append(gathers[shot, :, receiver])
            references.append(reference.traces[:, :num_samples, reference.column(int(offsets[receiver]))])
    trials = reference.traces.shape[0]
    if not data:
        return Correlation(np.zeros((trials, 2 * max_lag + 1), complex), 0.0, np.zeros(trials), 0)
    data = np.asarray(data, np.float64)  # (traces, time)
    references = np.asarray(references, np.float64)  # (traces, trials, time)
    length = 2 * num_samples
    spectrum_d = np.fft.rfft(data, n=length, axis=-1)
    spectrum_r = np.fft.rfft(references, n=length, axis=-1)
    cross_spectrum = np.sum(spectrum_d[:, None, :] * np.conj(spectrum_r), axis=0)  # (trials, bins)
    # The analytic signal of the whole correlation (all 2N lags): a Hilbert transform of only the searched
    # lags would be distorted near their ends and pull a peak there towards the edge.
    analytic_spectrum = 2.0 * cross_spectrum
    analytic_spectrum[:, 0] = cross_spectrum[:, 0]
    analytic_spectrum[:, -1] = cross_spectrum[:, -1]
    full = np.fft.ifft(np.concatenate([analytic_spectrum, np.zeros_like(analytic_spectrum[:, 1:-1])], axis=1))
    lags = np.arange(-max_lag, max_lag + 1)
    return Correlation(
        values=full[:, lags % length],
        data_energy=float(np.sum(data * data)),
        reference_energy=np.sum(references * references, axis=(0, 2)),
        num_traces=len(data),
    )


def estimate_from(
    correlation: Correlation, reference: DirectWaveReference, config: InputCorrectionConfig
) -> InputCorrection:
    """The delay, phase and coherence at the largest normalised envelope of ``correlation``."""
    if correlation.num_traces == 0 or correlation.data_energy <= 0:
        return InputCorrection()
    analytic = correlation.values  # (trials, lags)
    norm = np.sqrt(correlation.data_energy * np.maximum(correlation.reference_energy, 1e-300))
    envelope = np.abs(analytic) / norm[:, None]
    trial, lag_index = np.unravel_index(int(np.argmax(envelope)), envelope.shape)
    max_lag = (correlation.values.shape[1] - 1) // 2
    fraction = 0.0
    if 0 < lag_index < envelope.shape[1] - 1:  # parabolic interpolation of the peak: sub-sample delay
        left, centre, right = envelope[trial, lag_index - 1 : lag_index + 2]
        curvature = left - 2 * centre + right
        if curvature < 0:
            fraction = float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
    delay_s = (lag_index - max_lag + fraction) * reference.sample_interval_s
    # The phase at the (fractional) peak: interpolate the analytic signal's angle linearly between samples.
    neighbour = min(max(lag_index + (1 if fraction > 0 else -1), 0), envelope.shape[1] - 1)
    value = analytic[trial, lag_index] * (1 - abs(fraction)) + analytic[trial, neighbour] * abs(fraction)
    phase_deg = float(-np.degrees(np.angle(value)))
    coherence = float(min(1.0, envelope[trial, lag_index]))
    return InputCorrection(
        delay_s=float(delay_s),
        phase_deg=float((phase_deg + 180.0) % 360.0 - 180.0),
        coherence=coherence,
        velocity_mps=float(reference.velocities_mps[trial]),
        applied=coherence >= config.min_coherence,
    )


def summary(
    line_estimate: InputCorrection | None,
    window_estimates: Sequence[InputCorrection],
    config: InputCorrectionConfig,
    sample_interval_s: float,
) -> dict[str, Any]:
    """The line-level report (section ``qc`` attributes, ``summary.json``, the printed summary)."""
    if not config.enabled:
        return {"enabled": False}
    delays = np.asarray([e.delay_s for e in window_estimates if np.isfinite(e.coherence)])
    polarities = np.asarray([e.polarity for e in window_estimates if np.isfinite(e.coherence)])
    result: dict[str, Any] = {
        "enabled": True,
        "scope": config.scope,
        "phase": config.phase,
        "windows_reversed": int(np.sum(polarities < 0)),
        "windows_estimated": int(len(polarities)),
        "windows_applied": int(sum(e.applied for e in window_estimates)),
        "window_delay_s_median": float(np.median(delays)) if delays.size else None,
        "window_delay_s_spread": float(np.ptp(delays)) if delays.size else None,
    }
    if line_estimate is not None:
        result["line"] = {
            **line_estimate.record(),
            "applied": line_estimate.applied,
            "differs_from_training": line_estimate.differs_from_training(sample_interval_s),
        }
    return result


def describe(estimate: InputCorrection) -> str:
    """One line for the log and the printed summary."""
    if not np.isfinite(estimate.coherence):
        return "no estimate (no near-offset signal)"
    polarity = "reversed" if estimate.polarity < 0 else "as trained"
    state = "applied" if estimate.applied else "NOT applied (coherence below input_correction.min_coherence)"
    return (
        f"polarity {polarity}, delay {estimate.delay_s * 1e3:+.1f} ms, phase {estimate.phase_deg:+.0f} deg, "
        f"coherence {estimate.coherence:.2f} (near-surface velocity ~{estimate.velocity_mps:.0f} m/s): {state}"
    )


__all__ = [
    "CORRECTION_FIELDS",
    "Correlation",
    "DirectWaveReference",
    "InputCorrection",
    "InputCorrectionConfig",
    "correlate_window",
    "describe",
    "estimate_from",
    "reference_direct_waves",
    "summary",
]
