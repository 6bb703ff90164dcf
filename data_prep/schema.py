"""The HDF5 dataset contract: names, dtypes, axis order, units and attributes, ``validate`` and the readers.

Single source of truth for the files written by ``data_prep.ingest`` / ``data_prep.openfwi`` and read by
training, evaluation and inference. Every writer calls ``validate`` before renaming its output into place;
every reader should open datasets with ``open_dataset`` (which validates first) and read the per-sample
fields through the ``read_*`` functions below (they also read version-1 files, filling in what version 1
did not store).

Layout (schema version 2; version-1 files, without the fields marked [v2], are still read)::

    /                               attrs: format="seisinvert-dataset", schema_version=2, labelled (bool),
                                           num_samples, write_in_progress (present only during --append)
    /seismic                        float32 (sample, shot, time, receiver), pressure as recorded;
                                    chunks (1, shot, time, receiver) = one sample; uncompressed by default
    /velocity                       float32 (sample, depth, x), m/s; chunks (1, depth, x)   [labelled only]
    /edges                          uint8 (sample, depth, x), 0/1 (data_prep.edges.edge_map) [labelled only]
    /sample_id                      int64 (sample,): the sample's number within its origin (model id of a
                                    seisinvert SEG-Y file, first shot number of a shots_per_sample group,
                                    1 for one-sample-per-file, OpenFWI row + 1 within its data file)
    /sample_origin          [v2]    int32 (sample,): index into provenance ``origins`` (a synthesize folder, a
                                    SEG-Y file or an OpenFWI file); a sample's identity is
                                    (sample_origin, sample_id), unique in the dataset
    /sample_source                  int32 (sample,): index into provenance ``sources`` of the seismic file
    /sample_family          [v2]    UTF-8 string (sample,): velocity-model family ("flatvel-a", ...;
                                    "unknown" when the input does not say)
    /sample_source_positions_m   [v2]  float64 (sample, shot, 2): this sample's (depth_m, x_m) of each shot,
                                    in the frame of its velocity grid (x from the grid's first column)
    /sample_receiver_positions_m [v2]  float64 (sample, receiver, 2): the same for its receivers
    /sample_x_origin_m      [v2]    float64 (sample,): survey x of the sample's grid origin: recorded x =
                                    x_m + sample_x_origin_m (0 for synthetic data)
    /sample_start_time_s    [v2]    float64 (sample,): time after the shot of each trace's first sample
                                    (the recording delay); equal to geometry start_time_s in every sample
    /geometry/source_positions_m    float64 (shot, 2): nominal (depth_m, x_m), depth positive down
    /geometry/receiver_positions_m  float64 (receiver, 2): nominal (depth_m, x_m)
    /geometry                       attrs: sample_interval_s, num_samples, grid_spacing_m, grid_shape (depth, x),
                                    start_time_s [v2] (grid attributes are NaN / (0, 0) for unlabelled datasets)
    /splits/{train,val,test}        int64 sorted sample indices, disjoint, together all samples
    /splits                         attrs: seed, fractions (train, val, test), stratified_by [v2] ("family")
    /normalization                  attrs: stats (JSON of NormalizationStats, training split only),
                                    train_split_sha256 (of the train indices the stats came from)
    /provenance                     attrs: package_version, segyio_version, h5py_version, numpy_version,
                                    created_by, configuration (YAML), config_hash, sources (JSON list of
                                    {name, path, size_bytes, sha256, role, textual_header}), history (JSON list);
                                    [v2] origins (JSON list of {name, kind, path, family, grouping,
                                    engine_settings, ...}), families (JSON {family: {samples, train, val,
                                    test}}), engine_settings (JSON: the forward-modelling settings shared by
                                    every origin that records them; {} when none or when they differ)

Sample positions and the nominal geometry: the nominal ``/geometry`` is what a model trained on the dataset
expects (``DatasetGeometry``); each sample's own positions may differ from it (samples cut from different
places of a line, slightly different spreads) and are stored next to it, so they can be compared with the
geometry a model was trained for. In labelled datasets every position lies inside the velocity grid:
depth in [0, (depth cells - 1) x spacing], x in [0, (x cells - 1) x spacing].
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from core.errors import UserError
from data_prep.normalization import NormalizationStats
from data_prep.splits import SPLIT_NAMES, check_splits

FORMAT = "seisinvert-dataset"
SCHEMA_VERSION = 2
#: Schema versions ``validate`` and the readers accept (version 1: no per-sample origin, family, positions
#: or start time; the readers fill them in).
READABLE_SCHEMA_VERSIONS = (1, 2)

SEISMIC = "seismic"
VELOCITY = "velocity"
EDGES = "edges"
SAMPLE_ID = "sample_id"
SAMPLE_SOURCE = "sample_source"
SAMPLE_ORIGIN = "sample_origin"
SAMPLE_FAMILY = "sample_family"
SAMPLE_SOURCE_POSITIONS = "sample_source_positions_m"
SAMPLE_RECEIVER_POSITIONS = "sample_receiver_positions_m"
SAMPLE_X_ORIGIN = "sample_x_origin_m"
SAMPLE_START_TIME = "sample_start_time_s"
GEOMETRY = "geometry"
SPLITS = "splits"
NORMALIZATION = "normalization"
PROVENANCE = "provenance"

SEISMIC_AXES = ("sample", "shot", "time", "receiver")
VELOCITY_AXES = ("sample", "depth", "x")

#: Family recorded for samples whose input does not name one (field data, version-1 files).
UNKNOWN_FAMILY = "unknown"

#: The per-sample metadata datasets of each schema version (besides seismic, velocity and edges).
SAMPLE_FIELDS = {
    1: (SAMPLE_ID, SAMPLE_SOURCE),
    2: (
        SAMPLE_ID,
        SAMPLE_SOURCE,
        SAMPLE_ORIGIN,
        SAMPLE_FAMILY,
        SAMPLE_SOURCE_POSITIONS,
        SAMPLE_RECEIVER_POSITIONS,
        SAMPLE_X_ORIGIN,
        SAMPLE_START_TIME,
    ),
}

#: Attributes every provenance group carries, per schema version.
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
PROVENANCE_ATTRIBUTES_V2 = (*PROVENANCE_ATTRIBUTES, "origins", "families", "engine_settings")
#: Provenance attributes stored as JSON (decoded by ``read_provenance``).
_JSON_PROVENANCE = ("sources", "history", "origins", "families", "engine_settings")

#: Chunk cache for readers: a few samples' chunks (an OpenFWI sample is 1.4 MB, above h5py's 1 MiB default).
READ_CHUNK_CACHE_BYTES = 64 * 2**20

#: Positions may lie this far outside the grid (SEG-Y coordinates are centimetres: rounding, not placement).
POSITION_TOLERANCE_M = 0.005


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
        start_time_s: time after the shot of each trace's first sample, seconds (the recording delay; 0 for
            synthetic data, whose sample 0 is the state at rest when the source starts).
    """

    source_positions_m: np.ndarray
    receiver_positions_m: np.ndarray
    sample_interval_s: float
    num_samples: int
    grid_spacing_m: float = float("nan")
    grid_shape: tuple[int, int] = (0, 0)
    start_time_s: float = 0.0

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

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> DatasetGeometry:
        """Inverse of ``to_json`` (keys it does not know are ignored; missing ones take their defaults)."""
        names = {field.name for field in dataclasses.fields(cls)}
        arguments: dict[str, Any] = {}
        for key, value in values.items():
            if key not in names:
                continue
            if key.endswith("_positions_m"):
                value = np.asarray(value, dtype=np.float64).reshape(-1, 2)
            elif key == "grid_shape":
                value = tuple(int(n) for n in value)
            elif key == "grid_spacing_m" and value is None:
                value = float("nan")
            arguments[key] = value
        return cls(**arguments)

    def differences(
        self, other: DatasetGeometry, tolerance_m: float = POSITION_TOLERANCE_M, positions: bool = True
    ) -> list[str]:
        """Every difference between two geometries, described for an error message (empty if equal).

        Positions are compared to ``tolerance_m`` (half a centimetre: SEG-Y coordinates are centimetres);
        the sample interval and start time to 1 ns. ``positions=False`` compares the shot and receiver
        counts but not where they are (samples of a dataset may have their own positions).
        """
        found = []
        if self.num_samples != other.num_samples:
            found.append(f"time samples {other.num_samples} instead of {self.num_samples}")
        if abs(self.sample_interval_s - other.sample_interval_s) > 1e-9:
            found.append(
                f"sample interval {other.sample_interval_s * 1e3:g} ms instead of {self.sample_interval_s * 1e3:g} ms"
            )
        if abs(self.start_time_s - other.start_time_s) > 1e-9:
            found.append(
                f"start time (recording delay) {other.start_time_s * 1e3:g} ms instead of "
                f"{self.start_time_s * 1e3:g} ms"
            )
        for label, mine, theirs in (
            ("shots", self.source_positions_m, other.source_positions_m),
            ("receivers", self.receiver_positions_m, other.receiver_positions_m),
        ):
            if len(mine) != len(theirs):
                found.append(f"{len(theirs)} {label} instead of {len(mine)}")
            elif (
                positions
                and len(mine)
                and np.max(np.abs(np.asarray(mine) - np.asarray(theirs))) > tolerance_m
            ):
                index = int(np.argmax(np.max(np.abs(np.asarray(mine) - np.asarray(theirs)), axis=1)))
                found.append(
                    f"{label[:-1]} {index + 1} at (depth, x) = {_metres(theirs[index])} m instead of "
                    f"{_metres(mine[index])} m"
                )
        if (
            tuple(self.grid_shape) != tuple(other.grid_shape)
            and other.grid_shape != (0, 0)
            and self.grid_shape != (0, 0)
        ):
            found.append(f"velocity grid {tuple(other.grid_shape)} instead of {tuple(self.grid_shape)} cells")
        if (
            np.isfinite(self.grid_spacing_m)
            and np.isfinite(other.grid_spacing_m)
            and abs(self.grid_spacing_m - other.grid_spacing_m) > 1e-6
        ):
            found.append(f"grid spacing {other.grid_spacing_m:g} m instead of {self.grid_spacing_m:g} m")
        return found

    def grid_extent_m(self) -> tuple[float, float] | None:
        """``(max depth, max x)`` in metres of the velocity grid's nodes, or None without a grid."""
        if not np.isfinite(self.grid_spacing_m) or min(self.grid_shape) < 1:
            return None
        return (
            (self.grid_shape[0] - 1) * float(self.grid_spacing_m),
            (self.grid_shape[1] - 1) * float(self.grid_spacing_m),
        )

    def to_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["source_positions_m"] = np.asarray(self.source_positions_m).tolist()
        values["receiver_positions_m"] = np.asarray(self.receiver_positions_m).tolist()
        values["grid_shape"] = list(self.grid_shape)
        return values


