"""SEG-Y shot gathers (+ velocity models) -> one validated HDF5 training dataset.

Second stage of the pipeline, after ``data_prep.synthesize`` (or field data) and before training. The pure
function ``ingest(sources, destination, config)`` reads prestack SEG-Y files, directories (a folder written
by ``data_prep.synthesize`` is read through its ``manifest.json``) and globs, and writes the layout of
``data_prep.schema``. The command line is a thin wrapper::

    python -m data_prep.ingest data/flatvel-a --out data/flatvel-a.h5
    python -m data_prep.ingest 'field/*.sgy' --out field.h5 --set require_velocity=false \\
        --set grouping.shots_per_sample=5
    python -m data_prep.ingest data/more --out data/flatvel-a.h5 --append

How the inputs are read:

* Byte order is detected per file, any sample format segyio reads is accepted (integers are cast to
  float32, IBM floats decoded), coordinates are scaled by SourceGroupScalar / ElevationScalar.
* Traces may come in any order: they are sorted by sample (velocity model), shot and receiver from the
  headers (``grouping``): by default the model id in byte 233 (``UnassignedInt1``, as synthesize writes it);
  for field data without it, ``grouping.shots_per_sample=N`` groups every N consecutive shots (by
  ``grouping.shot_key``, default FieldRecord) into one sample, whose id is its first shot number.
* Velocity models come from SEG-Y files written by ``write_velocity_models`` (recognised by their textual
  header "DEPTH SAMPLES", or named ``*velocity*``), paired by model id; or from ``.npy`` arrays
  ``(models, depth, x)`` / ``(models, 1, depth, x)`` whose row ``k`` (files concatenated in name order) is
  model id ``k + 1``. ``require_velocity=false`` builds an unlabelled dataset (for inference).
* Every input must have the dataset's geometry; otherwise it is refused with every difference listed,
  unless ``regularization.enabled`` resamples time and interpolates receivers onto the target.

All SEG-Y reading goes through segyio (``data_prep.segy_io``). Safety: headers are scanned first (nothing is
written if any input is bad); samples are then streamed one sample at a time (velocity models and edges in
blocks of ``block_bytes``) into a temporary file, which is validated and renamed only when complete.
``--append`` adds samples to an existing dataset in place without rewriting it: the file is flagged
``write_in_progress`` while it changes (so an interrupted append never looks valid), existing samples keep
their split, the new ones are split among themselves, and the statistics of the new training samples are
merged into the stored ones (see ``data_prep.splits`` and ``data_prep.normalization``). A failed append is
rolled back.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import importlib.metadata
import json
import logging
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
from tqdm.auto import tqdm

from data_prep import schema
from data_prep.atomic import atomic_output
from data_prep.edges import EdgeConfig, edge_map
from data_prep.geometry import AcquisitionGeometry
from data_prep.normalization import NormalizationConfig, StatisticsAccumulator
from data_prep.regularization import interpolate_receivers, resample_time
from data_prep.schema import DatasetGeometry
from data_prep.segy_io import MODEL_ID_FIELD, SegyScan, scan_segy
from data_prep.splits import SPLIT_NAMES, extend_splits, make_splits
from pipeline import __version__
from pipeline.cli import UserError, add_common_arguments, run_main
from pipeline.config import add_config_arguments, config_hash, load_config, to_yaml

logger = logging.getLogger(__name__)

SEGY_SUFFIXES = (".segy", ".sgy", ".seg")
SYNTHESIZE_MANIFEST = "manifest.json"
SYNTHESIZE_FORMAT = "seisinvert-synthetic-survey"


# ----------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupingConfig:
    """How traces are grouped into samples (one velocity model each), shots and receivers.

    Attributes:
        sample_key: trace-header field holding the sample (model) id; ``"auto"`` uses UnassignedInt1
            (byte 233) when it is non-zero in every trace, else ``shots_per_sample``.
        shots_per_sample: when > 0 and there is no sample key, every this many consecutive shots form a
            sample.
        shot_key: header field numbering the shots (sorted ascending within a sample).
        receiver_key: header field numbering the receivers within a shot (sorted ascending).
    """

    sample_key: str = "auto"
    shots_per_sample: int = 0
    shot_key: str = "FieldRecord"
    receiver_key: str = "TraceNumber"


@dataclass(frozen=True)
class RegularizationConfig:
    """Resampling inputs onto a target geometry (see ``data_prep.regularization``).

    Attributes:
        enabled: regularise inputs whose time axis or receivers differ; when False they are refused.
        sample_interval_s: target sample interval; None keeps the dataset's (or first input's).
        num_samples: target sample count; None keeps the dataset's (or first input's).
        receiver_x_m: target receiver x positions in metres; None keeps the dataset's (or first input's).
    """

    enabled: bool = False
    sample_interval_s: float | None = None
    num_samples: int | None = None
    receiver_x_m: tuple[float, ...] | None = None


@dataclass(frozen=True)
class SplitConfig:
    """Seeded train/val/test fractions (see ``data_prep.splits``)."""

    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0


@dataclass(frozen=True)
class IngestConfig:
    """Settings of ``ingest`` (YAML: ``configs/data/ingest.yaml``; CLI: ``--set key=value``).

    Attributes:
        require_velocity: every sample needs a velocity model (a training dataset); False builds an
            unlabelled dataset and ignores velocity inputs.
        grouping: how traces map to samples, shots and receivers.
        splits: split fractions and seed.
        normalization: statistics convention (OpenFWI by default).
        edges: how edge labels are computed from the velocity models.
        regularization: resampling onto a target geometry.
        nonfinite: ``"error"`` refuses NaN/Inf samples; ``"zero"`` replaces them with 0 and warns.
        sample_interval_us: sample interval to assume when no header gives one (µs).
        grid_spacing_m: velocity grid spacing for ``.npy`` velocity models (SEG-Y velocity files carry it).
        fallback_geometry: positions to assume when the SEG-Y headers carry no coordinates (repair, warned).
        block_bytes: velocity models and edges are written, and input files closed, every this many bytes of
            samples (the memory bound; seismic itself is streamed one sample at a time).
        compression: HDF5 compression of seismic/velocity ("none" is the fast default; see NOTES).
        progress: show progress bars.
    """

    require_velocity: bool = True
    grouping: GroupingConfig = GroupingConfig()
    splits: SplitConfig = SplitConfig()
    normalization: NormalizationConfig = NormalizationConfig()
    edges: EdgeConfig = EdgeConfig()
    regularization: RegularizationConfig = RegularizationConfig()
    nonfinite: Literal["error", "zero"] = "error"
    sample_interval_us: float | None = None
    grid_spacing_m: float | None = None
    fallback_geometry: AcquisitionGeometry | None = None
    block_bytes: int = 64 * 2**20
    compression: Literal["none", "gzip", "lzf"] = "none"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.block_bytes < 1:
            raise ValueError(f"block_bytes must be positive. Received: {self.block_bytes}")


# ----------------------------------------------------------------------------------------------------------
# Sample plans: what to read for each sample
# ----------------------------------------------------------------------------------------------------------


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


@dataclass
class ShotFile:
    """A scanned shot-gather file, its traces grouped into samples."""

    scan: SegyScan
    sample_ids: np.ndarray  # (samples,)
    trace_indices: np.ndarray  # (samples, shots, receivers) file trace indices
    geometry: DatasetGeometry


@dataclass
class VelocityIndex:
    """Where each model id's velocity model lives."""

    lookup: dict[int, Callable[[], np.ndarray]] = field(default_factory=dict)
    origin: dict[int, str] = field(default_factory=dict)
    scans: dict[int, SegyScan] = field(default_factory=dict)  # SEG-Y velocity files, to close after reading
    grid_shape: tuple[int, int] | None = None
    grid_spacing_m: float | None = None

    def add(self, model_id: int, loader: Callable[[], np.ndarray], origin: str) -> None:
        if model_id in self.lookup:
            raise UserError(
                f"Velocity model id {model_id} appears twice: in {self.origin[model_id]} and in {origin}. "
                "Remove the duplicate input."
            )
        self.lookup[model_id] = loader
        self.origin[model_id] = origin

    def set_grid(self, shape: tuple[int, int], spacing_m: float | None, origin: str) -> None:
        if self.grid_shape is not None and tuple(shape) != self.grid_shape:
            raise UserError(
                f"{origin} holds {shape[0]} x {shape[1]} (depth, x) velocity models, other inputs "
                f"{self.grid_shape[0]} x {self.grid_shape[1]}: all models of a dataset share one grid."
            )
        if (
            spacing_m is not None
            and self.grid_spacing_m is not None
            and abs(spacing_m - self.grid_spacing_m) > 1e-6
        ):
            raise UserError(
                f"{origin} has a grid spacing of {spacing_m:g} m, other inputs {self.grid_spacing_m:g} m."
            )
        self.grid_shape = tuple(shape)
        if spacing_m is not None:
            self.grid_spacing_m = spacing_m


