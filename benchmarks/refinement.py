"""Refinement benchmark (issue 22): does ``--refine 20`` improve the *velocity* of a line recorded with another
source than the training data's?

Usage (from the repository root)::

    python -m benchmarks.refinement                         # 6 lines, ~10 min on 2 cores; docs/benchmarks.md
    python -m benchmarks.refinement --lines 1 --iterations 6 --no-write     # a quick look
    python -m benchmarks.refinement --start bundle --bundle DIR   # start from a network (small.yaml geometry)
    python -m benchmarks.refinement --openfwi-window        # seconds per OpenFWI-size window, both gradients

Setup:

1. **Window geometry**: ``configs/data/small.yaml`` (32 x 48 cells of 10 m, 3 sources and 24 receivers 10 m
   below the surface, 400 samples of 1 ms, 15 Hz Ricker), the engine's default settings: small enough for
   hundreds of engine gradients on a shared 2-core CPU.
2. **Lines**: ``--lines`` velocity sections of 32 x 96 cells per family in ``--families`` (families a network
   of this project trained on CurveVel-A never saw), three windows each (columns 0, 24 and 48, half a window
   apart, as ``pipeline.infer`` places them). Every window's shots are simulated over the **whole line**
   (energy from outside the window is in the data, as in a survey) with a **foreign source**: a 10 Hz Ricker
   (training: 15 Hz), 30 ms later than the training wavelet, reversed polarity, x 1000 in amplitude.
3. **Start** (``--start``): ``smooth`` (default, no trained network needed) the true section smoothed by a
   Gaussian of ``--smooth-cells`` cells, a realistic FWI start that knows the long wavelengths only; or
   ``bundle``: the network of ``--bundle`` predicting each window from the foreign data (sign-corrected by
   the estimated polarity is *not* applied: the row shows what the network gives as recorded).
4. **Rows**: the start; ``+ refinement (old)``: ``RefineConfig.legacy`` (the refinement before issue 22: the
   QC's scalar source correction, full band, 1-cell Gaussian smoothing, no prior); ``+ refinement (new)``:
   today's defaults (wavelet estimated per window, 4 Hz-to-full-band continuation, structure-keeping
   smoothing, prior); ``+ refinement (new, region stage as in pipeline.infer)``: the same with
   ``pipeline.infer``'s ``region_fraction=0.7, prior_weight=2``; optionally (``--line-mode``) ``+ refinement (new, whole line)``: ``refine_line``.
   Windows are stitched by ``pipeline.stitching`` (Tukey taper) into a section, scored against the truth:
   MAE (m/s), SSIM (OpenFWI's, on [0, 1] over 1500-4500 m/s); data misfit: mean over windows of
   ``||d - F s|| / ||d||`` with ``F`` the matching wavelet (``pipeline.wavelet_estimation``) estimated for
   that model, the same measure for every row; seconds per window of refinement (wall clock, shared machine).

The bar (issue 22): the new refinement lowers the section MAE by >= 10 % on average over the lines, raises it
by no more than 5 % on any line without a warning.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.report import machine_description, markdown_table, update_section

REPO_ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ("curvefault-b", "flatfault-b", "salt")
BOUNDS_MPS = (1500.0, 4500.0)
WINDOW_STARTS = (0, 24, 48)
LINE_COLUMNS = 96
FOREIGN = {"peak_frequency_hz": 10.0, "extra_delay_s": 0.03, "polarity": -1.0, "amplitude": 1000.0}
METHODS = ("start", "old", "new", "regions", "line")
METHOD_LABELS = {
    "start": "start",
    "old": "+ refinement (old)",
    "new": "+ refinement (new)",
    "regions": "+ refinement (new, region stage as in pipeline.infer)",
    "line": "+ refinement (new, whole line)",
}


def small_geometry():
    from core.config import load_config
    from data_prep.synthesize import SynthesizeConfig

    return load_config(SynthesizeConfig, files=[REPO_ROOT / "configs" / "data" / "small.yaml"]).geometry


def foreign_wavelet(geometry, engine) -> np.ndarray:
    """The survey's source: another peak frequency, a later peak, reversed polarity, other units."""
    from data_prep.wavelets import ricker

    delay = engine.resolved_ricker_delay_s(geometry) + FOREIGN["extra_delay_s"]
    shape = ricker(
        FOREIGN["peak_frequency_hz"], geometry.num_samples, geometry.sample_interval_s, delay_s=delay
    )
    return (FOREIGN["polarity"] * FOREIGN["amplitude"] * shape).astype(np.float32)


