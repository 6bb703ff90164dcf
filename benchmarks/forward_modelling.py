"""Benchmark: our forward-modelling engine against Deepwave on OpenFWI's geometry.

Measures, on the same machine in the same run:

* each engine's boundary reflection at several absorbing widths; the timings then run ours at its default
  width and Deepwave at the thinnest PML that reflects no more (equal measured reflection, never a thin
  layer against a thick one);
* median seconds per sample (one velocity model = 5 shots x 1000 steps on a 70 x 70 grid plus the
  absorbing layer on every side), and cell-updates per second, for our engine and for Deepwave;
* our batched throughput (8, 16, 32 models per call) and Deepwave's with the same models batched;
* the agreement of our traces with Deepwave's on a layered model (correlation per trace);
* with ``KERAS_BACKEND=jax`` and a GPU: samples per second and the projected time for 30 000 samples.

Fairness: both engines get the same reflection quality, the same time step (1 ms;
Deepwave's internal sub-stepping is disabled with ``courant_number`` and checked through
``out.info.step_ratio``), the same number of steps, 4th-order stencils, and the same number of CPU
threads (``torch.set_num_threads(N)`` for Deepwave; for us N concurrent calls with one intra-op thread
each). Each engine runs in its own subprocess, so the two runtimes' thread pools never compete. The
machine is shared, so the engines are measured back to back, interleaved over several rounds (the order
alternating), every figure is the median over all rounds' repeats, and the 1-minute load average is
recorded before and after each phase. Per-core speed (1 thread each) is measured first, for TensorFlow
(the default backend) and JAX (what a user gets with ``KERAS_BACKEND=jax``).

Usage::

    python -m benchmarks.forward_modelling            # full run, writes docs/benchmarks.md
    python -m benchmarks.forward_modelling --quick    # fewer repeats
    KERAS_BACKEND=jax python -m benchmarks.forward_modelling

Deepwave is a benchmark-only dependency (``pip install torch==2.13.0`` first for the CPU build, then
``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.references import problems_of, scaling_problem, spread_problem

REPO_ROOT = Path(__file__).resolve().parent.parent
SECTION = "forward_modelling"
#: Our engine runs at its default CPML width (``EngineConfig().absorbing_width_cells``); Deepwave's PML width
#: is chosen from these by measured reflection (the thinnest that reflects no more than ours).
DEEPWAVE_WIDTH_CANDIDATES = (10, 12, 14, 16, 20, 24, 30)
#: Cells added on every side for the reflection-free reference (edge velocities continued): the 1 s window
#: cannot see the reference's own boundary (round trip at 4500 m/s is 4.5 km = 450 cells, 2 x 250 > 450).
REFLECTION_EXTENSION_CELLS = 250
BATCH_SIZES = (8, 16, 32)
OPENFWI_SET_SIZE = 30_000


def layered_model() -> np.ndarray:
    """A 70 x 70 OpenFWI-like model: four layers 1500-4500 m/s with one dipping interface."""
    model = np.full((70, 70), 1500.0, np.float32)
    rows, columns = np.mgrid[:70, :70]
    model[rows >= 12] = 2500.0
    model[rows >= 30 + columns // 5] = 3500.0
    model[rows >= 55] = 4500.0
    return model


def available_cpu_count() -> int:
    """Cores this process may use (its affinity mask), as ``data_prep.forward.available_cpu_count`` (kept
    here so the orchestrating process does not import a deep-learning runtime)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def padded_cells(width: int) -> int:
    return (70 + 2 * width) ** 2


def boundary_reflection(simulate_traces, widths) -> dict[str, float]:
    """Measured boundary reflection at each absorbing width: ``simulate_traces(model, width, extension)``
    returns ``(shots, time, receivers)`` for the layered model padded by ``extension`` cells per side (edge
    velocities continued; sources and receivers shifted with it). The reference is the run padded by
    ``REFLECTION_EXTENSION_CELLS`` (reflection-free within the window); the reflection is the largest
    difference from it, as a fraction of the reference's peak."""
    model = layered_model()
    reference = simulate_traces(model, 20, REFLECTION_EXTENSION_CELLS)
    peak = float(np.abs(reference).max())
    return {
        str(width): float(np.abs(simulate_traces(model, width, 0) - reference).max() / peak)
        for width in widths
    }


# --- Workers (each runs in its own process) ----------------------------------------------------------------


