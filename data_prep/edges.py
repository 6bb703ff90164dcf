"""Edge labels: binary maps of the interfaces and faults of velocity models.

Ingest computes an edge map for every velocity model it stores (the ``edges`` HDF5 dataset), and the
two-head models learn it next to the velocities. Two methods:

``"gradient"`` (default)
    A cell is an edge when its velocity differs by more than ``threshold_mps`` from the cell above it or
    from the cell to its left. On a layered model this marks, in every column, the first cell below each
    interface (``ceil(depth)`` in the convention of ``data_prep.velocity_models``): one cell thick for flat
    interfaces, at most two (an L-shaped staircase step) for dipping ones, and exactly
    ``VelocityModel.interface_mask()`` when every contrast exceeds the threshold. Smooth gradients
    (a few tens of m/s per cell) stay below the threshold and produce no edges. The threshold is per cell,
    so on much coarser grids of gradient models it may need raising.

``"canny"``
    DD-Net's convention (Zhang et al., "Data-driven seismic inversion with edge labels"), reproduced exactly
    so results are comparable with theirs: the model is min-max scaled to [0, 1] with
    ``cv2.normalize(..., NORM_MINMAX, CV_32F)``, multiplied by 255, truncated to ``uint8`` and passed to
    ``cv2.Canny(image, canny_low, canny_high)`` (10 and 15); non-zero pixels are edges. Canny's edges are
    also thin, but where they fall relative to the interface is Canny's choice, not ours.

Both return ``uint8`` maps holding 0 and 1, the dtype stored in the HDF5 files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np


@dataclass(frozen=True)
class EdgeConfig:
    """How edge labels are computed.

    Attributes:
        method: ``"gradient"`` (jumps larger than ``threshold_mps``) or ``"canny"`` (DD-Net's convention).
        threshold_mps: gradient method: the smallest velocity jump between neighbouring cells, m/s, that
            counts as an edge. The default sits below the smallest layer contrast of the synthetic families
            (200 m/s) and above the per-cell change of smooth gradients (< 50 m/s on a 70-cell grid).
        canny_low: canny method: lower hysteresis threshold on the 0-255 image.
        canny_high: canny method: upper hysteresis threshold on the 0-255 image.
    """

    method: Literal["gradient", "canny"] = "gradient"
    threshold_mps: float = 100.0
    canny_low: float = 10.0
    canny_high: float = 15.0

    def __post_init__(self) -> None:
        if self.method not in ("gradient", "canny"):
            raise ValueError(f"method must be 'gradient' or 'canny'. Received: {self.method!r}")
        if not self.threshold_mps > 0:
            raise ValueError(
                f"threshold_mps must be positive (a velocity jump in m/s). Received: {self.threshold_mps}"
            )
        if not 0 <= self.canny_low <= self.canny_high:
            raise ValueError(
                f"Canny thresholds need 0 <= canny_low <= canny_high. "
                f"Received: canny_low={self.canny_low}, canny_high={self.canny_high}"
            )


def edge_map(velocity_mps: np.ndarray, config: EdgeConfig = EdgeConfig()) -> np.ndarray:
    """Binary edge labels of one velocity model or a batch of them.

    Args:
        velocity_mps: ``(depth, x)`` or ``(batch, depth, x)`` velocities in m/s (any real dtype).
        config: the method and its thresholds.

    Returns:
        ``uint8`` array of the input's shape: 1 on edges, 0 elsewhere.

    Raises:
        ValueError: an input that is not 2D or 3D, or holds NaN or infinite values.
    """
    velocity = np.asarray(velocity_mps)
    if velocity.ndim not in (2, 3):
        raise ValueError(
            f"velocity_mps must be (depth, x) or (batch, depth, x). Received shape {velocity.shape}."
        )
    if not np.issubdtype(velocity.dtype, np.number) or np.issubdtype(velocity.dtype, np.complexfloating):
        raise ValueError(f"velocity_mps must hold real numbers. Received dtype {velocity.dtype}.")
    if not np.isfinite(velocity).all():
        raise ValueError("velocity_mps holds NaN or infinite values: edge labels need a complete model.")
    batch = velocity if velocity.ndim == 3 else velocity[None]
    if config.method == "gradient":
        edges = _gradient_edges(batch, config.threshold_mps)
    else:
        edges = np.stack([_canny_edges(model, config.canny_low, config.canny_high) for model in batch])
    return edges if velocity.ndim == 3 else edges[0]


def _gradient_edges(batch: np.ndarray, threshold_mps: float) -> np.ndarray:
    # Floats are differenced in their own precision (float32 resolves 4500 m/s to ~0.0005 m/s, far below
    # any threshold, at half the memory traffic of float64); integers are cast first, since unsigned ones
    # would wrap around on subtraction.
    if not np.issubdtype(batch.dtype, np.floating):
        batch = batch.astype(np.float64)
    edges = np.zeros(batch.shape, dtype=bool)
    # Mark the cell below / right of a jump: the same side as the interface convention (first cell below).
    edges[:, 1:, :] |= np.abs(np.diff(batch, axis=1)) > threshold_mps
    edges[:, :, 1:] |= np.abs(np.diff(batch, axis=2)) > threshold_mps
    return edges.view(np.uint8)


def _canny_edges(model: np.ndarray, low: float, high: float) -> np.ndarray:
    # DD-Net's steps, kept literally so the labels match theirs bit for bit: min-max to [0, 1] in float32,
    # times 255, a truncating cast to uint8, Canny. A constant model normalises to zeros: no edges.
    image = model if model.dtype in (np.float32, np.float64) else model.astype(np.float32)
    unit = cv2.normalize(
        np.ascontiguousarray(image), None, alpha=0, beta=1, norm_type=cv2.NORM_MINMAX, dtype=cv2.CV_32F
    )
    image_255 = (unit * 255).astype(np.uint8)
    return (cv2.Canny(image_255, low, high) > 0).astype(np.uint8)


__all__ = ["EdgeConfig", "edge_map"]