def _metres(position: np.ndarray) -> str:
    """``(depth, x)`` in metres for messages, to the millimetre: ``(10, 40.5)``."""
    return "(" + ", ".join(f"{round(float(value), 3):g}" for value in position) + ")"


def outside_grid(
    positions_m: np.ndarray, geometry: DatasetGeometry, tolerance_m: float = POSITION_TOLERANCE_M
) -> np.ndarray:
    """Which ``(..., 2)`` ``(depth_m, x_m)`` positions lie outside the velocity grid (all False without a grid).

    The grid spans depth ``[0, (depth cells - 1) * spacing]`` and x ``[0, (x cells - 1) * spacing]`` (its
    nodes, where the engine places sources and receivers), widened by ``tolerance_m``.
    """
    positions_m = np.asarray(positions_m, dtype=np.float64)
    extent = geometry.grid_extent_m()
    if extent is None:
        return np.zeros(positions_m.shape[:-1], dtype=bool)
    depth, x = positions_m[..., 0], positions_m[..., 1]
    return (
        (depth < -tolerance_m)
        | (depth > extent[0] + tolerance_m)
        | (x < -tolerance_m)
        | (x > extent[1] + tolerance_m)
        | ~np.isfinite(depth)
        | ~np.isfinite(x)
    )


def describe_outside_grid(
    sources_m: np.ndarray, receivers_m: np.ndarray, geometry: DatasetGeometry
) -> str | None:
    """A message naming the first shot or receiver outside the velocity grid (None when all are inside).

    ``sources_m`` / ``receivers_m``: ``(shots, 2)`` / ``(receivers, 2)`` ``(depth_m, x_m)`` of one sample.
    """
    extent = geometry.grid_extent_m()
    if extent is None:
        return None
    for label, positions in (("shot", sources_m), ("receiver", receivers_m)):
        outside = np.flatnonzero(outside_grid(positions, geometry))
        if outside.size:
            worst = np.asarray(positions)[outside]
            index = int(outside[0])
            depth, x = (float(v) for v in np.asarray(positions)[index])
            return (
                f"{label} {index + 1} at (depth, x) = ({depth:g}, {x:g}) m lies outside the velocity grid "
                f"(depth 0-{extent[0]:g} m, x 0-{extent[1]:g} m: {geometry.grid_shape[0]} x "
                f"{geometry.grid_shape[1]} cells of {geometry.grid_spacing_m:g} m); {outside.size} {label}(s) "
                f"outside, up to x = {worst[:, 1].max():g} m"
            )
    return None


