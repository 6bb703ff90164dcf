"""Inference on lines from elsewhere (issue 22): the accuracy half of ``python -m benchmarks.inference``.

``--foreign BUNDLE`` runs it (section "inference-foreign"): lines
that this model's training never saw, simulated with another wavelet than training, inverted as recorded and
with the input correction (``pipeline.input_correction``), and the misfit floor of the physics QC::

    python -m benchmarks.inference --foreign outputs/<run>/bundle           # 3 lines of 3 windows, ~5 min
    python -m benchmarks.inference --foreign BUNDLE --lines 1 --no-write    # a quick look
    python -m benchmarks.inference --foreign BUNDLE --refine 20             # + a refined row and the bar of issue 22
    python -m benchmarks.inference --foreign BUNDLE --refine 20 --refine-padding 35   # + longer offsets
    python -m benchmarks.inference --foreign BUNDLE --foreign-families salt structural-salt --section NAME
    python -m benchmarks.inference --foreign BUNDLE --refine 20 --mirror-average --skip-references   # + mirrored twins

Each line (one per family in ``--foreign-families``, default ``FOREIGN_FAMILIES``; one wavelet each from ``FOREIGN_WAVELETS``): a model of
that family drawn over ``70 + 35 (windows - 1)`` columns, shots every 170 m (a regular line; OpenFWI's
layout has 170-180 m between its shots, so ``--regrid`` uses the nearest shot within one cell) at 10 m
depth with a receiver on every column at 10 m depth, simulated by the engine with the bundle's engine
settings and the line's Ricker (peak frequency, delay relative to the training wavelet's, polarity), written
as SEG-Y with the depths left 0 in the headers (as in many field files) and the true section as ``.npy``.
Per line: ``pipeline.infer --regrid`` with the input correction off (the network sees the traces as
recorded) and on (the default), and the *true* velocity through the same path (an oracle model with the
bundle's geometry and engine settings), whose QC misfit is the **floor** a perfect model cannot go below,
under the ``wavelet`` and the ``scale`` source corrections. MAE (m/s) and SSIM (OpenFWI's, [0, 1] over the
training velocity range) of the stitched section against the truth; QC misfit median; seconds per window
(the window loop: reading, correction, prediction, QC). ``--mirror-average`` runs every input-corrected network
run also with ``mirror_average: true`` and compares each with its plain twin.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.report import machine_description, markdown_table, update_section

#: Columns each window beyond the first adds to a line (half of OpenFWI's 70-column window: pipeline.infer's
#: default window step there).
LINE_STEP_CELLS = 35
#: Families of the foreign lines (the default model is trained on flatvel-a only).
FOREIGN_FAMILIES = ("curvevel-a", "flatfault-a", "curvefault-a")
#: Suffix of the runs with ``--mirror-average`` (the windows also predicted mirrored, ``pipeline.infer``'s
#: ``mirror_average``).
MIRRORED = ", mirror-averaged"
#: ``(peak frequency Hz, delay relative to the training wavelet's peak s, polarity)`` of each line's Ricker.
FOREIGN_WAVELETS = ((12.0, 0.020, -1), (15.0, 0.015, -1), (20.0, -0.010, 1))
FOREIGN_SHOT_STEP_CELLS = 17


def simulate_foreign_line(bundle, family: str, wavelet: tuple, windows: int, seed: int) -> dict:
    """A line of ``family`` simulated with ``wavelet`` over the bundle's window geometry and engine settings."""
    from data_prep.forward import EngineConfig, simulate
    from data_prep.geometry import AcquisitionGeometry
    from data_prep.velocity_models import generate_model
    from pipeline.windows import ModelLayout

    layout = ModelLayout.from_geometry(bundle.geometry)
    spacing = layout.grid_spacing_m
    columns = layout.width_cells + LINE_STEP_CELLS * (windows - 1)
    depth_cells = layout.grid_shape[0]
    velocity = generate_model(family, seed=seed, index=0, grid_shape=(depth_cells, columns)).velocity_mps
    source_row = int(round(layout.source_depth_m[0] / spacing))
    receiver_row = int(round(layout.receiver_depth_m[0] / spacing))
    shots = np.arange(0, columns, FOREIGN_SHOT_STEP_CELLS)
    settings = dict(bundle.engine_settings or {})
    peak, shift, polarity = wavelet
    training_delay = float(settings.get("ricker_delay_s") or 0.072)
    engine = EngineConfig(
        spatial_order=int(settings.get("spatial_order", 4)),
        absorbing_width_cells=int(
            settings.get("absorbing_width_cells", EngineConfig().absorbing_width_cells)
        ),
        free_surface=bool(settings.get("free_surface", False)),
        ricker_delay_s=training_delay + shift,
    )
    geometry = AcquisitionGeometry(
        grid_shape=(depth_cells, columns),
        grid_spacing_m=spacing,
        num_samples=layout.num_samples,
        sample_interval_s=layout.sample_interval_s,
        peak_frequency_hz=peak,
        source_cells=tuple((source_row, int(x)) for x in shots),
        receiver_cells=tuple((receiver_row, x) for x in range(columns)),
    )
    gathers = polarity * np.asarray(simulate(velocity, geometry, engine))[0]
    return {
        "velocity_mps": velocity,
        "gathers": gathers,
        "shots": shots,
        "spacing": spacing,
        "layout": layout,
    }


