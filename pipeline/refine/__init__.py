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
* **first moves whole layers and bodies** (``region_fraction``; 95 % of the iterations in ``pipeline.infer``,
  off by default here, as from a smooth start it does harm): the start is split
  into regions of similar velocity (``structure_regions``) and one velocity per region is updated, in the
  first band, with its own weak prior (``region_prior_weight``). A network's errors on unfamiliar geology
  are mostly a layer or a body at the wrong level, which cell-by-cell updates held near the start do not
  fix in a few iterations;
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

Whole line (``mode="line"``, ``refine_line``): one model for the whole section; each window's shots are
simulated over the window's own columns of it, as in window mode, and the windows' residuals add up to one
objective whose gradient lands on the one model (``_LineObjective``): no seams, and an evaluation costs
what the windows cost, whatever the line's length.

Speed: the engine is compiled once per shape. All stages use the same compiled functions (the low-pass is
applied to the engine's output in NumPy, outside them); shots are split into equal groups (the last one
padded with a repeated shot) that run on concurrent threads, one per CPU core, so a window uses both cores of
a 2-core machine with a single compilation. The engine's gradient is the adjoint-state method
(``EngineConfig.gradient``: the adjoint wavefield propagated backwards by the transposed steps, ~4 forwards
per gradient instead of ~15 for the backend's reverse mode); where memory allows the forward keeps every
step's Laplacian (``refinement_engine``), else one level of checkpointing (``checkpoint_segments``).

The package holds one module per concept; the rest of the code imports from ``pipeline.refine``, and its
modules import each other by their full names:

==================================  ===================================================================
module                              holds
==================================  ===================================================================
``pipeline.refine.config``          ``RefineConfig`` (settings, checks, the frequency schedule
                                    ``stages``), ``RefineResult``, ``REFINE_FIELDS``
``pipeline.refine.frequency``       band limitation: ``lowpass_response``, ``band_limit``
``pipeline.refine.engine``          the engine with its gradient: ``refinement_engine``,
                                    ``shot_groups``, ``simulate_with_pullback``, ``simulate_once``
``pipeline.refine.objective``       the objective: misfit after the source correction (the estimated
                                    wavelet), the prior, the adjoint source, the best model seen; a
                                    line's windows as one objective (``_LineObjective``)
``pipeline.refine.structure``       preconditioning that keeps the structure: ``structure_edges``,
                                    ``edge_preserving_smoothing``, ``stage_smoothing_cells``, the region
                                    stage's ``structure_regions``
``pipeline.refine.optimizers``      the updates of a stage: L-BFGS-B and projected Adam
``pipeline.refine.inversion``       the pure function ``refine``: the stages, the best iterate, warnings
``pipeline.refine.line``            the windows of a line: ``refine_windows``, ``line_geometry``,
                                    ``line_survey``, ``LineSurvey``, ``refine_line``, ``span_geometry`` (a
                                    window widened for longer offsets)
``pipeline.refine.report``          ``summarise``, ``summary_line``, ``plot_refinement``
==================================  ===================================================================
"""

from pipeline.refine.config import (
    MIN_ITERATIONS_PER_STAGE,
    MIN_PERIODS_PER_RECORD,
    REFINE_FIELDS,
    SOURCE_CORRECTIONS,
    RefineConfig,
    RefineResult,
)
from pipeline.refine.engine import (
    STORED_GRADIENT_BYTES,
    refinement_engine,
    shot_groups,
    simulate_once,
    simulate_with_pullback,
)
from pipeline.refine.frequency import band_limit, lowpass_response
from pipeline.refine.inversion import WEAK_FIT_CHANGE_MPS, WEAK_FIT_RELATIVE_DECREASE, refine
from pipeline.refine.line import (
    LineSurvey,
    line_geometry,
    line_survey,
    refine_line,
    refine_windows,
    span_geometry,
)
from pipeline.refine.objective import PRIOR_SCALE_MPS
from pipeline.refine.objective import _Objective as _Objective  # the tests check its gradient
from pipeline.refine.report import plot_refinement, summarise, summary_line
from pipeline.refine.structure import (
    edge_preserving_smoothing,
    stage_smoothing_cells,
    structure_edges,
    structure_regions,
)

__all__ = [
    "MIN_ITERATIONS_PER_STAGE",
    "MIN_PERIODS_PER_RECORD",
    "PRIOR_SCALE_MPS",
    "REFINE_FIELDS",
    "SOURCE_CORRECTIONS",
    "STORED_GRADIENT_BYTES",
    "WEAK_FIT_CHANGE_MPS",
    "WEAK_FIT_RELATIVE_DECREASE",
    "RefineConfig",
    "LineSurvey",
    "RefineResult",
    "band_limit",
    "edge_preserving_smoothing",
    "lowpass_response",
    "plot_refinement",
    "line_geometry",
    "line_survey",
    "refine",
    "refine_line",
    "refine_windows",
    "span_geometry",
    "refinement_engine",
    "shot_groups",
    "simulate_once",
    "simulate_with_pullback",
    "stage_smoothing_cells",
    "structure_edges",
    "structure_regions",
    "summarise",
    "summary_line",
]