# ----------------------------------------------------------------------------------------------------------
# Writing helpers (used by data_prep.dataset_writer)
# ----------------------------------------------------------------------------------------------------------


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


def schema_version(h5: h5py.File) -> int:
    """The file's schema version (0 when the attribute is missing)."""
    version = h5.attrs.get("schema_version")
    return int(version) if version is not None else 0


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


def read_geometry(h5: h5py.File) -> DatasetGeometry:
    """The dataset's nominal geometry (version-1 files have no start time: 0)."""
    group = h5[GEOMETRY]
    return DatasetGeometry(
        source_positions_m=group["source_positions_m"][()],
        receiver_positions_m=group["receiver_positions_m"][()],
        sample_interval_s=float(group.attrs["sample_interval_s"]),
        num_samples=int(group.attrs["num_samples"]),
        grid_spacing_m=float(group.attrs["grid_spacing_m"]),
        grid_shape=tuple(int(n) for n in group.attrs["grid_shape"]),
        start_time_s=float(group.attrs.get("start_time_s", 0.0)),
    )


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
    """Every provenance attribute; the JSON ones (sources, history, origins, families, engine_settings) decoded."""
    group = h5[PROVENANCE]
    result: dict[str, Any] = {}
    for key in group.attrs:
        value = group.attrs[key]
        if key in _JSON_PROVENANCE:
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