def write_foreign_line(path: Path, line: dict) -> Path:
    """The line as prestack SEG-Y: coordinates in cm (scalar -100), depths left 0 (unset) in the headers."""
    from data_prep.segy_io import write_segy_traces

    gathers, shots, spacing = line["gathers"], line["shots"], line["spacing"]
    num_shots, num_samples, columns = gathers.shape
    receivers = np.arange(columns)
    shot = np.repeat(np.arange(num_shots), columns)
    receiver = np.tile(receivers, num_shots)
    headers = {
        "TRACE_SEQUENCE_LINE": np.arange(1, shot.size + 1),
        "FieldRecord": shot + 1,
        "TraceNumber": receiver + 1,
        "SourceGroupScalar": -100,
        "ElevationScalar": -100,
        "SourceX": np.rint(shots[shot] * spacing * 100).astype(np.int64),
        "GroupX": np.rint(receiver * spacing * 100).astype(np.int64),
        "offset": np.rint((receiver - shots[shot]) * spacing).astype(np.int64),
        "TRACE_SAMPLE_COUNT": num_samples,
        "TRACE_SAMPLE_INTERVAL": int(round(line["layout"].sample_interval_s * 1e6)),
    }
    traces = np.ascontiguousarray(np.transpose(gathers, (0, 2, 1)).reshape(-1, num_samples), dtype=np.float32)
    return write_segy_traces(
        path, headers, traces, num_samples=num_samples, sample_interval=headers["TRACE_SAMPLE_INTERVAL"]
    )


class TruthModel:
    """The true velocity as a 'model' with the bundle's geometry, statistics and engine settings: the floor."""

    def __init__(self, bundle, velocity_mps: np.ndarray) -> None:
        self.geometry, self.stats, self.engine_settings = (
            bundle.geometry,
            bundle.stats,
            bundle.engine_settings,
        )
        self.info = {**dict(bundle.info or {}), "family": "truth"}
        self.has_edges = False
        self.truth = np.asarray(velocity_mps, np.float32)
        self.width = int(bundle.geometry.grid_shape[1])
        self.spacing = float(bundle.geometry.grid_spacing_m)

    def predict(self, seismic, batch_size: int = 16):
        raise NotImplementedError("pipeline.infer calls predict_windows")

    def predict_windows(self, seismic, window_origins_m, batch_size: int = 16):
        columns = np.arange(self.truth.shape[1]) * self.spacing
        maps = [
            np.stack(
                [np.interp(o + np.arange(self.width) * self.spacing, columns, row) for row in self.truth]
            )
            for o in window_origins_m
        ]
        return {"velocity_mps": np.asarray(maps, np.float32), "edges": None}


def seam_statistics(out: Path, section: dict) -> dict[str, float]:
    """Column-to-column steps of the stitched section where windows overlap, against the windows' own.

    A seam is a step between neighbouring columns that the windows themselves do not have. Steps are the
    depth-averaged ``|v(x + dx) - v(x)|`` (m/s). ``seam_max_mps``: the largest step of the stitched section
    in columns covered by two windows; ``window_p95_mps``: the 95th percentile of the steps inside the
    windows' own predictions (their "noise" along x). Seams are below the windows' noise when the first is
    not larger than the second.
    """
    starts = np.asarray(section["windows"]["column_start"])
    maps = [
        np.load(path)["velocity_mps"] for path in sorted((out / ".work" / "windows").glob("window_*.npz"))
    ]
    width = maps[0].shape[1]
    own = np.concatenate([np.mean(np.abs(np.diff(m, axis=1)), axis=0) for m in maps])
    coverage = np.zeros(section["velocity_mps"].shape[1], np.int64)
    for start in starts:
        coverage[start : start + width] += 1
    steps = np.mean(np.abs(np.diff(section["velocity_mps"], axis=1)), axis=0)
    overlap = (coverage[:-1] >= 2) & (coverage[1:] >= 2)
    return {
        "seam_max_mps": float(steps[overlap].max()) if overlap.any() else float("nan"),
        "window_p95_mps": float(np.percentile(own, 95)),
    }


