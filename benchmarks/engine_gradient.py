"""Benchmark: memory and time of the engine's gradient with respect to velocity, checkpointed vs stored.

One OpenFWI model (70 x 70 cells of 10 m, 5 shots, 70 receivers, 1000 steps of 1 ms) and the loss
``sum(traces * weights)`` (fixed random weights), differentiated by the user's own tool: ``tf.GradientTape``
(TensorFlow, the default backend) or ``jax.grad`` (JAX). Three engines, each in its own fresh process:

* **before**: the engine as it was when the gradient had no checkpointing (commit ``BEFORE_COMMIT``, read
  from git: one fused kernel per step, reverse mode through every stored step);
* **stored**: today's engine with ``checkpoint_segments=1`` (hand-written adjoint step, every step stored);
* **checkpointed**: today's engine with its default ``checkpoint_segments`` (the wavefields at segment starts
  only, each segment recomputed while it is differentiated).

All three run at the same absorbing width (today's default), so the grids are identical. For each: the
forward call and the forward+backward call, median wall time over repeats after a compiling warm-up, and
the memory the call needs: the process's peak resident memory during one steady-state call minus its
resident memory just before it (``/proc/self/clear_refs`` resets the peak; Linux only). Under JAX, XLA's
own accounting of the compiled gradient's temporary buffers is reported as well. The 1-minute load
average is recorded (the machine is shared).

A second mode, ``--methods``, compares the two ways today's engine computes the gradient **in one process,
interleaved** (so both see the same machine load): ``gradient="autodiff"`` (the backend's reverse mode
through the checkpointed time loop, each step's hand-written adjoint inside it) and ``gradient="adjoint"``
(the adjoint-state method: forward storing checkpoints, each segment recomputed, the adjoint wavefield
propagated backwards by the transposed steps). It uses the call a refinement makes: one OpenFWI model, 3 of
its 5 shots (a refinement splits the shots over 2 cores), one thread, 22 checkpoint segments
(``pipeline.refine.refinement_engine``); the forward is timed beside them. Medians of ``--repeats`` rounds
(default 5), the 1-minute load average before and after each round, and the gradients' agreement.

Usage::

    python -m benchmarks.engine_gradient            # writes the section of docs/benchmarks.md
    python -m benchmarks.engine_gradient --no-write --repeats 1
    python -m benchmarks.engine_gradient --methods  # writes the section 'engine_gradient_methods'
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
SECTION = "engine_gradient"
#: The last engine whose gradient was reverse mode through every stored step (before the row-band kernel,
#: the hand-written adjoint and checkpointing).
BEFORE_COMMIT = "484ee548af92477b621c3c9574f2e0606a854689"
ENGINES = ("before", "stored", "checkpointed")
TARGET_MEMORY_FRACTION = 0.15
TARGET_TIME_RATIO = 2.0


def _memory_mb(field: str) -> float:
    """``VmRSS`` or ``VmHWM`` of this process in MB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not in /proc/self/status")


def _call_memory_mb(function) -> float:
    """Peak resident memory during ``function()`` above the resident memory before it, in MB."""
    gc.collect()
    before = _memory_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # resets VmHWM to the current resident size
    function()
    return _memory_mb("VmHWM") - before


