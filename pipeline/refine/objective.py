"""The objective of one window (or line): band-limited misfit after the source correction, prior, gradient.

Part of ``pipeline.refine``. ``_Objective.evaluate`` simulates a model (``pipeline.refine.engine``),
low-passes data and synthetics to the stage's band (``pipeline.refine.frequency``), re-estimates the source
correction by least squares at every evaluation (the matching filter of ``pipeline.wavelet_estimation``, or
the physics QC's ``match_source``: variable projection), adds the prior's pull towards the start, and turns
the residual into the adjoint source of one reverse pass through the engine. It records every evaluated
model's full-band misfit and keeps the best model seen, and counts the gradient evaluations against the
budget (``_BudgetExhausted``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from data_prep.geometry import AcquisitionGeometry
from pipeline.qc import data_misfit, match_source, velocity_errors
from pipeline.refine.engine import simulate_once, simulate_with_pullback
from pipeline.refine.frequency import band_limit, lowpass_response
from pipeline.wavelet_estimation import estimate_matching_filter

#: The prior's velocity scale: a uniform departure of this size from the start costs ``prior_weight / 2``.
PRIOR_SCALE_MPS = 100.0


class _Objective:
    """Misfit and gradient of one window (or line); remembers the best model seen (by full-band misfit)."""

    def __init__(
        self,
        observed,
        geometry,
        engine,
        wavelet,
        bounds,
        method,
        damping,
        truth,
        budget,
        *,
        max_lag_s: float = 0.1,
        centre_lag_s: float = 0.0,
        scope: str = "window",
        trace_mask: np.ndarray | None = None,
        shots_per_call: int | None = None,
    ) -> None:
        self.mask = None if trace_mask is None else np.asarray(trace_mask, np.float64)[:, None, :]
        self.observed = self._masked(np.asarray(observed, np.float64))
        self.geometry, self.engine, self.wavelet = geometry, engine, wavelet
        self.bounds = bounds
        self.method, self.damping = method, damping
        self.max_lag = int(round(max_lag_s / geometry.sample_interval_s))
        self.centre_lag = int(round(centre_lag_s / geometry.sample_interval_s))
        self.scope = scope
        self.shots_per_call = shots_per_call
        self.reference_wavelet = _reference_wavelet(geometry, engine, wavelet)
        self.truth = truth
        self.budget = budget
        self.evaluations = 0
        self.history: list[dict[str, Any]] = []
        # (misfit, evaluation, model, scale, polarity, lag)
        self.best: tuple[float, int, np.ndarray, float, float, float] | None = None
        self.stage = 0
        self.cutoff_hz: float | None = None
        self.response: np.ndarray | None = None
        self.band_observed = self.observed
        self.band_norm_squared = float(np.sum(self.observed**2))
        self.start: np.ndarray | None = None
        #: The prior's centre: the start, or the region stage's result (``pipeline.refine.inversion``).
        self.anchor: np.ndarray | None = None
        self.prior_weight = 0.0
        self.data_normaliser = 1.0

    def _masked(self, gathers: np.ndarray) -> np.ndarray:
        return gathers if self.mask is None else gathers * self.mask

    def set_band(self, stage: int, cutoff_hz: float | None) -> None:
        self.stage, self.cutoff_hz = stage, cutoff_hz
        self.response = lowpass_response(
            self.geometry.num_samples, self.geometry.sample_interval_s, cutoff_hz
        )
        self.band_observed = band_limit(self.observed, self.response)
        self.band_norm_squared = float(np.sum(self.band_observed**2))
        self.data_normaliser = 1.0

    def match(self, observed: np.ndarray, simulated: np.ndarray):
        """The source correction (an object with ``apply``, ``adjoint``, ``scale``/``gain``)."""
        if self.method == "estimate":
            return estimate_matching_filter(
                observed,
                simulated,
                self.max_lag,
                self.damping,
                self.scope,
                self.geometry.sample_interval_s,
                self.reference_wavelet,
                self.centre_lag,
            )
        return match_source(observed, simulated, self.method, self.damping)

    def full_band(self, simulated: np.ndarray) -> tuple[float, float, float, float]:
        match = self.match(self.observed, simulated)
        misfit = data_misfit(self.observed, match.apply(simulated))
        if self.method == "estimate":
            return misfit, match.gain * match.polarity, match.polarity, match.lag_s
        return misfit, match.scale, float("nan"), float("nan")

    def evaluate(self, velocity: np.ndarray, gradient: bool = True) -> tuple[float, np.ndarray | None]:
        """``(J, dJ/dv)`` in the current band; records the model's full-band misfit."""
        if gradient:
            if self.evaluations >= self.budget:
                raise _BudgetExhausted
            simulated, pullback = simulate_with_pullback(
                velocity, self.geometry, self.engine, self.wavelet, self.bounds, self.shots_per_call
            )
            self.evaluations += 1
        else:
            simulated = simulate_once(
                velocity, self.geometry, self.engine, self.wavelet, self.bounds, self.shots_per_call
            )
        simulated = self._masked(simulated)
        band_simulated = band_limit(simulated, self.response)
        match = self.match(self.band_observed, band_simulated)
        residual = self._masked(match.apply(band_simulated)) - self.band_observed
        norm = (self.band_norm_squared if self.band_norm_squared > 0 else 1.0) * self.data_normaliser
        value = 0.5 * float(np.sum(residual**2)) / norm
        prior_value = _record(self, velocity, value, *self.full_band(simulated))
        if not gradient:
            return value + prior_value, None
        adjoint_source = band_limit(self._masked(match.adjoint(residual)), self.response) / norm
        data_gradient = pullback(adjoint_source)
        if not np.all(np.isfinite(data_gradient)):
            raise _GradientNotFinite(
                "the engine's gradient holds NaN or infinite values (an unstable simulation?): refinement stopped"
            )
        return value + prior_value, data_gradient

    def prior_gradient(self, velocity: np.ndarray) -> np.ndarray:
        if not (self.prior_weight > 0 and self.anchor is not None):
            return np.zeros_like(velocity)
        return self.prior_weight * (velocity - self.anchor) / (PRIOR_SCALE_MPS**2 * velocity.size)


