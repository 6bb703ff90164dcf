"""The checks ``simulate`` runs before propagating: stability (CFL) and numerical dispersion.

``check_stability`` raises for a time step the leapfrog scheme cannot take; ``check_dispersion`` warns when
the grid samples the shortest wavelength too coarsely. ``simulate`` calls both with the velocity range of
its batch (or the bounds it is given); they are public so a caller can check a configuration on its own.
"""

from __future__ import annotations

import warnings

import numpy as np

from data_prep.forward.config import (
    CRITICAL_COURANT_NUMBER,
    DISPERSION_FREQUENCY_FACTOR,
    EngineConfig,
)


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
