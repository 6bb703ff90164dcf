"""Writing the HDF5 training dataset: create, stream samples, append, statistics, splits, finalise.

Shared by the stages that produce a dataset (``data_prep.ingest`` from SEG-Y, ``data_prep.openfwi`` from
OpenFWI's ``.npy`` files): a stage plans its samples (``SamplePlan``: where each sample's seismic and
velocity come from) and describes its inputs (``SourceRecord``), and this module writes them in the layout
of ``data_prep.schema``. ``write_dataset`` creates a new file atomically (temporary file, streamed samples,
splits, normalisation statistics of the training split, provenance, structural validation, rename);
``append_samples`` adds samples to an existing file in place, flagged ``write_in_progress`` while it
changes and rolled back on failure (existing samples keep their split, the new ones are split among
themselves, and the statistics of the new training samples are merged into the stored ones; see
``data_prep.splits`` and ``data_prep.normalization``).

Samples come from **origins** (``OriginRecord``: a synthesize folder, a SEG-Y file, an OpenFWI file); a
sample's identity is ``(origin, sample_id)``, so every folder may number its models from 1 and every file
its shots from 1. Each sample's family, origin, own shot/receiver positions and start time are written next
to its arrays; splits are stratified by family, and a per-family breakdown is logged and recorded in the
provenance (``families``) with the origins and their forward-modelling settings (``engine_settings``).

Real duplicates are refused, with messages that say which: two inputs with the same bytes (SHA-256), an
input whose bytes the dataset already holds (``append``), or the same velocity models twice (two
synthesize folders of one family and seed with overlapping model ids).

Memory is bounded: seismic is streamed one sample at a time (one HDF5 chunk each), velocity models and edges
are written in blocks of about ``block_bytes``, and input files are released after every block.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from core import __version__
from core.atomic import atomic_output, install_termination_handler
from core.config import config_hash, to_yaml
from core.errors import UserError
from core.progress import Progress
from data_prep import schema
from data_prep.append_journal import begin_append, finish_append, roll_back
from data_prep.edges import EdgeConfig, edge_map
from data_prep.normalization import NormalizationStats, StatisticsAccumulator
from data_prep.schema import DatasetGeometry
from data_prep.splits import extend_splits, make_splits

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitConfig:
    """Seeded train/val/test fractions (see ``data_prep.splits``)."""

    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0


@dataclass
class SamplePlan:
    """One sample to write: where its seismic and velocity come from, and what is known about it.

    ``load`` returns ``(seismic (shots, time, receivers) float32, velocity (depth, x) float32 or None)``
    already on the dataset's geometry (arrays or views; the writer copies them once). ``release``, when
    given, closes the input files ``load`` opened (the writer calls it every block, so memory-mapped pages
    do not accumulate over a large input).

    Attributes:
        sample_id: the sample's number within its origin; ``(origin_index, sample_id)`` is its identity.
        source_index: index of its seismic file in the provenance sources (of the whole dataset).
        num_traces: traces read for it (progress).
        origin_index: index of its origin among the ``origins`` given to the writer (0-based there; the
            writer offsets it by the dataset's existing origins when appending).
        family: velocity-model family name (``schema.UNKNOWN_FAMILY`` when not known).
        source_positions_m / receiver_positions_m: ``(shots, 2)`` / ``(receivers, 2)`` ``(depth_m, x_m)`` of
            this sample in its grid's frame, after any regularisation; None = the dataset's nominal ones.
        x_origin_m: survey x of the sample's velocity-grid origin.
        start_time_s: time of the first stored time sample after the shot; None = the geometry's.
    """

    sample_id: int
    source_index: int
    num_traces: int
    load: Callable[[], tuple[np.ndarray, np.ndarray | None]]
    release: Callable[[], None] | None = None
    origin_index: int = 0
    family: str = schema.UNKNOWN_FAMILY
    source_positions_m: np.ndarray | None = None
    receiver_positions_m: np.ndarray | None = None
    x_origin_m: float = 0.0
    start_time_s: float | None = None


#: Yields the planned samples' ``(seismic, velocity or None)`` in the plans' order (see ``stream_samples``).
LoadSamples = Callable[[Sequence[SamplePlan]], Iterator[tuple[np.ndarray, np.ndarray | None]]]


@dataclass
class OriginRecord:
    """Where a group of samples comes from (provenance ``origins``): a synthesize folder, a file.

    Attributes:
        name: short name for messages and the per-family breakdown (folder or file name).
        kind: ``"synthesize"`` (a folder with a manifest), ``"segy"`` (a SEG-Y file), ``"openfwi"``.
        path: the folder or file.
        family: velocity-model family of its samples.
        grouping: how its traces were grouped into samples (said in words, e.g. "model id (byte 233)").
        engine_settings: every forward-modelling setting that produced its seismic (from the synthesize
            manifest; OpenFWI's published ones), or None when the input does not record them.
        models: what identifies its velocity models beyond the sample ids (synthesize: generator, family,
            parameters, seed and grid), so the same models are not ingested twice under two names.
        details: anything else worth recording (manifest seed and count, start-time alignment, ...).
    """

    name: str
    kind: str
    path: Path
    family: str = schema.UNKNOWN_FAMILY
    grouping: str = ""
    engine_settings: dict[str, Any] | None = None
    models: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "path": str(self.path),
            "family": self.family,
            "grouping": self.grouping,
            "engine_settings": self.engine_settings,
            "models": self.models,
            **self.details,
        }


@dataclass
class SourceRecord:
    """A provenance entry for one input file; ``sha256`` may still be computing in the background."""

    path: Path
    role: str
    size_bytes: int
    sha256: str | Future
    textual_header: str = ""

    @property
    def digest(self) -> str:
        """The SHA-256 hex digest (waits for the background hash if needed)."""
        return self.sha256 if isinstance(self.sha256, str) else self.sha256.result()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.path.name,
            "path": str(self.path),
            "role": self.role,
            "size_bytes": self.size_bytes,
            "sha256": self.digest,
            "textual_header": self.textual_header,
        }


class BackgroundHasher:
    """Hashes input files (SHA-256, for provenance) in one background thread.

    hashlib releases the GIL, so hashing overlaps with reading and writing samples instead of adding a
    pass over every byte in front of them. On leaving the context, hashes not yet started are cancelled
    (a failed run does not wait to hash everything).
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")

    def submit(self, path: Path) -> Future:
        # 1 MiB reads: a small buffer, reused from the allocator, and as fast as larger ones.
        return self._executor.submit(schema.file_sha256, path, 2**20)

    def __enter__(self) -> BackgroundHasher:
        return self

    def __exit__(self, *exc_info) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def _provenance(
    config: Any,
    records: Sequence[SourceRecord],
    origins: Sequence[dict[str, Any]],
    families: dict[str, dict[str, int]],
    created_by: str,
    history: list[dict],
) -> dict[str, Any]:
    return {
        "package_version": __version__,
        "segyio_version": importlib.metadata.version("segyio"),
        "h5py_version": h5py.__version__,
        "numpy_version": np.__version__,
        "created_by": created_by,
        "configuration": to_yaml(config),
        "config_hash": config_hash(config),
        "sources": [record.to_json() for record in records],
        "history": history,
        "origins": list(origins),
        "families": families,
        "engine_settings": shared_engine_settings(origins),
    }


def shared_engine_settings(origins: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The forward-modelling settings every origin that records them shares; ``{}`` if none or if they differ.

    Origins without settings (field data) do not count. Different settings are legal (each origin keeps
    its own in ``origins``) but a model trained on them has no single engine to re-simulate with: warned.
    """
    known = [origin["engine_settings"] for origin in origins if origin.get("engine_settings")]
    distinct = {json.dumps(settings, sort_keys=True) for settings in known}
    if len(distinct) == 1:
        return dict(known[0])
    if len(distinct) > 1:
        differing = sorted(
            key
            for key in set().union(*known)
            if len({json.dumps(settings.get(key), sort_keys=True) for settings in known}) > 1
        )
        logger.warning(
            "the samples were simulated with different engine settings (%s differ between origins): the "
            "dataset records each origin's in provenance origins and no dataset-wide engine_settings.",
            ", ".join(differing),
        )
    return {}


def check_duplicate_records(
    records: Sequence[SourceRecord], known: dict[str, str] | None = None, destination: Path | None = None
) -> None:
    """Refuses inputs with the same bytes as each other, or (``known``: sha256 -> name) as the dataset's.

    Waits for the background hashes. A different file name with the same bytes is the same data: the
    message says so, naming both files.
    """
    first: dict[str, SourceRecord] = {}
    for record in records:
        digest = record.digest
        if known and digest in known:
            raise UserError(
                f"{destination} already holds data from {known[digest]}; {record.path} has the same bytes "
                f"(SHA-256 {digest[:12]}...), so it was ingested before. Nothing was appended."
            )
        if digest in first:
            raise UserError(
                f"{first[digest].path} and {record.path} hold the same bytes (SHA-256 {digest[:12]}...): the same "
                "data given twice. Remove one of them."
            )
        first[digest] = record


def _head_tail_digest(path: Path, block_bytes: int = 2**20) -> str:
    """SHA-256 of a file's first and last MiB: a cheap test before hashing whole files."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(block_bytes))
        size = handle.seek(0, 2)
        handle.seek(max(0, size - block_bytes))
        digest.update(handle.read(block_bytes))
    return digest.hexdigest()


def early_duplicate_check(records: Sequence[SourceRecord]) -> None:
    """Refuses identical inputs before any sample is written, hashing only files that may be identical.

    Files of the same size whose first and last MiB agree are hashed whole now (and compared); every other
    file keeps being hashed in the background, and ``check_duplicate_records`` compares all of them again
    before the dataset is finalised.
    """
    by_size: dict[int, list[SourceRecord]] = defaultdict(list)
    for record in records:
        by_size[record.size_bytes].append(record)
    suspects: dict[tuple[int, str], list[SourceRecord]] = defaultdict(list)
    for size, group in by_size.items():
        if len(group) > 1:
            for record in group:
                suspects[(size, _head_tail_digest(record.path))].append(record)
    for group in suspects.values():
        if len(group) > 1:
            check_duplicate_records(group)


def check_same_models(
    origins: Sequence[dict[str, Any]], origin_of_sample: np.ndarray, sample_ids: np.ndarray
) -> None:
    """Refuses two origins that hold the same velocity models (same ``models`` identity, overlapping ids).

    Two synthesize folders of one family, seed and recipe generate the same model for the same id: their
    samples would put one label into the dataset twice (and possibly into train and test).
    """
    by_models: dict[str, list[int]] = defaultdict(list)
    for index, origin in enumerate(origins):
        if origin.get("models"):
            by_models[json.dumps(origin["models"], sort_keys=True)].append(index)
    for members in by_models.values():
        for i, first in enumerate(members):
            ids_first = set(sample_ids[origin_of_sample == first].tolist())
            for second in members[i + 1 :]:
                shared = sorted(ids_first & set(sample_ids[origin_of_sample == second].tolist()))
                if shared:
                    models = origins[first]["models"]
                    raise UserError(
                        f"{origins[second]['path']} and {origins[first]['path']} hold the same velocity models: "
                        f"{models.get('family')} seed {models.get('seed')}, model id(s) {shared[:5]}"
                        f"{'...' if len(shared) > 5 else ''} (same generator, recipe and grid). The same labels "
                        "would enter the dataset twice: synthesize one of them with another --seed."
                    )


def stream_samples(
    h5: h5py.File,
    plans: Sequence[SamplePlan],
    offset: int,
    geometry: DatasetGeometry,
    labelled: bool,
    train: np.ndarray,
    statistics: StatisticsAccumulator,
    edges_config: EdgeConfig,
    block_bytes: int,
    progress: bool,
    origin_offset: int = 0,
    load_samples: LoadSamples | None = None,
) -> None:
    """Reads the planned samples and writes them at ``offset``; accumulates the training statistics.

    ``load_samples`` yields each plan's ``(seismic, velocity)`` in order (default: each plan's ``load`` here;
    ``data_prep.ingest.cluster.cluster_loader`` reads them on Dask workers, a few chunks ahead).

    One sample at a time: its traces are copied once into a reused ``(shots, time, receivers)`` buffer
    (while they are still in the CPU cache) and written as one HDF5 chunk (the schema's chunk is one
    sample; without compression the chunk's bytes are written directly, skipping HDF5's per-call selection
    and conversion machinery). Velocity models and edges, small, are written in blocks of about
    ``block_bytes``; input files are closed after every block, so memory stays bounded by the block.
    """
    seismic_shape = (geometry.num_shots, geometry.num_samples, geometry.num_receivers)
    seismic_dataset = h5[schema.SEISMIC]
    buffer = np.empty(seismic_shape, dtype=np.float32)
    direct_chunks = (
        seismic_dataset.chunks == (1, *seismic_shape)
        and seismic_dataset.dtype == buffer.dtype
        and seismic_dataset.id.get_create_plist().get_nfilters() == 0
    )
    train_mask = np.zeros(offset + len(plans), dtype=bool)
    train_mask[train] = True
    grid_shape = tuple(geometry.grid_shape)
    block = max(1, block_bytes // max(1, buffer.nbytes))
    velocity_block = np.empty((min(block, len(plans)), *grid_shape), dtype=np.float32) if labelled else None
    releases: list[Callable[[], None]] = []  # of the plans read since the last flush
    loaded = load_samples(plans) if load_samples is not None else (plan.load() for plan in plans)

    def flush(stop: int) -> None:
        """Writes the velocity block ending at plan ``stop`` and closes the files read since the last flush."""
        start = (stop - 1) // block * block
        if labelled:
            where = slice(offset + start, offset + stop)
            h5[schema.VELOCITY][where] = velocity_block[: stop - start]
            h5[schema.EDGES][where] = edge_map(velocity_block[: stop - start], edges_config)
        for release in releases:
            release()
        releases.clear()

    try:
        with Progress(
            total=sum(plan.num_traces for plan in plans),
            unit="trace",
            unit_scale=True,
            desc="ingest",
            disable=not progress,
        ) as bar:
            for i, (plan, (seismic, model)) in enumerate(zip(plans, loaded, strict=True)):
                # The one copy of the samples: (shots, receivers, time) -> (shots, time, receivers).
                buffer[...] = seismic
                if labelled:
                    if model.shape != grid_shape:
                        raise UserError(
                            f"Velocity model {plan.sample_id} is {model.shape} (depth, x), the dataset's grid "
                            f"{grid_shape}."
                        )
                    velocity_block[i % block] = model
                if train_mask[offset + i]:
                    statistics.update(buffer[None], velocity_block[i % block][None] if labelled else None)
                if direct_chunks:
                    seismic_dataset.id.write_direct_chunk((offset + i, 0, 0, 0), buffer)
                else:
                    seismic_dataset[offset + i] = buffer
                if plan.release is not None:
                    releases.append(plan.release)
                if (i + 1) % block == 0 or i + 1 == len(plans):
                    flush(i + 1)
                bar.update(plan.num_traces)
    finally:
        for release in releases:
            release()
        if hasattr(loaded, "close"):
            loaded.close()  # a cluster loader cancels the chunks still in flight
    write_sample_fields(h5, plans, offset, geometry, origin_offset=origin_offset)


def write_sample_fields(
    h5: h5py.File, plans: Sequence[SamplePlan], offset: int, geometry: DatasetGeometry, origin_offset: int = 0
) -> None:
    """Writes the planned samples' identity, family, positions and start time at ``offset``."""
    where = slice(offset, offset + len(plans))
    h5[schema.SAMPLE_ID][where] = [plan.sample_id for plan in plans]
    h5[schema.SAMPLE_SOURCE][where] = [plan.source_index for plan in plans]
    h5[schema.SAMPLE_ORIGIN][where] = [origin_offset + plan.origin_index for plan in plans]
    h5[schema.SAMPLE_FAMILY][where] = [plan.family or schema.UNKNOWN_FAMILY for plan in plans]
    for name, nominal, attribute in (
        (schema.SAMPLE_SOURCE_POSITIONS, geometry.source_positions_m, "source_positions_m"),
        (schema.SAMPLE_RECEIVER_POSITIONS, geometry.receiver_positions_m, "receiver_positions_m"),
    ):
        h5[name][where] = (
            np.stack(
                [
                    np.asarray(
                        nominal if getattr(plan, attribute) is None else getattr(plan, attribute), np.float64
                    )
                    for plan in plans
                ]
            )
            if plans
            else np.empty((0, len(nominal), 2))
        )
    if plans and geometry.grid_extent_m() is not None:
        # Whatever planned them (ingest checks each sample), no labelled sample leaves its velocity grid.
        sources = h5[schema.SAMPLE_SOURCE_POSITIONS][where]
        receivers = h5[schema.SAMPLE_RECEIVER_POSITIONS][where]
        bad = np.flatnonzero(
            schema.outside_grid(sources, geometry).any(axis=1)
            | schema.outside_grid(receivers, geometry).any(axis=1)
        )
        if bad.size:
            index = int(bad[0])
            raise UserError(
                f"sample {plans[index].sample_id} (origin {plans[index].origin_index}): "
                + schema.describe_outside_grid(sources[index], receivers[index], geometry)
                + "."
            )
    h5[schema.SAMPLE_X_ORIGIN][where] = [float(plan.x_origin_m) for plan in plans]
    h5[schema.SAMPLE_START_TIME][where] = [
        geometry.start_time_s if plan.start_time_s is None else float(plan.start_time_s) for plan in plans
    ]


def _checked(stats: NormalizationStats, destination: Path) -> NormalizationStats:
    """``stats``, after a warning when the training velocities reach beyond the dataset's fixed range: a model
    trained on it could not predict them (``NormalizationStats.velocities_beyond``)."""
    beyond = stats.velocities_beyond()
    if beyond is not None:
        low, high = stats.covering_range_mps()
        logger.warning(
            "%s: %s, which the velocity normalisation maps to [-1, 1]: a model with a bounded output (tanh, the "
            "default) cannot predict them. Ingest with --set 'normalization.velocity_range_mps=[%g, %g]' to "
            "cover them, or null for the training split's own range.",
            destination, beyond, low, high,
        )  # fmt: skip
    return stats


def write_dataset(
    destination: str | Path,
    plans: Sequence[SamplePlan],
    geometry: DatasetGeometry,
    labelled: bool,
    records: Sequence[SourceRecord],
    config: Any,
    created_by: str,
    origins: Sequence[OriginRecord],
    load_samples: LoadSamples | None = None,
) -> Path:
    """Writes a new dataset atomically: temporary file, stream, splits, statistics, provenance, validate, rename.

    ``config`` must have ``splits``, ``normalization``, ``edges``, ``block_bytes``, ``compression`` and
    ``progress`` attributes (``IngestConfig``, ``OpenFWIConfig``). ``origins``: where the samples come from
    (``SamplePlan.origin_index`` indexes it). Splits are stratified by family; the per-family breakdown is
    logged and stored in the provenance.
    """
    destination = Path(destination)
    if not plans:
        raise UserError("No samples to write: the inputs hold no complete sample.")
    origin_entries = [origin.to_json() for origin in origins]
    early_duplicate_check(records)  # first: identical files are "the same data", whatever else they share
    check_same_models(
        origin_entries,
        np.asarray([plan.origin_index for plan in plans]),
        np.asarray([plan.sample_id for plan in plans]),
    )
    families = np.asarray([plan.family or schema.UNKNOWN_FAMILY for plan in plans])
    splits = make_splits(len(plans), config.splits.fractions, config.splits.seed, groups=families)
    statistics = StatisticsAccumulator(config.normalization)
    compression = None if config.compression == "none" else config.compression
    with atomic_output(destination) as temporary:
        with h5py.File(temporary, "w") as h5:
            schema.create_layout(h5, len(plans), geometry, labelled, compression=compression)
            stream_samples(
                h5,
                plans,
                0,
                geometry,
                labelled,
                splits["train"],
                statistics,
                config.edges,
                config.block_bytes,
                config.progress,
                load_samples=load_samples,
            )
            # Every input's hash is known now: identical inputs the early check could not suspect.
            check_duplicate_records(records)
            schema.write_splits(
                h5, splits, config.splits.seed, config.splits.fractions, stratified_by="family"
            )
            schema.write_normalization(
                h5, _checked(statistics.result(has_velocity=labelled), destination), splits["train"]
            )
            history = [{"action": "create", "num_samples": len(plans), "package_version": __version__}]
            breakdown = schema.family_breakdown(families, splits)
            schema.write_provenance(
                h5, _provenance(config, records, origin_entries, breakdown, created_by, history)
            )
        # Values were checked while streaming (finite seismic, positive velocity, edge_map's 0/1): the
        # structural check is what remains.
        schema.validate(temporary, check_values=False)
    logger.info("wrote %s: %d samples of %d families", destination, len(plans), len(breakdown))
    return destination


def append_samples(
    destination: Path,
    plans: Sequence[SamplePlan],
    records: Sequence[SourceRecord],
    config: Any,
    created_by: str,
    origins: Sequence[OriginRecord],
    load_samples: LoadSamples | None = None,
) -> Path:
    """Appends samples to an existing dataset in place; rolls back on failure (see the module docstring).

    The new ``origins`` are added after the dataset's (a sample's identity is its origin and id, so new
    inputs never clash with old sample ids); inputs whose bytes the dataset already holds, and velocity
    models it already holds, are refused. The new samples are split stratified by family.
    """
    if not plans:
        raise UserError("No samples to append: the inputs hold no complete sample.")
    with h5py.File(destination, "r+") as h5:
        check_schema_version(destination, schema.schema_version(h5))
        labelled = bool(h5.attrs["labelled"])
        if labelled != (plans and _plans_labelled(config)):
            raise UserError(
                f"{destination} is {'labelled' if labelled else 'unlabelled'}; the new inputs are "
                f"{'unlabelled' if labelled else 'labelled'}. Set require_velocity to match the dataset."
            )
        geometry = schema.read_geometry(h5)
        old_count = int(h5[schema.SEISMIC].shape[0])
        old_origins = schema.read_origins(h5)
        known = {
            entry["sha256"]: entry["name"] for entry in json.loads(h5[schema.PROVENANCE].attrs["sources"])
        }
        check_duplicate_records(records, known, destination)
        new_entries = [origin.to_json() for origin in origins]
        check_same_models(
            old_origins + new_entries,
            np.concatenate(
                [
                    schema.read_sample_origins(h5),
                    [len(old_origins) + plan.origin_index for plan in plans],
                ]
            ).astype(np.int64),
            np.concatenate([schema.read_sample_ids(h5), [plan.sample_id for plan in plans]]).astype(np.int64),
        )
        old_splits = schema.read_splits(h5)
        old_stats = schema.read_normalization(h5)
        split_attrs = dict(h5[schema.SPLITS].attrs)
        seed, fractions = int(split_attrs["seed"]), tuple(float(f) for f in split_attrs["fractions"])
        new_families = np.asarray([plan.family or schema.UNKNOWN_FAMILY for plan in plans])
        splits = extend_splits(old_splits, len(plans), fractions, seed, groups=new_families)
        statistics = StatisticsAccumulator(config.normalization, previous=old_stats)
        if (
            statistics.config.method != old_stats.method
            or statistics.config.seismic_transform != old_stats.seismic_transform
        ):
            raise UserError(
                f"{destination} was normalised with method={old_stats.method}, transform={old_stats.seismic_transform}; "
                "the configuration asks for another convention. Use the same normalization settings to append."
            )
        # The rollback record, then the write_in_progress flag; SIGTERM rolls back like Ctrl-C
        # (data_prep.append_journal: after a kill -9 the next append or --repair rolls back).
        begin_append(h5)
        restore_signals = install_termination_handler()
        try:
            schema.resize_samples(h5, old_count + len(plans))
            new_train = splits["train"][splits["train"] >= old_count]
            stream_samples(
                h5,
                plans,
                old_count,
                geometry,
                labelled,
                new_train,
                statistics,
                config.edges,
                config.block_bytes,
                config.progress,
                origin_offset=len(old_origins),
                load_samples=load_samples,
            )
            schema.write_splits(h5, splits, seed, fractions, stratified_by="family")
            schema.write_normalization(
                h5, _checked(statistics.result(has_velocity=labelled), destination), splits["train"]
            )
            provenance = schema.read_provenance(h5)
            provenance["sources"] = provenance["sources"] + [record.to_json() for record in records]
            provenance["origins"] = old_origins + new_entries
            provenance["families"] = schema.family_breakdown(schema.read_sample_families(h5), splits)
            provenance["engine_settings"] = shared_engine_settings(provenance["origins"])
            provenance["history"] = provenance["history"] + [
                {
                    "action": "append",
                    "num_samples": len(plans),
                    "package_version": __version__,
                    "configuration": to_yaml(config),
                }
            ]
            schema.write_provenance(h5, provenance)
        except BaseException:
            # Roll back: the old samples, splits, statistics, provenance and root attributes are restored.
            restore_signals()
            roll_back(h5)
            raise
        restore_signals()
        finish_append(h5)
    schema.validate(destination, check_values=False)
    logger.info("appended %d samples to %s (now %d)", len(plans), destination, old_count + len(plans))
    return destination


def check_schema_version(destination: Path, version: int) -> None:
    """Appending needs a dataset of the current schema (older ones are read, not extended)."""
    if version < schema.SCHEMA_VERSION:
        raise UserError(
            f"{destination} is a schema-version-{version} dataset (written by an earlier version); --append "
            f"writes version-{schema.SCHEMA_VERSION} fields (origins, families, positions, start times). Re-create "
            "the dataset from its inputs with this version, then append."
        )


def _plans_labelled(config: Any) -> bool:
    return bool(getattr(config, "require_velocity", True))
