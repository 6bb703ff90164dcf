"""Planning an ingest: scan every input's headers and decide, for each sample, what to read (``SamplePlan``).

``plan_segy_inputs`` resolves the inputs (``data_prep.ingest.inputs``), scans each SEG-Y file's headers
(``data_prep.segy_io.scan_segy``), groups shot files into samples (``data_prep.ingest.grouping``), indexes
the velocity models (``data_prep.ingest.velocity``), settles the dataset geometry and checks every input
against it (``data_prep.ingest.header_geometry``). Nothing is read beyond headers; each plan's ``load``
reads one sample (``load_shot_sample``) when the writer asks for it.

Origins and identity: a synthesize folder is one origin (its model ids pair its shots with its velocity
models); every other shot file is an origin of its own. A sample is identified by (origin, sample id), so
folders that each number their models from 1, and files that each number their shots from 1 (or carry no
shot numbers), ingest into one dataset. Each origin records its family, how its traces were grouped and
its forward-modelling settings.

Per-sample geometry: every sample keeps its own shot and receiver positions, in the frame of its velocity
grid (recorded x minus the x of the grid's first column, which a velocity SEG-Y file gives; 0 otherwise).
In a labelled dataset every position must lie inside the grid. The dataset's nominal geometry is the first
synthesize folder's (else the first sample's); positions that differ from it are accepted (and logged)
unless ``max_position_deviation_m`` says otherwise. Every trace's start time (the recording delay) must be
the dataset's, unless ``regularization.start_time_s`` aligns them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UserError
from core.progress import Progress
from data_prep import schema
from data_prep.dataset_writer import BackgroundHasher, OriginRecord, SamplePlan, SourceRecord
from data_prep.ingest.cluster import scan_on_cluster
from data_prep.ingest.config import IngestConfig
from data_prep.ingest.grouping import ShotFile, group_shot_file, grouping_fields
from data_prep.ingest.header_geometry import check_geometry, target_geometry
from data_prep.ingest.inputs import (
    ResolvedInputs,
    check_manifest_models,
    has_velocity_input,
    resolve_sources,
)
from data_prep.ingest.velocity import (
    LOOSE,
    VelocityIndex,
    check_velocity,
    index_velocity_npy,
    index_velocity_segy,
)
from data_prep.regularization import (
    align_start_times,
    interpolate_receivers,
    resample_time,
    start_time_shifts,
)
from data_prep.schema import DatasetGeometry
from data_prep.segy_io import scan_segy

logger = logging.getLogger(__name__)


def load_shot_sample(
    shot_file: ShotFile,
    sample: int,
    target: DatasetGeometry,
    config: IngestConfig,
    receiver_x_m: np.ndarray | None = None,
    start_shifts: np.ndarray | None = None,
) -> np.ndarray:
    """Reads one sample as ``(shots, time, receivers)`` float32 on the target geometry.

    Args:
        shot_file: the grouped file.
        sample: index of the sample in the file.
        target: the dataset's geometry (time axis, receivers).
        config: ``nonfinite`` handling.
        receiver_x_m: the sample's recorded receiver x in the grid frame, to interpolate from onto the
            target receivers (regularisation), or None to keep the recorded receivers.
        start_shifts: ``(shots, receivers)`` whole-sample shifts onto the target start time, or None.
    """
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
    if start_shifts is not None and np.any(start_shifts):
        gathers = align_start_times(gathers, start_shifts)
    if receiver_x_m is not None:
        gathers = interpolate_receivers(gathers, receiver_x_m, target.receiver_positions_m[:, 1], axis=2)
    # A (possibly transposed) view: the caller copies it into the block buffer once.
    return gathers


@dataclasses.dataclass
class _ShotInput:
    """A grouped shot file and where it belongs: provenance source, velocity pool and origin."""

    shot_file: ShotFile
    source_index: int
    pool: int  # index of its synthesize folder among the input groups, or LOOSE
    origin_index: int = -1


def plan_segy_inputs(
    sources: Sequence[str | Path],
    config: IngestConfig,
    reference: DatasetGeometry | None = None,
    source_offset: int = 0,
    hasher: BackgroundHasher | None = None,
    client: Any = None,
) -> tuple[list[SamplePlan], DatasetGeometry, bool, list[SourceRecord], list[OriginRecord]]:
    """Scans every input's headers and plans the samples to write (nothing is read beyond headers).

    Args:
        sources: files, directories, globs.
        config: the ingest configuration.
        reference: the existing dataset's geometry (append), or None to settle it from the inputs.
        source_offset: index of the first new provenance source (append).
        hasher: hashes the inputs in the background; without one they are hashed while scanning.
        client: a Dask client: the SEG-Y files are scanned (and hashed) on its workers, several at a time,
            and grouped here in input order (``data_prep.ingest.cluster``).

    Returns:
        ``(plans sorted by origin and sample id, dataset geometry, labelled, provenance records, origins)``;
        ``SamplePlan.origin_index`` indexes the origins returned.
    """
    resolved = resolve_sources(sources)
    if config.require_velocity and not has_velocity_input(resolved):
        _refuse_without_velocity(len(resolved.segy))
    records: list[SourceRecord] = []
    shot_inputs: list[_ShotInput] = []
    velocity = VelocityIndex()
    # Each file is grouped right after its scan, so only one file's full header columns exist at a time
    # (on a cluster: a few, the scans in flight).
    fields, override = grouping_fields(config), config.sample_interval_us
    if client is None:
        scans = (
            scan_segy(path, fields, override, compute_sha256=hasher is None) for path, _ in resolved.segy
        )
    else:
        scans = scan_on_cluster(client, [path for path, _ in resolved.segy], fields, override)
    for (path, role), scan in Progress(
        zip(resolved.segy, scans, strict=True),
        total=len(resolved.segy),
        desc="scanning headers",
        unit="file",
        disable=not config.progress,
    ):
        group = resolved.group_of.get(path)
        pool = LOOSE if group is None else group
        is_velocity = (
            role == "velocity" if role else (scan.is_velocity_file or "velocity" in scan.path.name.lower())
        )
        records.append(
            SourceRecord(
                scan.path,
                "velocity" if is_velocity else "shots",
                scan.path.stat().st_size,
                hasher.submit(scan.path) if hasher and not scan.sha256 else scan.sha256,
                scan.textual_header,
            )
        )
        if is_velocity:
            if config.require_velocity:
                index_velocity_segy(scan, velocity, pool)
        else:
            shot_file = group_shot_file(scan, config, listed_by_manifest=group is not None)
            shot_inputs.append(_ShotInput(shot_file, source_offset + len(records) - 1, pool))
    if not shot_inputs:
        raise UserError("The inputs hold velocity models but no shot gathers: add the shot SEG-Y files.")
    if config.require_velocity and resolved.npy:
        records += index_velocity_npy(resolved.npy, velocity, config, hasher)
    elif resolved.npy:
        logger.warning("require_velocity=false: ignoring %d .npy input(s).", len(resolved.npy))
    if config.require_velocity and not velocity.lookup:
        _refuse_without_velocity(len(shot_inputs))
    check_manifest_models(
        resolved,
        {
            entry.shot_file.scan.path: entry.shot_file.sample_ids
            for entry in shot_inputs
            if entry.pool != LOOSE
        },
        _velocity_ids_by_file(velocity) if config.require_velocity else None,
    )

    origins = _origins(shot_inputs, resolved, config)
    labelled = config.require_velocity
    target = _dataset_geometry(shot_inputs, resolved, velocity, reference, config)
    for entry in shot_inputs:
        shot_file = entry.shot_file
        if entry.pool != LOOSE:
            _check_against_manifest(shot_file, resolved, entry.pool)
        candidate = dataclasses.replace(
            shot_file.geometry, grid_shape=target.grid_shape, grid_spacing_m=target.grid_spacing_m
        )
        check_geometry(target, candidate, str(shot_file.scan.path), config)

    plans = _plan_samples(shot_inputs, origins, velocity, target, config)
    _warn_unused_velocity(shot_inputs, velocity)
    _log_positions(plans, target, len(origins))
    return plans, target, labelled, records, origins


def _refuse_without_velocity(num_files: int) -> None:
    """Shot gathers but no velocity model at all (the usual field case): say so, and how to go on."""
    raise UserError(
        f"No velocity model was found among the inputs ({num_files} SEG-Y file(s) of shot gathers, no velocity SEG-Y or "
        ".npy file): a training dataset pairs every sample with its velocity model. To ingest the shot gathers "
        "alone (an unlabelled dataset, e.g. for inference), add --set require_velocity=false; to train, add "
        "the velocity models (SEG-Y files from synthesize or named *velocity*, or .npy arrays with --set "
        "grid_spacing_m=<m>)."
    )


def _velocity_ids_by_file(velocity: VelocityIndex) -> dict[Path, list[int]]:
    """The model ids each velocity SEG-Y file of a synthesize folder holds (for the manifest check)."""
    ids: dict[Path, list[int]] = {}
    for (pool, model_id), origin in velocity.origin.items():
        if pool != LOOSE:
            ids.setdefault(Path(origin), []).append(model_id)
    return ids


def _warn_unused_velocity(shot_inputs: list[_ShotInput], velocity: VelocityIndex) -> None:
    """Velocity models whose shots are not among the inputs are left out: said, not silently dropped."""
    used = {(entry.pool, int(sample_id)) for entry in shot_inputs for sample_id in entry.shot_file.sample_ids}
    unused = sorted(key for key in velocity.lookup if key not in used)
    if unused:
        pool, model_id = unused[0]
        logger.warning(
            "%d velocity model(s) have no shot gathers among the inputs and were left out (first: model %d in %s). "
            "Add their shot files to ingest them.",
            len(unused),
            model_id,
            velocity.origin[(pool, model_id)],
        )


def _origins(
    shot_inputs: list[_ShotInput], resolved: ResolvedInputs, config: IngestConfig
) -> list[OriginRecord]:
    """One origin per synthesize folder and per other shot file, in input order; sets each input's index."""
    origins: list[OriginRecord] = []
    folder_origin: dict[int, int] = {}
    for entry in shot_inputs:
        if entry.pool != LOOSE:
            if entry.pool not in folder_origin:
                group = resolved.groups[entry.pool]
                folder_origin[entry.pool] = len(origins)
                origins.append(
                    OriginRecord(
                        name=group.directory.name,
                        kind="synthesize",
                        path=group.directory,
                        family=group.family or config.family or schema.UNKNOWN_FAMILY,
                        grouping=entry.shot_file.grouping,
                        engine_settings=group.engine_settings(),
                        models=group.models(),
                        details={
                            key: group.manifest[key]
                            for key in ("seed", "count", "package_version")
                            if key in group.manifest
                        },
                    )
                )
            entry.origin_index = folder_origin[entry.pool]
        else:
            entry.origin_index = len(origins)
            origins.append(
                OriginRecord(
                    name=entry.shot_file.scan.path.name,
                    kind="segy",
                    path=entry.shot_file.scan.path,
                    family=config.family or schema.UNKNOWN_FAMILY,
                    grouping=entry.shot_file.grouping,
                )
            )
    return origins


