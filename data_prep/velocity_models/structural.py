"""The ``structural``, ``structural-salt`` and ``prior`` families: what real sections have together.

Part of ``data_prep.velocity_models``: ``structural_model`` builds a folded, dipping, faulted lower
sequence with thin layers, an erosional unconformity with an onlapping upper sequence, and a rugose salt
body, over a smooth background (a compaction trend, or the user's prior, ``data_prep.priors``), and last the
``inclusions`` family's closed bodies (``data_prep.velocity_models.bodies``).
"""

from __future__ import annotations

import math

import numpy as np

from data_prep.velocity_models.bodies import draw_bodies
from data_prep.velocity_models.faults import displaced_fault_traces, draw_faults
from data_prep.velocity_models.recipes import MIN_LAYER_THICKNESS_CELLS, FamilyParameters
from data_prep.velocity_models.salt import cut_by_salt, rugose_salt_mask
from data_prep.velocity_models.shapes import alternating_velocities, smooth_curve, sorted_with_gaps
from data_prep.velocity_models.velocity_model import VelocityModel, frozen_model


def structural_model(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int]
) -> VelocityModel:
    """A ``structural`` (or ``prior``) model: lower sequence, faults, unconformity, upper sequence, salt.

    Built in geological order: the lower sequence is deposited (conformable layers with thin layers inside
    them), folded and tilted as one package, then faulted; erosion cuts it along the unconformity and the
    upper sequence onlaps the erosional surface; salt, last, pierces everything. Velocities are a smooth
    background (the compaction trend, or the user's prior for ``prior``) plus one offset per layer.
    """
    depth_cells, x_cells = grid_shape
    x = np.arange(x_cells, dtype=float)
    rows = np.arange(depth_cells, dtype=float)[:, None]
    min_thickness = max(MIN_LAYER_THICKNESS_CELLS, parameters.min_layer_thickness_fraction * depth_cells)

    # --- Lower sequence: conformable layers, folded and tilted together, then faulted.
    depths, offsets = _lower_sequence(parameters, rng, grid_shape, min_thickness)
    depths, faults = draw_faults(parameters, rng, grid_shape, depths)
    lower_labels = (rows[None] >= depths[:, None, :]).sum(axis=0)

    # --- Unconformity and upper sequence.
    unconformity, num_upper, upper_depths, labels, offsets = _upper_sequence(
        parameters, rng, grid_shape, min_thickness, offsets, lower_labels
    )

    # --- Velocity: smooth background + one offset per layer.
    background = _background_velocity(parameters, rng, grid_shape)
    low_velocity, high_velocity = parameters.velocity_range_mps
    offsets_array = np.asarray(offsets)
    velocity = np.clip(background + offsets_array[labels], low_velocity, high_velocity)

    # --- Reported interfaces: the module's convention, NaN where eroded, onlapped or outside the grid.
    reported = [row for row in upper_depths]
    if unconformity is not None:
        reported.append(unconformity.copy())
        lower_reported = np.where(depths >= unconformity[None, :], depths, np.nan)
    else:
        lower_reported = depths.copy()
    reported.extend(lower_reported)
    reported = [np.where((depth >= 0) & (depth <= depth_cells - 1), depth, np.nan) for depth in reported]
    traces = list(displaced_fault_traces(faults, grid_shape))
    if unconformity is not None:  # the faults predate the unconformity: erosion truncates them
        traces = [trace[trace[:, 0] >= np.interp(trace[:, 1], x, unconformity)] for trace in traces]

    salt_velocity = None
    labels = labels.astype(np.int16)
    if rng.uniform() < parameters.salt_probability:
        salt = rugose_salt_mask(parameters, rng, grid_shape)
        salt_velocity = float(rng.uniform(*parameters.salt_velocity_range_mps))
        velocity, traces = _place_body(salt, salt_velocity, len(offsets), labels, velocity, reported, traces)
    # Layer velocities: each layer's mean (they vary within a layer with the background).
    layer_means = tuple(
        float(velocity[labels == unit].mean()) if (labels == unit).any() else float("nan")
        for unit in range(len(offsets))
    )
    # Closed bodies, youngest of all (none unless the recipe has num_bodies): units after the salt's label,
    # drawn after the layers' means so that a layer they cover keeps its velocity.
    body_velocities = []
    if parameters.num_bodies[1] > 0:
        for mask, body_velocity in draw_bodies(parameters, rng, velocity):
            label = len(offsets) + 1 + len(body_velocities)
            velocity, traces = _place_body(mask, body_velocity, label, labels, velocity, reported, traces)
            body_velocities.append(body_velocity)
    return frozen_model(
        velocity_mps=velocity.astype(np.float32),
        family=parameters.name,
        interfaces=tuple(reported),
        faults=tuple(faults),
        fault_traces=tuple(traces),
        labels=labels,
        layer_velocities_mps=layer_means,
        salt_velocity_mps=salt_velocity,
        body_velocities_mps=tuple(body_velocities),
        unconformity=unconformity,
        num_upper_units=num_upper,
    )