def family_breakdown(families: np.ndarray, splits: dict[str, np.ndarray]) -> dict[str, dict[str, int]]:
    """``{family: {"samples": n, "train": ..., "val": ..., "test": ...}}`` in family-name order."""
    families = np.asarray(families).astype(str)
    breakdown: dict[str, dict[str, int]] = {}
    for family in sorted(set(families.tolist())):
        mask = families == family
        breakdown[family] = {"samples": int(mask.sum())}
        for name in SPLIT_NAMES:
            breakdown[family][name] = int(mask[np.asarray(splits[name], dtype=np.int64)].sum())
    return breakdown


def format_family_breakdown(breakdown: Mapping[str, Mapping[str, int]]) -> str:
    """One line per family: ``flatvel-a: 4 samples (train 2, val 1, test 1)``."""
    return "\n".join(
        f"  {family}: {counts['samples']} samples ("
        + ", ".join(f"{name} {counts.get(name, 0)}" for name in SPLIT_NAMES)
        + ")"
        for family, counts in breakdown.items()
    )


# ----------------------------------------------------------------------------------------------------------
# Readers of the per-sample fields (schema versions 1 and 2)
# ----------------------------------------------------------------------------------------------------------


def _select(dataset: h5py.Dataset, indices: Sequence[int] | np.ndarray | None) -> np.ndarray:
    """``dataset[indices]`` along the sample axis for any order and repeats (h5py needs sorted unique)."""
    if indices is None:
        return dataset[()]
    wanted = np.asarray(indices, dtype=np.int64)
    unique, inverse = np.unique(wanted, return_inverse=True)
    return dataset[unique][inverse] if unique.size else dataset[:0]