def _dataset_geometry(
    shot_inputs: list[_ShotInput],
    resolved: ResolvedInputs,
    velocity: VelocityIndex,
    reference: DatasetGeometry | None,
    config: IngestConfig,
) -> DatasetGeometry:
    """The dataset's geometry: the existing dataset's (append), else the first folder's or first sample's."""
    alignment = config.regularization.start_time_s
    if reference is not None:
        if (
            config.require_velocity
            and velocity.grid_shape
            and tuple(velocity.grid_shape) != tuple(reference.grid_shape)
        ):
            raise UserError(
                f"The new velocity models are {velocity.grid_shape} (depth, x) cells, the dataset's "
                f"{tuple(reference.grid_shape)}."
            )
        if alignment is not None and abs(alignment - reference.start_time_s) > 1e-9:
            raise UserError(
                f"regularization.start_time_s={alignment:g} s, but the dataset's time axis starts at "
                f"{reference.start_time_s:g} s: appended samples are aligned to the dataset's. Set "
                f"regularization.start_time_s={reference.start_time_s:g} (or leave it unset)."
            )
        target = reference
    else:
        first = shot_inputs[0]
        nominal = resolved.manifest_geometry
        if nominal is None:
            # The first sample's positions in its grid's frame.
            x_origin = velocity.x_origin_m.get((first.pool, int(first.shot_file.sample_ids[0])), 0.0)
            shift = np.array([0.0, x_origin if config.require_velocity else 0.0])
            nominal = dataclasses.replace(
                first.shot_file.geometry,
                source_positions_m=first.shot_file.source_positions_m[0] - shift,
                receiver_positions_m=first.shot_file.receiver_positions_m[0] - shift,
            )
        grid_spacing = velocity.grid_spacing_m if velocity.grid_spacing_m is not None else float("nan")
        reference = dataclasses.replace(
            nominal,
            sample_interval_s=first.shot_file.geometry.sample_interval_s,
            num_samples=first.shot_file.geometry.num_samples,
            grid_shape=velocity.grid_shape if (config.require_velocity and velocity.grid_shape) else (0, 0),
            grid_spacing_m=grid_spacing if config.require_velocity else float("nan"),
            start_time_s=float(first.shot_file.start_times_s.flat[0])
            if alignment is None
            else float(alignment),
        )
        target = target_geometry(reference, config)
    if config.require_velocity and not np.isfinite(target.grid_spacing_m):
        raise UserError(
            "The velocity models' grid spacing is unknown (.npy files do not carry it): set --set grid_spacing_m=<m>."
        )
    return target


