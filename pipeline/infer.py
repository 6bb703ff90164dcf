"""Batch inference on survey SEG-Y: windows along a line, stitched velocity and edge sections, physics QC.

Pipeline position: the last stage. A trained model bundle (``pipeline.bundle``, from ``pipeline.train``: a
folder, ``runs:/…`` or ``models:/…``) and the shot gathers of a 2D survey line go in; a velocity section
comes out::

    python -m pipeline.infer --model models:/unet@champion --input line.sgy --out runs/line1
    python -m pipeline.infer --model bundles/unet --input part1.sgy part2.sgy --out runs/line1 --regrid
    python -m pipeline.infer ... --shard 3/8          # job-array part 3 of 8; the last part merges
    python -m pipeline.infer --merge --out runs/line1 # stitch what the shards wrote (if needed)
    python -m pipeline.infer ... --resume             # continue an interrupted run

``infer(inputs, model, out, config)`` is the pure function behind the command line:

1. read the line's geometry from the trace headers and check it against the model's training geometry
   (``pipeline.windows``): every mismatch is listed with the option that fixes it; with ``--regrid`` time
   axes are resampled, receivers interpolated and shots taken from the nearest position within tolerance;
2. plan windows of the model's acquisition layout along the line, half a window apart by default;
3. estimate the polarity, delay and phase of the survey's wavelet relative to the training wavelet from the
   direct wave (``pipeline.input_correction``; ``input_correction.enabled``), which also decides the QC's
   source correction (``qc.source_correction: auto``) and its threshold (the misfit floor);
4. per window (in batches, memory bounded by a batch): cut out and regrid the gathers, undo the estimated
   polarity/delay/phase for the network, calibrate their amplitude to the training data's
   (``pipeline.calibration``), predict velocity and edges, run the physics QC (``pipeline.qc``:
   re-simulation, misfit, velocity errors against ``--truth``), and save the window's result atomically
   under ``OUT/.work/windows/`` — which is what ``--resume`` and ``--shard`` build on;
5. when every window is done, stitch them streaming (``pipeline.stitching``) into ``OUT/section.h5`` and
   write ``section_velocity.segy`` (+ ``section_edges.segy``), PNG previews, ``qc.csv`` and
   ``summary.json`` (``pipeline.section``), every file under a temporary name first.

Outputs in ``OUT``: ``section.h5``, ``section_velocity.segy``, ``section_edges.segy``,
``section_velocity.png``, ``section_edges.png``, ``qc.png``, ``qc.csv``, ``summary.json``. The per-window
files are removed after a successful merge unless ``outputs.keep_window_files`` is set.

``--refine N`` (``pipeline.refine``) also runs N iterations of full-waveform inversion per window, starting
from the network's velocity, and writes the refined section beside the network's: ``refined_velocity_mps``
in ``section.h5`` (with the data misfit before/after and, with ``--truth``, the velocity error before/after
per window), ``section_refined_velocity.segy`` and ``refinement.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import json
import logging
import math
import os
import shutil
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import __version__
from core.atomic import atomic_output, write_text_atomic
from core.cli import add_common_arguments, make_parser, run_main
from core.config import (
    add_config_arguments,
    config_hash,
    from_dict,
    json_ready,
    load_config,
    to_dict,
    to_yaml,
)
from core.errors import UserError
from core.progress import Progress
from pipeline.calibration import (
    CalibrationConfig,
    amplitude_statistic,
    calibration_factor,
    line_sample,
    training_target,
)
from pipeline.input_correction import (
    CORRECTION_FIELDS,
    InputCorrection,
    InputCorrectionConfig,
    correlate_window,
    describe,
    estimate_from,
    reference_direct_waves,
)
from pipeline.input_correction import summary as correction_summary
from pipeline.qc import QC_FIELDS, QCConfig, aggregate, engine_setup, plot_qc, summary_table, window_qc
from pipeline.refine import REFINE_FIELDS, RefineConfig
from pipeline.section import SectionWriter, open_truth, write_previews, write_section_segy
from pipeline.stitching import StitchingConfig, StreamingStitcher
from pipeline.windows import (
    LineConfig,
    LineFrame,
    ModelLayout,
    RegridConfig,
    WindowConfig,
    WindowPlan,
    WindowReader,
    check_geometry,
    read_survey_line,
)

logger = logging.getLogger(__name__)

WORK_DIR = ".work"
SECTION_FILE = "section.h5"
RUN_FILE = "run.json"
PLAN_FILE = "plan.npz"
LOCK_FILE = "merge.lock"
RUN_FORMAT = "seisinvert-inference-run"


# ----------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputConfig:
    """Which files are written besides ``section.h5``.

    Attributes:
        segy: the SEG-Y velocity section (and the edge section when the model has an edge head).
        png: PNG previews of the sections and the QC plot.
        keep_window_files: keep ``OUT/.work`` (per-window predictions and QC) after the merge.
        preview_max_columns: previews show at most this many columns (decimated).
    """

    segy: bool = True
    png: bool = True
    keep_window_files: bool = False
    preview_max_columns: int = 2000


@dataclass(frozen=True)
class TrackingConfig:
    """Optional MLflow logging of the run (inputs, model, options, QC table and figures).

    Attributes:
        enabled: log to MLflow (``--mlflow``).
        experiment: MLflow experiment name.
        tracking_uri: None uses MLflow's default (``MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``).
        run_name: MLflow run name; None: ``infer-<output folder name>``.
    """

    enabled: bool = False
    experiment: str = "inference"
    tracking_uri: str | None = None
    run_name: str | None = None


@dataclass(frozen=True)
class InferConfig:
    """Settings of ``python -m pipeline.infer`` (YAML: ``configs/infer/*.yaml``; ``--set key=value``).

    Attributes:
        batch_size: windows read, calibrated and predicted together (bounds memory).
        truth: a true velocity section for velocity errors: SEG-Y (one trace per lateral position) or
            ``.npy``/``.npz``/HDF5 ``(depth, x)`` m/s (``pipeline.section.ArrayTruth``).
        progress_interval_s: seconds between progress lines when stderr is not a terminal.
        input_correction: polarity, delay and phase of the survey's wavelet estimated from the data and
            undone before prediction (``pipeline.input_correction``).
        refine: physics refinement of each window's prediction (``--refine N``; ``pipeline.refine``).
        line, regrid, windows, calibration, stitching, qc, outputs, mlflow: see each dataclass.
    """

    batch_size: int = 8
    truth: Path | None = None
    progress_interval_s: float = 10.0
    line: LineConfig = LineConfig()
    regrid: RegridConfig = RegridConfig()
    windows: WindowConfig = WindowConfig()
    input_correction: InputCorrectionConfig = InputCorrectionConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    stitching: StitchingConfig = StitchingConfig()
    qc: QCConfig = QCConfig()
    refine: RefineConfig = RefineConfig()
    outputs: OutputConfig = OutputConfig()
    mlflow: TrackingConfig = TrackingConfig()

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1. Received: {self.batch_size}")


@dataclass
class InferResult:
    """What ``infer`` did and where the outputs are."""

    out_dir: Path
    num_windows: int
    processed: int
    skipped: int
    merged: bool
    section_path: Path | None = None
    files: list[Path] = field(default_factory=list)
    qc_summary: dict[str, float] = field(default_factory=dict)
    section_errors: dict[str, float] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    mlflow_run_id: str | None = None


# ----------------------------------------------------------------------------------------------------------
# The pure function
# ----------------------------------------------------------------------------------------------------------


def infer(
    inputs: Sequence[str | Path],
    model: Any,
    out: str | Path,
    config: InferConfig = InferConfig(),
    *,
    resume: bool = False,
    shard: tuple[int, int] = (1, 1),
    progress: bool = True,
    model_uri: str | None = None,
) -> InferResult:
    """Predicts a stitched velocity section for a survey line (see the module docstring).

    Args:
        inputs: the line's shot-gather SEG-Y files.
        model: a ``pipeline.bundle.ModelBundle`` (or an object with the same ``geometry``, ``stats``,
            ``engine_settings``, ``info``, ``has_edges`` and ``predict``; one that also has
            ``predict_windows(seismic, window_origins_m, batch_size)`` is told where each window lies, e.g.
            a baseline or an oracle), or a bundle location (folder, ``runs:/…``, ``models:/…``).
        out: output folder.
        config: the settings.
        resume: continue an interrupted run in ``out`` (finished windows are skipped).
        shard: ``(K, N)``: process the K-th of N contiguous parts of the windows; the part that finishes
            last stitches the section.
        progress: print progress (a bar on a terminal, periodic lines otherwise).
        model_uri: how the model was named, for provenance (defaults to ``model`` when it is a string).

    Returns:
        An ``InferResult``; ``merged`` is False when other shards still have windows to do.

    Raises:
        UserError: bad inputs, a geometry the model cannot be applied to (every mismatch listed),
            an output folder holding another run.
    """
    started = time.perf_counter()
    out = Path(out)
    index, count = shard
    if not 1 <= index <= count:
        raise UserError(f"--shard K/N needs 1 <= K <= N. Received: {index}/{count}")
    bundle, model_uri = _resolve_model(model, model_uri)
    layout = ModelLayout.from_geometry(bundle.geometry)

    section_path = out / SECTION_FILE
    work = out / WORK_DIR
    if section_path.exists():
        if not (resume or count > 1):
            raise FileExistsError(
                f"{section_path} already exists: choose another --out (or --resume to keep the finished run)."
            )
        if not (work / RUN_FILE).exists():
            logger.info("%s is already complete: nothing to do.", section_path)
            return _finished_result(out)

    if config.refine.iterations:
        _check_refinement(bundle, layout, config)
    line = read_survey_line(inputs, config.line, grid_spacing_m=layout.grid_spacing_m)
    check = check_geometry(line, layout, config.line, config.regrid, config.windows)
    plan = check.raise_if_refused()
    regridded = [m.describe() for m in check.mismatches if m.fixed_by_regrid]
    for mismatch in regridded:
        logger.warning("Regridded: %s", mismatch)
    for warning in check.warnings:
        logger.warning("Geometry: %s", warning)
    geometry = {"warnings": check.warnings, "shot_moves": plan.shot_moves()}

    truth = None
    if config.truth is not None:
        truth = open_truth(config.truth, line.frame, layout.grid_shape[0], layout.grid_spacing_m)

    fingerprint_inputs = {
        "model": _model_identity(bundle, model_uri),
        "inputs": [{"name": f.path.name, "sha256": f.sha256} for f in line.files],
        "truth_sha256": truth.sha256 if truth else None,
        "options": {
            k: to_dict(getattr(config, k))
            for k in ("line", "regrid", "windows", "input_correction", "calibration", "qc")
            + (("refine",) if config.refine.iterations else ())
        },
    }
    fingerprint = hashlib.sha256(json.dumps(fingerprint_inputs, sort_keys=True).encode()).hexdigest()[:20]
    run = _prepare_work(work, fingerprint, plan, resume=resume, sharded=count > 1)
    correction = _LineCorrection.estimate(bundle, line, layout, plan, config)
    if run is None:
        run = _write_run_record(
            work,
            fingerprint,
            bundle,
            model_uri,
            line,
            layout,
            plan,
            config,
            regridded,
            truth,
            correction,
            geometry,
        )

    num_windows = plan.num_windows
    first, stop = _shard_range(num_windows, index, count)
    done = _done_windows(work, num_windows)
    todo = [w for w in range(first, stop) if not done[w]]
    skipped = (stop - first) - len(todo)
    if skipped:
        logger.info("Resuming: %d of this part's %d windows are already done.", skipped, stop - first)
    logger.info(
        "%d window(s) of %d columns along %.0f m%s; %d to predict here.",
        num_windows,
        layout.width_cells,
        plan.num_columns * plan.grid_spacing_m,
        f" (shard {index}/{count}: windows {first}..{stop - 1})" if count > 1 else "",
        len(todo),
    )

    timings = {"read": 0.0, "predict": 0.0, "qc": 0.0, "write": 0.0}
    if todo:
        _process_windows(todo, bundle, line, layout, plan, config, truth, work, timings, progress, correction)
    line.close()
    timings["windows_total"] = time.perf_counter() - started

    result = InferResult(
        out_dir=out,
        num_windows=num_windows,
        processed=len(todo),
        skipped=skipped,
        merged=False,
        timings_s=timings,
    )
    if not all(_done_windows(work, num_windows)):
        remaining = int(num_windows - _done_windows(work, num_windows).sum())
        logger.info(
            "%d window(s) are left for other shards; the last one to finish writes the section "
            "(or run --merge when they are done).",
            remaining,
        )
        return result
    merged = merge(out, config, timings=timings)
    merged.processed, merged.skipped = len(todo), skipped
    merged.timings_s = {**timings, **merged.timings_s}
    return merged


def merge(
    out: str | Path,
    config: InferConfig = InferConfig(),
    *,
    timings: dict[str, float] | None = None,
    force: bool = False,
) -> InferResult:
    """Stitches the finished windows in ``out/.work`` into the section outputs (``--merge``).

    Only the stitching and output options of ``config`` are used; everything else comes from the run
    record the windows were computed with.

    Raises:
        UserError: no run in ``out``, or windows still missing (named).
    """
    out = Path(out)
    work = out / WORK_DIR
    if not (work / RUN_FILE).is_file():
        if (out / SECTION_FILE).is_file():
            return _finished_result(out)
        raise UserError(f"{out} holds no inference run to merge ({work / RUN_FILE} is missing).")
    run = json.loads((work / RUN_FILE).read_text())
    with np.load(work / PLAN_FILE) as arrays:
        plan = WindowPlan.from_arrays(arrays)
    done = _done_windows(work, plan.num_windows)
    if not done.all():
        missing = np.flatnonzero(~done)
        raise UserError(
            f"{out}: {missing.size} of {plan.num_windows} windows are not finished yet (first: "
            f"{', '.join(map(str, missing[:10]))}): run the missing shards (or --resume) before --merge."
        )
    lock = work / LOCK_FILE
    if not _acquire_lock(lock, force):
        logger.info("Another process is writing the section of %s (lock %s).", out, lock)
        return InferResult(out_dir=out, num_windows=plan.num_windows, processed=0, skipped=0, merged=False)
    try:
        result = _write_outputs(out, work, run, plan, config, timings or {})
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
    if not config.outputs.keep_window_files:
        shutil.rmtree(work, ignore_errors=True)
    if config.mlflow.enabled:
        from pipeline.tracking import log_inference_to_mlflow

        result.mlflow_run_id = log_inference_to_mlflow(result, run, config)
    return result


# ----------------------------------------------------------------------------------------------------------
# Input correction (polarity, delay, phase of the survey's wavelet)
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _LineCorrection:
    """A run's input correction: the reference direct waves, the line estimate, the QC settings it implies.

    Attributes:
        config: the settings.
        reference: the simulated direct waves (None when the correction is off or cannot be simulated).
        line_estimate: the estimate from a sample of windows along the line (None when off).
        qc: the QC settings resolved for this line (``QCConfig.resolved``: ``auto`` source correction and
            the threshold from the misfit floor made concrete).
        sample_interval_s: the model's sample interval.
    """

    config: InputCorrectionConfig
    reference: Any
    line_estimate: InputCorrection | None
    qc: QCConfig
    sample_interval_s: float

    @classmethod
    def estimate(
        cls, bundle, line, layout: ModelLayout, plan: WindowPlan, config: InferConfig
    ) -> _LineCorrection:
        settings = config.input_correction
        off = cls(settings, None, None, config.qc.resolved(False), layout.sample_interval_s)
        if not settings.enabled:
            return off
        bounds = _velocity_bounds(bundle)
        try:
            setup = engine_setup(layout, bundle.engine_settings)
            reference = reference_direct_waves(layout, setup, settings, bounds)
        except ValueError as error:
            logger.warning("Input correction is off (the traces go to the network as recorded): %s", error)
            return off
        reader = WindowReader(line, layout, plan, config.regrid, config.line)
        count = min(plan.num_windows, settings.line_sample_windows)
        sample = np.unique(np.round(np.linspace(0, plan.num_windows - 1, count)).astype(np.int64))
        total = None
        for window in sample:
            gathers = np.nan_to_num(reader.read(int(window)), nan=0.0, posinf=0.0, neginf=0.0)
            part = correlate_window(gathers, layout, reference, settings, plan.shot_offset_m[window])
            total = part if total is None else total + part
        line.close()
        estimate = estimate_from(total, reference, settings)
        log = logger.warning if estimate.polarity < 0 or not estimate.applied else logger.info
        log("Input correction from %d window(s) along the line: %s", len(sample), describe(estimate))
        differs = estimate.differs_from_training(layout.sample_interval_s)
        return cls(settings, reference, estimate, config.qc.resolved(differs), layout.sample_interval_s)

    def window(
        self, gathers: np.ndarray, window: int, plan: WindowPlan, layout: ModelLayout
    ) -> tuple[np.ndarray, dict[str, float]]:
        """The window's gathers for the network (corrected) and its per-window record values."""
        if self.reference is None:
            return gathers, {}
        own = estimate_from(
            correlate_window(gathers, layout, self.reference, self.config, plan.shot_offset_m[window]),
            self.reference,
            self.config,
        )
        applied = self.line_estimate if self.config.scope == "line" else own
        corrected = applied.apply(gathers, self.sample_interval_s, self.config.phase)
        return corrected, {**own.record(), "input_corrected": float(applied.applied)}

    def record(self) -> dict[str, Any]:
        """What the run record keeps (``run.json``; the section's provenance)."""
        result: dict[str, Any] = {"settings": to_dict(self.config), "qc": to_dict(self.qc)}
        if self.line_estimate is not None:
            result["line"] = {
                **self.line_estimate.record(),
                "applied": self.line_estimate.applied,
                "differs_from_training": self.line_estimate.differs_from_training(self.sample_interval_s),
                "description": describe(self.line_estimate),
            }
        return result


def _whole_cell_shifts(plan: WindowPlan, layout: ModelLayout, window: int) -> np.ndarray:
    """``(shots,)`` whole cells by which the window's survey shots lie off the model's positions (0 where the
    offset is not within a quarter cell of a whole number of cells: the grid cannot place it)."""
    cells = np.asarray(plan.shot_offset_m[window], np.float64) / layout.grid_spacing_m
    whole = np.round(cells)
    return np.where(np.abs(cells - whole) <= 0.25, whole, 0).astype(np.int64)


def _velocity_bounds(bundle: Any) -> tuple[float, float] | None:
    if getattr(bundle.stats, "velocity_min_mps", None) is None:
        return None
    return float(bundle.stats.velocity_min_mps), float(bundle.stats.velocity_max_mps)


# ----------------------------------------------------------------------------------------------------------
# Windows
# ----------------------------------------------------------------------------------------------------------


def _process_windows(
    todo, bundle, line, layout, plan, config, truth, work, timings, show_progress, correction: _LineCorrection
) -> None:
    qc_config = correction.qc
    reader = WindowReader(line, layout, plan, config.regrid, config.line)
    target = training_target(config.calibration, bundle.info.get("amplitude_statistics"))
    line_factor = None
    if config.calibration.scope == "line" and config.calibration.method != "none":
        sample = line_sample(plan.num_windows, config.calibration)
        statistics = [
            amplitude_statistic(
                correction.window(reader.read(int(w)), int(w), plan, layout)[0], config.calibration
            )
            for w in sample
        ]
        line_factor = calibration_factor(float(np.median(statistics)), target)
        logger.info("Line calibration factor %.4g (median over %d windows).", line_factor, len(sample))
    setup = None
    if config.qc.enabled or config.refine.iterations:
        try:
            setup = engine_setup(layout, bundle.engine_settings)
        except ValueError as error:
            logger.warning("Physics QC is off: %s", error)
    qc_setup = setup if config.qc.enabled else None
    bounds = _velocity_bounds(bundle)
    predict_windows = getattr(bundle, "predict_windows", None)
    origins = plan.window_origin_m()
    reporter = Progress(
        total=len(todo),
        desc="infer",
        unit="windows",
        disable=not show_progress,
        interval_s=config.progress_interval_s,
    )
    (work / "windows").mkdir(parents=True, exist_ok=True)
    for batch_start in range(0, len(todo), config.batch_size):
        batch = todo[batch_start : batch_start + config.batch_size]
        tick = time.perf_counter()
        observed = [reader.read(w) for w in batch]
        line.close()  # unmap: pages of mapped files would count towards memory as the run moves on
        meta = []
        calibrated = np.empty((len(batch), *observed[0].shape), dtype=np.float32)
        for row, (window, gathers) in enumerate(zip(batch, observed, strict=True)):
            nonfinite = int(np.size(gathers) - np.count_nonzero(np.isfinite(gathers)))
            if nonfinite:
                gathers = np.where(np.isfinite(gathers), gathers, 0.0).astype(np.float32)
                observed[row] = gathers
            # The network gets the corrected traces; the QC and refinement compare the recorded ones.
            network_input, correction_values = correction.window(gathers, int(window), plan, layout)
            statistic = amplitude_statistic(network_input, config.calibration)
            factor = line_factor if line_factor is not None else calibration_factor(statistic, target)
            applied = factor if np.isfinite(factor) else 1.0
            calibrated[row] = network_input * np.float32(applied)
            meta.append(
                {
                    "window": int(window),
                    "amplitude_statistic": statistic,
                    "calibration_factor": factor,
                    "nonfinite_samples": nonfinite,
                    **correction_values,
                }
            )
        timings["read"] += time.perf_counter() - tick

        tick = time.perf_counter()
        if predict_windows is not None:
            outputs = predict_windows(calibrated, origins[batch], batch_size=config.batch_size)
        else:
            outputs = bundle.predict(calibrated, batch_size=config.batch_size)
        velocity = np.asarray(outputs["velocity_mps"], dtype=np.float32)
        edges = outputs.get("edges")
        edges = None if edges is None else np.asarray(edges, dtype=np.float32)
        timings["predict"] += time.perf_counter() - tick

        tick = time.perf_counter()
        truth_windows = None
        if truth is not None:
            truth_windows = [
                truth.window(
                    plan.column_x_m(np.arange(plan.column_start[w], plan.column_start[w] + plan.width))
                )
                for w in batch
            ]
        qc_rows = []
        for first in range(0, len(batch), qc_config.batch_windows):
            part = slice(first, first + qc_config.batch_windows)
            qc_rows += window_qc(
                observed[part],
                velocity[part],
                qc_setup,
                qc_config,
                bounds,
                truth_windows[part] if truth_windows is not None else None,
                source_shift_cells=[_whole_cell_shifts(plan, layout, w) for w in batch[part]],
            )
        timings["qc"] += time.perf_counter() - tick

        refined = None
        if config.refine.iterations and setup is not None:
            from pipeline.refine import refine_windows

            tick = time.perf_counter()
            skip = ["no signal" if r.get("no_signal") else "" for r in qc_rows]
            refined = refine_windows(
                observed,
                velocity,
                setup,
                config.refine,
                bounds,
                qc_config.source_correction,
                truth_windows,
                skip,
                edges=edges,
            )
            timings["refine"] = timings.get("refine", 0.0) + time.perf_counter() - tick

        tick = time.perf_counter()
        for row, window in enumerate(batch):
            record = {**meta[row], **qc_rows[row]}
            if meta[row]["nonfinite_samples"]:
                record["flags"] = [*record["flags"], "nonfinite_samples"]
            extra = {}
            if refined is not None:
                extra["refined_velocity_mps"] = refined[row][0]
                record.update(refined[row][1])
            _save_window(work, window, velocity[row], None if edges is None else edges[row], record, extra)
        timings["write"] += time.perf_counter() - tick
        reporter.update(len(batch))
    reporter.close()


def _save_window(
    work: Path,
    window: int,
    velocity: np.ndarray,
    edges: np.ndarray | None,
    record: dict[str, Any],
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    path = _window_path(work, window)
    arrays = {
        "velocity_mps": velocity.astype(np.float32),
        "record": np.asarray(json.dumps(json_ready(record))),
        **{name: np.asarray(values, np.float32) for name, values in (extra or {}).items()},
    }
    if edges is not None:
        arrays["edges"] = edges.astype(np.float32)
    with atomic_output(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **arrays)


def _load_window(work: Path, window: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(_window_path(work, window)) as arrays:
        maps = {
            name: arrays[name] for name in ("velocity_mps", "edges", "refined_velocity_mps") if name in arrays
        }
        record = json.loads(str(arrays["record"]))
    return maps, record


def _window_path(work: Path, window: int) -> Path:
    return work / "windows" / f"window_{window:07d}.npz"


def _done_windows(work: Path, num_windows: int) -> np.ndarray:
    done = np.zeros(num_windows, dtype=bool)
    folder = work / "windows"
    if folder.is_dir():
        for path in folder.glob("window_*.npz"):
            with contextlib.suppress(ValueError, IndexError):
                number = int(path.stem.split("_")[1])
                if 0 <= number < num_windows:
                    done[number] = True
    return done


def _shard_range(num_windows: int, index: int, count: int) -> tuple[int, int]:
    """Contiguous part ``index`` (1-based) of ``count``: neighbouring windows share shots, so reading is local."""
    return (index - 1) * num_windows // count, index * num_windows // count


# ----------------------------------------------------------------------------------------------------------
# The run record (resume, shards, merge)
# ----------------------------------------------------------------------------------------------------------


def _prepare_work(
    work: Path, fingerprint: str, plan: WindowPlan, *, resume: bool, sharded: bool
) -> dict | None:
    """Checks an existing run folder against this run; returns its record, or None when there is none."""
    run_path = work / RUN_FILE
    if not run_path.is_file():
        if (work / "windows").is_dir() and any((work / "windows").iterdir()):
            raise UserError(f"{work} holds window files but no {RUN_FILE}: remove {work} and run again.")
        return None
    run = json.loads(run_path.read_text())
    if run.get("fingerprint") != fingerprint:
        raise UserError(
            f"{work.parent} holds a run with another model, other inputs or other options (fingerprint "
            f"{run.get('fingerprint')} vs {fingerprint}): choose another --out, or delete {work} to start over."
        )
    with np.load(work / PLAN_FILE) as arrays:
        stored = WindowPlan.from_arrays(arrays)
    if not (
        np.array_equal(stored.column_start, plan.column_start)
        and np.array_equal(stored.shot_index, plan.shot_index)
    ):
        raise UserError(
            f"{work}: the stored window plan differs from this run's: delete {work} to start over."
        )
    done = int(_done_windows(work, plan.num_windows).sum())
    if not resume and not sharded and done:
        raise UserError(
            f"{work.parent} holds an unfinished run ({done} of {plan.num_windows} windows done): pass --resume to "
            "continue it, or choose another --out."
        )
    return run


def _write_run_record(
    work, fingerprint, bundle, model_uri, line, layout, plan, config, regridded, truth, correction, geometry
) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    with atomic_output(work / PLAN_FILE) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **plan.to_arrays())
    setup_notes: dict[str, Any] = {}
    if config.qc.enabled:
        try:
            setup_notes = engine_setup(layout, bundle.engine_settings).describe()
        except ValueError as error:
            setup_notes = {"disabled": str(error)}
    info = dict(getattr(bundle, "info", {}) or {})
    run = {
        "format": RUN_FORMAT,
        "fingerprint": fingerprint,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {
            "uri": model_uri,
            "family": info.get("family"),
            "identity": _model_identity(bundle, model_uri),
            **_model_lineage(model_uri),
            "bundle_info": {k: v for k, v in info.items() if k not in ("normalization", "geometry")},
        },
        "inputs": [
            {
                "path": str(f.path.resolve()),
                "size_bytes": f.path.stat().st_size,
                "sha256": f.sha256,
                "sample_interval_s": f.sample_interval_s,
                "num_samples": f.num_samples,
                "num_traces": f.num_traces,
            }
            for f in line.files
        ],
        "truth": {"path": str(truth.path.resolve()), "sha256": truth.sha256} if truth else None,
        "line": {
            "direction": list(line.frame.direction),
            "offset_m": line.frame.offset_m,
            "num_shots": line.num_shots,
            "repairs": line.repairs,
        },
        "model_sample_interval_s": layout.sample_interval_s,
        "layout": {
            "depth_cells": layout.grid_shape[0],
            "width_cells": layout.width_cells,
            "grid_spacing_m": layout.grid_spacing_m,
        },
        "has_edges": bool(getattr(bundle, "has_edges", False)),
        "refine": to_dict(config.refine) if config.refine.iterations else None,
        "regridded": regridded,
        "geometry": geometry,
        "input_correction": correction.record(),
        "qc": to_dict(correction.qc),
        "engine": setup_notes,
        "calibration": {
            "method": config.calibration.method,
            "scope": config.calibration.scope,
            "target": _safe_target(config.calibration, info),
        },
        "configuration": to_yaml(config),
        "config_hash": config_hash(config),
        "package_version": __version__,
    }
    write_text_atomic(work / RUN_FILE, json.dumps(json_ready(run), indent=1) + "\n")
    return run


def _safe_target(calibration: CalibrationConfig, info: dict) -> float | None:
    try:
        return training_target(calibration, info.get("amplitude_statistics"))
    except UserError:
        return None


def _acquire_lock(lock: Path, force: bool) -> bool:
    if force:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
    for _ in range(2):
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if _stale_lock(lock):
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                continue
            return False
        with os.fdopen(descriptor, "w") as handle:
            handle.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
        return True
    return False


def _stale_lock(lock: Path) -> bool:
    """A lock left by a dead process on this host."""
    try:
        owner = json.loads(lock.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return True
    if owner.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(owner.get("pid", -1)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, OverflowError):
        return False
    return False


# ----------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------


def _write_outputs(
    out: Path, work: Path, run: dict, plan: WindowPlan, config: InferConfig, timings: dict[str, float]
) -> InferResult:
    tick = time.perf_counter()
    frame = LineFrame(tuple(run["line"]["direction"]), float(run["line"]["offset_m"]))
    depth = int(run["layout"]["depth_cells"])
    spacing = float(run["layout"]["grid_spacing_m"])
    names = ("velocity_mps", "edges") if run["has_edges"] else ("velocity_mps",)
    refined = bool(run.get("refine"))
    if refined:
        names += ("refined_velocity_mps",)
    x_m = plan.column_x_m()
    map_x, map_y = frame.to_xy(x_m)
    # The QC settings the windows were checked with (resolved for the line when the run started).
    qc_config = from_dict(QCConfig, run["qc"]) if run.get("qc") else config.qc.resolved(False)
    corrected = "line" in (run.get("input_correction") or {})
    rows: list[dict[str, Any]] = []
    section_path = out / SECTION_FILE
    with atomic_output(section_path) as temporary:
        writer = SectionWriter(
            temporary, plan.num_columns, depth, names, x_m, map_x, map_y, np.arange(depth) * spacing
        )
        try:
            stitcher = StreamingStitcher(plan.num_columns, depth, plan.width, names, writer, config.stitching)
            for window in np.argsort(plan.column_start, kind="stable"):
                maps, record = _load_window(work, int(window))
                stitcher.add(int(plan.column_start[window]), maps)
                start = float(plan.window_origin_m()[window])
                rows.append({**record, "x_start_m": start, "x_end_m": start + (plan.width - 1) * spacing})
            stitcher.finish()
            rows.sort(key=lambda r: r["window"])
            writer.write_windows(_window_columns(rows, plan, refined, corrected))
            summary = aggregate(rows)
            input_report = _input_correction_report(run, rows)
            qc_attributes = {
                "summary": summary,
                "thresholds": to_dict(qc_config),
                "misfit_floor": {
                    "value": qc_config.misfit_floor,
                    "source_correction": qc_config.source_correction,
                    "threshold": qc_config.misfit_threshold,
                    "origin": "qc.misfit_floor"
                    if config.qc.misfit_floor is not None
                    else "measured: the true model's misfit on lines with other wavelets (benchmarks/inference.py)",
                },
                "input_correction": input_report,
                "geometry": run.get("geometry", {}),
            }
            section_errors: dict[str, float] = {}
            if run.get("truth"):
                section_errors = _section_errors(writer.h5, run, frame, depth, spacing, x_m)
                qc_attributes["section_velocity_errors"] = section_errors
            refine_summary: dict[str, Any] = {}
            if refined:
                from pipeline.refine import summarise

                refine_summary = summarise(rows)
                if run.get("truth"):
                    refine_summary["section_velocity_errors"] = _section_errors(
                        writer.h5, run, frame, depth, spacing, x_m, name="refined_velocity_mps"
                    )
                writer.write_attributes("refine", {"summary": refine_summary, "settings": run["refine"]})
            writer.write_attributes("qc", qc_attributes)
            writer.write_attributes(
                "provenance",
                {
                    "model": run["model"],
                    "inputs": run["inputs"],
                    "truth": run.get("truth"),
                    "configuration": run["configuration"],
                    "merge_configuration": to_yaml(config),
                    "config_hash": run["config_hash"],
                    "regridded": run["regridded"],
                    "geometry": run.get("geometry", {}),
                    "input_correction": run.get("input_correction", {}),
                    "engine": run["engine"],
                    "calibration": run["calibration"],
                    "line": run["line"],
                    "timings": timings,
                },
            )
            writer.close(complete=True)
        except BaseException:
            writer.h5.close()
            raise
    files = [section_path]
    timings = dict(timings)
    timings["stitch"] = time.perf_counter() - tick

    tick = time.perf_counter()
    if config.outputs.segy:
        files.append(write_section_segy(section_path, out / "section_velocity.segy", "velocity_mps", spacing))
        if "edges" in names:
            files.append(write_section_segy(section_path, out / "section_edges.segy", "edges", spacing))
        if refined:
            files.append(
                write_section_segy(
                    section_path, out / "section_refined_velocity.segy", "refined_velocity_mps", spacing
                )
            )
    files.append(_write_qc_csv(out / "qc.csv", rows, refined, corrected))
    if config.outputs.png:
        model_name = run["model"].get("family") or "model"
        files += write_previews(section_path, out, rows, config.outputs.preview_max_columns, title=model_name)
        qc_png = out / "qc.png"
        with atomic_output(qc_png) as temporary:
            plot_qc(temporary, rows, qc_config, title=f"Physics QC along the line ({len(rows)} windows)")
        files.append(qc_png)
        if refined:
            from pipeline.refine import plot_refinement

            refine_png = out / "refinement.png"
            with atomic_output(refine_png) as temporary:
                plot_refinement(section_path, temporary, rows, config.outputs.preview_max_columns)
            files.append(refine_png)
    timings["outputs"] = time.perf_counter() - tick
    result = InferResult(
        out_dir=out,
        num_windows=plan.num_windows,
        processed=0,
        skipped=0,
        merged=True,
        section_path=section_path,
        files=files,
        qc_summary=summary,
        section_errors=section_errors,
        timings_s=timings,
    )
    summary_path = out / "summary.json"
    write_text_atomic(
        summary_path,
        json.dumps(
            json_ready(
                {
                    "section": str(section_path),
                    "files": [str(f) for f in files],
                    "num_windows": plan.num_windows,
                    "num_columns": plan.num_columns,
                    "qc": summary,
                    "qc_misfit_floor": qc_attributes["misfit_floor"],
                    "input_correction": input_report,
                    "geometry": run.get("geometry", {}),
                    "section_velocity_errors": section_errors,
                    **({"refine": refine_summary} if refined else {}),
                    "regridded": run["regridded"],
                    "timings_s": timings,
                    "model": run["model"]["uri"],
                }
            ),
            indent=1,
        )
        + "\n",
    )
    result.files.append(summary_path)
    print(summary_table(rows), file=sys.stderr)
    for line_text in _report_lines(run, input_report, qc_config):
        print(line_text, file=sys.stderr)
    if section_errors:
        print(
            "Section velocity error against the truth: MAE {velocity_mae_mps:.1f} m/s, RMSE "
            "{velocity_rmse_mps:.1f} m/s, relative MAE {velocity_relative_mae:.2%}".format(**section_errors),
            file=sys.stderr,
        )
    if refine_summary.get("num_refined"):
        from pipeline.refine import summary_line

        print(
            summary_line(refine_summary)
            + (
                "; refined section MAE {velocity_mae_mps:.1f} m/s against the truth".format(
                    **refine_summary["section_velocity_errors"]
                )
                if "section_velocity_errors" in refine_summary
                else ""
            ),
            file=sys.stderr,
        )
    return result


def _input_correction_report(run: dict, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The line's input correction with per-window statistics (``pipeline.input_correction.summary``)."""
    stored = run.get("input_correction") or {}
    settings = stored.get("settings")
    if not settings or not settings.get("enabled", False) or "line" not in stored:
        return {"enabled": False}
    config = from_dict(InputCorrectionConfig, settings)
    line = stored["line"]
    estimate = InputCorrection(
        delay_s=line["input_delay_s"],
        phase_deg=line["input_phase_deg"],
        coherence=_number(line["input_coherence"]),
        velocity_mps=_number(line["input_velocity_mps"]),
        applied=bool(line["applied"]),
    )
    windows = [
        InputCorrection(
            delay_s=_number(r.get("input_delay_s")),
            phase_deg=_number(r.get("input_phase_deg")),
            coherence=_number(r.get("input_coherence")),
            velocity_mps=_number(r.get("input_velocity_mps")),
            applied=bool(r.get("input_corrected")),
        )
        for r in rows
        if "input_delay_s" in r
    ]
    report = correction_summary(estimate, windows, config, float(run["model_sample_interval_s"]))
    report["line"]["description"] = line.get("description", "")
    return report


def _report_lines(run: dict, input_report: dict[str, Any], qc_config: QCConfig) -> list[str]:
    """The printed lines after the QC table: input correction, QC floor and threshold, moved shots."""
    lines = []
    if input_report.get("enabled"):
        lines.append(
            f"Input correction ({input_report['scope']}): {input_report['line']['description']}; "
            f"{input_report['windows_reversed']} of {input_report['windows_estimated']} windows look reversed on "
            "their own (input_correction.enabled=false feeds the traces as recorded)."
        )
    else:
        lines.append("Input correction: off (the network saw the traces as recorded).")
    if qc_config.enabled:
        lines.append(
            f"QC: source correction {qc_config.source_correction}; misfit floor {qc_config.misfit_floor:.3g} (what the "
            f"true model gives under this correction), flagged above {qc_config.misfit_threshold:.3g}."
        )
    moves = (run.get("geometry") or {}).get("shot_moves") or {}
    if moves.get("num_moved"):
        lines.append(
            f"Geometry: {moves['num_moved']} of {moves['num_used']} shots used moved to the model's positions, by up "
            f"to {moves['max_m']:.2f} m (median {moves['median_m']:.2f} m; per shot in windows/shot_offset_m)."
        )
    for warning in (run.get("geometry") or {}).get("warnings", []):
        lines.append(f"Geometry warning: {warning}")
    return lines


def _window_columns(
    rows: list[dict[str, Any]], plan: WindowPlan, refined: bool = False, corrected: bool = False
) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {
        "column_start": plan.column_start,
        "x_start_m": np.asarray([r["x_start_m"] for r in rows]),
        "x_end_m": np.asarray([r["x_end_m"] for r in rows]),
        "shot_index": plan.shot_index,
        "shot_offset_m": plan.shot_offset_m,
        "receivers_interpolated": plan.receivers_interpolated,
        "amplitude_statistic": np.asarray([r["amplitude_statistic"] for r in rows], dtype=np.float64),
        "calibration_factor": np.asarray([r["calibration_factor"] for r in rows], dtype=np.float64),
    }
    for name in QC_FIELDS:
        columns[name] = np.asarray([_number(r.get(name)) for r in rows], dtype=np.float64)
    if corrected:
        for name in (*CORRECTION_FIELDS, "input_corrected"):
            columns[name] = np.asarray([_number(r.get(name)) for r in rows], dtype=np.float64)
    columns["flags"] = np.asarray([",".join(r.get("flags", [])) for r in rows], dtype=object)
    columns["qc_error"] = np.asarray([r.get("qc_error", "") for r in rows], dtype=object)
    if refined:
        for name in REFINE_FIELDS:
            columns[name] = np.asarray([_number(r.get(name)) for r in rows], dtype=np.float64)
        columns["refine_note"] = np.asarray([r.get("refine_note", "") for r in rows], dtype=object)
    return columns


def _section_errors(h5, run, frame, depth, spacing, x_m, name: str = "velocity_mps") -> dict[str, float]:
    """Velocity errors of a stitched section (``name``) against the truth, streamed in column blocks."""
    from pipeline.qc import velocity_errors

    truth = open_truth(run["truth"]["path"], frame, depth, spacing)
    totals = {"n": 0, "abs": 0.0, "sq": 0.0, "max": 0.0, "rel": 0.0}
    for first in range(0, len(x_m), 512):
        stop = min(first + 512, len(x_m))
        predicted = h5[name][:, first:stop].astype(np.float64)
        true = truth.window(x_m[first:stop]).astype(np.float64)
        valid = np.isfinite(predicted) & np.isfinite(true)
        if not valid.any():
            continue
        error = np.abs(predicted[valid] - true[valid])
        totals["n"] += int(valid.sum())
        totals["abs"] += float(error.sum())
        totals["sq"] += float((error**2).sum())
        totals["max"] = max(totals["max"], float(error.max()))
        totals["rel"] += float((error / true[valid]).sum())
    if not totals["n"]:
        return velocity_errors(np.full(1, np.nan), np.full(1, np.nan))
    n = totals["n"]
    return {
        "velocity_mae_mps": totals["abs"] / n,
        "velocity_rmse_mps": math.sqrt(totals["sq"] / n),
        "velocity_max_error_mps": totals["max"],
        "velocity_relative_mae": totals["rel"] / n,
        "num_cells": float(n),
    }


def _write_qc_csv(
    path: Path, rows: list[dict[str, Any]], refined: bool = False, corrected: bool = False
) -> Path:
    keys = [
        "window",
        "x_start_m",
        "x_end_m",
        "amplitude_statistic",
        "calibration_factor",
        *QC_FIELDS,
        *((*CORRECTION_FIELDS, "input_corrected") if corrected else ()),
        "flags",
        "qc_error",
        *((*REFINE_FIELDS, "refine_note") if refined else ()),
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(keys)
    for row in rows:
        writer.writerow([",".join(row.get(k, [])) if k == "flags" else _csv_value(row.get(k)) for k in keys])
    return write_text_atomic(path, buffer.getvalue())


def _finished_result(out: Path) -> InferResult:
    from pipeline.section import read_section

    section = read_section(out / SECTION_FILE)
    files = sorted(p for p in out.iterdir() if p.is_file() and not p.name.startswith("."))
    return InferResult(
        out_dir=out,
        num_windows=len(section["windows"]["column_start"]),
        processed=0,
        skipped=len(section["windows"]["column_start"]),
        merged=True,
        section_path=out / SECTION_FILE,
        files=files,
        qc_summary=section["qc"].get("summary", {}),
        section_errors=section["qc"].get("section_velocity_errors") or {},
    )


# ----------------------------------------------------------------------------------------------------------
# Model, MLflow, helpers
# ----------------------------------------------------------------------------------------------------------


def _check_refinement(bundle: Any, layout: ModelLayout, config: InferConfig) -> None:
    """Refuses ``--refine`` up front when it cannot run: no velocity bounds, or an engine-less geometry."""
    stats = bundle.stats
    if config.refine.mode == "line":
        raise UserError(
            "refine.mode=line (the whole line as one model) is available from Python "
            "(pipeline.refine.refine_line, docs/refinement.md), not yet in pipeline.infer, which refines window "
            f"by window. Received: refine.mode={config.refine.mode!r}; use --set refine.mode=window."
        )
    if config.refine.bounds_mps is None and getattr(stats, "velocity_min_mps", None) is None:
        raise UserError(
            "--refine needs velocity bounds and the model records no training velocity range: set "
            "--set refine.bounds_mps=[MIN,MAX] (m/s)."
        )
    try:
        engine_setup(layout, bundle.engine_settings)
    except ValueError as error:
        raise UserError(f"--refine cannot simulate this model's geometry: {error}") from None


def _resolve_model(model: Any, model_uri: str | None) -> tuple[Any, str]:
    if isinstance(model, str | Path):
        from pipeline.tracking import load_bundle

        return load_bundle(model), model_uri or str(model)
    for attribute in ("geometry", "stats", "predict"):
        if not hasattr(model, attribute):
            raise TypeError(
                f"model must be a ModelBundle or a bundle location; {type(model).__name__} has no "
                f"{attribute!r}."
            )
    path = getattr(model, "path", None)
    return model, model_uri or (str(path) if path else f"<in-memory {type(model).__name__}>")


def _model_identity(bundle: Any, model_uri: str) -> str:
    """A digest of the model's files (or of its description for an in-memory bundle)."""
    path = getattr(bundle, "path", None)
    digest = hashlib.sha256()
    if path is not None and Path(path).is_dir():
        for name in ("model.keras", "bundle.json"):
            file = Path(path) / name
            if file.is_file():
                with open(file, "rb") as handle:
                    digest.update(hashlib.file_digest(handle, "sha256").digest())
        return digest.hexdigest()[:20]
    info = dict(getattr(bundle, "info", {}) or {})
    digest.update(json.dumps(json_ready(info), sort_keys=True).encode())
    digest.update(type(bundle).__name__.encode())
    return digest.hexdigest()[:20]


def _model_lineage(model_uri: str) -> dict[str, Any]:
    """``pipeline.tracking.model_lineage`` for MLflow URIs; {} for bundle folders (no MLflow import)."""
    if not model_uri.startswith(("runs:/", "models:/")):
        return {}
    from pipeline.tracking import model_lineage

    return model_lineage(model_uri)


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return str(value)


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UserError(f"--shard takes K/N (e.g. 3/8). Received: {text!r}") from None
    if not 1 <= index <= count:
        raise UserError(f"--shard K/N needs 1 <= K <= N. Received: {text!r}")
    return index, count


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "python -m pipeline.infer",
        "Predict a stitched velocity section for a survey line (shot-gather SEG-Y): section.h5, SEG-Y velocity "
        "and edge sections, PNG previews and a physics QC table; optionally refined by full-waveform "
        "inversion.",
        examples=[
            "python -m pipeline.infer --model models:/seisinvert-unet@champion --input 'line/*.sgy' --out out/line",
            "python -m pipeline.infer --model ... --input ... --out ... --regrid     # accept small geometry "
            "differences",
            "python -m pipeline.infer --model ... --input ... --out ... --refine 20  # 20 FWI iterations per window",
            "python -m pipeline.infer --model ... --input ... --out ... --shard 3/8  # job-array part 3 of 8",
            "python -m pipeline.infer --out out/line --merge   # stitch the finished parts",
        ],
    )
    parser.add_argument(
        "--model", help="Model bundle: a folder written by pipeline.train, runs:/… or models:/…."
    )
    parser.add_argument(
        "--input", nargs="+", default=[], metavar="SGY", help="Shot-gather SEG-Y files of one line."
    )
    parser.add_argument("--out", required=True, help="Output folder.")
    parser.add_argument(
        "--regrid", action="store_true", help="Allow regridding (time, receivers, nearest shots)."
    )
    parser.add_argument(
        "--truth",
        help="True velocity section of a synthetic survey, for velocity errors: SEG-Y, or .npy/.npz/HDF5 (depth, x) in m/s.",
    )
    parser.add_argument("--resume", action="store_true", help="Continue an interrupted run in --out.")
    parser.add_argument("--shard", default="1/1", help="Process part K of N of the windows (job arrays).")
    parser.add_argument("--merge", action="store_true", help="Only stitch the finished windows in --out.")
    parser.add_argument(
        "--force-merge", action="store_true", help="With --merge: ignore another process's lock."
    )
    parser.add_argument("--mlflow", action="store_true", help="Log the run to MLflow.")
    parser.add_argument(
        "--refine",
        type=int,
        metavar="N",
        help="Refine each window's velocity with N iterations of full-waveform inversion (refine.* options).",
    )
    add_config_arguments(parser)
    add_common_arguments(parser)
    return parser


def load_infer_config(
    files: Sequence[str | Path] = (), overrides: Sequence[str] = (), values: dict[str, Any] | None = None
) -> InferConfig:
    return load_config(InferConfig, files=files, overrides=overrides, values=values)


def _main(args: argparse.Namespace) -> int:
    values: dict[str, Any] = {}
    if args.regrid:
        values["regrid"] = {"enabled": True}
    if args.truth:
        values["truth"] = args.truth
    if args.mlflow:
        values["mlflow"] = {"enabled": True}
    if args.refine is not None:
        values["refine"] = {"iterations": args.refine}
    config = load_infer_config(args.config, args.overrides, values)
    if args.merge:
        result = merge(args.out, config, force=args.force_merge)
    else:
        if not args.model or not args.input:
            raise UserError("--model and --input are required (except with --merge).")
        result = infer(
            args.input,
            args.model,
            args.out,
            config,
            resume=args.resume,
            shard=parse_shard(args.shard),
            progress=not args.quiet,
        )
    if result.merged:
        print(
            f"Wrote {result.section_path} and {len(result.files) - 1} other file(s) in {result.out_dir} "
            f"({result.num_windows} windows; {result.processed} predicted now, {result.skipped} reused)."
        )
    else:
        print(
            f"Predicted {result.processed} window(s) in {result.out_dir}; the section is written when every "
            "shard is done."
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "InferConfig",
    "InferResult",
    "OutputConfig",
    "TrackingConfig",
    "build_parser",
    "infer",
    "load_infer_config",
    "main",
    "merge",
    "parse_shard",
]
