"""The windows of a survey line: each window refined on its own (``refine_windows``) or the line as one model.

Part of ``pipeline.refine``. ``refine_windows`` is what ``pipeline.infer --refine N`` runs for a batch of
windows (one at a time: memory of one window's gradient), keeping the network's model where a window is
skipped or the engine refuses. ``line_survey`` places every window's gathers at their place on the section
(a mask of the recorded shot/receiver pairs) and ``refine_line`` refines the whole section at once
(``mode="line"``): no seams.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from data_prep.geometry import AcquisitionGeometry
from pipeline.refine.config import REFINE_FIELDS, RefineConfig, RefineResult
from pipeline.refine.inversion import refine


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
) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """Refines a batch of windows one at a time (memory: one window's gradient).

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
        try:
            result = refine(
                observed[index],
                prediction,
                setup.geometry,
                setup.config,
                config,
                wavelet=setup.wavelet,
                bounds_mps=bounds_mps,
                true_velocity_mps=truth,
                source_correction=source_correction,
                edges=None if edges is None else edges[index],
            )
        except ValueError as error:  # the engine refused (e.g. CFL): keep the network's model, say why
            record["refine_note"] = f"not refined: {error}"
            results.append((prediction, record))
            continue
        record.update(result.record())
        record["refine_note"] = result.warning
        results.append((result.velocity_mps, record))
    return results


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
    if len(observed_windows) != len(column_starts):
        raise ValueError(
            f"Give one column start per window. Received: {len(observed_windows)} windows, "
            f"{len(column_starts)} starts"
        )
    width = window_geometry.grid_shape[1]
    starts = [int(c) for c in column_starts]
    if starts and (min(starts) < 0 or max(starts) + width > num_columns):
        raise ValueError(
            f"Every window must lie inside the section's {num_columns} columns (window width {width}). "
            f"Received: starts {min(starts)}..{max(starts)}"
        )
    shots: dict[tuple[int, int], int] = {}
    receivers: dict[tuple[int, int], int] = {}
    for start in starts:
        for depth, x in window_geometry.source_cells:
            shots.setdefault((depth, x + start), len(shots))
        for depth, x in window_geometry.receiver_cells:
            receivers.setdefault((depth, x + start), len(receivers))
    shot_order = sorted(shots, key=lambda cell: (cell[1], cell[0]))
    receiver_order = sorted(receivers, key=lambda cell: (cell[1], cell[0]))
    shot_index = {cell: i for i, cell in enumerate(shot_order)}
    receiver_index = {cell: i for i, cell in enumerate(receiver_order)}
    num_samples = window_geometry.num_samples
    total = np.zeros((len(shot_order), num_samples, len(receiver_order)))
    count = np.zeros((len(shot_order), len(receiver_order)))
    for gathers, start in zip(observed_windows, starts, strict=True):
        gathers = np.asarray(gathers, np.float64)
        rows = [shot_index[(d, x + start)] for d, x in window_geometry.source_cells]
        columns = [receiver_index[(d, x + start)] for d, x in window_geometry.receiver_cells]
        total[np.ix_(rows, range(num_samples), columns)] += gathers
        count[np.ix_(rows, columns)] += 1.0
    observed = total / np.maximum(count, 1.0)[:, None, :]
    geometry = window_geometry.replace(
        grid_shape=(window_geometry.grid_shape[0], int(num_columns)),
        source_cells=tuple(shot_order),
        receiver_cells=tuple(receiver_order),
    )
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
) -> RefineResult:
    """Refines the whole section at once (``mode="line"``): no windows, so no seams.

    Args:
        observed_windows: per window ``(shots, time, receivers)`` gathers on the model's window geometry.
        column_starts: per window its first column in the section.
        initial_section_mps: ``(depth, columns)`` the network's stitched section (no NaN: fill gaps first).
        setup: ``pipeline.qc.EngineSetup`` of the model's window (geometry, engine settings, wavelet).
        config, bounds_mps, source_correction: as for ``refine``.
        true_section_mps, edges: ``(depth, columns)`` truth and the network's edge section, or None.

    Returns:
        The ``RefineResult`` of the line (its misfits are over every recorded trace of every window).
    """
    section = np.asarray(initial_section_mps, np.float64)
    survey = line_survey(observed_windows, column_starts, setup.geometry, section.shape[1])
    wavelet = setup.wavelet
    if wavelet is not None and np.ndim(wavelet) == 2:
        raise ValueError("refine_line needs one wavelet for every shot (a (num_samples,) array) or None.")
    return refine(
        survey.observed,
        section,
        survey.geometry,
        setup.config,
        config,
        wavelet=wavelet,
        bounds_mps=bounds_mps,
        true_velocity_mps=true_section_mps,
        source_correction=source_correction,
        edges=edges,
        trace_mask=survey.trace_mask,
    )
