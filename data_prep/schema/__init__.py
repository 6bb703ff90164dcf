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

The package, one concept per module (import the public names from ``data_prep.schema``):

======================================  ==========================================================================
module                                  holds
======================================  ==========================================================================
``data_prep.schema.layout``             the names above: format, versions, datasets, axes, per-sample fields,
                                        provenance attributes; ``SchemaError``
``data_prep.schema.dataset_geometry``   ``DatasetGeometry`` (the nominal geometry), ``outside_grid``,
                                        ``describe_outside_grid``
``data_prep.schema.write``              ``create_layout``, ``resize_samples`` and the ``write_*`` functions
                                        (used by ``data_prep.dataset_writer``), ``split_digest``, ``file_sha256``
``data_prep.schema.read``               the ``read_*`` functions of the groups and per-sample fields (versions 1
                                        and 2), ``SampleTable``, the per-family breakdown
``data_prep.schema.validation``         ``validate``, ``open_dataset``, ``read_normalization`` (which opens a
                                        path through ``open_dataset``), ``DatasetSummary``
======================================  ==========================================================================
"""

from data_prep.schema.dataset_geometry import (
    DatasetGeometry,
    describe_outside_grid,
    outside_grid,
)
from data_prep.schema.layout import (
    EDGES,
    FORMAT,
    GEOMETRY,
    NORMALIZATION,
    POSITION_TOLERANCE_M,
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
    SEISMIC_AXES,
    SPLITS,
    UNKNOWN_FAMILY,
    VELOCITY,
    VELOCITY_AXES,
    SchemaError,
)
from data_prep.schema.read import (
    SampleTable,
    family_breakdown,
    format_family_breakdown,
    read_engine_settings,
    read_family_breakdown,
    read_geometry,
    read_origins,
    read_provenance,
    read_sample_families,
    read_sample_ids,
    read_sample_origins,
    read_sample_positions,
    read_sample_start_times,
    read_sample_table,
    read_sample_x_origins,
    read_splits,
    schema_version,
)
from data_prep.schema.validation import (
    DatasetSummary,
    open_dataset,
    read_normalization,
    validate,
)
from data_prep.schema.write import (
    create_layout,
    file_sha256,
    resize_samples,
    split_digest,
    write_geometry,
    write_normalization,
    write_provenance,
    write_splits,
)

__all__ = [
    "DatasetGeometry",
    "DatasetSummary",
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
    "SampleTable",
    "SchemaError",
    "UNKNOWN_FAMILY",
    "VELOCITY",
    "VELOCITY_AXES",
    "create_layout",
    "describe_outside_grid",
    "family_breakdown",
    "file_sha256",
    "format_family_breakdown",
    "open_dataset",
    "outside_grid",
    "read_engine_settings",
    "read_family_breakdown",
    "read_geometry",
    "read_normalization",
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
    "resize_samples",
    "schema_version",
    "split_digest",
    "validate",
    "write_geometry",
    "write_normalization",
    "write_provenance",
    "write_splits",
]
