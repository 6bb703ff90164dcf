"""Stitching overlapping window predictions into one section, streaming, with tapered blending.

Pipeline position: ``pipeline.infer`` predicts one velocity (and edge) map per window along a line
(``pipeline.windows``) and hands them here in the order of their first column. Each window's maps are
weighted column by column with a taper that is largest in the window's middle and small at its edges, and
the section is ``sum(w * map) / sum(w)`` over the windows covering each column. Where neighbouring windows
disagree, the blend moves gradually from one to the other over the taper length instead of jumping at a
window edge, so a smooth model gives a smooth section (no seams).

Tapers (``StitchingConfig.taper``), for a window of ``n`` columns and column ``i = 0 .. n-1``:

* ``"tukey"`` (default): 1 in the middle, raised-cosine ramps ``sin^2(pi/2 * (i + 0.5) / r)`` over
  ``r = round(taper_fraction * n / 2)`` columns at each side;
* ``"hann"``: ``sin^2(pi * (i + 0.5) / n)`` over the whole window (with windows half a width apart the
  weights of the two windows covering a column sum to a constant);
* ``"uniform"``: plain average (seams where windows disagree; for comparison).

No weight is 0, so a column covered by a single window (the ends of the line) takes that window's values.

Memory: ``StreamingStitcher`` keeps only the columns that a later window can still touch (one window
width); a column is final, and handed to the sink, as soon as a window starting to its right arrives. So the
memory of stitching does not grow with the length of the line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class StitchingConfig:
    """How overlapping windows are blended.

    Attributes:
        taper: ``"tukey"``, ``"hann"`` or ``"uniform"`` (see the module docstring).
        taper_fraction: for ``"tukey"``: fraction of the window width given to the two ramps together.
    """

    taper: Literal["tukey", "hann", "uniform"] = "tukey"
    taper_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.taper_fraction <= 1.0:
            raise ValueError(f"stitching.taper_fraction must lie in (0, 1]. Received: {self.taper_fraction}")


def column_weights(width: int, config: StitchingConfig = StitchingConfig()) -> np.ndarray:
    """``(width,)`` float64 blending weights of a window's columns, all in (0, 1]."""
    if width < 1:
        raise ValueError(f"A window has at least one column. Received: width={width}")
    index = np.arange(width) + 0.5
    if config.taper == "uniform":
        return np.ones(width)
    if config.taper == "hann":
        return np.sin(np.pi * index / width) ** 2
    if config.taper == "tukey":
        ramp = max(1, int(round(config.taper_fraction * width / 2)))
        weights = np.ones(width)
        rising = np.sin(0.5 * np.pi * np.minimum(index, ramp) / ramp) ** 2
        falling = rising[::-1]
        return np.minimum(weights, np.minimum(rising, falling))
    raise ValueError(f"Unknown taper {config.taper!r}: use 'tukey', 'hann' or 'uniform'.")


#: ``sink(first_column, {name: (depth, columns) float32}, weight (columns,) float64)``; NaN where weight is 0.
Sink = Callable[[int, dict[str, np.ndarray], np.ndarray], None]


class StreamingStitcher:
    """Blends windows that arrive in order of their first column; hands finished columns to ``sink``.

    Args:
        num_columns: section width in columns.
        depth: rows of every map.
        width: columns of every window.
        names: the maps blended (e.g. ``("velocity_mps", "edges")``).
        sink: receives blocks of final columns, left to right, exactly once each.
        config: the taper.

    Example:
        >>> stitcher = StreamingStitcher(100, 16, 24, ("velocity_mps",), sink)
        >>> for start, maps in windows:            # starts non-decreasing
        ...     stitcher.add(start, maps)
        >>> stitcher.finish()
    """

    def __init__(
        self,
        num_columns: int,
        depth: int,
        width: int,
        names: Sequence[str],
        sink: Sink,
        config: StitchingConfig = StitchingConfig(),
    ) -> None:
        self.num_columns = int(num_columns)
        self.depth = int(depth)
        self.width = int(width)
        self.names = tuple(names)
        self.sink = sink
        self.weights = column_weights(self.width, config)
        self._base = 0  # section column of buffer column 0; every column left of it has been flushed
        self._last_start = -1
        self._sums = {name: np.zeros((self.depth, self.width)) for name in self.names}
        self._weight = np.zeros(self.width)

    def add(self, column_start: int, maps: Mapping[str, np.ndarray]) -> None:
        """Adds one window whose first column is ``column_start`` (``maps[name]``: ``(depth, width)``)."""
        column_start = int(column_start)
        if column_start < self._last_start:
            raise ValueError(
                f"Windows must arrive in order of their first column: {column_start} came after {self._last_start}."
            )
        if column_start < 0 or column_start + self.width > self.num_columns:
            raise ValueError(
                f"Window columns {column_start}..{column_start + self.width - 1} lie outside the section's "
                f"0..{self.num_columns - 1}."
            )
        for name in self.names:
            if np.shape(maps[name]) != (self.depth, self.width):
                raise ValueError(
                    f"{name} must be (depth, width) = {(self.depth, self.width)}. "
                    f"Received: {np.shape(maps[name])}"
                )
        self._last_start = column_start
        # Every later window starts at or after column_start: the columns left of it are final. After the
        # flush the buffer starts at column_start, and every window added so far ends inside it.
        self._flush_until(column_start)
        for name in self.names:
            self._sums[name] += self.weights[None, :] * np.asarray(maps[name], np.float64)
        self._weight += self.weights

    def finish(self) -> None:
        """Flushes every remaining column (uncovered columns come out as NaN with weight 0)."""
        self._flush_until(self.num_columns)

    def _flush_until(self, column: int) -> None:
        """Hands columns ``base .. column - 1`` to the sink and shifts the buffer."""
        while self._base < column:
            count = min(column - self._base, self.width)
            weight = self._weight[:count].copy()
            safe = np.where(weight > 0, weight, 1.0)
            blocks = {
                name: np.where(weight > 0, self._sums[name][:, :count] / safe, np.nan).astype(np.float32)
                for name in self.names
            }
            self.sink(self._base, blocks, weight)
            for name in self.names:
                self._sums[name][:, : self.width - count] = self._sums[name][:, count:]
                self._sums[name][:, self.width - count :] = 0.0
            self._weight[: self.width - count] = self._weight[count:]
            self._weight[self.width - count :] = 0.0
            self._base += count


def stitch_in_memory(
    num_columns: int,
    starts: Sequence[int],
    maps: Sequence[Mapping[str, np.ndarray]],
    config: StitchingConfig = StitchingConfig(),
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Stitches a list of windows into whole arrays (small sections, notebooks and tests).

    Returns:
        ``({name: (depth, num_columns) float32}, weight (num_columns,))``.
    """
    if not maps:
        raise ValueError("No windows to stitch.")
    names = tuple(maps[0])
    depth, width = np.shape(maps[0][names[0]])
    result = {name: np.empty((depth, num_columns), np.float32) for name in names}
    weight = np.empty(num_columns)

    def sink(first: int, blocks: dict[str, np.ndarray], block_weight: np.ndarray) -> None:
        for name in names:
            result[name][:, first : first + blocks[name].shape[1]] = blocks[name]
        weight[first : first + len(block_weight)] = block_weight

    stitcher = StreamingStitcher(num_columns, depth, width, names, sink, config)
    for start, window in sorted(zip(starts, maps, strict=True), key=lambda pair: pair[0]):
        stitcher.add(start, window)
    stitcher.finish()
    return result, weight


__all__ = ["StitchingConfig", "StreamingStitcher", "column_weights", "stitch_in_memory"]