def _place_body(mask, body_velocity, label, labels, velocity, reported, traces):
    """Puts a body (salt or a closed body) over everything older: its ``label`` into ``labels`` (in place), its
    velocity, and the ``reported`` interfaces (in place) and fault ``traces`` ended where it covers them.
    Returns ``(velocity, traces)``."""
    labels[mask] = label
    cut_by_salt(reported, mask)
    kept = [
        trace[~mask[np.rint(trace[:, 0]).astype(int), np.rint(trace[:, 1]).astype(int)]] for trace in traces
    ]
    return np.where(mask, body_velocity, velocity), kept


def _lower_sequence(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int], min_thickness: float
) -> tuple[np.ndarray, list[float]]:
    """The lower sequence before faulting: conformable layers (thin layers inside them) folded and tilted
    together. Returns the ``(interfaces, x)`` depths (cells) and one velocity offset per layer (m/s)."""
    depth_cells, x_cells = grid_shape
    x = np.arange(x_cells, dtype=float)
    num_lower = int(rng.integers(parameters.num_layers[0], parameters.num_layers[1] + 1))
    slope = math.tan(math.radians(rng.uniform(*parameters.dip_deg))) * rng.choice([-1.0, 1.0])
    amplitude = parameters.curvature_amplitude_fraction * depth_cells * rng.uniform(0.4, 1.0)
    shape = slope * (x - (x_cells - 1) / 2) + amplitude * smooth_curve(
        rng, x_cells, parameters.curvature_wavelength_fraction
    )
    # Interfaces are spread over the depths the package shows inside the grid, wherever its shape puts it.
    low = min_thickness - shape.min()
    high = depth_cells - 1 - min_thickness - shape.max()
    # Steep or strongly folded packages may not fit: then part of them leaves the grid.
    high = max(high, low + max(0, num_lower - 2) * min_thickness + 1e-6)
    bases = sorted_with_gaps(rng, num_lower - 1, low, high, min_thickness)
    offsets = list(_layer_offsets(parameters, rng, num_lower))
    # Thin layers (2-3 % of the depth, >= 2 cells) inside host layers thick enough to hold them with room
    # above and below, each a strong anomaly of either sign against its host.
    thin = max(MIN_LAYER_THICKNESS_CELLS, 0.025 * depth_cells)
    num_thin = int(rng.integers(parameters.num_thin_layers[0], parameters.num_thin_layers[1] + 1))
    tops = np.concatenate([[low - 2 * min_thickness], bases])
    bottoms = np.concatenate([bases, [max(low, high) + 2 * min_thickness]])
    for _ in range(num_thin):
        room = [
            i for i in range(1, len(tops) - 1) if bottoms[i] - tops[i] >= thin + 2 * MIN_LAYER_THICKNESS_CELLS
        ]
        if not room:
            break
        host = int(rng.choice(room))
        top = rng.uniform(
            tops[host] + MIN_LAYER_THICKNESS_CELLS, bottoms[host] - thin - MIN_LAYER_THICKNESS_CELLS
        )
        anomaly = rng.uniform(*parameters.thin_layer_contrast_mps) * rng.choice([-1.0, 1.0])
        # Split the host: host above, the thin layer, host again below.
        tops = np.concatenate([tops[: host + 1], [top, top + thin], tops[host + 1 :]])
        bottoms = np.concatenate([bottoms[:host], [top, top + thin, bottoms[host]], bottoms[host + 1 :]])
        offsets[host + 1 : host + 1] = [offsets[host] + anomaly, offsets[host]]
    depths = tops[1:, None] + shape[None, :]
    return depths, offsets


