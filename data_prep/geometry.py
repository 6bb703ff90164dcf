"""Acquisition geometry: the grid, the time axis and where sources and receivers sit.

One ``AcquisitionGeometry`` describes a survey on a regular 2D grid. The forward-modelling engine
simulates with it, ``data_prep.synthesize`` writes it into SEG-Y headers and the manifest, and the HDF5
schema stores it with every dataset, so grid size, spacing, sample interval and positions are data,
never constants in code.

Conventions:
    * Grid axes are ``(depth, x)``; cell ``(0, 0)`` is the top-left corner, at depth 0 m and x 0 m.
    * Positions are cell indices ``(depth_cell, x_cell)``; metres are ``index * grid_spacing_m``.
    * Time sample ``k`` is at ``k * sample_interval_s`` seconds.

The default is OpenFWI's geometry (also ``AcquisitionGeometry.openfwi()`` and
``configs/data/openfwi.yaml``): a 70 x 70 grid of 10 m cells, 5 sources and 70 receivers 10 m below the
surface (depth row 1, as in OpenFWI's modeller, which places sources and receivers at z = 10 m), 1000
samples of 1 ms and a 15 Hz Ricker source.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: OpenFWI's source x-cells: 5 sources evenly spread over a 70-cell line (np.linspace(0, 69, 5), rounded).
OPENFWI_SOURCE_X_CELLS = (0, 17, 34, 52, 69)
#: OpenFWI's source and receiver depth row: 10 m below the surface on its 10 m grid.
OPENFWI_DEPTH_CELL = 1


@dataclass(frozen=True)
class AcquisitionGeometry:
    """A 2D survey geometry on a regular grid.

    Attributes:
        grid_shape: ``(depth_cells, x_cells)`` of the velocity model.
        grid_spacing_m: cell size in metres (square cells).
        num_samples: number of recorded time samples per trace.
        sample_interval_s: recorded sample interval in seconds.
        peak_frequency_hz: peak frequency of the Ricker source wavelet.
        source_cells: ``((depth_cell, x_cell), ...)``, one entry per shot.
        receiver_cells: ``((depth_cell, x_cell), ...)``, one entry per receiver (same for every shot).
    """

    grid_shape: tuple[int, int] = (70, 70)
    grid_spacing_m: float = 10.0
    num_samples: int = 1000
    sample_interval_s: float = 0.001
    peak_frequency_hz: float = 15.0
    source_cells: tuple[tuple[int, int], ...] = tuple((OPENFWI_DEPTH_CELL, x) for x in OPENFWI_SOURCE_X_CELLS)
    receiver_cells: tuple[tuple[int, int], ...] = tuple((OPENFWI_DEPTH_CELL, x) for x in range(70))

    def __post_init__(self) -> None:
        depth_cells, x_cells = self.grid_shape
        if depth_cells < 2 or x_cells < 2:
            raise ValueError(f"grid_shape must be at least (2, 2) cells. Received: {self.grid_shape}")
        for name in ("grid_spacing_m", "sample_interval_s", "peak_frequency_hz"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive. Received: {getattr(self, name)}")
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be at least 1. Received: {self.num_samples}")
        for name in ("source_cells", "receiver_cells"):
            cells = getattr(self, name)
            if len(cells) == 0:
                raise ValueError(f"{name} must hold at least one (depth_cell, x_cell) pair.")
            for cell in cells:
                if len(cell) != 2:
                    raise ValueError(f"{name} entries are (depth_cell, x_cell) pairs. Received: {cell}")
                depth, x = cell
                if not (0 <= depth < depth_cells and 0 <= x < x_cells):
                    raise ValueError(
                        f"{name} entry {tuple(cell)} lies outside the {depth_cells} x {x_cells} grid: "
                        f"depth cells run 0..{depth_cells - 1} and x cells 0..{x_cells - 1}."
                    )

    # --- Constructors -------------------------------------------------------------------------------------

    @classmethod
    def openfwi(cls) -> AcquisitionGeometry:
        """OpenFWI's survey (the dataclass defaults): 70 x 70 x 10 m, 5 sources and 70 receivers on depth
        row 1 (10 m), 1000 samples of 1 ms, 15 Hz Ricker. Use it with the default ``EngineConfig`` (no
        free surface, OpenFWI's Ricker delay and amplitude convention) to reproduce OpenFWI's data."""
        return cls()

    @classmethod
    def surface_line(
        cls,
        grid_shape: tuple[int, int] = (70, 70),
        num_sources: int = 5,
        num_receivers: int | None = None,
        source_depth_cell: int = 0,
        receiver_depth_cell: int = 0,
        **kwargs,
    ) -> AcquisitionGeometry:
        """Sources and receivers evenly spread across the grid at fixed depth rows.

        ``num_receivers=None`` puts one receiver on every x cell. With depth rows 1 this is OpenFWI's
        layout (``surface_line(source_depth_cell=1, receiver_depth_cell=1) == AcquisitionGeometry()``);
        the defaults (row 0) suit a free-surface survey.
        """
        x_cells = grid_shape[1]
        num_receivers = x_cells if num_receivers is None else num_receivers
        source_x = np.round(np.linspace(0, x_cells - 1, num_sources)).astype(int)
        receiver_x = np.round(np.linspace(0, x_cells - 1, num_receivers)).astype(int)
        return cls(
            grid_shape=tuple(grid_shape),
            source_cells=tuple((source_depth_cell, int(x)) for x in source_x),
            receiver_cells=tuple((receiver_depth_cell, int(x)) for x in receiver_x),
            **kwargs,
        )

    def replace(self, **changes) -> AcquisitionGeometry:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def shift_sources(self, shift_cells: Sequence[int]) -> AcquisitionGeometry:
        """A copy with each source moved by ``shift_cells`` cells along x (kept inside the grid): where a
        survey's shots were fired when they lie off the positions of the geometry (``--regrid``).

        Raises:
            ValueError: not one shift per source.
        """
        shifts = np.asarray(shift_cells, np.int64).reshape(-1)
        if shifts.size != self.num_sources:
            raise ValueError(
                f"Give one shift per source ({self.num_sources}). Received: {shifts.size} shift(s)"
            )
        width = self.grid_shape[1]
        cells = tuple(
            (int(depth), int(np.clip(x + shift, 0, width - 1)))
            for (depth, x), shift in zip(self.source_cells, shifts.tolist(), strict=True)
        )
        return self if cells == tuple(self.source_cells) else self.replace(source_cells=cells)

    # --- Derived quantities -------------------------------------------------------------------------------

    @property
    def num_sources(self) -> int:
        return len(self.source_cells)

    @property
    def num_receivers(self) -> int:
        return len(self.receiver_cells)

    @property
    def duration_s(self) -> float:
        """Time of the last recorded sample."""
        return (self.num_samples - 1) * self.sample_interval_s

    def source_positions_m(self) -> np.ndarray:
        """``(num_sources, 2)`` float64 array of ``(depth_m, x_m)``."""
        return np.asarray(self.source_cells, dtype=np.float64) * self.grid_spacing_m

    def receiver_positions_m(self) -> np.ndarray:
        """``(num_receivers, 2)`` float64 array of ``(depth_m, x_m)``."""
        return np.asarray(self.receiver_cells, dtype=np.float64) * self.grid_spacing_m

    def times_s(self) -> np.ndarray:
        """``(num_samples,)`` float64 array of recording times in seconds."""
        return np.arange(self.num_samples) * self.sample_interval_s