def run_ours(threads: int, repeats: int, batch_sizes: tuple[int, ...], output: Path, width: int) -> dict:
    """Times our engine at CPML width ``width``; saves the layered model's traces as (shots, time,
    receivers)."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "tensorflow":
        import tensorflow as tf

        # One intra-op thread per call; parallelism comes from `threads` concurrent calls.
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    from benchmarks.report import time_repeats
    from data_prep.forward import EngineConfig, simulate
    from data_prep.geometry import AcquisitionGeometry

    geometry = AcquisitionGeometry()
    config = EngineConfig(absorbing_width_cells=width, max_concurrent_calls=threads)
    model = layered_model()
    traces = np.asarray(simulate(model, geometry, config))[0]
    np.save(output, traces)

    result: dict = {
        "backend": backend,
        "unbatched_s": time_repeats(lambda: np.asarray(simulate(model, geometry, config)), repeats),
    }
    result["batched_s_per_sample"] = {}
    for batch in batch_sizes:
        models = np.repeat(model[None], batch, axis=0)
        seconds = time_repeats(
            lambda models=models: np.asarray(simulate(models, geometry, config)), max(1, repeats // 2)
        )
        result["batched_s_per_sample"][str(batch)] = [value / batch for value in seconds]
    result["gpu"] = _gpu_throughput(geometry, model, repeats) if backend == "jax" and batch_sizes else None
    return result


def _gpu_throughput(geometry, model: np.ndarray, repeats: int) -> dict | None:
    """Samples per second on a JAX GPU with 32 models per call; ``None`` when JAX sees no GPU."""
    import jax

    from benchmarks.report import median, time_repeats
    from data_prep.forward import EngineConfig, simulate

    if not any(device.platform == "gpu" for device in jax.devices()):
        return None
    config = EngineConfig(max_concurrent_calls=1)
    batch = 32
    models = jax.device_put(np.repeat(model[None], batch, axis=0))

    def call():
        simulate(models, geometry, config, velocity_bounds_mps=(1500.0, 4500.0)).block_until_ready()

    seconds = median(time_repeats(call, repeats))
    return {"device": str(jax.devices()[0].device_kind), "samples_per_s": batch / seconds}


def reflection_ours(widths: tuple[int, ...]) -> dict:
    """Our CPML's measured reflection at each width (``boundary_reflection``)."""
    from data_prep.forward import EngineConfig, simulate
    from data_prep.geometry import AcquisitionGeometry

    geometry = AcquisitionGeometry()

    def traces(model, width, extension):
        shifted = geometry.replace(
            grid_shape=(70 + 2 * extension, 70 + 2 * extension),
            source_cells=tuple((d + extension, x + extension) for d, x in geometry.source_cells),
            receiver_cells=tuple((d + extension, x + extension) for d, x in geometry.receiver_cells),
        )
        padded = np.pad(model, extension, mode="edge")
        return np.asarray(simulate(padded, shifted, EngineConfig(absorbing_width_cells=width)))[0]

    return {
        "default_width": EngineConfig().absorbing_width_cells,
        "reflection": boundary_reflection(traces, widths),
    }


