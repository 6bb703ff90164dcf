"""Prior velocity models: a user's smooth model or 1-D profile, read, checked and placed on a model grid.

The ``prior`` family of ``data_prep.velocity_models`` draws training models around a prior: the prior is
the smooth background, the structural family's layering, faults and unconformity are the perturbations.
This is how a geophysicist makes a training set that resembles their area from what they already have (a
well log, a tomography or migration-velocity model). This module is the prior's boundary: it reads the
file, refuses what cannot be a velocity model in m/s, and resamples it onto a model grid.

Accepted files:

* ``.npy``: a ``(depth,)`` profile or a ``(depth, x)`` model, sampled every ``spacing_m`` metres (both axes, or
  ``x_spacing_m`` across);
* ``.csv`` / ``.txt``: a table of two columns, depth (m, increasing) and velocity (m/s); a header line and
  ``,``/whitespace separators are accepted;
* SEG-Y (``.segy``/``.sgy``): one trace per x position (every ``x_spacing_m``, default ``spacing_m``), trace
  samples along depth every ``spacing_m`` metres (the sample interval in the file is ignored: SEG-Y has no
  standard depth unit).

A 1-D profile is the same in every column; a 2-D model wider than the grid is windowed at a random x (one
window per drawn model, so the training set covers the whole prior).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Plausible P-wave velocities of rocks and water, m/s. A median outside this range is a unit error.
PLAUSIBLE_VELOCITY_MPS = (1000.0, 7000.0)


class PriorError(ValueError):
    """A prior model that cannot be used: the message says what was found and what is expected."""


@dataclass(frozen=True)
class Prior:
    """A prior velocity model in m/s.

    Attributes:
        velocity_mps: ``(depth,)`` profile or ``(depth, x)`` model, float64, m/s.
        depth_m: ``(depth,)`` depths of the samples, m, increasing from the first sample.
        spacing_m: lateral sample spacing of a 2-D model, m.
        source: the file it was read from.
    """

    velocity_mps: np.ndarray
    depth_m: np.ndarray
    spacing_m: float
    source: str

    @property
    def is_profile(self) -> bool:
        return self.velocity_mps.ndim == 1

    @property
    def width_m(self) -> float:
        return 0.0 if self.is_profile else (self.velocity_mps.shape[1] - 1) * self.spacing_m


def load_prior(path: str | Path, spacing_m: float = 10.0, x_spacing_m: float | None = None) -> Prior:
    """Reads and checks a prior model (see the module docstring for the formats).

    Args:
        path: the prior file.
        spacing_m: sample spacing of a ``.npy`` or SEG-Y prior, m (ignored for tables, whose depths are given):
            in depth, and across too unless ``x_spacing_m`` is given.
        x_spacing_m: lateral sample spacing of a 2-D prior, m, where it differs from the depth spacing.

    Returns:
        The checked prior. Reads are cached per (path, modification time, spacing).

    Raises:
        PriorError: a missing or unreadable file, a wrong shape, NaNs, velocities in km/s or slowness,
            depths that do not increase.
    """
    path = Path(path)
    if not path.is_file():
        raise PriorError(f"The prior model {str(path)!r} does not exist or is not a file. Give the path of a "
                         ".npy, .csv/.txt or SEG-Y file (prior_path).")  # fmt: skip
    x_spacing_m = float(spacing_m if x_spacing_m is None else x_spacing_m)
    return _load_cached(str(path.resolve()), path.stat().st_mtime_ns, float(spacing_m), x_spacing_m)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, _mtime_ns: int, spacing_m: float, x_spacing_m: float) -> Prior:
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise PriorError(f"Cannot read the prior {path!r} as a NumPy .npy file: {error}") from None
        velocity, depth = _gridded(values, spacing_m, path)
    elif suffix in (".csv", ".txt", ".tsv", ".dat"):
        depth, velocity = _read_table(path)
    elif suffix in (".segy", ".sgy"):
        import segyio

        try:
            with segyio.open(path, ignore_geometry=True) as handle:
                traces = np.asarray(handle.trace.raw[:], dtype=np.float64)
        except Exception as error:  # segyio raises RuntimeError/OSError/ValueError for broken files
            raise PriorError(f"Cannot read the prior {path!r} as SEG-Y: {error}") from None
        velocity, depth = _gridded(traces.T, spacing_m, path)  # (traces, samples) -> (depth, x)
    else:
        raise PriorError(
            f"Unknown prior format {suffix or '(no suffix)'!r} of {path!r}: use .npy (a (depth,) profile or "
            "(depth, x) model), .csv/.txt (depth_m, velocity_mps columns) or SEG-Y (.segy/.sgy, one trace per x)."
        )
    _check_velocity(velocity, path)
    return Prior(velocity_mps=velocity, depth_m=depth, spacing_m=x_spacing_m, source=path)


def _gridded(values: np.ndarray, spacing_m: float, path: str) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(values)
    if values.ndim not in (1, 2) or values.shape[0] < 2 or not np.issubdtype(values.dtype, np.number):
        raise PriorError(
            f"The prior {path!r} must be a numeric (depth,) profile or (depth, x) model with at least 2 depth "
            f"samples. Received: shape {values.shape}, dtype {values.dtype}"
        )
    velocity = values.astype(np.float64)
    return velocity, np.arange(velocity.shape[0]) * float(spacing_m)


def _read_table(path: str) -> tuple[np.ndarray, np.ndarray]:
    text = Path(path).read_text(encoding="utf-8", errors="replace").replace(",", " ").replace(";", " ")
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#")[0].split()
        if not fields:
            continue
        try:
            rows.append([float(value) for value in fields])
        except ValueError:
            if rows:  # a header is only allowed before the data
                raise PriorError(
                    f"Line {number} of the prior table {path!r} is not two numbers: {line.strip()!r}. "
                    "Expected columns depth_m and velocity_mps."
                ) from None
    if len(rows) < 2 or any(len(row) != 2 for row in rows):
        raise PriorError(
            f"The prior table {path!r} must hold at least 2 rows of exactly two columns, depth (m) and velocity "
            f"(m/s). Received: {len(rows)} numeric rows with {sorted({len(row) for row in rows})} columns"
        )
    table = np.asarray(rows, dtype=np.float64)
    depth, velocity = table[:, 0], table[:, 1]
    if not np.all(np.diff(depth) > 0):
        bad = int(np.argmax(np.diff(depth) <= 0)) + 1
        raise PriorError(
            f"Depths in the prior table {path!r} must increase strictly. Received: {depth[bad - 1]:g} m then "
            f"{depth[bad]:g} m at data rows {bad} and {bad + 1}. Sort the table or remove duplicates."
        )
    return depth, velocity


def _check_velocity(velocity: np.ndarray, path: str) -> None:
    finite = np.isfinite(velocity)
    if not finite.all():
        where = np.argwhere(~finite)[:3].tolist()
        raise PriorError(
            f"The prior {path!r} has {int((~finite).sum())} NaN or infinite values (first at index {where}). "
            "Fill them (e.g. by interpolation) before using it as a prior."
        )
    median = float(np.median(velocity))
    low, high = PLAUSIBLE_VELOCITY_MPS
    if 0 < median < 0.01:
        raise PriorError(
            f"The prior {path!r} looks like slowness (median {median:.3g}, s/m?): a velocity in m/s is expected. "
            "Convert it with 1 / slowness."
        )
    if 0.5 < median < 10:
        raise PriorError(
            f"The prior {path!r} looks like km/s (median {median:.3g}): a velocity in m/s is expected. "
            "Multiply it by 1000."
        )
    if not low <= median <= high or velocity.min() <= 0:
        raise PriorError(
            f"The prior {path!r} holds velocities {velocity.min():.4g} to {velocity.max():.4g} (median "
            f"{median:.4g}), not P-wave velocities in m/s ({low:g}-{high:g} expected; ft/s? slowness?)."
        )


def prior_on_grid(
    prior: Prior,
    grid_shape: tuple[int, int],
    grid_spacing_m: float,
    rng: np.random.Generator | None = None,
    *,
    top_m: float = 0.0,
    antialias: bool = False,
) -> np.ndarray:
    """The prior resampled onto a ``(depth, x)`` grid of ``grid_spacing_m`` cells starting at depth ``top_m``.

    A profile is repeated in every column; a 2-D prior wider than the grid is windowed at a position drawn
    from ``rng`` (its left edge when ``rng`` is None). Linear interpolation in depth (and x); with
    ``antialias`` a 2-D model sampled more finely than the grid is first averaged over a cell (a box of the
    grid's spacing), so that a sharp section is not aliased by the coarser grid.

    Raises:
        PriorError: the prior does not reach the grid's depth or width.
    """
    depth_cells, x_cells = grid_shape
    grid_depth_m = float(top_m) + np.arange(depth_cells) * float(grid_spacing_m)
    needed = grid_depth_m[-1]
    if prior.depth_m[0] > top_m or prior.depth_m[-1] < needed - 1e-6:
        raise PriorError(
            f"The model {prior.source!r} spans depths {prior.depth_m[0]:g}-{prior.depth_m[-1]:g} m, but the grid "
            f"needs {top_m:g}-{needed:g} m ({depth_cells} cells of {grid_spacing_m:g} m). Extend the model (e.g. "
            "with the deepest value or a trend), use a shallower grid or window; check prior_spacing_m."
        )
    if prior.is_profile:
        column = np.interp(grid_depth_m, prior.depth_m, prior.velocity_mps)
        return np.repeat(column[:, None], x_cells, axis=1)
    width_m = (x_cells - 1) * float(grid_spacing_m)
    if prior.width_m < width_m - 1e-6:
        raise PriorError(
            f"The model {prior.source!r} is {prior.width_m:g} m wide ({prior.velocity_mps.shape[1]} columns of "
            f"{prior.spacing_m:g} m), narrower than the grid's {width_m:g} m. Use a 1-D profile, a wider model or "
            "a narrower grid; check prior_spacing_m."
        )
    start = 0.0 if rng is None else rng.uniform(0.0, prior.width_m - width_m)
    from scipy.ndimage import map_coordinates

    velocity = prior.velocity_mps
    if antialias:
        # Samples per grid cell along each axis (depth and x spacings may differ): an odd box of about that many
        # (centred on its sample: an even box would shift the model by half a sample).
        depth_spacing = float(prior.depth_m[1] - prior.depth_m[0])
        box = tuple(
            2 * int(float(grid_spacing_m) / step / 2) + 1 for step in (depth_spacing, prior.spacing_m)
        )
        if box != (1, 1):
            velocity = _cell_average(velocity, box)
    depth_index = np.interp(grid_depth_m, prior.depth_m, np.arange(len(prior.depth_m)))
    x_index = (start + np.arange(x_cells) * float(grid_spacing_m)) / prior.spacing_m
    z, x = np.meshgrid(depth_index, x_index, indexing="ij")
    return map_coordinates(velocity, [z, x], order=1, mode="nearest")


def _cell_average(velocity: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``velocity`` averaged over a ``size`` = ``(depth, x)`` box of samples around each sample (in slowness:
    the time a wave spends crossing a cell is what the coarser cell must keep), cached per array."""
    key = (id(velocity), velocity.shape, size)
    cached = _AVERAGED.get(key)
    if cached is None or cached[0] is not velocity:
        from scipy.ndimage import uniform_filter

        cached = (velocity, 1.0 / uniform_filter(1.0 / velocity, size=size, mode="nearest"))
        _AVERAGED.clear()  # one model at a time: a section is drawn from many times, then the next
        _AVERAGED[key] = cached
    return cached[1]


_AVERAGED: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


__all__ = ["PLAUSIBLE_VELOCITY_MPS", "Prior", "PriorError", "load_prior", "prior_on_grid"]