# ----------------------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------------------


@dataclass
class ResolvedInputs:
    segy: list[tuple[Path, str | None]]  # (path, role hint: "shots", "velocity" or None)
    npy: list[Path]
    manifest_geometry: DatasetGeometry | None = None


def resolve_sources(sources: Sequence[str | Path]) -> ResolvedInputs:
    """Expands files, directories and glob patterns into SEG-Y and .npy inputs.

    A directory with a ``manifest.json`` from ``data_prep.synthesize`` contributes exactly the files its
    manifest lists (shots and velocity); any other directory contributes its ``*.segy``/``*.sgy``/``*.npy``
    files (not recursive), in name order.
    """
    if not sources:
        raise UserError("No inputs given: pass SEG-Y files, directories or glob patterns.")
    resolved = ResolvedInputs(segy=[], npy=[])
    seen: set[Path] = set()

    def add(path: Path, role: str | None) -> None:
        path = path.resolve()
        if path in seen:
            return
        seen.add(path)
        if path.suffix.lower() == ".npy":
            resolved.npy.append(path)
        else:
            resolved.segy.append((path, role))

    for source in sources:
        text = str(source)
        if any(char in text for char in "*?["):
            matches = sorted(Path(match) for match in glob.glob(text))
            if not matches:
                raise UserError(
                    f"The pattern {text!r} matches no file. Check the path (quote it for the shell)."
                )
            for match in matches:
                if match.is_file():
                    add(match, None)
            continue
        path = Path(source)
        if path.is_dir():
            manifest = path / SYNTHESIZE_MANIFEST
            if manifest.is_file():
                _add_manifest(path, manifest, add, resolved)
                continue
            entries = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (*SEGY_SUFFIXES, ".npy")
            )
            if not entries:
                raise UserError(f"Directory {path} holds no .segy, .sgy or .npy files.")
            for entry in entries:
                add(entry, None)
        elif path.is_file():
            add(path, None)
        else:
            raise UserError(f"Input {path} does not exist. Check the path.")
    if not resolved.segy:
        raise UserError("No SEG-Y input among the sources: ingest needs shot gathers (.segy/.sgy).")
    return resolved


