"""Validation: ``validate`` checks a file against the schema, ``open_dataset`` validates and opens it.

Part of ``data_prep.schema``. Every writer validates its output before renaming it into place; every reader
opens datasets with ``open_dataset``. ``validate`` lists every problem it finds in one ``SchemaError``:
the structure always (names, dtypes, shapes, chunks, geometry, identities, splits, statistics, provenance),
the values on request (positions inside the grid, finite seismic, positive velocity, 0/1 edges).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data_prep.normalization import NormalizationStats
from data_prep.schema.dataset_geometry import DatasetGeometry, describe_outside_grid, outside_grid
from data_prep.schema.layout import (
    EDGES,
    FORMAT,
    GEOMETRY,
    NORMALIZATION,
    PROVENANCE,
    PROVENANCE_ATTRIBUTES,
    PROVENANCE_ATTRIBUTES_V2,
    READ_CHUNK_CACHE_BYTES,
    READABLE_SCHEMA_VERSIONS,
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
    SPLITS,
    VELOCITY,
    SchemaError,
)
from data_prep.schema.read import read_family_breakdown, read_geometry, read_splits, schema_version
from data_prep.schema.write import split_digest
from data_prep.splits import SPLIT_NAMES, check_splits


@dataclass(frozen=True)
class DatasetSummary:
    """What ``validate`` found: sample count, shapes, geometry and whether velocity models are present."""

    path: Path
    num_samples: int
    seismic_shape: tuple[int, ...]
    velocity_shape: tuple[int, ...] | None
    geometry: DatasetGeometry
    split_sizes: dict[str, int]
    labelled: bool
    schema_version: int = SCHEMA_VERSION
    families: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)


def validate(path: str | Path, check_values: bool = True, block_samples: int = 64) -> DatasetSummary:
    """Checks a dataset file against the schema and returns a summary.

    Structure (always): format and a readable schema version (1 or 2), every dataset and group present with
    the right dtype, axis order and consistent shapes, chunking of one sample, geometry consistent with the
    arrays, the nominal shots and receivers inside the velocity grid, sample identities (origin, id)
    unique, start times equal to the geometry's, splits disjoint and complete, statistics present, finite
    and computed from the current training split, provenance complete, no append in progress. Values
    (``check_values=True``, read in blocks of ``block_samples`` samples): every sample's own positions
    finite and inside the velocity grid (version 2), seismic finite, velocity finite and positive, edges 0
    or 1.

    Raises:
        SchemaError: listing every problem found (or the reason the file cannot be opened).
    """
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"Dataset {path} does not exist.")
    try:
        h5 = h5py.File(path, "r")
    except OSError as error:
        raise SchemaError(
            f"{path} is not a readable HDF5 file ({error}): re-create it with data_prep.ingest."
        ) from None
    with h5:
        problems = _structure_problems(h5)
        if problems:
            raise SchemaError(f"{path} does not follow the dataset schema: " + "; ".join(problems) + ".")
        if check_values:
            problems = _value_problems(h5, block_samples)
            if problems:
                raise SchemaError(f"{path} holds invalid values: " + "; ".join(problems) + ".")
        splits = read_splits(h5)
        return DatasetSummary(
            path=path,
            num_samples=int(h5[SEISMIC].shape[0]),
            seismic_shape=tuple(h5[SEISMIC].shape),
            velocity_shape=tuple(h5[VELOCITY].shape) if VELOCITY in h5 else None,
            geometry=read_geometry(h5),
            split_sizes={name: len(splits[name]) for name in SPLIT_NAMES},
            labelled=bool(h5.attrs["labelled"]),
            schema_version=schema_version(h5),
            families=read_family_breakdown(h5),
        )


def open_dataset(path: str | Path, check_values: bool = False) -> h5py.File:
    """Validates a dataset (structure; values too with ``check_values``) and opens it read-only.

    The chunk cache is raised so that one sample (one chunk) is read whole and cached.
    """
    validate(path, check_values=check_values)
    return h5py.File(path, "r", rdcc_nbytes=READ_CHUNK_CACHE_BYTES)


def read_normalization(source: h5py.File | str | Path) -> NormalizationStats:
    """The normalisation statistics of a dataset (an open file or a path, validated first)."""
    if isinstance(source, str | Path):
        with open_dataset(source, check_values=False) as h5:
            return read_normalization(h5)
    return NormalizationStats.from_dict(json.loads(source[NORMALIZATION].attrs["stats"]))


def _structure_problems(h5: h5py.File) -> list[str]:
    """Every structural problem of an open dataset file, in the order of the layout; ``[]`` when it is valid.

    A problem that makes the checks after it meaningless ends the list: not a seisinvert dataset, an
    unreadable schema version, missing datasets or groups, an incomplete geometry or splits group.
    """
    if h5.attrs.get("format") != FORMAT:
        return [
            f"attribute format is {h5.attrs.get('format')!r}, expected {FORMAT!r} (not a seisinvert dataset)"
        ]
    version = schema_version(h5)
    if version not in READABLE_SCHEMA_VERSIONS:
        return [
            f"schema_version is {version if version else None}; this code reads versions "
            f"{', '.join(map(str, READABLE_SCHEMA_VERSIONS))}"
        ]
    problems: list[str] = []
    if h5.attrs.get("write_in_progress", False):
        problems.append(
            "an append was interrupted (write_in_progress is set): run `python -m data_prep.ingest --repair --out "
            "<this file>` to roll it back, or re-run the append"
        )
    labelled = bool(h5.attrs.get("labelled", False))
    required = [SEISMIC, *SAMPLE_FIELDS[version], GEOMETRY, SPLITS, NORMALIZATION, PROVENANCE]
    if labelled:
        required += [VELOCITY, EDGES]
    missing = [name for name in required if name not in h5]
    if missing:
        return problems + [f"missing {', '.join(missing)}"]

    problems += _seismic_problems(h5)
    num_samples = h5[SEISMIC].shape[0]
    try:
        geometry = read_geometry(h5)
    except KeyError as error:
        return problems + [f"geometry incomplete ({error})"]
    problems += _sample_field_problems(h5, version, num_samples, geometry)
    problems += _geometry_problems(h5, geometry)
    if labelled:
        problems += _label_problems(h5, num_samples, geometry, earlier_problems=bool(problems))

    try:
        splits = read_splits(h5)
    except KeyError as error:
        return problems + [f"splits incomplete ({error})"]
    problems += check_splits(splits, num_samples)
    problems += _normalization_problems(h5, splits, labelled)
    problems += _provenance_problems(h5, version, num_samples)
    return problems


def _seismic_problems(h5: h5py.File) -> list[str]:
    """The seismic dataset's dtype, axes and chunking, and the sample count attribute."""
    problems = []
    seismic = h5[SEISMIC]
    if seismic.dtype != np.float32 or seismic.ndim != 4:
        problems.append(
            f"seismic must be float32 (sample, shot, time, receiver); found {seismic.dtype} {seismic.shape}"
        )
    elif seismic.chunks != (1, *seismic.shape[1:]):
        problems.append(
            f"seismic must be chunked one sample per chunk {(1, *seismic.shape[1:])}; found {seismic.chunks}"
        )
    num_samples = seismic.shape[0]
    if h5.attrs.get("num_samples") != num_samples:
        problems.append(
            f"attribute num_samples={h5.attrs.get('num_samples')} but seismic holds {num_samples} samples"
        )
    return problems