def run_deepwave(threads: int, repeats: int, batch_sizes: tuple[int, ...], output: Path, width: int) -> dict:
    """Times Deepwave's scalar propagator on the same work with a ``width``-cell PML; saves traces as
    (shots, time, receivers). ``repeats == 0`` with ``output`` named ``reflection*``: measures the PML's
    reflection at ``DEEPWAVE_WIDTH_CANDIDATES`` instead."""
    import deepwave
    import torch

    from benchmarks.report import time_repeats
    from data_prep.forward import EngineConfig
    from data_prep.geometry import AcquisitionGeometry
    from data_prep.wavelets import ricker

    torch.set_num_threads(threads)
    geometry = AcquisitionGeometry()
    dx = geometry.grid_spacing_m
    # The same unit Ricker (same delay) as our engine's default, unscaled: our "openfwi" amplitude
    # convention injects (v dt)^2 w, Deepwave -(v dt)^2 f, so our traces must be -1 x Deepwave's.
    delay_s = EngineConfig().resolved_ricker_delay_s(geometry)
    wavelet = ricker(geometry.peak_frequency_hz, geometry.num_samples, geometry.sample_interval_s, delay_s)
    num_shots = geometry.num_sources

    def survey(num_models: int):
        shots = num_models * num_shots
        amplitudes = torch.from_numpy(np.ascontiguousarray(wavelet)).reshape(1, 1, -1).repeat(shots, 1, 1)
        sources = torch.tensor([cell for cell in geometry.source_cells] * num_models).reshape(shots, 1, 2)
        receivers = torch.tensor(geometry.receiver_cells).reshape(1, -1, 2).repeat(shots, 1, 1)
        return amplitudes, sources, receivers

    def call(velocity: torch.Tensor, num_models: int, pml_width: int = width, shift: int = 0):
        amplitudes, sources, receivers = survey(num_models)
        return deepwave.scalar(
            velocity,
            dx,
            geometry.sample_interval_s,
            source_amplitudes=amplitudes,
            source_locations=sources + shift,
            receiver_locations=receivers + shift,
            accuracy=4,
            pml_width=pml_width,
            pml_freq=geometry.peak_frequency_hz,
            max_vel=4500.0,
            # Deepwave's default Courant number (0.6 with its sqrt(2) 2D norm) would sub-step 2x at
            # 4500 m/s; 0.7 keeps one internal step per sample, like ours (stable limit 0.87).
            courant_number=0.7,
        )

    if output.name.startswith("reflection"):

        def traces(model, pml_width, extension):
            padded = torch.from_numpy(np.pad(model, extension, mode="edge"))
            return call(padded, 1, pml_width, extension).receiver_amplitudes.numpy().transpose(0, 2, 1)

        return {"reflection": boundary_reflection(traces, DEEPWAVE_WIDTH_CANDIDATES)}

    model = torch.from_numpy(layered_model())
    output_traces = call(model, 1)
    step_ratio = int(getattr(getattr(output_traces, "info", None), "step_ratio", 1))
    if step_ratio != 1:
        raise RuntimeError(f"Deepwave sub-stepped {step_ratio}x: the comparison would not be like for like")
    np.save(output, output_traces.receiver_amplitudes.numpy().transpose(0, 2, 1))
    result: dict = {
        "version": deepwave.__version__ if hasattr(deepwave, "__version__") else "unknown",
        "unbatched_s": time_repeats(lambda: call(model, 1), repeats),
        "batched_s_per_sample": {},
    }
    for batch in batch_sizes:
        # Deepwave batches models as one velocity per shot: [shots, depth, x].
        models = model[None].repeat(batch * num_shots, 1, 1)
        seconds = time_repeats(lambda models=models, batch=batch: call(models, batch), max(1, repeats // 2))
        result["batched_s_per_sample"][str(batch)] = [value / batch for value in seconds]
    return result


# --- Orchestration ------------------------------------------------------------------------------------------


def _worker(
    engine: str,
    threads: int,
    repeats: int,
    batch_sizes: tuple[int, ...],
    folder: Path,
    backend: str | None = None,
    width: int | None = None,
    reflection: bool = False,
) -> dict:
    """Runs one engine's worker in a fresh interpreter and returns its JSON result.

    ``backend`` overrides ``KERAS_BACKEND`` for our engine (``None``: inherit it); ``width`` is the
    absorbing width (``None``: the engine's default); ``reflection`` measures the boundary reflection
    instead of timing."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.forward_modelling",
        "--worker",
        engine,
        "--threads",
        str(threads),
        "--repeats",
        str(repeats),
        "--batch-sizes",
        *map(str, batch_sizes),
        "--folder",
        str(folder),
        *(["--width", str(width)] if width is not None else []),
        *(["--reflection"] if reflection else []),
    ]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS=str(threads))
    if backend is not None:
        environment["KERAS_BACKEND"] = backend
    if environment.get("KERAS_BACKEND") == "jax":
        # One intra-op thread per XLA call, as for TensorFlow; `threads` concurrent calls do the rest.
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        environment["XLA_FLAGS"] = f"{environment.get('XLA_FLAGS', '')} {flags}".strip()
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=environment)
    if completed.returncode != 0:
        raise RuntimeError(f"{engine} worker failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


#: Documented sign between the engines (docs/forward_modelling.md): ours = -1 x Deepwave's scalar
#: propagator for the same source amplitudes (OpenFWI's polarity vs Deepwave's).
DEEPWAVE_SIGN = -1.0


def timing_problems(
    single: dict[str, list[dict]],
    multi: dict[str, list[dict]],
    threads: int,
    batch_sizes: tuple[int, ...],
    default_backend: str = "tensorflow",
) -> list[str]:
    """Where the timings contradict themselves (``benchmarks.references``): repeats of one measurement that
    spread too far, ``threads`` threads much slower than 1, a batch much slower per sample than 1 model a call.

    Args:
        single: 1-thread results by engine (``deepwave``, ``tensorflow``, ``jax``), one dict per round.
        multi: ``threads``-thread results (``deepwave``, ``ours`` on ``default_backend``), one dict per round.
    """
    from benchmarks.report import median

    def repeats(results: list[dict], key: str, batch: int | None = None) -> list[float]:
        if batch is None:
            return [value for result in results for value in result[key]]
        return [value for result in results for value in result[key].get(str(batch), [])]

    checks = []
    for name, results in single.items():
        if results:
            checks.append(spread_problem(f"{name}, 1 thread", repeats(results, "unbatched_s")))
    labels = {"deepwave": "Deepwave", "ours": f"ours ({default_backend})"}
    one_thread = {"deepwave": single.get("deepwave"), "ours": single.get(default_backend)}
    for engine, results in multi.items():
        if not results:
            continue
        label = labels.get(engine, engine)
        unbatched = repeats(results, "unbatched_s")
        checks.append(spread_problem(f"{label}, {threads} threads", unbatched))
        if one_thread.get(engine) and threads > 1:
            checks.append(
                scaling_problem(
                    "1 thread",
                    median(repeats(one_thread[engine], "unbatched_s")),
                    f"{label}, {threads} threads",
                    median(unbatched),
                )
            )
        for batch in batch_sizes:
            batched = repeats(results, "batched_s_per_sample", batch)
            if not batched:
                continue
            checks.append(spread_problem(f"{label}, {batch} models / call", batched))
            checks.append(
                scaling_problem(
                    "1 model / call", median(unbatched), f"{label}, {batch} models / call", median(batched)
                )
            )
    return problems_of(checks)


def trace_agreement(ours: np.ndarray, deepwave_traces: np.ndarray) -> dict:
    """Agreement of our traces with Deepwave's times ``DEEPWAVE_SIGN``, both (shots, time, receivers).

    Per trace: Pearson correlation and amplitude ratio (least-squares gain ``<ours, ref> / <ref, ref>``, 1
    when the amplitudes agree); no rescaling other than the documented sign.
    """
    reference = DEEPWAVE_SIGN * deepwave_traces
    correlations, ratios = [], []
    for shot in range(ours.shape[0]):
        for receiver in range(ours.shape[2]):
            mine, theirs = ours[shot, :, receiver].astype(np.float64), reference[shot, :, receiver]
            correlations.append(float(np.corrcoef(mine, theirs)[0, 1]))
            ratios.append(float(np.dot(mine, theirs) / np.dot(theirs, theirs)))
    return {
        "median": float(np.median(correlations)),
        "min": float(np.min(correlations)),
        "ratio_median": float(np.median(ratios)),
        "ratio_min": float(np.min(ratios)),
        "ratio_max": float(np.max(ratios)),
        "peak_ours": float(np.abs(ours).max()),
        "peak_deepwave": float(np.abs(reference).max()),
        "max_difference": float(np.abs(ours - reference).max() / np.abs(reference).max()),
    }


def build_parser() -> argparse.ArgumentParser:
    """The command line: the orchestrator's options, and the hidden ones of a worker process."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (indicative numbers)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per engine")
    parser.add_argument(
        "--threads",
        type=int,
        default=available_cpu_count(),
        help="CPU threads per engine (default: affinity)",
    )
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=list(BATCH_SIZES))
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--worker", choices=("ours", "deepwave"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--reflection", action="store_true", help=argparse.SUPPRESS)
    return parser


