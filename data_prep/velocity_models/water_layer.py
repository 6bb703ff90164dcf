"""A water column on top of a model: a marine survey records through the sea before it reaches the geology.

Most salt provinces and many structural surveys are marine: their sections begin with tens to hundreds of
metres of water at ~1500 m/s, then the sediments below a sea floor that dips. None of the families starts
that way, so a network trained on them reads the water-bottom reflection as a layer boundary at a velocity
it has learned by family, and carries its deep trend down from the sea surface instead of from the sea floor
(docs/training.md, "On realistic sections": the general models were 130-320 m/s too fast under
Marmousi2's ~220 m of water).

A chosen model ``v`` (``WaterLayerConfig.probability``) is pushed down, column by column, by the water depth
``h(x)`` of that column and the top ``h(x)`` cells are filled with ``velocity_mps``: the geology keeps its
shape below a sea floor that follows it, and the deepest ``h(x)`` cells of the column drop out of the grid.
``h(x) = depth + tan(dip) (x - x_mid)``, rounded to whole cells; the depth at the grid's middle is drawn from
``depth_m``, the dip from ``±max_dip_deg``, both from ``(seed, model index)`` only, so shards and re-runs draw
the same. The water bottom becomes an edge of the edge labels like any other interface (``data_prep.edges``
works on the velocity).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

#: Sea water's P-wave velocity in m/s lies in 1450-1550 (temperature, salinity, pressure); a value outside
#: this range is a unit mistake (km/s), not a sea.
PLAUSIBLE_WATER_MPS = (1400.0, 1600.0)


@dataclass(frozen=True)
class WaterLayerConfig:
    """Per-model water column in synthesis (``data_prep.synthesize``; YAML: ``water``).

    Attributes:
        probability: chance that a model gets a water column; 0 = off.
        depth_m: ``(shallowest, deepest)`` water depth at the grid's middle column, m.
        max_dip_deg: steepest dip of the sea floor, degrees (drawn uniformly in ``±max_dip_deg``).
        velocity_mps: the water's velocity, m/s.
    """

    probability: float = 0.0
    depth_m: tuple[float, float] = (20.0, 300.0)
    max_dip_deg: float = 5.0
    velocity_mps: float = 1500.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"water.probability must lie in [0, 1]. Received: {self.probability!r}")
        shallowest, deepest = self.depth_m
        if not 0.0 <= shallowest <= deepest:
            raise ValueError(
                "water.depth_m must be [shallowest, deepest] metres with 0 <= shallowest <= deepest. "
                f"Received: {self.depth_m!r}"
            )
        if not 0.0 <= self.max_dip_deg < 45.0:
            raise ValueError(f"water.max_dip_deg must lie in [0, 45) degrees. Received: {self.max_dip_deg!r}")
        low, high = PLAUSIBLE_WATER_MPS
        if not low <= self.velocity_mps <= high:
            raise ValueError(
                f"water.velocity_mps must be sea water's velocity in m/s ({low:.0f}-{high:.0f}). Received: "
                f"{self.velocity_mps!r} (a value near 1.5 is km/s: multiply by 1000)"
            )

    @property
    def enabled(self) -> bool:
        return self.probability > 0

    def draw(self, seed: int, index: int, grid_shape: tuple[int, int], spacing_m: float) -> np.ndarray | None:
        """Model ``index``'s water depth per column in whole cells, ``(x,)`` int, within ``[0, depth - 1]``; None
        when it is not chosen. Depends on ``(seed, index)`` and the grid only."""
        rng = np.random.default_rng(np.random.SeedSequence([seed, index, zlib.crc32(b"water")]))
        chosen = rng.uniform() < self.probability
        depth_m = rng.uniform(*self.depth_m)
        dip = math.radians(rng.uniform(-self.max_dip_deg, self.max_dip_deg))
        if not chosen:
            return None
        depth_cells, width_cells = grid_shape
        offsets_m = (np.arange(width_cells) - (width_cells - 1) / 2) * spacing_m
        depth = (depth_m + math.tan(dip) * offsets_m) / spacing_m
        return np.clip(np.rint(depth), 0, depth_cells - 1).astype(np.int64)


def add_water(velocity_mps: np.ndarray, water_cells: np.ndarray, velocity_of_water_mps: float) -> np.ndarray:
    """``velocity_mps`` ``(depth, x)`` with column ``x`` pushed down by ``water_cells[x]`` cells under water,
    float32 (the deepest ``water_cells[x]`` cells of each column drop out of the grid)."""
    velocity = np.asarray(velocity_mps)
    depth_cells, width_cells = velocity.shape
    water = np.asarray(water_cells)
    if water.shape != (width_cells,) or water.min(initial=0) < 0 or water.max(initial=0) >= depth_cells:
        raise ValueError(
            f"water_cells must be ({width_cells},) whole cells in [0, {depth_cells - 1}]. Received shape "
            f"{water.shape}, range {water.min(initial=0)}..{water.max(initial=0)}"
        )
    rows = np.arange(depth_cells)[:, None] - water[None, :]  # the source row of every cell; < 0 is water
    shifted = np.take_along_axis(velocity, np.maximum(rows, 0), axis=0)
    return np.where(rows < 0, np.float32(velocity_of_water_mps), shifted).astype(np.float32)


__all__ = ["PLAUSIBLE_WATER_MPS", "WaterLayerConfig", "add_water"]
