"""The HDF5 dataset contract: names, dtypes, axis order, units and attributes, and ``validate``.

Single source of truth for the files written by ``data_prep.ingest`` / ``data_prep.openfwi`` and read by
training, evaluation and inference. Every writer calls ``validate`` before renaming its output into place;
every reader should open datasets with ``open_dataset`` (which validates first).

Layout (schema version 1)::

    /                               attrs: format="seisinvert-dataset", schema_version=1, labelled (bool),
                                           num_samples, write_in_progress (present only during --append)
    /seismic                        float32 (sample, shot, time, receiver), pressure as recorded;
                                    chunks (1, shot, time, receiver) = one sample; uncompressed by default
    /velocity                       float32 (sample, depth, x), m/s; chunks (1, depth, x)   [labelled only]
    /edges                          uint8 (sample, depth, x), 0/1 (data_prep.edges.edge_map) [labelled only]
    /sample_id                      int64 (sample,): model id from the source (SEG-Y byte 233, 1-based), or
                                    the OpenFWI global index
    /sample_source                  int32 (sample,): index into provenance ``sources`` of the seismic file
    /geometry/source_positions_m    float64 (shot, 2): (depth_m, x_m), depth positive down from the datum
    /geometry/receiver_positions_m  float64 (receiver, 2): (depth_m, x_m)
    /geometry                       attrs: sample_interval_s, num_samples, grid_spacing_m, grid_shape (depth, x)
                                    (grid attributes are NaN / (0, 0) for unlabelled datasets)
    /splits/{train,val,test}        int64 sorted sample indices, disjoint, together all samples
    /splits                         attrs: seed, fractions (train, val, test)
    /normalization                  attrs: stats (JSON of NormalizationStats, training split only),
                                    train_split_sha256 (of the train indices the stats came from)
    /provenance                     attrs: package_version, segyio_version, h5py_version, numpy_version,
                                    created_by, configuration (YAML), config_hash, sources (JSON list of
                                    {name, path, size_bytes, sha256, role, textual_header}), history (JSON list)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data_prep.normalization import NormalizationStats
from data_prep.splits import SPLIT_NAMES, check_splits
from pipeline.cli import UserError

FORMAT = "seisinvert-dataset"
SCHEMA_VERSION = 1

SEISMIC = "seismic"
VELOCITY = "velocity"
EDGES = "edges"
SAMPLE_ID = "sample_id"
SAMPLE_SOURCE = "sample_source"
GEOMETRY = "geometry"
SPLITS = "splits"
NORMALIZATION = "normalization"
PROVENANCE = "provenance"

SEISMIC_AXES = ("sample", "shot", "time", "receiver")
VELOCITY_AXES = ("sample", "depth", "x")

#: Attributes every provenance group carries.
PROVENANCE_ATTRIBUTES = (
    "package_version",
    "segyio_version",
    "h5py_version",
    "numpy_version",
    "created_by",
    "configuration",
    "config_hash",
    "sources",
    "history",
)

#: Chunk cache for readers: a few samples' chunks (an OpenFWI sample is 1.4 MB, above h5py's 1 MiB default).
READ_CHUNK_CACHE_BYTES = 64 * 2**20


class SchemaError(UserError):
    """A dataset file that does not follow the schema; the message lists every problem found."""


@dataclass(frozen=True)
class DatasetGeometry:
    """Acquisition geometry stored with a dataset (positions in metres, not grid cells).

    Attributes:
        source_positions_m: ``(shots, 2)`` ``(depth_m, x_m)``, depth positive down from the datum.
        receiver_positions_m: ``(receivers, 2)`` ``(depth_m, x_m)``; the same for every shot.
        sample_interval_s: time sample interval, seconds.
        num_samples: time samples per trace.
        grid_spacing_m: velocity-model cell size in metres (NaN when the dataset has no velocity models).
        grid_shape: velocity-model ``(depth, x)`` cells (``(0, 0)`` without velocity models).
    """

    source_positions_m: np.ndarray
    receiver_positions_m: np.ndarray
    sample_interval_s: float
    num_samples: int
    grid_spacing_m: float = float("nan")
    grid_shape: tuple[int, int] = (0, 0)

    @property
    def num_shots(self) -> int:
        return len(self.source_positions_m)

    @property
    def num_receivers(self) -> int:
        return len(self.receiver_positions_m)

    @classmethod
    def from_acquisition(cls, geometry) -> DatasetGeometry:
        """From a ``data_prep.geometry.AcquisitionGeometry`` (grid cells -> metres)."""
        return cls(
            source_positions_m=geometry.source_positions_m(),
            receiver_positions_m=geometry.receiver_positions_m(),
            sample_interval_s=float(geometry.sample_interval_s),
            num_samples=int(geometry.num_samples),
            grid_spacing_m=float(geometry.grid_spacing_m),
            grid_shape=tuple(int(n) for n in geometry.grid_shape),
        )

    def differences(self, other: DatasetGeometry, tolerance_m: float = 0.005) -> list[str]:
        """Every difference between two geometries, described for an error message (empty if equal).

        Positions are compared to ``tolerance_m`` (half a centimetre: SEG-Y coordinates are centimetres);
        the sample interval to 1 ns.
        """
        found = []
        if self.num_samples != other.num_samples:
            found.append(f"time samples {other.num_samples} instead of {self.num_samples}")
        if abs(self.sample_interval_s - other.sample_interval_s) > 1e-9:
            found.append(
                f"sample interval {other.sample_interval_s * 1e3:g} ms instead of {self.sample_interval_s * 1e3:g} ms"
            )
        for label, mine, theirs in (
            ("shots", self.source_positions_m, other.source_positions_m),
            ("receivers", self.receiver_positions_m, other.receiver_positions_m),
        ):
            if len(mine) != len(theirs):
                found.append(f"{len(theirs)} {label} instead of {len(mine)}")
            elif len(mine) and np.max(np.abs(np.asarray(mine) - np.asarray(theirs))) > tolerance_m:
                index = int(np.argmax(np.max(np.abs(np.asarray(mine) - np.asarray(theirs)), axis=1)))
                found.append(
                    f"{label[:-1]} {index + 1} at (depth, x) = {tuple(np.round(theirs[index], 3))} m instead of "
                    f"{tuple(np.round(mine[index], 3))} m"
                )
        if tuple(self.grid_shape) != tuple(other.grid_shape) and other.grid_shape != (0, 0) and self.grid_shape != (0, 0):
            found.append(f"velocity grid {tuple(other.grid_shape)} instead of {tuple(self.grid_shape)} cells")
        if (
            np.isfinite(self.grid_spacing_m) and np.isfinite(other.grid_spacing_m)
            and abs(self.grid_spacing_m - other.grid_spacing_m) > 1e-6
        ):
            found.append(f"grid spacing {other.grid_spacing_m:g} m instead of {self.grid_spacing_m:g} m")
        return found

    def to_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["source_positions_m"] = np.asarray(self.source_positions_m).tolist()
        values["receiver_positions_m"] = np.asarray(self.receiver_positions_m).tolist()
        values["grid_shape"] = list(self.grid_shape)
        return values


# ----------------------------------------------------------------------------------------------------------
# Writing helpers (used by ingest and openfwi)
# ----------------------------------------------------------------------------------------------------------


def create_layout(
    h5: h5py.File,
    num_samples: int,
    geometry: DatasetGeometry,
    labelled: bool,
    compression: str | None = None,
) -> None:
    """Creates the datasets of an empty dataset file, resizable along the sample axis."""
    h5.attrs["format"] = FORMAT
    h5.attrs["schema_version"] = SCHEMA_VERSION
    h5.attrs["labelled"] = bool(labelled)
    h5.attrs["num_samples"] = int(num_samples)
    seismic_shape = (geometry.num_shots, geometry.num_samples, geometry.num_receivers)
    seismic = h5.create_dataset(
        SEISMIC, shape=(num_samples, *seismic_shape), maxshape=(None, *seismic_shape), dtype=np.float32,
        chunks=(1, *seismic_shape), compression=compression,
    )
    seismic.attrs["axes"] = ",".join(SEISMIC_AXES)
    seismic.attrs["units"] = "pressure, as recorded"
    if labelled:
        grid = tuple(geometry.grid_shape)
        velocity = h5.create_dataset(
            VELOCITY, shape=(num_samples, *grid), maxshape=(None, *grid), dtype=np.float32, chunks=(1, *grid),
            compression=compression,
        )
        velocity.attrs["axes"] = ",".join(VELOCITY_AXES)
        velocity.attrs["units"] = "m/s"
        edges = h5.create_dataset(
            EDGES, shape=(num_samples, *grid), maxshape=(None, *grid), dtype=np.uint8, chunks=(1, *grid),
            compression=compression,
        )
        edges.attrs["axes"] = ",".join(VELOCITY_AXES)
        edges.attrs["units"] = "1 on a velocity edge, 0 elsewhere"
    h5.create_dataset(SAMPLE_ID, shape=(num_samples,), maxshape=(None,), dtype=np.int64, chunks=True)
    h5.create_dataset(SAMPLE_SOURCE, shape=(num_samples,), maxshape=(None,), dtype=np.int32, chunks=True)
    write_geometry(h5, geometry)


def resize_samples(h5: h5py.File, num_samples: int) -> None:
    """Resizes every per-sample dataset to ``num_samples`` (append, or roll back a failed append)."""
    for name in (SEISMIC, VELOCITY, EDGES, SAMPLE_ID, SAMPLE_SOURCE):
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


def read_geometry(h5: h5py.File) -> DatasetGeometry:
    group = h5[GEOMETRY]
    return DatasetGeometry(
        source_positions_m=group["source_positions_m"][()],
        receiver_positions_m=group["receiver_positions_m"][()],
        sample_interval_s=float(group.attrs["sample_interval_s"]),
        num_samples=int(group.attrs["num_samples"]),
        grid_spacing_m=float(group.attrs["grid_spacing_m"]),
        grid_shape=tuple(int(n) for n in group.attrs["grid_shape"]),
    )


def write_splits(h5: h5py.File, splits: dict[str, np.ndarray], seed: int, fractions: Sequence[float]) -> None:
    group = h5.require_group(SPLITS)
    for name in SPLIT_NAMES:
        if name in group:
            del group[name]
        group.create_dataset(name, data=np.asarray(splits[name], dtype=np.int64))
    group.attrs["seed"] = int(seed)
    group.attrs["fractions"] = np.asarray(fractions, dtype=np.float64)


def read_splits(h5: h5py.File) -> dict[str, np.ndarray]:
    return {name: h5[SPLITS][name][()] for name in SPLIT_NAMES}


def split_digest(train_indices: np.ndarray) -> str:
    """SHA-256 of the training indices: ties the statistics to the split they came from."""
    return hashlib.sha256(np.asarray(train_indices, dtype="<i8").tobytes()).hexdigest()


def write_normalization(h5: h5py.File, stats: NormalizationStats, train_indices: np.ndarray) -> None:
    group = h5.require_group(NORMALIZATION)
    group.attrs["stats"] = json.dumps(stats.to_dict(), sort_keys=True)
    group.attrs["train_split_sha256"] = split_digest(train_indices)


def read_normalization(source: h5py.File | str | Path) -> NormalizationStats:
    """The normalisation statistics of a dataset (an open file or a path, validated first)."""
    if isinstance(source, str | Path):
        with open_dataset(source, check_values=False) as h5:
            return read_normalization(h5)
    return NormalizationStats.from_dict(json.loads(source[NORMALIZATION].attrs["stats"]))


def write_provenance(h5: h5py.File, values: dict[str, Any]) -> None:
    group = h5.require_group(PROVENANCE)
    for key, value in values.items():
        group.attrs[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def read_provenance(h5: h5py.File) -> dict[str, Any]:
    group = h5[PROVENANCE]
    result: dict[str, Any] = {}
    for key in group.attrs:
        value = group.attrs[key]
        if key in ("sources", "history"):
            value = json.loads(value)
        result[key] = value
    return result


def file_sha256(path: str | Path, block_bytes: int = 8 * 2**20) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(block_bytes):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------------------
# Validation and reading
# ----------------------------------------------------------------------------------------------------------


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


def validate(path: str | Path, check_values: bool = True, block_samples: int = 64) -> DatasetSummary:
    """Checks a dataset file against the schema and returns a summary.

    Structure (always): format and schema version, every dataset and group present with the right dtype,
    axis order and consistent shapes, chunking of one sample, geometry consistent with the arrays, splits
    disjoint and complete, statistics present, finite and computed from the current training split,
    provenance complete, no append in progress. Values (``check_values=True``, read in blocks of
    ``block_samples`` samples): seismic finite, velocity finite and positive, edges 0 or 1.

    Raises:
        SchemaError: listing every problem found (or the reason the file cannot be opened).
    """
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"Dataset {path} does not exist.")
    try:
        h5 = h5py.File(path, "r")
    except OSError as error:
        raise SchemaError(f"{path} is not a readable HDF5 file ({error}): re-create it with data_prep.ingest.") from None
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
        )


def open_dataset(path: str | Path, check_values: bool = False) -> h5py.File:
    """Validates a dataset (structure; values too with ``check_values``) and opens it read-only.

    The chunk cache is raised so that one sample (one chunk) is read whole and cached.
    """
    validate(path, check_values=check_values)
    return h5py.File(path, "r", rdcc_nbytes=READ_CHUNK_CACHE_BYTES)


def _structure_problems(h5: h5py.File) -> list[str]:  # noqa: C901 - one check after another
    problems: list[str] = []
    if h5.attrs.get("format") != FORMAT:
        return [f"attribute format is {h5.attrs.get('format')!r}, expected {FORMAT!r} (not a seisinvert dataset)"]
    if h5.attrs.get("schema_version") != SCHEMA_VERSION:
        version = h5.attrs.get("schema_version")
        version = int(version) if version is not None else None
        return [f"schema_version is {version}; this code reads version {SCHEMA_VERSION}"]
    if h5.attrs.get("write_in_progress", False):
        problems.append(
            "an append was interrupted (write_in_progress is set): re-run the append or rebuild the dataset"
        )
    labelled = bool(h5.attrs.get("labelled", False))
    required = [SEISMIC, SAMPLE_ID, SAMPLE_SOURCE, GEOMETRY, SPLITS, NORMALIZATION, PROVENANCE]
    if labelled:
        required += [VELOCITY, EDGES]
    missing = [name for name in required if name not in h5]
    if missing:
        return problems + [f"missing {', '.join(missing)}"]

    seismic = h5[SEISMIC]
    if seismic.dtype != np.float32 or seismic.ndim != 4:
        problems.append(f"seismic must be float32 (sample, shot, time, receiver); found {seismic.dtype} {seismic.shape}")
    elif seismic.chunks != (1, *seismic.shape[1:]):
        problems.append(f"seismic must be chunked one sample per chunk {(1, *seismic.shape[1:])}; found {seismic.chunks}")
    num_samples = seismic.shape[0]
    if h5.attrs.get("num_samples") != num_samples:
        problems.append(f"attribute num_samples={h5.attrs.get('num_samples')} but seismic holds {num_samples} samples")
    for name, dtype in ((SAMPLE_ID, np.int64), (SAMPLE_SOURCE, np.int32)):
        if h5[name].shape != (num_samples,) or h5[name].dtype != dtype:
            problems.append(f"{name} must be {np.dtype(dtype)} ({num_samples},); found {h5[name].dtype} {h5[name].shape}")
    if len(np.unique(h5[SAMPLE_ID][()])) != num_samples:
        problems.append("sample_id holds duplicates: the same model was ingested twice")

    try:
        geometry = read_geometry(h5)
    except KeyError as error:
        return problems + [f"geometry incomplete ({error})"]
    if seismic.ndim == 4 and seismic.shape[1:] != (geometry.num_shots, geometry.num_samples, geometry.num_receivers):
        problems.append(
            f"seismic (shot, time, receiver) = {seismic.shape[1:]} disagrees with the geometry "
            f"({geometry.num_shots} shots, {geometry.num_samples} samples, {geometry.num_receivers} receivers)"
        )
    if not geometry.sample_interval_s > 0:
        problems.append(f"geometry sample_interval_s must be positive, found {geometry.sample_interval_s}")
    for name in ("source_positions_m", "receiver_positions_m"):
        values = h5[GEOMETRY][name]
        if values.ndim != 2 or values.shape[1] != 2 or not np.all(np.isfinite(values[()])):
            problems.append(f"geometry/{name} must be finite (n, 2) (depth_m, x_m); found {values.shape}")

    if labelled:
        for name, dtype in ((VELOCITY, np.float32), (EDGES, np.uint8)):
            dataset = h5[name]
            expected = (num_samples, *geometry.grid_shape)
            if dataset.dtype != dtype or dataset.shape != expected:
                problems.append(f"{name} must be {np.dtype(dtype)} {expected}; found {dataset.dtype} {dataset.shape}")
            elif dataset.chunks != (1, *geometry.grid_shape):
                problems.append(f"{name} must be chunked one sample per chunk; found {dataset.chunks}")
        if not geometry.grid_spacing_m > 0:
            problems.append(f"geometry grid_spacing_m must be positive, found {geometry.grid_spacing_m}")

    try:
        splits = read_splits(h5)
    except KeyError as error:
        return problems + [f"splits incomplete ({error})"]
    problems += check_splits(splits, num_samples)

    attrs = h5[NORMALIZATION].attrs
    if "stats" not in attrs or "train_split_sha256" not in attrs:
        problems.append("normalization lacks stats or train_split_sha256")
    else:
        try:
            stats = NormalizationStats.from_dict(json.loads(attrs["stats"]))
        except (TypeError, ValueError) as error:
            problems.append(f"normalization stats unreadable ({error})")
        else:
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

    missing_provenance = [key for key in PROVENANCE_ATTRIBUTES if key not in h5[PROVENANCE].attrs]
    if missing_provenance:
        problems.append(f"provenance lacks {', '.join(missing_provenance)}")
    else:
        try:
            sources = json.loads(h5[PROVENANCE].attrs["sources"])
        except ValueError:
            problems.append("provenance sources are not valid JSON")
        else:
            if num_samples and h5[SAMPLE_SOURCE].shape == (num_samples,):
                source_index = h5[SAMPLE_SOURCE][()]
                if source_index.min() < 0 or source_index.max() >= len(sources):
                    problems.append("sample_source points outside the provenance sources list")
    return problems


def _value_problems(h5: h5py.File, block_samples: int) -> list[str]:
    problems = []
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
                problems.append(f"velocity samples {start}..{stop - 1} hold non-finite or non-positive values")
            edges = h5[EDGES][start:stop]
            if np.any(edges > 1):
                problems.append(f"edges samples {start}..{stop - 1} hold values other than 0 and 1")
        if len(problems) >= 5:
            problems.append("(stopped after 5 problems)")
            break
    return problems
