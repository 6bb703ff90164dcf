"""The ``gradient`` family: no interfaces, a smooth depth gradient with a mildly varying top velocity.

Part of ``data_prep.velocity_models``.
"""

from __future__ import annotations

import numpy as np

from data_prep.velocity_models.recipes import FamilyParameters
from data_prep.velocity_models.shapes import smooth_curve
from data_prep.velocity_models.velocity_model import VelocityModel, frozen_model


def gradient_model(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int]
) -> VelocityModel:
    depth_cells, x_cells = grid_shape
    top = rng.uniform(*parameters.gradient_top_velocity_range_mps)
    bottom = rng.uniform(*parameters.gradient_bottom_velocity_range_mps)
    # Mild lateral variation of the top velocity, as in a compacting basin whose surface layer changes
    # laterally; the gradient k = (bottom - top) / depth stays the same in every column.
    lateral = (
        parameters.lateral_variation_fraction * rng.uniform(0.5, 1.0) * smooth_curve(rng, x_cells, (1.0, 3.0))
    )
    z = np.arange(depth_cells, dtype=float)[:, None] / max(1, depth_cells - 1)
    velocity = top * (1.0 + lateral[None, :]) + (bottom - top) * z
    low = min(parameters.gradient_top_velocity_range_mps[0], parameters.gradient_bottom_velocity_range_mps[0])
    high = max(
        parameters.gradient_top_velocity_range_mps[1], parameters.gradient_bottom_velocity_range_mps[1]
    )
    velocity = np.clip(velocity, low, high).astype(np.float32)
    return frozen_model(
        velocity_mps=velocity,
        family=parameters.name,
        interfaces=(),
        faults=(),
        fault_traces=(),
        labels=np.zeros(grid_shape, dtype=np.int16),
        layer_velocities_mps=(),
        salt_velocity_mps=None,
    )


__all__ = ["gradient_model"]
