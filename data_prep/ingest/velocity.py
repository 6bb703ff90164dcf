"""Velocity models for ingest: which file (and row or traces) holds the model of each model id.

Velocity models come from SEG-Y files written by ``data_prep.segy_io.write_velocity_models`` (paired with
the shots by model id) or from ``.npy`` arrays ``(models, depth, x)`` / ``(models, 1, depth, x)`` whose
row ``k`` (files concatenated in name order) is model id ``k + 1``. Nothing is read here beyond headers and
array shapes: ``VelocityIndex`` maps each model id to a loader.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_prep import schema
from data_prep.dataset_writer import BackgroundHasher, SourceRecord
from data_prep.ingest.config import IngestConfig
from data_prep.segy_io import MODEL_ID_FIELD, SegyScan
from pipeline.cli import UserError


@dataclass
class VelocityIndex:
    """Where each model id's velocity model lives."""

    lookup: dict[int, Callable[[], np.ndarray]] = field(default_factory=dict)
    origin: dict[int, str] = field(default_factory=dict)
    scans: dict[int, SegyScan] = field(default_factory=dict)  # SEG-Y velocity files, to close after reading
    grid_shape: tuple[int, int] | None = None
    grid_spacing_m: float | None = None

    def add(self, model_id: int, loader: Callable[[], np.ndarray], origin: str) -> None:
        if model_id in self.lookup:
            raise UserError(
                f"Velocity model id {model_id} appears twice: in {self.origin[model_id]} and in {origin}. "
                "Remove the duplicate input."
            )
        self.lookup[model_id] = loader
        self.origin[model_id] = origin

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


def index_velocity_segy(scan: SegyScan, index: VelocityIndex) -> None:
    """Adds a velocity-model SEG-Y file (``write_velocity_models`` layout) to ``index``."""
    headers = scan.headers
    model_ids = headers[MODEL_ID_FIELD] if np.all(headers[MODEL_ID_FIELD] != 0) else headers["FieldRecord"]
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
    scan.headers = {}  # the loaders need only the trace indices
    for model_id, traces in zip(ids, per_model, strict=True):
        index.add(int(model_id), lambda traces=traces: scan.read_traces(traces).T, str(scan.path))
        index.scans[int(model_id)] = scan


def index_velocity_npy(
    paths: Sequence[Path], index: VelocityIndex, config: IngestConfig, hasher: BackgroundHasher | None = None
) -> list[SourceRecord]:
    """Adds ``.npy`` velocity arrays (row ``k`` over all files in name order = model id ``k + 1``)."""
    records = []
    row = 0
    for path in sorted(paths):
        try:
            array = np.load(path, mmap_mode="r")
        except (ValueError, OSError) as error:
            raise UserError(f"{path} is not a readable .npy file ({error}).") from None
        if array.ndim == 4 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 3:
            raise UserError(
                f"{path}: velocity arrays must be (models, depth, x) or (models, 1, depth, x) in m/s. "
                f"Received shape {array.shape}."
            )
        index.set_grid(array.shape[1:], config.grid_spacing_m, str(path))
        for k in range(len(array)):
            index.add(
                row + 1, lambda array=array, k=k: np.asarray(array[k], dtype=np.float32), f"{path} row {k}"
            )
            row += 1
        digest = hasher.submit(path) if hasher else schema.file_sha256(path)
        records.append(SourceRecord(path, "velocity_npy", path.stat().st_size, digest))
    return records


def check_velocity(velocity: np.ndarray, model_id: int, origin: str) -> np.ndarray:
    if not (np.all(np.isfinite(velocity)) and np.all(velocity > 0)):
        raise UserError(
            f"{origin}: velocity model {model_id} holds non-finite or non-positive velocities (min "
            f"{np.nanmin(velocity):g} m/s). Fix the model file."
        )
    return velocity