def _geometry_problems(h5: h5py.File, geometry: DatasetGeometry) -> list[str]:
    """The nominal geometry against the seismic array's axes, and its time axis and positions."""
    problems = []
    seismic = h5[SEISMIC]
    if seismic.ndim == 4 and seismic.shape[1:] != (
        geometry.num_shots,
        geometry.num_samples,
        geometry.num_receivers,
    ):
        problems.append(
            f"seismic (shot, time, receiver) = {seismic.shape[1:]} disagrees with the geometry "
            f"({geometry.num_shots} shots, {geometry.num_samples} samples, {geometry.num_receivers} receivers)"
        )
    if not geometry.sample_interval_s > 0:
        problems.append(f"geometry sample_interval_s must be positive, found {geometry.sample_interval_s}")
    if not np.isfinite(geometry.start_time_s):
        problems.append(f"geometry start_time_s must be finite, found {geometry.start_time_s}")
    for name in ("source_positions_m", "receiver_positions_m"):
        values = h5[GEOMETRY][name]
        if values.ndim != 2 or values.shape[1] != 2 or not np.all(np.isfinite(values[()])):
            problems.append(f"geometry/{name} must be finite (n, 2) (depth_m, x_m); found {values.shape}")
    return problems


def _label_problems(
    h5: h5py.File, num_samples: int, geometry: DatasetGeometry, earlier_problems: bool
) -> list[str]:
    """Velocity and edges against the grid, the grid spacing, and (on an otherwise sound file) the nominal
    shots and receivers inside the grid."""
    problems = []
    for name, dtype in ((VELOCITY, np.float32), (EDGES, np.uint8)):
        dataset = h5[name]
        expected = (num_samples, *geometry.grid_shape)
        if dataset.dtype != dtype or dataset.shape != expected:
            problems.append(
                f"{name} must be {np.dtype(dtype)} {expected}; found {dataset.dtype} {dataset.shape}"
            )
        elif dataset.chunks != (1, *geometry.grid_shape):
            problems.append(f"{name} must be chunked one sample per chunk; found {dataset.chunks}")
    if not geometry.grid_spacing_m > 0:
        problems.append(f"geometry grid_spacing_m must be positive, found {geometry.grid_spacing_m}")
    elif not earlier_problems and not problems:
        outside = describe_outside_grid(geometry.source_positions_m, geometry.receiver_positions_m, geometry)
        if outside:
            problems.append(f"the nominal geometry's {outside}")
    return problems


