"""Step 2: sliding the model's window along the line: where windows may start and which are chosen.

Part of ``pipeline.windows``. Window ``k`` starts at section column ``c_k``; its model shot ``i`` must be a
survey shot at ``origin + c_k * dx + s_i`` that recorded the model's receivers at ``origin + c_k * dx + r_j``.
Positions match exactly within ``exact_tolerance_m`` (SEG-Y coordinates are centimetres) or, when
regridding is allowed, through the nearest shot within ``shot_tolerance_m`` and receivers interpolated (or
nearest) between recorded ones. ``window_status`` classifies every candidate start, ``choose_windows``
places the windows, ``WindowPlan`` records them (``pipeline.windows.check`` decides what is allowed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.windows.config import LineConfig, RegridConfig, WindowConfig
from pipeline.windows.layout import ModelLayout
from pipeline.windows.survey_line import SurveyLine

#: How ``window_status`` classifies a candidate window start.
EXACT, REGRID, MISSING_SHOT, MISSING_RECEIVERS = 0, 1, 2, 3


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
class Tolerances:
    exact: float
    shot: float
    receiver: float
    gap: float
    depth: float


def resolve_tolerances(layout: ModelLayout, line_config: LineConfig, regrid: RegridConfig) -> Tolerances:
    cell = layout.grid_spacing_m
    return Tolerances(
        exact=line_config.exact_tolerance_m,
        shot=regrid.shot_tolerance_m if regrid.shot_tolerance_m is not None else cell,
        receiver=regrid.receiver_tolerance_m if regrid.receiver_tolerance_m is not None else 0.5 * cell,
        gap=regrid.max_receiver_gap_m
        if regrid.max_receiver_gap_m is not None
        else 2.5 * layout.receiver_spacing_m,
        depth=line_config.depth_tolerance_m if line_config.depth_tolerance_m is not None else cell,
    )


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


@dataclass
class WindowStatus:
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
        missing_shot = int(np.sum(self.kind == MISSING_SHOT))
        missing_receivers = int(np.sum(self.kind == MISSING_RECEIVERS))
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


def window_status(line, layout, origin, candidates, tolerances, regrid) -> WindowStatus:
    """Classifies every candidate window start: exact, regriddable, or why it cannot be used."""
    num = len(candidates)
    targets = origin + candidates[:, None] * layout.grid_spacing_m + layout.source_x_m[None, :]
    index = np.clip(np.searchsorted(line.shot_x_m, targets), 1, max(1, line.num_shots - 1))
    left, right = line.shot_x_m[index - 1], line.shot_x_m[np.minimum(index, line.num_shots - 1)]
    nearest = np.where(np.abs(targets - left) <= np.abs(targets - right), index - 1, index)
    nearest = np.minimum(nearest, line.num_shots - 1)
    offset = line.shot_x_m[nearest] - targets
    kind = np.full(num, EXACT, dtype=np.int8)
    interpolated = np.zeros(num, dtype=bool)
    shot_reason = receiver_reason = ""
    needed_gap = math.inf
    shot_far = np.abs(offset) > tolerances.shot
    kind[shot_far.any(axis=1)] = MISSING_SHOT
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
    kind[(kind == EXACT) & (np.abs(offset) > tolerances.exact).any(axis=1)] = REGRID
    for w in np.flatnonzero(kind != MISSING_SHOT):
        receiver_targets = origin + candidates[w] * layout.grid_spacing_m + layout.receiver_x_m
        for i in range(layout.num_shots):
            recorded = line.receivers(int(nearest[w, i]))
            match, gap = _receiver_match(recorded, receiver_targets, tolerances, regrid.receivers)
            if match == "missing":
                kind[w] = MISSING_RECEIVERS
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
        if kind[w] == EXACT and interpolated[w]:
            kind[w] = REGRID
    return WindowStatus(
        kind, nearest, offset, interpolated, shot_reason, receiver_reason, needed_shot, needed_gap
    )


def _receiver_match(
    recorded: np.ndarray, targets: np.ndarray, tolerances: Tolerances, mode: str
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


def coverage(starts: np.ndarray, width: int) -> int:
    if starts.size == 0:
        return 0
    covered = np.zeros(int(starts.max() - starts.min() + width), dtype=bool)
    for start in starts - starts.min():
        covered[start : start + width] = True
    return int(covered.sum())


def choose_windows(allowed: np.ndarray, step: int, quality: np.ndarray | None = None) -> np.ndarray:
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


__all__ = [
    "EXACT",
    "MISSING_RECEIVERS",
    "MISSING_SHOT",
    "REGRID",
    "Tolerances",
    "WindowPlan",
    "WindowStatus",
    "choose_windows",
    "coverage",
    "grid_origin_m",
    "resolve_tolerances",
    "window_status",
]
