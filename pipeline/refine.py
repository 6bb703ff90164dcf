"""Physics refinement of predicted velocity: a few iterations of full-waveform inversion from the network's model.

Pipeline position: after prediction and physics QC in ``pipeline.infer`` (``--refine N``), and callable from
notebooks. A network trained on one family of models can return a plausible model for data it has never seen
the like of; FWI with the project's engine (``data_prep.forward.simulate``, differentiable with respect to
velocity) then moves that model towards one that explains the recorded gathers. The network provides what
FWI lacks on its own, a starting model close enough to avoid cycle skipping; FWI provides what the network
lacks, agreement with the physics of the recording.

A recorded line always differs from the training data's engine in ways no velocity explains: another
wavelet, a delay, the opposite polarity, other units. Fitted by the velocity, these make the velocity worse
while the misfit falls (issue 22). The default refinement therefore

* **estimates the source wavelet** at every evaluation (``source_correction="estimate"``,
  ``pipeline.wavelet_estimation``): the finite-length least-squares filter that maps the current
  synthetics onto the data, one per window (or per shot), so delay, polarity and wavelet shape are the
  filter's, not the velocity's;
* **starts at low frequencies** (``start_frequency_hz``, 4 Hz): stages low-pass data and synthetics alike,
  cut-offs rising geometrically to the full band, where a wrong model is less than half a period off; a
  stage ends when its misfit stops falling and hands its remaining iterations to the next;
* **keeps the network's structure**: the gradient is smoothed over a fraction of the stage's wavelength
  (``smoothing_wavelengths``) by diffusion that does not cross the structure's edges (the network's edge
  map, or the starting model's own velocity contrasts; ``structure``), a penalty holds the model near the
  start (``prior_weight``), and velocities stay inside ``bounds_mps``.

Objective, per window (``observed`` ``d``: ``(shots, time, receivers)`` on the model's geometry)::

    J(v) = 1/2 ||L d - C(L s(v))||^2 / ||L d||^2 / J_stage_start + prior_weight/2 mean(((v - v0) / 100 m/s)^2)

* ``s(v)`` the engine's gathers for velocity ``v`` with the training data's engine settings;
* ``C`` the source correction, re-estimated at every evaluation by least squares: the matching filter
  (``"estimate"``), the physics QC's scalar or frequency-domain filter (``"scale"``, ``"wavelet"``; ``"qc"``
  = the QC's setting) or none. As ``C`` minimises ``J`` for the current ``s``, the gradient of the reduced
  objective is the gradient at fixed ``C`` (variable projection), so the adjoint source is
  ``L C^T (C L s - L d) / ||L d||^2`` and one reverse-mode pass through the engine gives ``dJ/dv``;
* ``L`` the stage's zero-phase low-pass (cosine roll-off from the cut-off to 1.5 x the cut-off): a real
  frequency-domain taper on zero-padded traces, so it is its own transpose.

The reported data misfit is full-band, ``||d - C s|| / ||d||`` with the same source correction: with
``"scale"`` it is the physics QC's ``data_misfit``.

Updates: L-BFGS-B (default; box bounds, its first step changes the largest cell by about ``step_mps``) or
projected Adam. ``N`` iterations are ``N`` gradient evaluations (forward + backward passes of the engine),
line-search trials included, so the cost is known in advance.

Safety: the returned model is the **best iterate by the full-band data misfit** among every model evaluated,
the start included. That is a statement about the fit to the data only: a lower misfit does not prove a
better velocity (only a benchmark with the true model can say that). ``RefineResult.warning`` flags a run
whose last iterate fits worse than the start, that changed nothing, or that moved the model a lot for
little gain in fit (weakly constrained by the data).

Whole line (``mode="line"``, ``refine_line``): one model for the whole section, every shot of every window
simulated over it, each trace compared where it was recorded (a mask of shot/receiver pairs): no seams. The
engine's memory grows with the line, so shots run in groups (``shots_per_call``), each group's gradient
checkpointed.

Speed: the engine is compiled once per shape. All stages use the same compiled functions (the low-pass is
applied to the engine's output in NumPy, outside them); shots are split into equal groups (the last one
padded with a repeated shot) that run on concurrent threads, one per CPU core, so a window uses both cores of
a 2-core machine with a single compilation. The engine's gradient is the adjoint-state method
(``EngineConfig.gradient``: the adjoint wavefield propagated backwards by the transposed steps, ~4 forwards
per gradient instead of ~15 for the backend's reverse mode); where memory allows the forward keeps every
step's Laplacian (``refinement_engine``), else one level of checkpointing (``checkpoint_segments``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from data_prep.geometry import AcquisitionGeometry
from pipeline.qc import data_misfit, match_source, velocity_errors
from pipeline.wavelet_estimation import estimate_matching_filter

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
    "refine_wavelet_polarity",
    "refine_wavelet_lag_s",
)

#: The prior's velocity scale: a uniform departure of this size from the start costs ``prior_weight / 2``.
PRIOR_SCALE_MPS = 100.0

#: The automatic schedule gives every stage at least this many iterations (fewer stages for a small budget).
MIN_ITERATIONS_PER_STAGE = 3

#: The automatic schedule's first cut-off has at least this many periods in the record.
MIN_PERIODS_PER_RECORD = 3.0

SOURCE_CORRECTIONS = ("estimate", "qc", "scale", "wavelet", "none")


@dataclass(frozen=True)
class RefineConfig:
    """Settings of the physics refinement (``--refine N`` sets ``iterations``).

    Attributes:
        iterations: gradient evaluations (forward + backward passes of the engine) per window; 0 = off.
        mode: ``"window"`` (each window on its own, stitched like the network's) or ``"line"`` (one model for
            the whole line, every shot over it: no seams).
        optimizer: ``"lbfgs"`` (scipy L-BFGS-B with box bounds) or ``"adam"`` (projected Adam on velocity).
        step_mps: for L-BFGS-B the largest cell change of its first step in each stage; Adam's learning rate
            in m/s.
        bounds_mps: ``[min, max]`` velocity in m/s; None: the model's training velocity range.
        start_frequency_hz: the first stage's low-pass cut-off; the cut-offs rise geometrically to the
            training wavelet's peak frequency, then the full band. 0: the full band only. Ignored when
            ``frequency_schedule_hz`` is given.
        num_stages: stages of the automatic schedule (the last one full band), at most ``iterations // 3``.
        frequency_schedule_hz: explicit low-pass cut-offs (Hz) of successive stages, low to high; 0 = full band.
        min_relative_decrease: a stage ends when an L-BFGS-B step lowers its objective by less than this
            fraction; its remaining iterations go to the next stage. 0: every stage uses its share.
        smoothing_cells: smallest standard deviation (cells) of the gradient's smoothing; 0 with
            ``smoothing_wavelengths=0``: none.
        smoothing_wavelengths: smoothing length as a fraction of the stage's wavelength (the start model's
            median velocity over the stage's cut-off, or over twice the peak frequency for the full band).
        structure: ``"edges"``: the smoothing does not cross the structure's edges (the network's edge map
            when given, else the start model's velocity contrasts); ``"none"``: isotropic Gaussian.
        prior_weight: weight of ``mean(((v - v_start) / 100 m/s)^2) / 2`` against the stage's data objective
            (1 at the stage's start); 0 = none.
        mute_top_cells: no update in this many rows below the shallowest source/receiver row (and above it).
        source_correction: ``"estimate"`` (finite-length matching filter, default), ``"qc"`` (the physics
            QC's setting), ``"scale"``, ``"wavelet"`` (QC's frequency-domain filter) or ``"none"``.
        wavelet_max_lag_s: ``"estimate"``: the filter spans lags ``-max_lag .. +max_lag`` (largest delay it
            can absorb).
        wavelet_scope: ``"estimate"``: ``"window"`` (one filter per window or line) or ``"shot"``.
        wavelet_damping: stabilisation of the wavelet estimates (relative to the zero-lag/peak power).
        shots_per_call: shots per engine call (memory of one gradient ~ this many shots); None: the shots
            split evenly over the CPU cores.
        checkpoint_segments: the engine's checkpointing for the gradient; None: 1 (every step's Laplacian
            kept, nothing recomputed) when that fits ``STORED_GRADIENT_BYTES`` per engine call, else one
            level of ``sqrt(samples / 2)`` segments; see ``data_prep.forward.EngineConfig``.
    """

    iterations: int = 0
    mode: Literal["window", "line"] = "window"
    optimizer: Literal["lbfgs", "adam"] = "lbfgs"
    step_mps: float = 50.0
    bounds_mps: tuple[float, float] | None = None
    start_frequency_hz: float = 4.0
    num_stages: int = 3
    frequency_schedule_hz: tuple[float, ...] = ()
    min_relative_decrease: float = 1e-3
    smoothing_cells: float = 1.0
    smoothing_wavelengths: float = 0.25
    structure: Literal["edges", "none"] = "edges"
    prior_weight: float = 0.5
    mute_top_cells: int = 0
    source_correction: Literal["estimate", "qc", "scale", "wavelet", "none"] = "estimate"
    wavelet_max_lag_s: float = 0.1
    wavelet_scope: Literal["window", "shot"] = "window"
    wavelet_damping: float = 1e-3
    shots_per_call: int | None = None
    checkpoint_segments: int | None = None

    def __post_init__(self) -> None:
        def refuse(key: str, expected: str) -> None:
            raise ValueError(f"refine.{key} must be {expected}. Received: {getattr(self, key)!r}")

        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 0:
            refuse("iterations", "a non-negative integer (gradient evaluations per window; 0 = off)")
        if self.mode not in ("window", "line"):
            refuse("mode", "'window' (each window, stitched) or 'line' (the whole line at once)")
        if self.optimizer not in ("lbfgs", "adam"):
            refuse("optimizer", "'lbfgs' or 'adam'")
        if not (math.isfinite(self.step_mps) and self.step_mps > 0):
            refuse("step_mps", "a positive number of m/s")
        if self.bounds_mps is not None:
            low, high = self.bounds_mps
            if not (0 < low < high and math.isfinite(high)):
                raise ValueError(
                    f"refine.bounds_mps must be [min, max] with 0 < min < max. Received: {self.bounds_mps}"
                )
        if not (math.isfinite(self.start_frequency_hz) and self.start_frequency_hz >= 0):
            refuse("start_frequency_hz", "a cut-off in Hz >= 0 (0: the full band only; e.g. 4)")
        if isinstance(self.num_stages, bool) or not isinstance(self.num_stages, int) or self.num_stages < 1:
            refuse("num_stages", "a positive integer (e.g. 3)")
        if not (math.isfinite(self.min_relative_decrease) and 0 <= self.min_relative_decrease < 1):
            refuse("min_relative_decrease", "a fraction in [0, 1) (e.g. 0.001; 0: never stop a stage early)")
        if not self.smoothing_cells >= 0:
            refuse("smoothing_cells", ">= 0")
        if not (math.isfinite(self.smoothing_wavelengths) and self.smoothing_wavelengths >= 0):
            refuse("smoothing_wavelengths", ">= 0 (a fraction of the wavelength, e.g. 0.25; 0: off)")
        if self.structure not in ("edges", "none"):
            refuse("structure", "'edges' or 'none'")
        if not (math.isfinite(self.prior_weight) and self.prior_weight >= 0):
            refuse("prior_weight", ">= 0 (e.g. 0.5; 0: no penalty on the departure from the start)")
        if self.mute_top_cells < 0:
            refuse("mute_top_cells", ">= 0")
        if self.source_correction not in SOURCE_CORRECTIONS:
            refuse("source_correction", f"one of {', '.join(SOURCE_CORRECTIONS)}")
        if not (math.isfinite(self.wavelet_max_lag_s) and self.wavelet_max_lag_s >= 0):
            refuse("wavelet_max_lag_s", "a non-negative number of seconds (e.g. 0.1)")
        if self.wavelet_scope not in ("window", "shot"):
            refuse("wavelet_scope", "'window' (one wavelet) or 'shot' (one per shot)")
        if not self.wavelet_damping > 0:
            raise ValueError(f"refine.wavelet_damping must be positive. Received: {self.wavelet_damping}")
        if self.shots_per_call is not None and (
            isinstance(self.shots_per_call, bool)
            or not isinstance(self.shots_per_call, int)
            or self.shots_per_call < 1
        ):
            refuse("shots_per_call", "a positive integer or null (automatic)")
        if self.checkpoint_segments is not None and (
            isinstance(self.checkpoint_segments, bool)
            or not isinstance(self.checkpoint_segments, int)
            or self.checkpoint_segments < 1
        ):
            refuse("checkpoint_segments", "a positive integer or null (automatic)")
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
                f"{self.iterations} iterations: give at least one iteration per stage, or fewer stages. "
                f"Received: iterations={self.iterations}, frequency_schedule_hz={list(self.frequency_schedule_hz)}"
            )

    def stages(
        self, peak_frequency_hz: float = 15.0, duration_s: float | None = None
    ) -> list[tuple[float | None, int]]:
        """``[(cut-off Hz or None for the full band, iterations)]`` of the schedule.

        ``frequency_schedule_hz`` when given; else ``min(num_stages, iterations // 3)`` stages (at least one) from
        ``start_frequency_hz`` (at least ``MIN_PERIODS_PER_RECORD`` periods in a record of ``duration_s``)
        rising geometrically towards ``peak_frequency_hz`` (the training wavelet's), the last one the full
        band; a single full-band stage when the start is not below the peak.
        """
        if self.frequency_schedule_hz:
            cutoffs = [c if c > 0 else None for c in self.frequency_schedule_hz]
        else:
            # L-BFGS-B needs a few evaluations per stage to take a step: at least MIN_ITERATIONS_PER_STAGE.
            count = max(1, min(self.num_stages, self.iterations // MIN_ITERATIONS_PER_STAGE))
            low = self.start_frequency_hz
            if low > 0 and duration_s:
                # A low-pass stage needs a few periods inside the record to constrain anything.
                low = max(low, MIN_PERIODS_PER_RECORD / duration_s)
            if count == 1 or not 0 < low < peak_frequency_hz:
                cutoffs = [None]
            else:
                ratios = np.arange(count - 1) / (count - 1)
                cutoffs = [float(round(low * (peak_frequency_hz / low) ** r, 2)) for r in ratios] + [None]
        base, extra = divmod(self.iterations, len(cutoffs))
        return [(cutoff, base + (1 if index < extra else 0)) for index, cutoff in enumerate(cutoffs)]

    @classmethod
    def legacy(cls, iterations: int, **changes: Any) -> RefineConfig:
        """The refinement before issue 22 (the QC's source correction, full band, light smoothing, no prior):
        kept for the benchmark's comparison."""
        settings = {
            "source_correction": "qc",
            "start_frequency_hz": 0.0,
            "min_relative_decrease": 0.0,
            "smoothing_wavelengths": 0.0,
            "structure": "none",
            "prior_weight": 0.0,
            "checkpoint_segments": None,
        }
        return cls(iterations=iterations, **{**settings, **changes})


@dataclass
class RefineResult:
    """The outcome of ``refine`` for one window (or one line).

    Attributes:
        velocity_mps: ``(depth, x)`` the returned model: the best iterate by full-band data misfit
            (the bounded start when nothing fitted better).
        last_velocity_mps: ``(depth, x)`` the last iterate.
        misfit_before: full-band data misfit of the (bounded) starting model, with the refinement's source
            correction (= the physics QC's with ``"scale"``).
        misfit_after: full-band data misfit of ``velocity_mps`` (<= ``misfit_before``).
        misfit_last: full-band data misfit of the last iterate (may exceed ``misfit_before``: see ``warning``).
        best_iteration: which iterate was returned (0 = the start).
        gradient_evaluations: forward + backward passes of the engine.
        history: one entry per evaluated model: ``evaluation``, ``stage``, ``cutoff_hz``, ``band_misfit``,
            ``misfit`` (full band), ``source_scale``, ``change_mps`` (mean |v - start|) and, with a truth,
            ``velocity_mae_mps``.
        clipped_cells: cells of the start moved into the bounds.
        bounds_mps: the bounds used.
        source_scale: the source correction's gain for the returned model.
        wavelet_polarity, wavelet_lag_s: with ``"estimate"``: the estimated filter's polarity (+1/-1) and the
            lag of its largest tap for the returned model (NaN otherwise).
        stages: per stage ``cutoff_hz``, ``iterations`` used, ``smoothing_cells``.
        velocity_errors_before, velocity_errors_after: against ``true_velocity_mps`` when given
            (``pipeline.qc.velocity_errors``), else empty.
        time_s: wall time.
        warning: empty, or why the result should be looked at.
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
    wavelet_polarity: float = float("nan")
    wavelet_lag_s: float = float("nan")
    stages: list[dict[str, Any]] = field(default_factory=list)
    velocity_errors_before: dict[str, float] = field(default_factory=dict)
    velocity_errors_after: dict[str, float] = field(default_factory=dict)
    time_s: float = 0.0
    warning: str = ""

    @property
    def misfit_reduced(self) -> bool:
        """Whether the returned model fits the data better than the start. Says nothing about the velocity."""
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
            "refine_wavelet_polarity": self.wavelet_polarity,
            "refine_wavelet_lag_s": self.wavelet_lag_s,
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


#: The most memory one engine call of a refinement may keep for its gradient before it checkpoints: below
#: it, the forward keeps every step's Laplacian and the adjoint pass recomputes nothing (one forward fewer).
STORED_GRADIENT_BYTES = 256 * 2**20


def refinement_engine(
    engine: Any,
    num_samples: int,
    config: RefineConfig | None = None,
    geometry: AcquisitionGeometry | None = None,
) -> Any:
    """The engine settings the refinement runs with: the training data's, with the gradient's checkpointing.

    The engine's gradient is the adjoint-state method (``EngineConfig.gradient``). Given the ``geometry``,
    when one engine call's Laplacians (every time step, ``shot_groups``' shots per call) fit
    ``STORED_GRADIENT_BYTES`` the forward keeps them all (``checkpoint_segments=1``): 115 MB and ~4 instead
    of ~5 forwards per gradient of an OpenFWI window's 3-shot call. Otherwise (or without ``geometry``) one
    level of ``sqrt(samples / 2)`` segments, each recomputed once. Results do not depend on it.
    """
    from data_prep.forward import EngineConfig, stored_gradient_bytes

    if engine is None:
        engine = EngineConfig()
    segments = config.checkpoint_segments if config is not None else None
    if segments is None and geometry is not None:
        shots = int(shot_groups(geometry.num_sources, config.shots_per_call if config else None)[0].size)
        if stored_gradient_bytes(geometry, engine, shots) <= STORED_GRADIENT_BYTES:
            segments = 1
    if segments is None:
        segments = max(1, round(math.sqrt(max(1, num_samples // 2))))
    if getattr(engine, "checkpoint_segments", None) == segments:
        return engine
    return dataclasses.replace(engine, checkpoint_segments=segments)


def shot_groups(num_shots: int, shots_per_call: int | None = None) -> list[np.ndarray]:
    """Shot indices per engine call, every group of the same size (the last padded by repeating its last
    shot, whose traces are then ignored) so that the engine compiles once. None: one group per CPU core."""
    if shots_per_call is None:
        from data_prep.forward import available_cpu_count

        groups = max(1, min(available_cpu_count(), num_shots))
        shots_per_call = -(-num_shots // groups)
    size = max(1, min(int(shots_per_call), num_shots))
    result = []
    for first in range(0, num_shots, size):
        group = np.arange(first, min(first + size, num_shots))
        if group.size < size:
            group = np.concatenate([group, np.full(size - group.size, group[-1])])
        result.append(group)
    return result


def simulate_with_pullback(
    velocity_mps: np.ndarray,
    geometry: AcquisitionGeometry,
    engine: Any,
    wavelet: np.ndarray | None,
    bounds_mps: tuple[float, float],
    shots_per_call: int | None = None,
) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Simulated gathers of one model and the engine's vector-Jacobian product.

    The shots run in equal groups (``shot_groups``) on concurrent threads: XLA runs one call on one core.

    Args:
        velocity_mps: ``(depth, x)`` m/s.
        geometry, engine, wavelet: as for ``data_prep.forward.simulate``.
        bounds_mps: the velocity range for the engine's CFL/dispersion checks (values are traced).
        shots_per_call: see ``shot_groups``.

    Returns:
        ``(gathers (shots, time, receivers) float64, pullback)``, ``pullback(w)`` being
        ``d/dv sum(simulate(v) * w)``, ``(depth, x)`` float64, for ``w`` of the gathers' shape.

    Raises:
        ValueError: a Keras backend without reverse-mode support here (use TensorFlow or JAX), or the
            engine's own refusals (CFL at the upper bound, shapes).
    """
    groups = shot_groups(geometry.num_sources, shots_per_call)
    if len(groups) == 1 and groups[0].size == geometry.num_sources:
        return _group_with_pullback(velocity_mps, geometry, engine, wavelet, bounds_mps)
    jobs = [_group_job(geometry, wavelet, group) for group in groups]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        parts = list(
            pool.map(lambda job: _group_with_pullback(velocity_mps, job[0], engine, job[1], bounds_mps), jobs)
        )
    gathers = np.empty((geometry.num_sources, geometry.num_samples, geometry.num_receivers))
    for group, (part, _) in zip(groups, parts, strict=True):
        gathers[group] = part  # a padded group's repeated shot writes the same values twice
    unique = [np.unique(group, return_index=True)[1] for group in groups]

    def pullback(weights: np.ndarray) -> np.ndarray:
        weights = np.asarray(weights)

        def one(index: int) -> np.ndarray:
            group, keep = groups[index], unique[index]
            group_weights = np.zeros((group.size, *weights.shape[1:]))
            group_weights[keep] = weights[group[keep]]
            return parts[index][1](group_weights)

        with ThreadPoolExecutor(max_workers=len(groups)) as pool:
            return np.sum(list(pool.map(one, range(len(groups)))), axis=0)

    return gathers, pullback


def _group_job(geometry: AcquisitionGeometry, wavelet, group: np.ndarray):
    sub = geometry.replace(source_cells=tuple(geometry.source_cells[i] for i in group))
    if wavelet is not None and np.ndim(wavelet) == 2:
        wavelet = np.asarray(wavelet)[group]
    return sub, wavelet


def _group_with_pullback(velocity_mps, geometry, engine, wavelet, bounds_mps):
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
    shots_per_call: int | None = None,
) -> np.ndarray:
    """Gathers ``(shots, time, receivers)`` float64 of one model, through the same compiled engine calls as
    ``simulate_with_pullback`` (backend tensors of the same shapes: no second compilation)."""
    from keras import ops

    from data_prep.forward import simulate

    def one(job):
        sub, sub_wavelet = job
        model = ops.convert_to_tensor(np.asarray(velocity_mps, np.float32)[None])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            gathers = simulate(model, sub, engine, wavelet=sub_wavelet, velocity_bounds_mps=bounds_mps)
        return np.asarray(ops.convert_to_numpy(gathers), np.float64)[0]

    groups = shot_groups(geometry.num_sources, shots_per_call)
    if len(groups) == 1 and groups[0].size == geometry.num_sources:
        return one((geometry, wavelet))
    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        parts = list(pool.map(one, [_group_job(geometry, wavelet, group) for group in groups]))
    gathers = np.empty((geometry.num_sources, geometry.num_samples, geometry.num_receivers))
    for group, part in zip(groups, parts, strict=True):
        gathers[group] = part
    return gathers


# ----------------------------------------------------------------------------------------------------------
# The objective
# ----------------------------------------------------------------------------------------------------------


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
        misfit, scale, polarity, lag = self.full_band(simulated)
        change = float(np.mean(np.abs(velocity - self.start))) if self.start is not None else 0.0
        prior_value = 0.0
        if self.prior_weight > 0 and self.start is not None:
            departure = (velocity - self.start) / PRIOR_SCALE_MPS
            prior_value = 0.5 * self.prior_weight * float(np.mean(departure**2))
        entry = {
            "evaluation": len(self.history),
            "stage": self.stage,
            "cutoff_hz": self.cutoff_hz,
            "band_misfit": math.sqrt(2 * value * self.data_normaliser),
            "misfit": misfit,
            "source_scale": scale,
            "change_mps": change,
        }
        if self.truth is not None:
            entry["velocity_mae_mps"] = velocity_errors(velocity, self.truth)["velocity_mae_mps"]
        self.history.append(entry)
        if self.best is None or misfit < self.best[0]:
            self.best = (misfit, entry["evaluation"], np.array(velocity, np.float64), scale, polarity, lag)
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
        if not (self.prior_weight > 0 and self.start is not None):
            return np.zeros_like(velocity)
        return self.prior_weight * (velocity - self.start) / (PRIOR_SCALE_MPS**2 * velocity.size)


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


class _StageConverged(Exception):
    """The stage's objective stopped falling: its remaining iterations go to the next stage."""


# ----------------------------------------------------------------------------------------------------------
# Preconditioning: smoothing that keeps the structure
# ----------------------------------------------------------------------------------------------------------


def structure_edges(velocity_mps: np.ndarray) -> np.ndarray:
    """An edge map ``(depth, x)`` in [0, 1] from a velocity model's own contrasts: the gradient magnitude
    over its 90th percentile, clipped (what a network's edge head gives, when it has none)."""
    from scipy.ndimage import sobel

    velocity = np.asarray(velocity_mps, np.float64)
    magnitude = np.hypot(sobel(velocity, axis=0, mode="nearest"), sobel(velocity, axis=1, mode="nearest"))
    reference = float(np.percentile(magnitude, 90))
    if not reference > 0:
        return np.zeros_like(velocity)
    return np.clip(magnitude / reference, 0.0, 1.0)


def edge_preserving_smoothing(values: np.ndarray, sigma_cells: float, edges: np.ndarray | None) -> np.ndarray:
    """Diffusion of ``values`` over a length of ``sigma_cells`` (a Gaussian's standard deviation) whose
    conductance between two cells is ``1 - max(edge)`` of the two: smooth within layers, little exchange
    across the edges, so a change may jump there. A symmetric linear operator (so it may precondition a
    gradient). ``edges`` None: a plain Gaussian."""
    from scipy.ndimage import gaussian_filter

    values = np.asarray(values, np.float64)
    if not sigma_cells > 0:
        return values
    if edges is None:
        return gaussian_filter(values, sigma_cells, mode="nearest")
    conductance = 1.0 - np.clip(np.asarray(edges, np.float64), 0.0, 1.0)
    down = np.minimum(conductance[:-1], conductance[1:])  # faces between rows
    across = np.minimum(conductance[:, :-1], conductance[:, 1:])  # faces between columns
    rate = 0.2  # explicit scheme, stable below 0.25 in 2D
    steps = min(4000, max(1, math.ceil(sigma_cells**2 / (2 * rate))))
    smoothed = values.copy()
    for _ in range(steps):
        flux_down = down * (smoothed[1:] - smoothed[:-1])
        flux_across = across * (smoothed[:, 1:] - smoothed[:, :-1])
        change = np.zeros_like(smoothed)
        change[:-1] += flux_down
        change[1:] -= flux_down
        change[:, :-1] += flux_across
        change[:, 1:] -= flux_across
        smoothed += rate * change
    return smoothed


def _update_filter(
    shape: tuple[int, int],
    geometry: AcquisitionGeometry,
    config: RefineConfig,
    sigma_cells: float | None = None,
    edges: np.ndarray | None = None,
):
    """The gradient's smoothing and muting, as one function ``(depth, x) -> (depth, x)``."""
    mask = np.ones(shape)
    if config.mute_top_cells:
        shallowest = min(min(c[0] for c in geometry.source_cells), min(c[0] for c in geometry.receiver_cells))
        mask[: shallowest + config.mute_top_cells + 1] = 0.0
    sigma = config.smoothing_cells if sigma_cells is None else sigma_cells

    def apply(gradient: np.ndarray) -> np.ndarray:
        return edge_preserving_smoothing(gradient * mask, sigma, edges) * mask

    return apply


def stage_smoothing_cells(
    config: RefineConfig, cutoff_hz: float | None, velocity_mps: np.ndarray, geometry: AcquisitionGeometry
) -> float:
    """Smoothing length of a stage: ``smoothing_wavelengths`` of its wavelength (median velocity over the
    cut-off, or over twice the peak frequency for the full band), at least ``smoothing_cells``."""
    frequency = cutoff_hz if cutoff_hz is not None else 2.0 * geometry.peak_frequency_hz
    wavelength_cells = float(np.median(velocity_mps)) / frequency / geometry.grid_spacing_m
    return max(config.smoothing_cells, config.smoothing_wavelengths * wavelength_cells)


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
        0.5 * objective.prior_weight * float(np.mean(((start - objective.start) / PRIOR_SCALE_MPS) ** 2))
        if objective.start is not None and objective.prior_weight > 0
        else 0.0
    )
    normaliser = data_value0 if data_value0 > 0 else 1.0
    objective.data_normaliser = normaliser
    gradient0 = condition(raw0) / normaliser + objective.prior_gradient(start)
    value0 = data_value0 / normaliser + (value0 - data_value0)
    largest = float(np.max(np.abs(gradient0)))
    if not largest > 0 or iterations < 2:
        return start
    # x = (v - v0) / scale: L-BFGS-B's first step has unit norm in x, so it changes the largest cell by about
    # step_mps.
    scale = config.step_mps * float(np.linalg.norm(gradient0)) / largest
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
    edges: np.ndarray | None = None,
    trace_mask: np.ndarray | None = None,
) -> RefineResult:
    """Full-waveform inversion of one window (or line) from a starting model (see the module docstring).

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
    bounds = (float(bounds[0]), float(bounds[1]))
    engine = refinement_engine(engine, geometry.num_samples, config, geometry)
    method = source_correction if config.source_correction == "qc" else config.source_correction
    truth = None if true_velocity_mps is None else np.asarray(true_velocity_mps, np.float64)

    start = np.clip(initial, *bounds)
    clipped = int(np.sum(start != initial))
    objective = _Objective(
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
        scope=config.wavelet_scope,
        trace_mask=trace_mask,
        shots_per_call=config.shots_per_call,
    )
    objective.start = start
    objective.prior_weight = config.prior_weight
    structure = None
    if config.structure == "edges":
        structure = np.asarray(edges, np.float64) if edges is not None else structure_edges(start)
    optimizer = _adam if config.optimizer == "adam" else _lbfgs
    velocity = start
    stages = config.stages(geometry.peak_frequency_hz, geometry.num_samples * geometry.sample_interval_s)
    stage_records: list[dict[str, Any]] = []
    if config.iterations == 0:  # no iterations: evaluate the start only
        objective.set_band(0, None)
        objective.evaluate(start, gradient=False)
    stopped = ""
    carried = 0
    for stage, (cutoff, count) in enumerate(stages):
        count += carried
        if count <= 0:
            continue
        objective.set_band(stage, cutoff)
        sigma = stage_smoothing_cells(config, cutoff, start, geometry)
        condition = _update_filter(start.shape, geometry, config, sigma, structure)
        used_before = objective.evaluations
        try:
            objective.budget = used_before + count
            velocity = optimizer(objective, velocity, count, config, condition)
        except _BudgetExhausted:
            pass
        except _GradientNotFinite as error:
            stopped = str(error)
            break
        used = objective.evaluations - used_before
        carried = count - used
        stage_records.append({"cutoff_hz": cutoff, "iterations": used, "smoothing_cells": sigma})
    if config.iterations:
        # The last update has not been evaluated yet: one forward pass, full band.
        objective.set_band(len(stages) - 1, None)
        objective.evaluate(velocity, gradient=False)

    misfit_before = objective.history[0]["misfit"]
    misfit_last = objective.history[-1]["misfit"]
    best_misfit, best_evaluation, best_velocity, best_scale, best_polarity, best_lag = objective.best
    warning = ""
    change = float(np.mean(np.abs(best_velocity - start)))
    if config.iterations and not best_misfit < misfit_before:
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
        config.iterations
        and change > WEAK_FIT_CHANGE_MPS
        and (misfit_before - best_misfit) < (WEAK_FIT_RELATIVE_DECREASE * misfit_before)
    ):
        warning = (
            f"the model changed by {change:.0f} m/s on average while the data misfit fell only "
            f"{100 * (misfit_before - best_misfit) / misfit_before:.1f} % ({misfit_before:.4g} -> {best_misfit:.4g}): "
            "the change is weakly constrained by the data; compare with the network's section."
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


#: ``refine`` warns when the model moved by more than this (mean |change|, m/s) ...
WEAK_FIT_CHANGE_MPS = 30.0
#: ... while the data misfit fell by less than this fraction.
WEAK_FIT_RELATIVE_DECREASE = 0.05


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
    edges: np.ndarray | None = None,
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
        edges: ``(windows, depth, x)`` the network's edge maps (the structural prior), or None.

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
                edges=None if edges is None else edges[index],
            )
        except ValueError as error:  # the engine refused (e.g. CFL): keep the network's model, say why
            record["refine_note"] = f"not refined: {error}"
            results.append((prediction, record))
            continue
        record.update(result.record())
        record["refine_note"] = result.warning
        results.append((result.velocity_mps, record))
    return results


@dataclass
class LineSurvey:
    """The windows of a line gathered into one survey over the whole section (``mode="line"``).

    Attributes:
        geometry: the section's grid ``(depth, columns)`` with every distinct shot and receiver of the windows.
        observed: ``(shots, time, receivers)`` the windows' traces at their place on the line (zero where not
            recorded; a trace seen by several windows is their mean).
        trace_mask: ``(shots, receivers)`` 1 where a window recorded the trace.
    """

    geometry: AcquisitionGeometry
    observed: np.ndarray
    trace_mask: np.ndarray


def line_survey(
    observed_windows: Sequence[np.ndarray],
    column_starts: Sequence[int],
    window_geometry: AcquisitionGeometry,
    num_columns: int,
) -> LineSurvey:
    """Places each window's gathers ``(shots, time, receivers)`` at its first section column.

    Raises:
        ValueError: a count of windows and starts that differ, a window outside the section.
    """
    if len(observed_windows) != len(column_starts):
        raise ValueError(
            f"Give one column start per window. Received: {len(observed_windows)} windows, "
            f"{len(column_starts)} starts"
        )
    width = window_geometry.grid_shape[1]
    starts = [int(c) for c in column_starts]
    if starts and (min(starts) < 0 or max(starts) + width > num_columns):
        raise ValueError(
            f"Every window must lie inside the section's {num_columns} columns (window width {width}). "
            f"Received: starts {min(starts)}..{max(starts)}"
        )
    shots: dict[tuple[int, int], int] = {}
    receivers: dict[tuple[int, int], int] = {}
    for start in starts:
        for depth, x in window_geometry.source_cells:
            shots.setdefault((depth, x + start), len(shots))
        for depth, x in window_geometry.receiver_cells:
            receivers.setdefault((depth, x + start), len(receivers))
    shot_order = sorted(shots, key=lambda cell: (cell[1], cell[0]))
    receiver_order = sorted(receivers, key=lambda cell: (cell[1], cell[0]))
    shot_index = {cell: i for i, cell in enumerate(shot_order)}
    receiver_index = {cell: i for i, cell in enumerate(receiver_order)}
    num_samples = window_geometry.num_samples
    total = np.zeros((len(shot_order), num_samples, len(receiver_order)))
    count = np.zeros((len(shot_order), len(receiver_order)))
    for gathers, start in zip(observed_windows, starts, strict=True):
        gathers = np.asarray(gathers, np.float64)
        rows = [shot_index[(d, x + start)] for d, x in window_geometry.source_cells]
        columns = [receiver_index[(d, x + start)] for d, x in window_geometry.receiver_cells]
        total[np.ix_(rows, range(num_samples), columns)] += gathers
        count[np.ix_(rows, columns)] += 1.0
    observed = total / np.maximum(count, 1.0)[:, None, :]
    geometry = window_geometry.replace(
        grid_shape=(window_geometry.grid_shape[0], int(num_columns)),
        source_cells=tuple(shot_order),
        receiver_cells=tuple(receiver_order),
    )
    return LineSurvey(geometry, observed, (count > 0).astype(np.float64))


def refine_line(
    observed_windows: Sequence[np.ndarray],
    column_starts: Sequence[int],
    initial_section_mps: np.ndarray,
    setup: Any,
    config: RefineConfig,
    bounds_mps: tuple[float, float] | None,
    source_correction: str = "scale",
    *,
    true_section_mps: np.ndarray | None = None,
    edges: np.ndarray | None = None,
) -> RefineResult:
    """Refines the whole section at once (``mode="line"``): no windows, so no seams.

    Args:
        observed_windows: per window ``(shots, time, receivers)`` gathers on the model's window geometry.
        column_starts: per window its first column in the section.
        initial_section_mps: ``(depth, columns)`` the network's stitched section (no NaN: fill gaps first).
        setup: ``pipeline.qc.EngineSetup`` of the model's window (geometry, engine settings, wavelet).
        config, bounds_mps, source_correction: as for ``refine``.
        true_section_mps, edges: ``(depth, columns)`` truth and the network's edge section, or None.

    Returns:
        The ``RefineResult`` of the line (its misfits are over every recorded trace of every window).
    """
    section = np.asarray(initial_section_mps, np.float64)
    survey = line_survey(observed_windows, column_starts, setup.geometry, section.shape[1])
    wavelet = setup.wavelet
    if wavelet is not None and np.ndim(wavelet) == 2:
        raise ValueError("refine_line needs one wavelet for every shot (a (num_samples,) array) or None.")
    return refine(
        survey.observed,
        section,
        survey.geometry,
        setup.config,
        config,
        wavelet=wavelet,
        bounds_mps=bounds_mps,
        true_velocity_mps=true_section_mps,
        source_correction=source_correction,
        edges=edges,
        trace_mask=survey.trace_mask,
    )


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Line-wide refinement numbers: windows refined, windows whose **data misfit** fell (the only thing a
    refinement measures without a truth), median misfit before/after, the estimated wavelet's polarity, and
    median velocity MAE before/after when a truth was given."""

    def finite(key):
        values = np.asarray([row.get(key, np.nan) for row in rows], dtype=np.float64)
        return values[np.isfinite(values)]

    before, after = finite("refine_misfit_before"), finite("refine_misfit_after")
    result: dict[str, float] = {"num_refined": float(before.size)}
    if before.size:
        result["num_misfit_reduced"] = float(
            sum(
                1
                for row in rows
                if np.isfinite(row.get("refine_misfit_after", np.nan))
                and row["refine_misfit_after"] < row["refine_misfit_before"]
            )
        )
        result["num_warnings"] = float(sum(1 for row in rows if row.get("refine_note")))
        result["misfit_before_median"] = float(np.median(before))
        result["misfit_after_median"] = float(np.median(after))
        times = finite("refine_time_s")
        if times.size:
            result["time_per_window_s"] = float(np.mean(times))
    polarity = finite("refine_wavelet_polarity")
    if polarity.size:
        result["wavelet_polarity_median"] = float(np.median(polarity))
        result["wavelet_lag_median_s"] = float(np.median(finite("refine_wavelet_lag_s")))
    mae_before, mae_after = finite("refine_velocity_mae_before_mps"), finite("refine_velocity_mae_after_mps")
    if mae_before.size:
        result["velocity_mae_before_median_mps"] = float(np.median(mae_before))
        result["velocity_mae_after_median_mps"] = float(np.median(mae_after))
    return result