def _normalization_problems(h5: h5py.File, splits: dict[str, np.ndarray], labelled: bool) -> list[str]:
    """The statistics present, readable, finite and computed from the current training split."""
    problems = []
    attrs = h5[NORMALIZATION].attrs
    if "stats" not in attrs or "train_split_sha256" not in attrs:
        return ["normalization lacks stats or train_split_sha256"]
    try:
        stats = NormalizationStats.from_dict(json.loads(attrs["stats"]))
    except (TypeError, ValueError) as error:
        return [f"normalization stats unreadable ({error})"]
    if attrs["train_split_sha256"] != split_digest(splits["train"]):
        problems.append("normalization statistics were not computed from the current train split")
    if stats.num_train_samples != len(splits["train"]):
        problems.append(
            f"normalization statistics come from {stats.num_train_samples} samples but the train split "
            f"has {len(splits['train'])}"
        )
    keys = ("min", "max", "mean", "std") if stats.method == "standard" else ("min", "max")
    numbers = [stats.seismic.get(key) for key in keys]
    if not all(value is not None and np.isfinite(value) for value in numbers):
        problems.append(f"seismic statistics are not finite: {stats.seismic}")
    if labelled and (stats.velocity_min_mps is None or not stats.velocity_max_mps > stats.velocity_min_mps):
        problems.append("velocity statistics missing or empty range")
    return problems


def _provenance_problems(h5: h5py.File, version: int, num_samples: int) -> list[str]:
    """The provenance attributes of the schema version, and the per-sample indices into its lists."""
    required = PROVENANCE_ATTRIBUTES_V2 if version >= 2 else PROVENANCE_ATTRIBUTES
    missing = [key for key in required if key not in h5[PROVENANCE].attrs]
    if missing:
        return [f"provenance lacks {', '.join(missing)}"]
    problems = []
    for key, index_name in (("sources", SAMPLE_SOURCE), ("origins", SAMPLE_ORIGIN)):
        if key not in required:
            continue
        try:
            entries = json.loads(h5[PROVENANCE].attrs[key])
        except ValueError:
            problems.append(f"provenance {key} are not valid JSON")
            continue
        if num_samples and h5[index_name].shape == (num_samples,):
            index = h5[index_name][()]
            if index.min() < 0 or index.max() >= len(entries):
                problems.append(f"{index_name} points outside the provenance {key} list")
    return problems


