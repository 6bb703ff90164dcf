"""The engine's settings: stencils, stability and dispersion limits, the CPML's design, ``EngineConfig``.

Everything here is plain Python and NumPy: what a configuration means (``EngineConfig``, the time stepping,
how the gradient's loop is checkpointed) and what it records (``engine_settings``, the provenance of every
synthesised dataset). The propagator that uses it is ``data_prep.forward.propagator``; the package docstring
of ``data_prep.forward`` has the equations and the amplitude convention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from data_prep.geometry import AcquisitionGeometry
from data_prep.wavelets import openfwi_ricker_delay_s

#: Name of the source amplitude convention, recorded with every dataset (see the docstring of ``data_prep.forward``):
#: the wavelet ``w`` enters as ``(v dt)^2 w[n]`` at the source cell, = -1 x Deepwave's ``scalar`` for
#: ``source_amplitudes = w`` (OpenFWI's polarity, Deepwave's magnitude).
AMPLITUDE_CONVENTION = "openfwi"

# --- Stencils -----------------------------------------------------------------------------------------------

#: Centred second-derivative weights ``c_0 .. c_h`` (times 1/dx^2) per spatial order.
SECOND_DERIVATIVE_WEIGHTS: dict[int, tuple[float, ...]] = {
    4: (-5.0 / 2.0, 4.0 / 3.0, -1.0 / 12.0),
    8: (-205.0 / 72.0, 8.0 / 5.0, -1.0 / 5.0, 8.0 / 315.0, -1.0 / 560.0),
}
#: Centred first-derivative weights ``d_1 .. d_h`` (times 1/dx) per spatial order, for the CPML terms.
FIRST_DERIVATIVE_WEIGHTS: dict[int, tuple[float, ...]] = {
    4: (2.0 / 3.0, -1.0 / 12.0),
    8: (4.0 / 5.0, -1.0 / 5.0, 4.0 / 105.0, -1.0 / 280.0),
}


def _critical_courant_number(spatial_order: int) -> float:
    """Largest stable ``vmax dt / dx`` of the 2D leapfrog scheme (von Neumann analysis).

    The 1D second-derivative stencil's symbol peaks at the Nyquist wavenumber with magnitude
    ``S = -(c_0 + 2 sum_k (-1)^k c_k)`` (times 1/dx^2); leapfrog in 2D is stable while
    ``(v dt / dx)^2 * 2 S <= 4``.
    """
    weights = SECOND_DERIVATIVE_WEIGHTS[spatial_order]
    nyquist_symbol = -(weights[0] + 2.0 * sum(w * (-1) ** k for k, w in enumerate(weights) if k > 0))
    return 2.0 / math.sqrt(2.0 * nyquist_symbol)


#: Stability limits of ``vmax * dt / dx``: 0.612 (4th order), 0.555 (8th order).
CRITICAL_COURANT_NUMBER: dict[int, float] = {order: _critical_courant_number(order) for order in (4, 8)}

#: Default dispersion threshold, cells per shortest wavelength, per spatial order. Both keep the
#: stencil's phase-velocity error below 3 % at the highest frequency checked (see docs): 4 cells give
#: 2.8 % at 4th order, 3 cells give 2.2 % at 8th order.
DEFAULT_MIN_CELLS_PER_WAVELENGTH: dict[int, float] = {4: 4.0, 8: 3.0}

#: The dispersion check looks at ``2.5 x`` the Ricker peak frequency, where the Ricker amplitude
#: spectrum has fallen to 3 % of its peak.
DISPERSION_FREQUENCY_FACTOR = 2.5

# --- CPML design (the coefficients: data_prep.forward.cpml) ------------------------------------------------

# Collino & Tsogka 2001; Komatitsch & Martin 2007: damping profile d(s) = d0 s^N with
# d0 = (N + 1) vmax ln(1/R) / (2 L), frequency shift alpha = pi f_peak (1 - s), s in (0, 1] across the layer.
# N = 3 (Deepwave, and this engine before, use N = 2): at the default 14 cells it reflects less than N = 2
# at 20 cells (Deepwave's default) in both measured cases, OpenFWI's survey (sources and receivers one cell
# below the top layer, 1 s: 0.008 % vs 0.026 % of the direct wave) and a mid-depth source with receivers
# 2 cells from the side and bottom layers (0.015 % vs 0.018 %), on 21 % fewer cells. See
# docs/forward_modelling.md.
CPML_POLYNOMIAL_ORDER = 3
CPML_THEORETICAL_REFLECTION = 1e-3

#: How a gradient with respect to velocity is computed (``EngineConfig.gradient``).
GRADIENT_METHODS = ("adjoint", "autodiff")

# --- Configuration ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineConfig:
    """Settings of the finite-difference engine (the survey itself is an ``AcquisitionGeometry``).

    Attributes:
        spatial_order: order of accuracy of the spatial stencils, 4 or 8.
        absorbing_width_cells: width of the CPML on each absorbing side, in cells. The layer is added
            outside the velocity model (the model's edge velocities are extended into it), so it costs
            compute but never covers model cells.
        free_surface: ``True`` puts a pressure-release (p = 0) surface half a cell above depth row 0
            instead of an absorbing layer at the top.
        ricker_delay_s: time of the default Ricker wavelet's peak, in seconds. ``None`` (the default) is
            OpenFWI's delay for the geometry's peak frequency and sample interval
            (``data_prep.wavelets.openfwi_ricker_delay_s``: 72 ms for 15 Hz at 1 ms), which makes
            synthesised gathers line up sample for sample with OpenFWI's. Ignored when ``simulate`` is
            given its own ``wavelet``.
        time_step_s: internal time step in seconds. ``None`` uses the geometry's ``sample_interval_s``.
            A smaller step must divide the sample interval an integer number of times (sub-stepping);
            the wavelet is then evaluated (or, if given, band-limited resampled) at the internal step
            and every ``sample_interval_s / time_step_s``-th wavefield is recorded.
        min_cells_per_wavelength: dispersion warning threshold: grid cells per wavelength at the slowest
            velocity and ``2.5 x`` the peak frequency. ``None`` picks the order's default
            (4 cells at 4th order, 3 cells at 8th order; see ``DEFAULT_MIN_CELLS_PER_WAVELENGTH``).
        max_concurrent_calls: for numpy velocity input only, run the batch as propagator calls on this
            many concurrent threads: the models in calls of a few models each (as many as keep a call's
            wavefields in a core's cache), or a single model's shots split over the threads. XLA runs each
            call's time loop on one core, so this is how the engine uses several cores. ``None`` = the number of
            CPU cores this process may use (its affinity mask; 1 when a GPU is in use); 1 = a single call. Backend-tensor input always runs as
            one call, so gradient tapes and tracers see the whole computation. Results do not depend on
            it.
        checkpoint_segments: the time loop runs in this many segments; a gradient stores the wavefields at
            segment starts only and recomputes each segment's steps while differentiating it (memory
            ``~(segments + steps / segments)`` wavefields instead of ``steps``, time ~1 extra forward).
            ``None`` = two nested levels of segments, the memory minimum (6 x 6 for 1000 samples, see
            ``resolved_checkpoint_segments``); K = one level of K segments; 1 = no checkpointing (every step
            stored). Results do not depend on it. With ``gradient="adjoint"``: K segments of the adjoint
            path (``None``: ``sqrt(steps / 6)``, its memory minimum; 1: the forward keeps every step's
            Laplacian and the reverse pass recomputes nothing, one forward faster; ``adjoint_segments``).
        gradient: how a gradient with respect to velocity is computed. ``"adjoint"`` (default): the
            adjoint-state method, a hand-written reverse pass of the whole time loop (the forward storing
            checkpoints, each segment recomputed, the adjoint wavefield propagated backwards by the
            transposed steps and correlated with the forward one): about 4 forwards per gradient.
            ``"autodiff"``: the backend's reverse mode through the time loop (the reference; ~15 forwards on
            TensorFlow). Both give the same gradient to float32 round-off; traces do not depend on it.
    """

    spatial_order: int = 4
    absorbing_width_cells: int = 14
    free_surface: bool = False
    ricker_delay_s: float | None = None
    time_step_s: float | None = None
    min_cells_per_wavelength: float | None = None
    max_concurrent_calls: int | None = None
    checkpoint_segments: int | None = None
    gradient: str = "adjoint"

    def __post_init__(self) -> None:
        if self.spatial_order not in SECOND_DERIVATIVE_WEIGHTS or isinstance(self.spatial_order, bool):
            raise ValueError(
                f"spatial_order must be 4 or 8. Received: {self.spatial_order!r}. "
                "Use 8 for coarse grids (fewer cells per wavelength), 4 otherwise."
            )
        if not isinstance(self.absorbing_width_cells, int) or self.absorbing_width_cells < 1:
            raise ValueError(
                "absorbing_width_cells must be a positive integer (10-30 is typical). "
                f"Received: {self.absorbing_width_cells!r}"
            )
        if self.time_step_s is not None and not self.time_step_s > 0:
            raise ValueError(f"time_step_s must be positive or None. Received: {self.time_step_s!r}")
        if self.ricker_delay_s is not None and not (
            np.isfinite(self.ricker_delay_s) and self.ricker_delay_s >= 0
        ):
            raise ValueError(
                "ricker_delay_s must be a non-negative number of seconds or None (OpenFWI's delay). "
                f"Received: {self.ricker_delay_s!r}"
            )
        if self.max_concurrent_calls is not None and (
            not isinstance(self.max_concurrent_calls, int) or self.max_concurrent_calls < 1
        ):
            raise ValueError(
                f"max_concurrent_calls must be a positive integer or None. Received: {self.max_concurrent_calls!r}"
            )
        if self.checkpoint_segments is not None and (
            not isinstance(self.checkpoint_segments, int)
            or isinstance(self.checkpoint_segments, bool)
            or self.checkpoint_segments < 1
        ):
            raise ValueError(
                "checkpoint_segments must be a positive integer (1 = no checkpointing) or None (automatic). "
                f"Received: {self.checkpoint_segments!r}"
            )
        if self.gradient not in GRADIENT_METHODS:
            raise ValueError(
                f"gradient must be one of {', '.join(map(repr, GRADIENT_METHODS))} ('adjoint': the "
                f"adjoint-state method, fastest; 'autodiff': the backend's reverse mode). Received: {self.gradient!r}"
            )
        if self.min_cells_per_wavelength is not None and not self.min_cells_per_wavelength > 0:
            raise ValueError(
                f"min_cells_per_wavelength must be positive or None. Received: {self.min_cells_per_wavelength!r}"
            )

    @property
    def resolved_min_cells_per_wavelength(self) -> float:
        """The dispersion threshold in use: the configured one or the order's default."""
        if self.min_cells_per_wavelength is not None:
            return float(self.min_cells_per_wavelength)
        return DEFAULT_MIN_CELLS_PER_WAVELENGTH[self.spatial_order]

    def resolved_ricker_delay_s(self, geometry: AcquisitionGeometry) -> float:
        """The default Ricker's delay in seconds: the configured one or OpenFWI's for this geometry."""
        if self.ricker_delay_s is not None:
            return float(self.ricker_delay_s)
        return openfwi_ricker_delay_s(geometry.peak_frequency_hz, geometry.sample_interval_s)

    def settings(self, geometry: AcquisitionGeometry, wavelet: Any = None) -> dict[str, Any]:
        """Every setting that determines the simulated traces, as a JSON-ready dict (see ``engine_settings``)."""
        return engine_settings(geometry, self, wavelet)