def run_worker(args: argparse.Namespace, repeats: int, batch_sizes: tuple[int, ...]) -> dict:
    """What a worker process (``--worker``) measures: one engine's reflection, or its timings and traces."""
    if args.worker == "ours" and args.reflection:
        return reflection_ours(DEEPWAVE_WIDTH_CANDIDATES)
    if args.worker == "ours":
        return run_ours(args.threads, repeats, batch_sizes, args.folder / "ours.npy", args.width)
    name = "reflection.npy" if args.reflection else "deepwave.npy"
    return run_deepwave(args.threads, repeats, batch_sizes, args.folder / name, args.width or 20)


@dataclass
class Reflection:
    """Phase 0: each engine's measured boundary reflection, and the widths the timings then use.

    Attributes:
        ours: our worker's result (``default_width``, ``reflection`` by width).
        deepwave: Deepwave's reflection by width (``DEEPWAVE_WIDTH_CANDIDATES``).
        width: our default CPML width; ``target``: our reflection there.
        good_enough: Deepwave's widths that reflect no more than ``target``.
        deepwave_width: the thinnest of them (the widest candidate when none is).
    """

    ours: dict
    deepwave: dict
    width: int
    target: float
    good_enough: list[int]
    deepwave_width: int


def measure_reflection(threads: int, folder: Path) -> Reflection:
    """Phase 0: each engine's measured boundary reflection at every candidate width. Ours runs at its default
    width; Deepwave at the thinnest PML that reflects no more than ours there, so Deepwave never gets a
    thinner (cheaper) layer than the quality we claim."""
    ours_reflection = _worker("ours", threads, 0, (), folder, reflection=True)
    deepwave_reflection = _worker("deepwave", threads, 0, (), folder, reflection=True)["reflection"]
    width = int(ours_reflection["default_width"])
    target = ours_reflection["reflection"][str(width)]
    good_enough = [int(w) for w, value in deepwave_reflection.items() if value <= target]
    deepwave_width = min(good_enough) if good_enough else max(DEEPWAVE_WIDTH_CANDIDATES)
    return Reflection(ours_reflection, deepwave_reflection, width, target, good_enough, deepwave_width)


