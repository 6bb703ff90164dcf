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
time loop is one ``keras.ops`` loop compiled with XLA. The only backend-aware code is the small module
``backend_glue`` (compiling, custom gradients, the differentiable loop and its checkpointing). Compiled
propagators are cached per static configuration, and the backends cache per input shape, so repeated
calls with the same shapes pay the compilation once.

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

The package, one concept per module (import the public names from ``data_prep.forward``; the modules import
each other by their full names). From the entry point down:

================================  ======================================================================
module                            holds
================================  ======================================================================
``simulation``                    ``simulate`` (the entry point); how a batch is cut into concurrent calls
                                  (``available_cpu_count``, ``resolved_concurrent_calls``); input
                                  preparation (velocity bounds, source time functions, the geometry in
                                  the padded grid)
``checks``                        ``check_stability`` (CFL), ``check_dispersion``
``config``                        ``EngineConfig``, ``engine_settings``, the stencils' weights and limits,
                                  the CPML's design constants, time stepping, checkpoint segments
                                  (``resolved_checkpoint_segments``, ``adjoint_segments``),
                                  ``stored_gradient_bytes``
``propagator``                    ``compiled_propagator`` (cached per static configuration) and ``kernel``,
                                  the traced function it compiles
``propagation``                   ``Propagation``: one call's arrays and the forward time loop
``adjoint``                       the adjoint-state method: checkpoints, recomputation, ``TransposedStep``
``time_step``                     one leapfrog step, its adjoint, the step with its custom gradient
``cpml``                          the absorbing layer's coefficients, the velocity padded into it
``layout``                        the state's fields, ``Discretisation`` (static settings), ``Grid`` (one
                                  call's padded grid and its row regions)
``backend_glue``                  the only backend-specific code: XLA compilation, custom gradients, the
                                  differentiable loop and its checkpointing
================================  ======================================================================
"""

from data_prep.forward.checks import check_dispersion, check_stability
from data_prep.forward.config import (
    AMPLITUDE_CONVENTION,
    CRITICAL_COURANT_NUMBER,
    DEFAULT_MIN_CELLS_PER_WAVELENGTH,
    DISPERSION_FREQUENCY_FACTOR,
    FIRST_DERIVATIVE_WEIGHTS,
    GRADIENT_METHODS,
    SECOND_DERIVATIVE_WEIGHTS,
    EngineConfig,
    adjoint_segments,
    engine_settings,
    resolved_checkpoint_segments,
    stored_gradient_bytes,
)
from data_prep.forward.simulation import available_cpu_count, resolved_concurrent_calls, simulate
from data_prep.wavelets import ricker

__all__ = [
    "AMPLITUDE_CONVENTION",
    "CRITICAL_COURANT_NUMBER",
    "DEFAULT_MIN_CELLS_PER_WAVELENGTH",
    "DISPERSION_FREQUENCY_FACTOR",
    "FIRST_DERIVATIVE_WEIGHTS",
    "GRADIENT_METHODS",
    "SECOND_DERIVATIVE_WEIGHTS",
    "EngineConfig",
    "adjoint_segments",
    "available_cpu_count",
    "check_dispersion",
    "check_stability",
    "engine_settings",
    "resolved_checkpoint_segments",
    "resolved_concurrent_calls",
    "ricker",
    "simulate",
    "stored_gradient_bytes",
]