def _check_against_manifest(shot_file: ShotFile, resolved: ResolvedInputs, pool: int) -> None:
    """A synthesize folder's headers must say what its manifest says (positions and time axis)."""
    group = resolved.groups[pool]
    if group.geometry is None:
        return
    recorded = dataclasses.replace(group.geometry, start_time_s=shot_file.geometry.start_time_s)
    grid = {"grid_shape": group.geometry.grid_shape, "grid_spacing_m": group.geometry.grid_spacing_m}
    differences = recorded.differences(dataclasses.replace(shot_file.geometry, **grid), positions=False)
    if not differences:
        # Every sample's positions at once; the first sample that differs is described.
        deviation = np.maximum(
            np.abs(shot_file.source_positions_m - recorded.source_positions_m).max(axis=(1, 2)),
            np.abs(shot_file.receiver_positions_m - recorded.receiver_positions_m).max(axis=(1, 2)),
        )
        bad = np.flatnonzero(deviation > schema.POSITION_TOLERANCE_M)
        if bad.size:
            sample = int(bad[0])
            candidate = dataclasses.replace(
                shot_file.geometry,
                source_positions_m=shot_file.source_positions_m[sample],
                receiver_positions_m=shot_file.receiver_positions_m[sample],
                **grid,
            )
            differences = [
                f"model {int(shot_file.sample_ids[sample])}: {text}"
                for text in recorded.differences(candidate)
            ]
    if differences:
        raise UserError(
            f"The SEG-Y headers of {shot_file.scan.path} disagree with {group.directory / 'manifest.json'}: "
            + "; ".join(differences)
            + ". The folder was modified after synthesize wrote it; regenerate it."
        )


