"""Writing a dataset's layout: ``create_layout`` and the geometry, splits, statistics and provenance groups.

Part of ``data_prep.schema``, used by ``data_prep.dataset_writer`` (and ``--append``): the writers create
and fill the layout through these functions and validate the file (``data_prep.schema.validate``) before
renaming it into place.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data_prep.normalization import NormalizationStats
from data_prep.schema.dataset_geometry import DatasetGeometry
from data_prep.schema.layout import (
    EDGES,
    FORMAT,
    GEOMETRY,
    NORMALIZATION,
    PROVENANCE,
    SAMPLE_FAMILY,
    SAMPLE_FIELDS,
    SAMPLE_ID,
    SAMPLE_ORIGIN,
    SAMPLE_RECEIVER_POSITIONS,
    SAMPLE_SOURCE,
    SAMPLE_SOURCE_POSITIONS,
    SAMPLE_START_TIME,
    SAMPLE_X_ORIGIN,
    SCHEMA_VERSION,
    SEISMIC,
    SEISMIC_AXES,
    SPLITS,
    VELOCITY,
    VELOCITY_AXES,
)
from data_prep.splits import SPLIT_NAMES


def create_layout(
    h5: h5py.File,
    num_samples: int,
    geometry: DatasetGeometry,
    labelled: bool,
    compression: str | None = None,
) -> None:
    """Creates the datasets of an empty dataset file (current schema), resizable along the sample axis."""
    h5.attrs["format"] = FORMAT
    h5.attrs["schema_version"] = SCHEMA_VERSION
    h5.attrs["labelled"] = bool(labelled)
    h5.attrs["num_samples"] = int(num_samples)
    seismic_shape = (geometry.num_shots, geometry.num_samples, geometry.num_receivers)
    seismic = h5.create_dataset(
        SEISMIC,
        shape=(num_samples, *seismic_shape),
        maxshape=(None, *seismic_shape),
        dtype=np.float32,
        chunks=(1, *seismic_shape),
        compression=compression,
    )
    seismic.attrs["axes"] = ",".join(SEISMIC_AXES)
    seismic.attrs["units"] = "pressure, as recorded"
    if labelled:
        grid = tuple(geometry.grid_shape)
        velocity = h5.create_dataset(
            VELOCITY,
            shape=(num_samples, *grid),
            maxshape=(None, *grid),
            dtype=np.float32,
            chunks=(1, *grid),
            compression=compression,
        )
        velocity.attrs["axes"] = ",".join(VELOCITY_AXES)
        velocity.attrs["units"] = "m/s"
        edges = h5.create_dataset(
            EDGES,
            shape=(num_samples, *grid),
            maxshape=(None, *grid),
            dtype=np.uint8,
            chunks=(1, *grid),
            compression=compression,
        )
        edges.attrs["axes"] = ",".join(VELOCITY_AXES)
        edges.attrs["units"] = "1 on a velocity edge, 0 elsewhere"
    for name, dtype, inner, units in (
        (SAMPLE_ID, np.int64, (), "number of the sample within its origin"),
        (SAMPLE_SOURCE, np.int32, (), "index into provenance sources"),
        (SAMPLE_ORIGIN, np.int32, (), "index into provenance origins"),
        (SAMPLE_FAMILY, h5py.string_dtype(), (), "velocity-model family"),
        (SAMPLE_SOURCE_POSITIONS, np.float64, (geometry.num_shots, 2), "m (depth_m, x_m) in the grid frame"),
        (
            SAMPLE_RECEIVER_POSITIONS,
            np.float64,
            (geometry.num_receivers, 2),
            "m (depth_m, x_m) in the grid frame",
        ),
        (SAMPLE_X_ORIGIN, np.float64, (), "m, survey x of the velocity grid's first column"),
        (SAMPLE_START_TIME, np.float64, (), "s, time after the shot of the first time sample"),
    ):
        dataset = h5.create_dataset(
            name,
            shape=(num_samples, *inner),
            maxshape=(None, *inner),
            dtype=dtype,
            chunks=(max(1, min(4096, 2**20 // (8 * max(1, int(np.prod(inner)))))), *inner),
        )
        dataset.attrs["units"] = units
    write_geometry(h5, geometry)


def resize_samples(h5: h5py.File, num_samples: int) -> None:
    """Resizes every per-sample dataset to ``num_samples`` (append, or roll back a failed append)."""
    for name in (SEISMIC, VELOCITY, EDGES, *SAMPLE_FIELDS[2]):
        if name in h5:
            h5[name].resize(num_samples, axis=0)
    h5.attrs["num_samples"] = int(num_samples)


def write_geometry(h5: h5py.File, geometry: DatasetGeometry) -> None:
    group = h5.require_group(GEOMETRY)
    for name, values in (
        ("source_positions_m", geometry.source_positions_m),
        ("receiver_positions_m", geometry.receiver_positions_m),
    ):
        if name in group:
            del group[name]
        dataset = group.create_dataset(name, data=np.asarray(values, dtype=np.float64))
        dataset.attrs["columns"] = "depth_m,x_m"
    group.attrs["sample_interval_s"] = float(geometry.sample_interval_s)
    group.attrs["num_samples"] = int(geometry.num_samples)
    group.attrs["grid_spacing_m"] = float(geometry.grid_spacing_m)
    group.attrs["grid_shape"] = np.asarray(geometry.grid_shape, dtype=np.int64)
    group.attrs["start_time_s"] = float(geometry.start_time_s)


def write_splits(
    h5: h5py.File,
    splits: dict[str, np.ndarray],
    seed: int,
    fractions: Sequence[float],
    stratified_by: str | None = None,
) -> None:
    group = h5.require_group(SPLITS)
    for name in SPLIT_NAMES:
        if name in group:
            del group[name]
        group.create_dataset(name, data=np.asarray(splits[name], dtype=np.int64))
    group.attrs["seed"] = int(seed)
    group.attrs["fractions"] = np.asarray(fractions, dtype=np.float64)
    if stratified_by:
        group.attrs["stratified_by"] = stratified_by


def split_digest(train_indices: np.ndarray) -> str:
    """SHA-256 of the training indices: ties the statistics to the split they came from."""
    return hashlib.sha256(np.asarray(train_indices, dtype="<i8").tobytes()).hexdigest()


def write_normalization(h5: h5py.File, stats: NormalizationStats, train_indices: np.ndarray) -> None:
    group = h5.require_group(NORMALIZATION)
    group.attrs["stats"] = json.dumps(stats.to_dict(), sort_keys=True)
    group.attrs["train_split_sha256"] = split_digest(train_indices)


def write_provenance(h5: h5py.File, values: dict[str, Any]) -> None:
    group = h5.require_group(PROVENANCE)
    for key, value in values.items():
        group.attrs[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def file_sha256(path: str | Path, block_bytes: int = 8 * 2**20) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(block_bytes):
            digest.update(block)
    return digest.hexdigest()


__all__ = [
    "create_layout",
    "file_sha256",
    "resize_samples",
    "split_digest",
    "write_geometry",
    "write_normalization",
    "write_provenance",
    "write_splits",
]