def measure_timings(
    rounds: int,
    threads: int,
    repeats: int,
    batch_sizes: tuple[int, ...],
    folder: Path,
    reflection: Reflection,
    load: dict[str, tuple[float, float]],
) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """Phases 1 and 2: ``(single, multi)``, each engine's worker results by round; ``load`` gets each phase's
    1-minute load average before and after."""
    width, deepwave_width = reflection.width, reflection.deepwave_width
    # Phase 1, one thread each: per-core efficiency, insensitive to how each runtime's threads cope
    # with other load on the machine (OpenMP barriers degrade badly on a busy machine). Interleaved
    # rounds, the order alternating, so both engines see the same load.
    before = os.getloadavg()[0]
    single: dict[str, list[dict]] = {"deepwave": [], "tensorflow": [], "jax": []}
    for round_index in range(rounds):
        order = ["deepwave", "tensorflow", "jax"]
        for name in order if round_index % 2 == 0 else order[::-1]:
            engine, backend = ("deepwave", None) if name == "deepwave" else ("ours", name)
            engine_width = deepwave_width if engine == "deepwave" else width
            single[name].append(_worker(engine, 1, repeats, (), folder, backend, engine_width))
    load["1 thread"] = (before, os.getloadavg()[0])
    # Phase 2, `threads` threads each, 1 model per call and batched; interleaved the same way.
    before = os.getloadavg()[0]
    multi: dict[str, list[dict]] = {"deepwave": [], "ours": []}
    for round_index in range(rounds):
        order = ["deepwave", "ours"]
        for engine in order if round_index % 2 == 0 else order[::-1]:
            engine_width = deepwave_width if engine == "deepwave" else width
            multi[engine].append(_worker(engine, threads, repeats, batch_sizes, folder, None, engine_width))
    load[f"{threads} threads"] = (before, os.getloadavg()[0])
    return single, multi


@dataclass
class Timings:
    """Phases 1 and 2, checked against themselves (``benchmarks/references.py``).

    Attributes:
        single, multi: as ``measure_timings`` returns them (the re-measurement's when there was one).
        problems: where they still contradict themselves (empty: they do not).
        remeasured: whether the first measurement contradicted itself and was measured again.
        load: per phase the 1-minute load average before and after.
    """

    single: dict[str, list[dict]]
    multi: dict[str, list[dict]]
    problems: list[str]
    remeasured: bool
    load: dict[str, tuple[float, float]]


def measure_checked(
    args: argparse.Namespace,
    repeats: int,
    batch_sizes: tuple[int, ...],
    folder: Path,
    reflection: Reflection,
    default_backend: str,
) -> Timings:
    """The timings, checked against themselves before any verdict (benchmarks/references.py): re-measured
    once when they contradict themselves, reported as invalid when they still do."""
    load: dict[str, tuple[float, float]] = {}

    def measure() -> tuple[dict, dict]:
        return measure_timings(args.rounds, args.threads, repeats, batch_sizes, folder, reflection, load)

    single, multi = measure()
    problems = timing_problems(single, multi, args.threads, batch_sizes, default_backend)
    remeasured = False
    if problems:
        print(f"the measurements contradict themselves ({'; '.join(problems)}): measuring again", flush=True)
        single, multi = measure()
        problems = timing_problems(single, multi, args.threads, batch_sizes, default_backend)
        remeasured = True
    return Timings(single, multi, problems, remeasured, load)


