"""Velocity models for ingest: which file (and row or traces) holds the model of each model id.

Velocity models come from SEG-Y files written by ``data_prep.segy_io.write_velocity_models`` (paired with
the shots by model id) or from ``.npy`` arrays ``(models, depth, x)`` / ``(models, 1, depth, x)`` whose
row ``k`` (files concatenated in name order) is model id ``k + 1``. Nothing is read here beyond headers and
array shapes: ``VelocityIndex`` maps each ``(pool, model id)`` to a loader, where the pool is the
synthesize folder (its index among the input groups) or ``LOOSE`` for files outside any folder, so every
folder may number its models from 1. A velocity SEG-Y file also gives the survey x of its grid's first
column (the x coordinate of the model's first trace), which places the shots and receivers in the grid.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import UserError
from data_prep import schema
from data_prep.dataset_writer import BackgroundHasher, SourceRecord
from data_prep.ingest.config import IngestConfig
from data_prep.segy_io import MODEL_ID_FIELD, SegyScan, header_convention

#: The pool of velocity models given outside any synthesize folder (loose files, ``.npy`` arrays).
LOOSE = -1

#: ``(pool, model id)``: a synthesize folder's index among the input groups (or ``LOOSE``) and the id.
VelocityKey = tuple[int, int]


@dataclass
class VelocityIndex:
    """Where each ``(pool, model id)``'s velocity model lives, and the survey x of its grid origin."""

    lookup: dict[VelocityKey, Callable[[], np.ndarray]] = field(default_factory=dict)
    origin: dict[VelocityKey, str] = field(default_factory=dict)
    scans: dict[VelocityKey, SegyScan] = field(default_factory=dict)  # SEG-Y files, to close after reading
    x_origin_m: dict[VelocityKey, float] = field(default_factory=dict)
    grid_shape: tuple[int, int] | None = None
    grid_spacing_m: float | None = None

    def add(self, key: VelocityKey, loader: Callable[[], np.ndarray], origin: str) -> None:
        if key in self.lookup:
            raise UserError(
                f"Velocity model id {key[1]} appears twice: in {self.origin[key]} and in {origin}. Both would "
                "pair with the same shots: remove one of the inputs (or put each survey in its own folder)."
            )
        self.lookup[key] = loader
        self.origin[key] = origin

    def set_grid(self, shape: tuple[int, int], spacing_m: float | None, origin: str) -> None:
        if self.grid_shape is not None and tuple(shape) != self.grid_shape:
            raise UserError(
                f"{origin} holds {shape[0]} x {shape[1]} (depth, x) velocity models, other inputs "
                f"{self.grid_shape[0]} x {self.grid_shape[1]}: all models of a dataset share one grid."
            )
        if (
            spacing_m is not None
            and self.grid_spacing_m is not None
            and abs(spacing_m - self.grid_spacing_m) > 1e-6
        ):
            raise UserError(
                f"{origin} has a grid spacing of {spacing_m:g} m, other inputs {self.grid_spacing_m:g} m."
            )
        self.grid_shape = tuple(shape)
        if spacing_m is not None:
            self.grid_spacing_m = spacing_m


def index_velocity_segy(scan: SegyScan, index: VelocityIndex, pool: int = LOOSE) -> None:
    """Adds a velocity-model SEG-Y file (``write_velocity_models`` layout) to ``index`` in ``pool``.

    The model id is byte 233 in files that carry this project's signature (or listed by a manifest, whose
    pool is its folder) when it is set in every trace, else FieldRecord (byte 9), which
    ``write_velocity_models`` also sets to the model id.
    """
    headers = scan.headers
    trusted = pool != LOOSE or header_convention(scan.textual_header) is not None
    model_ids = (
        headers[MODEL_ID_FIELD]
        if trusted and np.all(headers[MODEL_ID_FIELD] != 0)
        else headers["FieldRecord"]
    )
    x_index = headers["TraceNumber"]
    order = np.lexsort((x_index, model_ids))
    ids, starts, counts = np.unique(model_ids[order], return_index=True, return_counts=True)
    if np.any(counts != counts[0]):
        bad = int(np.flatnonzero(counts != counts[0])[0])
        raise UserError(
            f"{scan.path}: velocity model {ids[bad]} has {counts[bad]} x positions, model {ids[0]} has {counts[0]}."
        )
    spacing_m = scan.sample_interval / 1000.0  # depth spacing is stored in millimetres
    index.set_grid((scan.num_samples, int(counts[0])), spacing_m, str(scan.path))
    per_model = order.reshape(len(ids), int(counts[0]))
    # The x of each model's first trace (x index 1): where its grid starts along the survey line.
    x_m = scan.coordinates_m("SourceX") if np.any(headers["SourceX"]) else scan.coordinates_m("CDP_X")
    first_x = x_m[per_model[:, 0]]
    scan.headers = {}  # the loaders need only the trace indices
    for model_id, traces, x_origin in zip(ids, per_model, first_x, strict=True):
        key = (pool, int(model_id))
        index.add(key, lambda traces=traces: scan.read_traces(traces).T, str(scan.path))
        index.scans[key] = scan
        index.x_origin_m[key] = float(x_origin)


def index_velocity_npy(
    paths: Sequence[Path], index: VelocityIndex, config: IngestConfig, hasher: BackgroundHasher | None = None
) -> list[SourceRecord]:
    """Adds ``.npy`` velocity arrays (row ``k`` over all files in name order = model id ``k + 1``)."""
    records = []
    row = 0
    for path in sorted(paths):
        rows = NpyRows(path)
        array = rows.array
        if array.ndim != 3:
            raise UserError(
                f"{path}: velocity arrays must be (models, depth, x) or (models, 1, depth, x) in m/s. "
                f"Received shape {array.shape}."
            )
        index.set_grid(array.shape[1:], config.grid_spacing_m, str(path))
        for k in range(len(array)):
            index.add((LOOSE, row + 1), functools.partial(rows.row, k), f"{path} row {k}")
            row += 1
        digest = hasher.submit(path) if hasher else schema.file_sha256(path)
        records.append(SourceRecord(path, "velocity_npy", path.stat().st_size, digest))
    return records


class NpyRows:
    """The rows of a ``.npy`` velocity file, memory-mapped on first use.

    Pickled (to a Dask worker that reads the samples), it is its absolute path, not its data: the worker
    maps the file itself.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._array: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        """``(models, depth, x)`` (a ``(models, 1, depth, x)`` file's channel axis dropped), memory-mapped."""
        if self._array is None:
            try:
                array = np.load(self.path, mmap_mode="r")
            except (ValueError, OSError) as error:
                raise UserError(f"{self.path} is not a readable .npy file ({error}).") from None
            self._array = array[:, 0] if array.ndim == 4 and array.shape[1] == 1 else array
        return self._array

    def row(self, k: int) -> np.ndarray:
        return np.asarray(self.array[k], dtype=np.float32)

    def __getstate__(self) -> dict:
        return {"path": Path(os.path.abspath(self.path)), "_array": None}


def check_velocity(velocity: np.ndarray, model_id: int, origin: str) -> np.ndarray:
    if not (np.all(np.isfinite(velocity)) and np.all(velocity > 0)):
        raise UserError(
            f"{origin}: velocity model {model_id} holds non-finite or non-positive velocities (min "
            f"{np.nanmin(velocity):g} m/s). Fix the model file."
        )
    return velocity