class _LineObjective:
    """The objective of one model of a whole line whose windows are each simulated over their own columns
    (``refine_line``): the windows' band-limited squared residuals summed over their summed data, one gradient
    scattered back onto the line, the best line model by the line's full-band misfit. The cost of an
    evaluation is that of the windows (each shot over its window, not over the line), the model has no seams.

    Has ``_Objective``'s interface for the schedule and the optimisers; each window's ``_Objective`` (``parts``)
    keeps its own source correction and has no prior or budget of its own.
    """

    def __init__(self, parts, column_starts, shape, bounds, truth, budget) -> None:
        self.parts = list(parts)
        self.starts = [int(c) for c in column_starts]
        self.width = int(self.parts[0].geometry.grid_shape[1])
        self.shape = tuple(shape)
        self.bounds, self.truth, self.budget = bounds, truth, budget
        for part in self.parts:
            part.budget = math.inf  # the line counts its evaluations
            part.prior_weight, part.anchor, part.start = 0.0, None, None
        self.full_norms = np.asarray([float(np.sum(part.observed**2)) for part in self.parts])
        self.band_norms = self.full_norms
        self.evaluations = 0
        self.history: list[dict[str, Any]] = []
        self.best: tuple[float, int, np.ndarray, float, float, float] | None = None
        self.stage = 0
        self.cutoff_hz: float | None = None
        self.start: np.ndarray | None = None
        self.anchor: np.ndarray | None = None
        self.prior_weight = 0.0
        self.data_normaliser = 1.0

    def set_band(self, stage: int, cutoff_hz: float | None) -> None:
        self.stage, self.cutoff_hz = stage, cutoff_hz
        for part in self.parts:
            part.set_band(stage, cutoff_hz)
        self.band_norms = np.asarray([part.band_norm_squared for part in self.parts])
        self.data_normaliser = 1.0

    def evaluate(self, velocity: np.ndarray, gradient: bool = True) -> tuple[float, np.ndarray | None]:
        """``(J, dJ/dv)`` of the line in the current band; records the line's full-band misfit."""
        if gradient and self.evaluations >= self.budget:
            raise _BudgetExhausted
        total, squared_misfit = 0.0, 0.0
        line_gradient = np.zeros(self.shape) if gradient else None
        entries = []
        for part, first, norm, full in zip(
            self.parts, self.starts, self.band_norms, self.full_norms, strict=True
        ):
            columns = slice(first, first + self.width)
            # A part's value is 1/2 ||r||^2 / ||d||^2 in its band (no prior, normaliser 1): weighted by its
            # ||d||^2, the windows add up to the line's 1/2 sum ||r||^2.
            value, part_gradient = part.evaluate(velocity[:, columns], gradient)
            total += value * norm
            if gradient:
                line_gradient[:, columns] += part_gradient * norm
            entries.append(part.history[-1])
            squared_misfit += entries[-1]["misfit"] ** 2 * full
        if gradient:
            self.evaluations += 1
        normaliser = max(float(np.sum(self.band_norms)), 1e-300) * self.data_normaliser
        value = total / normaliser
        misfit = math.sqrt(squared_misfit / max(float(np.sum(self.full_norms)), 1e-300))
        scale, polarity, lag = (
            float(np.median([entry[key] for entry in entries]))
            for key in ("source_scale", "polarity", "lag_s")
        )
        prior_value = _record(self, velocity, value, misfit, scale, polarity, lag)
        if not gradient:
            return value + prior_value, None
        return value + prior_value, line_gradient / normaliser

    def prior_gradient(self, velocity: np.ndarray) -> np.ndarray:
        return _Objective.prior_gradient(self, velocity)