def _plan_samples(
    shot_inputs: list[_ShotInput],
    origins: list[OriginRecord],
    velocity: VelocityIndex,
    target: DatasetGeometry,
    config: IngestConfig,
) -> list[SamplePlan]:
    """One ``SamplePlan`` per sample: identity, velocity pairing, positions in the grid, start-time alignment."""
    labelled = config.require_velocity
    align = config.regularization.start_time_s is not None
    plans: list[SamplePlan] = []
    seen: dict[tuple[int, int], str] = {}
    loose_ids: dict[int, str] = {}  # labelled loose files are paired with velocity models by id
    missing: list[tuple[int, Path]] = []
    for entry in shot_inputs:
        shot_file, origin = entry.shot_file, origins[entry.origin_index]
        path = shot_file.scan.path
        for sample, sample_id in enumerate(shot_file.sample_ids):
            sample_id = int(sample_id)
            identity = (entry.origin_index, sample_id)
            if identity in seen:
                raise UserError(
                    f"{origin.path}: sample (model id) {sample_id} appears twice, in {seen[identity]} and in {path}: "
                    "the folder holds two versions of one model. Regenerate it with synthesize."
                )
            seen[identity] = str(path)
            if labelled and entry.pool == LOOSE:
                if sample_id in loose_ids and loose_ids[sample_id] != str(path):
                    raise UserError(
                        f"Sample id {sample_id} appears in {loose_ids[sample_id]} and in {path} (each file numbers its "
                        "samples on its own), so velocity models given as separate files cannot be paired with them "
                        "by id. Ingest each file with its velocity models on its own (then --append the next), put "
                        "each survey in a synthesize folder, or set --set require_velocity=false."
                    )
                loose_ids[sample_id] = str(path)
            key = (entry.pool, sample_id)
            velocity_loader = velocity.lookup.get(key) if labelled else None
            if labelled and velocity_loader is None:
                missing.append((sample_id, path))
                continue
            x_origin = velocity.x_origin_m.get(key, 0.0) if labelled else 0.0
            shift = np.array([0.0, x_origin])
            sources = shot_file.source_positions_m[sample] - shift
            receivers = shot_file.receiver_positions_m[sample] - shift
            receiver_x = None
            if config.regularization.enabled and (
                len(receivers) != target.num_receivers
                or np.max(np.abs(receivers - target.receiver_positions_m)) > schema.POSITION_TOLERANCE_M
            ):
                receiver_x, receivers = (
                    receivers[:, 1],
                    np.array(target.receiver_positions_m, dtype=np.float64),
                )
            where = f"{path}: sample {sample_id}"
            if labelled:
                outside = schema.describe_outside_grid(sources, receivers, target)
                if outside:
                    raise UserError(
                        f"{where}: {outside}. Check the coordinates and their scalar (bytes 73, 81, 71) and the "
                        "velocity model's extent; shots and receivers outside the model cannot be simulated or "
                        "learnt from."
                    )
            if config.max_position_deviation_m is not None and len(receivers) == target.num_receivers:
                deviation = _deviation_m(sources, receivers, target)
                if deviation > config.max_position_deviation_m:
                    raise UserError(
                        f"{where}: its shots or receivers lie up to {deviation:g} m from the dataset's nominal "
                        f"positions, more than max_position_deviation_m={config.max_position_deviation_m:g}. Ingest "
                        "it into another dataset, or raise the limit."
                    )
            starts = shot_file.start_times_s[sample]
            shifts = None
            if align:
                try:
                    shifts = start_time_shifts(starts, target.start_time_s, target.sample_interval_s, where)
                except ValueError as error:
                    raise UserError(str(error)) from None
            elif np.any(np.abs(starts - target.start_time_s) > 1e-9):
                low, high = float(starts.min()), float(starts.max())
                recorded = (
                    f"{low * 1e3:g} ms" if high - low <= 1e-9 else f"{low * 1e3:g} to {high * 1e3:g} ms"
                )
                raise UserError(
                    f"{where}: its traces start {recorded} after the shot (DelayRecordingTime, byte 109), the "
                    f"dataset's time axis at {target.start_time_s * 1e3:g} ms: samples with different recording "
                    "delays cannot share one time axis. Align them with --set regularization.start_time_s=0 (shifts "
                    "each trace by whole samples, zero-filling what was not recorded), or ingest them into "
                    "separate datasets."
                )
            velocity_origin = velocity.origin.get(key)

            def load(
                shot_file=shot_file,
                sample=sample,
                key=key,
                receiver_x=receiver_x,
                shifts=shifts,
                velocity_loader=velocity_loader,
                velocity_origin=velocity_origin,
            ):
                # Reads only what it captures (no index of every input): it may run on a Dask worker.
                seismic = load_shot_sample(shot_file, sample, target, config, receiver_x, shifts)
                model = None
                if velocity_loader is not None:
                    model = check_velocity(
                        np.asarray(velocity_loader(), dtype=np.float32), key[1], velocity_origin
                    )
                return seismic, model

            velocity_scan = velocity.scans.get(key) if velocity_loader is not None else None

            def release(shot_scan=shot_file.scan, velocity_scan=velocity_scan):
                shot_scan.close()
                if velocity_scan is not None:
                    velocity_scan.close()

            plans.append(
                SamplePlan(
                    sample_id,
                    entry.source_index,
                    int(shot_file.trace_indices[sample].size),
                    load,
                    release,
                    origin_index=entry.origin_index,
                    family=origin.family,
                    source_positions_m=sources,
                    receiver_positions_m=receivers,
                    x_origin_m=x_origin,
                    start_time_s=target.start_time_s,
                )
            )
    if missing:
        sample_id, path = missing[0]
        raise UserError(
            f"{path}: the shots of sample (model id) {sample_id} have no velocity model among the inputs "
            f"({len(missing)} sample(s) without one). Add the matching velocity file, or set "
            "--set require_velocity=false for an unlabelled (inference) dataset."
        )
    plans.sort(key=lambda plan: (plan.origin_index, plan.sample_id))
    return plans


