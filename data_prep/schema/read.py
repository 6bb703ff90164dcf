"""Reading a dataset: the geometry, splits and provenance groups, and the per-sample fields of schema
versions 1 and 2 (version-1 files get what they did not store filled in).

Part of ``data_prep.schema``. Open the file with ``data_prep.schema.open_dataset`` (which validates it
first), then read through these functions; each per-sample reader takes optional sample indices in any
order, with repeats.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from data_prep.schema.dataset_geometry import DatasetGeometry
from data_prep.schema.layout import (
    GEOMETRY,
    PROVENANCE,
    SAMPLE_FAMILY,
    SAMPLE_ID,
    SAMPLE_ORIGIN,
    SAMPLE_RECEIVER_POSITIONS,
    SAMPLE_SOURCE,
    SAMPLE_SOURCE_POSITIONS,
    SAMPLE_START_TIME,
    SAMPLE_X_ORIGIN,
    SEISMIC,
    SPLITS,
    UNKNOWN_FAMILY,
)
from data_prep.splits import SPLIT_NAMES

#: Provenance attributes stored as JSON (decoded by ``read_provenance``).
_JSON_PROVENANCE = ("sources", "history", "origins", "families", "engine_settings")


def schema_version(h5: h5py.File) -> int:
    """The file's schema version (0 when the attribute is missing)."""
    version = h5.attrs.get("schema_version")
    return int(version) if version is not None else 0


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


def read_splits(h5: h5py.File) -> dict[str, np.ndarray]:
    return {name: h5[SPLITS][name][()] for name in SPLIT_NAMES}


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


__all__ = [
    "SampleTable",
    "family_breakdown",
    "format_family_breakdown",
    "read_engine_settings",
    "read_family_breakdown",
    "read_geometry",
    "read_origins",
    "read_provenance",
    "read_sample_families",
    "read_sample_ids",
    "read_sample_origins",
    "read_sample_positions",
    "read_sample_start_times",
    "read_sample_table",
    "read_sample_x_origins",
    "read_splits",
    "schema_version",
]
