"""Planning an ingest: scan every input's headers and decide, for each sample, what to read (``SamplePlan``).

``plan_segy_inputs`` resolves the inputs (``data_prep.ingest.inputs``), scans each SEG-Y file's headers
(``data_prep.segy_io.scan_segy``), groups shot files into samples (``data_prep.ingest.grouping``), indexes
the velocity models (``data_prep.ingest.velocity``), settles the dataset geometry and checks every input
against it (``data_prep.ingest.header_geometry``). Nothing is read beyond headers; each plan's ``load``
reads one sample (``load_shot_sample``) when the writer asks for it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from data_prep.dataset_writer import BackgroundHasher, SamplePlan, SourceRecord
from data_prep.ingest.config import IngestConfig
from data_prep.ingest.grouping import ShotFile, group_shot_file, grouping_fields
from data_prep.ingest.header_geometry import check_geometry, target_geometry
from data_prep.ingest.inputs import resolve_sources
from data_prep.ingest.velocity import VelocityIndex, check_velocity, index_velocity_npy, index_velocity_segy
from data_prep.regularization import interpolate_receivers, resample_time
from data_prep.schema import DatasetGeometry
from data_prep.segy_io import scan_segy
from pipeline.cli import UserError

logger = logging.getLogger(__name__)


def load_shot_sample(
    shot_file: ShotFile, sample: int, target: DatasetGeometry, config: IngestConfig
) -> np.ndarray:
    """Reads one sample as ``(shots, time, receivers)`` float32 on the target geometry."""
    indices = shot_file.trace_indices[sample]
    num_shots, num_receivers = indices.shape
    traces = shot_file.scan.read_traces(indices.ravel())
    # min/max propagate NaN and reach +-Inf: two reductions instead of a full boolean mask.
    if not (np.isfinite(traces.min()) and np.isfinite(traces.max())):
        finite = np.isfinite(traces)
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        trace = int(indices.ravel()[bad_rows[0]])
        where = (
            f"{shot_file.scan.path}: trace {trace + 1} (sample {shot_file.sample_ids[sample]}, "
            f"{config.grouping.shot_key} {shot_file.scan.headers[config.grouping.shot_key][trace]}, "
            f"{config.grouping.receiver_key} {shot_file.scan.headers[config.grouping.receiver_key][trace]})"
        )
        if config.nonfinite == "error":
            raise UserError(
                f"{where} holds NaN or Inf samples ({len(bad_rows)} bad trace(s) in this sample). Fix or drop "
                "them, or set --set nonfinite=zero to replace them with zeros."
            )
        logger.warning(
            "%s: %d NaN/Inf sample(s) replaced with 0 (nonfinite=zero).", where, int((~finite).sum())
        )
        traces = np.where(finite, traces, np.float32(0))
    gathers = traces.reshape(num_shots, num_receivers, -1).transpose(0, 2, 1)  # (shots, time, receivers)
    source = shot_file.geometry
    if (
        source.num_samples != target.num_samples
        or abs(source.sample_interval_s - target.sample_interval_s) > 1e-12
    ):
        gathers = resample_time(
            gathers, source.sample_interval_s, target.sample_interval_s, target.num_samples, axis=1
        )
    if (
        source.num_receivers != target.num_receivers
        or np.max(np.abs(source.receiver_positions_m - target.receiver_positions_m)) > 0.005
    ):
        gathers = interpolate_receivers(
            gathers, source.receiver_positions_m[:, 1], target.receiver_positions_m[:, 1], axis=2
        )
    # A (possibly transposed) view: the caller copies it into the block buffer once.
    return gathers


def plan_segy_inputs(
    sources: Sequence[str | Path],
    config: IngestConfig,
    reference: DatasetGeometry | None = None,
    source_offset: int = 0,
    hasher: BackgroundHasher | None = None,
) -> tuple[list[SamplePlan], DatasetGeometry, bool, list[SourceRecord]]:
    """Scans every input's headers and plans the samples to write (nothing is read beyond headers).

    Args:
        sources: files, directories, globs.
        config: the ingest configuration.
        reference: the existing dataset's geometry (append), or None to take it from the first input.
        source_offset: index of the first new provenance source (append).
        hasher: hashes the inputs in the background; without one they are hashed while scanning.

    Returns:
        ``(plans sorted by sample id, dataset geometry, labelled, provenance records)``.
    """
    resolved = resolve_sources(sources)
    records: list[SourceRecord] = []
    shot_files: list[tuple[ShotFile, int]] = []
    velocity = VelocityIndex()
    # Each file is grouped right after its scan, so only one file's full header columns exist at a time.
    for path, role in tqdm(resolved.segy, desc="scanning headers", unit="file", disable=not config.progress):
        scan = scan_segy(
            path,
            extra_fields=grouping_fields(config),
            sample_interval_override=config.sample_interval_us,
            compute_sha256=hasher is None,
        )
        is_velocity = (
            role == "velocity" if role else (scan.is_velocity_file or "velocity" in scan.path.name.lower())
        )
        records.append(
            SourceRecord(
                scan.path,
                "velocity" if is_velocity else "shots",
                scan.path.stat().st_size,
                hasher.submit(scan.path) if hasher else scan.sha256,
                scan.textual_header,
            )
        )
        if is_velocity:
            if config.require_velocity:
                index_velocity_segy(scan, velocity)
        else:
            shot_files.append((group_shot_file(scan, config), source_offset + len(records) - 1))
    if not shot_files:
        raise UserError("The inputs hold velocity models but no shot gathers: add the shot SEG-Y files.")
    if config.require_velocity and resolved.npy:
        records += index_velocity_npy(resolved.npy, velocity, config, hasher)
    elif resolved.npy:
        logger.warning("require_velocity=false: ignoring %d .npy input(s).", len(resolved.npy))

    # The dataset geometry: the existing dataset's, else the first input's (with the velocity grid).
    first = shot_files[0][0].geometry
    if reference is None:
        grid_spacing = velocity.grid_spacing_m if velocity.grid_spacing_m is not None else float("nan")
        reference = dataclasses.replace(
            first,
            grid_shape=velocity.grid_shape if (config.require_velocity and velocity.grid_shape) else (0, 0),
            grid_spacing_m=grid_spacing if config.require_velocity else float("nan"),
        )
        if resolved.manifest_geometry is not None:
            # A synthesize folder: headers and manifest must agree.
            differences = resolved.manifest_geometry.differences(reference)
            if differences:
                raise UserError(
                    "The SEG-Y headers disagree with manifest.json: "
                    + "; ".join(differences)
                    + ". The folder was modified after synthesize wrote it; regenerate it."
                )
        target = target_geometry(reference, config)
    else:
        target = reference
        if (
            config.require_velocity
            and velocity.grid_shape
            and tuple(velocity.grid_shape) != tuple(reference.grid_shape)
        ):
            raise UserError(
                f"The new velocity models are {velocity.grid_shape} (depth, x) cells, the dataset's "
                f"{tuple(reference.grid_shape)}."
            )
    if config.require_velocity and not np.isfinite(target.grid_spacing_m):
        raise UserError(
            "The velocity models' grid spacing is unknown (.npy files do not carry it): set --set grid_spacing_m=<m>."
        )
    for shot_file, _ in shot_files:
        candidate = dataclasses.replace(
            shot_file.geometry, grid_shape=target.grid_shape, grid_spacing_m=target.grid_spacing_m
        )
        check_geometry(target, candidate, str(shot_file.scan.path), config)

    plans: list[SamplePlan] = []
    seen: dict[int, str] = {}
    missing: list[tuple[int, Path]] = []
    for shot_file, source_index in shot_files:
        for sample, sample_id in enumerate(shot_file.sample_ids):
            sample_id = int(sample_id)
            if sample_id in seen:
                raise UserError(
                    f"Sample (model id) {sample_id} appears in {seen[sample_id]} and in {shot_file.scan.path}: "
                    "duplicate shots. Remove one of the inputs."
                )
            seen[sample_id] = str(shot_file.scan.path)
            velocity_loader = velocity.lookup.get(sample_id) if config.require_velocity else None
            if config.require_velocity and velocity_loader is None:
                missing.append((sample_id, shot_file.scan.path))
                continue

            def load(
                shot_file=shot_file, sample=sample, sample_id=sample_id, velocity_loader=velocity_loader
            ):
                seismic = load_shot_sample(shot_file, sample, target, config)
                model = None
                if velocity_loader is not None:
                    model = check_velocity(
                        np.asarray(velocity_loader(), dtype=np.float32), sample_id, velocity.origin[sample_id]
                    )
                return seismic, model

            velocity_scan = velocity.scans.get(sample_id) if velocity_loader is not None else None

            def release(shot_scan=shot_file.scan, velocity_scan=velocity_scan):
                shot_scan.close()
                if velocity_scan is not None:
                    velocity_scan.close()

            plans.append(
                SamplePlan(sample_id, source_index, int(shot_file.trace_indices[sample].size), load, release)
            )
    if missing:
        sample_id, path = missing[0]
        raise UserError(
            f"{path}: the shots of sample (model id) {sample_id} have no velocity model among the inputs "
            f"({len(missing)} sample(s) without one). Add the matching velocity file, or set "
            "--set require_velocity=false for an unlabelled (inference) dataset."
        )
    plans.sort(key=lambda plan: plan.sample_id)
    return plans, target, config.require_velocity, records