def summary_line(summary: Mapping[str, float]) -> str:
    """One line for the terminal: what was measured (the data misfit), and the velocity only with a truth."""
    if not summary.get("num_refined"):
        return "Refinement: no window refined."
    text = (
        "Refinement: data misfit median {misfit_before_median:.3g} -> {misfit_after_median:.3g}, lower in "
        "{num_misfit_reduced:.0f} of {num_refined:.0f} windows"
    ).format(**summary)
    if summary.get("num_warnings"):
        text += " ({num_warnings:.0f} with a warning: see refine_note in qc.csv)".format(**summary)
    if "wavelet_polarity_median" in summary:
        text += "; estimated wavelet polarity {:+.0f}, lag {:.0f} ms".format(
            summary["wavelet_polarity_median"], 1e3 * summary["wavelet_lag_median_s"]
        )
    return text


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
    "LineSurvey",
    "RefineResult",
    "band_limit",
    "edge_preserving_smoothing",
    "lowpass_response",
    "plot_refinement",
    "line_survey",
    "refine",
    "refine_line",
    "refine_windows",
    "refinement_engine",
    "shot_groups",
    "simulate_once",
    "simulate_with_pullback",
    "stage_smoothing_cells",
    "structure_edges",
    "summarise",
    "summary_line",
]