def refinement_verdict(results: list[dict], runs: list[str]) -> str:
    """Issue 22's bar for ``--refine``, read from the rows: the refined section's MAE against the input-corrected
    network's, per line (>= 10 % lower on average, no line more than 5 % worse: stricter than the issue, which
    excuses a line with a warning), with the refinement's own seconds per window (wall clock, as recorded)."""
    return "".join(
        _refinement_verdict(results, name) if "+ refine" in name else _mirror_verdict(results, name)
        for name in runs
        if "+ refine" in name or name.endswith(MIRRORED)
    )


def _mirror_verdict(results: list[dict], run: str) -> str:
    """The mirror-averaged network's section MAE and SSIM against its plain twin's, per line."""
    plain = {r["line_index"]: r for r in results if r["run"] == run.removesuffix(MIRRORED)}
    rows = [r for r in results if r["run"] == run and r["line_index"] in plain]
    changes = [r["mae_mps"] / plain[r["line_index"]]["mae_mps"] - 1 for r in rows]
    ssim = float(np.mean([r["ssim"] - plain[r["line_index"]]["ssim"] for r in rows]))
    better = sum(change < 0 for change in changes)
    return (
        f"\n- {run} against the same without mirroring: section MAE {100 * np.mean(changes):+.1f} % on average "
        f"over {len(rows)} line(s) (best {100 * min(changes):+.1f} %, worst {100 * max(changes):+.1f} %; "
        f"lower on {better}), SSIM {ssim:+.3f}."
    )


def _start_run(run: str) -> str:
    """The run a refined (or mirror-averaged) run is measured against: the input-corrected network it started
    from, mirror-averaged when it was."""
    return "network + input correction" + (MIRRORED if run.endswith(MIRRORED) and "+ refine" in run else "")


def _refinement_verdict(results: list[dict], run: str) -> str:
    # Keyed by the line's index: with more lines than families x wavelets, two lines share a label.
    start_run = _start_run(run)
    start = {r["line_index"]: r["mae_mps"] for r in results if r["run"] == start_run}
    rows = [r for r in results if r["run"] == run]
    changes = {(r["line_index"], r["line"]): r["mae_mps"] / start[r["line_index"]] - 1 for r in rows}
    worse = [f"{line} ({100 * change:+.1f} %)" for (_, line), change in changes.items() if change > 0.05]
    seconds = [r["refine_s_per_window"] for r in rows if r.get("refine_s_per_window") is not None]
    mean = float(np.mean(list(changes.values())))
    met = mean <= -0.10 and not worse
    return (
        f"\n- {run} against the {start_run}: section MAE {100 * mean:+.1f} % on "
        f"average over {len(rows)} line(s) (best {100 * min(changes.values()):+.1f} %, worst "
        f"{100 * max(changes.values()):+.1f} %); lines more than 5 % worse: {', '.join(worse) or 'none'}; "
        f"refinement {np.median(seconds):.1f} s per window (median of the lines' means, wall clock). "
        f"Bar (>= 10 % lower on average, none > 5 % worse): **{'met' if met else 'not met'}**; the refinement's "
        f"data misfit went {np.median([r['refine_misfit_before'] for r in rows]):.3f} -> "
        f"{np.median([r['refine_misfit_after'] for r in rows]):.3f} (median over lines).{_by_depth(results, rows, start_run)}"
    )


def _by_depth(results: list[dict], rows: list[dict], start_run: str = "network + input correction") -> str:
    """The refined run's MAE change in the section's top, middle and bottom thirds (mean over lines), with
    the network's MAE there; "" for rows recorded without ``mae_by_depth_third_mps``."""
    start = {
        r["line_index"]: np.asarray(r["mae_by_depth_third_mps"])
        for r in results
        if r["run"] == start_run and "mae_by_depth_third_mps" in r
    }
    rows = [r for r in rows if "mae_by_depth_third_mps" in r and r["line_index"] in start]
    if not rows:
        return ""
    change = np.mean(
        [np.asarray(r["mae_by_depth_third_mps"]) / start[r["line_index"]] - 1 for r in rows], axis=0
    )
    network = np.mean([start[r["line_index"]] for r in rows], axis=0)
    return (
        " MAE change by depth, top / middle / bottom third of the section: "
        f"{' / '.join(f'{100 * c:+.1f} %' for c in change)} (mean over lines; the network's MAE there "
        f"{' / '.join(f'{m:.0f}' for m in network)} m/s)."
    )