def _add_manifest(directory: Path, manifest_path: Path, add: Callable, resolved: ResolvedInputs) -> None:
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(
            f"{manifest_path} is not valid JSON ({error}): regenerate the folder with synthesize."
        ) from None
    if manifest.get("format") != SYNTHESIZE_FORMAT:
        raise UserError(
            f"{manifest_path} is not a {SYNTHESIZE_FORMAT} manifest (format={manifest.get('format')!r})."
        )
    missing = [
        name
        for entry in manifest.get("files", [])
        for name in (entry["shots"], entry["velocity"])
        if not (directory / name).is_file()
    ]
    if missing:
        raise UserError(
            f"{directory}: {len(missing)} file(s) listed in manifest.json are missing (first: {missing[0]}). "
            "Finish every synthesize shard, or pass the existing .segy files explicitly."
        )
    for entry in manifest["files"]:
        add(directory / entry["shots"], "shots")
        add(directory / entry["velocity"], "velocity")
    geometry = manifest.get("geometry")
    if geometry:
        try:
            acquisition = AcquisitionGeometry(
                **{
                    key: (
                        tuple(tuple(v) if isinstance(v, list) else v for v in value)
                        if isinstance(value, list)
                        else value
                    )
                    for key, value in geometry.items()
                }
            )
        except (TypeError, ValueError) as error:
            raise UserError(f"{manifest_path}: the geometry entry is invalid ({error}).") from None
        candidate = DatasetGeometry.from_acquisition(acquisition)
        if resolved.manifest_geometry is not None and resolved.manifest_geometry.differences(candidate):
            raise UserError(
                f"{manifest_path} describes a different geometry from the other inputs: "
                + "; ".join(resolved.manifest_geometry.differences(candidate))
            )
        resolved.manifest_geometry = candidate


# ----------------------------------------------------------------------------------------------------------
# Planning from headers
# ----------------------------------------------------------------------------------------------------------


