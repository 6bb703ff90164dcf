"""The propagator's grid: the state's fields, the static settings of a compiled propagator and the grid of
one call, cut into the row regions that each run only the terms they need.

Static means known while tracing: Python numbers, tuples and NumPy arrays; no tensor is stored here. The time step's
custom gradient (``data_prep.forward.time_step``) may not close over traced values (JAX's ``custom_vjp``),
so everything a step reads besides its arguments lives here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from keras import ops

from data_prep.forward.config import FIRST_DERIVATIVE_WEIGHTS, SECOND_DERIVATIVE_WEIGHTS

# State fields, ordered so that every region's update is one contiguous block of fields: a region inside
# a depth layer writes all five, one between the depth layers CHI_X..PRESSURE.
CHI_X, ZETA_X, PRESSURE, CHI_DEPTH, ZETA_DEPTH = range(5)
NUM_FIELDS = 5


@dataclass(frozen=True)
class Discretisation:
    """The static settings of one compiled propagator (``compiled_propagator``'s cache key, less the backend
    and the gradient method). Times in seconds, spacing in metres."""

    spatial_order: int
    free_surface: bool
    absorbing_width_cells: int
    time_step_s: float
    grid_spacing_m: float
    substeps: int
    cpml_frequency_hz: float
    checkpoint_segments: int | None

    @property
    def second(self) -> tuple[float, ...]:
        """Centred second-derivative weights ``c_0 .. c_h`` (times 1/dx^2)."""
        return SECOND_DERIVATIVE_WEIGHTS[self.spatial_order]

    @property
    def first(self) -> tuple[float, ...]:
        """Centred first-derivative weights ``d_1 .. d_h`` (times 1/dx)."""
        return FIRST_DERIVATIVE_WEIGHTS[self.spatial_order]

    @property
    def halo(self) -> int:
        """Zero cells around the padded grid, the stencil's reach: ``spatial_order / 2``."""
        return self.spatial_order // 2

    @property
    def top(self) -> int:
        """Absorbing cells above the model: none under a free surface."""
        return 0 if self.free_surface else self.absorbing_width_cells


def row_segments(length: int, before: int, after: int, halo: int) -> list[tuple[int, int, bool]]:
    """``(low, high, in_layer)`` segments of an axis of ``length`` cells with absorbing layers of ``before``
    and ``after`` cells at its ends (0 or the layer width): a layer's segment reaches ``halo`` cells into
    the model, where ``a = 0`` but the derivatives of ``a`` and of the layer's memory variables are not."""
    low = before + halo if before else 0
    high = length - after - halo if after else length
    if low >= high:  # a model thinner than the two layers' reach: one absorbing segment
        return [(0, length, True)]
    parts = [(0, low, True)] if low else []
    parts.append((low, high, False))
    return parts + ([(high, length, True)] if high < length else [])


@dataclass(frozen=True, eq=False)
class Grid:
    """The grid of one call: ``(batch, shots)`` slabs of ``(padded_depth, padded_x)`` cells (the model and
    its absorbing layers) inside a zero halo; the state is ``(NUM_FIELDS, batch, shots, haloed_depth,
    haloed_x)``.

    ``regions``: ``((row_low, row_high, depth_layer), (column_low, column_high, x_layer))`` per region, the
    rows cut by the depth layers. Only rows are cut: XLA's CPU code for a region narrower than the grid (a
    partial-row in-place update) is several times slower per cell than for whole rows (measured: splitting
    the columns of a bare stencil into halves made it 2.7x slower), so the x layers' terms run on whole rows.
    ``depth_mask`` ``(haloed_depth, 1)``, ``x_mask`` ``(1, haloed_x)``: 1 where a cell runs that axis's CPML
    terms; ``interior`` ``(haloed_depth, haloed_x)``: 1 off the halo (the adjoint steps need them).
    """

    discretisation: Discretisation
    batch: int
    num_shots: int
    depth_cells: int
    padded_depth: int
    padded_x: int
    regions: tuple[tuple[tuple[int, int, bool], tuple[int, int, bool]], ...]
    depth_mask: np.ndarray
    x_mask: np.ndarray
    interior: np.ndarray

    @classmethod
    def build(
        cls,
        discretisation: Discretisation,
        batch: int,
        num_shots: int,
        depth_cells: int,
        padded_depth: int,
        padded_x: int,
    ) -> Grid:
        halo, top = discretisation.halo, discretisation.top
        bottom = padded_depth - top - depth_cells
        haloed_depth, haloed_x = padded_depth + 2 * halo, padded_x + 2 * halo
        # Each row segment is inside a depth layer or not, and each region runs only the terms its axes
        # need (the model's interior: the plain Laplacian).
        regions = tuple((rows, (0, padded_x, True)) for rows in row_segments(padded_depth, top, bottom, halo))
        depth_mask = np.zeros((haloed_depth, 1), np.float32)
        for (row_low, row_high, depth_layer), _ in regions:
            depth_mask[halo + row_low : halo + row_high] = float(depth_layer)
        x_mask = np.zeros((1, haloed_x), np.float32)
        x_mask[0, halo : halo + padded_x] = 1.0
        interior = np.zeros((haloed_depth, haloed_x), np.float32)
        interior[halo : halo + padded_depth, halo : halo + padded_x] = 1.0
        return cls(
            discretisation,
            batch,
            num_shots,
            depth_cells,
            padded_depth,
            padded_x,
            regions,
            depth_mask,
            x_mask,
            interior,
        )

    @property
    def bottom(self) -> int:
        """Absorbing cells below the model."""
        return self.padded_depth - self.discretisation.top - self.depth_cells

    @property
    def haloed_depth(self) -> int:
        return self.padded_depth + 2 * self.discretisation.halo

    @property
    def haloed_x(self) -> int:
        return self.padded_x + 2 * self.discretisation.halo

    def field(self, array, index, rows, columns, depth_offset=0, x_offset=0):
        """Field ``index`` of the state ``array`` over a region's ``rows`` and ``columns`` (padded-grid
        cells), shifted by the offsets: ``(batch, shots, rows, columns)``."""
        halo = self.discretisation.halo
        return array[
            index,
            :,
            :,
            halo + rows[0] + depth_offset : halo + rows[1] + depth_offset,
            halo + columns[0] + x_offset : halo + columns[1] + x_offset,
        ]

    def window(self, array, depth_offset=0, x_offset=0):
        """The padded grid's cells of a haloed ``(batch, shots, depth, x)`` array, shifted by the offsets."""
        halo = self.discretisation.halo
        return array[
            :,
            :,
            halo + depth_offset : halo + depth_offset + self.padded_depth,
            halo + x_offset : halo + x_offset + self.padded_x,
        ]

    def deep_window(self, array, depth_offset=0, x_offset=0):
        """Like ``window`` but over every haloed row: the stencil also read the state's halo rows, which hold
        the free surface's image of the rows below (its adjoint folds them back)."""
        halo = self.discretisation.halo
        array = ops.pad(array, ((0, 0), (0, 0), (halo, halo), (0, 0)))
        return array[
            :,
            :,
            halo + depth_offset : halo + depth_offset + self.haloed_depth,
            halo + x_offset : halo + x_offset + self.padded_x,
        ]
