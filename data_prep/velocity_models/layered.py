"""The layered families after OpenFWI: flatvel, curvevel, flatfault, curvefault (A and B) and salt.

Part of ``data_prep.velocity_models``: ``layered_model`` draws a recipe of kind ``layered`` or ``salt``:
layer velocities, conformable (flat or curved) interfaces, faults, then the salt body.
``check_recipe_fits`` refuses grids too shallow for the recipe's most layers.
"""

from __future__ import annotations

import numpy as np

from data_prep.velocity_models.faults import displaced_fault_traces, draw_faults
from data_prep.velocity_models.recipes import MIN_LAYER_THICKNESS_CELLS, FamilyParameters
from data_prep.velocity_models.salt import cut_by_salt, salt_body_mask
from data_prep.velocity_models.shapes import alternating_velocities, smooth_curve, sorted_with_gaps
from data_prep.velocity_models.velocity_model import VelocityModel, frozen_model


def layered_model(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int]
) -> VelocityModel:
    depth_cells, x_cells = grid_shape
    num_layers = int(rng.integers(parameters.num_layers[0], parameters.num_layers[1] + 1))
    velocities = _layer_velocities(parameters, rng, num_layers)
    depths = _interface_depths(parameters, rng, num_layers, grid_shape)

    depths, faults = draw_faults(parameters, rng, grid_shape, depths)

    traces = displaced_fault_traces(faults, grid_shape)

    # Cell i lies below interface k when i >= depth_k: the unit label counts the interfaces above the cell.
    rows = np.arange(depth_cells, dtype=float)[None, :, None]
    labels = (rows >= depths[:, None, :]).sum(axis=0).astype(np.int16)
    reported = depths.copy()
    # A boundary below the last row has no cell under it: it is not in the model.
    reported[reported > depth_cells - 1] = np.nan

    salt_velocity = None
    if parameters.kind == "salt":
        salt = salt_body_mask(parameters, rng, grid_shape)
        salt_velocity = float(rng.uniform(*parameters.salt_velocity_range_mps))
        labels[salt] = num_layers
        cut_by_salt(reported, salt)

    lookup = np.append(velocities, salt_velocity if salt_velocity is not None else np.nan).astype(np.float32)
    velocity = lookup[labels]
    return frozen_model(
        velocity_mps=velocity,
        family=parameters.name,
        interfaces=tuple(reported),
        faults=tuple(faults),
        fault_traces=traces,
        labels=labels,
        layer_velocities_mps=tuple(float(v) for v in velocities),
        salt_velocity_mps=salt_velocity,
    )


def _layer_velocities(parameters: FamilyParameters, rng: np.random.Generator, num_layers: int) -> np.ndarray:
    low, high = parameters.velocity_range_mps
    if parameters.velocity_increases_with_depth:
        return sorted_with_gaps(rng, num_layers, low, high, parameters.min_contrast_mps)
    return alternating_velocities(rng, num_layers, low, high, parameters.min_contrast_mps)


def _depth_layout(
    parameters: FamilyParameters, num_layers: int, amplitude: float, depth_cells: int
) -> tuple[float, float, float, float, float]:
    """Spacing rules for the interfaces: ``(min_thickness, wobble_amplitude, gap, low, high)`` in cells.

    Interface base depths lie in ``[low, high]``, at least ``gap`` apart; with the shared undulation
    (``amplitude``) and the individual wobble added, every layer stays ``min_thickness`` thick.
    """
    min_thickness = max(MIN_LAYER_THICKNESS_CELLS, parameters.min_layer_thickness_fraction * depth_cells)
    # The individual wobble stays below a quarter of the minimum thickness, so that neighbouring
    # interfaces can never cross or touch.
    wobble_amplitude = 0.25 * min_thickness if amplitude > 0 else 0.0
    gap = min_thickness + 2 * wobble_amplitude
    low = min_thickness + amplitude + wobble_amplitude
    high = depth_cells - 1 - min_thickness - amplitude - wobble_amplitude
    return min_thickness, wobble_amplitude, gap, low, high


def _largest_amplitude(parameters: FamilyParameters, num_layers: int, depth_cells: int) -> float:
    """The largest interface undulation (cells) with which ``num_layers`` layers still fit the depth."""
    min_thickness, wobble_amplitude, gap, _, _ = _depth_layout(parameters, num_layers, 1.0, depth_cells)
    # Depth budget: top and bottom layers, (num_layers - 2) gaps, and the undulation above and below.
    free = depth_cells - 1 - 2 * min_thickness - 2 * wobble_amplitude - max(0, num_layers - 2) * gap
    return max(0.0, free / 2)


def check_recipe_fits(parameters: FamilyParameters, grid_shape: tuple[int, int]) -> None:
    """Refuses a grid too shallow for the recipe's most layers even when flat, so that a recipe and a grid
    either always work or always fail, whatever the index. (Curvature shrinks to fit instead.)"""
    if parameters.kind in ("gradient", "structural", "prior", "section"):
        return  # structural layer thicknesses are fractions of the depth that always fit
    depth_cells = grid_shape[0]
    num_layers = parameters.num_layers[1]
    min_thickness, _, gap, low, high = _depth_layout(parameters, num_layers, 0.0, depth_cells)
    if num_layers > 1 and high - low < (num_layers - 2) * gap:
        raise ValueError(
            f"Family {parameters.name!r}: {num_layers} layers at least {min_thickness:.1f} cells thick do not "
            f"fit in {depth_cells} depth cells. Use a deeper grid, or override num_layers or "
            f"min_layer_thickness_fraction. Received: grid_shape={tuple(grid_shape)}"
        )


def _interface_depths(
    parameters: FamilyParameters, rng: np.random.Generator, num_layers: int, grid_shape: tuple[int, int]
) -> np.ndarray:
    """``(num_layers - 1, x)`` depths (cells) of the unfaulted interfaces, shallowest first."""
    depth_cells, x_cells = grid_shape
    num_interfaces = num_layers - 1
    amplitude = parameters.curvature_amplitude_fraction * depth_cells * rng.uniform(0.5, 1.0)
    # On shallow grids the most layers may not fit with the full undulation: flatten them just enough.
    amplitude = min(amplitude, _largest_amplitude(parameters, num_layers, depth_cells))
    _, wobble_amplitude, gap, low, high = _depth_layout(parameters, num_layers, amplitude, depth_cells)
    # All interfaces share one shape (conformable layering) plus a small individual wobble.
    wavelengths = parameters.curvature_wavelength_fraction
    shared = amplitude * smooth_curve(rng, x_cells, wavelengths)
    wobbles = np.zeros((num_interfaces, x_cells))
    for number in range(num_interfaces):
        wobbles[number] = wobble_amplitude * smooth_curve(rng, x_cells, wavelengths)
    bases = sorted_with_gaps(rng, num_interfaces, low, high, gap)
    return bases[:, None] + shared[None, :] + wobbles


__all__ = ["check_recipe_fits", "layered_model"]
