"""Predicting a line's windows: the input correction, then per batch of windows reading, calibration,
prediction, physics QC and refinement.

``LineCorrection.estimate`` and ``prepare_line`` run once per line in the command's process (they read a
sample of windows along the line); the result, a ``LineJob``, holds everything a batch of windows needs
besides the model. ``predict_batch(bundle, job, windows)`` is the one function that turns windows into
results (``WindowOutput``), in this process (``process_windows``, which saves each window's file as it
goes) or on a Dask worker (``pipeline.infer.cluster``, where the ``LineJob`` travels once per line and the
model is loaded once per worker): the same code, so the same numbers.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.config import to_dict
from core.progress import Progress
from pipeline.calibration import amplitude_statistic, calibration_factor, line_sample, training_target
from pipeline.infer.config import InferConfig
from pipeline.infer.model import velocity_bounds
from pipeline.infer.work_dir import save_window
from pipeline.input_correction import (
    InputCorrection,
    InputCorrectionConfig,
    correlate_window,
    describe,
    estimate_from,
    reference_direct_waves,
)
from pipeline.qc import QCConfig, engine_setup, window_qc
from pipeline.windows import ModelLayout, SurveyLine, WindowPlan, WindowReader

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------
# Input correction (polarity, delay, phase of the survey's wavelet)
# ----------------------------------------------------------------------------------------------------------


@dataclass
class LineCorrection:
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
    ) -> LineCorrection:
        settings = config.input_correction
        off = cls(settings, None, None, config.qc.resolved(False), layout.sample_interval_s)
        if not settings.enabled:
            return off
        bounds = velocity_bounds(bundle)
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

    @property
    def delay_s(self) -> float:
        """The line's estimated delay relative to the training wavelet when the estimate is applied, else 0
        (what the refinement centres its wavelet estimate on)."""
        estimate = self.line_estimate
        return float(estimate.delay_s) if estimate is not None and estimate.applied else 0.0

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


def whole_cell_shifts(plan: WindowPlan, layout: ModelLayout, window: int) -> np.ndarray:
    """``(shots,)`` whole cells by which the window's survey shots lie off the model's positions (0 where the
    offset is not within a quarter cell of a whole number of cells: the grid cannot place it)."""
    cells = np.asarray(plan.shot_offset_m[window], np.float64) / layout.grid_spacing_m
    whole = np.round(cells)
    return np.where(np.abs(cells - whole) <= 0.25, whole, 0).astype(np.int64)


# ----------------------------------------------------------------------------------------------------------
# Windows
# ----------------------------------------------------------------------------------------------------------


@dataclass
class WindowOutput:
    """One finished window, as ``pipeline.infer.work_dir.save_window`` writes it.

    Attributes:
        window: the window's number in the plan.
        velocity: ``(depth, x)`` float32 m/s, the network's velocity.
        edges: ``(depth, x)`` float32 edge probabilities, or None (a model without an edge head).
        record: the per-window values (calibration, input correction, QC, refinement, flags).
        extra: further arrays: ``refined_velocity_mps``; with ``refine.mode: line`` the recorded gathers
            ``observed`` instead (refined with the whole line later).
    """

    window: int
    velocity: np.ndarray
    edges: np.ndarray | None
    record: dict[str, Any]
    extra: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class LineJob:
    """Everything predicting a batch of one line's windows needs besides the model (``prepare_line``).

    Built once per line in the command's process; with ``--scheduler`` it is sent to each worker once per line
    (the survey files are read there: the same paths on a shared file system).

    Attributes:
        line: the survey line (``pipeline.windows.read_survey_line``; pickles without its file mappings).
        layout, plan: the model's window layout and the line's window plan.
        config: the run's settings.
        correction: the line's input correction and the QC settings it implies.
        truth: the true section (``pipeline.section.open_truth``) or None.
        line_factor: the line's calibration factor (``calibration.scope: line``), or None (per window).
        target: the training data's amplitude statistic (calibration target).
        setup: the engine set-up for QC and refinement, or None (QC off, or no engine for this geometry).
        bounds: the training velocity range ``(min, max)`` m/s, or None.
    """

    line: SurveyLine
    layout: ModelLayout
    plan: WindowPlan
    config: InferConfig
    correction: LineCorrection
    truth: Any
    line_factor: float | None
    target: float | None
    setup: Any
    bounds: tuple[float, float] | None
    _reader: WindowReader | None = field(default=None, init=False, repr=False, compare=False)
    #: Reading (and unmapping) the survey files, one thread at a time: a worker may run several tasks at once.
    file_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def reader(self) -> WindowReader:
        if self._reader is None:
            self._reader = WindowReader(
                self.line, self.layout, self.plan, self.config.regrid, self.config.line
            )
        return self._reader

    def __getstate__(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key not in ("_reader", "file_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _reader=None, file_lock=threading.Lock())


def prepare_line(
    bundle: Any,
    line: SurveyLine,
    layout: ModelLayout,
    plan: WindowPlan,
    config: InferConfig,
    truth: Any,
    correction: LineCorrection,
) -> LineJob:
    """The line-wide part of prediction: the calibration target (and the line's factor, from a sample of windows
    read here), the engine set-up for QC and refinement, the velocity bounds."""
    target = training_target(config.calibration, bundle.info.get("amplitude_statistics"))
    job = LineJob(line, layout, plan, config, correction, truth, None, target, None, velocity_bounds(bundle))
    if config.calibration.scope == "line" and config.calibration.method != "none":
        sample = line_sample(plan.num_windows, config.calibration)
        reader = job.reader()
        statistics = [
            amplitude_statistic(
                correction.window(reader.read(int(w)), int(w), plan, layout)[0], config.calibration
            )
            for w in sample
        ]
        job.line_factor = calibration_factor(float(np.median(statistics)), target)
        logger.info("Line calibration factor %.4g (median over %d windows).", job.line_factor, len(sample))
    if config.qc.enabled or config.refine.iterations:
        try:
            job.setup = engine_setup(layout, bundle.engine_settings)
        except ValueError as error:
            logger.warning("Physics QC is off: %s", error)
    return job


def predict_batch(
    bundle: Any, job: LineJob, batch: list[int], timings: dict[str, float] | None = None
) -> list[WindowOutput]:
    """Reads, corrects, calibrates and predicts a batch of windows, then runs their QC (and refinement).

    Memory: one batch of windows. ``timings`` (seconds per step: read, predict, qc, refine) is added to.
    """
    timings = timings if timings is not None else {}
    config, plan, layout, line, correction = job.config, job.plan, job.layout, job.line, job.correction
    qc_config = correction.qc
    qc_setup = job.setup if config.qc.enabled else None
    reader = job.reader()
    tick = time.perf_counter()
    padding = (
        config.refine.padding_cells if config.refine.iterations and config.refine.mode == "window" else 0
    )
    spans = None
    with job.file_lock:
        observed = [reader.read(w) for w in batch]
        if padding and job.setup is not None:
            # The refinement also fits what the window's shots recorded beyond its edges (longer offsets).
            spans = [
                reader.read_span(w, padding, gathers) for w, gathers in zip(batch, observed, strict=True)
            ]
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
        factor = job.line_factor if job.line_factor is not None else calibration_factor(statistic, job.target)
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
    _add(timings, "read", tick)

    tick = time.perf_counter()
    predict_windows = getattr(bundle, "predict_windows", None)
    if predict_windows is not None:
        outputs = predict_windows(calibrated, plan.window_origin_m()[batch], batch_size=config.batch_size)
    else:
        # Asked for only when set: a stand-in model (``InferStage``'s ``model``) needs no mirror argument.
        mirror = {"mirror_average": True} if config.mirror_average else {}
        outputs = bundle.predict(calibrated, batch_size=config.batch_size, **mirror)
    velocity = np.asarray(outputs["velocity_mps"], dtype=np.float32)
    edges = outputs.get("edges")
    edges = None if edges is None else np.asarray(edges, dtype=np.float32)
    _add(timings, "predict", tick)

    tick = time.perf_counter()
    truth_windows = None
    if job.truth is not None:
        with job.file_lock:
            truth_windows = [
                job.truth.window(
                    plan.column_x_m(np.arange(plan.column_start[w], plan.column_start[w] + plan.width))
                )
                for w in batch
            ]
    # Survey shots --regrid took up to a cell from the model's positions: QC and refinement simulate them there.
    shifts = [whole_cell_shifts(plan, layout, w) for w in batch]
    qc_rows = []
    for first in range(0, len(batch), qc_config.batch_windows):
        part = slice(first, first + qc_config.batch_windows)
        qc_rows += window_qc(
            observed[part],
            velocity[part],
            qc_setup,
            qc_config,
            job.bounds,
            truth_windows[part] if truth_windows is not None else None,
            source_shift_cells=shifts[part],
        )
    _add(timings, "qc", tick)

    refined = None
    whole_line = config.refine.iterations and config.refine.mode == "line"
    if config.refine.iterations and job.setup is not None and not whole_line:
        from pipeline.refine import refine_windows

        tick = time.perf_counter()
        skip = ["no signal" if r.get("no_signal") else "" for r in qc_rows]
        refined = refine_windows(
            observed,
            velocity,
            job.setup,
            config.refine,
            job.bounds,
            qc_config.source_correction,
            truth_windows,
            skip,
            edges=edges,
            wavelet_delay_s=job.correction.delay_s,
            source_shift_cells=shifts,
            spans=None if spans is None else [_finite(span) for span in spans],
        )
        _add(timings, "refine", tick)

    results = []
    for row, window in enumerate(batch):
        record = {**meta[row], **qc_rows[row]}
        if meta[row]["nonfinite_samples"]:
            record["flags"] = [*record["flags"], "nonfinite_samples"]
        extra = {}
        if refined is not None:
            extra["refined_velocity_mps"] = refined[row][0]
            record.update(refined[row][1])
        elif whole_line and not record.get("no_signal"):
            # Kept for the whole line's refinement once every window is done (pipeline.infer.line_refinement).
            extra["observed"] = np.asarray(observed[row], np.float32)
        results.append(
            WindowOutput(int(window), velocity[row], None if edges is None else edges[row], record, extra)
        )
    return results


def write_window(work: Path, output: WindowOutput) -> None:
    """Saves a finished window's file (``pipeline.infer.work_dir.save_window``)."""
    save_window(work, output.window, output.velocity, output.edges, output.record, output.extra)


