"""Step 4: cutting a window's gathers out of the line onto the model's geometry (``WindowReader.read``).

Part of ``pipeline.windows``. Time: band-limited resampling (``scipy.signal.resample_poly`` through
``data_prep.regularization.resample_time``); receivers: linearly interpolated or nearest.
``WindowReader.read_span`` also reads the receivers the window's shots recorded beyond its edges (the model's
receiver pattern continued), for a refinement that fits longer offsets than the network saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_prep.regularization import resample_time
from pipeline.windows.config import LineConfig, RegridConfig
from pipeline.windows.layout import ModelLayout
from pipeline.windows.plan import WindowPlan, resolve_tolerances
from pipeline.windows.survey_line import SurveyLine


@dataclass(frozen=True)
class SpanGathers:
    """A window's shots recorded over a span wider than the window (``WindowReader.read_span``).

    Attributes:
        left_cells, right_cells: columns the span adds on each side of the window.
        gathers: ``(shots, time, receivers)`` float32, survey amplitude units; zero where not recorded.
        trace_mask: ``(shots, receivers)`` 1.0 where the shot recorded that receiver, else 0.0.
        receiver_x_m: ``(receivers,)`` positions from the window's left edge (negative on the left): the
            model's receivers, with its receiver spacing continued into the added columns.
    """

    left_cells: int
    right_cells: int
    gathers: np.ndarray
    trace_mask: np.ndarray
    receiver_x_m: np.ndarray


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
        self.tolerances = resolve_tolerances(layout, line_config, regrid)

    def read(self, window: int) -> np.ndarray:
        """``(shots, time, receivers)`` float32 gathers of window ``window`` in the survey's amplitude units."""
        layout = self.layout
        targets = self.plan.window_origin_m()[window] + layout.receiver_x_m
        gathers = np.empty((layout.num_shots, layout.num_samples, layout.num_receivers), dtype=np.float32)
        for i, shot in enumerate(self.plan.shot_index[window]):
            gathers[i] = self._traces_at(int(shot), targets).T
        return gathers

    def read_span(
        self, window: int, padding_cells: int, window_gathers: np.ndarray | None = None
    ) -> SpanGathers:
        """Window ``window``'s shots over up to ``padding_cells`` more columns on each side
        (``window_gathers``: what ``read(window)`` returned, when the caller has it: not read again).

        The model's receivers are read as ``read`` reads them; beyond the window's edges the model's receiver
        spacing is continued, and a receiver there counts as recorded by a shot when that shot has a trace
        within the receiver tolerance of it (or, with ``regrid.receivers: interpolate``, between two recorded
        receivers at most the largest allowed gap apart). The span stops at the outermost receiver any of the
        window's shots recorded, so no column is added that no trace constrains.

        Raises:
            ValueError: a negative ``padding_cells``.
        """
        if padding_cells < 0:
            raise ValueError(f"padding_cells must be >= 0. Received: {padding_cells}")
        layout, line = self.layout, self.line
        dx = layout.grid_spacing_m
        origin = float(self.plan.window_origin_m()[window])
        shots = [int(shot) for shot in self.plan.shot_index[window]]
        recorded_min = min(float(line.receivers(shot).min()) - origin for shot in shots)
        recorded_max = max(float(line.receivers(shot).max()) - origin for shot in shots)
        tolerance = self.tolerances.receiver
        left = int(np.clip(np.floor((tolerance - recorded_min) / dx + 1e-9), 0, padding_cells))
        right_edge = (layout.width_cells - 1) * dx
        right = int(np.clip(np.floor((recorded_max - right_edge + tolerance) / dx + 1e-9), 0, padding_cells))
        model = np.asarray(layout.receiver_x_m, np.float64)
        step = layout.receiver_spacing_m
        below = np.arange(model.min() - step, -left * dx - 1e-6, -step)[::-1]
        above = np.arange(model.max() + step, right_edge + right * dx + 1e-6, step)
        receiver_x = np.concatenate([below, model, above])
        inside = np.arange(len(below), len(below) + len(model))
        window_gathers = self.read(window) if window_gathers is None else window_gathers
        gathers = np.zeros((layout.num_shots, layout.num_samples, len(receiver_x)), dtype=np.float32)
        mask = np.zeros((layout.num_shots, len(receiver_x)))
        gathers[:, :, inside] = window_gathers
        mask[:, inside] = 1.0
        outside = np.setdiff1d(np.arange(len(receiver_x)), inside)
        for i, shot in enumerate(shots):
            recorded = line.receivers(shot)
            targets = origin + receiver_x[outside]
            covered = self._covered(recorded, targets)
            if not covered.any():
                continue
            gathers[i][:, outside[covered]] = self._traces_at(shot, targets[covered]).T
            mask[i, outside[covered]] = 1.0
        return SpanGathers(left, right, gathers, mask, receiver_x)

    def _traces_at(self, shot: int, targets: np.ndarray) -> np.ndarray:
        """``(targets, time)`` float32: survey shot ``shot``'s traces at the along-line positions ``targets``,
        on the model's time axis (recorded receivers selected, others interpolated per ``regrid``)."""
        line, layout = self.line, self.layout
        weights_rows, columns = self._receiver_weights(line.receivers(shot), targets)
        first = line.trace_start[shot]
        survey_file = line.files[int(line.shot_file[shot])]
        traces = survey_file.scan.read_traces(line.trace_index[first + columns])  # (used, samples)
        traces = resample_time(
            traces, survey_file.sample_interval_s, layout.sample_interval_s, layout.num_samples, axis=-1
        )
        if np.all(np.count_nonzero(weights_rows, axis=1) == 1) and np.all(weights_rows.max(axis=1) == 1.0):
            return traces[np.argmax(weights_rows, axis=1)]  # recorded receivers: a selection
        return (weights_rows @ traces.astype(np.float64)).astype(np.float32)

    def _covered(self, recorded: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """``(targets,)`` True where the shot's receivers ``recorded`` (sorted) give a trace at the target."""
        position = np.clip(np.searchsorted(recorded, targets), 0, len(recorded))
        left = recorded[np.maximum(position - 1, 0)]
        right = recorded[np.minimum(position, len(recorded) - 1)]
        nearest = np.minimum(np.abs(targets - left), np.abs(targets - right))
        covered = nearest <= self.tolerances.receiver
        if self.regrid.receivers != "nearest":
            between = (left <= targets) & (targets <= right) & (right - left <= self.tolerances.gap)
            covered |= between
        return covered

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
    "SpanGathers",
    "WindowReader",
]
