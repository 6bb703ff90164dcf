"""Inference benchmark: windows per second on the CPU, QC's share of the time, peak memory vs line length.

Runs ``python -m pipeline.infer`` in a fresh process on a line ``--windows`` windows long and on one
``--factor`` times longer, with OpenFWI's window (70 x 70 cells of 10 m, 5 shots, 70 receivers, 1000 samples
of 1 ms) and the default dual U-Net (untrained unless ``--model`` gives a bundle: speed and memory do not
depend on the weights), physics QC on. Each run reports its own peak resident memory (``ru_maxrss``) and the
stage timings ``pipeline.infer`` records; the target is memory that does not grow with the line.

The survey: a moving split spread (receivers within 690 m of each shot, so every shot serves the windows on
both sides), shots only where the windows need them (window starts every 35 cells; shots at 35 k + 0, 17, 34
cells). Its gathers are copies of three shots simulated by the engine over one flatvel-a model (one per shot
position class), placed along the line: the numbers do not depend on the sample values.

Usage::

    python -m benchmarks.inference                  # 30 and 300 windows, writes docs/benchmarks.md
    python -m benchmarks.inference --windows 4 --factor 3 --no-write   # a quick look

``--foreign BUNDLE`` runs the accuracy benchmark of issue 22 instead, on lines simulated with another wavelet than
training (``benchmarks.inference_foreign``, which describes it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.inference_foreign import FOREIGN_FAMILIES, foreign_main
from benchmarks.report import machine_description, markdown_table, update_section

REPO_ROOT = Path(__file__).resolve().parent.parent
WINDOW_STEP_CELLS = 35
SHOT_CLASSES = (0, 17, 34)  # OpenFWI's source cells modulo the window step
SPREAD_CELLS = 69


def simulate_base_shots():
    """``(3, time, 70 + 139)`` gathers: one shot per class, receivers on every column, and the geometry."""
    from data_prep.forward import EngineConfig, simulate
    from data_prep.geometry import AcquisitionGeometry
    from data_prep.velocity_models import generate_model

    window = AcquisitionGeometry()
    width = 2 * SPREAD_CELLS + 1 + max(SHOT_CLASSES)
    velocity = generate_model(
        "flatvel-a", seed=0, index=0, grid_shape=(window.grid_shape[0], width)
    ).velocity_mps
    depth_row = window.source_cells[0][0]
    geometry = window.replace(
        grid_shape=(window.grid_shape[0], width),
        source_cells=tuple((depth_row, SPREAD_CELLS + c) for c in SHOT_CLASSES),
        receiver_cells=tuple((window.receiver_cells[0][0], x) for x in range(width)),
    )
    gathers = np.asarray(simulate(velocity, geometry, EngineConfig()))[0]
    return gathers, window


def write_line(path: Path, num_windows: int, base: np.ndarray, window) -> dict:
    """A line of ``num_windows`` windows (starts every 35 cells) as one SEG-Y file, written shot by shot."""
    from data_prep.segy_io import write_segy_traces

    spacing = window.grid_spacing_m
    columns = WINDOW_STEP_CELLS * (num_windows - 1) + window.grid_shape[1]
    shots = sorted({WINDOW_STEP_CELLS * k + c for k in range(num_windows + 2) for c in SHOT_CLASSES})
    shots = [s for s in shots if s < columns]
    source_depth = window.source_positions_m()[0, 0]
    receiver_depth = window.receiver_positions_m()[0, 0]
    num_samples = base.shape[1]
    blocks, count = [], 0
    for number, shot in enumerate(shots):
        shot_class = SHOT_CLASSES.index(shot % WINDOW_STEP_CELLS)
        receivers = np.arange(max(0, shot - SPREAD_CELLS), min(columns, shot + SPREAD_CELLS + 1))
        traces = base[shot_class][:, SPREAD_CELLS + SHOT_CLASSES[shot_class] + (receivers - shot)].T
        blocks.append((shot, number, receivers, traces))
        count += len(receivers)

    def generate():
        sequence = 1
        for shot, number, receivers, traces in blocks:
            n = len(receivers)
            yield (
                {
                    "TRACE_SEQUENCE_LINE": np.arange(sequence, sequence + n),
                    "FieldRecord": number + 1,
                    "TraceNumber": receivers + 1,
                    "SourceGroupScalar": -100,
                    "ElevationScalar": -100,
                    "SourceX": int(round(shot * spacing * 100)),
                    "GroupX": np.rint(receivers * spacing * 100).astype(np.int64),
                    "SourceDepth": int(round(source_depth * 100)),
                    "ReceiverGroupElevation": -int(round(receiver_depth * 100)),
                    "offset": np.rint((receivers - shot) * spacing).astype(np.int64),
                    "TRACE_SAMPLE_COUNT": num_samples,
                    "TRACE_SAMPLE_INTERVAL": int(round(window.sample_interval_s * 1e6)),
                },
                np.ascontiguousarray(traces, dtype=np.float32),
            )
            sequence += n

    write_segy_traces(
        path,
        None,
        generate(),
        num_samples=num_samples,
        sample_interval=int(round(window.sample_interval_s * 1e6)),
        num_traces=count,
    )
    return {
        "windows": num_windows,
        "columns": columns,
        "shots": len(shots),
        "traces": count,
        "segy_mb": path.stat().st_size / 2**20,
    }


def make_bundle(directory: Path, base: np.ndarray, window) -> Path:
    """The default dual U-Net (untrained) as a bundle, with statistics from the base gathers."""
    import models
    from data_prep.normalization import NormalizationConfig, StatisticsAccumulator
    from data_prep.schema import DatasetGeometry
    from pipeline.bundle import amplitude_statistics, save_bundle

    seismic = np.stack([base[[0, 1, 2, 1, 2]][:, :, k : k + window.grid_shape[1]] for k in (0, 30, 60)])
    accumulator = StatisticsAccumulator(NormalizationConfig())
    accumulator.update(seismic, np.full((1, *window.grid_shape), 3000.0, np.float32))
    try:
        from data_prep.forward import EngineConfig, engine_settings

        settings = engine_settings(window, EngineConfig())
    except ImportError:
        settings = {}
    return save_bundle(
        directory,
        models.build("unet"),
        stats=accumulator.result(),
        geometry=DatasetGeometry.from_acquisition(window),
        engine_settings=settings,
        amplitude_stats=amplitude_statistics(seismic),
        family="unet",
    )


RUNNER = """
import json, resource, sys, time
start = time.perf_counter()
from pipeline.infer import main
code = main(sys.argv[1:])
print(json.dumps({"rc": code, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "wall_s": time.perf_counter() - start}))
"""


def run_infer(model: str, survey: Path, out: Path, extra: list[str]) -> dict:
    command = [
        sys.executable,
        "-c",
        RUNNER,
        "--model",
        model,
        "--input",
        str(survey),
        "--out",
        str(out),
        "--quiet",
        "--set",
        "outputs.png=false",
        "--set",
        "mirror_average=false",  # the sections were recorded predicted once per window
        *extra,
    ]
    environment = dict(
        os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2", MLFLOW_DISABLE_TELEMETRY="true"
    )
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=REPO_ROOT)
    if completed.returncode != 0:
        raise RuntimeError(f"pipeline.infer failed:\n{completed.stderr[-3000:]}")
    measured = json.loads(completed.stdout.strip().splitlines()[-1])
    summary = json.loads((out / "summary.json").read_text())
    timings = summary["timings_s"]
    windows = summary["num_windows"]
    return {
        **measured,
        "windows": windows,
        "windows_per_s": windows / timings["windows_total"],
        "predict_windows_per_s": windows / timings["predict"],
        "qc_share": timings["qc"] / timings["windows_total"],
        "read_share": timings["read"] / timings["windows_total"],
        "timings": timings,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--windows", type=int, default=30, help="Windows of the shorter line (past the warm-up)."
    )
    parser.add_argument(
        "--factor", type=int, default=10, help="The longer line has this many times the windows."
    )
    parser.add_argument("--model", help="A bundle to use instead of the untrained default U-Net.")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--workdir", help="Folder for the survey files and outputs (default: a temporary one)."
    )
    parser.add_argument("--no-write", action="store_true", help="Print the table only.")
    parser.add_argument(
        "--foreign", metavar="BUNDLE", help="Run the lines-from-elsewhere benchmark with this trained bundle."
    )
    parser.add_argument("--lines", type=int, default=3, help="--foreign: number of lines.")
    parser.add_argument("--foreign-windows", type=int, default=3, help="--foreign: windows per line.")
    parser.add_argument("--model-description", help="--foreign: how the bundle was trained (for the page).")
    parser.add_argument(
        "--foreign-families",
        nargs="+",
        default=list(FOREIGN_FAMILIES),
        help="--foreign: the lines' families, in turn (families the bundle was not trained on).",
    )
    parser.add_argument(
        "--section",
        default="inference-foreign",
        help="--foreign: the docs/benchmarks.md section to write (another name keeps a second model's table).",
    )
    parser.add_argument(
        "--refine",
        type=int,
        default=0,
        metavar="N",
        help="--foreign: also run the input-corrected inference with --refine N and score the refined section.",
    )
    parser.add_argument(
        "--refine-line",
        action="store_true",
        help="--foreign with --refine: also refine each line as one model (refine.mode=line).",
    )
    parser.add_argument(
        "--refine-padding",
        type=int,
        default=0,
        metavar="CELLS",
        help="--foreign with --refine: also refine each window over CELLS more columns each side "
        "(refine.padding_cells: the longer offsets its shots recorded).",
    )
    parser.add_argument(
        "--refine-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="--foreign with --refine: also run the refinement with these refine settings (repeatable; "
        "together one more row per line).",
    )
    parser.add_argument(
        "--first-seed",
        type=int,
        default=100,
        help="--foreign: the first line's model seed (the benchmark's lines: 100; tune on others, e.g. 500).",
    )
    parser.add_argument(
        "--mirror-average",
        action="store_true",
        help="--foreign: run every input-corrected network run (refined or not) also with mirror_average=true, "
        "and compare.",
    )
    parser.add_argument(
        "--skip-references",
        action="store_true",
        help="--foreign: run only the input-corrected network and its refinements (no as-recorded or true-model "
        "rows): for tuning.",
    )
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.foreign:
        return foreign_main(args)

    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="infer-bench-", dir=args.workdir) as folder:
        folder = Path(folder)
        started = time.perf_counter()
        base, window = simulate_base_shots()
        print(f"simulated the base shots in {time.perf_counter() - started:.1f} s", flush=True)
        model = args.model or str(make_bundle(folder / "bundle", base, window))
        rows = []
        for num_windows in (args.windows, args.windows * args.factor):
            survey = folder / f"line_{num_windows}.sgy"
            line = write_line(survey, num_windows, base, window)
            result = run_infer(
                model, survey, folder / f"out_{num_windows}", ["--set", f"batch_size={args.batch_size}"]
            )
            rows.append((line, result))
            print(json.dumps({**line, **{k: v for k, v in result.items() if k != "timings"}}), flush=True)
            survey.unlink()

    header = [
        "windows",
        "columns",
        "shots",
        "traces",
        "SEG-Y MB",
        "windows/s (with QC)",
        "windows/s (predict only)",
        "QC share",
        "reading share",
        "peak memory MB",
        "process wall s",
    ]
    table = markdown_table(
        header,
        [
            (
                line["windows"],
                line["columns"],
                line["shots"],
                line["traces"],
                line["segy_mb"],
                r["windows_per_s"],
                r["predict_windows_per_s"],
                f"{100 * r['qc_share']:.0f} %",
                f"{100 * r['read_share']:.0f} %",
                r["maxrss_mb"],
                r["wall_s"],
            )
            for line, r in rows
        ],
    )
    growth = rows[1][1]["maxrss_mb"] / rows[0][1]["maxrss_mb"]
    load_end = os.getloadavg()[0]
    markdown = f"""## Inference (`benchmarks/inference.py`)

