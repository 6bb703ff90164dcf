"""Faults: the ``Fault`` (a planar normal fault), how one is drawn apart from the others, applied to the
interfaces, and traced through the younger faults that displace it.

Part of ``data_prep.velocity_models``; used by the faulted ``layered`` families and by ``structural``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from data_prep.velocity_models.recipes import FAULT_SEPARATION_FRACTION, MAX_FAULT_DRAWS, FamilyParameters


@dataclass(frozen=True)
class Fault:
    """A planar (in 2D: straight) normal fault.

    The fault line passes through ``(0, x_top_cell)`` and dips at ``dip_deg`` from the horizontal towards
    ``+x`` (``dip_direction=+1``) or ``-x`` (``-1``): at depth ``z`` (cells) it lies at
    ``x = x_top_cell + dip_direction * z / tan(dip)``. The hanging wall (the block above the dipping plane)
    moved down by ``throw_cells`` relative to the footwall.

    Attributes:
        x_top_cell: x of the fault line at depth 0, cells (may lie outside the grid).
        dip_deg: dip from the horizontal, degrees, in (0, 90).
        dip_direction: +1 or -1, the x direction the fault dips towards.
        throw_cells: vertical displacement of the hanging wall, cells (positive = down).
    """

    x_top_cell: float
    dip_deg: float
    dip_direction: int
    throw_cells: float

    def x_at_depth(self, depth_cells: np.ndarray | float) -> np.ndarray:
        """x (cells, fractional) of the fault line at the given depths (cells)."""
        return self.x_top_cell + self.dip_direction * np.asarray(depth_cells, dtype=float) / math.tan(
            math.radians(self.dip_deg)
        )

    def depth_at_x(self, x_cells: np.ndarray | float) -> np.ndarray:
        """Depth (cells) where the fault line crosses the given x positions; cells above it in that column
        belong to the hanging wall."""
        return (
            self.dip_direction
            * (np.asarray(x_cells, dtype=float) - self.x_top_cell)
            * math.tan(math.radians(self.dip_deg))
        )

    def polyline_cells(self, grid_shape: tuple[int, int]) -> np.ndarray:
        """``(2, 2)`` float array: the ``(depth, x)`` end points of the fault line at the top and bottom rows.

        This is the line as drawn; a younger fault of the same model may have displaced part of it (see
        ``VelocityModel.fault_traces``). The x values may lie outside ``[0, x_cells - 1]`` where the fault
        leaves the grid sideways.
        """
        depths = np.array([0.0, grid_shape[0] - 1.0])
        return np.stack([depths, self.x_at_depth(depths)], axis=1)

    def displace(self, depth_cells: np.ndarray, x_cells: np.ndarray) -> np.ndarray:
        """Where points of older structures end up after this fault moved, as new depths (cells).

        Points in the hanging wall move down by the throw while they stay above the fault line; points
        below it (footwall) stay. Hanging-wall points that would end below the fault line are cut out by
        the fault plane and come back as NaN.
        """
        depth = np.asarray(depth_cells, dtype=float)
        fault_depth = self.depth_at_x(x_cells)
        shifted = depth + self.throw_cells
        return np.where(shifted < fault_depth, shifted, np.where(depth >= fault_depth, depth, np.nan))


def draw_faults(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int], depths: np.ndarray
) -> tuple[np.ndarray, list[Fault]]:
    """Draws the recipe's faults one after the other and displaces the interface depths by each."""
    faults: list[Fault] = []
    num_faults = int(rng.integers(parameters.num_faults[0], parameters.num_faults[1] + 1))
    for _ in range(num_faults):
        fault = _draw_separated_fault(parameters, rng, grid_shape, faults)
        if fault is None:
            break
        depths = _apply_fault(depths, fault)
        faults.append(fault)
    return depths, faults


def _draw_fault(parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int]) -> Fault:
    depth_cells, x_cells = grid_shape
    dip = rng.uniform(*parameters.fault_dip_deg)
    direction = int(rng.choice([-1, 1]))
    # Place the fault so that it crosses mid-depth in the central half of the grid: it then cuts most
    # interfaces instead of slipping past a corner.
    x_mid = rng.uniform(0.25, 0.75) * (x_cells - 1)
    x_top = x_mid - direction * (depth_cells / 2) / math.tan(math.radians(dip))
    # At least 2 cells of throw: smaller offsets are invisible at the grid's resolution.
    throw = max(2.0, rng.uniform(*parameters.fault_throw_fraction) * depth_cells)
    return Fault(
        x_top_cell=float(x_top), dip_deg=float(dip), dip_direction=direction, throw_cells=float(throw)
    )


def _draw_separated_fault(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int], existing: list[Fault]
) -> Fault | None:
    """A fault that stays ``FAULT_SEPARATION_FRACTION`` of the width away from ``existing`` at every row.

    Crossing faults cut slivers one or two cells wide whose edges merge into bands thicker than two cells,
    and are rare in the recipes we imitate; so redraw (a bounded, seeded number of times, hence still
    deterministic) and give up on this fault, returning ``None``, if no separated one is found.
    """
    depth_cells, x_cells = grid_shape
    separation = max(3.0, FAULT_SEPARATION_FRACTION * x_cells)
    rows = np.arange(depth_cells, dtype=float)
    for _ in range(MAX_FAULT_DRAWS):
        fault = _draw_fault(parameters, rng, grid_shape)
        x = fault.x_at_depth(rows)
        if all(np.abs(x - other.x_at_depth(rows)).min() >= separation for other in existing):
            return fault
    return None


def _apply_fault(depths: np.ndarray, fault: Fault) -> np.ndarray:
    """Interface depths after a normal fault: the part of each column above the fault line moves down."""
    x = np.arange(depths.shape[1], dtype=float)
    fault_depth = fault.depth_at_x(x)[None, :]
    shifted = depths + fault.throw_cells
    # In a column, the hanging wall occupies depths < fault_depth and the footwall the rest. A boundary
    # stays in the hanging wall if its shifted depth is still above the fault line; otherwise it appears in
    # the footwall at its old depth, or on the fault line itself where the fault juxtaposes the layers.
    # Unit labels down each column stay non-decreasing, so each boundary crosses each column once.
    return np.where(shifted < fault_depth, shifted, np.maximum(depths, fault_depth))


def displaced_fault_traces(faults: list[Fault], grid_shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Each fault line, displaced by the younger faults, as ``(points, 2)`` (depth, x) inside the grid."""
    depth_cells, x_cells = grid_shape
    # Start above the grid by the total throw: younger faults can bring shallower parts of a line down.
    total_throw = sum(fault.throw_cells for fault in faults)
    traces = []
    for number, fault in enumerate(faults):
        depth = np.arange(-np.ceil(total_throw), depth_cells, 0.25)
        x = fault.x_at_depth(depth)
        for younger in faults[number + 1 :]:
            depth = younger.displace(depth, x)
        inside = (
            np.isfinite(depth) & (depth >= 0) & (depth <= depth_cells - 1) & (x >= 0) & (x <= x_cells - 1)
        )
        traces.append(np.stack([depth[inside], x[inside]], axis=1))
    return tuple(traces)


__all__ = ["Fault", "displaced_fault_traces", "draw_faults"]
