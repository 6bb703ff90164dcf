"""The updates of a stage: L-BFGS-B with box bounds (the default) and projected Adam.

Part of ``pipeline.refine``. Each runs one stage of the schedule on an ``_Objective`` whose gradients it
preconditions with the stage's ``condition`` (``pipeline.refine.structure``), within ``iterations`` gradient
evaluations (line-search trials included), and returns its last iterate.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.refine.config import RefineConfig
from pipeline.refine.objective import PRIOR_SCALE_MPS, _BudgetExhausted, _Objective


def _adam(objective: _Objective, velocity: np.ndarray, iterations: int, config: RefineConfig, condition):
    """Projected Adam (Kingma & Ba 2015) on velocity in m/s; returns the last iterate (not yet evaluated)."""
    beta1, beta2 = 0.9, 0.999
    first = np.zeros_like(velocity)
    second = np.zeros_like(velocity)
    low, high = objective.bounds
    for step in range(1, iterations + 1):
        _, gradient = objective.evaluate(velocity)
        gradient = condition(gradient) + objective.prior_gradient(velocity)
        scale = float(np.max(np.abs(gradient)))
        if not scale > 0:
            break  # a zero gradient: nothing moves any more
        if step == 1:
            reference = scale  # gradients in units of the first one: the epsilon below is then relative
        gradient = gradient / reference
        first = beta1 * first + (1 - beta1) * gradient
        second = beta2 * second + (1 - beta2) * gradient**2
        corrected_first = first / (1 - beta1**step)
        corrected_second = second / (1 - beta2**step)
        velocity = np.clip(
            velocity - config.step_mps * corrected_first / (np.sqrt(corrected_second) + 1e-8), low, high
        )
    return velocity


def _lbfgs(objective: _Objective, velocity: np.ndarray, iterations: int, config: RefineConfig, condition):
    """scipy L-BFGS-B with box bounds, in scaled variables; returns its last accepted iterate.

    The stage's data objective is divided by its starting value (so ``min_relative_decrease`` is relative
    and the prior's weight means the same in every stage)."""
    from scipy.optimize import minimize

    start = np.array(velocity, np.float64)
    value0, raw0 = objective.evaluate(start)
    data_value0 = value0 - (
        0.5 * objective.prior_weight * float(np.mean(((start - objective.anchor) / PRIOR_SCALE_MPS) ** 2))
        if objective.anchor is not None and objective.prior_weight > 0
        else 0.0
    )
    normaliser = data_value0 if data_value0 > 0 else 1.0
    objective.data_normaliser = normaliser
    gradient0 = condition(raw0) / normaliser + objective.prior_gradient(start)
    value0 = data_value0 / normaliser + (value0 - data_value0)
    largest = float(np.max(np.abs(gradient0)))
    if not largest > 0 or iterations < 2:
        return start
    # x = (v - v0) / scale. With bounds on every variable, L-BFGS-B's first step is the negative gradient
    # itself (the unit-norm first step is for unbounded problems only), -scale * g in x and so -scale^2 * g
    # in v: this scale makes it change the largest cell by step_mps, whatever the gradient's magnitude.
    scale = math.sqrt(config.step_mps / largest)
    low, high = objective.bounds
    last = {"x": np.zeros(start.size)}

    def function(x):
        if not np.any(x):
            value, gradient = value0, gradient0
        else:
            model = start + scale * x.reshape(start.shape)
            value, raw = objective.evaluate(model)
            gradient = condition(raw) + objective.prior_gradient(model)
        last["x"] = x.copy()
        return value, (scale * gradient).ravel()

    bounds = [((low - v) / scale, (high - v) / scale) for v in start.ravel()]
    try:
        result = minimize(
            function,
            np.zeros(start.size),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={
                "maxfun": iterations,
                "maxiter": iterations,
                "ftol": config.min_relative_decrease,
                "gtol": 0.0,
                "maxcor": 10,
            },
        )
        x = result.x
    except _BudgetExhausted:
        x = last["x"]
    return np.clip(start + scale * x.reshape(start.shape), low, high)
