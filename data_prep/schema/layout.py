"""The names of the dataset layout: format, schema versions, dataset and group names, axis orders, the
per-sample fields and provenance attributes of each version, and ``SchemaError``.

Part of ``data_prep.schema`` (its docstring draws the whole layout); every other module of the package
and every writer and reader uses these names rather than spelling them out.
"""

from __future__ import annotations

from core.errors import UserError

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

#: Chunk cache for readers: a few samples' chunks (an OpenFWI sample is 1.4 MB, above h5py's 1 MiB default).
READ_CHUNK_CACHE_BYTES = 64 * 2**20

#: Positions may lie this far outside the grid (SEG-Y coordinates are centimetres: rounding, not placement).
POSITION_TOLERANCE_M = 0.005


class SchemaError(UserError):
    """A dataset file that does not follow the schema; the message lists every problem found."""


__all__ = [
    "EDGES",
    "FORMAT",
    "GEOMETRY",
    "NORMALIZATION",
    "POSITION_TOLERANCE_M",
    "PROVENANCE",
    "PROVENANCE_ATTRIBUTES",
    "PROVENANCE_ATTRIBUTES_V2",
    "READABLE_SCHEMA_VERSIONS",
    "READ_CHUNK_CACHE_BYTES",
    "SAMPLE_FAMILY",
    "SAMPLE_FIELDS",
    "SAMPLE_ID",
    "SAMPLE_ORIGIN",
    "SAMPLE_RECEIVER_POSITIONS",
    "SAMPLE_SOURCE",
    "SAMPLE_SOURCE_POSITIONS",
    "SAMPLE_START_TIME",
    "SAMPLE_X_ORIGIN",
    "SCHEMA_VERSION",
    "SEISMIC",
    "SEISMIC_AXES",
    "SPLITS",
    "SchemaError",
    "UNKNOWN_FAMILY",
    "VELOCITY",
    "VELOCITY_AXES",
]