def group_shot_file(scan: SegyScan, config: IngestConfig) -> ShotFile:
    """Sorts a shot file's traces into ``(samples, shots, receivers)`` and reads its geometry from headers.

    Raises:
        UserError: no way to group traces into samples, duplicate traces, inconsistent trace counts
            between shots, or positions that differ between the shots or samples of the file.
    """
    headers = scan.headers
    grouping = config.grouping
    path = scan.path
    for key in (grouping.shot_key, grouping.receiver_key):
        if key not in headers:
            raise UserError(f"grouping key {key!r} is not a known trace-header field.")
    shots = headers[grouping.shot_key]
    receivers = headers[grouping.receiver_key]

    sample_key = grouping.sample_key
    if sample_key == "auto":
        sample_key = MODEL_ID_FIELD if np.all(headers[MODEL_ID_FIELD] != 0) else "shots"
    if sample_key == "shots":
        if grouping.shots_per_sample < 1:
            raise UserError(
                f"{path}: the traces carry no model id (byte 233, UnassignedInt1, is 0), so ingest cannot tell "
                "which shots belong to one velocity model. Set --set grouping.shots_per_sample=N (N consecutive "
                "shots per sample) or --set grouping.sample_key=<header field>."
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
            f"({grouping.receiver_key}): duplicate geometry ({duplicate.size} duplicate trace(s)). Remove the "
            "duplicates or fix the headers."
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

    geometry = _geometry_from_headers(scan, trace_indices, config)
    # Only the keys named in error messages are kept: memory per trace stays ~12 bytes however many
    # files are planned before writing starts.
    scan.headers = {key: scan.headers[key] for key in (grouping.shot_key, grouping.receiver_key)}
    return ShotFile(scan=scan, sample_ids=sample_ids, trace_indices=trace_indices, geometry=geometry)


def _geometry_from_headers(
    scan: SegyScan, trace_indices: np.ndarray, config: IngestConfig
) -> DatasetGeometry:
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


def index_velocity_segy(scan: SegyScan, index: VelocityIndex) -> None:
    """Adds a velocity-model SEG-Y file (``write_velocity_models`` layout) to ``index``."""
    headers = scan.headers
    model_ids = headers[MODEL_ID_FIELD] if np.all(headers[MODEL_ID_FIELD] != 0) else headers["FieldRecord"]
    x_index = headers["TraceNumber"]
    order = np.lexsort((x_index, model_ids))
    ids, starts, counts = np.unique(model_ids[order], return_index=True, return_counts=True)
    if np.any(counts != counts[0]):
        bad = int(np.flatnonzero(counts != counts[0])[0])
        raise UserError(
            f"{scan.path}: velocity model {ids[bad]} has {counts[bad]} x positions, model {ids[0]} has {counts[0]}."
        )
    spacing_m = scan.sample_interval / 1000.0  # depth spacing is stored in millimetres
    index.set_grid((scan.num_samples, int(counts[0])), spacing_m, str(scan.path))
    per_model = order.reshape(len(ids), int(counts[0]))
    scan.headers = {}  # the loaders need only the trace indices
    for model_id, traces in zip(ids, per_model, strict=True):
        index.add(int(model_id), lambda traces=traces: scan.read_traces(traces).T, str(scan.path))
        index.scans[int(model_id)] = scan


def index_velocity_npy(
    paths: Sequence[Path], index: VelocityIndex, config: IngestConfig, hasher: BackgroundHasher | None = None
) -> list[SourceRecord]:
    """Adds ``.npy`` velocity arrays (row ``k`` over all files in name order = model id ``k + 1``)."""
    records = []
    row = 0
    for path in sorted(paths):
        try:
            array = np.load(path, mmap_mode="r")
        except (ValueError, OSError) as error:
            raise UserError(f"{path} is not a readable .npy file ({error}).") from None
        if array.ndim == 4 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 3:
            raise UserError(
                f"{path}: velocity arrays must be (models, depth, x) or (models, 1, depth, x) in m/s. "
                f"Received shape {array.shape}."
            )
        index.set_grid(array.shape[1:], config.grid_spacing_m, str(path))
        for k in range(len(array)):
            index.add(
                row + 1, lambda array=array, k=k: np.asarray(array[k], dtype=np.float32), f"{path} row {k}"
            )
            row += 1
        digest = hasher.submit(path) if hasher else schema.file_sha256(path)
        records.append(SourceRecord(path, "velocity_npy", path.stat().st_size, digest))
    return records


# ----------------------------------------------------------------------------------------------------------
# Loading one sample
# ----------------------------------------------------------------------------------------------------------


def _load_shot_sample(
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


def _check_velocity(velocity: np.ndarray, model_id: int, origin: str) -> np.ndarray:
    if not (np.all(np.isfinite(velocity)) and np.all(velocity > 0)):
        raise UserError(
            f"{origin}: velocity model {model_id} holds non-finite or non-positive velocities (min "
            f"{np.nanmin(velocity):g} m/s). Fix the model file."
        )
    return velocity


# ----------------------------------------------------------------------------------------------------------
# Geometry agreement
# ----------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------
# The stage
# ----------------------------------------------------------------------------------------------------------


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
            extra_fields=_grouping_fields(config),
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
                seismic = _load_shot_sample(shot_file, sample, target, config)
                model = None
                if velocity_loader is not None:
                    model = _check_velocity(
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


def _grouping_fields(config: IngestConfig) -> list[str]:
    grouping = config.grouping
    return [
        key
        for key in (grouping.sample_key, grouping.shot_key, grouping.receiver_key)
        if key not in ("auto", "shots")
    ]


def ingest(
    sources: Sequence[str | Path],
    destination: str | Path,
    config: IngestConfig = IngestConfig(),
    append: bool = False,
    overwrite: bool = False,
) -> Path:
    """Reads SEG-Y (and velocity) inputs into a validated HDF5 dataset; see the module docstring.

    Args:
        sources: SEG-Y files, directories (synthesize folders included), glob patterns, ``.npy`` velocity.
        destination: the ``.h5`` dataset to create (or to extend with ``append``).
        config: settings.
        append: add the inputs' samples to the existing ``destination`` without rewriting it.
        overwrite: replace an existing ``destination`` (otherwise refused).

    Returns:
        The dataset path.

    Raises:
        UserError: bad input, with a message naming the file and trace; nothing is left half-written.
    """
    destination = Path(destination)
    if append:
        if not destination.is_file():
            raise UserError(f"--append: {destination} does not exist. Create it first without --append.")
        with h5py.File(destination, "r") as h5:
            reference = schema.read_geometry(h5) if schema.GEOMETRY in h5 else None
            num_sources = (
                len(json.loads(h5[schema.PROVENANCE].attrs["sources"])) if schema.PROVENANCE in h5 else 0
            )
        schema.validate(destination, check_values=False)
        with BackgroundHasher() as hasher:
            plans, geometry, labelled, records = plan_segy_inputs(
                sources, config, reference, num_sources, hasher
            )
            return append_samples(destination, plans, records, config, created_by="data_prep.ingest")
    if destination.exists() and not overwrite:
        raise FileExistsError(
            f"{destination} already exists: pass --append to add samples to it, --overwrite to replace it, or "
            "choose another --out."
        )
    with BackgroundHasher() as hasher:
        plans, geometry, labelled, records = plan_segy_inputs(sources, config, hasher=hasher)
        return write_dataset(
            destination, plans, geometry, labelled, records, config, created_by="data_prep.ingest"
        )


# ----------------------------------------------------------------------------------------------------------
# Writing (shared with data_prep.openfwi)
# ----------------------------------------------------------------------------------------------------------


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


def _stream_samples(
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
            _stream_samples(
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
            _stream_samples(
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


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.ingest",
        description="Read prestack SEG-Y shot gathers (and velocity models) into a validated HDF5 dataset.",
    )
    parser.add_argument(
        "sources", nargs="+", help="SEG-Y files, directories (synthesize folders) or glob patterns."
    )
    parser.add_argument(
        "--out", required=True, type=Path, metavar="DATASET.h5", help="The HDF5 dataset to write."
    )
    parser.add_argument(
        "--append", action="store_true", help="Add the inputs' samples to an existing dataset."
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing dataset.")
    add_config_arguments(parser)
    add_common_arguments(parser)
    return parser


def _main(args: argparse.Namespace) -> int:
    values = {"progress": False} if args.quiet else None
    config = load_config(IngestConfig, files=args.config, overrides=args.overrides, values=values)
    try:
        path = ingest(args.sources, args.out, config, append=args.append, overwrite=args.overwrite)
    except ValueError as error:
        # Library-level ValueErrors (e.g. an impossible resampling ratio) are still the user's input.
        raise UserError(str(error)) from error
    summary = schema.validate(path, check_values=False)
    print(
        f"{path}: {summary.num_samples} samples, seismic {summary.seismic_shape}, splits "
        + ", ".join(f"{name} {summary.split_sizes[name]}" for name in SPLIT_NAMES)
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, build_parser(), argv)


__all__ = [
    "GroupingConfig",
    "IngestConfig",
    "RegularizationConfig",
    "SplitConfig",
    "ingest",
    "main",
    "plan_segy_inputs",
    "write_dataset",
    "append_samples",
]

if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