`python -m pipeline.infer` in a fresh process per line: OpenFWI's window (70 x 70 cells, 5 shots, 70 receivers,
1000 samples), {"the bundle " + args.model if args.model else "the default dual U-Net (untrained; speed does not depend on the weights)"},
batch size {args.batch_size}, physics QC on (5-shot re-simulation per window, engine defaults), SEG-Y section
written, PNGs off. Windows every 35 cells along a moving split spread; gathers are copies of three engine-simulated
shots (see the script). Windows/s = windows / the time of the window loop (reading, calibration, prediction, QC,
saving), which includes the one-off XLA compilation of the QC's engine and of the model (tens of seconds
on this machine; the longer line amortises it); the process wall time adds start-up (imports, model
loading) and the merge.

{table}

Peak resident memory of the {args.factor}x longer line: {growth:.2f}x the shorter line's (target: flat). The
first few batches warm up TensorFlow, XLA and the allocators (in an in-process probe of a 100-window line the
resident memory rose over the first 24 windows, then stayed within 2 % to the end), so the shorter line is
long enough to pass that warm-up.
Machine: {machine_description()}; 1-minute load average {load_start:.1f} at the start and {load_end:.1f} at the
end of the run (a load above the 2 cores means other jobs shared them: the speeds are then lower bounds).
"""
    print(markdown)
    if not args.no_write:
        path = update_section("inference", markdown)
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
