"""Physics refinement of predicted velocity: a few iterations of full-waveform inversion from the network's model.

Pipeline position: after prediction and physics QC in ``pipeline.infer`` (``--refine N``), and callable from
notebooks. A network trained on one family of models can return a plausible model for data it has never seen
the like of; FWI with the project's engine (``data_prep.forward.simulate``, differentiable with respect to
velocity) then moves that model towards one that explains the recorded gathers. The network provides what
FWI lacks on its own, a starting model close enough to avoid cycle skipping; FWI provides what the network
lacks, agreement with the physics of the recording.

Objective, per window (``observed`` ``d``: ``(shots, time, receivers)`` on the model's geometry)::

    J(v) = 1/2 ||L d - C(L s(v))||^2 / ||L d||^2        data misfit = sqrt(2 J) = ||L d - C L s|| / ||L d||

* ``s(v)`` the engine's gathers for velocity ``v`` with the training data's engine settings;
* ``C`` the survey's source correction, re-estimated at every evaluation by least squares with the physics
  QC's own estimate (``pipeline.qc.match_source``: a scalar, a convolution filter, or none). As ``C``
  minimises ``J`` for the current ``s``, the gradient of the reduced objective is the gradient at fixed
  ``C`` (variable projection), so the adjoint source is ``L C^T (C L s - L d) / ||L d||^2`` and one
  reverse-mode pass through the engine (the vector-Jacobian product of ``simulate``) gives ``dJ/dv``;
* ``L`` an optional zero-phase low-pass (``RefineConfig.frequency_schedule_hz``): FWI's classic multiscale
  strategy (Bunks et al. 1995) fits the low frequencies first, where a wrong model is less than half a
  period off, then widens the band. ``L`` is a real frequency-domain taper on zero-padded traces, so it is
  its own transpose.

The misfit with ``L`` = identity is the physics QC's ``data_misfit`` (same source correction, same
definition), so "before" here equals the QC's number for the (bounded) network prediction.

Updates:

* **Bounds**: velocities stay in ``bounds_mps`` (the training data's velocity range by default): the engine's
  time step was chosen for that range (CFL) and the network was trained on it.
* **Smoothing** (``smoothing_cells``): the gradient is smoothed with a Gaussian of that many cells
  (standard deviation) before the update, which suppresses the high-wavenumber source/receiver imprint
  and the noise of a few iterations; ``mute_top_cells`` zeroes the update in the rows next to the
  sources and receivers, where the gradient is singular.
* **Optimiser** (``optimizer``): ``"lbfgs"`` (default) is scipy's L-BFGS-B, the quasi-Newton method of most
  FWI codes, with the bounds as box constraints (exact projection, no clipping heuristics). Its variables
  are scaled so that its first step changes the largest cell by about ``step_mps``, the objective by its
  starting value; its curvature pairs rescale the deep, weakly illuminated cells after a few iterations.
  ``N`` iterations are ``N`` *evaluations* (forward + backward passes of the engine), its line-search trials
  included, so the cost is exactly ``N`` gradients whatever the optimiser. ``"adam"`` is projected Adam on
  velocity (learning rate ``step_mps`` m/s, one evaluation per iteration). On the tests' layered window
  (docs/refinement.md) with 10-12 evaluations L-BFGS-B reduced the misfit 2-4x further than Adam from a
  smoothed, a shifted and a 1D-gradient start, hence the default.

Safety: the returned model is the **best iterate by the full-band data misfit** among every model evaluated,
the start included, so refinement never returns a model that fits the data worse than the start. When the
last iterate fits worse than the start (an unstable step, a schedule that drifted), or nothing improved,
``RefineResult.warning`` says so and a warning is logged.

Memory: one window at a time (the engine's backward pass holds the wavefields of one model); with the
engine's checkpointed gradient, when available, memory stays at a fraction of that.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from data_prep.geometry import AcquisitionGeometry
from pipeline.qc import data_misfit, match_source, velocity_errors

# The engine imports Keras and its backend: imported where it is used, so that importing this module (for
# its config, e.g. by ``python -m pipeline.infer --help``) stays light.

logger = logging.getLogger(__name__)

#: Per-window values ``pipeline.infer`` records for a refinement, in the HDF5 ``windows`` group and qc.csv.
REFINE_FIELDS = (
    "refine_misfit_before",
    "refine_misfit_after",
    "refine_best_iteration",
    "refine_velocity_mae_before_mps",
    "refine_velocity_mae_after_mps",
    "refine_time_s",
)


@dataclass(frozen=True)
class RefineConfig:
    """Settings of the physics refinement (``--refine N`` sets ``iterations``).

    Attributes:
        iterations: gradient evaluations (forward + backward passes of the engine) per window; 0 = off.
        optimizer: ``"lbfgs"`` (scipy L-BFGS-B with box bounds) or ``"adam"`` (projected Adam on velocity).
        step_mps: for L-BFGS-B the largest cell change of its first step (later steps are its own); Adam's
            learning rate in m/s (about the largest change of a cell per iteration).
        bounds_mps: ``[min, max]`` velocity in m/s; None: the model's training velocity range.
        smoothing_cells: standard deviation, in cells, of the Gaussian that smooths the gradient; 0: none.
        mute_top_cells: no update in this many rows below the shallowest source/receiver row (and above it).
        frequency_schedule_hz: low-pass cut-offs (Hz) of successive stages, low to high, the iterations split
            evenly between them; a cut-off of 0 (or none given) is the full band. E.g. ``[8, 12, 0]``.
        source_correction: ``"qc"`` (the physics QC's setting), ``"scale"``, ``"wavelet"`` or ``"none"``.
        wavelet_damping: stabilisation of the ``"wavelet"`` estimate (relative to its peak power).
    """

    iterations: int = 0
    optimizer: Literal["lbfgs", "adam"] = "lbfgs"
    step_mps: float = 50.0
    bounds_mps: tuple[float, float] | None = None
    smoothing_cells: float = 1.0
    mute_top_cells: int = 0
    frequency_schedule_hz: tuple[float, ...] = ()
    source_correction: Literal["qc", "scale", "wavelet", "none"] = "qc"
    wavelet_damping: float = 1e-3

    def __post_init__(self) -> None:
        if isinstance(self.iterations, bool) or self.iterations < 0:
            raise ValueError(f"refine.iterations must be a non-negative integer. Received: {self.iterations}")
        if not (math.isfinite(self.step_mps) and self.step_mps > 0):
            raise ValueError(f"refine.step_mps must be a positive number of m/s. Received: {self.step_mps}")
        if self.bounds_mps is not None:
            low, high = self.bounds_mps
            if not (0 < low < high and math.isfinite(high)):
                raise ValueError(
                    f"refine.bounds_mps must be [min, max] with 0 < min < max. Received: {self.bounds_mps}"
                )
        if not self.smoothing_cells >= 0:
            raise ValueError(f"refine.smoothing_cells must be >= 0. Received: {self.smoothing_cells}")
        if self.mute_top_cells < 0:
            raise ValueError(f"refine.mute_top_cells must be >= 0. Received: {self.mute_top_cells}")
        cutoffs = [c for c in self.frequency_schedule_hz]
        if any(not (math.isfinite(c) and c >= 0) for c in cutoffs):
            raise ValueError(
                f"refine.frequency_schedule_hz holds low-pass cut-offs in Hz (0 = full band). Received: {cutoffs}"
            )
        band_limited = [c for c in cutoffs if c > 0]
        if band_limited != sorted(band_limited) or (0 in cutoffs and cutoffs.index(0) != len(cutoffs) - 1):
            raise ValueError(
                "refine.frequency_schedule_hz must go from low to high frequencies, a full-band stage (0) last. "
                f"Received: {cutoffs}"
            )
        if (
            self.frequency_schedule_hz
            and self.iterations
            and len(self.frequency_schedule_hz) > self.iterations
        ):
            raise ValueError(
                f"refine.frequency_schedule_hz has {len(self.frequency_schedule_hz)} stages for "
                f"{self.iterations} iterations: give at least one iteration per stage."
            )
        if not self.wavelet_damping > 0:
            raise ValueError(f"refine.wavelet_damping must be positive. Received: {self.wavelet_damping}")

    def stages(self) -> list[tuple[float | None, int]]:
        """``[(cut-off Hz or None for the full band, iterations)]`` of the schedule."""
        cutoffs = [c if c > 0 else None for c in self.frequency_schedule_hz] or [None]
        base, extra = divmod(self.iterations, len(cutoffs))
        return [(cutoff, base + (1 if index < extra else 0)) for index, cutoff in enumerate(cutoffs)]


@dataclass
class RefineResult:
    """The outcome of ``refine`` for one window.

    Attributes:
        velocity_mps: ``(depth, x)`` the returned model: the best iterate by full-band data misfit
            (the bounded start when nothing fitted better).
        last_velocity_mps: ``(depth, x)`` the last iterate.
        misfit_before: full-band data misfit of the (bounded) starting model (= the physics QC's).
        misfit_after: full-band data misfit of ``velocity_mps`` (<= ``misfit_before``).
        misfit_last: full-band data misfit of the last iterate (may exceed ``misfit_before``: see ``warning``).
        best_iteration: which iterate was returned (0 = the start).
        gradient_evaluations: forward + backward passes of the engine.
        history: one entry per evaluated model: ``evaluation``, ``stage``, ``cutoff_hz``, ``band_misfit``,
            ``misfit`` (full band), ``source_scale`` and, with a truth, ``velocity_mae_mps``.
        clipped_cells: cells of the start moved into the bounds.
        bounds_mps: the bounds used.
        source_scale: the source correction's gain for the returned model (``pipeline.qc.SourceMatch``).
        velocity_errors_before, velocity_errors_after: against ``true_velocity_mps`` when given
            (``pipeline.qc.velocity_errors``), else empty.
        time_s: wall time.
        warning: empty, or why the result should be looked at (fit got worse, nothing improved).
    """

    velocity_mps: np.ndarray
    last_velocity_mps: np.ndarray
    misfit_before: float
    misfit_after: float
    misfit_last: float
    best_iteration: int
    gradient_evaluations: int
    history: list[dict[str, Any]]
    clipped_cells: int
    bounds_mps: tuple[float, float]
    source_scale: float
    velocity_errors_before: dict[str, float] = field(default_factory=dict)
    velocity_errors_after: dict[str, float] = field(default_factory=dict)
    time_s: float = 0.0
    warning: str = ""

    @property
    def improved(self) -> bool:
        return self.best_iteration > 0 and self.misfit_after < self.misfit_before

    def record(self) -> dict[str, float]:
        """The per-window values of ``REFINE_FIELDS``."""
        return {
            "refine_misfit_before": self.misfit_before,
            "refine_misfit_after": self.misfit_after,
            "refine_best_iteration": float(self.best_iteration),
            "refine_velocity_mae_before_mps": self.velocity_errors_before.get(
                "velocity_mae_mps", float("nan")
            ),
            "refine_velocity_mae_after_mps": self.velocity_errors_after.get("velocity_mae_mps", float("nan")),
            "refine_time_s": self.time_s,
        }


# ----------------------------------------------------------------------------------------------------------
# Band limitation
# ----------------------------------------------------------------------------------------------------------


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
    spectrum = np.fft.rfft(gathers, n=length, axis=1) * response[None, :, None]
    return np.fft.irfft(spectrum, n=length, axis=1)[:, :num_samples]


# ----------------------------------------------------------------------------------------------------------
# Engine with its gradient
# ----------------------------------------------------------------------------------------------------------


def simulate_with_pullback(
    velocity_mps: np.ndarray,
    geometry: AcquisitionGeometry,
    engine: Any,
    wavelet: np.ndarray | None,
    bounds_mps: tuple[float, float],
) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Simulated gathers of one model and the engine's vector-Jacobian product.

    Args:
        velocity_mps: ``(depth, x)`` m/s.
        geometry, engine, wavelet: as for ``data_prep.forward.simulate``.
        bounds_mps: the velocity range for the engine's CFL/dispersion checks (values are traced).

    Returns:
        ``(gathers (shots, time, receivers) float64, pullback)``, ``pullback(w)`` being
        ``d/dv sum(simulate(v) * w)``, ``(depth, x)`` float64, for ``w`` of the gathers' shape.

    Raises:
        ValueError: a Keras backend without reverse-mode support here (use TensorFlow or JAX), or the
            engine's own refusals (CFL at the upper bound, shapes).
    """
    import keras

    from data_prep.forward import simulate

    backend = keras.backend.backend()
    velocity = np.asarray(velocity_mps, np.float32)[None]

    def forward(model):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # dispersion: the training data had it too
            return simulate(model, geometry, engine, wavelet=wavelet, velocity_bounds_mps=bounds_mps)

    if backend == "tensorflow":
        import tensorflow as tf

        model = tf.constant(velocity)
        with tf.GradientTape() as tape:
            tape.watch(model)
            gathers = forward(model)

        def pullback(weights: np.ndarray) -> np.ndarray:
            cotangent = tf.constant(np.asarray(weights, np.float32)[None])
            return np.asarray(tape.gradient(gathers, model, output_gradients=cotangent), np.float64)[0]

        return np.asarray(gathers, np.float64)[0], pullback
    if backend == "jax":
        import jax

        gathers, vjp = jax.vjp(forward, jax.numpy.asarray(velocity))

        def pullback(weights: np.ndarray) -> np.ndarray:
            cotangent = jax.numpy.asarray(np.asarray(weights, np.float32)[None])
            return np.asarray(vjp(cotangent)[0], np.float64)[0]

        return np.asarray(gathers, np.float64)[0], pullback
    raise ValueError(
        f"Refinement needs the engine's gradient, available here under the TensorFlow and JAX backends. "
        f"Received: KERAS_BACKEND={backend}. Set KERAS_BACKEND=tensorflow or jax."
    )


def simulate_once(
    velocity_mps: np.ndarray,
    geometry: AcquisitionGeometry,
    engine: Any,
    wavelet: np.ndarray | None,
    bounds_mps: tuple[float, float],
) -> np.ndarray:
    """Gathers ``(shots, time, receivers)`` float64 of one model, through the same compiled engine call as
    ``simulate_with_pullback`` (a backend tensor of the same shape: no second compilation, no thread split)."""
    from keras import ops

    from data_prep.forward import simulate

    model = ops.convert_to_tensor(np.asarray(velocity_mps, np.float32)[None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gathers = simulate(model, geometry, engine, wavelet=wavelet, velocity_bounds_mps=bounds_mps)
    return np.asarray(ops.convert_to_numpy(gathers), np.float64)[0]


# ----------------------------------------------------------------------------------------------------------
# The objective
# ----------------------------------------------------------------------------------------------------------


class _Objective:
    """Misfit and gradient of one window; remembers the best model seen (by full-band misfit)."""

    def __init__(self, observed, geometry, engine, wavelet, bounds, method, damping, truth, budget) -> None:
        self.observed = np.asarray(observed, np.float64)
        self.geometry, self.engine, self.wavelet = geometry, engine, wavelet
        self.bounds = bounds
        self.method, self.damping = method, damping
        self.truth = truth
        self.budget = budget
        self.evaluations = 0
        self.history: list[dict[str, Any]] = []
        self.best: tuple[float, int, np.ndarray, float] | None = None  # (misfit, evaluation, model, scale)
        self.stage = 0
        self.response: np.ndarray | None = None
        self.band_observed = self.observed
        self.band_norm_squared = float(np.sum(self.observed**2))

    def set_band(self, stage: int, cutoff_hz: float | None) -> None:
        self.stage, self.cutoff_hz = stage, cutoff_hz
        self.response = lowpass_response(
            self.geometry.num_samples, self.geometry.sample_interval_s, cutoff_hz
        )
        self.band_observed = band_limit(self.observed, self.response)
        self.band_norm_squared = float(np.sum(self.band_observed**2))

    def full_band(self, simulated: np.ndarray) -> tuple[float, float]:
        match = match_source(self.observed, simulated, self.method, self.damping)
        return data_misfit(self.observed, match.apply(simulated)), match.scale

    def evaluate(self, velocity: np.ndarray, gradient: bool = True) -> tuple[float, np.ndarray | None]:
        """``(J, dJ/dv)`` in the current band; records the model's full-band misfit."""
        if gradient:
            if self.evaluations >= self.budget:
                raise _BudgetExhausted
            simulated, pullback = simulate_with_pullback(
                velocity, self.geometry, self.engine, self.wavelet, self.bounds
            )
            self.evaluations += 1
        else:
            simulated = simulate_once(velocity, self.geometry, self.engine, self.wavelet, self.bounds)
        band_simulated = band_limit(simulated, self.response)
        match = match_source(self.band_observed, band_simulated, self.method, self.damping)
        residual = match.apply(band_simulated) - self.band_observed
        norm = self.band_norm_squared if self.band_norm_squared > 0 else 1.0
        value = 0.5 * float(np.sum(residual**2)) / norm
        misfit, scale = self.full_band(simulated)
        entry = {
            "evaluation": len(self.history),
            "stage": self.stage,
            "cutoff_hz": getattr(self, "cutoff_hz", None),
            "band_misfit": math.sqrt(2 * value),
            "misfit": misfit,
            "source_scale": scale,
        }
        if self.truth is not None:
            entry["velocity_mae_mps"] = velocity_errors(velocity, self.truth)["velocity_mae_mps"]
        self.history.append(entry)
        if self.best is None or misfit < self.best[0]:
            self.best = (misfit, entry["evaluation"], np.array(velocity, np.float64), scale)
        if not gradient:
            return value, None
        adjoint_source = band_limit(match.adjoint(residual), self.response) / norm
        gradient = pullback(adjoint_source)
        if not np.all(np.isfinite(gradient)):
            raise _GradientNotFinite(
                "the engine's gradient holds NaN or infinite values (an unstable simulation?): refinement stopped"
            )
        return value, gradient


class _BudgetExhausted(Exception):
    """The optimiser asked for more gradient evaluations than ``RefineConfig.iterations``."""


class _GradientNotFinite(Exception):
    """The engine returned a NaN or infinite gradient: the iterations stop, the best model so far is kept."""


def _update_filter(shape: tuple[int, int], geometry: AcquisitionGeometry, config: RefineConfig):
    """The gradient's smoothing and muting, as one function ``(depth, x) -> (depth, x)``."""
    from scipy.ndimage import gaussian_filter

    mask = np.ones(shape)
    if config.mute_top_cells:
        shallowest = min(min(c[0] for c in geometry.source_cells), min(c[0] for c in geometry.receiver_cells))
        mask[: shallowest + config.mute_top_cells + 1] = 0.0

    def apply(gradient: np.ndarray) -> np.ndarray:
        if config.smoothing_cells > 0:
            gradient = gaussian_filter(gradient, config.smoothing_cells, mode="nearest")
        return gradient * mask

    return apply


# ----------------------------------------------------------------------------------------------------------
# Optimisers
# ----------------------------------------------------------------------------------------------------------


def _adam(objective: _Objective, velocity: np.ndarray, iterations: int, config: RefineConfig, condition):
    """Projected Adam (Kingma & Ba 2015) on velocity in m/s; returns the last iterate (not yet evaluated)."""
    beta1, beta2 = 0.9, 0.999
    first = np.zeros_like(velocity)
    second = np.zeros_like(velocity)
    low, high = objective.bounds
    for step in range(1, iterations + 1):
        _, gradient = objective.evaluate(velocity)
        gradient = condition(gradient)
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
    """scipy L-BFGS-B with box bounds, in scaled variables; returns its last accepted iterate."""
    from scipy.optimize import minimize

    start = np.array(velocity, np.float64)
    value0, gradient0 = objective.evaluate(start)
    gradient0 = condition(gradient0)
    largest = float(np.max(np.abs(gradient0)))
    if not largest > 0 or iterations < 2:
        return start
    # x = (v - v0) / scale: L-BFGS-B's first step has unit norm in x, so it changes the largest cell by about
    # step_mps. The objective is divided by its starting value, so tolerances are relative.
    scale = config.step_mps * float(np.linalg.norm(gradient0)) / largest
    norm = value0 if value0 > 0 else 1.0
    cache = {0.0: (value0, gradient0)}
    low, high = objective.bounds
    last = {"x": np.zeros(start.size)}

    def function(x):
        model = start + scale * x.reshape(start.shape)
        if not np.any(x):
            value, gradient = cache[0.0]
        else:
            value, raw = objective.evaluate(model)
            gradient = condition(raw)
        last["x"] = x.copy()
        return value / norm, (scale * gradient).ravel() / norm

    bounds = [((low - v) / scale, (high - v) / scale) for v in start.ravel()]
    try:
        result = minimize(
            function,
            np.zeros(start.size),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxfun": iterations, "maxiter": iterations, "ftol": 0.0, "gtol": 0.0, "maxcor": 10},
        )
        x = result.x
    except _BudgetExhausted:
        x = last["x"]
    return np.clip(start + scale * x.reshape(start.shape), low, high)


# ----------------------------------------------------------------------------------------------------------
# The pure function
# ----------------------------------------------------------------------------------------------------------


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
) -> RefineResult:
    """Full-waveform inversion of one window from a starting model (see the module docstring).

    Args:
        observed: ``(shots, time, receivers)`` gathers on ``geometry`` (survey units; the source correction
            absorbs the amplitude and, with ``"wavelet"``, the wavelet).
        initial_velocity_mps: ``(depth, x)`` starting model in m/s (the network's prediction), moved into
            the bounds first.
        geometry: the window's acquisition (``data_prep.geometry.AcquisitionGeometry``).
        engine: ``data_prep.forward.EngineConfig`` (None: the engine's defaults), e.g. from
            ``pipeline.qc.engine_setup(layout, bundle.engine_settings).config``.
        config: iterations, optimiser, smoothing, schedule.
        wavelet: the engine's source wavelet (None: its default Ricker).
        bounds_mps: ``(min, max)`` m/s; ``config.bounds_mps`` wins when set. One of them is required.
        true_velocity_mps: ``(depth, x)`` the true model of a synthetic survey: velocity errors before and after.
        source_correction: ``"scale"``, ``"wavelet"`` or ``"none"``, used when ``config.source_correction``
            is ``"qc"`` (pass the QC's setting).

    Returns:
        A ``RefineResult``; ``velocity_mps`` never fits the data worse than the bounded start.

    Raises:
        ValueError: shapes that do not match the geometry, missing bounds, a backend without gradients.
    """
    started = time.perf_counter()
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
    bounds = config.bounds_mps or bounds_mps
    if bounds is None:
        raise ValueError(
            "Refinement needs velocity bounds: pass bounds_mps (e.g. the training data's velocity range) or set "
            "refine.bounds_mps."
        )
    bounds = (float(bounds[0]), float(bounds[1]))
    if engine is None:
        from data_prep.forward import EngineConfig

        engine = EngineConfig()
    method = source_correction if config.source_correction == "qc" else config.source_correction
    truth = None if true_velocity_mps is None else np.asarray(true_velocity_mps, np.float64)

    start = np.clip(initial, *bounds)
    clipped = int(np.sum(start != initial))
    objective = _Objective(
        observed, geometry, engine, wavelet, bounds, method, config.wavelet_damping, truth, config.iterations
    )
    condition = _update_filter(start.shape, geometry, config)
    optimizer = _adam if config.optimizer == "adam" else _lbfgs
    velocity = start
    stages = [(cutoff, count) for cutoff, count in config.stages() if count > 0]
    if not stages:  # no iterations: evaluate the start only
        objective.set_band(0, None)
        objective.evaluate(start, gradient=False)
    stopped = ""
    for stage, (cutoff, count) in enumerate(stages):
        objective.set_band(stage, cutoff)
        try:
            velocity = optimizer(objective, velocity, count, config, condition)
        except _BudgetExhausted:
            pass
        except _GradientNotFinite as error:
            stopped = str(error)
            break
    if stages:
        # The last update has not been evaluated yet: one forward pass, full band.
        objective.set_band(len(stages) - 1, None)
        objective.evaluate(velocity, gradient=False)

    misfit_before = objective.history[0]["misfit"]
    misfit_last = objective.history[-1]["misfit"]
    best_misfit, best_evaluation, best_velocity, best_scale = objective.best
    warning = ""
    if stages and not best_misfit < misfit_before:
        warning = (
            f"refinement did not reduce the data misfit ({misfit_before:.4g} at the start, {misfit_last:.4g} "
            "after the last iteration): the starting model is returned."
        )
    elif misfit_last > misfit_before:
        warning = (
            f"the last iterate fits the data worse than the start (misfit {misfit_last:.4g} > {misfit_before:.4g}): "
            f"the best iterate ({best_evaluation}, misfit {best_misfit:.4g}) is returned."
        )
    if stopped:
        warning = f"{stopped}; {warning}" if warning else f"{stopped}; the best model so far is returned."
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
        warning=warning,
    )
    if truth is not None:
        result.velocity_errors_before = velocity_errors(start, truth)
        result.velocity_errors_after = velocity_errors(best_velocity, truth)
    result.time_s = time.perf_counter() - started
    return result


# ----------------------------------------------------------------------------------------------------------
# Windows of a survey line (pipeline.infer)
# ----------------------------------------------------------------------------------------------------------


def refine_windows(
    observed: Sequence[np.ndarray],
    predicted_mps: np.ndarray,
    setup: Any,
    config: RefineConfig,
    bounds_mps: tuple[float, float] | None,
    source_correction: str,
    truth_mps: Sequence[np.ndarray | None] | None = None,
    skip: Sequence[str] | None = None,
) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """Refines a batch of windows one at a time (memory: one window's gradient).

    Args:
        observed: per window ``(shots, time, receivers)`` gathers on the model's geometry (survey units).
        predicted_mps: ``(windows, depth, x)`` the network's velocity.
        setup: ``pipeline.qc.EngineSetup`` (geometry, engine settings, wavelet of the training data).
        config: the refinement settings.
        bounds_mps: the training velocity range (``config.bounds_mps`` wins).
        source_correction: the QC's source correction (used when ``config.source_correction`` is ``"qc"``).
        truth_mps: per window the true velocity or None.
        skip: per window a reason not to refine it (empty string: refine), e.g. the window has no signal.

    Returns:
        Per window ``(refined velocity (depth, x) float32, record)``; the record holds ``REFINE_FIELDS``,
        ``refine_note`` (a warning, or why the window was not refined; then the network's velocity is kept).
    """
    results = []
    for index, prediction in enumerate(np.asarray(predicted_mps, np.float32)):
        record: dict[str, Any] = {name: float("nan") for name in REFINE_FIELDS} | {"refine_note": ""}
        reason = skip[index] if skip is not None else ""
        if reason:
            record["refine_note"] = f"not refined: {reason}"
            results.append((prediction, record))
            continue
        truth = truth_mps[index] if truth_mps is not None else None
        try:
            result = refine(
                observed[index],
                prediction,
                setup.geometry,
                setup.config,
                config,
                wavelet=setup.wavelet,
                bounds_mps=bounds_mps,
                true_velocity_mps=truth,
                source_correction=source_correction,
            )
        except ValueError as error:  # the engine refused (e.g. CFL): keep the network's model, say why
            record["refine_note"] = f"not refined: {error}"
            results.append((prediction, record))
            continue
        record.update(result.record())
        record["refine_note"] = result.warning
        results.append((result.velocity_mps, record))
    return results


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Line-wide refinement numbers: windows refined and improved, median misfit and MAE before/after."""

    def finite(key):
        values = np.asarray([row.get(key, np.nan) for row in rows], dtype=np.float64)
        return values[np.isfinite(values)]

    before, after = finite("refine_misfit_before"), finite("refine_misfit_after")
    result: dict[str, float] = {"num_refined": float(before.size)}
    if before.size:
        result["num_improved"] = float(
            sum(
                1
                for row in rows
                if np.isfinite(row.get("refine_misfit_after", np.nan))
                and row["refine_misfit_after"] < row["refine_misfit_before"]
            )
        )
        result["misfit_before_median"] = float(np.median(before))
        result["misfit_after_median"] = float(np.median(after))
        result["time_per_window_s"] = float(np.mean(finite("refine_time_s")))
    mae_before, mae_after = finite("refine_velocity_mae_before_mps"), finite("refine_velocity_mae_after_mps")
    if mae_before.size:
        result["velocity_mae_before_median_mps"] = float(np.median(mae_before))
        result["velocity_mae_after_median_mps"] = float(np.median(mae_after))
    return result


def plot_refinement(section_path, path, rows: Sequence[Mapping[str, Any]], max_columns: int = 2000) -> None:
    """Network section, refined section, their difference, and the data misfit per window before/after."""
    import h5py

    # A Figure of its own, not pyplot: switching pyplot's backend would turn off a notebook's inline plots.
    from matplotlib.figure import Figure

    with h5py.File(section_path, "r") as h5:
        x_m, depth_m = h5["x_m"][()], h5["depth_m"][()]
        step = max(1, int(np.ceil(len(x_m) / max_columns)))
        network = h5["velocity_mps"][:, ::step]
        refined = h5["refined_velocity_mps"][:, ::step]
    spacing = float(depth_m[1] - depth_m[0]) if len(depth_m) > 1 else 1.0
    extent = (x_m[0], x_m[-1], depth_m[-1] + spacing / 2, depth_m[0] - spacing / 2)
    figure = Figure(figsize=(10, 10))
    axes = figure.subplots(4, 1, sharex=True)
    low = float(np.nanmin([np.nanmin(network), np.nanmin(refined)]))
    high = float(np.nanmax([np.nanmax(network), np.nanmax(refined)]))
    for axis, image, title in (
        (axes[0], network, "network"),
        (axes[1], refined, "refined (FWI from the network)"),
    ):
        shown = axis.imshow(image, aspect="auto", cmap="viridis", extent=extent, vmin=low, vmax=high)
        figure.colorbar(shown, ax=axis, label="velocity (m/s)")
        axis.set_title(title)
        axis.set_ylabel("depth (m)")
    change = refined - network
    limit = float(np.nanmax(np.abs(change))) if np.isfinite(change).any() else 1.0
    shown = axes[2].imshow(change, aspect="auto", cmap="RdBu_r", extent=extent, vmin=-limit, vmax=limit)
    figure.colorbar(shown, ax=axes[2], label="m/s")
    axes[2].set_title("refined - network")
    axes[2].set_ylabel("depth (m)")
    centre = np.asarray([(row["x_start_m"] + row["x_end_m"]) / 2 for row in rows])
    for key, label, style in (
        ("refine_misfit_before", "network", "o-"),
        ("refine_misfit_after", "refined", "s-"),
    ):
        axes[3].plot(centre, [row.get(key, np.nan) for row in rows], style, markersize=3, label=label)
    axes[3].set_ylabel("data misfit")
    axes[3].set_xlabel("along-line position (m)")
    axes[3].legend(loc="upper right", fontsize=8)
    figure.colorbar(shown, ax=axes[3]).remove()  # keep the x axes of all panels aligned
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")


__all__ = [
    "REFINE_FIELDS",
    "RefineConfig",
    "RefineResult",
    "band_limit",
    "lowpass_response",
    "plot_refinement",
    "refine",
    "refine_windows",
    "simulate_once",
    "simulate_with_pullback",
    "summarise",
]