# --- Report -------------------------------------------------------------------------------------------------


def _pooled(results: list[dict], key: str, batch: int | None = None) -> float:
    """Median over every repeat of every round."""
    from benchmarks.report import median

    if batch is None:
        return median([value for result in results for value in result[key]])
    return median([value for result in results for value in result[key][str(batch)]])


@dataclass
class Speeds:
    """The timings' medians (s / sample), the cell-updates per sample, and the speed tables.

    ``work``, ``dw_work``: cell-updates per sample on each engine's own padded grid; ``single_*``: 1 thread
    (Deepwave, ours on TensorFlow and JAX); ``deepwave_s``, ``ours_s``: ``threads`` threads, 1 model per
    call; ``best_batched``, ``best_deepwave_batched``: the best per-sample time of a batch (NaN: none).
    """

    work: int
    dw_work: int
    single_dw: float
    single_tf: float
    single_jax: float
    deepwave_s: float
    ours_s: float
    best_batched: float
    best_deepwave_batched: float
    table_single: str
    table: str


def speeds(
    timings: Timings, reflection: Reflection, threads: int, batch_sizes: tuple[int, ...], default_backend: str
) -> Speeds:
    """The medians of the timings and the two speed tables (1 thread; ``threads`` threads and batched)."""
    from benchmarks.report import markdown_table

    single, multi = timings.single, timings.multi
    # Cell-updates per sample (padded grid x shots x steps): each engine's own padded grid.
    work = padded_cells(reflection.width) * 5 * 1000
    dw_work = padded_cells(reflection.deepwave_width) * 5 * 1000
    single_dw = _pooled(single["deepwave"], "unbatched_s")
    single_tf, single_jax = (
        _pooled(single["tensorflow"], "unbatched_s"),
        _pooled(single["jax"], "unbatched_s"),
    )
    deepwave_s, ours_s = _pooled(multi["deepwave"], "unbatched_s"), _pooled(multi["ours"], "unbatched_s")
    rows = [
        ["Deepwave, 1 thread (1 model / call)", single_dw, dw_work / single_dw / 1e6, single_dw / single_dw],
        [
            "ours, TensorFlow, 1 thread (1 model / call)",
            single_tf,
            work / single_tf / 1e6,
            single_dw / single_tf,
        ],
        ["ours, JAX, 1 thread (1 model / call)", single_jax, work / single_jax / 1e6, single_dw / single_jax],
    ]
    rows_multi = [
        [f"Deepwave, {threads} threads (1 model / call)", deepwave_s, dw_work / deepwave_s / 1e6, 1.0],
        [
            f"ours, {default_backend}, {threads} threads (1 model / call)",
            ours_s,
            work / ours_s / 1e6,
            deepwave_s / ours_s,
        ],
    ]
    batched_ours, batched_deepwave = {}, {}
    for batch in batch_sizes:
        dw = batched_deepwave[batch] = _pooled(multi["deepwave"], "batched_s_per_sample", batch)
        mine = batched_ours[batch] = _pooled(multi["ours"], "batched_s_per_sample", batch)
        rows_multi.append([f"Deepwave ({batch} models / call)", dw, dw_work / dw / 1e6, deepwave_s / dw])
        rows_multi.append([f"ours ({batch} models / call)", mine, work / mine / 1e6, deepwave_s / mine])
    header = ["engine", "s / sample (median)", "M cell-updates / s"]
    table_single = markdown_table([*header, "speed vs Deepwave 1 thread"], rows)
    table = markdown_table([*header, f"speed vs Deepwave {threads} threads, 1 model"], rows_multi)
    best_batched = min(batched_ours.values()) if batched_ours else float("nan")
    best_deepwave_batched = min(batched_deepwave.values()) if batched_deepwave else float("nan")
    return Speeds(
        work,
        dw_work,
        single_dw,
        single_tf,
        single_jax,
        deepwave_s,
        ours_s,
        best_batched,
        best_deepwave_batched,
        table_single,
        table,
    )