def _deviation_m(sources: np.ndarray, receivers: np.ndarray, target: DatasetGeometry) -> float:
    """Largest distance (metres) of a shot or receiver from its nominal position."""
    return float(
        max(
            np.max(np.hypot(*(sources - target.source_positions_m).T), initial=0.0),
            np.max(np.hypot(*(receivers - target.receiver_positions_m).T), initial=0.0),
        )
    )


def _log_positions(plans: list[SamplePlan], target: DatasetGeometry, num_origins: int) -> None:
    """Says how far the samples' own positions lie from the nominal geometry (they are stored per sample)."""
    deviations = np.array(
        [
            _deviation_m(plan.source_positions_m, plan.receiver_positions_m, target)
            if plan.receiver_positions_m is not None
            and len(plan.receiver_positions_m) == target.num_receivers
            else 0.0
            for plan in plans
        ]
    )
    moved = deviations > schema.POSITION_TOLERANCE_M
    if not moved.any():
        return
    half_cell = (
        target.grid_spacing_m / 2 if np.isfinite(target.grid_spacing_m) else schema.POSITION_TOLERANCE_M
    )
    level = logging.WARNING if deviations.max() > half_cell else logging.INFO
    logger.log(
        level,
        "%d of %d samples (from %d origin(s)) have shots or receivers away from the nominal geometry, by up to "
        "%g m; each sample's positions are stored with it (sample_source_positions_m, "
        "sample_receiver_positions_m). Set max_position_deviation_m to refuse such samples.",
        int(moved.sum()),
        len(plans),
        num_origins,
        float(deviations.max()),
    )
