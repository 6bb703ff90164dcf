"""Bodies of their own velocity inside a layered section: the ``inclusions`` family's anomalies.

Part of ``data_prep.velocity_models``. ``draw_bodies`` places a few irregular closed bodies (lenses, pods,
blobs of any orientation, cut by the grid's edges where they reach them) in a model, each faster or slower
than the sediments it replaces: the generic case of what real sections hold besides layers (carbonate
build-ups, igneous intrusions, gas-charged sands, channel fills, salt). The ``structural`` generator calls it
last, so a body replaces whatever it covers, layers, faults and salt alike.
"""

from __future__ import annotations

import numpy as np

from data_prep.velocity_models.recipes import FamilyParameters
from data_prep.velocity_models.shapes import lobed_radius

#: Outline harmonics (2-5 lobes) and the largest relative amplitude of each: the outline stays star-shaped
#: (the radius never reaches zero: 4 x 0.2 < 1), so a body is one piece without holes.
_HARMONICS = np.arange(2, 6)
_MAX_HARMONIC_AMPLITUDE = 0.2


def draw_bodies(
    parameters: FamilyParameters, rng: np.random.Generator, velocity_mps: np.ndarray
) -> list[tuple[np.ndarray, float]]:
    """``num_bodies`` bodies on the grid of ``velocity_mps``, oldest first: ``(mask, velocity m/s)`` each.

    A body's velocity is the median of the cells it covers (in the model as it was before the body) plus an
    anomaly of ``body_contrast_mps`` of either sign (faster with probability ``body_fast_probability``),
    kept inside ``velocity_range_mps``; when the range leaves less than ``min_contrast_mps`` on the drawn
    side, the anomaly goes the other way. A younger body covers an older one where they overlap.
    """
    depth_cells, x_cells = velocity_mps.shape
    low, high = parameters.velocity_range_mps
    velocity = np.array(velocity_mps, np.float64)
    bodies = []
    count = int(rng.integers(parameters.num_bodies[0], parameters.num_bodies[1] + 1))
    for _ in range(count):
        mask = _body_mask(parameters, rng, (depth_cells, x_cells))
        if not mask.any():
            continue
        host = float(np.median(velocity[mask]))
        anomaly = rng.uniform(*parameters.body_contrast_mps)
        sign = 1.0 if rng.uniform() < parameters.body_fast_probability else -1.0
        if (high - host if sign > 0 else host - low) < parameters.min_contrast_mps:
            sign = -sign
        body_velocity = float(np.clip(host + sign * anomaly, low, high))
        velocity[mask] = body_velocity
        bodies.append((mask, body_velocity))
    return bodies


def _body_mask(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int]
) -> np.ndarray:
    """One body: an ellipse of the drawn size, tilted, its radius modulated by a few low harmonics."""
    depth_cells, x_cells = grid_shape
    half_width = 0.5 * rng.uniform(*parameters.body_width_fraction) * x_cells
    half_height = 0.5 * rng.uniform(*parameters.body_height_fraction) * depth_cells
    centre_x = rng.uniform(0.0, 1.0) * (x_cells - 1)
    centre_z = rng.uniform(*parameters.body_depth_fraction) * (depth_cells - 1)
    tilt = np.radians(rng.uniform(-30.0, 30.0))
    z, x = np.mgrid[0:depth_cells, 0:x_cells].astype(float)
    along = (x - centre_x) * np.cos(tilt) + (z - centre_z) * np.sin(tilt)
    across = -(x - centre_x) * np.sin(tilt) + (z - centre_z) * np.cos(tilt)
    u, w = along / half_width, across / half_height
    radius = lobed_radius(rng, np.arctan2(w, u), _HARMONICS, _MAX_HARMONIC_AMPLITUDE)
    return np.hypot(u, w) <= radius


__all__ = ["draw_bodies"]