def foreign_report(args, results: list[dict], runs: list[str], bundle, bounds, load_start: float) -> str:
    """The ``inference-foreign`` section from the rows ``foreign_main`` measured."""

    def cell(value, digits=3):
        return (
            "-"
            if value is None or (isinstance(value, float) and not np.isfinite(value))
            else round(value, digits)
        )

    table = markdown_table(
        [
            "line (family, wavelet)",
            "run",
            "MAE m/s",
            "top / 2nd row MAE m/s",
            "SSIM",
            "QC misfit median (max)",
            "QC correction",
            "flagged",
            "estimated polarity / delay ms / phase deg",
            "largest step in overlaps / windows' own p95, m/s",
            "s per window",
        ],
        [
            (
                r["line"],
                r["run"],
                cell(r["mae_mps"], 1),
                f"{cell(r['top_row_mae_mps'], 1)} / {cell(r['second_row_mae_mps'], 1)}",
                cell(r["ssim"]),
                f"{cell(r['misfit'])} ({cell(r['misfit_max'])})",
                r["qc"],
                f"{r['flagged']}/{r['windows']}",
                "-"
                if r["polarity"] is None
                else f"{r['polarity']:+.0f} / {r['delay_ms']:+.1f} / {r['phase_deg']:+.0f}",
                "-"
                if "seam_max_mps" not in r
                else f"{cell(r['seam_max_mps'], 1)} / {cell(r['window_p95_mps'], 1)}",
                cell(r["s_per_window"], 2),
            )
            for r in results
        ],
    )
    means = {}
    for name in runs:
        chosen = [r for r in results if r["run"] == name]
        means[name] = {
            k: float(np.mean([r[k] for r in chosen])) for k in ("mae_mps", "ssim", "misfit", "misfit_max")
        }
    floors = {
        correction: max(
            (r["misfit_max"] for r in results if r["run"] == f"true model, QC {correction}"), default=None
        )
        for correction in ("wavelet", "scale")
    }
    load_end = os.getloadavg()[0]
    summary = "\n".join(
        f"- {name}: MAE {m['mae_mps']:.1f} m/s, SSIM {m['ssim']:.3f}, QC misfit median {m['misfit']:.3f}"
        for name, m in means.items()
    )
    summary += refinement_verdict(results, runs)
    families = " ".join(args.foreign_families)
    options = (
        (f" --foreign-families {families}" if tuple(args.foreign_families) != FOREIGN_FAMILIES else "")
        + (f" --refine {args.refine}" if args.refine else "")
        + (" --refine-line" if args.refine and args.refine_line else "")
        + (f" --refine-padding {args.refine_padding}" if args.refine and args.refine_padding else "")
        + "".join(f" --refine-set {pair}" for pair in (args.refine_set if args.refine else []))
        + (f" --first-seed {args.first_seed}" if args.first_seed != 100 else "")
        + (" --mirror-average" if args.mirror_average else "")
        + (" --skip-references" if args.skip_references else "")
        + (f" --section {args.section}" if args.section != "inference-foreign" else "")
    )
    markdown = f"""## Inference on lines from elsewhere (`benchmarks/inference.py --foreign`)

`python -m benchmarks.inference --foreign BUNDLE --lines {args.lines} --foreign-windows {args.foreign_windows}{options}`:
{args.lines} line(s) of {args.foreign_windows} windows from families the model was not trained on ({", ".join(args.foreign_families)}), each simulated by the engine
with another Ricker than training (peak frequency, delay relative to the training wavelet's peak, polarity),
shots every 170 m (`--regrid` takes the nearest shot within one cell), depths 0 in the headers (the model's
10 m: a warning); `pipeline.infer --regrid` with the input correction off and on, and the true velocity
through the same path (its QC misfit is the floor a perfect model cannot go below). Model:
{args.model_description or bundle.info.get("family", "?")} (training velocity range {bounds[0]:g}-{bounds[1]:g} m/s).

{table}

Means over the lines:
{summary}

Seconds per window: the run until the merge divided by its windows, so one-off costs are in it (XLA
compilations, paid by the first run in the process that meets a shape; the input correction's reference
simulation and line estimate): with 3 windows per line they dominate, compare rows only roughly.
{_floor_note(floors)}
Machine: {machine_description()}; 1-minute load average {load_start:.1f} at the start and {load_end:.1f} at the
end (other jobs shared the 2 cores: times are upper bounds).
"""
    return markdown


