"""The outputs of an inference run, written from its window files: ``section.h5`` and everything beside it.

``write_outputs`` streams the finished windows (``pipeline.infer.work_dir``) in column order through the
stitcher (``pipeline.stitching``) into ``section.h5`` (``pipeline.section``), with the per-window table, the QC
and refinement summaries and the provenance; then the SEG-Y sections, ``qc.csv``, the PNG previews and
``summary.json``, each under a temporary name first, and prints the QC table and the report lines.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_output, write_text_atomic
from core.config import from_dict, json_ready, to_dict, to_yaml
from pipeline.infer.config import InferConfig, InferResult
from pipeline.infer.line_refinement import LINE_NOTE, line_refined_maps, line_summary, load_line_refinement
from pipeline.infer.work_dir import SECTION_FILE, load_window
from pipeline.input_correction import CORRECTION_FIELDS, InputCorrection, InputCorrectionConfig
from pipeline.input_correction import summary as correction_summary
from pipeline.qc import QC_FIELDS, QCConfig, aggregate, plot_qc, summary_table
from pipeline.refine import REFINE_FIELDS
from pipeline.section import SectionWriter, open_truth, write_previews, write_section_segy
from pipeline.stitching import StreamingStitcher
from pipeline.windows import LineFrame, WindowPlan


@dataclass
class _Stitched:
    """What stitching the window files found: the per-window rows and the summaries written into section.h5."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    input_report: dict[str, Any]
    misfit_floor: dict[str, Any]
    section_errors: dict[str, float]
    refine_summary: dict[str, Any]


def write_outputs(
    out: Path, work: Path, run: dict, plan: WindowPlan, config: InferConfig, timings: dict[str, float]
) -> InferResult:
    """Stitches the window files (in column order, streaming) and writes every output of the run."""
    tick = time.perf_counter()
    # The QC settings the windows were checked with (resolved for the line when the run started).
    qc_config = from_dict(QCConfig, run["qc"]) if run.get("qc") else config.qc.resolved(False)
    section_path = out / SECTION_FILE
    stitched = _stitch_section(section_path, work, run, plan, config, qc_config, timings)
    timings = dict(timings)
    timings["stitch"] = time.perf_counter() - tick

    tick = time.perf_counter()
    files = [
        section_path,
        *_write_side_files(out, section_path, run, stitched.rows, config, qc_config, stitched.refine_summary),
    ]
    timings["outputs"] = time.perf_counter() - tick
    summary_path = out / "summary.json"
    refined = bool(run.get("refine"))
    write_text_atomic(
        summary_path,
        json.dumps(
            json_ready(
                {
                    "section": str(section_path),
                    "files": [str(f) for f in files],
                    "num_windows": plan.num_windows,
                    "num_columns": plan.num_columns,
                    "qc": stitched.summary,
                    "qc_misfit_floor": stitched.misfit_floor,
                    "input_correction": stitched.input_report,
                    "geometry": run.get("geometry", {}),
                    "section_velocity_errors": stitched.section_errors,
                    **({"refine": stitched.refine_summary} if refined else {}),
                    "regridded": run["regridded"],
                    "timings_s": timings,
                    "model": run["model"]["uri"],
                }
            ),
            indent=1,
        )
        + "\n",
    )
    _print_report(run, stitched, qc_config)
    return InferResult(
        out_dir=out,
        num_windows=plan.num_windows,
        processed=0,
        skipped=0,
        merged=True,
        section_path=section_path,
        files=[*files, summary_path],
        qc_summary=stitched.summary,
        section_errors=stitched.section_errors,
        timings_s=timings,
    )


def _stitch_section(
    section_path: Path,
    work: Path,
    run: dict,
    plan: WindowPlan,
    config: InferConfig,
    qc_config: QCConfig,
    timings: dict[str, float],
) -> _Stitched:
    """Writes ``section.h5``: the stitched maps, the per-window table, the QC/refinement summaries, provenance."""
    frame = LineFrame(tuple(run["line"]["direction"]), float(run["line"]["offset_m"]))
    depth = int(run["layout"]["depth_cells"])
    spacing = float(run["layout"]["grid_spacing_m"])
    names = _map_names(run)
    refined = bool(run.get("refine"))
    x_m = plan.column_x_m()
    map_x, map_y = frame.to_xy(x_m)
    corrected = "line" in (run.get("input_correction") or {})
    line_refined, line_record = None, None
    if refined and run["refine"].get("mode") == "line":
        line_refined, line_record = load_line_refinement(work)
    rows: list[dict[str, Any]] = []
    with atomic_output(section_path) as temporary:
        writer = SectionWriter(
            temporary, plan.num_columns, depth, names, x_m, map_x, map_y, np.arange(depth) * spacing
        )
        try:
            stitcher = StreamingStitcher(plan.num_columns, depth, plan.width, names, writer, config.stitching)
            for window in np.argsort(plan.column_start, kind="stable"):
                maps, record = load_window(work, int(window))
                if line_refined is not None:
                    maps["refined_velocity_mps"] = line_refined_maps(
                        line_refined, int(plan.column_start[window]), plan.width
                    )
                    record = {
                        **record,
                        **{name: math.nan for name in REFINE_FIELDS},
                        "refine_note": LINE_NOTE,
                    }
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

                refine_summary = summarise(rows) if line_record is None else line_summary(line_record)
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
    return _Stitched(
        rows, summary, input_report, qc_attributes["misfit_floor"], section_errors, refine_summary
    )


def _map_names(run: dict) -> tuple[str, ...]:
    names = ("velocity_mps", "edges") if run["has_edges"] else ("velocity_mps",)
    return names + (("refined_velocity_mps",) if run.get("refine") else ())


def _write_side_files(
    out: Path,
    section_path: Path,
    run: dict,
    rows: list[dict[str, Any]],
    config: InferConfig,
    qc_config: QCConfig,
    refine_summary: dict[str, Any] | None = None,
) -> list[Path]:
    """The SEG-Y sections, ``qc.csv`` and the PNG previews (as ``config.outputs`` asks), from ``section.h5``."""
    spacing = float(run["layout"]["grid_spacing_m"])
    refined = bool(run.get("refine"))
    corrected = "line" in (run.get("input_correction") or {})
    files = []
    if config.outputs.segy:
        files.append(write_section_segy(section_path, out / "section_velocity.segy", "velocity_mps", spacing))
        if "edges" in _map_names(run):
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
                plot_refinement(
                    section_path, temporary, rows, config.outputs.preview_max_columns, refine_summary
                )
            files.append(refine_png)
    return files


def _print_report(run: dict, stitched: _Stitched, qc_config: QCConfig) -> None:
    """The QC table and the report lines on stderr (input correction, QC floor, errors, refinement)."""
    print(summary_table(stitched.rows), file=sys.stderr)
    for line_text in _report_lines(run, stitched.input_report, qc_config):
        print(line_text, file=sys.stderr)
    if stitched.section_errors:
        print(
            "Section velocity error against the truth: MAE {velocity_mae_mps:.1f} m/s, RMSE "
            "{velocity_rmse_mps:.1f} m/s, relative MAE {velocity_relative_mae:.2%}".format(
                **stitched.section_errors
            ),
            file=sys.stderr,
        )
    refine_summary = stitched.refine_summary
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


def finished_result(out: Path) -> InferResult:
    """The result of a run whose section is already complete (read back from ``section.h5``)."""
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


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return str(value)


__all__ = ["finished_result", "write_outputs"]
