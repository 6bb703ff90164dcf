"""The refinement's settings and its result: ``RefineConfig`` (with its frequency schedule) and ``RefineResult``.

Part of ``pipeline.refine``. ``RefineConfig`` is what ``--refine N`` and ``refine.*`` in the inference
configuration set, checked when it is built; ``RefineConfig.stages`` turns it into the frequency schedule
(low-pass cut-offs rising to the full band, and the iterations of each stage). ``RefineResult`` is what
``refine`` returns for a window or a line, with the per-window values ``pipeline.infer`` records
(``REFINE_FIELDS``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

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

#: A network's prediction is blocky: whole layers and bodies, often at the wrong level. The region stage fixes
#: levels from such a start and not from a smooth one (docs/refinement.md), so ``pipeline.infer`` (always a
#: network's start) turns it on, for all but one of 20 iterations (chosen on tuning lines: section MAE -14.9 %
#: and -7.4 % on two sets of six, against -14.5 % and -6.0 % with 0.7, in about half the time) ...
INFER_REGION_FRACTION = 0.95
#: ... and holds the cell-by-cell stages after it closer to its result than ``RefineConfig()`` holds a start
#: (chosen on tuning lines with a region fraction of 0.7: section MAE -14.5 % against -12.5 % with 0.5 and
#: 0.5; docs/refinement.md).
INFER_PRIOR_WEIGHT = 2.0
#: ... and holds the region stage itself near the network's levels, weakly: a body moved by 1,000 m/s for a
#: small gain in fit (a weakly lit region at a window's edge) costs more than the data give back, a layer
#: moved by 200 m/s hardly anything (chosen on tuning lines once the shots were simulated where they were
#: fired: section MAE -14.0 % and -6.1 % against -13.9 % and -3.9 % without, one structural-salt line +0.3 %
#: against +19.4 %; 0.02 and 0.2 gave -15.1 / -5.1 % (five lines) and -11.9 / -5.6 %; docs/refinement.md).
INFER_REGION_PRIOR_WEIGHT = 0.05

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
        region_fraction: this fraction of ``iterations`` (rounded, at most all but one) goes to a first stage,
            in the first band with its own prior (``region_prior_weight``), that updates one velocity per
            region of the start model (its layers and bodies, ``pipeline.refine.structure.structure_regions``):
            a layer's or a body's level moves as a whole before any cell moves on its own; the later stages'
            prior then pulls towards that stage's result. 0 (the default here): off. ``pipeline.infer``, whose start is always a
            network's prediction, uses 0.95 (``INFER_REGION_FRACTION``, with ``prior_weight``
            ``INFER_PRIOR_WEIGHT``): it lowered the section MAE from a network's start and raised it from a smooth
            one (docs/refinement.md).
        region_prior_weight: ``prior_weight`` of the region stage (the departure from the start); 0: none.
        padding_cells: ``mode: "window"``: up to this many columns added on each side of a window (the
            network's edge columns continued into them), so the refinement also fits every trace the window's
            shots recorded there: offsets longer than the window's own, which see deeper. Only the window's
            columns are kept. The time per window grows with the modelled width. 0 (the default here): the
            window's own receivers; ``pipeline.infer`` uses ``INFER_PADDING_CELLS``. Not used with
            ``mode: "line"``.
        mute_top_cells: no update in this many rows below the shallowest source/receiver row (and above it).
        source_correction: ``"estimate"`` (finite-length matching filter, default), ``"qc"`` (the physics
            QC's setting), ``"scale"``, ``"wavelet"`` (QC's frequency-domain filter) or ``"none"``.
        wavelet_max_lag_s: ``"estimate"``: the filter spans lags ``-max_lag .. +max_lag`` around the data's
            delay when the caller knows it (``refine(wavelet_delay_s=...)``; ``pipeline.infer``: the input
            correction's estimate), else around 0: the largest delay it absorbs beyond that.
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
    region_fraction: float = 0.0
    region_prior_weight: float = 0.0
    padding_cells: int = 0
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
        if not (math.isfinite(self.region_fraction) and 0 <= self.region_fraction < 1):
            refuse("region_fraction", "a fraction in [0, 1) of the iterations (e.g. 0.5; 0: no region stage)")
        if not (math.isfinite(self.region_prior_weight) and self.region_prior_weight >= 0):
            refuse("region_prior_weight", ">= 0 (e.g. 0.05; 0: the region stage moves freely)")
        if (
            isinstance(self.padding_cells, bool)
            or not isinstance(self.padding_cells, int)
            or self.padding_cells < 0
        ):
            refuse(
                "padding_cells", "a non-negative integer of columns (e.g. 35; 0: the window's own receivers)"
            )
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

    @property
    def region_iterations(self) -> int:
        """The region stage's share of ``iterations``: ``region_fraction`` of them, rounded, at most all but one."""
        return max(0, min(round(self.iterations * self.region_fraction), self.iterations - 1))

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
            "region_fraction": 0.0,
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