def _record(objective, velocity, value, misfit, scale, polarity, lag) -> float:
    """Appends an evaluated model's entry to ``objective.history`` (band and full-band misfit, source
    correction, change from the start, velocity error with a truth), keeps it as ``objective.best`` when it
    fits best, and returns the prior's value at ``velocity``."""
    prior_value = 0.0
    if objective.prior_weight > 0 and objective.anchor is not None:
        departure = (velocity - objective.anchor) / PRIOR_SCALE_MPS
        prior_value = 0.5 * objective.prior_weight * float(np.mean(departure**2))
    start = objective.start
    entry = {
        "evaluation": len(objective.history),
        "stage": objective.stage,
        "cutoff_hz": objective.cutoff_hz,
        "band_misfit": math.sqrt(2 * value * objective.data_normaliser),
        "misfit": misfit,
        "source_scale": scale,
        "polarity": polarity,
        "lag_s": lag,
        "change_mps": float(np.mean(np.abs(velocity - start))) if start is not None else 0.0,
    }
    if objective.truth is not None:
        entry["velocity_mae_mps"] = velocity_errors(velocity, objective.truth)["velocity_mae_mps"]
    objective.history.append(entry)
    if objective.best is None or misfit < objective.best[0]:
        objective.best = (misfit, entry["evaluation"], np.array(velocity, np.float64), scale, polarity, lag)
    return prior_value


def _reference_wavelet(geometry: AcquisitionGeometry, engine: Any, wavelet: np.ndarray | None) -> np.ndarray:
    """The simulation's source wavelet (the first shot's when per shot): what the estimated one is compared to."""
    if wavelet is not None:
        return np.asarray(wavelet, np.float64).reshape(-1, geometry.num_samples)[0]
    from data_prep.wavelets import ricker

    delay = engine.resolved_ricker_delay_s(geometry)
    return ricker(geometry.peak_frequency_hz, geometry.num_samples, geometry.sample_interval_s, delay_s=delay)


class _BudgetExhausted(Exception):
    """The optimiser asked for more gradient evaluations than ``RefineConfig.iterations``."""


class _GradientNotFinite(Exception):
    """The engine returned a NaN or infinite gradient: the iterations stop, the best model so far is kept."""
