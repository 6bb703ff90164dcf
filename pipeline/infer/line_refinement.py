"""The whole-line refinement of an inference run (``--set refine.mode=line``): one model, no seams.

With ``refine.mode: window`` each window is refined on its own, beside its prediction
(``pipeline.infer.processing``). With ``refine.mode: line`` the windows keep their recorded gathers in their
files (``observed``); once every window is done, ``refine_run_line`` stitches the network's section, refines
it as one model against every window's traces (``pipeline.refine.refine_line``) and saves the result in the
work folder (``line_refinement.npz``, written once: a resumed run reuses it). Stitching then takes each
window's columns of that section as its refined map (``line_refined_maps``), so the refined section is the
line's result exactly, and the summary reports the line's misfit, not per-window ones.

The line's refinement runs where the model is (the process that finishes the last window): it needs the
model's engine settings, which the run record does not hold. ``--merge`` alone therefore cannot do it and
says so.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_output
from core.config import json_ready
from core.errors import UserError
from pipeline.infer.config import InferConfig
from pipeline.infer.model import velocity_bounds
from pipeline.infer.processing import whole_cell_shifts
from pipeline.infer.work_dir import window_path
from pipeline.qc import engine_setup
from pipeline.stitching import stitch_in_memory
from pipeline.windows import ModelLayout, WindowPlan

logger = logging.getLogger(__name__)

#: The work folder's file with the line's refined section and its record.
LINE_REFINEMENT_FILE = "line_refinement.npz"

#: What a window's refine_note says in line mode (its own misfit columns stay empty).
LINE_NOTE = "refined with the whole line (refine.mode=line): see the line's numbers in summary.json"


def refine_run_line(
    work: Path,
    bundle: Any,
    layout: ModelLayout,
    plan: WindowPlan,
    config: InferConfig,
    correction: Any,
    truth: Any = None,
) -> dict[str, Any]:
    """Refines the stitched network section of a finished run as one model; saves and returns its record.

    Args:
        work: the run's work folder (every window file present, with its ``observed`` gathers).
        bundle: the model (its engine settings and training velocity range).
        layout, plan: the model's window layout and the line's window plan.
        config: the run's settings (``refine``, ``stitching``).
        correction: the run's ``pipeline.infer.processing.LineCorrection``: the QC's source correction (for
            ``refine.source_correction: qc``) and the line's estimated delay (the refinement's wavelet
            estimate is centred on it).
        truth: the true section (``pipeline.section.open_truth``) or None: velocity errors per iteration.

    Returns:
        The record saved with the section: the ``RefineResult``'s numbers, the windows used, the warning.

    Raises:
        UserError: no engine for the model's geometry, or no window with recorded gathers.
    """
    path = work / LINE_REFINEMENT_FILE
    if path.is_file():
        return load_line_refinement(work)[1]
    from pipeline.refine import refine_line

    try:
        setup = engine_setup(layout, bundle.engine_settings)
    except ValueError as error:
        raise UserError(f"refine.mode=line cannot simulate this model's geometry: {error}") from None
    maps, starts, observed, used = [], [], [], []
    for window in range(plan.num_windows):
        with np.load(window_path(work, window)) as arrays:
            maps.append({name: arrays[name] for name in ("velocity_mps", "edges") if name in arrays})
            if "observed" in arrays:
                observed.append(arrays["observed"])
                starts.append(int(plan.column_start[window]))
                used.append(window)
    if not used:
        raise UserError(
            "refine.mode=line found no window with recorded traces to fit (every window was skipped, e.g. no "
            "signal): nothing to refine. Check the input, or run without --refine."
        )
    stitched, _ = stitch_in_memory(plan.num_columns, plan.column_start, maps, config.stitching)
    section = _filled(stitched["velocity_mps"])
    edges = _filled(stitched["edges"]) if "edges" in stitched else None
    true_section = None
    if truth is not None:
        true_section = truth.window(plan.column_x_m())
        if not np.all(np.isfinite(true_section)):
            true_section = None  # the truth does not cover the line: its errors are measured on the section
    logger.info(
        "Refining the whole line: %d columns, the shots of %d of %d windows, %d iterations.",
        plan.num_columns,
        len(used),
        plan.num_windows,
        config.refine.iterations,
    )
    started = time.perf_counter()
    result = refine_line(
        observed,
        starts,
        section,
        setup,
        config.refine,
        velocity_bounds(bundle),
        correction.qc.source_correction,
        true_section_mps=true_section,
        edges=edges,
        wavelet_delay_s=correction.delay_s,
        source_shift_cells=[whole_cell_shifts(plan, layout, window) for window in used],
    )
    record = {
        "mode": "line",
        "windows_used": len(used),
        "num_windows": plan.num_windows,
        **result.record(),
        "refine_time_s": time.perf_counter() - started,
        "gradient_evaluations": result.gradient_evaluations,
        "stages": result.stages,
        "warning": result.warning,
    }
    with atomic_output(path) as temporary, open(temporary, "wb") as handle:
        np.savez(
            handle,
            refined_velocity_mps=result.velocity_mps.astype(np.float32),
            record=np.asarray(json.dumps(json_ready(record))),
        )
    return record


def load_line_refinement(work: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """``(refined section (depth, columns), record)`` saved by ``refine_run_line``.

    Raises:
        UserError: the line has not been refined yet (``--merge`` cannot: the model is needed).
    """
    path = work / LINE_REFINEMENT_FILE
    if not path.is_file():
        raise UserError(
            f"{path} is missing: with refine.mode=line the whole line is refined once every window is done, by "
            "the process that has the model. Run the same pipeline.infer command again with --resume (it "
            "refines the line and writes the section); --merge alone cannot."
        )
    with np.load(path) as arrays:
        return arrays["refined_velocity_mps"], json.loads(str(arrays["record"]))


def line_refined_maps(refined: np.ndarray, column_start: int, width: int) -> np.ndarray:
    """A window's columns of the refined section: stitched like the windows' own maps, identical values give
    the section back."""
    return refined[:, column_start : column_start + width]


def line_summary(record: dict[str, Any]) -> dict[str, Any]:
    """The line's refinement numbers for ``summary.json`` (``pipeline.refine.summarise``'s keys where they
    mean the same; one value, so each median is that value)."""
    reduced = record["refine_misfit_after"] < record["refine_misfit_before"]
    return {
        "mode": "line",
        "num_refined": float(record["windows_used"]),
        "num_misfit_reduced": float(record["windows_used"]) if reduced else 0.0,
        "num_warnings": 1.0 if record.get("warning") else 0.0,
        "warning": record.get("warning", ""),
        "misfit_before_median": record["refine_misfit_before"],
        "misfit_after_median": record["refine_misfit_after"],
        "time_s": record["refine_time_s"],
        "time_per_window_s": record["refine_time_s"] / max(1, record["num_windows"]),
        "gradient_evaluations": record["gradient_evaluations"],
        "wavelet_polarity_median": record["refine_wavelet_polarity"],
        "wavelet_lag_median_s": record["refine_wavelet_lag_s"],
    }


def _filled(section: np.ndarray) -> np.ndarray:
    """Columns no window covers (NaN) take the nearest covered column's values."""
    covered = np.flatnonzero(np.all(np.isfinite(section), axis=0))
    if covered.size == section.shape[1]:
        return section
    nearest = covered[np.abs(np.arange(section.shape[1])[:, None] - covered[None, :]).argmin(axis=1)]
    return section[:, nearest]


__all__ = [
    "LINE_NOTE",
    "LINE_REFINEMENT_FILE",
    "line_refined_maps",
    "line_summary",
    "load_line_refinement",
    "refine_run_line",
]
