"""Salt bodies: the ``salt`` family's smooth blob (optionally a diapir), the ``structural-salt`` family's
rugose diapir with an overhanging cap or detached sheet, and the interfaces the salt cuts.

Part of ``data_prep.velocity_models``.
"""

from __future__ import annotations

import numpy as np

from data_prep.velocity_models.recipes import FamilyParameters
from data_prep.velocity_models.shapes import lobed_radius, smooth_curve


def salt_body_mask(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int]
) -> np.ndarray:
    """An irregular salt body: a star-shaped blob with a smooth random outline, optionally with a stem."""
    depth_cells, x_cells = grid_shape
    half_width = 0.5 * rng.uniform(*parameters.salt_width_fraction) * x_cells
    half_height = 0.5 * rng.uniform(*parameters.salt_height_fraction) * depth_cells
    centre_x = rng.uniform(0.35, 0.65) * (x_cells - 1)
    centre_z = rng.uniform(0.4, 0.7) * (depth_cells - 1)
    z, x = np.mgrid[0:depth_cells, 0:x_cells].astype(float)
    angle = np.arctan2((z - centre_z) / half_height, (x - centre_x) / half_width)
    # Radius modulated by low harmonics (2-4 lobes): smooth but irregular, never self-intersecting.
    radius = lobed_radius(rng, angle, np.arange(2, 5), 0.15)
    mask = np.hypot((z - centre_z) / half_height, (x - centre_x) / half_width) <= radius
    if rng.uniform() < parameters.salt_stem_probability:
        # A diapir: a stem, narrower than the body and slightly wavy, rises from the bottom of the grid.
        stem_half_width = rng.uniform(0.3, 0.5) * half_width
        sway = 0.3 * stem_half_width * np.sin(2 * np.pi * z / depth_cells + rng.uniform(0, 2 * np.pi))
        mask |= (np.abs(x - centre_x - sway) <= stem_half_width) & (z >= centre_z)
    return mask


def rugose_salt_mask(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int]
) -> np.ndarray:
    """A salt body with a rugose top and steep flanks: a diapir whose cap overhangs its stem, or a sheet.

    The cap spans ``salt_width_fraction`` of the width and ``salt_height_fraction`` of the depth; its top
    is a dome plus short-wavelength relief (``salt_rugosity_fraction``), its base a gentler curve. A diapir's
    stem, narrower than the cap (the overhang), rises from the bottom of the grid with a slight sway.
    """
    depth_cells, x_cells = grid_shape
    z = np.arange(depth_cells, dtype=float)[:, None]
    x = np.arange(x_cells, dtype=float)[None, :]
    half_width = 0.5 * rng.uniform(*parameters.salt_width_fraction) * x_cells
    height = rng.uniform(*parameters.salt_height_fraction) * depth_cells
    centre_x = rng.uniform(0.3, 0.7) * (x_cells - 1)
    top_depth = rng.uniform(0.2, 0.5) * depth_cells
    u = (x - centre_x) / half_width  # -1 .. 1 across the cap
    inside = np.abs(u) <= 1.0
    # Rugose top: a dome (shallowest in the middle) plus short-wavelength relief.
    dome = 0.35 * height * u**2
    relief = (
        parameters.salt_rugosity_fraction * depth_cells * smooth_curve(rng, x_cells, (0.08, 0.3))[None, :]
    )
    top = top_depth + dome + relief
    # Base of the cap: thickest in the middle, thinning towards steep, rounded flanks.
    thickness = height * np.sqrt(np.clip(1.0 - np.abs(u) ** rng.uniform(2.5, 4.0), 0.0, 1.0))
    mask = inside & (z >= top) & (z <= top + thickness)
    if rng.uniform() >= parameters.salt_sheet_probability:
        stem_half_width = rng.uniform(0.3, 0.6) * half_width
        sway = 0.4 * stem_half_width * np.sin(2 * np.pi * z / depth_cells + rng.uniform(0, 2 * np.pi))
        stem_top = top_depth + 0.5 * height
        mask |= (np.abs(x - centre_x - sway) <= stem_half_width) & (z >= stem_top)
    return mask


def cut_by_salt(interfaces, salt: np.ndarray) -> None:
    """Sets, in place, each interface to NaN in the columns where its first cell below lies in the salt (or
    in any other body given as the ``(depth, x)`` mask ``salt``)."""
    depth_cells, x_cells = salt.shape
    columns = np.arange(x_cells)
    for interface in interfaces:
        finite = np.isfinite(interface)
        first_below = np.clip(np.ceil(np.where(finite, interface, 0)).astype(int), 0, depth_cells - 1)
        interface[finite & salt[first_below, columns]] = np.nan


__all__ = ["cut_by_salt", "rugose_salt_mask", "salt_body_mask"]