def _sample_field_problems(
    h5: h5py.File, version: int, num_samples: int, geometry: DatasetGeometry
) -> list[str]:
    """Dtypes and shapes of the per-sample fields, unique identities, start times (positions: values)."""
    problems = []
    expected: dict[str, tuple[Any, tuple[int, ...]]] = {
        SAMPLE_ID: (np.int64, ()),
        SAMPLE_SOURCE: (np.int32, ()),
    }
    if version >= 2:
        expected.update(
            {
                SAMPLE_ORIGIN: (np.int32, ()),
                SAMPLE_FAMILY: (str, ()),
                SAMPLE_SOURCE_POSITIONS: (np.float64, (geometry.num_shots, 2)),
                SAMPLE_RECEIVER_POSITIONS: (np.float64, (geometry.num_receivers, 2)),
                SAMPLE_X_ORIGIN: (np.float64, ()),
                SAMPLE_START_TIME: (np.float64, ()),
            }
        )
    for name, (dtype, inner) in expected.items():
        dataset = h5[name]
        shape = (num_samples, *inner)
        right_type = (
            h5py.check_string_dtype(dataset.dtype) is not None if dtype is str else dataset.dtype == dtype
        )
        if dataset.shape != shape or not right_type:
            kind = "UTF-8 strings" if dtype is str else np.dtype(dtype)
            problems.append(f"{name} must be {kind} {shape}; found {dataset.dtype} {dataset.shape}")
    if problems or not num_samples:
        return problems

    sample_ids = h5[SAMPLE_ID][()]
    if version >= 2:
        keys = np.stack([h5[SAMPLE_ORIGIN][()].astype(np.int64), sample_ids], axis=1)
        unique, counts = np.unique(keys, axis=0, return_counts=True)
        if len(unique) != num_samples:
            origin, sample_id = unique[int(np.argmax(counts > 1))]
            problems.append(
                f"sample (origin {origin}, id {sample_id}) appears {int(counts.max())} times: the same sample of "
                "the same input was written twice"
            )
        start = h5[SAMPLE_START_TIME][()]
        if not np.all(np.abs(start - geometry.start_time_s) <= 1e-9):
            bad = int(np.argmax(np.abs(start - geometry.start_time_s) > 1e-9))
            problems.append(
                f"sample {bad} starts at {start[bad] * 1e3:g} ms, the dataset's time axis at "
                f"{geometry.start_time_s * 1e3:g} ms: one dataset has one start time"
            )
        if not np.all(np.isfinite(h5[SAMPLE_X_ORIGIN][()])):
            problems.append("sample_x_origin_m holds non-finite values")
    elif len(np.unique(sample_ids)) != num_samples:
        problems.append("sample_id holds duplicates: the same model was ingested twice")
    return problems


def _position_problems(h5: h5py.File, block: int = 4096) -> list[str]:
    """Every sample's own positions finite and, in labelled datasets, inside the velocity grid (version 2).

    A value check: it reads every sample's positions (about 3 bytes per trace for OpenFWI's layout), so
    ``open_dataset`` (structure only) does not pay for it on every open; ingest checks each sample before
    writing it.
    """
    if SAMPLE_SOURCE_POSITIONS not in h5:
        return []
    geometry = read_geometry(h5)
    num_samples = h5[SEISMIC].shape[0]
    for first in range(0, num_samples, block):
        where = slice(first, min(first + block, num_samples))
        sources, receivers = h5[SAMPLE_SOURCE_POSITIONS][where], h5[SAMPLE_RECEIVER_POSITIONS][where]
        if not (np.all(np.isfinite(sources)) and np.all(np.isfinite(receivers))):
            return [f"per-sample positions of samples {where.start}..{where.stop - 1} are not finite"]
        if geometry.grid_extent_m() is None:
            continue
        bad = np.flatnonzero(
            outside_grid(sources, geometry).any(axis=1) | outside_grid(receivers, geometry).any(axis=1)
        )
        if bad.size:
            sample = int(bad[0])
            return [
                f"sample {first + sample}: "
                + describe_outside_grid(sources[sample], receivers[sample], geometry)
            ]
    return []


def _value_problems(h5: h5py.File, block_samples: int) -> list[str]:
    problems = _position_problems(h5)
    num_samples = h5[SEISMIC].shape[0]
    labelled = bool(h5.attrs["labelled"])
    for start in range(0, num_samples, block_samples):
        stop = min(start + block_samples, num_samples)
        seismic = h5[SEISMIC][start:stop]
        bad = ~np.isfinite(seismic).reshape(stop - start, -1).all(axis=1)
        if bad.any():
            problems.append(f"seismic sample {start + int(np.argmax(bad))} holds NaN or Inf")
        if labelled:
            velocity = h5[VELOCITY][start:stop]
            if not (np.all(np.isfinite(velocity)) and np.all(velocity > 0)):
                problems.append(
                    f"velocity samples {start}..{stop - 1} hold non-finite or non-positive values"
                )
            edges = h5[EDGES][start:stop]
            if np.any(edges > 1):
                problems.append(f"edges samples {start}..{stop - 1} hold values other than 0 and 1")
        if len(problems) >= 5:
            problems.append("(stopped after 5 problems)")
            break
    return problems


__all__ = [
    "DatasetSummary",
    "open_dataset",
    "read_normalization",
    "validate",
]