def simulate_line(truth: np.ndarray, geometry, engine) -> list[np.ndarray]:
    """Each window's gathers, its shots simulated over the whole line with the foreign source."""
    from data_prep.forward import simulate
    from pipeline.refine import line_survey

    empty = [np.zeros((geometry.num_sources, geometry.num_samples, geometry.num_receivers))] * len(
        WINDOW_STARTS
    )
    survey = line_survey(empty, WINDOW_STARTS, geometry, LINE_COLUMNS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gathers = np.asarray(
            simulate(truth, survey.geometry, engine, wavelet=foreign_wavelet(geometry, engine))
        )[0]
    shots = {cell: i for i, cell in enumerate(survey.geometry.source_cells)}
    receivers = {cell: i for i, cell in enumerate(survey.geometry.receiver_cells)}
    windows = []
    for start in WINDOW_STARTS:
        rows = [shots[(d, x + start)] for d, x in geometry.source_cells]
        columns = [receivers[(d, x + start)] for d, x in geometry.receiver_cells]
        windows.append(gathers[np.ix_(rows, range(geometry.num_samples), columns)].astype(np.float32))
    return windows


def common_misfit(velocity: np.ndarray, observed: np.ndarray, geometry, engine) -> float:
    """``||d - F s|| / ||d||`` with the matching wavelet ``F`` estimated for this model (every row alike)."""
    from pipeline.qc import data_misfit
    from pipeline.refine import refinement_engine, simulate_once
    from pipeline.wavelet_estimation import estimate_matching_filter

    simulated = simulate_once(
        velocity, geometry, refinement_engine(engine, geometry.num_samples), None, BOUNDS_MPS
    )
    match = estimate_matching_filter(observed, simulated, 100, 1e-3)
    return data_misfit(observed, match.apply(simulated))


def section_scores(section: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    from models.metrics import ssim_per_sample

    span = BOUNDS_MPS[1] - BOUNDS_MPS[0]
    unit_true = (np.asarray(truth, np.float64) - BOUNDS_MPS[0]) / span
    unit_pred = (np.clip(np.asarray(section, np.float64), *BOUNDS_MPS) - BOUNDS_MPS[0]) / span
    return {
        "mae_mps": float(np.mean(np.abs(np.asarray(section, np.float64) - truth))),
        "ssim": float(ssim_per_sample(unit_true, unit_pred)),
    }


def stitch(windows: list[np.ndarray]) -> np.ndarray:
    from pipeline.stitching import stitch_in_memory

    maps, _ = stitch_in_memory(LINE_COLUMNS, WINDOW_STARTS, [{"velocity_mps": w} for w in windows])
    return maps["velocity_mps"]


def run_line(family: str, index: int, args, geometry, engine, bundle) -> dict:
    from scipy.ndimage import gaussian_filter

    from data_prep.velocity_models import generate_model
    from pipeline.qc import EngineSetup
    from pipeline.refine import RefineConfig, refine, refine_line
    from pipeline.refine.config import (
        INFER_PRIOR_WEIGHT,
        INFER_REGION_FRACTION,
        INFER_REGION_PRIOR_WEIGHT,
    )

    truth = np.clip(generate_model(family, args.seed, index, (32, LINE_COLUMNS)).velocity_mps, *BOUNDS_MPS)
    observed = simulate_line(truth, geometry, engine)
    width = geometry.grid_shape[1]
    if bundle is not None:
        predicted = bundle.predict(np.stack(observed), batch_size=len(observed))
        starts = [np.asarray(v, np.float64) for v in predicted["velocity_mps"]]
        edges = [np.asarray(e, np.float64) for e in predicted["edges"]] if "edges" in predicted else None
    else:
        smooth = gaussian_filter(truth, args.smooth_cells, mode="nearest")
        starts = [smooth[:, s : s + width] for s in WINDOW_STARTS]
        edges = None
    row = {"family": family, "index": index, "load_1min": os.getloadavg()[0], "methods": {}}
    configs = {
        "old": RefineConfig.legacy(args.iterations),
        "new": RefineConfig(iterations=args.iterations),
        # With pipeline.infer's settings (a first stage of one velocity per layer or body, a stronger prior
        # after it): what they do from this start.
        "regions": RefineConfig(
            iterations=args.iterations,
            region_fraction=INFER_REGION_FRACTION,
            prior_weight=INFER_PRIOR_WEIGHT,
            region_prior_weight=INFER_REGION_PRIOR_WEIGHT,
        ),
    }
    for method in ("start", *configs):
        windows, misfits, seconds, cpu_seconds, notes, polarities = [], [], [], [], [], []
        for number, (start_column, gathers, start) in enumerate(
            zip(WINDOW_STARTS, observed, starts, strict=True)
        ):
            truth_window = truth[:, start_column : start_column + width]
            if method == "start":
                velocity, elapsed = start, 0.0
            else:
                cpu_start = time.process_time()
                result = refine(
                    gathers,
                    start,
                    geometry,
                    engine,
                    configs[method],
                    bounds_mps=BOUNDS_MPS,
                    true_velocity_mps=truth_window,
                    edges=None if edges is None else edges[number],
                )
                velocity, elapsed = result.velocity_mps, result.time_s
                cpu_seconds.append(time.process_time() - cpu_start)
                notes.append(result.warning)
                polarities.append(result.wavelet_polarity)
            windows.append(np.asarray(velocity, np.float32))
            misfits.append(common_misfit(velocity, gathers, geometry, engine))
            seconds.append(elapsed)
        row["methods"][method] = {
            **section_scores(stitch(windows), truth),
            "misfit": float(np.mean(misfits)),
            "seconds_per_window": float(np.mean(seconds)),
            "cpu_seconds_per_window": float(np.mean(cpu_seconds)) if cpu_seconds else 0.0,
            "warnings": [note for note in notes if note],
            "polarity": [float(p) for p in polarities],
        }
    if args.line_mode:
        setup = EngineSetup(geometry, engine, None, [])
        section_start = stitch([np.asarray(s, np.float32) for s in starts])
        cpu_start = time.process_time()
        result = refine_line(
            observed,
            WINDOW_STARTS,
            section_start,
            setup,
            RefineConfig(iterations=args.iterations, mode="line"),
            BOUNDS_MPS,
            true_section_mps=truth,
        )
        misfits = [
            common_misfit(result.velocity_mps[:, s : s + width], gathers, geometry, engine)
            for s, gathers in zip(WINDOW_STARTS, observed, strict=True)
        ]
        row["methods"]["line"] = {
            **section_scores(result.velocity_mps, truth),
            "misfit": float(np.mean(misfits)),
            "seconds_per_window": result.time_s / len(WINDOW_STARTS),
            "cpu_seconds_per_window": (time.process_time() - cpu_start) / len(WINDOW_STARTS),
            "warnings": [result.warning] if result.warning else [],
            "polarity": [result.wavelet_polarity],
        }
    return row


def _load_note(highest: float) -> str:
    cores = os.cpu_count() or 1
    if highest <= cores:
        return f"at most the {cores} cores: the benchmark's own processes"
    return f"above the {cores} cores: other jobs ran beside it, so times are inflated"


def _refine_code_digest(paths: list[Path] | None = None) -> str:
    """A digest of the source files a refinement runs (or of ``paths``: files, or folders of ``.py`` files):
    ``pipeline.refine``, the matching filter, the QC's misfit and the engine. Cached rows of other code are
    measured again."""
    import hashlib

    if paths is None:
        import data_prep.forward
        import pipeline.qc
        import pipeline.refine
        import pipeline.wavelet_estimation

        paths = [
            Path(pipeline.refine.__file__).parent,
            Path(data_prep.forward.__file__).parent,
            Path(pipeline.wavelet_estimation.__file__),
            Path(pipeline.qc.__file__),
        ]
    digest = hashlib.sha256()
    for path in paths:
        for source in sorted(Path(path).glob("*.py")) if Path(path).is_dir() else [Path(path)]:
            digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def _key(args) -> str:
    return json.dumps(
        {
            "iterations": args.iterations,
            "start": args.start,
            "smooth_cells": args.smooth_cells,
            "seed": args.seed,
            "bundle": args.bundle,
            "foreign": FOREIGN,
            # Rows measured with other code are not today's: the digest covers the refinement's defaults too
            # (pipeline/refine/config.py), so a changed default also measures again.
            "refine_code": _refine_code_digest(),
        },
        sort_keys=True,
    )


def run(args) -> list[dict]:
    from data_prep.forward import EngineConfig
    from pipeline.refine import RefineConfig, refine

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results_path = work / "results.jsonl"
    geometry = small_geometry()
    engine = EngineConfig()
    bundle = None
    if args.start == "bundle":
        from pipeline.bundle import load_bundle

        bundle = load_bundle(args.bundle)
    rows = []
    if results_path.is_file():
        rows = [json.loads(line) for line in results_path.read_text().splitlines()]
        rows = [row for row in rows if row.get("key") == _key(args)]
    done = {(row["family"], row["index"]) for row in rows if (not args.line_mode or "line" in row["methods"])}
    # Compile the engine's forward and gradient for the window's shapes before anything is timed.
    warm = np.full(geometry.grid_shape, 2500.0)
    noise = np.random.default_rng(0).standard_normal(
        (geometry.num_sources, geometry.num_samples, geometry.num_receivers)
    )
    for config in (RefineConfig(iterations=1), RefineConfig.legacy(1)):
        refine(noise, warm, geometry, engine, config, bounds_mps=BOUNDS_MPS)
    for family in args.families:
        for index in range(args.lines):
            if (family, index) in done:
                continue
            tick = time.perf_counter()
            row = run_line(family, index, args, geometry, engine, bundle)
            row["key"] = _key(args)
            with open(results_path, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            rows = [r for r in rows if (r["family"], r["index"]) != (family, index)] + [row]
            summary = ", ".join(f"{m} {v['mae_mps']:.0f}" for m, v in row["methods"].items())
            print(
                f"{family} #{index}: MAE m/s {summary}; {time.perf_counter() - tick:.0f} s, "
                f"load {row['load_1min']:.1f}",
                flush=True,
            )
    return [row for row in rows if row["family"] in args.families and row["index"] < args.lines]


def summarize(rows: list[dict], args) -> str:
    from pipeline.refine.config import (
        INFER_PRIOR_WEIGHT,
        INFER_REGION_FRACTION,
        INFER_REGION_PRIOR_WEIGHT,
    )

    methods = [m for m in METHODS if all(m in row["methods"] for row in rows)]
    table = []
    for family in args.families:
        chosen = [row for row in rows if row["family"] == family]
        if not chosen:
            continue
        for method in methods:
            values = [row["methods"][method] for row in chosen]
            table.append(
                [
                    family,
                    METHOD_LABELS[method],
                    len(chosen),
                    round(float(np.mean([v["mae_mps"] for v in values])), 1),
                    round(float(np.mean([v["ssim"] for v in values])), 3),
                    round(float(np.mean([v["misfit"] for v in values])), 3),
                    round(float(np.mean([v["seconds_per_window"] for v in values])), 2),
                    round(float(np.mean([v.get("cpu_seconds_per_window", 0.0) for v in values])), 2),
                    sum(len(v["warnings"]) for v in values),
                ]
            )
    verdicts = []
    for method in [m for m in methods if m != "start"]:
        changes = np.asarray(
            [row["methods"][method]["mae_mps"] / row["methods"]["start"]["mae_mps"] - 1.0 for row in rows]
        )
        worse = [
            f"{row['family']} #{row['index']} ({100 * change:+.1f} %, {'with' if row['methods'][method]['warnings'] else 'without'} a warning)"
            for row, change in zip(rows, changes, strict=True)
            if change > 0.05
        ]
        unwarned = [w for w in worse if "without" in w]
        met = changes.mean() <= -0.10 and not unwarned
        verdicts.append(
            f"- {METHOD_LABELS[method]}: section MAE {100 * changes.mean():+.1f} % on average over {len(rows)} lines "
            f"(best {100 * changes.min():+.1f} %, worst {100 * changes.max():+.1f} %); lines more than 5 % worse: "
            f"{', '.join(worse) if worse else 'none'}. Bar (>= 10 % lower on average, none > 5 % worse without a "
            f"warning): **{'met' if met else 'not met'}** (an accuracy verdict, not a timing; 1-minute load "
            f"{min(row['load_1min'] for row in rows):.1f}-{max(row['load_1min'] for row in rows):.1f})."
        )
    loads = [row["load_1min"] for row in rows]
    start_label = (
        f"the true section smoothed by a Gaussian of {args.smooth_cells:g} cells (no trained network was at hand; "
        "a realistic FWI start that knows the long wavelengths only)"
        if args.start == "smooth"
        else f"the network of `{args.bundle}` (each window predicted from the foreign data as recorded)"
    )
    return f"""## Refinement: foreign source, unseen families (issue 22)

`python -m benchmarks.refinement{" --line-mode" if args.line_mode else ""} --lines {args.lines} --iterations {args.iterations}` (see its docstring). Window geometry
`configs/data/small.yaml` (32 x 48 cells of 10 m, 3 sources, 24 receivers, 400 samples of 1 ms, 15 Hz Ricker),
the engine's default settings. Lines of 32 x {LINE_COLUMNS} cells ({args.lines} per family, seed {args.seed}), three
windows each (columns {", ".join(map(str, WINDOW_STARTS))}), every window's shots simulated over the whole line with a
**foreign source**: {FOREIGN["peak_frequency_hz"]:g} Hz Ricker (training: 15 Hz), {1e3 * FOREIGN["extra_delay_s"]:.0f} ms later,
polarity {FOREIGN["polarity"]:+.0f}, amplitude x {FOREIGN["amplitude"]:g}. Start: {start_label}. {args.iterations} engine
gradients per window for each refinement; old = `RefineConfig.legacy` (the QC's scalar source correction, full
band, 1-cell smoothing, no prior), new = today's defaults (matching wavelet estimated per window, 4 Hz to full
band, structure-keeping smoothing, prior), new with the region stage `pipeline.infer` adds for a network's start
(`pipeline.infer`'s settings: {100 * INFER_REGION_FRACTION:.0f} % of the iterations first move each layer or body as a whole,
held by a prior of weight {INFER_REGION_PRIOR_WEIGHT:g}, then a prior of weight {INFER_PRIOR_WEIGHT:g} towards that result). MAE and SSIM of the stitched section against the truth; data misfit:
mean over windows of `||d - F s|| / ||d||` with the matching wavelet `F` estimated for the model (one measure for
every row); seconds of refinement per window, wall clock and CPU time of the process (both cores; on a
machine of its own the wall time lies between half the CPU time and the CPU time); warnings: windows whose `RefineResult.warning` is set. Each value
is the mean over the lines. {machine_description()}; 1-minute load average {min(loads):.1f}-{max(loads):.1f}
while it ran ({_load_note(max(loads))}).

{markdown_table(["family", "row", "lines", "MAE m/s", "SSIM", "data misfit", "s per window", "CPU s per window", "warnings"], table)}

{chr(10).join(verdicts)}
"""


def openfwi_window_timing(iterations: int, repeats: int = 3) -> str:
    """Seconds per window at OpenFWI's size (70 x 70 cells, 5 shots, 70 receivers, 1000 samples), after a
    compiling first call: one CurveFault-B window with the foreign source, the truth smoothed by 4 cells as
    start, today's refinement with the engine's two gradients (``EngineConfig(gradient="autodiff")``, the
    gradient before, and ``"adjoint"``, the adjoint-state method, default), interleaved in ``repeats`` rounds
    of one refinement each so both see the same load. Wall and CPU seconds (the process's, every core),
    medians over the rounds, the 1-minute load average around each refinement."""
    import statistics

    from scipy.ndimage import gaussian_filter

    from data_prep.forward import EngineConfig, simulate
    from data_prep.geometry import AcquisitionGeometry
    from data_prep.velocity_models import generate_model
    from pipeline.refine import RefineConfig, refine

    geometry = AcquisitionGeometry.openfwi()
    truth = np.clip(generate_model("curvefault-b", 7, 0, (70, 70)).velocity_mps, *BOUNDS_MPS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        observed = np.asarray(
            simulate(truth, geometry, EngineConfig(), wavelet=foreign_wavelet(geometry, EngineConfig()))
        )[0]
    start = gaussian_filter(truth, 4.0, mode="nearest")
    engines = {"autodiff gradient": EngineConfig(gradient="autodiff"), "adjoint gradient": EngineConfig()}
    config = RefineConfig(iterations=iterations)
    compile_s, wall, cpu, loads, outcome = {}, {n: [] for n in engines}, {n: [] for n in engines}, [], {}
    for name, engine in engines.items():
        tick = time.perf_counter()
        refine(observed, start, geometry, engine, RefineConfig(iterations=2), bounds_mps=BOUNDS_MPS)
        compile_s[name] = time.perf_counter() - tick
        print(f"- {name}: first call (compiles) {compile_s[name]:.1f} s", flush=True)
    for round_index in range(repeats):
        names = list(engines)[round_index % 2 :] + list(engines)[: round_index % 2]
        for name in names:
            loads.append(os.getloadavg()[0])
            tick, cpu_tick = time.perf_counter(), time.process_time()
            result = refine(
                observed,
                start,
                geometry,
                engines[name],
                config,
                bounds_mps=BOUNDS_MPS,
                true_velocity_mps=truth,
            )
            wall[name].append(time.perf_counter() - tick)
            cpu[name].append(time.process_time() - cpu_tick)
            loads.append(os.getloadavg()[0])
            outcome[name] = result
            print(
                f"  round {round_index + 1} {name}: {wall[name][-1]:.1f} s wall, {cpu[name][-1]:.1f} s CPU, "
                f"load {loads[-2]:.1f}-{loads[-1]:.1f}",
                flush=True,
            )
    lines = [
        "## Refinement: seconds per OpenFWI-size window (issue 22)",
        "",
        f"`python -m benchmarks.refinement --openfwi-window --iterations {iterations} --repeats {repeats}`: one "
        "CurveFault-B window (70 x 70 cells, 5 shots, 70 receivers, 1000 samples of 1 ms) recorded with the foreign "
        "source, the truth smoothed by 4 cells as start, today's refinement (`RefineConfig(iterations="
        f"{iterations})`: at most {iterations} gradient evaluations; a frequency stage that stops converging hands "
        "its share to the next, and the last one may end early) with the engine's two gradients, interleaved, "
        f"medians of {repeats} rounds after a compiling first call each. {machine_description()}; 1-minute load "
        f"{min(loads):.1f}-{max(loads):.1f} around the refinements (the load average counts the refinement's own "
        "threads).",
        "",
        "| engine gradient | gradient evaluations | wall s (median) | wall s (range) | CPU s (median) | "
        "first call s | velocity MAE m/s | data misfit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in engines:
        result = outcome[name]
        lines.append(
            f"| {name.split()[0]} | {result.gradient_evaluations} | {statistics.median(wall[name]):.1f} | "
            f"{min(wall[name]):.1f}-{max(wall[name]):.1f} | {statistics.median(cpu[name]):.1f} | "
            f"{compile_s[name]:.1f} | {result.velocity_errors_before['velocity_mae_mps']:.1f} -> "
            f"{result.velocity_errors_after['velocity_mae_mps']:.1f} | {result.misfit_before:.3f} -> "
            f"{result.misfit_after:.3f} |"
        )
    ratio = statistics.median(wall["autodiff gradient"]) / statistics.median(wall["adjoint gradient"])
    adjoint = statistics.median(wall["adjoint gradient"])
    lines += [
        "",
        f"Adjoint-state refinement {ratio:.1f}x faster per window (wall, medians). Bar (<= 10 s per window at "
        f"20 iterations on 2 cores, the default adjoint gradient): {adjoint:.1f} s, "
        f"**{'met' if adjoint <= 10 and iterations >= 20 else 'not met'}**.",
    ]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="/tmp/seisinvert-refinement-bench-22", help="Cache folder.")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--lines", type=int, default=2, help="Lines per family.")
    parser.add_argument("--seed", type=int, default=202)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--start", choices=("smooth", "bundle"), default="smooth")
    parser.add_argument("--smooth-cells", type=float, default=4.0)
    parser.add_argument("--bundle", help="A bundle of the small.yaml geometry (with --start bundle).")
    parser.add_argument("--repeats", type=int, default=3, help="--openfwi-window: interleaved rounds.")
    parser.add_argument("--line-mode", action="store_true", help="Also refine each line as one model.")
    parser.add_argument("--no-write", action="store_true", help="Print the table only.")
    parser.add_argument(
        "--openfwi-window",
        action="store_true",
        help="Only time one OpenFWI-size window (70 x 70, 5 shots, 1000 samples), both gradients (section "
        "refinement-openfwi-window).",
    )
    args = parser.parse_args(argv)
    if args.openfwi_window:
        text = openfwi_window_timing(args.iterations, args.repeats)
        if not args.no_write:
            update_section("refinement-openfwi-window", text)
        return 0
    if args.start == "bundle" and not args.bundle:
        parser.error(
            "--start bundle needs --bundle DIR (a bundle trained on configs/data/small.yaml's geometry)"
        )
    rows = run(args)
    text = summarize(rows, args)
    print(text)
    if not args.no_write:
        update_section("refinement", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
