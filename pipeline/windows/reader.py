"""Step 4: cutting a window's gathers out of the line onto the model's geometry (``WindowReader.read``).

Part of ``pipeline.windows``. Time: band-limited resampling (``scipy.signal.resample_poly`` through
``data_prep.regularization.resample_time``); receivers: linearly interpolated or nearest.
"""

from __future__ import annotations

import numpy as np

from data_prep.regularization import resample_time
from pipeline.windows.config import LineConfig, RegridConfig
from pipeline.windows.layout import ModelLayout
from pipeline.windows.plan import WindowPlan, resolve_tolerances
from pipeline.windows.survey_line import SurveyLine


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
    "WindowReader",
]