def gpu_text(gpu: dict | None) -> str:
    """The report's GPU line: the measured rate and the projected time for an OpenFWI-size set, or why not."""
    if gpu:
        return (
            f"GPU ({gpu['device']}, JAX, 32 models / call): {gpu['samples_per_s']:.1f} samples/s; "
            f"{OPENFWI_SET_SIZE:,} OpenFWI-size samples in {OPENFWI_SET_SIZE / gpu['samples_per_s'] / 60:.1f} min."
        )
    return (
        f"GPU: not measured (no GPU visible to JAX in this run; run with KERAS_BACKEND=jax on a GPU machine "
        f"for samples/s and the projected time for {OPENFWI_SET_SIZE:,} samples)."
    )


def validity_text(timings: Timings) -> str:
    """The report's line on the timings' self-checks: passed, or which contradiction makes the verdicts invalid."""
    from benchmarks.references import MAX_REPEAT_SPREAD, MAX_SCALING_SLOWDOWN

    problems, remeasured = timings.problems, timings.remeasured
    return (
        f"- **The timings contradict themselves{' after a re-measurement' if remeasured else ''}**: "
        f"{'; '.join(problems)}. The speed verdicts below are invalid; run again on a quieter machine."
        if problems
        else "- The timings passed the self-checks of `benchmarks/references.py` (repeats within "
        f"{MAX_REPEAT_SPREAD:g}x, more threads or models per call no more than {MAX_SCALING_SLOWDOWN:g}x slower)"
        + (" after one re-measurement." if remeasured else ".")
    )


def reflection_summary(reflection: Reflection) -> tuple[str, str]:
    """``(the table of both engines' reflection by width, a note when no Deepwave width reached ours)``."""
    from benchmarks.report import markdown_table

    widths = sorted(int(w) for w in reflection.deepwave)
    table = markdown_table(
        ["absorbing width (cells)", *map(str, widths)],
        [
            ["ours (CPML, cubic profile)", *(f"{reflection.ours['reflection'][str(w)]:.2e}" for w in widths)],
            ["Deepwave (PML)", *(f"{reflection.deepwave[str(w)]:.2e}" for w in widths)],
        ],
    )
    note = (
        ""
        if reflection.good_enough
        else f"; no candidate width reached our reflection, so Deepwave runs at its widest, "
        f"{reflection.deepwave_width} cells"
    )
    return table, note


