"""The windows of a survey line: each window refined on its own (``refine_windows``) or the line as one model.

Part of ``pipeline.refine``. ``refine_windows`` is what ``pipeline.infer --refine N`` runs for a batch of
windows (one at a time: memory of one window's gradient), keeping the network's model where a window is
skipped or the engine refuses. ``refine_line`` refines the whole section at once (``mode="line"``): one
model, each window's shots simulated over its own columns of it, no seams. ``line_geometry`` is the
section's acquisition (every distinct shot and receiver of the windows) and ``line_survey`` places every
window's gathers on it (a mask of the recorded shot/receiver pairs), e.g. to simulate a line.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from data_prep.geometry import AcquisitionGeometry
from pipeline.refine.config import REFINE_FIELDS, RefineConfig, RefineResult
from pipeline.refine.engine import refinement_engine
from pipeline.refine.inversion import _checked_inputs, _solve, _window_objective, refine
from pipeline.refine.objective import _LineObjective


def refine_windows(
    observed: Sequence[np.ndarray],
    predicted_mps: np.ndarray,
    setup: Any,
    config: RefineConfig,
    bounds_mps: tuple[float, float] | None,
    source_correction: str,
    truth_mps: Sequence[np.ndarray | None] | None = None,
    skip: Sequence[str] | None = None,
    edges: np.ndarray | None = None,
    wavelet_delay_s: float = 0.0,
    source_shift_cells: Sequence[Sequence[int]] | None = None,
    spans: Sequence[Any | None] | None = None,
) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """Refines a batch of windows one at a time (memory: one window's gradient).

    A window with a span (``spans``) is refined over the span: the network's model with its edge columns
    continued into the added ones, every trace the window's shots recorded there fitted too (offsets longer
    than the window's), and only the window's own columns kept.

    Args:
        observed: per window ``(shots, time, receivers)`` gathers on the model's geometry (survey units).
        predicted_mps: ``(windows, depth, x)`` the network's velocity.
        setup: ``pipeline.qc.EngineSetup`` (geometry, engine settings, wavelet of the training data).
        config: the refinement settings.
        bounds_mps: the training velocity range (``config.bounds_mps`` wins).
        source_correction: the QC's source correction (used when ``config.source_correction`` is ``"qc"``).
        truth_mps: per window the true velocity or None.
        skip: per window a reason not to refine it (empty string: refine), e.g. the window has no signal.
        edges: ``(windows, depth, x)`` the network's edge maps (the structural prior), or None.
        wavelet_delay_s: the data's estimated delay (``refine``'s), or 0.
        source_shift_cells: per window, per shot, the whole cells by which the shot was fired off the
            model's position (``--regrid`` takes the nearest survey shot): simulated where it was fired, so
            the velocity does not have to explain the move. None: every shot at the model's position.
        spans: per window its shots over a wider span (``pipeline.windows.SpanGathers``: ``left_cells``,
            ``right_cells``, ``gathers``, ``trace_mask``, ``receiver_x_m``), used instead of ``observed``,
            or None (the window's own receivers). ``truth_mps`` stays the window's.

    Returns:
        Per window ``(refined velocity (depth, x) float32, record)``; the record holds ``REFINE_FIELDS``,
        ``refine_note`` (a warning, or why the window was not refined; then the network's velocity is kept).
    """
    results = []
    for index, prediction in enumerate(np.asarray(predicted_mps, np.float32)):
        record: dict[str, Any] = {name: float("nan") for name in REFINE_FIELDS} | {"refine_note": ""}
        reason = skip[index] if skip is not None else ""
        if reason:
            record["refine_note"] = f"not refined: {reason}"
            results.append((prediction, record))
            continue
        truth = truth_mps[index] if truth_mps is not None else None
        edge_map = None if edges is None else edges[index]
        span = spans[index] if spans is not None else None
        geometry, gathers, mask, keep = setup.geometry, observed[index], None, slice(None)
        start = prediction
        if span is not None and span.left_cells + span.right_cells > 0:
            geometry = span_geometry(geometry, span.left_cells, span.right_cells, span.receiver_x_m)
            gathers, mask = span.gathers, span.trace_mask
            keep = slice(span.left_cells, span.left_cells + prediction.shape[1])
            sides = ((0, 0), (span.left_cells, span.right_cells))
            start = np.pad(prediction, sides, mode="edge")
            edge_map = None if edge_map is None else np.pad(edge_map, sides, mode="edge")
            truth = (
                None
                if truth is None
                else np.pad(np.asarray(truth, np.float64), sides, constant_values=np.nan)
            )
        shifts = None if source_shift_cells is None else source_shift_cells[index]
        try:
            result = refine(
                gathers,
                start,
                geometry if shifts is None else geometry.shift_sources(shifts),
                setup.config,
                config,
                wavelet=setup.wavelet,
                bounds_mps=bounds_mps,
                true_velocity_mps=truth,
                source_correction=source_correction,
                edges=edge_map,
                trace_mask=mask,
                wavelet_delay_s=wavelet_delay_s,
            )
        except ValueError as error:  # the engine refused (e.g. CFL): keep the network's model, say why
            record["refine_note"] = f"not refined: {error}"
            results.append((prediction, record))
            continue
        record.update(result.record())
        record["refine_note"] = result.warning
        results.append((np.ascontiguousarray(result.velocity_mps[:, keep]), record))
    return results


def span_geometry(
    geometry: AcquisitionGeometry, left_cells: int, right_cells: int, receiver_x_m: np.ndarray
) -> AcquisitionGeometry:
    """``geometry`` (a window's) widened by ``left_cells`` / ``right_cells`` columns, its shots moved with its
    columns and its receivers at ``receiver_x_m`` (metres from the window's left edge), each at the depth of
    the window's receiver nearest along x.

    Raises:
        ValueError: negative padding, a receiver that falls outside the widened grid.
    """
    if left_cells < 0 or right_cells < 0:
        raise ValueError(f"Padding must be >= 0 cells. Received: left {left_cells}, right {right_cells}")
    depth, width = geometry.grid_shape
    cells = np.rint(np.asarray(receiver_x_m, np.float64) / geometry.grid_spacing_m).astype(np.int64)
    window_receivers = np.asarray(geometry.receiver_cells, np.int64)
    nearest = np.abs(cells[:, None] - window_receivers[None, :, 1]).argmin(axis=1)
    return geometry.replace(
        grid_shape=(depth, width + left_cells + right_cells),
        source_cells=tuple((int(d), int(x) + left_cells) for d, x in geometry.source_cells),
        receiver_cells=tuple(
            (int(window_receivers[n, 0]), int(x) + left_cells) for n, x in zip(nearest, cells, strict=True)
        ),
    )


def _fired(
    geometry: AcquisitionGeometry, source_shift_cells: Sequence[Sequence[int]] | None, window: int
) -> AcquisitionGeometry:
    """The window's geometry with its shots where they were fired (``source_shift_cells[window]``)."""
    return geometry if source_shift_cells is None else geometry.shift_sources(source_shift_cells[window])


@dataclass
class LineSurvey:
    """The windows of a line gathered into one survey over the whole section (``mode="line"``).

    Attributes:
        geometry: the section's grid ``(depth, columns)`` with every distinct shot and receiver of the windows.
        observed: ``(shots, time, receivers)`` the windows' traces at their place on the line (zero where not
            recorded; a trace seen by several windows is their mean).
        trace_mask: ``(shots, receivers)`` 1 where a window recorded the trace.
    """

    geometry: AcquisitionGeometry
    observed: np.ndarray
    trace_mask: np.ndarray


def line_geometry(
    window_geometry: AcquisitionGeometry, column_starts: Sequence[int], num_columns: int, num_windows: int
) -> AcquisitionGeometry:
    """The section's geometry: its grid ``(depth, num_columns)`` with every distinct shot and receiver of the
    windows (each window's cells moved by its first column), in order along the line.

    Raises:
        ValueError: a count of windows and starts that differ, a window outside the section.
    """
    if num_windows != len(column_starts):
        raise ValueError(
            f"Give one column start per window. Received: {num_windows} windows, {len(column_starts)} starts"
        )
    width = window_geometry.grid_shape[1]
    starts = [int(c) for c in column_starts]
    if starts and (min(starts) < 0 or max(starts) + width > num_columns):
        raise ValueError(
            f"Every window must lie inside the section's {num_columns} columns (window width {width}). "
            f"Received: starts {min(starts)}..{max(starts)}"
        )
    shots = {(d, x + start) for start in starts for d, x in window_geometry.source_cells}
    receivers = {(d, x + start) for start in starts for d, x in window_geometry.receiver_cells}
    return window_geometry.replace(
        grid_shape=(window_geometry.grid_shape[0], int(num_columns)),
        source_cells=tuple(sorted(shots, key=lambda cell: (cell[1], cell[0]))),
        receiver_cells=tuple(sorted(receivers, key=lambda cell: (cell[1], cell[0]))),
    )


def line_survey(
    observed_windows: Sequence[np.ndarray],
    column_starts: Sequence[int],
    window_geometry: AcquisitionGeometry,
    num_columns: int,
) -> LineSurvey:
    """Places each window's gathers ``(shots, time, receivers)`` at its first section column.

    Raises:
        ValueError: a count of windows and starts that differ, a window outside the section.
    """
    geometry = line_geometry(window_geometry, column_starts, num_columns, len(observed_windows))
    shot_index = {cell: i for i, cell in enumerate(geometry.source_cells)}
    receiver_index = {cell: i for i, cell in enumerate(geometry.receiver_cells)}
    starts = [int(c) for c in column_starts]
    num_samples = window_geometry.num_samples
    total = np.zeros((geometry.num_sources, num_samples, geometry.num_receivers))
    count = np.zeros((geometry.num_sources, geometry.num_receivers))
    for gathers, start in zip(observed_windows, starts, strict=True):
        gathers = np.asarray(gathers, np.float64)
        rows = [shot_index[(d, x + start)] for d, x in window_geometry.source_cells]
        columns = [receiver_index[(d, x + start)] for d, x in window_geometry.receiver_cells]
        total[np.ix_(rows, range(num_samples), columns)] += gathers
        count[np.ix_(rows, columns)] += 1.0
    observed = total / np.maximum(count, 1.0)[:, None, :]
    return LineSurvey(geometry, observed, (count > 0).astype(np.float64))


def refine_line(
    observed_windows: Sequence[np.ndarray],
    column_starts: Sequence[int],
    initial_section_mps: np.ndarray,
    setup: Any,
    config: RefineConfig,
    bounds_mps: tuple[float, float] | None,
    source_correction: str = "scale",
    *,
    true_section_mps: np.ndarray | None = None,
    edges: np.ndarray | None = None,
    wavelet_delay_s: float = 0.0,
    source_shift_cells: Sequence[Sequence[int]] | None = None,
) -> RefineResult:
    """Refines the whole section at once (``mode="line"``): one model, so no seams.

    Each window's shots are simulated over the window's own columns of the line's model (as in window
    mode, so an evaluation costs what the windows cost), their residuals summed over the line
    (``pipeline.refine.objective._LineObjective``), the gradient scattered back onto the one model; each
    window keeps its own source correction.

    Args:
        observed_windows: per window ``(shots, time, receivers)`` gathers on the model's window geometry.
        column_starts: per window its first column in the section.
        initial_section_mps: ``(depth, columns)`` the network's stitched section (no NaN: fill gaps first).
        setup: ``pipeline.qc.EngineSetup`` of the model's window (geometry, engine settings, wavelet).
        config, bounds_mps, source_correction, wavelet_delay_s: as for ``refine``.
        source_shift_cells: as for ``refine_windows`` (per window, per shot).
        true_section_mps, edges: ``(depth, columns)`` truth and the network's edge section, or None.

    Returns:
        The ``RefineResult`` of the line (its misfits are over every trace of every window).

    Raises:
        ValueError: windows outside the section or of another shape, a NaN start, missing bounds.
    """
    started = time.perf_counter()
    section = np.asarray(initial_section_mps, np.float64)
    window_geometry = setup.geometry
    if section.ndim != 2 or section.shape[0] != window_geometry.grid_shape[0]:
        raise ValueError(
            f"initial_section_mps must be (depth, columns) with the model's {window_geometry.grid_shape[0]} "
            f"depth cells. Received: {section.shape}"
        )
    if not np.all(np.isfinite(section)):
        raise ValueError(
            "initial_section_mps holds NaN or infinite values: fill the uncovered columns first."
        )
    if edges is not None and np.shape(edges) != section.shape:
        raise ValueError(
            f"edges must be (depth, columns) = {section.shape}, or None. Received: {np.shape(edges)}"
        )
    geometry = line_geometry(window_geometry, column_starts, section.shape[1], len(observed_windows))
    if setup.wavelet is not None and np.ndim(setup.wavelet) == 2:
        raise ValueError("refine_line needs one wavelet for every shot (a (num_samples,) array) or None.")
    width = window_geometry.grid_shape[1]
    checked = []
    for gathers, first in zip(observed_windows, column_starts, strict=True):
        # Each window's gathers against the window's geometry (the section and its edges are checked above).
        observed, _, bounds = _checked_inputs(
            gathers,
            section[:, int(first) : int(first) + width],
            window_geometry,
            config,
            bounds_mps,
            None,
            None,
        )
        checked.append(observed)
    engine = refinement_engine(setup.config, window_geometry.num_samples, config, window_geometry)
    method = source_correction if config.source_correction == "qc" else config.source_correction
    parts = [
        _window_objective(
            observed,
            _fired(window_geometry, source_shift_cells, index),
            engine,
            setup.wavelet,
            bounds,
            method,
            config,
            None,
            wavelet_delay_s,
        )
        for index, observed in enumerate(checked)
    ]
    truth = None if true_section_mps is None else np.asarray(true_section_mps, np.float64)
    objective = _LineObjective(parts, column_starts, section.shape, bounds, truth, config.iterations)
    return _solve(objective, section, geometry, config, edges, truth, started)
