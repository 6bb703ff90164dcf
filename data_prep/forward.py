"""Acoustic forward modelling: velocity models in, shot gathers out.

This is the physics engine of the data pipeline. ``data_prep.synthesize`` calls :func:`simulate` to turn
velocity models into seismic shot gathers, and later stages call it again to check predicted velocity
models against recorded data (it is differentiable with respect to velocity).

The engine solves the 2D constant-density acoustic wave equation for pressure ``p``

    (1 / v(x)^2) d^2p/dt^2 - laplacian(p) = s(t) delta(x - x_source)

with

* second-order (leapfrog) time stepping and 4th- or 8th-order centred spatial stencils;
* a convolutional perfectly matched layer (CPML, the second-order formulation of Pasalic & McGarry,
  SEG 2010, in Deepwave's single-pass form) on every absorbing side, its damping scaled per velocity
  model so the theoretical reflection is the same for every model of a batch;
* an optional pressure-release free surface half a cell above the first grid row (odd image of the
  wavefield), so sources and receivers may sit on row 0;
* point sources of any wavelet (a Ricker by default) and point receivers at arbitrary grid cells;
* one call for a whole batch: shots and velocity models are both leading axes of the wavefield, so a
  single fused kernel updates pressure and CPML memory variables of every shot of every model at each
  time step.

Everything numerical is written with ``keras.ops`` and therefore runs under TensorFlow and JAX. The
time loop is one ``keras.ops`` loop compiled with XLA. The only backend-aware code is the small "backend
glue" section (``_xla_compile``, ``_fixed_trip_loop``, ``_register_tensorflow_slice_update_gradient``,
``_accelerator_present``). Compiled propagators are cached per static configuration, and the backends
cache per input shape, so repeated calls with the same shapes pay the compilation once.

Discretisation (documented in ``docs/forward_modelling.md`` together with the tolerances of the physics
tests)::

    p[n+1] = 2 p[n] - p[n-1] + (v dt / dx)^2 * dx^2 L p[n] + (v dt)^2 * w[n] * [x == x_source]

``L`` being the discrete (CPML-stretched) Laplacian and ``w`` the wavelet (a unit-peak Ricker by
default); recorded sample ``k`` is ``p`` at time ``k * sample_interval_s`` (sample 0 = the state at rest).

Amplitude convention (``AMPLITUDE_CONVENTION``, "openfwi"): the wavelet is injected as ``(v dt)^2 w[n]``
at the source cell, which is what OpenFWI's modeller does and, up to the sign, what Deepwave's ``scalar``
propagator does: Deepwave solves ``laplacian(u) - u_tt / v^2 = f`` and adds ``-v^2 dt^2 f[n]`` at the
source cell. A unit Ricker therefore gives Deepwave's magnitude (our traces are ``-1`` times Deepwave's
for the same ``f = w``) with OpenFWI's polarity (the direct wave is positive). In terms of the continuous
equation above, ``s(t) = dx^2 w(t)``: the wavelet is the source's density over one grid cell, and a
textbook point source of strength ``s`` is ``w = s / dx^2`` (the factor between the engine's earlier
convention, a point source of strength ``w``, and this one is ``dx^2``: 100 m^2 on OpenFWI's grid).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from data_prep.geometry import AcquisitionGeometry
from data_prep.wavelets import openfwi_ricker_delay_s, ricker

#: Name of the source amplitude convention, recorded with every dataset (see the module docstring):
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

# CPML design (Collino & Tsogka 2001; Komatitsch & Martin 2007): damping profile d(s) = d0 s^N with
# d0 = (N + 1) vmax ln(1/R) / (2 L), frequency shift alpha = pi f_peak (1 - s), s in (0, 1] across the layer.
# N = 3 (Deepwave, and this engine before, use N = 2): at the default 14 cells it reflects less than N = 2
# at 20 cells (Deepwave's default) in both measured cases, OpenFWI's survey (sources and receivers one cell
# below the top layer, 1 s: 0.008 % vs 0.026 % of the direct wave) and a mid-depth source with receivers
# 2 cells from the side and bottom layers (0.015 % vs 0.018 %), on 21 % fewer cells. See
# docs/forward_modelling.md.
_CPML_POLYNOMIAL_ORDER = 3
_CPML_THEORETICAL_REFLECTION = 1e-3

# State fields, ordered so that every region's update is one contiguous block of fields: a region inside
# a depth layer writes all five, one between the depth layers CHI_X..PRESSURE.
CHI_X, ZETA_X, PRESSURE, CHI_DEPTH, ZETA_DEPTH = range(5)
NUM_FIELDS = 5

#: How a gradient with respect to velocity is computed (``EngineConfig.gradient``).
GRADIENT_METHODS = ("adjoint", "autodiff")

# Budget for the state buffers of one concurrent CPU call (numpy input): three quarters of a 2 MiB L2
# cache. One OpenFWI model (5 shots) needs 2.6 MB, so each call then holds 2-3 of its shots.
_CPU_CALL_STATE_BYTES = 3 * 2**19


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


def stored_gradient_bytes(geometry: AcquisitionGeometry, config: EngineConfig, num_shots: int) -> int:
    """Bytes the adjoint-state gradient of one model keeps with ``checkpoint_segments=1``: one stretched
    Laplacian (float32, the padded grid) per time step and shot."""
    _, substeps = _time_stepping(geometry, config)
    width = config.absorbing_width_cells
    depth_cells, x_cells = geometry.grid_shape
    cells = ((0 if config.free_surface else width) + depth_cells + width) * (x_cells + 2 * width)
    return 4 * cells * int(num_shots) * geometry.num_samples * substeps


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
    time_step_s, substeps = _time_stepping(geometry, config)
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
        "cpml_reflection_coefficient": _CPML_THEORETICAL_REFLECTION,
        "cpml_polynomial_order": _CPML_POLYNOMIAL_ORDER,
        "time_step_s": float(time_step_s),
        "substeps_per_sample": int(substeps),
        "sample_interval_s": float(geometry.sample_interval_s),
        "num_samples": int(geometry.num_samples),
        "grid_spacing_m": float(geometry.grid_spacing_m),
        "source_depth_m": [float(depth) for depth in geometry.source_positions_m()[:, 0]],
        "receiver_depth_m": [float(depth) for depth in geometry.receiver_positions_m()[:, 0]],
        "recording": "sample k = pressure at k * sample_interval_s; sample 0 = the state at rest",
    }


# --- Checks -------------------------------------------------------------------------------------------------


def check_stability(
    max_velocity_mps: float, grid_spacing_m: float, time_step_s: float, spatial_order: int
) -> float:
    """Checks the CFL condition of the leapfrog scheme and returns the Courant number.

    Args:
        max_velocity_mps: largest velocity of the model(s), m/s.
        grid_spacing_m: cell size, m.
        time_step_s: internal time step, s.
        spatial_order: 4 or 8.

    Returns:
        The Courant number ``max_velocity_mps * time_step_s / grid_spacing_m``.

    Raises:
        ValueError: the Courant number exceeds the stencil's stability limit
            (``CRITICAL_COURANT_NUMBER``); the message gives the largest stable time step.
    """
    if spatial_order not in CRITICAL_COURANT_NUMBER:
        raise ValueError(f"spatial_order must be 4 or 8. Received: {spatial_order!r}")
    for name, value in (
        ("max_velocity_mps", max_velocity_mps),
        ("grid_spacing_m", grid_spacing_m),
        ("time_step_s", time_step_s),
    ):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number. Received: {value!r}")
    courant = float(max_velocity_mps) * float(time_step_s) / float(grid_spacing_m)
    limit = CRITICAL_COURANT_NUMBER[spatial_order]
    if courant > limit:
        stable_dt_ms = 1e3 * limit * grid_spacing_m / max_velocity_mps
        raise ValueError(
            f"CFL number {courant:.2f} exceeds {limit:.2f} for {spatial_order}th-order stencil: "
            f"reduce dt below {stable_dt_ms:.2f} ms (e.g. EngineConfig(time_step_s=...) with an integer "
            f"number of steps per sample) or coarsen dx. Received: dt={1e3 * time_step_s:g} ms, "
            f"dx={grid_spacing_m:g} m, vmax={max_velocity_mps:g} m/s"
        )
    return courant


def check_dispersion(
    min_velocity_mps: float,
    grid_spacing_m: float,
    peak_frequency_hz: float,
    config: EngineConfig = EngineConfig(),
) -> float:
    """Warns when the grid samples the shortest wavelength too coarsely; returns the cells per wavelength.

    The shortest wavelength is ``min_velocity_mps / (2.5 * peak_frequency_hz)``.

    Args:
        min_velocity_mps: slowest velocity of the model(s), m/s.
        grid_spacing_m: cell size, m.
        peak_frequency_hz: Ricker peak frequency, Hz.
        config: engine settings (spatial order and threshold).

    Returns:
        Cells per shortest wavelength.
    """
    max_frequency_hz = DISPERSION_FREQUENCY_FACTOR * peak_frequency_hz
    cells = float(min_velocity_mps) / max_frequency_hz / float(grid_spacing_m)
    threshold = config.resolved_min_cells_per_wavelength
    # A tiny tolerance, so a geometry sitting exactly on the threshold (OpenFWI's, 4.0 cells) is not
    # flagged because of float rounding.
    if cells < threshold * (1.0 - 1e-9):
        warnings.warn(
            f"Numerical dispersion: {cells:.2f} cells per wavelength at vmin={min_velocity_mps:g} m/s and "
            f"{max_frequency_hz:g} Hz (2.5 x the {peak_frequency_hz:g} Hz peak), below the "
            f"{threshold:g} recommended for the {config.spatial_order}th-order stencil. Refine dx, lower the "
            "peak frequency or use spatial_order=8.",
            RuntimeWarning,
            stacklevel=3,
        )
    return cells


# --- Public entry point -------------------------------------------------------------------------------------


def simulate(
    velocity_mps: Any,
    geometry: AcquisitionGeometry,
    config: EngineConfig = EngineConfig(),
    wavelet: Any = None,
    *,
    velocity_bounds_mps: tuple[float, float] | None = None,
    max_threads: int | None = None,
):
    """Simulates shot gathers for one or a batch of velocity models.

    Args:
        velocity_mps: ``(batch, depth, x)`` or ``(depth, x)``, m/s; numpy array or backend tensor,
            cast to float32. ``(depth, x)`` must equal ``geometry.grid_shape``.
        geometry: survey geometry: grid spacing, time axis, source and receiver cells.
        config: engine settings.
        wavelet: source time function sampled at ``geometry.sample_interval_s``: ``(num_samples,)``
            shared by all shots or ``(num_shots, num_samples)``; ``None`` means a unit-peak Ricker
            wavelet of ``geometry.peak_frequency_hz`` peaking at ``config.resolved_ricker_delay_s``
            (OpenFWI's delay by default). It enters as ``(v dt)^2 w[n]`` at the source cell (the
            "openfwi" amplitude convention of the module docstring), so traces scale linearly with it.
        velocity_bounds_mps: ``(min, max)`` velocity used for the CFL and dispersion checks instead of
            reading the values, required when ``velocity_mps`` is traced (inside ``jax.grad``/``jit`` or a
            ``tf.function``), where the values cannot be read.
        max_threads: run the concurrent calls (``config.max_concurrent_calls``) on at most this many threads,
            without changing how the batch is cut into calls (which the last bits of the traces depend on):
            a Dask worker thread simulates a chunk on one core and still writes the bytes that this
            machine's in-process run writes. None = one thread per call.

    Returns:
        ``(batch, shots, time, receivers)`` float32 backend tensor of pressure, ``batch`` being 1 for a
        ``(depth, x)`` input. Sample ``k`` is at ``k * geometry.sample_interval_s``. Differentiable with
        respect to ``velocity_mps`` (not through the CPML damping, which is scaled by each model's maximum
        velocity treated as a constant).

    Raises:
        ValueError: wrong shape, non-positive or non-finite velocities, an unstable time step (CFL), a
            time step that does not divide the sample interval, or a wavelet of the wrong shape.

    Warns:
        RuntimeWarning: too few cells per wavelength (numerical dispersion).
    """
    differentiable_input = _is_backend_tensor(velocity_mps)
    velocity = velocity_mps if differentiable_input else np.asarray(velocity_mps, np.float32)
    shape = tuple(ops.shape(velocity))
    if len(shape) == 2:
        velocity = velocity[None]
        shape = (1, *shape)
    if len(shape) != 3 or tuple(shape[1:]) != tuple(geometry.grid_shape):
        raise ValueError(
            f"velocity_mps must have shape (batch, depth, x) or (depth, x) with (depth, x) equal to "
            f"geometry.grid_shape={tuple(geometry.grid_shape)}. Received: shape {shape}"
        )
    velocity = ops.cast(velocity, "float32") if differentiable_input else velocity.astype(np.float32)
    if min(geometry.grid_shape) < config.spatial_order // 2:
        raise ValueError(
            f"The grid must be at least {config.spatial_order // 2} cells in each direction for the "
            f"{config.spatial_order}th-order stencil. Received: grid_shape={tuple(geometry.grid_shape)}"
        )

    min_velocity, max_velocity = _velocity_bounds(velocity, velocity_bounds_mps)
    time_step_s, substeps = _time_stepping(geometry, config)
    check_stability(max_velocity, geometry.grid_spacing_m, time_step_s, config.spatial_order)
    check_dispersion(min_velocity, geometry.grid_spacing_m, geometry.peak_frequency_hz, config)

    source_time_functions = _source_time_functions(
        geometry, wavelet, time_step_s, substeps, config.resolved_ricker_delay_s(geometry)
    )
    propagate = _compiled_propagator(
        spatial_order=config.spatial_order,
        free_surface=config.free_surface,
        absorbing_width_cells=config.absorbing_width_cells,
        time_step_s=time_step_s,
        grid_spacing_m=float(geometry.grid_spacing_m),
        substeps=substeps,
        cpml_frequency_hz=float(geometry.peak_frequency_hz),
        # NumPy input cannot be differentiated: its time loop runs in one piece (checkpointing only
        # restructures the loop for a gradient that will never be taken).
        checkpoint_segments=config.checkpoint_segments if differentiable_input else 1,
        backend=keras.backend.backend(),
        gradient=config.gradient if differentiable_input else "autodiff",
    )

    def run(models, shots: slice):
        plan = _Plan.build(geometry.replace(source_cells=geometry.source_cells[shots]), config)
        return propagate(
            models,
            source_time_functions[:, shots],
            plan.source_depth_one_hot,
            plan.source_x_one_hot,
            plan.source_flat_index,
            plan.receiver_flat_index,
        )

    num_models = int(shape[0])
    workers = _concurrent_calls(config, differentiable_input, num_models, geometry.num_sources)
    if workers == 1:
        return run(velocity, slice(None))
    # XLA's CPU executables run one fused loop nest per kernel on one core; independent calls on
    # disjoint parts of the batch use the other cores. Only for numpy input: a gradient tape or tracer
    # would not see work done on other threads. The calls are cut small enough for their two state
    # buffers to stay in a core's L2 cache: with one large call per thread, 2 threads ran a batch no
    # faster than 1 thread (memory-bound), with cache-sized calls they scale.
    models_per_call, shot_groups = _call_size(geometry, config, num_models, workers)
    shot_bounds = np.linspace(0, geometry.num_sources, shot_groups + 1).round().astype(int)
    jobs = [
        (velocity[first : first + models_per_call], slice(low, high))
        for first in range(0, num_models, models_per_call)
        for low, high in zip(shot_bounds[:-1], shot_bounds[1:], strict=True)
    ]
    with ThreadPoolExecutor(max_workers=min(workers, max_threads or workers)) as pool:
        parts = list(pool.map(lambda job: ops.convert_to_numpy(run(*job)), jobs))
    rows = [np.concatenate(parts[i : i + shot_groups], axis=1) for i in range(0, len(parts), shot_groups)]
    return ops.convert_to_tensor(np.concatenate(rows, axis=0))


def _call_size(
    geometry: AcquisitionGeometry, config: EngineConfig, num_models: int, workers: int
) -> tuple[int, int]:
    """(models per call, groups the shots are split into) for concurrent CPU calls.

    Calls hold at most ``_CPU_CALL_STATE_BYTES`` of state, and there are at least ``workers`` of them
    when the batch allows it.
    """
    width, halo = config.absorbing_width_cells, config.spatial_order // 2
    top = 0 if config.free_surface else width
    depth_cells, x_cells = geometry.grid_shape
    cells = (top + depth_cells + width + 2 * halo) * (x_cells + 2 * width + 2 * halo)
    # Two buffers of five float32 fields (pressure and four CPML memory variables) per shot.
    bytes_per_model = 2 * 5 * 4 * cells * geometry.num_sources
    if bytes_per_model <= _CPU_CALL_STATE_BYTES and num_models >= workers:
        return min(-(-num_models // workers), _CPU_CALL_STATE_BYTES // bytes_per_model), 1
    # One model per call, its shots in groups: enough groups to fit the budget and to use every worker.
    groups = max(-(-bytes_per_model // _CPU_CALL_STATE_BYTES), -(-workers // num_models))
    return 1, min(groups, geometry.num_sources)


def available_cpu_count() -> int:
    """CPU cores this process may run on: its affinity mask where the OS has one (Linux: a container's or
    ``taskset``'s limit), else ``os.cpu_count()``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        return os.cpu_count() or 1


def _concurrent_calls(
    config: EngineConfig, differentiable_input: bool, num_models: int, num_shots: int
) -> int:
    """How many concurrent propagator calls to split a batch into (1 = a single call)."""
    if differentiable_input:
        return 1
    requested = resolved_concurrent_calls(config)
    return max(1, min(requested, max(num_models, num_shots)))


def resolved_concurrent_calls(config: EngineConfig) -> int:
    """``config.max_concurrent_calls``, or this machine's default for ``None``: one call per CPU core this
    process may use; on an accelerator one large call, which keeps the device busiest."""
    if config.max_concurrent_calls is not None:
        return config.max_concurrent_calls
    return 1 if _accelerator_present() else available_cpu_count()


# --- Input preparation --------------------------------------------------------------------------------------


def _is_backend_tensor(value: Any) -> bool:
    return not isinstance(value, np.ndarray | list | tuple | float | int) and hasattr(value, "shape")


def _velocity_bounds(velocity, bounds: tuple[float, float] | None) -> tuple[float, float]:
    """(min, max) velocity for the checks: the given bounds, else the values; validates positivity."""
    if bounds is not None:
        low, high = (float(b) for b in bounds)
        if not (0 < low <= high and np.isfinite(high)):
            raise ValueError(
                f"velocity_bounds_mps must be (min, max) with 0 < min <= max. Received: {bounds}"
            )
        return low, high
    try:
        values = np.asarray(ops.convert_to_numpy(ops.stop_gradient(velocity)))
    except Exception as error:  # tracers of jax.jit/grad or tf.function symbolic tensors
        raise ValueError(
            "velocity_mps is a traced tensor whose values cannot be read for the CFL and dispersion "
            "checks: pass velocity_bounds_mps=(min, max) when calling simulate inside jit/grad/tf.function."
        ) from error
    if not np.all(np.isfinite(values)):
        raise ValueError(
            "velocity_mps contains NaN or infinite values. Received a model with non-finite cells."
        )
    low, high = float(values.min()), float(values.max())
    if low <= 0:
        raise ValueError(f"velocity_mps must be positive everywhere (m/s). Received: minimum {low:g} m/s")
    return low, high


def _time_stepping(geometry: AcquisitionGeometry, config: EngineConfig) -> tuple[float, int]:
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


def _source_time_functions(
    geometry: AcquisitionGeometry, wavelet: Any, time_step_s: float, substeps: int, delay_s: float
) -> np.ndarray:
    """``(num_samples * substeps, num_shots)`` float32 source amplitudes at the internal time step."""
    num_steps = geometry.num_samples * substeps
    num_shots = geometry.num_sources
    if wavelet is None:
        single = ricker(geometry.peak_frequency_hz, num_steps, time_step_s, delay_s=delay_s)
        return np.repeat(single[:, None], num_shots, axis=1)
    values = np.asarray(ops.convert_to_numpy(wavelet) if _is_backend_tensor(wavelet) else wavelet, np.float32)
    if values.ndim == 1:
        values = np.broadcast_to(values[None, :], (num_shots, values.shape[0]))
    if values.shape != (num_shots, geometry.num_samples):
        raise ValueError(
            f"wavelet must have shape (num_samples,) = ({geometry.num_samples},) or (num_shots, num_samples) = "
            f"({num_shots}, {geometry.num_samples}). Received: shape {np.shape(wavelet)}"
        )
    if substeps > 1:
        # Band-limited (polyphase FIR) interpolation: the wavelet is assumed to be sampled above Nyquist
        # at the recording interval, as any wavelet worth recording is.
        from scipy.signal import resample_poly

        values = resample_poly(values.astype(np.float64), substeps, 1, axis=1).astype(np.float32)
    return np.ascontiguousarray(values.T)


@dataclass(frozen=True)
class _Plan:
    """Geometry turned into the small arrays the propagator needs (all in the padded domain)."""

    source_depth_one_hot: np.ndarray  # (shots, padded_depth) float32
    source_x_one_hot: np.ndarray  # (shots, padded_x) float32
    source_flat_index: np.ndarray  # (shots,) int32
    receiver_flat_index: np.ndarray  # (receivers,) int32

    @staticmethod
    def build(geometry: AcquisitionGeometry, config: EngineConfig) -> _Plan:
        width = config.absorbing_width_cells
        top = 0 if config.free_surface else width
        depth_cells, x_cells = geometry.grid_shape
        padded_depth, padded_x = top + depth_cells + width, 2 * width + x_cells
        sources = np.asarray(geometry.source_cells, np.int64) + np.array([top, width])
        receivers = np.asarray(geometry.receiver_cells, np.int64) + np.array([top, width])
        eye_depth, eye_x = np.eye(padded_depth, dtype=np.float32), np.eye(padded_x, dtype=np.float32)
        return _Plan(
            source_depth_one_hot=eye_depth[sources[:, 0]],
            source_x_one_hot=eye_x[sources[:, 1]],
            source_flat_index=(sources[:, 0] * padded_x + sources[:, 1]).astype(np.int32),
            receiver_flat_index=(receivers[:, 0] * padded_x + receivers[:, 1]).astype(np.int32),
        )


# --- Compiled propagator ------------------------------------------------------------------------------------


def _pad_edge(velocity, top: int, bottom: int, side: int):
    """Replicates the edge cells of ``(batch, depth, x)`` outwards (``mode="edge"``, which TF's pad lacks)."""
    parts = [ops.repeat(velocity[:, :1], top, axis=1)] if top else []
    parts += [velocity, ops.repeat(velocity[:, -1:], bottom, axis=1)]
    velocity = ops.concatenate(parts, axis=1)
    left, right = ops.repeat(velocity[:, :, :1], side, axis=2), ops.repeat(velocity[:, :, -1:], side, axis=2)
    return ops.concatenate([left, velocity, right], axis=2)


def _pad_edge_adjoint(cotangent, top: int, bottom: int, side: int):
    """The transpose of ``_pad_edge``: each padded cell's cotangent added to the edge cell it copies."""

    def fold(array, before: int, after: int, axis: int):
        length = int(array.shape[axis]) - before - after
        inner = ops.take(array, np.arange(before, before + length), axis=axis)
        shape = [1, 1, 1]
        shape[axis] = length
        for count, edge, cells in ((before, 0, np.arange(before)), (after, length - 1, None)):
            if not count:
                continue
            if cells is None:
                cells = np.arange(before + length, before + length + after)
            one_hot = np.zeros(length, np.float32)
            one_hot[edge] = 1.0
            summed = ops.sum(ops.take(array, cells, axis=axis), axis=axis, keepdims=True)
            inner = inner + summed * np.reshape(one_hot, shape)
        return inner

    return fold(fold(cotangent, top, bottom, 1), side, side, 2)


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


# --- Backend glue: the only code that knows which Keras backend runs -------------------------------------


@functools.lru_cache(maxsize=1)
def _accelerator_present() -> bool:
    """Whether the active backend computes on a GPU/TPU (backend glue, like ``_xla_compile``)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    return False


def _xla_compile(function):
    """Compiles ``function`` with XLA on the active Keras backend: the engine's only backend-specific code.

    ``keras.ops`` has no compile primitive, so this dispatches to ``tf.function(jit_compile=True)``
    (TensorFlow) or ``jax.jit`` (JAX). Other backends run the same ``keras.ops`` code uncompiled.
    Both compilers cache one executable per input shape and dtype. The result is differentiable with
    respect to its first argument (the velocity) only.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        _register_tensorflow_slice_update_gradient()
        _quiet_retracing_warnings()
        forward = tf.function(function, jit_compile=True, reduce_retracing=False)

        # An eager GradientTape around an XLA function would have to carry the loop's accumulators
        # across the XLA boundary, which TensorFlow does not support. The backward pass is therefore its
        # own XLA function that re-runs the forward under a tape inside XLA (the gradient costs one
        # extra forward); the forward call itself stores nothing.
        @tf.function(jit_compile=True, reduce_retracing=False)
        def velocity_vjp(upstream, velocity, *others):
            with tf.GradientTape() as tape:
                tape.watch(velocity)
                outputs = function(velocity, *others)
            return tape.gradient(outputs, velocity, output_gradients=upstream)

        def differentiable(velocity, *others):
            # Only the velocity goes through tf.custom_gradient: it would also watch the other inputs, and
            # watching the int32 shot/receiver indices printed TensorFlow's "The dtype of the watched tensor
            # must be floating" warning at every gradient (issue 22). They are constants of the call.
            @tf.custom_gradient
            def with_gradient(velocity):
                def gradient(upstream):
                    return velocity_vjp(upstream, velocity, *others)

                # stop_gradient: the tape must not record the forward call itself (see above).
                return forward(tf.stop_gradient(velocity), *others), gradient

            return with_gradient(velocity)

        return differentiable
    if backend == "jax":
        import jax

        return jax.jit(function)
    return function


def _xla_compile_with_adjoint(forward, storing, backward):
    """Like ``_xla_compile``, for a propagator with a hand-written reverse pass: ``forward(velocity,
    *others)`` gives the traces, ``storing(velocity, *others)`` the traces and the residuals,
    ``backward(upstream, residuals, velocity, *others)`` the velocity's cotangent. Each is compiled with
    XLA; the result is differentiable with respect to its first argument (the velocity) only. Backend
    glue: ``tf.custom_gradient`` or ``jax.custom_vjp``; other backends run ``forward`` uncompiled, without
    a gradient.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        _quiet_retracing_warnings()
        compiled_storing = tf.function(storing, jit_compile=True, reduce_retracing=False)
        compiled_backward = tf.function(backward, jit_compile=True, reduce_retracing=False)

        def differentiable(velocity, *others):
            # Only the velocity goes through tf.custom_gradient (it would watch the int32 indices too).
            @tf.custom_gradient
            def with_gradient(velocity):
                # stop_gradient: the tape must not record the compiled call itself (see _xla_compile).
                traces, residuals = compiled_storing(tf.stop_gradient(velocity), *others)

                def gradient(upstream):
                    return compiled_backward(upstream, residuals, velocity, *others)

                return traces, gradient

            return with_gradient(velocity)

        return differentiable
    if backend == "jax":
        import jax

        compiled_forward = jax.jit(forward)
        compiled_storing = jax.jit(storing)
        compiled_backward = jax.jit(backward)

        @jax.custom_vjp
        def differentiable(velocity, *others):
            return compiled_forward(velocity, *others)

        def differentiable_forward(velocity, *others):
            traces, residuals = compiled_storing(velocity, *others)
            return traces, (residuals, velocity, others)

        def differentiable_backward(saved, upstream):
            residuals, velocity, others = saved
            return (compiled_backward(upstream, residuals, velocity, *others), *(None for _ in others))

        differentiable.defvjp(differentiable_forward, differentiable_backward)
        return differentiable
    return forward


class _RetracingFilter(logging.Filter):
    """Drops TensorFlow's "N out of the last M calls ... triggered tf.function retracing" warning.

    The engine compiles one XLA executable per input shape on purpose (a QC batch, a reference simulation and
    a refinement each have their own shape); TensorFlow's heuristic calls that excessive and printed it into
    the output of ``pipeline.infer`` (issue 22). Every other TensorFlow message passes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@functools.lru_cache(maxsize=1)
def _quiet_retracing_warnings() -> None:
    import tensorflow as tf

    tf.get_logger().addFilter(_RetracingFilter())


def _fixed_trip_loop(num_iterations: int, body, carry):
    """``for i in range(num_iterations): carry = body(i, carry)``, reverse-differentiable on every backend.

    Backend glue, like ``_xla_compile``. ``keras.ops.fori_loop`` is JAX's ``fori_loop`` (a
    differentiable ``scan`` for static bounds) but on TensorFlow a ``while_loop`` without
    ``maximum_iterations``, whose gradient XLA refuses to compile (unbounded accumulators); TensorFlow
    therefore gets ``keras.ops.while_loop`` with the trip count as ``maximum_iterations``.
    """
    if keras.backend.backend() != "tensorflow":
        return ops.fori_loop(0, num_iterations, body, carry)

    def condition(index, state):
        return index < num_iterations

    def step(index, state):
        return index + 1, body(index, state)

    return ops.while_loop(condition, step, (0, carry), maximum_iterations=num_iterations)[1]


def _checkpointed_segments(
    run, first, total: int, levels: tuple[int, ...], buffers, coefficients: tuple, width: int
):
    """Runs ``run(first, count, buffers, coefficients) -> (buffers, block)`` over ``total`` loop iterations
    from iteration ``first`` on, gradient-checkpointed with ``levels[0]`` segments, each of them split the
    same way by ``levels[1:]`` (nested checkpointing). Returns the final buffers and the ``(2 total,
    width)`` block of recorded samples.

    Backend glue, like ``_xla_compile``. Reverse mode then stores the two state buffers at each segment's
    start and, while differentiating a segment, that segment's own checkpoints or, at the innermost level,
    its steps (recomputed from its start). JAX: ``jax.checkpoint`` of each segment inside a ``lax.scan``;
    TensorFlow: ``tf.recompute_grad`` of each segment inside a bounded ``while_loop``. One segment, or
    another backend: the plain loop (every step stored).
    """
    backend = keras.backend.backend()
    num_segments, inner = (levels[0], levels[1:]) if levels else (1, ())
    num_segments = min(num_segments, total) if total else 1
    if num_segments <= 1 or backend not in ("jax", "tensorflow"):
        if inner and total > 1:
            return _checkpointed_segments(run, first, total, inner, buffers, coefficients, width)
        return run(first, total, buffers, coefficients)

    def segment_run(start, count, carry, arguments):
        if inner:
            return _checkpointed_segments(run, start, count, inner, carry, arguments, width)
        return run(start, count, carry, arguments)

    length, tail = divmod(total, num_segments)
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        def segment(carry, index):
            return segment_run(first + index * length, length, carry, coefficients)

        buffers, stacked = jax.lax.scan(
            jax.checkpoint(segment, prevent_cse=False), buffers, jnp.arange(num_segments)
        )
        block = jnp.reshape(stacked, (num_segments * stacked.shape[1], stacked.shape[2]))
        if tail:
            last = jax.checkpoint(
                lambda carry: segment_run(first + num_segments * length, tail, carry, coefficients)
            )
            buffers, tail_block = last(buffers)
            block = jnp.concatenate([block, tail_block], axis=0)
        return buffers, block

    import tensorflow as tf

    def flat_segment(state, other, start, *arguments):
        # recompute_grad watches every argument, and TensorFlow warns about watching an integer ("The dtype
        # of the watched tensor must be floating", three times per refinement: issue 22): the segment's
        # first step travels as float32 (exact below 2**24 steps) and is cast back here.
        start = ops.cast(start, "int32")
        (state, other), block = segment_run(start, length, (state, other), arguments)
        return state, other, block

    checkpointed = tf.recompute_grad(flat_segment)
    block_rows = 2 * length

    def body(index, carry):
        state, other, accumulated = carry
        start = ops.cast(first + index * length, "float32")
        state, other, block = checkpointed(state, other, start, *coefficients)
        return state, other, ops.slice_update(accumulated, (index * block_rows, 0), block)

    state, other = buffers
    accumulated = ops.zeros((num_segments * block_rows, width), "float32")
    state, other, accumulated = _fixed_trip_loop(num_segments, body, (state, other, accumulated))
    if tail:

        def flat_tail(state, other, *arguments):
            (state, other), block = segment_run(
                first + num_segments * length, tail, (state, other), arguments
            )
            return state, other, block

        state, other, tail_block = tf.recompute_grad(flat_tail)(state, other, *coefficients)
        accumulated = ops.concatenate([accumulated, tail_block], axis=0)
    return (state, other), accumulated


def _with_custom_gradient(primal, forward, backward):
    """``primal(*args)`` whose reverse-mode derivative is ``backward(residuals, output_cotangent)`` (one
    cotangent per argument), ``forward(*args)`` returning ``(output, residuals)``. Backend glue, like
    ``_xla_compile``: ``jax.custom_vjp`` or ``tf.custom_gradient``; other backends differentiate
    ``primal`` themselves.

    The engine uses it for one time step, whose hand-written adjoint (``step_adjoint``) is a stencil as
    cheap as the step and keeps one field per step as residual: differentiating the step's ~40 slices
    automatically produced a full-size pad-and-add per slice, ~100x slower and ~5x the memory.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        function = jax.custom_vjp(primal)
        function.defvjp(forward, backward)
        return function
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.custom_gradient
        def function(*args):
            output, residuals = forward(*args)

            def gradient(upstream):
                return list(backward(residuals, upstream))

            return output, gradient

        return function
    return primal


@functools.lru_cache(maxsize=1)
def _register_tensorflow_slice_update_gradient() -> None:
    """Gives TensorFlow's ``XlaDynamicUpdateSlice`` (behind ``keras.ops.slice_update``) a gradient.

    TensorFlow 2.21 registers none, so ``GradientTape`` cannot differentiate ``slice_update``; JAX's
    ``dynamic_update_slice`` is differentiable already. The gradient is the textbook one: the incoming
    gradient with the updated window zeroed for ``inputs``, and that window for ``updates``.
    """
    import tensorflow as tf
    from tensorflow.compiler.tf2xla.python import xla

    def gradient(op, upstream):
        _, updates, start_indices = op.inputs
        return (
            xla.dynamic_update_slice(upstream, tf.zeros_like(updates), start_indices),
            xla.dynamic_slice(upstream, start_indices, tf.shape(updates)),
            None,
        )

    try:
        tf.RegisterGradient("XlaDynamicUpdateSlice")(gradient)
    except KeyError:  # a later TensorFlow (or another library) registered one already
        pass


@functools.lru_cache(maxsize=32)
def _compiled_propagator(
    *,
    spatial_order: int,
    free_surface: bool,
    absorbing_width_cells: int,
    time_step_s: float,
    grid_spacing_m: float,
    substeps: int,
    cpml_frequency_hz: float,
    checkpoint_segments: int | None,
    backend: str,
    gradient: str = "autodiff",
):
    """The XLA-compiled propagator for one static configuration (cached; ``backend`` is part of the key).

    ``gradient``: ``"autodiff"`` differentiates the time loop by the backend's reverse mode (each step's
    hand-written adjoint inside it, the loop checkpointed by ``checkpoint_segments`` levels);
    ``"adjoint"`` gives the whole propagator a hand-written reverse pass (the adjoint-state method, see
    ``propagate_adjoint``).

    Performance notes (why the code looks the way it does; measurements in ``docs/forward_modelling.md``):

    * **One fused kernel per row band and time step, each doing only the work its cells need.** The
      whole state, pressure and the four CPML memory variables, is one array ``(5, batch, shots, depth,
      x)`` with a zero halo of ``spatial_order / 2`` cells. The rows are cut into bands: the depth layers
      (reaching ``halo`` rows into the model) run both axes' CPML terms, the rows between them only the x
      axis's (the depth memory variables stay zero there). Each band's update is one elementwise expression
      written with one ``slice_update`` (dynamic-update-slice) of a contiguous block of fields into the
      other state buffer, which XLA compiles to one vectorised loop nest writing in place: 3 kernels per
      step (2 with a free surface). A whole-grid CPML kernel spent ~4x the bare stencil's time per cell
      on the 60 % of cells where the memory terms are zero; cutting the columns as well (x layers only on
      their strips) is slower, not faster, on XLA's CPU backend (partial-row updates do not vectorise).
    * **Every expression reads only the current state**, so writing the new state into the other buffer
      in place is legal: the CPML is the single-pass form Deepwave uses (the derivative of the memory
      variable at step n is expanded with the product rule into terms of step n-1, see ``step``), and
      ``p[n-1]`` is read from the target buffer at the very cell being written.
    * **Two steps per loop iteration** (ping-pong between two state buffers), so both buffers return to
      their own loop-carry slots without copies.
    * **Receivers are recorded right after the step that produced the sample.** Recording before the step
      made XLA copy the whole state twice per iteration (the read was unordered with the next in-place
      write); after, every read of a buffer precedes its overwrite in the dataflow.
    """
    del backend  # only part of the cache key
    second = SECOND_DERIVATIVE_WEIGHTS[spatial_order]
    first = FIRST_DERIVATIVE_WEIGHTS[spatial_order]
    halo = spatial_order // 2
    dt, dx = time_step_s, grid_spacing_m
    width = absorbing_width_cells
    top = 0 if free_surface else width
    damping_scale = (
        (_CPML_POLYNOMIAL_ORDER + 1) * math.log(1.0 / _CPML_THEORETICAL_REFLECTION) / (2.0 * width * dx)
    )

    def layer_profile(length: int, before: int, after: int) -> np.ndarray:
        """Normalised depth into the absorbing layer per cell: 1 at the outer edge, 1/width at its
        innermost cell, 0 in the model (``before``/``after`` = layer cells at each end, 0 or width)."""
        cells = np.arange(length, dtype=np.float64)
        into_before = (before - cells) / width if before else np.zeros(length)
        into_after = (cells - (length - 1 - after)) / width if after else np.zeros(length)
        return np.clip(np.maximum(into_before, into_after), 0.0, 1.0).astype(np.float32)

    def cpml_coefficients(profile: np.ndarray, max_velocity):
        """Recursive-convolution coefficients ``(a, b)`` and ``dx * da/dx``, each ``(batch, len(profile))``."""
        damping = damping_scale * max_velocity[:, None] * profile[None, :] ** _CPML_POLYNOMIAL_ORDER
        inside = (profile > 0).astype(np.float32)[None, :]
        shift = math.pi * cpml_frequency_hz * (1.0 - profile[None, :]) * inside
        b = ops.exp(-(damping + shift) * dt)
        # a = d / (d + alpha) (b - 1); zero outside the layer, where d = alpha = 0 (and b = 1).
        a = damping / (damping + shift + (1.0 - inside)) * (b - 1.0) * inside
        # The derivative of `a` with the same first-derivative stencil (edge values continued outwards).
        extended = ops.concatenate(
            [ops.repeat(a[:, :1], halo, axis=1), a, ops.repeat(a[:, -1:], halo, axis=1)], axis=1
        )
        length = profile.shape[0]
        a_derivative = 0.0
        for k in range(1, halo + 1):
            a_derivative = a_derivative + first[k - 1] * (
                extended[:, halo + k : halo + k + length] - extended[:, halo - k : halo - k + length]
            )
        return a, b, a_derivative

    def kernel(
        mode,
        velocity,
        source_time_functions,
        source_depth_one_hot,
        source_x_one_hot,
        source_flat_index,
        receiver_flat_index,
        upstream=None,
        checkpoints=None,
    ):
        """``mode`` "forward": the traces; "storing": the traces and the adjoint path's checkpoints;
        "backward": the velocity's cotangent for the traces' cotangent ``upstream`` (``checkpoints`` from
        "storing")."""
        batch, depth_cells, x_cells = (int(n) for n in velocity.shape)
        num_shots = int(source_depth_one_hot.shape[0])
        padded_depth, padded_x = int(source_depth_one_hot.shape[1]), int(source_x_one_hot.shape[1])
        num_steps = int(source_time_functions.shape[0])
        num_samples = num_steps // substeps
        bottom = padded_depth - top - depth_cells
        haloed_depth, haloed_x = padded_depth + 2 * halo, padded_x + 2 * halo

        padded_velocity = _pad_edge(velocity, top, bottom, width)
        courant_squared = (padded_velocity * (dt / dx)) ** 2  # (batch, depth, x)
        max_velocity = ops.stop_gradient(ops.max(velocity, axis=(1, 2)))
        a_depth, b_depth, da_depth = cpml_coefficients(layer_profile(padded_depth, top, bottom), max_velocity)
        a_x, b_x, da_x = cpml_coefficients(layer_profile(padded_x, width, width), max_velocity)

        flat_courant = ops.reshape(courant_squared, (batch, padded_depth * padded_x))
        source_strength = ops.take(flat_courant, source_flat_index, axis=1) * (dx * dx)
        source_cells = source_depth_one_hot[None, :, :, None] * source_x_one_hot[None, :, None, :]
        courant_squared = courant_squared[:, None]  # (batch, 1, depth, x)
        receiver_depth, receiver_x = receiver_flat_index // padded_x, receiver_flat_index % padded_x
        receiver_in_slab = (receiver_depth + halo) * haloed_x + receiver_x + halo
        slab_size = batch * num_shots * haloed_depth * haloed_x
        slab_offsets = np.arange(batch * num_shots, dtype=np.int32)[:, None] * (haloed_depth * haloed_x)
        receiver_index = ops.reshape(PRESSURE * slab_size + slab_offsets + receiver_in_slab[None, :], (-1,))
        source_in_slab = (
            (source_flat_index // padded_x + halo) * haloed_x + source_flat_index % padded_x + halo
        )
        # Each (model, shot) slab's own source cell, as flat indices into one pressure field.
        source_index = ops.reshape(slab_offsets[:, 0] + ops.tile(source_in_slab, (batch,)), (-1,))
        state_size = NUM_FIELDS * slab_size

        # The grid is cut into regions by the absorbing layers: each row segment is inside a depth layer
        # or not, each column segment inside an x layer or not, and each region runs only the terms its
        # axes need (the model's interior: the plain Laplacian). A layer's segment reaches `halo` cells into
        # the model: there a = 0, but the derivatives of `a` and of the layer's memory variables are not.
        def segments(length: int, before: int, after: int) -> list[tuple[int, int, bool]]:
            low = before + halo if before else 0
            high = length - after - halo if after else length
            if low >= high:  # a model thinner than the two layers' reach: one absorbing segment
                return [(0, length, True)]
            parts = [(0, low, True)] if low else []
            parts.append((low, high, False))
            return parts + ([(high, length, True)] if high < length else [])

        # Only rows are cut: XLA's CPU code for a region narrower than the grid (a partial-row in-place
        # update) is several times slower per cell than for whole rows (measured: splitting the columns of
        # a bare stencil into halves made it 2.7x slower), so the x layers' terms run on whole rows.
        regions = [(rows, (0, padded_x, True)) for rows in segments(padded_depth, top, bottom)]

        def field(array, index, rows, columns, depth_offset=0, x_offset=0):
            return array[
                index,
                :,
                :,
                halo + rows[0] + depth_offset : halo + rows[1] + depth_offset,
                halo + columns[0] + x_offset : halo + columns[1] + x_offset,
            ]

        def axis_terms(state, rows, columns, axis):
            """Second and first derivative of p, and first derivative of the axis's memory variable chi."""
            memory_field = CHI_DEPTH if axis == 0 else CHI_X
            second_axis, first_axis, memory = second[0] * field(state, PRESSURE, rows, columns), 0.0, 0.0
            for k in range(1, halo + 1):
                offset_plus, offset_minus = ((k, 0), (-k, 0)) if axis == 0 else ((0, k), (0, -k))
                plus = field(state, PRESSURE, rows, columns, *offset_plus)
                minus = field(state, PRESSURE, rows, columns, *offset_minus)
                second_axis = second_axis + second[k] * (plus + minus)
                first_axis = first_axis + first[k - 1] * (plus - minus)
                memory = memory + first[k - 1] * (
                    field(state, memory_field, rows, columns, *offset_plus)
                    - field(state, memory_field, rows, columns, *offset_minus)
                )
            return second_axis, first_axis, memory

        # Which cells run which axis's CPML terms (from the regions; columns are never cut), on the haloed
        # grid: the adjoint step below needs them.
        depth_mask = np.zeros((haloed_depth, 1), np.float32)
        for (row_low, row_high, depth_layer), _ in regions:
            depth_mask[halo + row_low : halo + row_high] = float(depth_layer)
        x_mask = np.zeros((1, haloed_x), np.float32)
        x_mask[0, halo : halo + padded_x] = 1.0
        interior = np.zeros((haloed_depth, haloed_x), np.float32)
        interior[halo : halo + padded_depth, halo : halo + padded_x] = 1.0

        def step_forward(state, target, amplitude, courant_squared, source_strength, cpml, keep_laplacian):
            """One leapfrog step, region by region, written into ``target`` (which holds ``p[n-1]``);
            with ``keep_laplacian`` also the stretched Laplacian ``(batch, shots, depth, x)`` (the adjoint
            step's residual)."""
            a_depth, b_depth, da_depth, a_x, b_x, da_x, source_cells = cpml
            injection = (source_strength * amplitude[None, :])[:, :, None, None] * source_cells
            laplacians = []
            for (row_low, row_high, depth_layer), (column_low, column_high, x_layer) in regions:
                rows, columns = (row_low, row_high), (column_low, column_high)
                centre = field(state, PRESSURE, rows, columns)
                laplacian = 0.0
                depth_fields, x_fields = [], []
                for axis, active in ((0, depth_layer), (1, x_layer)):
                    if not active:
                        for k in range(1, halo + 1):
                            offset_plus, offset_minus = ((k, 0), (-k, 0)) if axis == 0 else ((0, k), (0, -k))
                            laplacian = laplacian + second[k] * (
                                field(state, PRESSURE, rows, columns, *offset_plus)
                                + field(state, PRESSURE, rows, columns, *offset_minus)
                            )
                        laplacian = laplacian + second[0] * centre
                        continue
                    if axis == 0:
                        a, b, da = (
                            ops.reshape(c[:, row_low:row_high], (batch, 1, -1, 1))
                            for c in (a_depth, b_depth, da_depth)
                        )
                        zeta, chi = (
                            field(state, ZETA_DEPTH, rows, columns),
                            field(state, CHI_DEPTH, rows, columns),
                        )
                    else:
                        a, b, da = (
                            ops.reshape(c[:, column_low:column_high], (batch, 1, 1, -1))
                            for c in (a_x, b_x, da_x)
                        )
                        zeta, chi = field(state, ZETA_X, rows, columns), field(state, CHI_X, rows, columns)
                    second_axis, first_axis, memory = axis_terms(state, rows, columns, axis)
                    # D2 p + D psi[n] along the axis, then zeta[n] = b zeta[n-1] + a (that).
                    stretched = (1.0 + a) * second_axis + da * first_axis + memory
                    new_zeta = b * zeta + a * stretched
                    laplacian = laplacian + stretched + new_zeta
                    new_chi = b * (chi + a * first_axis)
                    (depth_fields if axis == 0 else x_fields).extend([new_chi, new_zeta])
                region_courant = courant_squared[:, :, row_low:row_high, column_low:column_high]
                region_injection = injection[:, :, row_low:row_high, column_low:column_high]
                pressure = (
                    2.0 * centre
                    - field(target, PRESSURE, rows, columns)
                    + region_courant * laplacian
                    + region_injection
                )
                # Fields are ordered CHI_X, ZETA_X, PRESSURE, CHI_DEPTH, ZETA_DEPTH, so the region's outputs
                # are one contiguous block.
                update = ops.stack([*x_fields, pressure, *depth_fields], axis=0)
                first_field = CHI_X if x_fields else PRESSURE
                target = ops.slice_update(
                    target, (first_field, 0, 0, halo + row_low, halo + column_low), update
                )
                if keep_laplacian:
                    laplacians.append(laplacian)
            if free_surface:
                # Pressure-release surface half a cell above row 0: the halo holds the odd image -p.
                image = -ops.flip(target[PRESSURE : PRESSURE + 1, :, :, halo : 2 * halo, :], axis=3)
                target = ops.slice_update(target, (PRESSURE, 0, 0, 0, 0), image)
            if keep_laplacian:
                return target, ops.concatenate(laplacians, axis=2)
            return target

        def step_adjoint(new_cotangent, laplacian, amplitude, courant_squared, source_strength, cpml):
            """Cotangents of ``step_forward``'s inputs (state, target, amplitude, courant_squared,
            source_strength) from the cotangent of its output: the transposed (adjoint) step.

            Per axis, with P, Z, C the cotangents of the new pressure, zeta and chi, c2 = (v dt/dx)^2 and
            a, b, da the CPML coefficients (mask = 1 where the axis runs its CPML terms):
            ``Zt = mask (Z + c2 P)``, ``St = c2 P + a Zt``; the state's pressure receives
            ``2 P + D2(g2) - D1(g1)`` with ``g2 = (1 + a) St``, ``g1 = mask (da St + b a C)`` (the centred
            second-derivative stencil is symmetric, the first-derivative one antisymmetric), its chi
            ``mask b C - D1(mask St)``, its zeta ``mask b Zt``; the target's pressure ``-P``; c2 receives
            ``sum over shots of P x laplacian``. Cotangents of halo cells (constant zeros) and of the
            memory fields a region leaves untouched (always zero) are dropped.
            """
            a_depth, b_depth, da_depth, a_x, b_x, da_x, source_cells = cpml

            def haloed(array):  # (batch, n) -> zero-padded by the halo
                return ops.pad(array, ((0, 0), (halo, halo)))

            pressure_cotangent = new_cotangent[PRESSURE]
            if free_surface:
                image = pressure_cotangent[:, :, :halo, :]
                folded = pressure_cotangent[:, :, halo : 2 * halo, :] - ops.flip(image, axis=2)
                pressure_cotangent = ops.slice_update(pressure_cotangent, (0, 0, halo, 0), folded)
            pressure_cotangent = pressure_cotangent * interior
            weighted = (
                ops.pad(courant_squared, ((0, 0), (0, 0), (halo, halo), (halo, halo))) * pressure_cotangent
            )

            def window(array, depth_offset=0, x_offset=0):
                return array[
                    :,
                    :,
                    halo + depth_offset : halo + depth_offset + padded_depth,
                    halo + x_offset : halo + x_offset + padded_x,
                ]

            def deep_window(array, depth_offset=0, x_offset=0):
                """Like ``window`` but over every haloed row: the stencil also read the state's halo rows,
                which hold the free surface's image of the rows below (its adjoint folds them back)."""
                array = ops.pad(array, ((0, 0), (0, 0), (halo, halo), (0, 0)))
                return array[
                    :,
                    :,
                    halo + depth_offset : halo + depth_offset + haloed_depth,
                    halo + x_offset : halo + x_offset + padded_x,
                ]

            state_pressure = 2.0 * deep_window(pressure_cotangent)
            memory_cotangents = {}
            for axis in (0, 1):
                if axis == 0:
                    a, b, da = (
                        ops.reshape(haloed(c), (batch, 1, -1, 1)) for c in (a_depth, b_depth, da_depth)
                    )
                    mask, zeta_field, chi_field = depth_mask, ZETA_DEPTH, CHI_DEPTH
                else:
                    a, b, da = (ops.reshape(haloed(c), (batch, 1, 1, -1)) for c in (a_x, b_x, da_x))
                    mask, zeta_field, chi_field = x_mask, ZETA_X, CHI_X
                zeta_cotangent = new_cotangent[zeta_field] * interior
                chi_cotangent = new_cotangent[chi_field] * interior
                zeta_total = mask * (zeta_cotangent + weighted)
                stretched_total = weighted + a * zeta_total
                second_weight = (1.0 + a) * stretched_total
                first_weight = mask * (da * stretched_total + b * a * chi_cotangent)
                memory_weight = mask * stretched_total
                chi_state = window(mask * b * chi_cotangent)
                state_pressure = state_pressure + second[0] * deep_window(second_weight)
                for k in range(1, halo + 1):
                    plus, minus = ((k, 0), (-k, 0)) if axis == 0 else ((0, k), (0, -k))
                    state_pressure = (
                        state_pressure
                        + second[k] * (deep_window(second_weight, *plus) + deep_window(second_weight, *minus))
                        - first[k - 1]
                        * (deep_window(first_weight, *plus) - deep_window(first_weight, *minus))
                    )
                    chi_state = chi_state - first[k - 1] * (
                        window(memory_weight, *plus) - window(memory_weight, *minus)
                    )
                memory_cotangents[chi_field] = chi_state
                memory_cotangents[zeta_field] = window(mask * b * zeta_total)

            def padded(array):
                return ops.pad(array, ((0, 0), (0, 0), (halo, halo), (halo, halo)))

            source_pressure = window(pressure_cotangent)
            zeros = ops.zeros_like(source_pressure)
            state_cotangent = ops.stack(
                [
                    padded(memory_cotangents[CHI_X]),
                    padded(memory_cotangents[ZETA_X]),
                    ops.pad(state_pressure, ((0, 0), (0, 0), (0, 0), (halo, halo))),
                    padded(memory_cotangents[CHI_DEPTH]),
                    padded(memory_cotangents[ZETA_DEPTH]),
                ],
                axis=0,
            )
            target_cotangent = ops.stack(
                [padded(f) for f in (zeros, zeros, -source_pressure, zeros, zeros)], axis=0
            )
            courant_cotangent = ops.sum(source_pressure * laplacian, axis=1, keepdims=True)
            at_sources = ops.sum(source_pressure * source_cells, axis=(2, 3))  # (batch, shots)
            strength_cotangent = at_sources * amplitude[None, :]
            amplitude_cotangent = ops.sum(at_sources * source_strength, axis=0)
            return (
                state_cotangent,
                target_cotangent,
                amplitude_cotangent,
                courant_cotangent,
                strength_cotangent,
            )

        def transposed_step_factory(courant_squared, cpml, source_index):
            """The adjoint path's transposed step, ``step_adjoint`` rearranged for speed: the coefficients
            haloed once per call, every term on the haloed grid (shifts with zero fill instead of a pad per
            stencil tap), the target's cotangent (``-P``, pressure only) carried to the next transposed step
            instead of a five-field array, and the source's cotangent gathered at the source cells.

            Returns ``transposed(cotangent, previous_pressure, laplacian, amplitude) -> (cotangent of the
            step's input state, its pressure part P (the next step's ``previous_pressure``), the
            contribution to the cotangent of (v dt / dx)^2 (batch, 1, depth, x), and to the source strength
            (batch, shots))``; ``cotangent`` is that of the step's output plus, in its pressure, ``-P`` of the
            step after it (``previous_pressure``)."""
            a_depth, b_depth, da_depth, a_x, b_x, da_x, _ = cpml
            haloed_courant = ops.pad(courant_squared, ((0, 0), (0, 0), (halo, halo), (halo, halo)))
            axes = []
            for axis, coefficients, mask, zeta_field, chi_field in (
                (0, (a_depth, b_depth, da_depth), depth_mask * interior, ZETA_DEPTH, CHI_DEPTH),
                (1, (a_x, b_x, da_x), x_mask * interior, ZETA_X, CHI_X),
            ):
                shape = (batch, 1, -1, 1) if axis == 0 else (batch, 1, 1, -1)
                a, b, da = (ops.reshape(ops.pad(c, ((0, 0), (halo, halo))), shape) for c in coefficients)
                axes.append((axis, a, b, da, mask, zeta_field, chi_field))

            def shifts(array, axis):
                """``shifted(k)``: ``array`` at index + k along the axis (2 or 3 of the array), zero outside."""
                widths = [(0, 0)] * 4
                widths[2 + axis] = (halo, halo)
                padded = ops.pad(array, widths)
                length = int(array.shape[2 + axis])

                def shifted(k):
                    if axis == 0:
                        return padded[:, :, halo + k : halo + k + length, :]
                    return padded[:, :, :, halo + k : halo + k + length]

                return shifted

            def transposed(cotangent, previous_pressure, laplacian, amplitude):
                pressure = cotangent[PRESSURE]
                if free_surface:
                    image = pressure[:, :, :halo, :]
                    folded = pressure[:, :, halo : 2 * halo, :] - ops.flip(image, axis=2)
                    pressure = ops.slice_update(pressure, (0, 0, halo, 0), folded)
                pressure = pressure * interior
                weighted = haloed_courant * pressure
                new_pressure = 2.0 * pressure - previous_pressure
                outputs = {}
                for axis, a, b, da, mask, zeta_field, chi_field in axes:
                    chi = cotangent[chi_field]
                    zeta_total = mask * (cotangent[zeta_field] + weighted)
                    stretched_total = weighted + a * zeta_total
                    second_weight = (1.0 + a) * stretched_total
                    first_weight = mask * (da * stretched_total + b * a * chi)
                    memory_weight = mask * stretched_total
                    second_shift = shifts(second_weight, axis)
                    first_shift = shifts(first_weight, axis)
                    memory_shift = shifts(memory_weight, axis)
                    new_pressure = new_pressure + second[0] * second_weight
                    new_chi = mask * b * chi
                    for k in range(1, halo + 1):
                        new_pressure = (
                            new_pressure
                            + second[k] * (second_shift(k) + second_shift(-k))
                            - first[k - 1] * (first_shift(k) - first_shift(-k))
                        )
                        new_chi = new_chi - first[k - 1] * (memory_shift(k) - memory_shift(-k))
                    outputs[chi_field] = new_chi
                    outputs[zeta_field] = mask * b * zeta_total
                outputs[PRESSURE] = new_pressure
                new_cotangent = ops.stack([outputs[index] for index in range(NUM_FIELDS)], axis=0)
                inner = pressure[:, :, halo : halo + padded_depth, halo : halo + padded_x]
                courant_part = ops.sum(inner * laplacian, axis=1, keepdims=True)
                at_sources = ops.reshape(
                    ops.take(ops.reshape(pressure, (-1,)), source_index, axis=0), (batch, num_shots)
                )
                return new_cotangent, pressure, courant_part, at_sources * amplitude[None, :]

            return transposed

        def forward_with_residuals(state, target, amplitude, courant_squared, source_strength, *cpml):
            new, laplacian = step_forward(
                state, target, amplitude, courant_squared, source_strength, cpml, True
            )
            return new, (laplacian, amplitude, courant_squared, source_strength, *cpml)

        def backward(residuals, new_cotangent):
            laplacian, amplitude, courant_squared, source_strength, *cpml = residuals
            cotangents = step_adjoint(
                new_cotangent, laplacian, amplitude, courant_squared, source_strength, cpml
            )
            return (*cotangents, *(ops.zeros_like(c) for c in cpml))

        step = _with_custom_gradient(
            lambda state, target, amplitude, courant_squared, source_strength, *cpml: step_forward(
                state, target, amplitude, courant_squared, source_strength, cpml, False
            ),
            forward_with_residuals,
            backward,
        )

        def record(state):
            return ops.take(ops.reshape(state, (state_size,)), receiver_index, axis=0)

        num_pairs = num_samples // 2
        # The adjoint path runs equal segments of `segment_pairs` pairs, the last one padded past the record
        # (the source is zero there and the extra samples are dropped).
        num_segments, segment_pairs = adjoint_segments(checkpoint_segments, num_pairs)
        loop_pairs = num_pairs if mode == "forward" else num_segments * segment_pairs
        padded_steps = max(2 * loop_pairs * substeps, num_steps)
        source_time_functions = ops.pad(source_time_functions, ((0, padded_steps - num_steps), (0, 0)))
        num_traces = batch * num_shots * int(receiver_flat_index.shape[0])

        def run_pairs(first_pair, count: int, buffers, coefficients):
            """``count`` pairs of samples from pair ``first_pair`` on: the two state buffers after them and
            the ``(2 count, traces)`` block of samples ``2 first_pair + 1 ...`` they recorded.
            ``coefficients`` are the velocity-dependent inputs, passed explicitly so that a checkpointed
            segment's gradient reaches them (TensorFlow's recompute_grad ignores closed-over tensors)."""

            def body(index, carry):
                state, other, block = carry
                for half in range(2):
                    sample = 2 * (first_pair + index) + half
                    for sub in range(substeps):
                        amplitude = ops.take(source_time_functions, sample * substeps + sub, axis=0)
                        other = step(state, other, amplitude, *coefficients)
                        state, other = other, state
                    block = ops.slice_update(block, (2 * index + half, 0), record(state)[None])
                return state, other, block

            # What a segment starts from (and a checkpoint stores): the state and the previous step's
            # pressure, 6 fields. The other buffer's memory fields are overwritten before being read, or
            # (depth fields between the depth layers) zero in every buffer, so they are rebuilt from the
            # state's.
            state, previous_pressure = buffers
            other = ops.slice_update(state, (PRESSURE, 0, 0, 0, 0), previous_pressure[None])
            block = ops.zeros((2 * count, num_traces), "float32")
            state, other, block = _fixed_trip_loop(count, body, (state, other, block))
            return (state, other[PRESSURE]), block

        # Sample 0 is the initial state (zero); sample k is recorded right after the step that produced
        # it. Two samples per loop iteration: an even number of leapfrog steps, so the two state buffers
        # come back to their own loop-carry slots (no copies). The loop runs in checkpointed segments,
        # so a gradient stores the state at segment starts and recomputes each segment's steps.
        state = ops.zeros((NUM_FIELDS, batch, num_shots, haloed_depth, haloed_x), "float32")
        if mode != "forward":
            cpml = (a_depth, b_depth, da_depth, a_x, b_x, da_x, source_cells)
            return propagate_adjoint(
                mode,
                state,
                upstream,
                checkpoints,
                velocity=velocity,
                padded_velocity=padded_velocity,
                courant_squared=courant_squared,
                source_strength=source_strength,
                cpml=cpml,
                source_time_functions=source_time_functions,
                step_forward=step_forward,
                transposed_step_factory=transposed_step_factory,
                source_index=source_index,
                run_pairs=run_pairs,
                record=record,
                receiver_index=receiver_index,
                num_samples=num_samples,
                num_traces=num_traces,
                num_segments=num_segments,
                segment_pairs=segment_pairs,
                bottom=bottom,
            )
        segments = resolved_checkpoint_segments(checkpoint_segments, num_pairs)
        # `cpml` (the last seven) also carries the source cells: JAX's custom_vjp functions may not close
        # over traced values, so every array the step uses is an argument.
        coefficients = (
            courant_squared,
            source_strength,
            a_depth,
            b_depth,
            da_depth,
            a_x,
            b_x,
            da_x,
            source_cells,
        )
        buffers = (state, state[PRESSURE])
        _, block = _checkpointed_segments(
            run_pairs, 0, num_pairs, segments, buffers, coefficients, num_traces
        )
        return traces_from_block(block, num_samples, batch, num_shots)

    def traces_from_block(block, num_samples: int, batch: int, num_shots: int):
        """``(batch, shots, time, receivers)`` from the ``(samples - 1 or more, traces)`` block of samples
        1, 2, ... (sample 0 is the state at rest)."""
        num_traces = int(block.shape[1])
        traces = ops.concatenate([ops.zeros((1, num_traces), "float32"), block], axis=0)
        traces = ops.reshape(traces[:num_samples], (num_samples, batch, num_shots, -1))
        return ops.transpose(traces, (1, 2, 0, 3))

    def propagate_adjoint(
        mode,
        state,
        upstream,
        checkpoints,
        *,
        velocity,
        padded_velocity,
        courant_squared,
        source_strength,
        cpml,
        source_time_functions,
        step_forward,
        transposed_step_factory,
        source_index,
        run_pairs,
        record,
        receiver_index,
        num_samples: int,
        num_traces: int,
        num_segments: int,
        segment_pairs: int,
        bottom: int,
    ):
        """The adjoint-state method on the engine's own discretisation (``mode`` "storing" or "backward").

        "storing" runs the forward in ``num_segments`` segments of ``segment_pairs`` pairs of steps and
        keeps each segment's starting wavefields (the state's 5 fields and the previous pressure): returns
        ``(traces, checkpoints)``. "backward" walks the segments from the last to the first: it recomputes
        a segment from its checkpoint keeping each step's stretched Laplacian, then runs the transposed steps
        (``step_adjoint``) backwards through it, injecting the traces' cotangent (the adjoint source, i.e.
        the residuals) at the receivers after every recorded step, and sums the zero-lag products of the
        adjoint wavefield with the forward Laplacian (and with the source at the source cells): the
        gradient with respect to ``(v dt / dx)^2``, then by the chain rule (edge padding folded back) with
        respect to velocity. Cost: the forward, one recomputation and the adjoint propagation; no trace of
        the backend's reverse mode (whose loop bookkeeping cost ~12 forwards here). Exact: it is the
        transpose of the discrete forward, to float32 round-off.
        """
        batch, num_shots = int(courant_squared.shape[0]), int(source_strength.shape[1])
        padded_depth, padded_x = int(courant_squared.shape[2]), int(courant_squared.shape[3])
        coefficients = (courant_squared, source_strength, *cpml)
        rows = 2 * segment_pairs
        field_shape = (batch, num_shots, padded_depth, padded_x)
        steps_per_segment = rows * substeps

        def run_keeping(first_pair, state, other, keep_traces: bool):
            """``segment_pairs`` pairs from ``first_pair`` on, keeping every step's stretched Laplacian (and,
            with ``keep_traces``, the recorded block): ``(laplacians, block or None)``."""

            def body(index, carry):
                state, other, laplacians, block = carry
                for half in range(2):
                    sample = 2 * (first_pair + index) + half
                    for sub in range(substeps):
                        amplitude = ops.take(source_time_functions, sample * substeps + sub, axis=0)
                        other, laplacian = step_forward(
                            state, other, amplitude, courant_squared, source_strength, cpml, True
                        )
                        position = (2 * index + half) * substeps + sub
                        laplacians = ops.slice_update(laplacians, (position, 0, 0, 0, 0), laplacian[None])
                        state, other = other, state
                    if keep_traces:
                        block = ops.slice_update(block, (2 * index + half, 0), record(state)[None])
                return state, other, laplacians, block

            laplacians = ops.zeros((steps_per_segment, *field_shape), "float32")
            block = ops.zeros((rows if keep_traces else 1, num_traces), "float32")
            _, _, laplacians, block = _fixed_trip_loop(segment_pairs, body, (state, other, laplacians, block))
            return laplacians, (block if keep_traces else None)

        if mode == "storing":
            if num_segments == 1:
                # One segment: the forward itself keeps every Laplacian, the reverse pass recomputes nothing.
                laplacians, block = run_keeping(0, state, state, True)
                return traces_from_block(block, num_samples, batch, num_shots), laplacians

            def store(index, carry):
                state, previous, checkpoints, block = carry
                checkpoint = ops.concatenate([state, previous[None]], axis=0)[None]
                checkpoints = ops.slice_update(checkpoints, (index, 0, 0, 0, 0, 0), checkpoint)
                (state, previous), segment_block = run_pairs(
                    index * segment_pairs, segment_pairs, (state, previous), coefficients
                )
                block = ops.slice_update(block, (index * rows, 0), segment_block)
                return state, previous, checkpoints, block

            checkpoints = ops.zeros((num_segments, NUM_FIELDS + 1, *state.shape[1:]), "float32")
            block = ops.zeros((num_segments * rows, num_traces), "float32")
            _, _, checkpoints, block = _fixed_trip_loop(
                num_segments, store, (state, state[PRESSURE], checkpoints, block)
            )
            return traces_from_block(block, num_samples, batch, num_shots), checkpoints

        # The traces' cotangent as the block's rows: row r is sample r + 1; rows past the record are zero.
        adjoint_sources = ops.reshape(ops.transpose(upstream, (2, 0, 1, 3)), (num_samples, num_traces))[1:]
        adjoint_sources = ops.pad(adjoint_sources, ((0, num_segments * rows - (num_samples - 1)), (0, 0)))
        state_size = int(np.prod(state.shape))

        def recompute(first_pair, checkpoint):
            """The segment's forward again from its checkpoint, keeping every step's stretched Laplacian."""
            state = checkpoint[:NUM_FIELDS]
            other = ops.slice_update(state, (PRESSURE, 0, 0, 0, 0), checkpoint[NUM_FIELDS][None])
            return run_keeping(first_pair, state, other, False)[0]

        def inject(cotangent, values):
            """Adds the cotangent of ``record`` (a gather of the pressure at the receivers)."""
            flat = ops.reshape(cotangent, (state_size,))
            flat = flat + ops.scatter(receiver_index[:, None], values, (state_size,))
            return ops.reshape(flat, cotangent.shape)

        def reverse(first_pair, laplacians, carry):
            """The segment's transposed steps, last to first."""

            def body(count, carry):
                state_cotangent, previous_pressure, courant_cotangent, strength_cotangent = carry
                index = segment_pairs - 1 - count
                for half in (1, 0):
                    sample = 2 * (first_pair + index) + half
                    state_cotangent = inject(state_cotangent, ops.take(adjoint_sources, sample, axis=0))
                    for sub in reversed(range(substeps)):
                        amplitude = ops.take(source_time_functions, sample * substeps + sub, axis=0)
                        laplacian = ops.take(laplacians, (2 * index + half) * substeps + sub, axis=0)
                        state_cotangent, previous_pressure, courant_part, strength_part = transposed_step(
                            state_cotangent, previous_pressure, laplacian, amplitude
                        )
                        courant_cotangent = courant_cotangent + courant_part
                        strength_cotangent = strength_cotangent + strength_part
                return state_cotangent, previous_pressure, courant_cotangent, strength_cotangent

            return _fixed_trip_loop(segment_pairs, body, carry)

        def segment(count, carry):
            index = num_segments - 1 - count
            laplacians = recompute(index * segment_pairs, ops.take(checkpoints, index, axis=0))
            return reverse(index * segment_pairs, laplacians, carry)

        transposed_step = transposed_step_factory(courant_squared, cpml, source_index)
        carry = (
            ops.zeros_like(state),
            ops.zeros_like(state[PRESSURE]),
            ops.zeros((batch, 1, padded_depth, padded_x), "float32"),
            ops.zeros((batch, num_shots), "float32"),
        )
        if num_segments == 1:  # `checkpoints` holds every step's Laplacian
            _, _, courant_cotangent, strength_cotangent = reverse(0, checkpoints, carry)
        else:
            _, _, courant_cotangent, strength_cotangent = _fixed_trip_loop(num_segments, segment, carry)
        # source_strength = (v dt / dx)^2 dx^2 at each shot's source cell.
        source_cells = cpml[-1]  # (1, shots, depth, x)
        courant_cotangent = courant_cotangent[:, 0] + (dx * dx) * ops.sum(
            strength_cotangent[:, :, None, None] * source_cells, axis=1
        )
        padded_cotangent = courant_cotangent * 2.0 * padded_velocity * (dt / dx) ** 2
        return _pad_edge_adjoint(padded_cotangent, top, bottom, width)

    def propagate(*arguments):
        return kernel("forward", *arguments)

    if gradient == "autodiff":
        return _xla_compile(propagate)

    def propagate_storing(*arguments):
        return kernel("storing", *arguments)

    def propagate_backward(upstream, checkpoints, *arguments):
        return kernel("backward", *arguments, upstream=upstream, checkpoints=checkpoints)

    return _xla_compile_with_adjoint(propagate, propagate_storing, propagate_backward)


__all__ = [
    "AMPLITUDE_CONVENTION",
    "CRITICAL_COURANT_NUMBER",
    "DEFAULT_MIN_CELLS_PER_WAVELENGTH",
    "DISPERSION_FREQUENCY_FACTOR",
    "EngineConfig",
    "available_cpu_count",
    "check_dispersion",
    "check_stability",
    "engine_settings",
    "ricker",
    "simulate",
    "stored_gradient_bytes",
]