def report(
    args: argparse.Namespace,
    repeats: int,
    batch_sizes: tuple[int, ...],
    default_backend: str,
    reflection: Reflection,
    timings: Timings,
    agreement: dict,
) -> str:
    """The section of docs/benchmarks.md: reflection, speed tables, the verdicts and the trace agreement."""
    from benchmarks.references import current_load
    from benchmarks.references import verdict as reference_verdict
    from benchmarks.report import machine_description

    speed = speeds(timings, reflection, args.threads, batch_sizes, default_backend)
    # The section's text names the numbers as they were measured and computed.
    work, dw_work, single_dw = speed.work, speed.dw_work, speed.single_dw
    single_tf, single_jax = speed.single_tf, speed.single_jax
    deepwave_s, ours_s = speed.deepwave_s, speed.ours_s
    best_batched, best_deepwave_batched = speed.best_batched, speed.best_deepwave_batched
    table_single, table = speed.table_single, speed.table
    width, deepwave_width, target = reflection.width, reflection.deepwave_width, reflection.target
    deepwave_reflection = reflection.deepwave
    load_line = "; ".join(
        f"{phase}: {start:.1f} before, {end:.1f} after" for phase, (start, end) in timings.load.items()
    )
    gpu_line = gpu_text(timings.multi["ours"][-1].get("gpu"))
    verdict_load = current_load()

    def verdict(ratio: float, target: float, timing: bool = True) -> str:
        """A speed verdict is invalid when the timings contradict themselves; the trace agreement's is not timed."""
        return reference_verdict(ratio >= target, timings.problems if timing else (), verdict_load)

    validity_line = validity_text(timings)
    unbatched_ratio, batched_ratio = deepwave_s / ours_s, deepwave_s / best_batched
    reflection_table, reflection_note = reflection_summary(reflection)
    version = timings.multi["deepwave"][0]["version"]

    markdown = f"""## Forward modelling: ours vs Deepwave

`python -m benchmarks.forward_modelling`. OpenFWI geometry: 70 x 70 cells of 10 m, 5 shots, 70 receivers,
1000 steps of 1 ms, 15 Hz Ricker, 4th-order stencils, the layered model below, **at equal measured boundary
reflection**: each engine's reflection is measured first (largest trace difference from the same survey on a
grid extended by {REFLECTION_EXTENSION_CELLS} cells per side, edge velocities continued, as a fraction of its peak):

{reflection_table}

Ours runs at its default CPML width ({width} cells: {70 + 2 * width} x {70 + 2 * width} cells); Deepwave at the
thinnest PML that reflects no more than that ({deepwave_width} cells: {70 + 2 * deepwave_width} x
{70 + 2 * deepwave_width} cells){reflection_note}. Each engine runs in its own process; the engines are interleaved over
{args.rounds} rounds (order alternating) of {repeats} repeats each (batched: {max(1, repeats // 2)}), and every figure is the
median over all rounds. Deepwave {version}; machine: {machine_description()}. 1-minute load average
(the machine is shared): {load_line}.

Per core (1 thread each; our default backend is TensorFlow, JAX is what `KERAS_BACKEND=jax` gives):

{table_single}

{args.threads} threads each (Deepwave: `torch.set_num_threads({args.threads})`; ours: {args.threads} concurrent XLA calls of
one thread each, the `simulate` default), {default_backend} backend:

{table}

{validity_line}
- Per core: ours is **{single_dw / single_tf:.2f}x** Deepwave (TensorFlow) and **{single_dw / single_jax:.2f}x** (JAX).
- Per cell-update (what equal widths would give; both engines' rates above): ours runs
  **{(work / single_tf) / (dw_work / single_dw):.2f}x** Deepwave's rate per core (TensorFlow),
  **{(work / ours_s) / (dw_work / deepwave_s):.2f}x** with {args.threads} threads and **{(work / best_batched) / (dw_work / best_deepwave_batched):.2f}x** batched. The rest of the speed-up at
  equal reflection comes from the absorbing layer: our CPML reflects
  {deepwave_reflection[str(width)] / target:.0f}x less than Deepwave's PML at the same {width} cells, so Deepwave needs
  {deepwave_width} cells for the same reflection ({(70 + 2 * deepwave_width) ** 2 / (70 + 2 * width) ** 2:.2f}x the cells).
- Unbatched, {args.threads} threads: ours is **{unbatched_ratio:.2f}x** Deepwave (target >= 1.0x: **{verdict(unbatched_ratio, 1.0)}**).
- Batched: our best {work / best_batched / 1e6:.0f} M cell-updates/s is **{batched_ratio:.2f}x** Deepwave's 1-model rate
  (target >= 1.5x: **{verdict(batched_ratio, 1.5)}**) and **{best_deepwave_batched / best_batched:.2f}x** Deepwave's own best
  batched rate.
- Trace agreement on a layered model (350 traces), the same unit Ricker in both engines, ours compared with
  -1 x Deepwave's (the documented sign: OpenFWI's polarity) and nothing else rescaled: correlation median
  {agreement["median"]:.9f}, min {agreement["min"]:.9f} (target >= 0.999: **{verdict(agreement["min"], 0.999, timing=False)}**);
  amplitude ratio median {agreement["ratio_median"]:.6f}, range {agreement["ratio_min"]:.6f}-{agreement["ratio_max"]:.6f}
  (target within 1 %: **{verdict(1.0 - abs(max(agreement["ratio_max"] - 1, 1 - agreement["ratio_min"])), 0.99, timing=False)}**);
  peak |amplitude| {agreement["peak_ours"]:.3f} (ours) vs {agreement["peak_deepwave"]:.3f} (Deepwave); max difference
  {agreement["max_difference"]:.2e} of the peak.
- {gpu_line}
"""
    return markdown


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    args.rounds = args.rounds or (1 if args.quick else 3)
    batch_sizes = tuple(args.batch_sizes)

    if args.worker:
        print(json.dumps(run_worker(args, repeats, batch_sizes)))
        return 0

    default_backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        reflection = measure_reflection(args.threads, folder)
        timings = measure_checked(args, repeats, batch_sizes, folder, reflection, default_backend)
        agreement = trace_agreement(np.load(folder / "ours.npy"), np.load(folder / "deepwave.npy"))
    markdown = report(args, repeats, batch_sizes, default_backend, reflection, timings, agreement)
    print(markdown)
    if not args.no_write:
        from benchmarks.report import update_section

        path = update_section(SECTION, markdown)
        print(f"wrote section '{SECTION}' of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
