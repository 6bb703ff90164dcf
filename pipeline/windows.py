"""Survey geometry ↔ model geometry: reading a 2D line from trace headers, checks, regridding, sliding windows.

Pipeline position: the first step of ``pipeline.infer``. A trained model (``pipeline.bundle``) knows one
acquisition *window*: its shots and receivers at fixed positions over a velocity grid of ``grid_shape``
cells (``data_prep.schema.DatasetGeometry``, positions in metres from the grid's left edge). A survey is a
long 2D line of shots recorded by a fixed or moving spread. This module

1. reads the line's geometry from the SEG-Y trace headers (``read_survey_line``): shots grouped by a header
   key, source and receiver positions with their scalars projected onto the line's direction (a straight
   line at any azimuth), depths, sample interval and count per file. Only headers are kept in memory
   (20 bytes per trace once sorted); samples are read per window on demand.
2. slides the model's window along the line (``plan_windows``): window ``k`` starts at section column
   ``c_k``; its model shot ``i`` must be a survey shot at ``origin + c_k * dx + s_i`` and that shot must have
   recorded the model's receivers at ``origin + c_k * dx + r_j``. Positions match *exactly* within
   ``exact_tolerance_m`` (SEG-Y coordinates are centimetres) or, when regridding is allowed, through the
   nearest shot within ``shot_tolerance_m`` and receivers interpolated (or nearest) between recorded ones.
3. lists every mismatch with the option that fixes it (``GeometryCheck.message``) and refuses a line that
   is shorter than one window or where no window position matches the layout;
4. cuts each window's gathers out of the line and brings them onto the model's time axis and receivers
   (``WindowReader.read``): band-limited resampling (``scipy.signal.resample_poly`` through
   ``data_prep.regularization.resample_time``), receivers linearly interpolated or nearest.

The section grid: column ``c`` lies at along-line distance ``origin_m + c * grid_spacing_m``. ``origin_m``
defaults to the circular mean of the receiver positions modulo the grid spacing, so a line recorded on a
regular station grid is sampled exactly on it, and shots a few metres off do not move it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from core.errors import UserError
from data_prep.regularization import resample_time
from data_prep.schema import DatasetGeometry
from data_prep.segy_io import SegyScan, scale_factors, scan_segy

logger = logging.getLogger(__name__)

#: Trace-header fields read besides segy_io's defaults.
EXTRA_FIELDS = ("DelayRecordingTime",)


# ----------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegridConfig:
    """What may be changed to bring a survey onto the model's geometry (all off unless ``enabled``).

    Attributes:
        enabled: allow regridding (``--regrid``); without it every mismatch is refused with its fix listed.
        receivers: ``"linear"`` interpolation between the two recorded receivers around a model receiver,
            or ``"nearest"`` recorded receiver (within ``receiver_tolerance_m``).
        shot_tolerance_m: a model shot may use the nearest survey shot this far away (metres). None: one grid
            cell, so that a regular shot line whose spacing does not divide the model's irregular layout
            (OpenFWI's shots are 17, 17, 18 and 17 cells apart) still fits; every moved shot is reported
            (``WindowPlan.shot_offset_m``). A shot used ``e`` metres from its model position shifts its
            near-offset arrivals by up to ``e / v`` (7 ms for 10 m at 1500 m/s).
        receiver_tolerance_m: ``"nearest"`` receivers within this distance. None: half a grid cell.
        max_receiver_gap_m: linear interpolation only between recorded receivers at most this far apart.
            None: 2.5 x the model's receiver spacing (a survey spread of twice the model's spacing passes).
    """

    enabled: bool = False
    receivers: Literal["linear", "nearest"] = "linear"
    shot_tolerance_m: float | None = None
    receiver_tolerance_m: float | None = None
    max_receiver_gap_m: float | None = None


@dataclass(frozen=True)
class LineConfig:
    """How traces are grouped into shots and positions read from the headers.

    Attributes:
        shot_key: trace-header field identifying a shot within a file; ``"auto"`` uses ``FieldRecord`` when
            it is set, else the source coordinates.
        max_crossline_m: largest distance of a source or receiver from the fitted straight line (metres).
            None: half a grid cell.
        exact_tolerance_m: positions closer than this are the same position (metres; SEG-Y stores
            centimetres).
        depth_tolerance_m: largest accepted difference between survey and model source/receiver depths
            (metres). None: one grid cell. Any difference above ``exact_tolerance_m`` but within it is
            accepted with a warning (``GeometryCheck.warnings``): field files often leave the depths 0 while
            the model was trained with sources and receivers one cell (10 m) below the surface.
    """

    shot_key: str = "auto"
    max_crossline_m: float | None = None
    exact_tolerance_m: float = 0.01
    depth_tolerance_m: float | None = None


@dataclass(frozen=True)
class WindowConfig:
    """Where windows are placed along the line.

    Attributes:
        step_cells: columns between the starts of consecutive windows. None: half the window width (a
            Hann-type blend then sums to a constant). Where no window matches at the ideal start the
            nearest matching start before it is used (or after it, leaving a gap that is reported).
        origin_m: along-line position of section column 0's grid (metres, modulo the grid spacing). None:
            the circular mean of the receiver positions modulo the grid spacing (``grid_origin_m``).
    """

    step_cells: int | None = None
    origin_m: float | None = None

    def __post_init__(self) -> None:
        if self.step_cells is not None and self.step_cells < 1:
            raise ValueError(f"windows.step_cells must be at least 1. Received: {self.step_cells}")


# ----------------------------------------------------------------------------------------------------------
# The model's window layout
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelLayout:
    """The acquisition window a model was trained on (positions relative to its grid's left edge).

    Attributes:
        source_x_m, source_depth_m: ``(shots,)`` in the model's shot order.
        receiver_x_m, receiver_depth_m: ``(receivers,)`` in the model's receiver order.
        sample_interval_s, num_samples: the model's time axis.
        grid_spacing_m: velocity cell size (metres).
        grid_shape: ``(depth, x)`` cells of one window's velocity model.
    """

    source_x_m: np.ndarray
    source_depth_m: np.ndarray
    receiver_x_m: np.ndarray
    receiver_depth_m: np.ndarray
    sample_interval_s: float
    num_samples: int
    grid_spacing_m: float
    grid_shape: tuple[int, int]

    @classmethod
    def from_geometry(cls, geometry: DatasetGeometry) -> ModelLayout:
        if not (np.isfinite(geometry.grid_spacing_m) and geometry.grid_spacing_m > 0) or 0 in tuple(
            geometry.grid_shape
        ):
            raise UserError(
                "The model's training geometry has no velocity grid (grid spacing "
                f"{geometry.grid_spacing_m}, grid shape {tuple(geometry.grid_shape)}): it cannot place windows "
                "along a line. Use a model trained on a labelled dataset."
            )
        sources = np.asarray(geometry.source_positions_m, dtype=np.float64)
        receivers = np.asarray(geometry.receiver_positions_m, dtype=np.float64)
        return cls(
            source_x_m=sources[:, 1].copy(),
            source_depth_m=sources[:, 0].copy(),
            receiver_x_m=receivers[:, 1].copy(),
            receiver_depth_m=receivers[:, 0].copy(),
            sample_interval_s=float(geometry.sample_interval_s),
            num_samples=int(geometry.num_samples),
            grid_spacing_m=float(geometry.grid_spacing_m),
            grid_shape=(int(geometry.grid_shape[0]), int(geometry.grid_shape[1])),
        )

    @property
    def num_shots(self) -> int:
        return len(self.source_x_m)

    @property
    def num_receivers(self) -> int:
        return len(self.receiver_x_m)

    @property
    def width_cells(self) -> int:
        return self.grid_shape[1]

    @property
    def receiver_spacing_m(self) -> float:
        spacing = np.diff(np.sort(self.receiver_x_m))
        spacing = spacing[spacing > 0]
        return float(spacing.min()) if spacing.size else self.grid_spacing_m


# ----------------------------------------------------------------------------------------------------------
# The survey line
# ----------------------------------------------------------------------------------------------------------


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
        path = Path(raw_path)
        if not path.is_file():
            raise UserError(f"Input {path} does not exist or is not a file: check the --input paths.")
        scan = scan_segy(path, extra_fields=EXTRA_FIELDS)
        repairs += scan.repairs
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
        shots = _shot_ids(scan, config.shot_key, sx, sy)
        columns["sx"].append(sx)
        columns["sy"].append(sy)
        columns["gx"].append(gx)
        columns["gy"].append(gy)
        columns["sz"].append(scan.source_depth_m())
        columns["gz"].append(scan.receiver_depth_m())
        columns["file"].append(np.full(scan.num_traces, file_number, dtype=np.int32))
        columns["trace"].append(np.arange(scan.num_traces, dtype=np.int64))
        columns["shot"].append(shots)
        files.append(
            SurveyFile(
                path=path,
                sha256=scan.sha256,
                sample_interval_s=scan.sample_interval * 1e-6,
                num_samples=scan.num_samples,
                num_traces=scan.num_traces,
                scan=scan,
            )
        )
        scan.headers = {}  # the columns above are all that is kept
    data = {key: np.concatenate(values) for key, values in columns.items()}
    del columns

    frame = LineFrame.fit(np.r_[data["sx"], data["gx"]], np.r_[data["sy"], data["gy"]])
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


# ----------------------------------------------------------------------------------------------------------
# Geometry check and window plan
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    """One difference between the survey and the model geometry, and what would fix it."""

    what: str
    fix: str
    fixed_by_regrid: bool

    def describe(self) -> str:
        return f"{self.what} (fix: {self.fix})"


@dataclass
class WindowPlan:
    """Where the windows lie and which shots and receivers each one uses.

    Section column ``c`` is at along-line position ``origin_m + c * grid_spacing_m``; window ``w`` covers
    columns ``column_start[w] .. column_start[w] + width - 1``.

    Attributes:
        origin_m: along-line position of column 0.
        grid_spacing_m: column spacing.
        num_columns: section width in columns.
        width: window width in columns (the model's grid x cells).
        column_start: ``(windows,)``.
        shot_index: ``(windows, model shots)`` survey shot used for each model shot.
        shot_offset_m: ``(windows, model shots)`` survey shot position minus the model's position.
        receivers_interpolated: ``(windows,)`` True when a receiver was not recorded at its exact position.
        time_resampled: the survey's time axis differs from the model's (resampled or cut/padded).
    """

    origin_m: float
    grid_spacing_m: float
    num_columns: int
    width: int
    column_start: np.ndarray
    shot_index: np.ndarray
    shot_offset_m: np.ndarray
    receivers_interpolated: np.ndarray
    time_resampled: bool

    @property
    def num_windows(self) -> int:
        return len(self.column_start)

    def window_origin_m(self) -> np.ndarray:
        return self.origin_m + self.column_start * self.grid_spacing_m

    def column_x_m(self, columns: np.ndarray | None = None) -> np.ndarray:
        columns = np.arange(self.num_columns) if columns is None else np.asarray(columns)
        return self.origin_m + columns * self.grid_spacing_m

    def shot_moves(self) -> dict[str, float]:
        """How far the survey shots used lie from the model's positions (metres; 0 = exact everywhere)."""
        offsets = np.abs(np.asarray(self.shot_offset_m, np.float64))
        moved = offsets > 0.01
        return {
            "max_m": float(offsets.max()) if offsets.size else 0.0,
            "median_m": float(np.median(offsets)) if offsets.size else 0.0,
            "num_moved": int(moved.sum()),
            "num_used": int(offsets.size),
            "windows_with_moved_shots": int(np.any(moved, axis=1).sum()) if offsets.size else 0,
        }

    def uncovered_columns(self) -> np.ndarray:
        covered = np.zeros(self.num_columns, dtype=bool)
        for start in self.column_start:
            covered[start : start + self.width] = True
        return np.flatnonzero(~covered)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "origin_m": np.float64(self.origin_m),
            "grid_spacing_m": np.float64(self.grid_spacing_m),
            "num_columns": np.int64(self.num_columns),
            "width": np.int64(self.width),
            "column_start": self.column_start,
            "shot_index": self.shot_index,
            "shot_offset_m": self.shot_offset_m,
            "receivers_interpolated": self.receivers_interpolated,
            "time_resampled": np.bool_(self.time_resampled),
        }

    @classmethod
    def from_arrays(cls, arrays) -> WindowPlan:
        return cls(
            origin_m=float(arrays["origin_m"]),
            grid_spacing_m=float(arrays["grid_spacing_m"]),
            num_columns=int(arrays["num_columns"]),
            width=int(arrays["width"]),
            column_start=np.asarray(arrays["column_start"], dtype=np.int64),
            shot_index=np.asarray(arrays["shot_index"], dtype=np.int64),
            shot_offset_m=np.asarray(arrays["shot_offset_m"], dtype=np.float64),
            receivers_interpolated=np.asarray(arrays["receivers_interpolated"], dtype=bool),
            time_resampled=bool(arrays["time_resampled"]),
        )


@dataclass
class GeometryCheck:
    """The outcome of comparing a line with a model: the mismatches found and, if usable, the plan."""

    mismatches: list[Mismatch]
    plan: WindowPlan | None
    regrid_enabled: bool
    refusal: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> list[Mismatch]:
        return [m for m in self.mismatches if not (m.fixed_by_regrid and self.regrid_enabled)]

    def message(self) -> str:
        parts = []
        if self.refusal:
            parts.append(self.refusal)
        blocking = self.blocking
        if blocking:
            listed = "; ".join(f"({i + 1}) {m.describe()}" for i, m in enumerate(blocking))
            parts.append(f"The survey's geometry differs from the model's training geometry: {listed}.")
        return " ".join(parts)

    def raise_if_refused(self) -> WindowPlan:
        if self.refusal or self.blocking or self.plan is None:
            raise UserError(self.message())
        return self.plan


@dataclass
class _Tolerances:
    exact: float
    shot: float
    receiver: float
    gap: float
    depth: float


def _tolerances(layout: ModelLayout, line_config: LineConfig, regrid: RegridConfig) -> _Tolerances:
    cell = layout.grid_spacing_m
    return _Tolerances(
        exact=line_config.exact_tolerance_m,
        shot=regrid.shot_tolerance_m if regrid.shot_tolerance_m is not None else cell,
        receiver=regrid.receiver_tolerance_m if regrid.receiver_tolerance_m is not None else 0.5 * cell,
        gap=regrid.max_receiver_gap_m
        if regrid.max_receiver_gap_m is not None
        else 2.5 * layout.receiver_spacing_m,
        depth=line_config.depth_tolerance_m if line_config.depth_tolerance_m is not None else cell,
    )


#: Slowest velocity used to express a position error as a time error in messages (water, m/s).
_SLOW_VELOCITY_MPS = 1500.0


def _ceil_cm(value_m: float) -> str:
    """A tolerance for a ``--set`` value: metres rounded up to the centimetre, so that it admits ``value_m``."""
    return f"{math.ceil(value_m * 100 - 1e-6) / 100:g}"


def _time_cost(distance_m: float) -> str:
    return f"{1e3 * distance_m / _SLOW_VELOCITY_MPS:.1f} ms at {_SLOW_VELOCITY_MPS:g} m/s"


def grid_origin_m(line: SurveyLine, layout: ModelLayout, config: WindowConfig) -> float:
    """The along-line position of the section grid (modulo the grid spacing); see ``WindowConfig.origin_m``.

    The circular mean of the receiver positions modulo the grid spacing (relative to the model's first
    receiver): receivers sit on a survey's station grid more reliably than shots, whose positions scatter by a
    few metres. When the receivers' phases scatter too (resultant length below 0.5), the shots' are used.
    """
    spacing = layout.grid_spacing_m
    if config.origin_m is not None:
        return float(config.origin_m) % spacing
    for positions, reference in (
        (line.receiver_x_m[:: max(1, len(line.receiver_x_m) // 100_000)], layout.receiver_x_m[0]),
        (line.shot_x_m, layout.source_x_m[0]),
    ):
        phase = 2 * np.pi * np.mod(positions - reference, spacing) / spacing
        sine, cosine = float(np.sin(phase).mean()), float(np.cos(phase).mean())
        if math.hypot(sine, cosine) >= 0.5:
            break
    return float(np.mod(math.atan2(sine, cosine) / (2 * np.pi) * spacing, spacing))


def check_geometry(
    line: SurveyLine,
    layout: ModelLayout,
    line_config: LineConfig = LineConfig(),
    regrid: RegridConfig = RegridConfig(),
    window_config: WindowConfig = WindowConfig(),
) -> GeometryCheck:
    """Compares the line with the model's window layout and plans the windows.

    Every mismatch is listed with the option that fixes it; ``GeometryCheck.raise_if_refused`` raises one
    ``UserError`` listing all of those not fixed. The plan uses exact windows only unless regridding is
    enabled.
    """
    tolerances = _tolerances(layout, line_config, regrid)
    mismatches: list[Mismatch] = []

    # --- Time axis, per file ---
    model_duration = (layout.num_samples - 1) * layout.sample_interval_s
    time_resampled = False
    for survey_file in line.files:
        name = survey_file.path.name
        if abs(survey_file.sample_interval_s - layout.sample_interval_s) > 1e-9:
            time_resampled = True
            mismatches.append(
                Mismatch(
                    f"{name}: sample interval {survey_file.sample_interval_s * 1e3:g} ms instead of the model's "
                    f"{layout.sample_interval_s * 1e3:g} ms",
                    "--regrid, i.e. --set regrid.enabled=true (band-limited resampling with "
                    "scipy.signal.resample_poly; cost: "
                    + (
                        f"frequencies above the model's Nyquist {0.5 / layout.sample_interval_s:g} Hz are removed)"
                        if survey_file.sample_interval_s < layout.sample_interval_s
                        else "none beyond the survey's own band)"
                    ),
                    True,
                )
            )
        duration = (survey_file.num_samples - 1) * survey_file.sample_interval_s
        # Samples after resampling (resample_poly returns ceil(n * up / down)); different = cut or padded.
        resampled = math.ceil(
            survey_file.num_samples * survey_file.sample_interval_s / layout.sample_interval_s - 1e-9
        )
        if resampled != layout.num_samples:
            time_resampled = True
            what = (
                "cut to"
                if resampled > layout.num_samples
                else "zero-padded to (the late arrivals are missing)"
            )
            mismatches.append(
                Mismatch(
                    f"{name}: traces last {duration * 1e3:g} ms ({survey_file.num_samples} samples) instead of the "
                    f"model's {model_duration * 1e3:g} ms ({layout.num_samples} samples)",
                    f"--regrid, i.e. --set regrid.enabled=true ({what} {layout.num_samples} samples)",
                    True,
                )
            )

    # --- Depths: cannot be regridded; within the tolerance (one cell) accepted with a warning ---
    warnings: list[str] = []
    for label, survey_depths, model_depths in (
        ("source", line.shot_depth_m, layout.source_depth_m),
        ("receiver", line.receiver_depth_m, layout.receiver_depth_m),
    ):
        deviation = np.min(
            np.abs(np.asarray(survey_depths, np.float64)[:, None] - model_depths[None, :]), axis=1
        )
        if not deviation.size or deviation.max() <= tolerances.exact:
            continue
        worst = float(deviation.max())
        what = (
            f"{label} depths {np.min(survey_depths):g}..{np.max(survey_depths):g} m below the datum in the "
            f"headers instead of the model's {', '.join(f'{d:g}' for d in np.unique(model_depths))} m"
            + (" (zero depths: often headers left unset)" if not np.any(survey_depths) else "")
        )
        cost = (
            f"the network and the QC place the {label}s at the model's depth, so arrivals may be off by up to "
            f"{_time_cost(worst)} per leg"
        )
        if worst <= tolerances.depth + 1e-9:
            warnings.append(
                f"{what}: accepted (within line.depth_tolerance_m = {tolerances.depth:g} m); {cost}."
            )
            continue
        mismatches.append(
            Mismatch(
                what,
                "none by regridding: use a model trained with these depths, or accept the difference with "
                f"--set line.depth_tolerance_m={_ceil_cm(worst)} ({cost})",
                False,
            )
        )

    # --- Windows ---
    spacing = layout.grid_spacing_m
    source_span = float(np.ptp(layout.source_x_m))
    line_span = float(np.ptp(line.shot_x_m)) if line.num_shots else 0.0
    window_width_m = (layout.width_cells - 1) * spacing
    if line.num_shots < layout.num_shots or line_span + tolerances.shot < source_span:
        refusal = (
            f"The line is shorter than one window: its {line.num_shots} shot(s) span {line_span:g} m "
            f"(x = {line.shot_x_m.min():g}..{line.shot_x_m.max():g} m), the model's {layout.num_shots} shots span "
            f"{source_span:g} m over a {window_width_m:g} m window. Use a longer line or a model trained on a "
            "shorter window (no setting overrides this: a window needs shots across the model's whole layout)."
        )
        return GeometryCheck(mismatches, None, regrid.enabled, refusal, warnings)

    origin = grid_origin_m(line, layout, window_config)
    first = math.ceil((line.shot_x_m.min() - layout.source_x_m.min() - origin - tolerances.shot) / spacing)
    last = math.floor((line.shot_x_m.max() - layout.source_x_m.max() - origin + tolerances.shot) / spacing)
    candidates = np.arange(first, last + 1, dtype=np.int64)
    status = _window_status(line, layout, origin, candidates, tolerances, regrid)

    exact = status.kind == _EXACT
    usable = exact | (status.kind == _REGRID)
    if not usable.any():
        refusal = (
            f"No window position along the line matches the model's layout (shots at x = "
            f"{', '.join(f'{s:g}' for s in layout.source_x_m)} m and {layout.num_receivers} receivers at "
            f"x = {layout.receiver_x_m.min():g}..{layout.receiver_x_m.max():g} m within each window), even with "
            f"--regrid tolerances (shots within {tolerances.shot:g} m, receiver gaps up to {tolerances.gap:g} m): "
            f"{status.summary()}. The survey's shot or receiver spacing does not fit the model's layout"
            f"{_overrides(status, regrid.receivers)}."
        )
        return GeometryCheck(mismatches, None, regrid.enabled, refusal, warnings)

    allowed = usable if regrid.enabled else exact
    step = window_config.step_cells or max(1, layout.width_cells // 2)
    worst_offset = np.max(np.abs(status.shot_offset), axis=1)
    quality = np.where(
        worst_offset <= tolerances.exact, 0, np.where(worst_offset <= 0.5 * spacing + 1e-9, 1, 2)
    )
    regrid_fix = (
        f"--regrid, i.e. --set regrid.enabled=true (nearest shot within {tolerances.shot:g} m, receivers "
        f"{'interpolated linearly' if regrid.receivers == 'linear' else 'nearest'})"
    )
    if not regrid.enabled and (usable & ~exact).any():
        covered_exact = _coverage(candidates[exact], layout.width_cells)
        covered_all = _coverage(candidates[usable], layout.width_cells)
        if covered_all > covered_exact:
            regrid_only = usable & ~exact
            # What the plan --regrid would choose needs (not every usable position: most are never used).
            would_choose = np.isin(candidates, _choose_windows(candidates[usable], step, quality[usable]))
            would_regrid = would_choose & ~exact
            if not would_regrid.any():
                would_regrid = regrid_only
            what = (
                f"{int(regrid_only.sum())} of {len(candidates)} window positions need regridding "
                f"({_regrid_needs(status, would_regrid, tolerances)}); exact windows cover {covered_exact} of "
                f"{covered_all} columns"
            )
            fix = regrid_fix + _regrid_cost(status, would_regrid)
            if covered_exact < 0.9 * covered_all:
                mismatches.append(Mismatch(what, fix, True))
            else:  # nearly all of the line without regridding: use it, say what regridding would add
                warnings.append(f"{what}: the section covers the exact windows only (more with {fix})")
    if not allowed.any():
        return GeometryCheck(mismatches, None, regrid.enabled, None, warnings)

    chosen = _choose_windows(candidates[allowed], step, quality[allowed])
    chosen_mask = np.isin(candidates, chosen)
    if regrid.enabled and (chosen_mask & ~exact).any():
        regridded = chosen_mask & ~exact
        mismatches.append(
            Mismatch(
                f"{int(regridded.sum())} of {len(chosen)} windows regridded "
                f"({_regrid_needs(status, regridded, tolerances)})",
                regrid_fix + _regrid_cost(status, regridded),
                True,
            )
        )
    first_column = int(chosen[0])
    plan = WindowPlan(
        origin_m=origin + first_column * spacing,
        grid_spacing_m=spacing,
        num_columns=int(chosen[-1] - first_column + layout.width_cells),
        width=layout.width_cells,
        column_start=(chosen - first_column).astype(np.int64),
        shot_index=status.shot_index[chosen_mask],
        shot_offset_m=status.shot_offset[chosen_mask],
        receivers_interpolated=status.interpolated[chosen_mask],
        time_resampled=time_resampled,
    )
    gaps = plan.uncovered_columns()
    if gaps.size:
        logger.warning(
            "No window matches over %d section column(s) (first at x = %.1f m): the section is NaN there.",
            gaps.size,
            plan.column_x_m(gaps[:1])[0],
        )
    return GeometryCheck(mismatches, plan, regrid.enabled, None, warnings)


def _regrid_cost(status: _Status, which: np.ndarray) -> str:
    """What regridding costs the windows ``which``: how far shots move, whether receivers are interpolated."""
    offsets = np.abs(status.shot_offset[which])
    costs = []
    if offsets.size and offsets.max() > 0:
        costs.append(
            f"shots used up to {offsets.max():.2f} m from the model's positions (median "
            f"{np.median(offsets):.2f} m; reported per shot in the section's windows/shot_offset_m): their "
            f"near-offset arrivals are off by up to {_time_cost(float(offsets.max()))}"
        )
    if status.interpolated[which].any():
        costs.append("interpolated receivers smooth the wavefield between the recorded ones")
    return f"; cost: {' and '.join(costs)}" if costs else ""


def _overrides(status: _Status, receivers: str = "linear") -> str:
    """The settings that would let the closest refused window position through, with their cost."""
    options = []
    if np.isfinite(status.needed_shot_tolerance_m):
        distance = status.needed_shot_tolerance_m
        options.append(
            f"--set regrid.shot_tolerance_m={_ceil_cm(distance)} admits the closest position (cost: shots used up "
            f"to {distance:.2f} m from the model's positions, near-offset arrivals off by up to "
            f"{_time_cost(distance)})"
        )
    if np.isfinite(status.needed_receiver_gap_m) and receivers == "nearest":
        distance = status.needed_receiver_gap_m
        options.append(
            f"--set regrid.receiver_tolerance_m={_ceil_cm(distance)} admits the nearest recorded receivers up to "
            f"{distance:g} m away (cost: traces used up to {distance:g} m from their model positions, arrivals "
            f"off by up to {_time_cost(distance)})"
        )
    elif np.isfinite(status.needed_receiver_gap_m):
        gap = status.needed_receiver_gap_m
        options.append(
            f"--set regrid.max_receiver_gap_m={_ceil_cm(gap)} admits receivers interpolated across {gap:g} m gaps "
            "(cost: the wavefield between them is a linear blend, aliased where it dips steeply)"
        )
    if not options:
        return " (no setting overrides this: the model's receivers lie outside what the shots recorded)"
    return "; override: " + "; or ".join(options)


def _regrid_needs(status: _Status, which: np.ndarray, tolerances: _Tolerances) -> str:
    offsets = np.abs(status.shot_offset[which])
    what = []
    if offsets.max() > tolerances.exact:
        what.append(f"shots up to {offsets.max():.2f} m from the model's shot positions")
    if status.interpolated[which].any():
        what.append("model receivers not recorded at their exact positions")
    return " and ".join(what)


def _coverage(starts: np.ndarray, width: int) -> int:
    if starts.size == 0:
        return 0
    covered = np.zeros(int(starts.max() - starts.min() + width), dtype=bool)
    for start in starts - starts.min():
        covered[start : start + width] = True
    return int(covered.sum())


def _choose_windows(allowed: np.ndarray, step: int, quality: np.ndarray | None = None) -> np.ndarray:
    """Greedy window starts: from the first allowed start, the next one within ``step`` columns.

    Among the allowed starts in the second half of the step (so consecutive windows overlap by at most 3/4
    of the step more than planned) the one of best ``quality`` (0 = shots exactly on the model's positions,
    1 = within half a cell, 2 = within the shot tolerance) is taken, the furthest on ties: where the survey
    allows it, windows are placed so that shots fall on the model's positions. Else the furthest allowed
    start within the step, else the next allowed one (leaving a gap).
    """
    order = np.argsort(allowed, kind="stable")
    allowed = np.asarray(allowed)[order]
    quality = np.zeros(len(allowed), np.int64) if quality is None else np.asarray(quality)[order]
    chosen = [int(allowed[0])]
    while True:
        later = allowed > chosen[-1]
        if not later.any():
            break
        within = later & (allowed <= chosen[-1] + step)
        preferred = within & (allowed >= chosen[-1] + max(1, step // 2))
        if preferred.any():
            best = quality[preferred].min()
            chosen.append(int(allowed[preferred & (quality == best)][-1]))
        elif within.any():
            chosen.append(int(allowed[within][-1]))
        else:
            chosen.append(int(allowed[later][0]))
    return np.asarray(chosen, dtype=np.int64)


_EXACT, _REGRID, _MISSING_SHOT, _MISSING_RECEIVERS = 0, 1, 2, 3


@dataclass
class _Status:
    kind: np.ndarray
    shot_index: np.ndarray
    shot_offset: np.ndarray
    interpolated: np.ndarray
    shot_reason: str = ""
    receiver_reason: str = ""
    #: The smallest shot tolerance (m) that would let some refused position's shots through (inf: none).
    needed_shot_tolerance_m: float = math.inf
    #: The smallest receiver gap (m) that would let some position's receivers be interpolated (inf: none).
    needed_receiver_gap_m: float = math.inf

    def summary(self) -> str:
        missing_shot = int(np.sum(self.kind == _MISSING_SHOT))
        missing_receivers = int(np.sum(self.kind == _MISSING_RECEIVERS))
        parts = []
        if missing_receivers:
            # Positions where every model shot found a survey shot: what is missing there is most telling.
            parts.append(
                f"at the {missing_receivers} position(s) where the shots fit, the model receivers were not recorded "
                f"by the matched shots (for example {self.receiver_reason})"
            )
        if missing_shot:
            parts.append(
                f"at {missing_shot} position(s) no survey shot lies near a model shot (closest case: "
                f"{self.shot_reason})"
            )
        return "; ".join(parts)


def _window_status(line, layout, origin, candidates, tolerances, regrid) -> _Status:
    """Classifies every candidate window start: exact, regriddable, or why it cannot be used."""
    num = len(candidates)
    targets = origin + candidates[:, None] * layout.grid_spacing_m + layout.source_x_m[None, :]
    index = np.clip(np.searchsorted(line.shot_x_m, targets), 1, max(1, line.num_shots - 1))
    left, right = line.shot_x_m[index - 1], line.shot_x_m[np.minimum(index, line.num_shots - 1)]
    nearest = np.where(np.abs(targets - left) <= np.abs(targets - right), index - 1, index)
    nearest = np.minimum(nearest, line.num_shots - 1)
    offset = line.shot_x_m[nearest] - targets
    kind = np.full(num, _EXACT, dtype=np.int8)
    interpolated = np.zeros(num, dtype=bool)
    shot_reason = receiver_reason = ""
    needed_gap = math.inf
    shot_far = np.abs(offset) > tolerances.shot
    kind[shot_far.any(axis=1)] = _MISSING_SHOT
    needed_shot = math.inf
    if shot_far.any():
        needed_shot = float(np.min(np.max(np.abs(offset), axis=1)[shot_far.any(axis=1)]))
        worst = np.max(np.where(shot_far, np.abs(offset), 0.0), axis=1)
        w = int(np.argmin(np.where(shot_far.any(axis=1), worst, np.inf)))
        i = int(np.argmax(np.abs(offset[w])))
        shot_reason = (
            f"at window start x = {origin + candidates[w] * layout.grid_spacing_m:g} m model shot {i + 1} "
            f"(x = {targets[w, i]:g} m) has no survey shot within {tolerances.shot:g} m, the nearest is "
            f"{abs(offset[w, i]):.2f} m away"
        )
    kind[(kind == _EXACT) & (np.abs(offset) > tolerances.exact).any(axis=1)] = _REGRID
    for w in np.flatnonzero(kind != _MISSING_SHOT):
        receiver_targets = origin + candidates[w] * layout.grid_spacing_m + layout.receiver_x_m
        for i in range(layout.num_shots):
            recorded = line.receivers(int(nearest[w, i]))
            match, gap = _receiver_match(recorded, receiver_targets, tolerances, regrid.receivers)
            if match == "missing":
                kind[w] = _MISSING_RECEIVERS
                needed_gap = min(needed_gap, gap)
                if not receiver_reason:
                    receiver_reason = (
                        f"{line.shot_label(int(nearest[w, i]))} recorded receivers at x = "
                        f"{recorded.min():g}..{recorded.max():g} m but the window needs "
                        f"{receiver_targets.min():g}..{receiver_targets.max():g} m"
                        + (f" every {layout.receiver_spacing_m:g} m" if len(recorded) > 1 else "")
                    )
                break
            if match == "interpolated":
                interpolated[w] = True
        if kind[w] == _EXACT and interpolated[w]:
            kind[w] = _REGRID
    return _Status(kind, nearest, offset, interpolated, shot_reason, receiver_reason, needed_shot, needed_gap)


def _receiver_match(
    recorded: np.ndarray, targets: np.ndarray, tolerances: _Tolerances, mode: str
) -> tuple[str, float]:
    """``("exact" | "interpolated" | "missing", gap)``: ``gap`` is the receiver gap (m) that linear
    interpolation would have to bridge for a ``"missing"`` match (inf when a target lies outside the
    recorded receivers, which interpolation never extrapolates)."""
    if recorded.size == 0:
        return "missing", math.inf
    position = np.clip(np.searchsorted(recorded, targets), 0, len(recorded))
    left = recorded[np.maximum(position - 1, 0)]
    right = recorded[np.minimum(position, len(recorded) - 1)]
    distance = np.minimum(np.abs(targets - left), np.abs(targets - right))
    if np.all(distance <= tolerances.exact):
        return "exact", 0.0
    if mode == "nearest":  # the distance to the nearest recorded receiver is what the tolerance must admit
        return ("interpolated" if np.all(distance <= tolerances.receiver) else "missing"), float(
            distance.max()
        )
    on_receiver = distance <= tolerances.exact
    bracketed = (position > 0) & (position < len(recorded))
    inside = bracketed & (right - left <= tolerances.gap)
    if np.all(inside | on_receiver):
        return "interpolated", 0.0
    if not np.all(bracketed | on_receiver):
        return "missing", math.inf
    return "missing", float(np.max(np.where(on_receiver, 0.0, right - left)))


# ----------------------------------------------------------------------------------------------------------
# Reading windows
# ----------------------------------------------------------------------------------------------------------


class WindowReader:
    """Cuts a window's gathers out of the line onto the model's geometry.

    Memory: one window's traces (plus the interpolation neighbours); nothing is cached between windows.
    """

    def __init__(
        self,
        line: SurveyLine,
        layout: ModelLayout,
        plan: WindowPlan,
        regrid: RegridConfig,
        line_config: LineConfig = LineConfig(),
    ) -> None:
        self.line = line
        self.layout = layout
        self.plan = plan
        self.regrid = regrid
        self.tolerances = _tolerances(layout, line_config, regrid)

    def read(self, window: int) -> np.ndarray:
        """``(shots, time, receivers)`` float32 gathers of window ``window`` in the survey's amplitude units."""
        layout, line = self.layout, self.line
        origin = self.plan.window_origin_m()[window]
        targets = origin + layout.receiver_x_m
        gathers = np.empty((layout.num_shots, layout.num_samples, layout.num_receivers), dtype=np.float32)
        for i, shot in enumerate(self.plan.shot_index[window]):
            shot = int(shot)
            recorded = line.receivers(shot)
            weights_rows, columns = self._receiver_weights(recorded, targets)
            first = line.trace_start[shot]
            survey_file = line.files[int(line.shot_file[shot])]
            traces = survey_file.scan.read_traces(line.trace_index[first + columns])  # (used, samples)
            traces = resample_time(
                traces, survey_file.sample_interval_s, layout.sample_interval_s, layout.num_samples, axis=-1
            )
            if np.all(np.count_nonzero(weights_rows, axis=1) == 1) and np.all(
                weights_rows.max(axis=1) == 1.0
            ):
                gathers[i] = traces[np.argmax(weights_rows, axis=1)].T  # recorded receivers: a selection
            else:
                gathers[i] = (weights_rows @ traces.astype(np.float64)).T.astype(np.float32)
        return gathers

    def _receiver_weights(self, recorded: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(targets, used)`` weights and the indices (into ``recorded``) of the traces they use."""
        position = np.clip(np.searchsorted(recorded, targets), 0, len(recorded))
        left = np.maximum(position - 1, 0)
        right = np.minimum(position, len(recorded) - 1)
        d_left = np.abs(targets - recorded[left])
        d_right = np.abs(targets - recorded[right])
        nearest = np.where(d_left <= d_right, left, right)
        exact = np.minimum(d_left, d_right) <= self.tolerances.exact
        weights = np.zeros((len(targets), len(recorded)))
        rows = np.arange(len(targets))
        if self.regrid.receivers == "nearest" or np.all(exact):
            weights[rows, nearest] = 1.0
        else:
            span = recorded[right] - recorded[left]
            fraction = np.where(span > 0, (targets - recorded[left]) / np.where(span > 0, span, 1.0), 0.0)
            fraction = np.clip(fraction, 0.0, 1.0)
            weights[rows, left] += np.where(exact, 0.0, 1.0 - fraction)
            weights[rows, right] += np.where(exact, 0.0, fraction)
            weights[rows[exact], nearest[exact]] = 1.0
        used = np.flatnonzero(weights.any(axis=0))
        return weights[:, used], used


__all__ = [
    "GeometryCheck",
    "LineConfig",
    "LineFrame",
    "Mismatch",
    "ModelLayout",
    "RegridConfig",
    "SurveyFile",
    "SurveyLine",
    "WindowConfig",
    "WindowPlan",
    "WindowReader",
    "check_geometry",
    "grid_origin_m",
    "read_survey_line",
]
