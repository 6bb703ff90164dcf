"""Preconditioning that keeps the network's structure: the gradient's edge-preserving smoothing and muting.

Part of ``pipeline.refine``. The gradient is smoothed over a fraction of the stage's wavelength
(``stage_smoothing_cells``) by a diffusion that does not cross the structure's edges
(``edge_preserving_smoothing``): the network's edge map, or the start model's own velocity contrasts
(``structure_edges``). ``_update_filter`` is that smoothing with the mute of the shallowest rows, as one
function applied to every gradient of a stage.
"""

from __future__ import annotations

import math

import numpy as np

from data_prep.geometry import AcquisitionGeometry
from pipeline.refine.config import RefineConfig


def structure_edges(velocity_mps: np.ndarray) -> np.ndarray:
    """An edge map ``(depth, x)`` in [0, 1] from a velocity model's own contrasts: the gradient magnitude
    over its 90th percentile, clipped (what a network's edge head gives, when it has none)."""
    from scipy.ndimage import sobel

    velocity = np.asarray(velocity_mps, np.float64)
    magnitude = np.hypot(sobel(velocity, axis=0, mode="nearest"), sobel(velocity, axis=1, mode="nearest"))
    reference = float(np.percentile(magnitude, 90))
    if not reference > 0:
        return np.zeros_like(velocity)
    return np.clip(magnitude / reference, 0.0, 1.0)


def edge_preserving_smoothing(values: np.ndarray, sigma_cells: float, edges: np.ndarray | None) -> np.ndarray:
    """Diffusion of ``values`` over a length of ``sigma_cells`` (a Gaussian's standard deviation) whose
    conductance between two cells is ``1 - max(edge)`` of the two: smooth within layers, little exchange
    across the edges, so a change may jump there. A symmetric linear operator (so it may precondition a
    gradient). ``edges`` None: a plain Gaussian."""
    from scipy.ndimage import gaussian_filter

    values = np.asarray(values, np.float64)
    if not sigma_cells > 0:
        return values
    if edges is None:
        return gaussian_filter(values, sigma_cells, mode="nearest")
    conductance = 1.0 - np.clip(np.asarray(edges, np.float64), 0.0, 1.0)
    down = np.minimum(conductance[:-1], conductance[1:])  # faces between rows
    across = np.minimum(conductance[:, :-1], conductance[:, 1:])  # faces between columns
    rate = 0.2  # explicit scheme, stable below 0.25 in 2D
    steps = min(4000, max(1, math.ceil(sigma_cells**2 / (2 * rate))))
    smoothed = values.copy()
    for _ in range(steps):
        flux_down = down * (smoothed[1:] - smoothed[:-1])
        flux_across = across * (smoothed[:, 1:] - smoothed[:, :-1])
        change = np.zeros_like(smoothed)
        change[:-1] += flux_down
        change[1:] -= flux_down
        change[:, :-1] += flux_across
        change[:, 1:] -= flux_across
        smoothed += rate * change
    return smoothed


def structure_regions(velocity_mps: np.ndarray, bin_mps: float = 150.0, min_cells: int = 20) -> np.ndarray:
    """``(depth, x)`` int region labels 0..n-1 of a model's layers and bodies: the cells in the same
    ``bin_mps`` band of velocity joined where they touch (4-connected); regions under ``min_cells`` (the
    smooth transitions between two layers) are given to the nearest larger region. Banding the velocity
    rather than thresholding an edge map keeps two layers apart where their edge has a gap.
    One label for the whole model when nothing is large enough."""
    from scipy.ndimage import distance_transform_edt, label

    bands = np.floor(np.asarray(velocity_mps, np.float64) / bin_mps).astype(np.int64)
    labels = np.zeros(bands.shape, np.int64)
    count = 0
    for band in np.unique(bands):
        parts, found = label(bands == band)
        labels[parts > 0] = parts[parts > 0] + count
        count += found
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = (sizes >= min_cells)[labels]
    if not np.any(keep):
        return np.zeros(labels.shape, np.int64)
    # Every other cell takes the label of the nearest kept cell.
    _, (rows, columns) = distance_transform_edt(~keep, return_indices=True)
    _, dense = np.unique(labels[rows, columns], return_inverse=True)
    return dense.reshape(labels.shape).astype(np.int64)


def _region_filter(labels: np.ndarray, mask: np.ndarray):
    """The gradient of one velocity per region, put back on every cell of the region: the region's mean
    gradient, ``P D^-1 P^T g`` with ``P`` the cells-by-regions indicator and ``D`` the regions' sizes
    (symmetric and positive semi-definite, so it may precondition; the mean keeps a cell's gradient on the
    scale the stage's step size is set for)."""
    flat = labels.ravel()
    count = int(flat.max()) + 1
    sizes = np.maximum(np.bincount(flat, weights=mask.ravel(), minlength=count), 1.0)

    def apply(gradient: np.ndarray) -> np.ndarray:
        sums = np.bincount(flat, weights=(gradient * mask).ravel(), minlength=count)
        return (sums / sizes)[labels] * mask

    return apply


def _update_filter(
    shape: tuple[int, int],
    geometry: AcquisitionGeometry,
    config: RefineConfig,
    sigma_cells: float | None = None,
    edges: np.ndarray | None = None,
    regions: np.ndarray | None = None,
):
    """The gradient's smoothing and muting, as one function ``(depth, x) -> (depth, x)``; with ``regions``
    (labels), one update per region instead of the smoothing."""
    mask = np.ones(shape)
    if config.mute_top_cells:
        shallowest = min(min(c[0] for c in geometry.source_cells), min(c[0] for c in geometry.receiver_cells))
        mask[: shallowest + config.mute_top_cells + 1] = 0.0
    if regions is not None:
        return _region_filter(regions, mask)
    sigma = config.smoothing_cells if sigma_cells is None else sigma_cells

    def apply(gradient: np.ndarray) -> np.ndarray:
        return edge_preserving_smoothing(gradient * mask, sigma, edges) * mask

    return apply


def stage_smoothing_cells(
    config: RefineConfig, cutoff_hz: float | None, velocity_mps: np.ndarray, geometry: AcquisitionGeometry
) -> float:
    """Smoothing length of a stage: ``smoothing_wavelengths`` of its wavelength (median velocity over the
    cut-off, or over twice the peak frequency for the full band), at least ``smoothing_cells``."""
    frequency = cutoff_hz if cutoff_hz is not None else 2.0 * geometry.peak_frequency_hz
    wavelength_cells = float(np.median(velocity_mps)) / frequency / geometry.grid_spacing_m
    return max(config.smoothing_cells, config.smoothing_wavelengths * wavelength_cells)
