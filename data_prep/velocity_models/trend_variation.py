"""Depth-trend variety: a family's models with their velocity gradient tilted, so the trend is read, not recalled.

Every family has its own depth trend (FlatVel-A's layers speed up with depth by ~1,500 m/s over the grid,
the structural family's compaction by ~1,800 m/s, salt's sediments less). A network trained on a mix learns
those trends by family and carries them to geology it has not seen: the leave-family-out benchmark found the
held-out structural sections predicted ~170 m/s too slow on average, the error of a trend recalled from the
mix rather than read from the traveltimes (docs/training.md, "Where the held-out error lies"). Velocity
scaling at training time (``pipeline.feeding.scale_velocity``) varies a model's level exactly, but not its
gradient: no transformation of the traces does that, so the gradient is varied *before* the simulation.

A chosen model ``v`` becomes ``v · (1 + g · (z / z_max − ½))``: its mid-depth level is kept, its top slowed
and its bottom sped up by ``g / 2`` each (``g < 0`` the other way). Interfaces stay where they are (a smooth
ramp moves no edge). ``g`` is drawn uniformly from ``gradient_range`` narrowed so that the tilted model stays
within ``bounds_mps`` (the network's output range; a model already spanning it keeps its trend), from
``(seed, model index)`` only, so shards and re-runs draw the same.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TrendVariationConfig:
    """Per-model tilt of the depth trend in synthesis (``data_prep.synthesize``; YAML: ``trend``).

    Attributes:
        probability: chance that a model is tilted; 0 = off.
        gradient_range: ``(low, high)`` of ``g``: the bottom changes by ``+g/2`` and the top by ``−g/2`` of the
            velocity (0.4: top × 0.8, bottom × 1.2).
        bounds_mps: ``(lowest, highest)`` velocity a tilted model may reach, m/s.
    """

    probability: float = 0.0
    gradient_range: tuple[float, float] = (-0.4, 0.4)
    bounds_mps: tuple[float, float] = (1500.0, 4500.0)

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"trend.probability must lie in [0, 1]. Received: {self.probability!r}")
        low, high = self.gradient_range
        if not -1.0 < low <= high < 1.0:
            raise ValueError(
                "trend.gradient_range must be [low, high] with -1 < low <= high < 1 (the bottom changes by "
                f"g/2 of its velocity, the top by -g/2). Received: {self.gradient_range!r}"
            )
        slowest, fastest = self.bounds_mps
        if not 0 < slowest < fastest:
            raise ValueError(
                f"trend.bounds_mps must be [lowest, highest] m/s with 0 < lowest < highest. Received: {self.bounds_mps!r}"
            )

    @property
    def enabled(self) -> bool:
        return self.probability > 0

    def draw(self, velocity_mps: np.ndarray, seed: int, index: int) -> float:
        """Model ``index``'s ``g`` (0 when it is not chosen or its range is empty); depends on ``(seed, index)``
        and on the model, whose velocities narrow the range."""
        rng = np.random.default_rng(np.random.SeedSequence([seed, index, zlib.crc32(b"trend")]))
        chosen = rng.uniform() < self.probability
        value = rng.uniform()
        if not chosen:
            return 0.0
        low, high = _feasible_range(velocity_mps, self.gradient_range, self.bounds_mps)
        return float(low + value * (high - low)) if low <= high else 0.0


def depth_ramp(depth_cells: int) -> np.ndarray:
    """``z / z_max − ½`` per depth row, ``(depth, 1)`` float64: −½ at the top row, +½ at the bottom one."""
    return (np.arange(depth_cells, dtype=np.float64) / max(depth_cells - 1, 1) - 0.5)[:, None]


def tilt_trend(velocity_mps: np.ndarray, gradient: float) -> np.ndarray:
    """``v · (1 + g · (z / z_max − ½))`` of a ``(depth, x)`` model, float32."""
    ramp = depth_ramp(velocity_mps.shape[0])
    return (velocity_mps * (1.0 + gradient * ramp)).astype(np.float32)


def _feasible_range(
    velocity_mps: np.ndarray, gradient_range: tuple[float, float], bounds_mps: tuple[float, float]
) -> tuple[float, float]:
    """The part of ``gradient_range`` whose tilt keeps every cell within ``bounds_mps``."""
    ramp = np.broadcast_to(depth_ramp(velocity_mps.shape[0]), velocity_mps.shape)
    velocity = np.asarray(velocity_mps, dtype=np.float64)
    low, high = gradient_range
    tilted = ramp != 0
    # bounds[0] <= v (1 + g w) <= bounds[1]  <=>  g w in [bounds[0] / v - 1, bounds[1] / v - 1]
    lower_w = (bounds_mps[0] / velocity - 1.0)[tilted] / ramp[tilted]
    upper_w = (bounds_mps[1] / velocity - 1.0)[tilted] / ramp[tilted]
    positive = ramp[tilted] > 0
    low = max(low, np.max(np.where(positive, lower_w, upper_w), initial=-np.inf))
    high = min(high, np.min(np.where(positive, upper_w, lower_w), initial=np.inf))
    return float(low), float(high)


__all__ = ["TrendVariationConfig", "depth_ramp", "tilt_trend"]
