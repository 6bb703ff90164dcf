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

Memory is bounded: seismic is streamed one sample at a time (one HDF5 chunk each), velocity models and edges
are written in blocks of about ``block_bytes``, and input files are released after every block.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm.auto import tqdm

from data_prep import schema
from data_prep.atomic import atomic_output
from data_prep.edges import EdgeConfig, edge_map
from data_prep.normalization import StatisticsAccumulator
from data_prep.schema import DatasetGeometry
from data_prep.splits import extend_splits, make_splits
from pipeline import __version__
from pipeline.cli import UserError
from pipeline.config import config_hash, to_yaml

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitConfig:
    """Seeded train/val/test fractions (see ``data_prep.splits``)."""

    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0


@dataclass
class SamplePlan:
    """One sample to write: where its seismic and velocity come from.

    ``load`` returns ``(seismic (shots, time, receivers) float32, velocity (depth, x) float32 or None)``
    already on the dataset's geometry (arrays or views; the writer copies them once). ``release``, when
    given, closes the input files ``load`` opened (the writer calls it every block, so memory-mapped pages
    do not accumulate over a large input).
    """

    sample_id: int
    source_index: int
    num_traces: int
    load: Callable[[], tuple[np.ndarray, np.ndarray | None]]
    release: Callable[[], None] | None = None


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
    config: Any, records: Sequence[SourceRecord], created_by: str, history: list[dict]
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
    }


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
) -> None:
    """Reads the planned samples and writes them at ``offset``; accumulates the training statistics.

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
        with tqdm(
            total=sum(plan.num_traces for plan in plans),
            unit="trace",
            unit_scale=True,
            desc="ingest",
            disable=not progress,
        ) as bar:
            for i, plan in enumerate(plans):
                seismic, model = plan.load()
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
    where = slice(offset, offset + len(plans))
    h5[schema.SAMPLE_ID][where] = [plan.sample_id for plan in plans]
    h5[schema.SAMPLE_SOURCE][where] = [plan.source_index for plan in plans]


def write_dataset(
    destination: str | Path,
    plans: Sequence[SamplePlan],
    geometry: DatasetGeometry,
    labelled: bool,
    records: Sequence[SourceRecord],
    config: Any,
    created_by: str,
) -> Path:
    """Writes a new dataset atomically: temporary file, stream, splits, statistics, provenance, validate, rename.

    ``config`` must have ``splits``, ``normalization``, ``edges``, ``block_bytes``, ``compression`` and
    ``progress`` attributes (``IngestConfig``, ``OpenFWIConfig``).
    """
    destination = Path(destination)
    if not plans:
        raise UserError("No samples to write: the inputs hold no complete sample.")
    splits = make_splits(len(plans), config.splits.fractions, config.splits.seed)
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
            )
            schema.write_splits(h5, splits, config.splits.seed, config.splits.fractions)
            schema.write_normalization(h5, statistics.result(has_velocity=labelled), splits["train"])
            history = [{"action": "create", "num_samples": len(plans), "package_version": __version__}]
            schema.write_provenance(h5, _provenance(config, records, created_by, history))
        # Values were checked while streaming (finite seismic, positive velocity, edge_map's 0/1): the
        # structural check is what remains.
        schema.validate(temporary, check_values=False)
    logger.info("wrote %s: %d samples", destination, len(plans))
    return destination


def append_samples(
    destination: Path,
    plans: Sequence[SamplePlan],
    records: Sequence[SourceRecord],
    config: Any,
    created_by: str,
) -> Path:
    """Appends samples to an existing dataset in place; rolls back on failure (see the module docstring)."""
    if not plans:
        raise UserError("No samples to append: the inputs hold no complete sample.")
    with h5py.File(destination, "r+") as h5:
        labelled = bool(h5.attrs["labelled"])
        if labelled != (plans and _plans_labelled(config)):
            raise UserError(
                f"{destination} is {'labelled' if labelled else 'unlabelled'}; the new inputs are "
                f"{'unlabelled' if labelled else 'labelled'}. Set require_velocity to match the dataset."
            )
        geometry = schema.read_geometry(h5)
        old_count = int(h5[schema.SEISMIC].shape[0])
        existing_ids = set(h5[schema.SAMPLE_ID][()].tolist())
        clash = [plan.sample_id for plan in plans if plan.sample_id in existing_ids]
        if clash:
            raise UserError(
                f"{destination} already holds sample (model) id(s) {clash[:5]}{'...' if len(clash) > 5 else ''}: "
                "these inputs (or some of them) were ingested before."
            )
        known = {
            entry["sha256"]: entry["name"] for entry in json.loads(h5[schema.PROVENANCE].attrs["sources"])
        }
        repeated = [
            f"{record.path.name} (= {known[record.digest]})" for record in records if record.digest in known
        ]
        if repeated:
            raise UserError(
                f"{destination} already holds data from {', '.join(repeated)} (same SHA-256): nothing appended."
            )
        old_splits = schema.read_splits(h5)
        old_stats = schema.read_normalization(h5)
        old_provenance = {key: h5[schema.PROVENANCE].attrs[key] for key in h5[schema.PROVENANCE].attrs}
        split_attrs = dict(h5[schema.SPLITS].attrs)
        seed, fractions = int(split_attrs["seed"]), tuple(float(f) for f in split_attrs["fractions"])
        splits = extend_splits(old_splits, len(plans), fractions, seed)
        statistics = StatisticsAccumulator(config.normalization, previous=old_stats)
        if (
            statistics.config.method != old_stats.method
            or statistics.config.seismic_transform != old_stats.seismic_transform
        ):
            raise UserError(
                f"{destination} was normalised with method={old_stats.method}, transform={old_stats.seismic_transform}; "
                "the configuration asks for another convention. Use the same normalization settings to append."
            )
        h5.attrs["write_in_progress"] = True
        h5.flush()
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
            )
            schema.write_splits(h5, splits, seed, fractions)
            schema.write_normalization(h5, statistics.result(has_velocity=labelled), splits["train"])
            provenance = schema.read_provenance(h5)
            provenance["sources"] = provenance["sources"] + [record.to_json() for record in records]
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
            # Roll back: the old samples, splits, statistics and provenance are restored.
            schema.resize_samples(h5, old_count)
            schema.write_splits(h5, old_splits, seed, fractions)
            schema.write_normalization(h5, old_stats, old_splits["train"])
            for key, value in old_provenance.items():
                h5[schema.PROVENANCE].attrs[key] = value
            del h5.attrs["write_in_progress"]
            raise
        del h5.attrs["write_in_progress"]
    schema.validate(destination, check_values=False)
    logger.info("appended %d samples to %s (now %d)", len(plans), destination, old_count + len(plans))
    return destination


def _plans_labelled(config: Any) -> bool:
    return bool(getattr(config, "require_velocity", True))