# --- Time stepping and checkpointing ------------------------------------------------------------------------


def resolved_checkpoint_segments(requested: int | None, num_pairs: int) -> tuple[int, ...]:
    """Segments per checkpointing level of a loop of ``num_pairs`` iterations (two time steps each).

    A checkpoint holds 6 wavefields (the state's 5 and the previous pressure); an iteration inside the
    innermost segment being differentiated keeps 2 (one Laplacian per step). ``requested`` = K: one level
    of K segments (capped at ``num_pairs``; 1 = no checkpointing), memory ``6 K + 2 N / K`` fields.
    ``None``: two nested levels of K segments each, memory ``12 K + 2 N / K**2``, smallest at
    ``K = (N / 3) ** (1/3)`` (6 x 6 for 1000 samples: ~100 fields instead of ~155 for the best single level,
    for one more recomputation)."""
    if num_pairs <= 1:
        return (1,)
    if requested is not None:
        return (max(1, min(int(requested), num_pairs)),)
    per_level = max(1, round((num_pairs / 3.0) ** (1.0 / 3.0)))
    if per_level <= 1:  # too short for two levels
        return (max(1, round(math.sqrt(num_pairs / 3.0))),)
    return (per_level, per_level)


def adjoint_segments(requested: int | None, num_pairs: int) -> tuple[int, int]:
    """(segments, pairs per segment) of the adjoint path's checkpointing for ``num_pairs`` two-step
    iterations: ``segments * pairs >= num_pairs``, the last segment running past the record if needed.

    Memory: 6 fields per checkpoint and one Laplacian per step of the segment being reversed,
    ``6 K + 2 N / K`` fields, smallest at ``K = sqrt(N / 3)`` (13 for 1000 samples), the default for
    ``None``; K = ``requested`` otherwise. K > 1 recomputes every segment once (about one forward); K = 1
    keeps every step's Laplacian from the forward itself and recomputes nothing (fastest: ~2 N fields)."""
    if num_pairs <= 1:
        return 1, max(1, num_pairs)
    if requested is None:
        requested = max(1, round(math.sqrt(num_pairs / 3.0)))
    pairs = -(-num_pairs // max(1, min(int(requested), num_pairs)))
    return -(-num_pairs // pairs), pairs


def time_stepping(geometry: AcquisitionGeometry, config: EngineConfig) -> tuple[float, int]:
    """Internal time step and the number of internal steps per recorded sample."""
    if config.time_step_s is None:
        return float(geometry.sample_interval_s), 1
    ratio = geometry.sample_interval_s / config.time_step_s
    substeps = round(ratio)
    if substeps < 1 or abs(ratio - substeps) > 1e-6 * ratio:
        raise ValueError(
            "time_step_s must divide the sample interval an integer number of times. Received: "
            f"time_step_s={config.time_step_s:g} s, sample_interval_s={geometry.sample_interval_s:g} s "
            f"(ratio {ratio:.6g}); use sample_interval_s / k for an integer k."
        )
    return float(geometry.sample_interval_s) / substeps, substeps


def stored_gradient_bytes(geometry: AcquisitionGeometry, config: EngineConfig, num_shots: int) -> int:
    """Bytes the adjoint-state gradient of one model keeps with ``checkpoint_segments=1``: one stretched
    Laplacian (float32, the padded grid) per time step and shot."""
    _, substeps = time_stepping(geometry, config)
    width = config.absorbing_width_cells
    depth_cells, x_cells = geometry.grid_shape
    cells = ((0 if config.free_surface else width) + depth_cells + width) * (x_cells + 2 * width)
    return 4 * cells * int(num_shots) * geometry.num_samples * substeps


# --- Provenance ---------------------------------------------------------------------------------------------


def engine_settings(
    geometry: AcquisitionGeometry, config: EngineConfig = EngineConfig(), wavelet: Any = None
) -> dict[str, Any]:
    """Every engine setting that determines the simulated traces, as a flat JSON-ready dict.

    Meant for provenance: the synthesis manifest and the HDF5 dataset store it, so a later stage can
    re-simulate a sample exactly (``simulate(velocity, geometry, EngineConfig(...))`` with the same values).
    Resolved values are recorded (the actual Ricker delay and time step, not ``None``).

    Args:
        geometry: the survey the traces are simulated for.
        config: engine settings.
        wavelet: the ``wavelet`` argument given to ``simulate`` (``None``: the default Ricker). A custom
            wavelet is recorded as ``"custom"`` (its samples are not stored here).

    Returns:
        A dict of str/int/float/bool/list values: ``equation``, ``wavelet``, ``peak_frequency_hz``,
        ``ricker_delay_s``, ``amplitude_convention``, ``source_injection``, ``spatial_order``,
        ``time_order``, ``free_surface``, ``absorbing_boundary``, ``absorbing_width_cells``,
        ``cpml_reflection_coefficient``, ``cpml_polynomial_order``, ``time_step_s``, ``substeps_per_sample``, ``sample_interval_s``,
        ``num_samples``, ``grid_spacing_m``, ``source_depth_m``, ``receiver_depth_m`` (one per shot /
        receiver), ``recording``.
    """
    time_step_s, substeps = time_stepping(geometry, config)
    custom = wavelet is not None
    return {
        "equation": "2D constant-density acoustic wave equation, pressure",
        "wavelet": "custom" if custom else "ricker",
        "peak_frequency_hz": float(geometry.peak_frequency_hz),
        "ricker_delay_s": None if custom else config.resolved_ricker_delay_s(geometry),
        "amplitude_convention": AMPLITUDE_CONVENTION,
        "source_injection": "(v dt)^2 w[n] added at the source cell (= -1 x Deepwave scalar, OpenFWI polarity)",
        "spatial_order": int(config.spatial_order),
        "time_order": 2,
        "free_surface": bool(config.free_surface),
        "absorbing_boundary": "cpml",
        "absorbing_width_cells": int(config.absorbing_width_cells),
        "cpml_reflection_coefficient": CPML_THEORETICAL_REFLECTION,
        "cpml_polynomial_order": CPML_POLYNOMIAL_ORDER,
        "time_step_s": float(time_step_s),
        "substeps_per_sample": int(substeps),
        "sample_interval_s": float(geometry.sample_interval_s),
        "num_samples": int(geometry.num_samples),
        "grid_spacing_m": float(geometry.grid_spacing_m),
        "source_depth_m": [float(depth) for depth in geometry.source_positions_m()[:, 0]],
        "receiver_depth_m": [float(depth) for depth in geometry.receiver_positions_m()[:, 0]],
        "recording": "sample k = pressure at k * sample_interval_s; sample 0 = the state at rest",
    }
