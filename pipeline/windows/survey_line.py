"""Step 1: the line's geometry from the SEG-Y trace headers (``read_survey_line``).

Part of ``pipeline.windows``. Shots are grouped by a header key; source and receiver positions, with their
scalars, are projected onto the straight line fitted through them (``LineFrame``, any azimuth); depths,
sample interval and count are read per file. Only headers are kept in memory (20 bytes per trace once
sorted); samples are read per window on demand (``pipeline.windows.reader``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import UserError
from data_prep.segy_io import SegyScan, scale_factors, scan_segy
from pipeline.windows.config import LineConfig

logger = logging.getLogger(__name__)

#: Trace-header fields read besides segy_io's defaults.
EXTRA_FIELDS = ("DelayRecordingTime",)


@dataclass(frozen=True)
class LineFrame:
    """A straight line in map coordinates: along-line distance ``a = (x, y) . direction``.

    Attributes:
        direction: unit vector ``(dx, dy)`` along the line (pointing to increasing x, or y if the line is
            north-south).
        offset_m: ``(x, y) . normal`` of every point on the line, ``normal = (-dy, dx)``.
    """

    direction: tuple[float, float] = (1.0, 0.0)
    offset_m: float = 0.0

    def along(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float64) * self.direction[0] + np.asarray(y, np.float64) * self.direction[1]

    def crossline(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        normal = (-self.direction[1], self.direction[0])
        return np.asarray(x, np.float64) * normal[0] + np.asarray(y, np.float64) * normal[1] - self.offset_m

    def to_xy(self, along_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates of along-line positions."""
        along_m = np.asarray(along_m, np.float64)
        normal = (-self.direction[1], self.direction[0])
        return (
            along_m * self.direction[0] + self.offset_m * normal[0],
            along_m * self.direction[1] + self.offset_m * normal[1],
        )

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray) -> LineFrame:
        """The least-squares straight line through the points (principal direction)."""
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        if np.ptp(y) == 0:
            return cls((1.0, 0.0), float(y[0]) if y.size else 0.0)
        centre = np.array([x.mean(), y.mean()])
        points = np.stack([x, y], axis=1) - centre
        _, _, vectors = np.linalg.svd(points[:: max(1, len(points) // 100_000)], full_matrices=False)
        direction = vectors[0]
        if direction[0] < -1e-12 or (abs(direction[0]) <= 1e-12 and direction[1] < 0):
            direction = -direction
        direction = direction / np.linalg.norm(direction)
        normal = np.array([-direction[1], direction[0]])
        return cls((float(direction[0]), float(direction[1])), float(centre @ normal))


@dataclass
class SurveyFile:
    """One input SEG-Y file of the line (headers scanned; samples read on demand)."""

    path: Path
    sha256: str
    sample_interval_s: float
    num_samples: int
    num_traces: int
    scan: SegyScan = field(repr=False)


@dataclass
class SurveyLine:
    """A 2D line's shots, sorted by along-line source position, and where their traces are.

    Per shot ``s``: ``shot_x_m[s]`` along the line, ``shot_depth_m[s]``, ``shot_file[s]`` (index into
    ``files``), ``shot_label[s]`` (``"file.sgy shot 17"`` for messages) and its traces
    ``trace_start[s]:trace_start[s+1]`` of the per-trace arrays (``trace_index`` within the file,
    ``receiver_x_m``, ``receiver_depth_m``), sorted by receiver position.
    """

    files: list[SurveyFile]
    frame: LineFrame
    shot_x_m: np.ndarray
    shot_depth_m: np.ndarray
    shot_file: np.ndarray
    shot_number: np.ndarray
    trace_start: np.ndarray
    trace_index: np.ndarray
    receiver_x_m: np.ndarray
    receiver_depth_m: np.ndarray
    repairs: list[str] = field(default_factory=list)

    @property
    def num_shots(self) -> int:
        return len(self.shot_x_m)

    def shot_label(self, shot: int) -> str:
        return f"{self.files[int(self.shot_file[shot])].path.name} shot {int(self.shot_number[shot])}"

    def receivers(self, shot: int) -> np.ndarray:
        return self.receiver_x_m[self.trace_start[shot] : self.trace_start[shot + 1]]

    def close(self) -> None:
        """Releases every file mapping (pages of a mapped file count towards resident memory)."""
        for survey_file in self.files:
            survey_file.scan.close()

    def describe(self) -> str:
        intervals = sorted({f.sample_interval_s for f in self.files})
        return (
            f"{self.num_shots} shots at x = {self.shot_x_m.min():g}..{self.shot_x_m.max():g} m, "
            f"{len(self.trace_index)} traces in {len(self.files)} file(s), sample interval "
            f"{', '.join(f'{i * 1e3:g}' for i in intervals)} ms"
        )


def read_survey_line(
    paths: Sequence[str | Path], config: LineConfig = LineConfig(), grid_spacing_m: float | None = None
) -> SurveyLine:
    """Scans the SEG-Y files of one 2D line (headers only) and sorts their traces into shots.

    Args:
        paths: prestack SEG-Y files; together they form one line (e.g. a line exported in parts).
        config: shot grouping and tolerances.
        grid_spacing_m: the model's cell size, for the default crossline tolerance (half a cell).

    Raises:
        UserError: unreadable files, missing coordinates, shots whose traces disagree about the source
            position, repeated shots or receivers, or a crooked line.
    """
    if not paths:
        raise UserError("No input SEG-Y files were given: pass --input FILE [FILE ...].")
    files: list[SurveyFile] = []
    repairs: list[str] = []
    columns: dict[str, list[np.ndarray]] = {
        k: [] for k in ("sx", "sy", "gx", "gy", "sz", "gz", "file", "trace", "shot")
    }
    for file_number, raw_path in enumerate(paths):
        survey_file, file_columns = _scan_file(Path(raw_path), file_number, config.shot_key)
        files.append(survey_file)
        repairs += survey_file.scan.repairs
        for key, values in file_columns.items():
            columns[key].append(values)
    data = {key: np.concatenate(values) for key, values in columns.items()}
    del columns

    frame = LineFrame.fit(np.r_[data["sx"], data["gx"]], np.r_[data["sy"], data["gy"]])
    _check_straight(frame, data, files, config, grid_spacing_m)
    source_along = frame.along(data["sx"], data["sy"])
    receiver_along = frame.along(data["gx"], data["gy"])

    # Shots: (file, shot id) groups, sorted by source position; traces within a shot by receiver position.
    order = np.lexsort((receiver_along, data["shot"], data["file"]))
    keys = np.stack([data["file"][order], data["shot"][order]], axis=1)
    starts = np.flatnonzero(np.r_[True, np.any(keys[1:] != keys[:-1], axis=1)])
    bounds = np.r_[starts, len(order)]
    shot_x = source_along[order][starts]
    shot_depth = data["sz"][order][starts]
    tolerance = config.exact_tolerance_m
    spread_x = np.maximum.reduceat(source_along[order], starts) - np.minimum.reduceat(
        source_along[order], starts
    )
    spread_z = np.maximum.reduceat(data["sz"][order], starts) - np.minimum.reduceat(data["sz"][order], starts)
    bad = np.flatnonzero((spread_x > tolerance) | (spread_z > tolerance))
    if bad.size:
        shot = int(bad[0])
        raise UserError(
            f"{files[keys[starts[shot], 0]].path}: the traces of shot {keys[starts[shot], 1]} disagree about the "
            f"source position (spread {max(spread_x[shot], spread_z[shot]):.3f} m): the headers are inconsistent, "
            f"or {config.shot_key!r} does not identify shots: --set line.shot_key=<trace-header field that does> "
            "(e.g. EnergySourcePoint), or --set line.shot_key=coordinates to group by source position."
        )
    shot_order = np.argsort(shot_x, kind="stable")
    if len(shot_order) > 1:
        sorted_x = shot_x[shot_order]
        same = np.flatnonzero(np.diff(sorted_x) <= tolerance)
        if same.size:
            a, b = shot_order[same[0]], shot_order[same[0] + 1]
            raise UserError(
                f"Shots {_label(files, keys, starts, a)} and {_label(files, keys, starts, b)} are both at "
                f"x = {sorted_x[same[0]]:.2f} m along the line ({same.size} repeated position(s)): a line needs one "
                "shot per position. Remove repeated shots, or run the files of different lines separately (no setting "
                "overrides this)."
            )
    trace_order_parts = []
    new_starts = [0]
    for shot in shot_order:
        part = order[bounds[shot] : bounds[shot + 1]]
        receivers = receiver_along[part]
        repeated = np.flatnonzero(np.diff(receivers) <= tolerance)
        if repeated.size:
            raise UserError(
                f"{_label(files, keys, starts, shot)}: two traces record the receiver at x = "
                f"{receivers[repeated[0]]:.2f} m: remove duplicate traces (no setting overrides this)."
            )
        trace_order_parts.append(part)
        new_starts.append(new_starts[-1] + len(part))
    trace_order = np.concatenate(trace_order_parts)
    line = SurveyLine(
        files=files,
        frame=frame,
        shot_x_m=shot_x[shot_order],
        shot_depth_m=shot_depth[shot_order],
        shot_file=keys[starts, 0][shot_order].astype(np.int32),
        shot_number=keys[starts, 1][shot_order].astype(np.int64),
        trace_start=np.asarray(new_starts, dtype=np.int64),
        trace_index=data["trace"][trace_order],
        receiver_x_m=receiver_along[trace_order],
        receiver_depth_m=data["gz"][trace_order].astype(np.float32),
        repairs=repairs,
    )
    logger.info("Survey line: %s", line.describe())
    return line


def _scan_file(path: Path, file_number: int, shot_key: str) -> tuple[SurveyFile, dict[str, np.ndarray]]:
    """One file's headers: the file and its per-trace columns (map positions, depths, file, trace, shot)."""
    if not path.is_file():
        raise UserError(f"Input {path} does not exist or is not a file: check the --input paths.")
    scan = scan_segy(path, extra_fields=EXTRA_FIELDS)
    if scan.is_velocity_file:
        raise UserError(
            f"{path} is a velocity-model file (its textual header says DEPTH SAMPLES), not shot gathers: "
            "pass the survey's shot gathers with --input (a true velocity section goes to --truth)."
        )
    headers = scan.headers
    delay = headers["DelayRecordingTime"]
    if np.any(delay != 0):
        trace = int(np.flatnonzero(delay)[0])
        raise UserError(
            f"{path}: trace {trace + 1} starts recording {int(delay[trace])} ms after the shot "
            "(DelayRecordingTime, byte 109); the model expects recording from the shot time. Re-export "
            "the data from time zero (no setting overrides this)."
        )
    coordinate = scale_factors(headers["SourceGroupScalar"])
    sx, sy = headers["SourceX"] * coordinate, headers["SourceY"] * coordinate
    gx, gy = headers["GroupX"] * coordinate, headers["GroupY"] * coordinate
    if not np.any(gx) and not np.any(gy) and not np.any(sx) and not np.any(sy):
        raise UserError(
            f"{path}: the source and receiver coordinates (bytes 73-88, SourceX/Y, GroupX/Y) are 0 in every "
            "trace, so the traces cannot be placed along the line. Write the coordinates into the headers (no setting overrides this)."
        )
    shots = _shot_ids(scan, shot_key, sx, sy)
    columns = {
        "sx": sx,
        "sy": sy,
        "gx": gx,
        "gy": gy,
        "sz": scan.source_depth_m(),
        "gz": scan.receiver_depth_m(),
        "file": np.full(scan.num_traces, file_number, dtype=np.int32),
        "trace": np.arange(scan.num_traces, dtype=np.int64),
        "shot": shots,
    }
    survey_file = SurveyFile(
        path=path,
        sha256=scan.sha256,
        sample_interval_s=scan.sample_interval * 1e-6,
        num_samples=scan.num_samples,
        num_traces=scan.num_traces,
        scan=scan,
    )
    scan.headers = {}  # the columns above are all that is kept
    return survey_file, columns


def _check_straight(
    frame: LineFrame,
    data: dict[str, np.ndarray],
    files: list[SurveyFile],
    config: LineConfig,
    grid_spacing_m: float | None,
) -> None:
    """Refuses a line whose sources or receivers lie further than ``max_crossline_m`` from ``frame``."""
    max_crossline = config.max_crossline_m
    if max_crossline is None:
        max_crossline = 0.5 * grid_spacing_m if grid_spacing_m else 1.0
    crossline = np.maximum(
        np.abs(frame.crossline(data["sx"], data["sy"])), np.abs(frame.crossline(data["gx"], data["gy"]))
    )
    if crossline.size and crossline.max() > max_crossline:
        worst = int(np.argmax(crossline))
        raise UserError(
            f"{files[data['file'][worst]].path}: trace {data['trace'][worst] + 1} lies {crossline[worst]:.2f} m off "
            f"the straight line fitted through all sources and receivers (allowed: {max_crossline:g} m, "
            "line.max_crossline_m). Crooked lines are not supported: bin the data onto a straight line first, "
            f"or accept it with --set line.max_crossline_m={math.ceil(crossline[worst] * 100) / 100:g} (cost: "
            "every position is projected onto the line, so source-receiver distances are off by up to that "
            "much)."
        )


def _label(files, keys, starts, shot) -> str:
    return f"{files[keys[starts[shot], 0]].path.name} shot {keys[starts[shot], 1]}"


def _shot_ids(scan: SegyScan, shot_key: str, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    headers = scan.headers
    if shot_key == "auto":
        shot_key = "FieldRecord" if np.all(headers["FieldRecord"] != 0) else "coordinates"
    if shot_key == "coordinates":
        depth = scan.source_depth_m()
        _, ids = np.unique(np.stack([sx, sy, depth], axis=1), axis=0, return_inverse=True)
        return ids.ravel().astype(np.int64) + 1
    if shot_key not in headers:
        raise UserError(
            f"line.shot_key {shot_key!r} is not a trace-header field read by segy_io: use 'auto', 'coordinates' "
            "or one of " + ", ".join(sorted(headers)) + "."
        )
    return headers[shot_key].astype(np.int64)


__all__ = [
    "EXTRA_FIELDS",
    "LineFrame",
    "SurveyFile",
    "SurveyLine",
    "read_survey_line",
]
