"""Survey amplitude calibration: bring a survey's arbitrary amplitude units to the training data's level.

Pipeline position: ``pipeline.infer`` cuts windows out of a survey line (``pipeline.windows``) and multiplies
each window's gathers by a calibration factor before the model bundle normalises them
(``pipeline.bundle.ModelBundle.predict``). Networks trained on synthetic data see amplitudes in the engine's
units; a field survey's units are arbitrary (gain, instrument response, source strength), and the
``sign(x) log1p(|x|)`` normalisation is not scale invariant, so the scale matters.

Method (``CalibrationConfig``): match a robust amplitude statistic of the survey to the same statistic of
the training split, which every bundle records (``pipeline.bundle.amplitude_statistics``, raw units):

* ``method="rms"`` (default): statistic = the RMS of a window's gathers; target = the median over training
  windows of their RMS (``rms_median``). Factor = ``target / rms(window)``.
* ``method="percentile"``: statistic = the ``percentile``-th percentile of ``|x|`` (99 by default); target
  = the training split's 99th percentile of ``|x|`` (``abs_p99``). Less sensitive to a few strong traces
  than the RMS is to the direct wave, more sensitive to noise.
* ``method="none"``: factor 1 (the survey is already in training units, e.g. synthesised by this project).

``scope="window"`` computes a factor per window (amplitude variations along the line are removed);
``scope="line"`` applies one factor to the whole line: the median of the window statistics over up to
``line_sample_windows`` windows spread evenly along the line (relative amplitudes along the line are kept).
``target`` overrides the bundle's statistic. Every window's statistic and factor are reported in the
section's QC table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from core.errors import UserError

#: Training statistic (key of the bundle's ``amplitude_statistics``) matched by each method.
TARGET_KEYS = {"rms": "rms_median", "percentile": "abs_p99"}


@dataclass(frozen=True)
class CalibrationConfig:
    """How survey amplitudes are matched to the training data (see the module docstring).

    Attributes:
        method: ``"rms"``, ``"percentile"`` or ``"none"``.
        scope: ``"window"`` (a factor per window) or ``"line"`` (one factor for the line).
        percentile: for ``method="percentile"``: the percentile of ``|x|``.
        target: the training statistic to match, raw units; None takes it from the model bundle.
        line_sample_windows: for ``scope="line"``: at most this many windows, evenly spread, estimate it.
    """

    method: Literal["rms", "percentile", "none"] = "rms"
    scope: Literal["window", "line"] = "window"
    percentile: float = 99.0
    target: float | None = None
    line_sample_windows: int = 64

    def __post_init__(self) -> None:
        if not 0 < self.percentile <= 100:
            raise ValueError(f"calibration.percentile must lie in (0, 100]. Received: {self.percentile}")
        if self.target is not None and not self.target > 0:
            raise ValueError(f"calibration.target must be positive. Received: {self.target}")
        if self.line_sample_windows < 1:
            raise ValueError(
                f"calibration.line_sample_windows must be >= 1. Received: {self.line_sample_windows}"
            )


def amplitude_statistic(gathers: np.ndarray, config: CalibrationConfig) -> float:
    """The survey statistic of one window's ``(shots, time, receivers)`` gathers (1.0 for ``"none"``)."""
    if config.method == "none":
        return 1.0
    values = np.asarray(gathers, dtype=np.float64).ravel()
    if config.method == "rms":
        return float(np.sqrt(np.mean(np.square(values))))
    if config.method == "percentile":
        return float(np.percentile(np.abs(values), config.percentile))
    raise ValueError(f"Unknown calibration method {config.method!r}.")


def training_target(config: CalibrationConfig, amplitude_statistics: Mapping[str, Any] | None) -> float:
    """The training statistic the survey is matched to (1.0 for ``"none"``).

    Raises:
        UserError: the bundle records no amplitude statistics and no ``calibration.target`` is given.
    """
    if config.method == "none":
        return 1.0
    if config.target is not None:
        return float(config.target)
    key = TARGET_KEYS[config.method]
    value = (amplitude_statistics or {}).get(key)
    if value is None or not np.isfinite(value) or not value > 0:
        raise UserError(
            f"The model bundle records no training amplitude statistic {key!r} (amplitude_statistics = "
            f"{dict(amplitude_statistics or {})}), so survey amplitudes cannot be calibrated with method "
            f"{config.method!r}. Set --set calibration.target=<value in training units>, or "
            "--set calibration.method=none if the survey is already in the training data's units."
        )
    return float(value)


def calibration_factor(statistic: float, target: float) -> float:
    """``target / statistic``; NaN for a window without signal (statistic 0 or not finite)."""
    if not np.isfinite(statistic) or statistic <= 0:
        return float("nan")
    return float(target / statistic)


def line_sample(num_windows: int, config: CalibrationConfig) -> np.ndarray:
    """Indices of the windows that estimate a line-wide factor (evenly spread, deterministic)."""
    count = min(num_windows, config.line_sample_windows)
    return np.unique(np.round(np.linspace(0, num_windows - 1, count)).astype(np.int64))


__all__ = [
    "TARGET_KEYS",
    "CalibrationConfig",
    "amplitude_statistic",
    "calibration_factor",
    "line_sample",
    "training_target",
]