def _load_engine(name: str, folder: Path):
    """The ``simulate`` and ``EngineConfig`` of engine ``name``."""
    if name != "before":
        from data_prep import forward

        return forward
    source = subprocess.run(
        ["git", "show", f"{BEFORE_COMMIT}:data_prep/forward.py"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = folder / "forward_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("forward_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_worker(engine: str, repeats: int, folder: Path) -> dict:
    """Times and measures the forward and forward+backward calls of ``engine`` under this process's backend."""
    import keras

    from benchmarks.report import time_repeats
    from data_prep.forward import EngineConfig as CurrentConfig
    from data_prep.geometry import AcquisitionGeometry

    backend = keras.backend.backend()
    module = _load_engine(engine, folder)
    width = CurrentConfig().absorbing_width_cells
    options = {"absorbing_width_cells": width, "max_concurrent_calls": 1}
    if engine == "stored":
        options["checkpoint_segments"] = 1
    config = module.EngineConfig(**options)
    geometry = AcquisitionGeometry()
    rng = np.random.default_rng(0)
    velocity = np.full((1, 70, 70), 2000.0, np.float32)
    velocity[:, 25:] = 3000.0
    velocity[:, 50:] = 4000.0
    weights = rng.standard_normal((1, geometry.num_sources, geometry.num_samples, geometry.num_receivers))
    weights = weights.astype(np.float32)
    bounds = (1500.0, 4500.0)
    result: dict = {"engine": engine, "backend": backend, "width": width}

    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        velocity_tensor = tf.constant(velocity)

        def forward():
            return module.simulate(velocity_tensor, geometry, config, velocity_bounds_mps=bounds).numpy()

        def gradient():
            with tf.GradientTape() as tape:
                tape.watch(velocity_tensor)
                traces = module.simulate(velocity_tensor, geometry, config, velocity_bounds_mps=bounds)
                loss = tf.reduce_sum(traces * weights)
            return tape.gradient(loss, velocity_tensor).numpy()

    else:
        import jax

        velocity_array = jax.numpy.asarray(velocity)

        def loss(v):
            return (module.simulate(v, geometry, config, velocity_bounds_mps=bounds) * weights).sum()

        compiled_forward = jax.jit(lambda v: module.simulate(v, geometry, config, velocity_bounds_mps=bounds))
        compiled_gradient = jax.jit(jax.grad(loss))

        def forward():
            return np.asarray(compiled_forward(velocity_array))

        def gradient():
            return np.asarray(compiled_gradient(velocity_array))

        analysis = compiled_gradient.lower(velocity_array).compile().memory_analysis()
        if analysis is not None:
            result["xla_temp_mb"] = analysis.temp_size_in_bytes / 2**20

    for name, function in (("forward", forward), ("gradient", gradient)):
        result[f"{name}_s"] = time_repeats(function, repeats)  # one untimed, compiling warm-up first
        result[f"{name}_mb"] = _call_memory_mb(function)
    values = gradient()
    result["gradient_norm"] = float(np.linalg.norm(values))
    np.save(folder / f"gradient-{engine}-{backend}.npy", values)
    return result


def compare_methods(repeats: int, num_shots: int = 3, segments: int = 22) -> dict:
    """Forward, autodiff gradient and adjoint-state gradient of the refinement's engine call, interleaved in
    this process: per round one call of each, in a rotating order; returns the timings, loads and the
    gradients' agreement."""
    import time
    import warnings

    import keras

    from data_prep.forward import EngineConfig, simulate
    from data_prep.geometry import AcquisitionGeometry

    backend = keras.backend.backend()
    geometry = AcquisitionGeometry.openfwi()
    geometry = geometry.replace(source_cells=geometry.source_cells[:num_shots])
    velocity = np.full((1, 70, 70), 2000.0, np.float32)
    velocity[:, 25:] = 3000.0
    velocity[:, 50:] = 4000.0
    weights = np.random.default_rng(0).standard_normal(
        (1, num_shots, geometry.num_samples, geometry.num_receivers)
    )
    weights = weights.astype(np.float32)
    bounds = (1500.0, 4500.0)
    configs = {
        "autodiff": EngineConfig(checkpoint_segments=segments, gradient="autodiff"),
        "adjoint": EngineConfig(checkpoint_segments=segments),
        # What a refinement of this window runs (pipeline.refine.refinement_engine): nothing recomputed.
        "adjoint, no recomputation": EngineConfig(checkpoint_segments=1),
    }
    warnings.simplefilter("ignore", RuntimeWarning)
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        model = tf.constant(velocity)

        def forward():
            return simulate(model, geometry, configs["adjoint"], velocity_bounds_mps=bounds).numpy()

        def gradient_of(config):
            def gradient():
                with tf.GradientTape() as tape:
                    tape.watch(model)
                    traces = simulate(model, geometry, config, velocity_bounds_mps=bounds)
                return tape.gradient(traces, model, output_gradients=weights).numpy()

            return gradient

    else:
        import jax

        model = jax.numpy.asarray(velocity)

        def forward():
            return np.asarray(simulate(model, geometry, configs["adjoint"], velocity_bounds_mps=bounds))

        def gradient_of(config):
            def gradient():
                _, pullback = jax.vjp(
                    lambda v: simulate(v, geometry, config, velocity_bounds_mps=bounds), model
                )
                return np.asarray(pullback(jax.numpy.asarray(weights))[0])

            return gradient

    calls = {"forward": forward, **{f"{name} gradient": gradient_of(c) for name, c in configs.items()}}
    result: dict = {"backend": backend, "shots": num_shots, "segments": segments, "compile_s": {}}
    values = {}
    for name, call in calls.items():
        start = time.perf_counter()
        values[name] = call()
        result["compile_s"][name] = time.perf_counter() - start
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in calls}
    loads = [os.getloadavg()[0]]
    names = list(calls)
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start, cpu_start = time.perf_counter(), time.process_time()
            calls[name]()
            seconds[name].append(time.perf_counter() - start)
            cpu_seconds[name].append(time.process_time() - cpu_start)
        loads.append(os.getloadavg()[0])
    result["cpu_seconds"] = cpu_seconds
    reference, adjoint = values["autodiff gradient"], values["adjoint, no recomputation gradient"]
    result["seconds"] = seconds
    result["loads"] = loads
    result["max_difference"] = float(np.abs(adjoint - reference).max() / np.abs(reference).max())
    result["cosine"] = float(
        np.sum(adjoint * reference) / np.linalg.norm(adjoint) / np.linalg.norm(reference)
    )
    return result


def methods_section(results: list[dict], repeats: int) -> str:
    from benchmarks.report import machine_description, markdown_table, median

    rows, lines = [], []
    for result in results:
        seconds = result["seconds"]
        cpu = result["cpu_seconds"]
        forward_s = median(seconds["forward"])
        autodiff_s, adjoint_s = median(seconds["autodiff gradient"]), median(seconds["adjoint gradient"])
        autodiff_cpu, adjoint_cpu = median(cpu["autodiff gradient"]), median(cpu["adjoint gradient"])
        stored_s = median(seconds["adjoint, no recomputation gradient"])
        stored_cpu = median(cpu["adjoint, no recomputation gradient"])
        load = f"{min(result['loads']):.1f}-{max(result['loads']):.1f}"
        for name in (
            "forward",
            "autodiff gradient",
            "adjoint gradient",
            "adjoint, no recomputation gradient",
        ):
            values = seconds[name]
            rows.append(
                [
                    result["backend"],
                    name,
                    median(values),
                    f"{min(values):.3f}-{max(values):.3f}",
                    median(cpu[name]),
                    f"{median(values) / forward_s:.1f}",
                    f"{median(cpu[name]) / median(cpu['forward']):.1f}",
                    f"{result['compile_s'][name]:.1f}",
                    load,
                ]
            )
        lines.append(
            f"- {result['backend']}: the adjoint-state gradient takes **{adjoint_s:.3f} s** against "
            f"{autodiff_s:.3f} s for autodiff, **{autodiff_s / adjoint_s:.1f}x faster** wall, "
            f"{autodiff_cpu / adjoint_cpu:.1f}x in CPU time ({adjoint_cpu:.3f} s against {autodiff_cpu:.3f} s; "
            f"medians of {repeats} interleaved rounds, 1-minute load {load}); without recomputation (every step's "
            f"Laplacian kept, as a refinement of this window runs) **{stored_s:.3f} s**, "
            f"{autodiff_s / stored_s:.1f}x faster wall, {autodiff_cpu / stored_cpu:.1f}x in CPU time; gradients agree to {result['max_difference']:.1e} of "
            f"the largest entry, cosine similarity {result['cosine']:.8f}."
        )
    table = markdown_table(
        [
            "backend",
            "call",
            "median s",
            "range s",
            "median CPU s",
            "in forwards (wall)",
            "in forwards (CPU)",
            "first call s (compiles)",
            "1-min load",
        ],
        rows,
    )
    first = results[0]
    return f"""## Engine gradient: adjoint-state method against autodiff (`benchmarks/engine_gradient.py --methods`)

`python -m benchmarks.engine_gradient --methods --repeats {repeats}`. The engine call of a refinement: one
OpenFWI model (70 x 70 cells, 14-cell absorbing layer), {first["shots"]} shots (a refinement splits 5 shots over
2 cores), 70 receivers, 1000 steps of 1 ms, {first["segments"]} checkpoint segments, one thread; the cotangent
of the traces fixed random numbers. Per round one call of each, in a rotating order, all in one process (the same
machine load for all three); s = median over the rounds; CPU s = the process's CPU time (one thread: the
compute itself, less inflated by a loaded machine than the wall time). **autodiff**: `EngineConfig(gradient="autodiff")`,
the backend's reverse mode through the checkpointed time loop (the engine's gradient before);
**adjoint**: `gradient="adjoint"` (default), the adjoint-state method with the same segments; **adjoint, no
recomputation**: `checkpoint_segments=1`, every step's Laplacian kept by the forward (what
`pipeline.refine` runs when a call's Laplacians fit 256 MiB). Agreement: the last against autodiff. Machine: {machine_description()}.

{table}

{chr(10).join(lines)}
"""


def _worker(engine: str, backend: str, repeats: int, folder: Path) -> dict:
    command = [
        sys.executable,
        "-m",
        "benchmarks.engine_gradient",
        "--worker",
        engine,
        "--folder",
        str(folder),
    ]
    command += ["--repeats", str(repeats)]
    environment = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1")
    if backend == "jax":
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        environment["XLA_FLAGS"] = f"{environment.get('XLA_FLAGS', '')} {flags}".strip()
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=environment)
    if completed.returncode != 0:
        raise RuntimeError(f"{engine} ({backend}) worker failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed repeats per call (default 3; --methods: 5 rounds)"
    )
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"], choices=("tensorflow", "jax"))
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument(
        "--methods",
        action="store_true",
        help="compare the adjoint-state and autodiff gradients in one process (section engine_gradient_methods)",
    )
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--methods-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.methods_worker:
        print(json.dumps(compare_methods(args.repeats)))
        return 0
    if args.methods:
        from benchmarks.report import update_section

        repeats = args.repeats or 5
        results = []
        for backend in args.backends:
            print(f"{backend}: forward, autodiff and adjoint-state gradients ...", flush=True)
            command = [sys.executable, "-m", "benchmarks.engine_gradient", "--methods-worker"]
            command += ["--repeats", str(repeats)]
            environment = dict(
                os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1"
            )
            if backend == "jax":
                flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
                environment["XLA_FLAGS"] = f"{environment.get('XLA_FLAGS', '')} {flags}".strip()
            completed = subprocess.run(
                command, capture_output=True, text=True, cwd=REPO_ROOT, env=environment
            )
            if completed.returncode != 0:
                raise RuntimeError(f"{backend} methods worker failed:\n{completed.stderr[-4000:]}")
            results.append(json.loads(completed.stdout.strip().splitlines()[-1]))
        markdown = methods_section(results, repeats)
        print(markdown)
        if not args.no_write:
            path = update_section(f"{SECTION}_methods", markdown)
            print(f"wrote section '{SECTION}_methods' of {path}")
        return 0
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.repeats or 3, args.folder)))
        return 0

    from benchmarks.references import problems_of, spread_problem, verdict

    args.repeats = args.repeats or 3
    from benchmarks.report import machine_description, markdown_table, median, update_section

    results: dict[tuple[str, str], dict] = {}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for backend in args.backends:
            for engine in ENGINES:
                print(f"{backend}: {engine} ...", flush=True)
                results[backend, engine] = _worker(engine, backend, args.repeats, folder)
                load.append(os.getloadavg()[0])
            reference = np.load(folder / f"gradient-before-{backend}.npy")
            for engine in ENGINES[1:]:
                difference = np.load(folder / f"gradient-{engine}-{backend}.npy") - reference
                results[backend, engine]["difference"] = float(
                    np.abs(difference).max() / np.abs(reference).max()
                )

    rows, verdicts = [], []
    for backend in args.backends:
        before = results[backend, "before"]
        before_s, before_mb = median(before["gradient_s"]), before["gradient_mb"]
        for engine in ENGINES:
            result = results[backend, engine]
            gradient_s = median(result["gradient_s"])
            rows.append(
                [
                    backend,
                    engine,
                    median(result["forward_s"]),
                    result["forward_mb"],
                    gradient_s,
                    result["gradient_mb"],
                    result.get("xla_temp_mb", "-"),
                    f"{result['gradient_mb'] / before_mb:.1%}",
                    f"{gradient_s / before_s:.2f}x",
                    f"{result['difference']:.1e}" if "difference" in result else "(reference)",
                ]
            )
        checkpointed = results[backend, "checkpointed"]
        memory_fraction = checkpointed["gradient_mb"] / before_mb
        time_ratio = median(checkpointed["gradient_s"]) / before_s
        # The time verdict is a ratio of two timings: both must agree with their own repeats.
        problems = problems_of(
            spread_problem(f"{backend} {engine} gradient", results[backend, engine]["gradient_s"])
            for engine in ("before", "checkpointed")
        )
        verdicts.append(
            f"- {backend}: the checkpointed gradient needs **{memory_fraction:.1%}** of the memory of the gradient "
            f"before checkpointing (target <= {TARGET_MEMORY_FRACTION:.0%}: "
            f"**{verdict(memory_fraction <= TARGET_MEMORY_FRACTION, (), load[-1])}**) in **{time_ratio:.2f}x** "
            f"its time (target <= {TARGET_TIME_RATIO:.0f}x: "
            f"**{verdict(time_ratio <= TARGET_TIME_RATIO, problems, load[-1])}**)."
        )
    table = markdown_table(
        [
            "backend",
            "engine",
            "forward s",
            "forward MB",
            "forward+backward s",
            "forward+backward MB",
            "XLA temp MB (JAX)",
            "memory vs before",
            "time vs before",
            "gradient difference vs before",
        ],
        rows,
    )
    verdict_lines = "\n".join(verdicts)
    markdown = f"""## Engine gradient: memory and time (`benchmarks/engine_gradient.py`)

`python -m benchmarks.engine_gradient`. One OpenFWI model (70 x 70 cells + {results[args.backends[0], "before"]["width"]}-cell
absorbing layer per side, 5 shots, 70 receivers, 1000 steps of 1 ms), loss = sum(traces x fixed random
weights), gradient with respect to velocity by `tf.GradientTape` / `jax.grad`; one thread, each engine in
its own process. **before**: the engine at {BEFORE_COMMIT[:7]} (reverse mode through every stored step);
**stored**: today's engine with `checkpoint_segments=1` (hand-written adjoint step, every step stored);
**checkpointed**: today's default (segments of the time loop recomputed while differentiated). MB = peak
resident memory during one steady-state call above the resident memory before it; s = median of
{args.repeats} calls after a compiling warm-up. Machine: {machine_description()}; 1-minute load average
{min(load):.1f}-{max(load):.1f}.

{table}

{verdict_lines}
"""
    print(markdown)
    if not args.no_write:
        path = update_section(SECTION, markdown)
        print(f"wrote section '{SECTION}' of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
