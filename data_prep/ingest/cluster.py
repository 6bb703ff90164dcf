"""Ingest on a Dask cluster (``--scheduler``): inputs scanned and samples read on the workers, one writer here.

``python -m data_prep.ingest ... --scheduler ADDRESS|local:N`` runs the two reading passes of an ingest on
the workers and keeps everything else in this process:

* ``scan_on_cluster``: each SEG-Y file's headers are scanned (and the file hashed) by a worker, a few files
  at a time; the scans come back in input order and are grouped, checked and planned here, as in-process.
* ``cluster_loader``: the planned samples are read by the workers in chunks of consecutive samples (about
  ``block_bytes`` each), at most ``max_in_flight`` chunks submitted and not yet written; the writer
  (``data_prep.dataset_writer.stream_samples``, the only one: HDF5 is single-writer) takes them in order.

The dataset is the one the in-process run writes: the same samples in the same order, the same splits
and statistics. The workers must see the input files at the same paths (a shared file system); relative
paths are made absolute before they travel. Dask glue (backpressure, retries, order, log relay):
``core.distributed``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.distributed import ordered_results, total_threads
from data_prep.dataset_writer import SamplePlan
from data_prep.segy_io import SegyScan, scan_segy

#: Chunks read ahead of the writer, at most (per cluster, whatever its size: the writer is one process).
MAX_IN_FLIGHT = 8


def _scan_task(work: tuple[str, tuple[str, ...], float | None]) -> SegyScan:
    path, fields, override = work
    return scan_segy(path, fields, override, compute_sha256=True)


def scan_on_cluster(
    client: Any, paths: Sequence[Path], extra_fields: Sequence[str], sample_interval_override: float | None
) -> Iterator[SegyScan]:
    """``scan_segy`` of each path (hashed) on the workers, yielded in the paths' order, with the paths as given."""
    work = [(os.path.abspath(path), tuple(extra_fields), sample_interval_override) for path in paths]
    window = min(MAX_IN_FLIGHT, 2 * total_threads(client))
    for path, scan in zip(
        paths,
        ordered_results(client, _scan_task, work, name="ingest-scan", max_in_flight=window),
        strict=True,
    ):
        scan.path = Path(path)  # as the user named it, for messages and the provenance
        yield scan


def _load_task(loads: list[tuple[Callable, Callable | None]]) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Reads a chunk of samples on a worker (contiguous copies: views of a file's pages do not travel)."""
    samples = []
    try:
        for load, _ in loads:
            seismic, model = load()
            samples.append(
                (np.ascontiguousarray(seismic), None if model is None else np.ascontiguousarray(model))
            )
    finally:
        for _, release in loads:
            if release is not None:
                release()
    return samples


def cluster_loader(
    client: Any, sample_bytes: int, block_bytes: int, max_in_flight: int | None = None
) -> Callable[[Sequence[SamplePlan]], Iterator[tuple[np.ndarray, np.ndarray | None]]]:
    """A ``load_samples`` for ``write_dataset`` / ``append_samples``: the plans' ``load`` run on the workers.

    Args:
        client: a ``distributed.Client``.
        sample_bytes: bytes of one sample's seismic (to size the chunks).
        block_bytes: about this many bytes per chunk (``IngestConfig.block_bytes``).
        max_in_flight: chunks submitted and not yet written (default: twice the workers' threads, at most
            ``MAX_IN_FLIGHT``).
    """
    per_chunk = max(1, block_bytes // max(1, sample_bytes))
    window = max_in_flight or min(MAX_IN_FLIGHT, 2 * total_threads(client))

    def load_samples(plans: Sequence[SamplePlan]) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        chunks = [
            [(plan.load, plan.release) for plan in plans[start : start + per_chunk]]
            for start in range(0, len(plans), per_chunk)
        ]
        for samples in ordered_results(client, _load_task, chunks, name="ingest-read", max_in_flight=window):
            yield from samples

    return load_samples


__all__ = ["MAX_IN_FLIGHT", "cluster_loader", "scan_on_cluster"]