def _upper_sequence(
    parameters: FamilyParameters,
    rng: np.random.Generator,
    grid_shape: tuple[int, int],
    min_thickness: float,
    offsets: list[float],
    lower_labels: np.ndarray,
) -> tuple[np.ndarray | None, int, np.ndarray, np.ndarray, list[float]]:
    """The erosional unconformity and the upper sequence onlapping it, drawn with
    ``unconformity_probability``. Returns ``(unconformity or None, number of upper layers, upper interface
    depths, unit labels of every cell, velocity offsets of every layer, upper first)``."""
    depth_cells, x_cells = grid_shape
    x = np.arange(x_cells, dtype=float)
    rows = np.arange(depth_cells, dtype=float)[:, None]
    if rng.uniform() < parameters.unconformity_probability:
        mean_depth = rng.uniform(*parameters.unconformity_depth_fraction) * depth_cells
        relief = 0.03 * depth_cells * smooth_curve(rng, x_cells, (0.3, 1.0))
        tilt = math.tan(math.radians(rng.uniform(0.0, 3.0))) * rng.choice([-1.0, 1.0]) * (x - x_cells / 2)
        unconformity = np.clip(mean_depth + relief + tilt, MIN_LAYER_THICKNESS_CELLS, depth_cells - 2.0)
        num_upper = int(rng.integers(parameters.num_upper_layers[0], parameters.num_upper_layers[1] + 1))
        upper_slope = math.tan(math.radians(rng.uniform(0.0, 3.0))) * rng.choice([-1.0, 1.0])
        upper_shape = upper_slope * (x - (x_cells - 1) / 2)
        upper_low = min_thickness - upper_shape.min()
        upper_high = unconformity.min() - min_thickness - upper_shape.max()
        # As many upper layers as the space above the unconformity holds (at least the one filling it).
        fits = 1 + max(0, int((upper_high - upper_low) // min_thickness) + 1)
        num_upper = max(1, min(num_upper, fits))
        upper_bases = sorted_with_gaps(
            rng,
            num_upper - 1,
            upper_low,
            max(upper_high, upper_low + max(0, num_upper - 2) * min_thickness + 1e-6),
            min_thickness,
        )
        upper_depths = upper_bases[:, None] + upper_shape[None, :]
        # Onlap: an upper interface below the erosional surface does not exist there.
        upper_depths = np.where(upper_depths < unconformity[None, :], upper_depths, np.nan)
        upper_labels = (rows[None] >= np.nan_to_num(upper_depths, nan=np.inf)[:, None, :]).sum(axis=0)
        # The eroded lower sequence was buried deeper before uplift: it is faster than its depth suggests
        # (not around a user's prior, which already is the expected velocity: perturbations stay zero-mean).
        uplift = rng.uniform(100.0, 400.0) if parameters.kind == "structural" else 0.0
        offsets = list(_layer_offsets(parameters, rng, num_upper)) + [o + uplift for o in offsets]
        below = rows >= unconformity[None, :]
        labels = np.where(below, num_upper + lower_labels, upper_labels)
    else:
        unconformity, num_upper, upper_depths = None, 0, np.zeros((0, x_cells))
        labels = lower_labels
    return unconformity, num_upper, upper_depths, labels, offsets


def _layer_offsets(parameters: FamilyParameters, rng: np.random.Generator, count: int) -> np.ndarray:
    """Per-layer velocity offsets from the background, m/s: neighbours ``min_contrast_mps`` apart."""
    spread = parameters.layer_offset_mps
    contrast = min(parameters.min_contrast_mps, spread)  # a narrow spread cannot honour a large contrast
    return alternating_velocities(rng, count, -spread, spread, contrast)


def _background_velocity(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int]
) -> np.ndarray:
    """``(depth, x)`` smooth background: the compaction trend, or the user's prior for ``prior``."""
    depth_cells, x_cells = grid_shape
    if parameters.kind == "prior":
        from data_prep.priors import load_prior, prior_on_grid

        prior = load_prior(parameters.prior_path, parameters.prior_spacing_m, parameters.prior_x_spacing_m)
        return prior_on_grid(prior, grid_shape, parameters.grid_spacing_m, rng)
    top = rng.uniform(*parameters.gradient_top_velocity_range_mps)
    bottom = rng.uniform(*parameters.gradient_bottom_velocity_range_mps)
    lateral = (
        parameters.lateral_variation_fraction * rng.uniform(0.3, 1.0) * smooth_curve(rng, x_cells, (1.0, 3.0))
    )
    z = np.arange(depth_cells, dtype=float)[:, None] / max(1, depth_cells - 1)
    # Compaction: velocity rises fastest near the surface (a square-root-like profile, not a straight line).
    trend = top + (bottom - top) * z ** rng.uniform(0.6, 1.0)
    return trend * (1.0 + lateral[None, :])


__all__ = ["structural_model"]
