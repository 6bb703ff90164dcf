"""Grouping a shot file's traces into samples, shots and receivers from its trace headers.

Used by ``data_prep.ingest.plan``: traces may come in any order; they are sorted by sample (velocity model),
shot and receiver from the header fields named in ``GroupingConfig``. By default (``sample_key: auto``) the
model id in byte 233 groups the traces of files this project wrote (textual-header signature or a
synthesize manifest); other files need ``shots_per_sample`` (consecutive shots form a sample),
``sample_key: file`` (the file is one sample) or a header field, because bytes 233-240 hold a header name
in SEG-Y rev 2. Sample ids are the file's own: a sample's identity is (origin, id).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from core.errors import UserError
from data_prep.ingest.config import IngestConfig
from data_prep.ingest.header_geometry import geometry_from_headers
from data_prep.schema import DatasetGeometry
from data_prep.segy_io import MODEL_ID_FIELD, SegyScan, header_convention

logger = logging.getLogger(__name__)


@dataclass
class ShotFile:
    """A scanned shot-gather file, its traces grouped into samples.

    ``geometry`` is the file's nominal geometry (its first sample's positions); ``source_positions_m`` /
    ``receiver_positions_m`` hold every sample's (recorded survey coordinates, metres) and
    ``start_times_s`` every trace's start time (``(samples, shots, receivers)`` seconds). ``grouping``
    says in words how the traces were grouped.
    """

    scan: SegyScan
    sample_ids: np.ndarray  # (samples,)
    trace_indices: np.ndarray  # (samples, shots, receivers) file trace indices
    geometry: DatasetGeometry
    source_positions_m: np.ndarray | None = None  # (samples, shots, 2) (depth_m, x_m)
    receiver_positions_m: np.ndarray | None = None  # (samples, receivers, 2)
    start_times_s: np.ndarray | None = None  # (samples, shots, receivers)
    grouping: str = ""


def choose_sample_key(scan: SegyScan, config: IngestConfig, listed_by_manifest: bool) -> tuple[str, str]:
    """How to group a file's traces into samples: ``(key, description)``; see ``GroupingConfig.sample_key``.

    ``key`` is a header field, ``"shots"`` or ``"file"``; ``description`` says which rule was used and why
    (logged and recorded in the provenance).
    """
    grouping = config.grouping
    if grouping.sample_key == "shots":
        return "shots", f"every {grouping.shots_per_sample} consecutive shots (grouping.shots_per_sample)"
    if grouping.sample_key == "file":
        return "file", "one sample per file (grouping.sample_key=file)"
    if grouping.sample_key != "auto":
        return grouping.sample_key, f"header field {grouping.sample_key} (grouping.sample_key)"
    convention = header_convention(scan.textual_header)
    trusted = listed_by_manifest or convention is not None
    model_ids = scan.headers[MODEL_ID_FIELD]
    if trusted and np.all(model_ids != 0):
        why = (
            "listed by a synthesize manifest" if listed_by_manifest else "seisinvert textual-header signature"
        )
        return MODEL_ID_FIELD, f"model id in byte 233 ({why})"
    if grouping.shots_per_sample > 0:
        return "shots", f"every {grouping.shots_per_sample} consecutive shots (grouping.shots_per_sample)"
    if trusted:
        reason = (
            "the file says it was written by seisinvert but its model id (byte 233, UnassignedInt1) is 0 in "
            f"{int(np.sum(model_ids == 0))} trace(s)"
        )
    elif np.any(model_ids != 0):
        reason = (
            "bytes 233-240 are not zero, but the textual header does not say the file was written by seisinvert, "
            "so they are not taken for a model id (SEG-Y rev 2 keeps a trace-header name there)"
        )
    else:
        reason = "the traces carry no model id (byte 233, UnassignedInt1, is 0)"
    raise UserError(
        f"{scan.path}: {reason}. Without a model id ingest cannot tell which shots belong to one velocity model: set "
        "--set grouping.shots_per_sample=N (N consecutive shots per sample), --set grouping.sample_key=file "
        "(one sample per file) or --set grouping.sample_key=<header field> (e.g. UnassignedInt1 to use byte "
        "233 anyway)."
    )


def group_shot_file(scan: SegyScan, config: IngestConfig, listed_by_manifest: bool = False) -> ShotFile:
    """Sorts a shot file's traces into ``(samples, shots, receivers)`` and reads its geometry from headers.

    Args:
        scan: the file's headers.
        config: grouping keys and geometry fallbacks.
        listed_by_manifest: the file is listed by a synthesize ``manifest.json`` (its model id is trusted).

    Raises:
        UserError: no way to group traces into samples, duplicate traces, inconsistent trace counts
            between shots, or positions that differ between the shots of a sample.
    """
    headers = scan.headers
    grouping = config.grouping
    path = scan.path
    for key in (grouping.shot_key, grouping.receiver_key):
        if key not in headers:
            raise UserError(f"grouping key {key!r} is not a known trace-header field.")
    shots = headers[grouping.shot_key]
    receivers = headers[grouping.receiver_key]

    sample_key, description = choose_sample_key(scan, config, listed_by_manifest)
    logger.info("%s: samples grouped by %s.", path, description)
    if sample_key == "file":
        samples = np.ones(len(shots), dtype=np.int64)
    elif sample_key == "shots":
        if grouping.shots_per_sample < 1:
            raise UserError(
                f"{path}: grouping.sample_key=shots needs grouping.shots_per_sample=N (N consecutive shots per "
                "sample)."
            )
        shot_values, shot_rank = np.unique(shots, return_inverse=True)
        if len(shot_values) % grouping.shots_per_sample:
            raise UserError(
                f"{path}: {len(shot_values)} shots cannot be grouped into samples of "
                f"grouping.shots_per_sample={grouping.shots_per_sample}. Check the value or the input files."
            )
        group = shot_rank // grouping.shots_per_sample
        samples = shot_values[group * grouping.shots_per_sample]  # id = first shot number of the group
    else:
        if sample_key not in headers:
            raise UserError(f"grouping.sample_key {sample_key!r} is not a known trace-header field.")
        samples = headers[sample_key]

    order = np.lexsort((receivers, shots, samples))
    if len(order) < 2**31:
        order = order.astype(np.int32)  # 4 bytes per trace kept for the whole run
    keys = np.stack([samples[order], shots[order], receivers[order]], axis=1).astype(np.int64)
    duplicate = np.flatnonzero(np.all(keys[1:] == keys[:-1], axis=1))
    if duplicate.size:
        first, second = order[duplicate[0]], order[duplicate[0] + 1]
        raise UserError(
            f"{path}: traces {first + 1} and {second + 1} have the same sample {keys[duplicate[0], 0]}, shot "
            f"{keys[duplicate[0], 1]} ({grouping.shot_key}) and receiver {keys[duplicate[0], 2]} "
            f"({grouping.receiver_key}): duplicate geometry ({duplicate.size} duplicate trace(s)). If they are "
            f"different receivers that {grouping.receiver_key} does not tell apart (numbered per cable or per "
            "line), set --set grouping.receiver_key=<a field that does>, e.g. GroupX (receivers are sorted by "
            "it); otherwise remove the duplicates or fix the headers."
        )
    # Shots: runs of equal (sample, shot); every shot must have the same number of receivers.
    shot_starts = np.flatnonzero(np.r_[True, np.any(keys[1:, :2] != keys[:-1, :2], axis=1)])
    shot_sizes = np.diff(np.r_[shot_starts, len(keys)])
    if np.any(shot_sizes != shot_sizes[0]):
        bad = int(np.flatnonzero(shot_sizes != np.bincount(shot_sizes).argmax())[0])
        raise UserError(
            f"{path}: inconsistent trace counts between shots: shot {keys[shot_starts[bad], 1]} "
            f"({grouping.shot_key}, sample {keys[shot_starts[bad], 0]}, from trace {order[shot_starts[bad]] + 1}) "
            f"has {shot_sizes[bad]} traces, most shots have {np.bincount(shot_sizes).argmax()}. Every shot "
            "needs the same receivers: fill missing traces or drop incomplete shots."
        )
    num_receivers = int(shot_sizes[0])
    sample_starts = np.flatnonzero(np.r_[True, keys[1:, 0] != keys[:-1, 0]])
    shots_per_sample = np.diff(np.r_[sample_starts, len(keys)]) // num_receivers
    if np.any(shots_per_sample != shots_per_sample[0]):
        bad = int(np.flatnonzero(shots_per_sample != shots_per_sample[0])[0])
        raise UserError(
            f"{path}: sample {keys[sample_starts[bad], 0]} has {shots_per_sample[bad]} shots, sample "
            f"{keys[0, 0]} has {shots_per_sample[0]}: every sample needs the same shots."
        )
    num_samples, num_shots = len(sample_starts), int(shots_per_sample[0])
    trace_indices = order.reshape(num_samples, num_shots, num_receivers)
    sample_ids = keys[sample_starts, 0]

    positions = geometry_from_headers(scan, trace_indices, config)
    # Only the keys named in error messages are kept: memory per trace stays ~12 bytes however many
    # files are planned before writing starts.
    scan.headers = {key: scan.headers[key] for key in (grouping.shot_key, grouping.receiver_key)}
    return ShotFile(
        scan=scan,
        sample_ids=sample_ids,
        trace_indices=trace_indices,
        geometry=positions.nominal,
        source_positions_m=positions.source_positions_m,
        receiver_positions_m=positions.receiver_positions_m,
        start_times_s=positions.start_times_s,
        grouping=description,
    )


def grouping_fields(config: IngestConfig) -> list[str]:
    grouping = config.grouping
    return [
        key
        for key in (grouping.sample_key, grouping.shot_key, grouping.receiver_key)
        if key not in ("auto", "shots", "file")
    ]
