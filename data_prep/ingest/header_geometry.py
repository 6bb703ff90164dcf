"""Acquisition geometry from SEG-Y trace headers, and agreement of an input's geometry with the dataset's.

Used by ``data_prep.ingest``: ``geometry_from_headers`` reads each sample's source and receiver positions
(metres, scaled by the header scalars), every trace's start time (the recording delay) and the time axis of
a grouped shot file, refusing inconsistent headers (or assuming ``fallback_geometry`` when there are no
coordinates); ``target_geometry`` applies the configured regularisation targets, and ``check_geometry``
refuses an input whose time axis, shot or receiver count or grid differs from the target unless
regularisation can fix it. Positions may differ from sample to sample (samples cut from different places
of a line, slightly different spreads): each sample keeps its own, checked by the plan against the
velocity grid.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from core.errors import UserError
from data_prep.ingest.config import IngestConfig
from data_prep.schema import DatasetGeometry
from data_prep.segy_io import SegyScan

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class FilePositions:
    """What the headers of a grouped shot file say about where and when each sample was recorded.

    Attributes:
        nominal: the file's geometry with its first sample's positions and first trace's start time.
        source_positions_m: ``(samples, shots, 2)`` ``(depth_m, x_m)`` as recorded (survey coordinates).
        receiver_positions_m: ``(samples, receivers, 2)``: one spread per sample, the same for its shots.
        start_times_s: ``(samples, shots, receivers)`` time after the shot of each trace's first sample.
    """

    nominal: DatasetGeometry
    source_positions_m: np.ndarray
    receiver_positions_m: np.ndarray
    start_times_s: np.ndarray


def geometry_from_headers(scan: SegyScan, trace_indices: np.ndarray, config: IngestConfig) -> FilePositions:
    """Every sample's positions and every trace's start time from the headers of a grouped shot file.

    Within a sample, the traces of one shot must agree about its position and every shot must use the same
    receivers (a moving spread within a sample is refused); between samples positions may differ.

    Args:
        scan: the file's scanned headers.
        trace_indices: ``(samples, shots, receivers)`` file trace indices (``group_shot_file``).
        config: ``fallback_geometry`` for files without coordinates.
    """
    path = scan.path
    source_x, group_x = scan.source_x_m()[trace_indices], scan.group_x_m()[trace_indices]
    source_z, group_z = scan.source_depth_m()[trace_indices], scan.receiver_depth_m()[trace_indices]
    uniform_start = scan.uniform_start_time_s
    if uniform_start is not None:  # the usual case: no memory per trace
        start_times = np.broadcast_to(np.float64(uniform_start), trace_indices.shape)
    else:
        start_times = scan.start_time_s(trace_indices.ravel()).reshape(trace_indices.shape)
    sample_interval_s = scan.sample_interval * 1e-6
    num_samples_in_file, num_shots, num_receivers = trace_indices.shape
    no_coordinates = not np.any(source_x) and not np.any(group_x)
    if no_coordinates or (num_receivers > 1 and np.all(group_x == group_x[..., :1])):
        fallback = config.fallback_geometry
        if fallback is None:
            raise UserError(
                f"{path}: missing geometry: the receiver x coordinates (bytes 81, GroupX) are "
                f"{'0' if no_coordinates else 'identical'} in every trace, so receiver positions are unknown. "
                "Write coordinates into the headers, or give the survey layout with --set fallback_geometry=... "
                "(see configs/data/ingest.yaml)."
            )
        if (fallback.num_sources, fallback.num_receivers) != (num_shots, num_receivers):
            raise UserError(
                f"{path}: fallback_geometry has {fallback.num_sources} shots and {fallback.num_receivers} receivers, "
                f"the file {num_shots} shots and {num_receivers} receivers per sample."
            )
        logger.warning("%s: no coordinates in the trace headers; assumed fallback_geometry (repair).", path)
        nominal = dataclasses.replace(
            DatasetGeometry.from_acquisition(fallback),
            sample_interval_s=sample_interval_s,
            num_samples=scan.num_samples,
            grid_spacing_m=float("nan"),
            grid_shape=(0, 0),
            start_time_s=float(start_times.flat[0]),
        )
        return FilePositions(
            nominal=nominal,
            source_positions_m=np.broadcast_to(
                nominal.source_positions_m, (num_samples_in_file, num_shots, 2)
            ).copy(),
            receiver_positions_m=np.broadcast_to(
                nominal.receiver_positions_m, (num_samples_in_file, num_receivers, 2)
            ).copy(),
            start_times_s=start_times,
        )
    # A shot's source sits in one place; a sample's receivers are the same for every shot of the sample.
    for label, values in (("source x", source_x), ("source depth", source_z)):
        spread = np.ptp(values, axis=2)
        if np.any(spread > 0.005):
            sample, shot = np.unravel_index(int(np.argmax(spread)), spread.shape)
            raise UserError(
                f"{path}: the traces of shot {shot + 1} of sample {sample + 1} disagree about the {label} "
                f"(spread {spread[sample, shot]:g} m): the headers are inconsistent."
            )
    for label, values in (("receiver x", group_x), ("receiver depth", group_z)):
        spread = np.ptp(values, axis=1)  # (samples, receivers): across the shots of each sample
        if np.any(spread > 0.005):
            sample, receiver = np.unravel_index(int(np.argmax(spread)), spread.shape)
            raise UserError(
                f"{path}: receiver {receiver + 1} ({config.grouping.receiver_key} order) of sample {sample + 1} has "
                f"a {label} that changes between its shots by {spread[sample, receiver]:g} m. Moving spreads are not "
                "supported: every shot of a sample must use the same receivers (regularise the data before "
                "ingesting)."
            )
    sources = np.stack([source_z[:, :, 0], source_x[:, :, 0]], axis=-1)  # (samples, shots, 2)
    receivers = np.stack([group_z[:, 0], group_x[:, 0]], axis=-1)  # (samples, receivers, 2)
    return FilePositions(
        nominal=DatasetGeometry(
            source_positions_m=sources[0],
            receiver_positions_m=receivers[0],
            sample_interval_s=sample_interval_s,
            num_samples=scan.num_samples,
            start_time_s=float(start_times.flat[0]),
        ),
        source_positions_m=sources,
        receiver_positions_m=receivers,
        start_times_s=start_times,
    )


def target_geometry(reference: DatasetGeometry, config: IngestConfig) -> DatasetGeometry:
    """The reference geometry with the configured regularisation targets applied."""
    regularization = config.regularization
    if not regularization.enabled:
        return reference
    receivers = reference.receiver_positions_m
    if regularization.receiver_x_m is not None:
        depth = float(np.median(receivers[:, 0])) if len(receivers) else 0.0
        receivers = np.stack(
            [np.full(len(regularization.receiver_x_m), depth), regularization.receiver_x_m], axis=1
        )
    return dataclasses.replace(
        reference,
        sample_interval_s=regularization.sample_interval_s or reference.sample_interval_s,
        num_samples=regularization.num_samples or reference.num_samples,
        receiver_positions_m=np.asarray(receivers, dtype=np.float64),
    )


def check_geometry(
    target: DatasetGeometry, candidate: DatasetGeometry, origin: str, config: IngestConfig
) -> None:
    """Refuses an input whose time axis, shot or receiver count or grid differs from the target, unless
    regularisation can fix it.

    Positions are not compared here (each sample keeps its own; the plan checks them against the grid),
    nor start times (the plan checks them per sample, with ``regularization.start_time_s``).
    """
    differences = [
        text for text in target.differences(candidate, positions=False) if not text.startswith("start time")
    ]
    if not differences:
        return
    if config.regularization.enabled:
        # Time axis and receivers can be regularised; shots and the velocity grid cannot.
        fixed = [
            text
            for text in differences
            if not text.startswith(
                ("time samples", "sample interval", "receiver", f"{candidate.num_receivers} receivers")
            )
        ]
        if not fixed:
            logger.info("%s: regularising onto the dataset geometry (%s).", origin, "; ".join(differences))
            return
        differences = fixed
    raise UserError(
        f"{origin} does not match the dataset geometry: "
        + "; ".join(differences)
        + ". Ingest it into another "
        "dataset, or enable --set regularization.enabled=true to resample time and interpolate receivers."
    )