def _floor_note(floors: dict[str, float | None]) -> str:
    """The misfit floor's sentence of the report (none without the true-model runs, ``--skip-references``)."""
    if floors["wavelet"] is None:
        return "Misfit floor: not measured (`--skip-references`: no true-model runs)."
    return (
        f"Misfit floor (the largest per-window misfit of the true model): {floors['wavelet']:.3f} under the "
        f"`wavelet`\nsource correction, {floors['scale']:.3f} under `scale` (`pipeline.qc.MISFIT_FLOOR` holds "
        "the values used by\ndefault; a window is flagged above floor + `qc.misfit_margin`)."
    )


def _refine_settings(pairs: list[str]) -> dict:
    """``["key=value", ...]`` (``--refine-set``) as refine settings, each value parsed as YAML."""
    import yaml

    settings = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise SystemExit(
                f"--refine-set takes KEY=VALUE (a refine setting, e.g. prior_weight=1). Received: {pair!r}"
            )
        settings[key.strip()] = yaml.safe_load(value)
    return settings


def foreign_runs(args: argparse.Namespace, refine_settings: dict) -> dict[str, tuple[str, dict]]:
    """The runs of each line, by name: which model (``network`` or ``truth``) and the ``InferConfig`` changes."""
    runs = {
        "network as recorded": ("network", {"input_correction": {"enabled": False}}),
        "network + input correction": ("network", {}),
        **(
            {
                f"network + input correction + refine {args.refine}": (
                    "network",
                    {"refine": {"iterations": args.refine}},
                )
            }
            if args.refine
            else {}
        ),
        **(
            {
                f"network + input correction + refine {args.refine}, whole line": (
                    "network",
                    {"refine": {"iterations": args.refine, "mode": "line"}},
                )
            }
            if args.refine and args.refine_line
            else {}
        ),
        **(
            {
                f"network + input correction + refine {args.refine}, padding {args.refine_padding}": (
                    "network",
                    {"refine": {"iterations": args.refine, "padding_cells": args.refine_padding}},
                )
            }
            if args.refine and args.refine_padding
            else {}
        ),
        **(
            {
                f"network + input correction + refine {args.refine}, {' '.join(args.refine_set)}": (
                    "network",
                    {"refine": {"iterations": args.refine, **refine_settings}},
                )
            }
            if args.refine and args.refine_set
            else {}
        ),
        "true model, QC wavelet": ("truth", {"qc": {"source_correction": "wavelet"}}),
        "true model, QC scale": ("truth", {"qc": {"source_correction": "scale"}}),
    }
    if args.skip_references:
        # Tuning: the input-corrected network (what refinement changes is measured against) and the refined runs.
        runs = {name: run for name, run in runs.items() if name.startswith("network + input correction")}
    if args.mirror_average:
        # Each input-corrected network run again with the windows also predicted mirrored (pipeline.infer's
        # mirror_average), right after its plain twin.
        runs = {
            key: value
            for name, (kind, values) in runs.items()
            for key, value in (
                ((name, (kind, values)), (f"{name}{MIRRORED}", (kind, {**values, "mirror_average": True})))
                if name.startswith("network + input correction")
                else ((name, (kind, values)),)
            )
        }
    return runs