def batches(todo: list[int], batch_size: int) -> list[list[int]]:
    """The windows to do in batches of ``batch_size``, in order (the cut ``process_windows`` uses)."""
    return [list(todo[start : start + batch_size]) for start in range(0, len(todo), batch_size)]


def process_windows(
    todo: list[int],
    bundle: Any,
    job: LineJob,
    work: Path,
    timings: dict[str, float],
    show_progress: bool,
) -> None:
    """Predicts the windows ``todo`` in this process, batch by batch, saving each window's file as it goes."""
    reporter = Progress(
        total=len(todo),
        desc="infer",
        unit="windows",
        disable=not show_progress,
        interval_s=job.config.progress_interval_s,
    )
    (work / "windows").mkdir(parents=True, exist_ok=True)
    for batch in batches(todo, job.config.batch_size):
        outputs = predict_batch(bundle, job, batch, timings)
        tick = time.perf_counter()
        for output in outputs:
            write_window(work, output)
        _add(timings, "write", tick)
        reporter.update(len(batch))
    reporter.close()


def _finite(span: Any) -> Any:
    """``span`` with non-finite samples zeroed and their traces masked out (the window's own traces are
    zeroed the same way before refinement)."""
    bad = ~np.isfinite(span.gathers)
    if not bad.any():
        return span
    mask = span.trace_mask * ~bad.any(axis=1)
    return replace(span, gathers=np.where(bad, 0.0, span.gathers).astype(np.float32), trace_mask=mask)


def _add(timings: dict[str, float], name: str, tick: float) -> None:
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - tick


__all__ = [
    "LineCorrection",
    "LineJob",
    "WindowOutput",
    "batches",
    "predict_batch",
    "prepare_line",
    "process_windows",
    "whole_cell_shifts",
    "write_window",
]
