"""The pure function: full-waveform inversion of one window (or line) from the network's model (``refine``).

Part of ``pipeline.refine``. ``refine`` checks its inputs, moves the start into the bounds, builds the
objective (``pipeline.refine.objective``), runs the frequency schedule stage by stage with the chosen
optimiser (``pipeline.refine.optimizers``) and the stage's structure-keeping smoothing
(``pipeline.refine.structure``), and returns the best iterate by full-band data misfit, with a warning
when the run should be looked at.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np

from data_prep.geometry import AcquisitionGeometry
from pipeline.qc import velocity_errors
from pipeline.refine.config import RefineConfig, RefineResult
from pipeline.refine.engine import refinement_engine
from pipeline.refine.objective import _BudgetExhausted, _GradientNotFinite, _Objective
from pipeline.refine.optimizers import _adam, _lbfgs
from pipeline.refine.structure import (
    _update_filter,
    stage_smoothing_cells,
    structure_edges,
    structure_regions,
)

logger = logging.getLogger(__name__)


def refine(
    observed: np.ndarray,
    initial_velocity_mps: np.ndarray,
    geometry: AcquisitionGeometry,
    engine: Any = None,
    config: RefineConfig = RefineConfig(iterations=10),
    *,
    wavelet: np.ndarray | None = None,
    bounds_mps: tuple[float, float] | None = None,
    true_velocity_mps: np.ndarray | None = None,
    source_correction: str = "scale",
    edges: np.ndarray | None = None,
    trace_mask: np.ndarray | None = None,
    wavelet_delay_s: float = 0.0,
) -> RefineResult:
    """Full-waveform inversion of one window (or line) from a starting model (see ``pipeline.refine``).

    Args:
        observed: ``(shots, time, receivers)`` gathers on ``geometry`` (survey units; the source correction
            absorbs the amplitude and, with ``"estimate"``/``"wavelet"``, the wavelet, delay and polarity).
        initial_velocity_mps: ``(depth, x)`` starting model in m/s (the network's prediction), moved into
            the bounds first.
        geometry: the window's acquisition (``data_prep.geometry.AcquisitionGeometry``).
        engine: ``data_prep.forward.EngineConfig`` (None: the engine's defaults), e.g. from
            ``pipeline.qc.engine_setup(layout, bundle.engine_settings).config``.
        config: iterations, schedule, regularisation, source correction.
        wavelet: the engine's source wavelet (None: its default Ricker).
        bounds_mps: ``(min, max)`` m/s; ``config.bounds_mps`` wins when set. One of them is required.
        true_velocity_mps: ``(depth, x)`` the true model of a synthetic survey: velocity errors before and after.
        source_correction: the QC's ``"scale"``, ``"wavelet"`` or ``"none"``, used when
            ``config.source_correction`` is ``"qc"``.
        edges: ``(depth, x)`` edge map in [0, 1] (the network's edge head) for ``structure="edges"``; None:
            the start model's own contrasts.
        trace_mask: ``(shots, receivers)`` 1 where a trace was recorded (``refine_line``); None: all.
        wavelet_delay_s: the data's delay relative to the engine's wavelet, when known (``pipeline.infer``:
            the input correction's estimate from the direct wave): the estimated wavelet's lags are centred
            on it (``config.wavelet_max_lag_s`` either side).

    Returns:
        A ``RefineResult``; ``velocity_mps`` never fits the data worse than the bounded start.

    Raises:
        ValueError: shapes that do not match the geometry, missing bounds, a backend without gradients.
    """
    started = time.perf_counter()
    observed, initial, bounds = _checked_inputs(
        observed, initial_velocity_mps, geometry, config, bounds_mps, edges, trace_mask
    )
    engine = refinement_engine(engine, geometry.num_samples, config, geometry)
    method = source_correction if config.source_correction == "qc" else config.source_correction
    truth = None if true_velocity_mps is None else np.asarray(true_velocity_mps, np.float64)

    objective = _window_objective(
        observed, geometry, engine, wavelet, bounds, method, config, truth, wavelet_delay_s, trace_mask
    )
    return _solve(objective, initial, geometry, config, edges, truth, started)


def _window_objective(
    observed: np.ndarray,
    geometry: AcquisitionGeometry,
    engine: Any,
    wavelet: np.ndarray | None,
    bounds: tuple[float, float],
    method: str,
    config: RefineConfig,
    truth: np.ndarray | None = None,
    wavelet_delay_s: float = 0.0,
    trace_mask: np.ndarray | None = None,
) -> _Objective:
    """The ``_Objective`` of one window's (or line's) gathers with ``config``'s source correction settings."""
    return _Objective(
        observed,
        geometry,
        engine,
        wavelet,
        bounds,
        method,
        config.wavelet_damping,
        truth,
        config.iterations,
        max_lag_s=config.wavelet_max_lag_s,
        centre_lag_s=wavelet_delay_s,
        scope=config.wavelet_scope,
        trace_mask=trace_mask,
        shots_per_call=config.shots_per_call,
    )


def _solve(
    objective: Any,
    initial: np.ndarray,
    geometry: AcquisitionGeometry,
    config: RefineConfig,
    edges: np.ndarray | None,
    truth: np.ndarray | None,
    started: float,
) -> RefineResult:
    """Runs the schedule on ``objective`` (an ``_Objective``, or a ``_LineObjective`` for ``refine_line``) from
    ``initial`` moved into the bounds, and returns the best iterate with its warning (``refine``'s result)."""
    bounds = objective.bounds
    start = np.clip(initial, *bounds)
    clipped = int(np.sum(start != initial))
    objective.start = objective.anchor = start
    objective.prior_weight = config.prior_weight
    structure = None
    if config.structure == "edges":
        structure = np.asarray(edges, np.float64) if edges is not None else structure_edges(start)
    velocity, stage_records, stopped = _run_schedule(objective, start, geometry, config, structure)

    misfit_before = objective.history[0]["misfit"]
    misfit_last = objective.history[-1]["misfit"]
    best_misfit, best_evaluation, best_velocity, best_scale, best_polarity, best_lag = objective.best
    change = float(np.mean(np.abs(best_velocity - start)))
    warning = _refinement_warning(
        config.iterations, misfit_before, misfit_last, best_misfit, best_evaluation, change, stopped
    )
    if warning:
        logger.warning("Refinement: %s", warning)
    result = RefineResult(
        velocity_mps=best_velocity.astype(np.float32),
        last_velocity_mps=np.asarray(velocity, np.float32),
        misfit_before=misfit_before,
        misfit_after=best_misfit,
        misfit_last=misfit_last,
        best_iteration=best_evaluation,
        gradient_evaluations=objective.evaluations,
        history=objective.history,
        clipped_cells=clipped,
        bounds_mps=bounds,
        source_scale=best_scale,
        wavelet_polarity=best_polarity,
        wavelet_lag_s=best_lag,
        stages=stage_records,
        warning=warning,
    )
    if truth is not None:
        result.velocity_errors_before = velocity_errors(start, truth)
        result.velocity_errors_after = velocity_errors(best_velocity, truth)
    result.time_s = time.perf_counter() - started
    return result


def _checked_inputs(
    observed: np.ndarray,
    initial_velocity_mps: np.ndarray,
    geometry: AcquisitionGeometry,
    config: RefineConfig,
    bounds_mps: tuple[float, float] | None,
    edges: np.ndarray | None,
    trace_mask: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """``refine``'s inputs checked against the geometry: ``(observed, initial velocity)`` as float64 arrays
    and the velocity bounds (``config.bounds_mps`` when set, else ``bounds_mps``).

    Raises:
        ValueError: what does not match the geometry (named, with what was received), missing bounds.
    """
    observed = np.asarray(observed, np.float64)
    expected = (geometry.num_sources, geometry.num_samples, geometry.num_receivers)
    if observed.shape != expected:
        raise ValueError(
            f"observed must be (shots, time, receivers) = {expected} for this geometry. Received: {observed.shape}"
        )
    initial = np.asarray(initial_velocity_mps, np.float64)
    if initial.shape != tuple(geometry.grid_shape):
        raise ValueError(
            f"initial_velocity_mps must be (depth, x) = {tuple(geometry.grid_shape)}. Received: {initial.shape}"
        )
    if not np.all(np.isfinite(initial)):
        raise ValueError("initial_velocity_mps holds NaN or infinite values: give a complete starting model.")
    if edges is not None and np.shape(edges) != tuple(geometry.grid_shape):
        raise ValueError(
            f"edges must be (depth, x) = {tuple(geometry.grid_shape)}, an edge map in [0, 1] (the network's edge "
            f"output), or None. Received: {np.shape(edges)}"
        )
    if trace_mask is not None and np.shape(trace_mask) != (geometry.num_sources, geometry.num_receivers):
        raise ValueError(
            f"trace_mask must be (shots, receivers) = {(geometry.num_sources, geometry.num_receivers)}. "
            f"Received: {np.shape(trace_mask)}"
        )
    bounds = config.bounds_mps or bounds_mps
    if bounds is None:
        raise ValueError(
            "Refinement needs velocity bounds: pass bounds_mps (e.g. the training data's velocity range) or set "
            "refine.bounds_mps."
        )
    return observed, initial, (float(bounds[0]), float(bounds[1]))


def _run_schedule(
    objective: Any,
    start: np.ndarray,
    geometry: AcquisitionGeometry,
    config: RefineConfig,
    structure: np.ndarray | None,
) -> tuple[np.ndarray, list[dict[str, Any]], str]:
    """Runs the frequency schedule (``config.stages``) from ``start``: per stage its band, its smoothing
    (``structure``: the edge map the smoothing does not cross, or None) and the optimiser; the iterations a
    stage leaves unused go to the next. The last iterate is then evaluated in the full band, so that every
    model is in ``objective.history`` and the best one in ``objective.best``.

    Returns:
        ``(last iterate, per stage {cutoff_hz, iterations, smoothing_cells}, why the iterations stopped early
        or "")``.
    """
    optimizer = _adam if config.optimizer == "adam" else _lbfgs
    velocity = start
    duration = geometry.num_samples * geometry.sample_interval_s
    regional = config.region_iterations
    stages = dataclasses.replace(config, iterations=config.iterations - regional, region_fraction=0.0).stages(
        geometry.peak_frequency_hz, duration
    )
    if regional:
        # A first stage in the schedule's first band (that of all the iterations): one velocity per region.
        first = config.stages(geometry.peak_frequency_hz, duration)[0][0]
        stages = [(first, regional, "regions"), *stages]
    stage_records: list[dict[str, Any]] = []
    if config.iterations == 0:  # no iterations: evaluate the start only
        objective.set_band(0, None)
        objective.evaluate(start, gradient=False)
    stopped = ""
    carried = 0
    for stage, (cutoff, count, *kind) in enumerate(stages):
        count += carried
        if count <= 0:
            continue
        objective.set_band(stage, cutoff)
        sigma = stage_smoothing_cells(config, cutoff, start, geometry)
        regions = None
        if kind:
            regions = structure_regions(start)
            sigma = 0.0
        condition = _update_filter(start.shape, geometry, config, sigma, structure, regions)
        used_before = objective.evaluations
        # The region stage has few unknowns, each constrained by many traces: its own prior (none by default)
        # holds it back; the stages after it are pulled towards its result instead of the start.
        objective.prior_weight = config.region_prior_weight if regions is not None else config.prior_weight
        try:
            objective.budget = used_before + count
            velocity = optimizer(objective, velocity, count, config, condition)
        except _BudgetExhausted:
            pass
        except _GradientNotFinite as error:
            stopped = str(error)
            break
        if regions is not None and objective.best is not None:
            objective.anchor = objective.best[2]
        used = objective.evaluations - used_before
        carried = count - used
        record = {"cutoff_hz": cutoff, "iterations": used, "smoothing_cells": sigma}
        if regions is not None:
            record["regions"] = int(regions.max()) + 1
        stage_records.append(record)
    if config.iterations:
        # The last update has not been evaluated yet: one forward pass, full band.
        objective.set_band(len(stages) - 1, None)
        objective.evaluate(velocity, gradient=False)
    return velocity, stage_records, stopped


def _refinement_warning(
    iterations: int,
    misfit_before: float,
    misfit_last: float,
    best_misfit: float,
    best_evaluation: int,
    change_mps: float,
    stopped: str,
) -> str:
    """Why a refinement's result should be looked at (``RefineResult.warning``), or "": no iterate fitted the
    data better than the start, the last one fits worse, or the model moved a lot (mean |change| ``change_mps``
    of the best iterate) for little gain in fit; ``stopped``: why the iterations stopped early."""
    warning = ""
    if iterations and not best_misfit < misfit_before:
        warning = (
            f"refinement did not reduce the data misfit ({misfit_before:.4g} at the start, {misfit_last:.4g} "
            "after the last iteration): the starting model is returned."
        )
    elif misfit_last > misfit_before:
        warning = (
            f"the last iterate fits the data worse than the start (misfit {misfit_last:.4g} > {misfit_before:.4g}): "
            f"the best iterate ({best_evaluation}, misfit {best_misfit:.4g}) is returned."
        )
    elif (
        iterations
        and change_mps > WEAK_FIT_CHANGE_MPS
        and (misfit_before - best_misfit) < (WEAK_FIT_RELATIVE_DECREASE * misfit_before)
    ):
        warning = (
            f"the model changed by {change_mps:.0f} m/s on average while the data misfit fell only "
            f"{100 * (misfit_before - best_misfit) / misfit_before:.1f} % ({misfit_before:.4g} -> {best_misfit:.4g}): "
            "the change is weakly constrained by the data; compare with the network's section."
        )
    if stopped:
        warning = f"{stopped}; {warning}" if warning else f"{stopped}; the best model so far is returned."
    return warning


#: ``refine`` warns when the model moved by more than this (mean |change|, m/s) ...
WEAK_FIT_CHANGE_MPS = 30.0
#: ... while the data misfit fell by less than this fraction.
WEAK_FIT_RELATIVE_DECREASE = 0.05