def foreign_main(args: argparse.Namespace) -> int:
    from core.config import from_dict
    from models.metrics import ssim_per_sample
    from pipeline.bundle import load_bundle
    from pipeline.infer import InferConfig, infer
    from pipeline.section import read_section

    refine_settings = _refine_settings(args.refine_set)  # a malformed pair is refused before any work
    load_start = os.getloadavg()[0]
    bundle = load_bundle(args.foreign)
    bounds = (float(bundle.stats.velocity_min_mps), float(bundle.stats.velocity_max_mps))
    runs = foreign_runs(args, refine_settings)
    results = []
    with tempfile.TemporaryDirectory(prefix="infer-foreign-", dir=args.workdir) as folder:
        folder = Path(folder)
        for index in range(args.lines):
            family = args.foreign_families[index % len(args.foreign_families)]
            wavelet = FOREIGN_WAVELETS[index % len(FOREIGN_WAVELETS)]
            started = time.perf_counter()
            line = simulate_foreign_line(
                bundle, family, wavelet, args.foreign_windows, seed=args.first_seed + index
            )
            survey = write_foreign_line(folder / f"line{index}.sgy", line)
            truth = folder / f"truth{index}.npy"
            np.save(truth, line["velocity_mps"])
            label = f"{family}, {wavelet[0]:g} Hz, {1e3 * wavelet[1]:+g} ms, {'reversed' if wavelet[2] < 0 else 'normal'}"
            print(f"line {index} ({label}) simulated in {time.perf_counter() - started:.0f} s", flush=True)
            for name, (kind, values) in runs.items():
                config = from_dict(
                    InferConfig,
                    {
                        "truth": str(truth),
                        "regrid": {"enabled": True},
                        "outputs": {"png": False, "segy": False, "keep_window_files": kind == "network"},
                        "mirror_average": False,  # as recorded; --mirror-average runs add mirrored twins
                        **values,
                    },
                )
                model = bundle if kind == "network" else TruthModel(bundle, line["velocity_mps"])
                out = folder / f"out{index}-{len(results)}"
                result = infer([survey], model, out, config, progress=False, model_uri=args.foreign)
                section = read_section(result.section_path)
                refined = "refine" in values
                covered = section["coverage_weight"] > 0
                # The refined row scores the refined section; its QC columns stay the network's (what QC
                # measured before the refinement); the refinement's own misfits are in the verdict line.
                predicted = section["refined_velocity_mps" if refined else "velocity_mps"][:, covered]
                true = line["velocity_mps"][:, : section["velocity_mps"].shape[1]][:, covered]
                span = bounds[1] - bounds[0]
                ssim = float(
                    ssim_per_sample(
                        (true - bounds[0]) / span, (np.clip(predicted, *bounds) - bounds[0]) / span
                    )
                )
                correction = section["qc"].get("input_correction", {}).get("line", {})
                seams = seam_statistics(out, section) if kind == "network" else {}
                row = {
                    "line": label,
                    "line_index": index,
                    "run": name,
                    "mae_mps": (
                        section["refine"]["summary"]["section_velocity_errors"]["velocity_mae_mps"]
                        if refined
                        else result.section_errors["velocity_mae_mps"]
                    ),
                    # A surface artefact (issue 22: a one-row band at the top) shows as a top row much worse
                    # than the rows below it.
                    "top_row_mae_mps": float(np.mean(np.abs(predicted[0] - true[0]))),
                    # Where the error lies: the section's top, middle and bottom thirds (refinement mends the
                    # shallow part the data illuminate; docs/refinement.md, "Where the refined error lies").
                    "mae_by_depth_third_mps": [
                        float(np.mean(np.abs(p - t)))
                        for p, t in zip(
                            np.array_split(predicted, 3, axis=0), np.array_split(true, 3, axis=0), strict=True
                        )
                    ],
                    "second_row_mae_mps": float(np.mean(np.abs(predicted[1] - true[1]))),
                    "ssim": ssim,
                    "misfit": result.qc_summary.get("data_misfit_median", float("nan")),
                    "misfit_max": result.qc_summary.get("data_misfit_max", float("nan")),
                    "qc": section["qc"]["misfit_floor"]["source_correction"],
                    "flagged": int(result.qc_summary.get("num_flagged", 0)),
                    "windows": result.num_windows,
                    "s_per_window": result.timings_s["windows_total"] / result.num_windows,
                    **(
                        {
                            "refine_s_per_window": section["refine"]["summary"].get("time_per_window_s"),
                            "refine_misfit_before": section["refine"]["summary"].get("misfit_before_median"),
                            "refine_misfit_after": section["refine"]["summary"].get("misfit_after_median"),
                        }
                        if refined
                        else {}
                    ),
                    **seams,
                    "polarity": correction.get("input_polarity"),
                    "delay_ms": 1e3 * correction["input_delay_s"] if correction else None,
                    "phase_deg": correction.get("input_phase_deg"),
                }
                results.append(row)
                print(json.dumps(row), flush=True)

    markdown = foreign_report(args, results, list(runs), bundle, bounds, load_start)
    print(markdown)
    if not args.no_write:
        print(f"updated {update_section(args.section, markdown)}")
    return 0