def _indices(h5: h5py.File, indices: Sequence[int] | np.ndarray | None) -> np.ndarray:
    return np.arange(h5[SEISMIC].shape[0]) if indices is None else np.asarray(indices, dtype=np.int64)


def read_origins(h5: h5py.File) -> list[dict[str, Any]]:
    """The origins table (provenance ``origins``): one dict per synthesize folder, SEG-Y or OpenFWI file.

    Each has at least ``name``, ``kind`` ("synthesize", "segy", "openfwi"; "file" for version-1 datasets),
    ``path`` and ``family``; ingest adds ``grouping`` (how traces were grouped into samples) and
    ``engine_settings`` (the forward-modelling settings, or None when the input does not record them).
    Version-1 files: one origin per provenance source, built from the sources list.
    """
    provenance = h5[PROVENANCE].attrs
    if "origins" in provenance:
        return json.loads(provenance["origins"])
    return [
        {
            "name": source.get("name", ""),
            "kind": "file",
            "path": source.get("path", ""),
            "family": source.get("family") or UNKNOWN_FAMILY,
            "engine_settings": source.get("engine_settings"),
        }
        for source in json.loads(provenance["sources"])
    ]


def read_sample_origins(h5: h5py.File, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Index into ``read_origins(h5)`` of each sample, int64 ``(samples,)``; with ``sample_id`` its identity.

    Version-1 files: the index of the sample's seismic file (their origins are their files).
    """
    name = SAMPLE_ORIGIN if SAMPLE_ORIGIN in h5 else SAMPLE_SOURCE
    return _select(h5[name], indices).astype(np.int64)


def read_sample_ids(h5: h5py.File, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """The ``sample_id`` of each sample (its number within its origin), int64 ``(samples,)``."""
    return _select(h5[SAMPLE_ID], indices).astype(np.int64)


def read_sample_families(h5: h5py.File, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """The velocity-model family of each sample, a str array ``(samples,)`` ("unknown" where not recorded).

    Version-1 files: the ``family`` of the sample's provenance source where one is recorded, else "unknown".
    """
    if SAMPLE_FAMILY in h5:
        return np.asarray(_select(h5[SAMPLE_FAMILY].asstr(), indices), dtype=str)
    origins = read_origins(h5)
    families = np.asarray([origin.get("family") or UNKNOWN_FAMILY for origin in origins] or [UNKNOWN_FAMILY])
    return families[read_sample_origins(h5, indices)].astype(str)


def read_sample_positions(
    h5: h5py.File, indices: Sequence[int] | np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's own shot and receiver positions in metres, in its velocity grid's frame.

    Returns:
        ``(sources (samples, shots, 2), receivers (samples, receivers, 2))`` float64 ``(depth_m, x_m)``.
        Version-1 files: the nominal geometry for every sample (they stored no other).
    """
    if SAMPLE_SOURCE_POSITIONS in h5:
        return (
            _select(h5[SAMPLE_SOURCE_POSITIONS], indices),
            _select(h5[SAMPLE_RECEIVER_POSITIONS], indices),
        )
    geometry = read_geometry(h5)
    count = len(_indices(h5, indices))
    return (
        np.broadcast_to(geometry.source_positions_m, (count, *geometry.source_positions_m.shape)).copy(),
        np.broadcast_to(geometry.receiver_positions_m, (count, *geometry.receiver_positions_m.shape)).copy(),
    )


def read_sample_x_origins(h5: h5py.File, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Survey x (metres) of each sample's velocity-grid origin: recorded x = stored x + this (0 in version 1)."""
    if SAMPLE_X_ORIGIN in h5:
        return _select(h5[SAMPLE_X_ORIGIN], indices)
    return np.zeros(len(_indices(h5, indices)))


def read_sample_start_times(h5: h5py.File, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Time after the shot of each sample's first time sample, seconds, float64 (0 in version-1 files)."""
    if SAMPLE_START_TIME in h5:
        return _select(h5[SAMPLE_START_TIME], indices)
    return np.full(len(_indices(h5, indices)), read_geometry(h5).start_time_s)


def read_engine_settings(h5: h5py.File) -> dict[str, Any]:
    """The forward-modelling settings of the dataset's samples, or ``{}`` when unknown or not shared.

    These are the settings every origin that records them shares (see ``read_origins`` for each origin's).
    """
    provenance = h5[PROVENANCE].attrs
    if "engine_settings" in provenance:
        return dict(json.loads(provenance["engine_settings"]))
    return {}


def read_family_breakdown(h5: h5py.File) -> dict[str, dict[str, int]]:
    """``{family: {"samples", "train", "val", "test"}}`` computed from the file (any schema version)."""
    return family_breakdown(read_sample_families(h5), read_splits(h5))


@dataclass(frozen=True)
class SampleTable:
    """Everything known about some samples of a dataset except their arrays (``read_sample_table``).

    Attributes are ``(samples, ...)`` arrays in the order of the requested indices: ``index`` (position in
    the dataset), ``sample_id``, ``origin`` (index into ``origins``), ``origin_name``, ``family``,
    ``source_file`` (index into provenance sources), ``start_time_s``, ``x_origin_m``,
    ``source_positions_m`` ``(samples, shots, 2)``, ``receiver_positions_m`` ``(samples, receivers, 2)``.
    """

    index: np.ndarray
    sample_id: np.ndarray
    origin: np.ndarray
    origin_name: np.ndarray
    family: np.ndarray
    source_file: np.ndarray
    start_time_s: np.ndarray
    x_origin_m: np.ndarray
    source_positions_m: np.ndarray
    receiver_positions_m: np.ndarray
    origins: list[dict[str, Any]]


def read_sample_table(h5: h5py.File, indices: Sequence[int] | np.ndarray | None = None) -> SampleTable:
    """Identity, family, origin, positions and start time of the given samples (all when None)."""
    index = _indices(h5, indices)
    origins = read_origins(h5)
    origin = read_sample_origins(h5, index)
    names = np.asarray([entry.get("name", "") for entry in origins] or [""], dtype=str)
    sources, receivers = read_sample_positions(h5, index)
    return SampleTable(
        index=index,
        sample_id=read_sample_ids(h5, index),
        origin=origin,
        origin_name=names[origin],
        family=read_sample_families(h5, index),
        source_file=_select(h5[SAMPLE_SOURCE], index).astype(np.int64),
        start_time_s=read_sample_start_times(h5, index),
        x_origin_m=read_sample_x_origins(h5, index),
        source_positions_m=sources,
        receiver_positions_m=receivers,
        origins=origins,
    )


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


def _structure_problems(h5: h5py.File) -> list[str]:  # noqa: C901 - one check after another
    problems: list[str] = []
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

    try:
        geometry = read_geometry(h5)
    except KeyError as error:
        return problems + [f"geometry incomplete ({error})"]
    problems += _sample_field_problems(h5, version, num_samples, geometry)
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

    if labelled:
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
        elif not problems:
            outside = describe_outside_grid(
                geometry.source_positions_m, geometry.receiver_positions_m, geometry
            )
            if outside:
                problems.append(f"the nominal geometry's {outside}")

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
            if labelled and (
                stats.velocity_min_mps is None or not stats.velocity_max_mps > stats.velocity_min_mps
            ):
                problems.append("velocity statistics missing or empty range")

    required_provenance = PROVENANCE_ATTRIBUTES_V2 if version >= 2 else PROVENANCE_ATTRIBUTES
    missing_provenance = [key for key in required_provenance if key not in h5[PROVENANCE].attrs]
    if missing_provenance:
        problems.append(f"provenance lacks {', '.join(missing_provenance)}")
    else:
        for key, index_name in (("sources", SAMPLE_SOURCE), ("origins", SAMPLE_ORIGIN)):
            if key not in required_provenance:
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
