"""Acquisition geometry from SEG-Y trace headers, and agreement of an input's geometry with the dataset's.

Used by ``data_prep.ingest``: ``geometry_from_headers`` reads source and receiver positions (metres, scaled
by the header scalars) and the time axis of a grouped shot file, refusing inconsistent headers (or
assuming ``fallback_geometry`` when there are no coordinates); ``target_geometry`` applies the configured
regularisation targets, and ``check_geometry`` refuses an input that differs from the target unless
regularisation can fix it.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from data_prep.ingest.config import IngestConfig
from data_prep.schema import DatasetGeometry
from data_prep.segy_io import SegyScan
from pipeline.cli import UserError

logger = logging.getLogger(__name__)


def geometry_from_headers(scan: SegyScan, trace_indices: np.ndarray, config: IngestConfig) -> DatasetGeometry:
    path = scan.path
    source_x, group_x = scan.source_x_m()[trace_indices], scan.group_x_m()[trace_indices]
    source_z, group_z = scan.source_depth_m()[trace_indices], scan.receiver_depth_m()[trace_indices]
    sample_interval_s = scan.sample_interval * 1e-6
    num_shots, num_receivers = trace_indices.shape[1:]
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
        return dataclasses.replace(
            DatasetGeometry.from_acquisition(fallback),
            sample_interval_s=sample_interval_s,
            num_samples=scan.num_samples,
            grid_spacing_m=float("nan"),
            grid_shape=(0, 0),
        )
    # A shot's source sits in one place; the receiver spread is the same for every shot and sample.
    for label, values, axis in (("source x", source_x, 2), ("source depth", source_z, 2)):
        spread = np.ptp(values, axis=axis)
        if np.any(spread > 0.005):
            sample, shot = np.unravel_index(int(np.argmax(spread)), spread.shape)
            raise UserError(
                f"{path}: the traces of shot {shot + 1} of sample {sample + 1} disagree about the {label} "
                f"(spread {spread[sample, shot]:g} m): the headers are inconsistent."
            )
    for label, values in (("receiver x", group_x), ("receiver depth", group_z)):
        spread = np.ptp(values.reshape(-1, num_receivers), axis=0)
        if np.any(spread > 0.005):
            receiver = int(np.argmax(spread))
            raise UserError(
                f"{path}: receiver {receiver + 1} ({config.grouping.receiver_key} order) has a {label} that changes "
                f"between shots or samples by {spread[receiver]:g} m. Moving spreads are not supported: every "
                "shot must use the same receivers (regularise the data before ingesting)."
            )
    first_source = np.stack([source_z[:, :, 0], source_x[:, :, 0]], axis=-1)  # (samples, shots, 2)
    spread = np.max(np.ptp(first_source, axis=0)) if len(first_source) > 1 else 0.0
    if spread > 0.005:
        raise UserError(
            f"{path}: the source positions differ between samples (by up to {spread:g} m): every sample of a "
            "dataset must use the same shots."
        )
    return DatasetGeometry(
        source_positions_m=first_source[0],
        receiver_positions_m=np.stack([group_z[0, 0], group_x[0, 0]], axis=-1),
        sample_interval_s=sample_interval_s,
        num_samples=scan.num_samples,
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
    """Refuses an input whose geometry differs from the target, unless regularisation can fix it."""
    differences = target.differences(candidate)
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
