"""Scaling benchmark: synthesis (and, with ``--inference``, survey inference) on a Dask ``LocalCluster``
against the in-process path, at equal cores.

On this machine (2 cores), the same ``--models`` models (OpenFWI's geometry unless ``--small``, in chunks of
``--chunk-size``) are synthesised, in the same run, interleaved (in-process, cluster, in-process, ...) so both
see the same machine load, median of ``--repeats`` after one untimed warm-up each:

* **in-process**: ``synthesize(config, out)``, the engine on both cores (2 concurrent calls);
* **cluster**: ``synthesize(config, out, client=client)`` on a ``LocalCluster`` of 2 worker processes with 1
  thread each (the engine on one core per task, the writing in this process), started once (its start-up
  time is reported apart).

The overhead is ``cluster / in-process - 1`` (goal: <= 10 %). The projection for N workers uses what one run
on the cluster measured: the median compute time of a task on a worker (Dask's task stream), the client's
time per chunk (receiving and writing it: the single writer), and the scheduler's own cost per task
(no-op tasks through the same ``core.distributed.ordered_results``):
``models/s(N) = chunk_size / max(task_s / N, client_s, scheduler_s)``.

``--inference`` measures ``pipeline.infer`` instead (section "scaling-inference"): a line of ``--windows``
OpenFWI-size windows (the survey and untrained default U-Net of ``benchmarks/inference.py``; physics QC on,
which re-simulates every window), in batches of ``--batch-size`` windows, in-process (``infer(...)``) and on
the cluster (``infer(..., client=client)``), interleaved, median of ``--repeats`` after a warm-up on the
same line. The model is loaded on the workers once for the whole benchmark (its load time is reported
apart, as the cluster's start-up is: both are paid once per command); each run includes its line's set-up
(geometry check, input correction), prediction, QC, stitching and ``section.h5``. The projection:
``windows/s(N) = batch_size / max(task_s / N, client_s, scheduler_s)``.

Prints a table and rewrites the "scaling" section of docs/benchmarks.md (unless ``--no-update``). Run it
niced on a shared machine and read the load average it prints.

    nice -n 19 python benchmarks/scaling.py                      # 48 OpenFWI-size models, 3 repeats
    nice -n 19 python benchmarks/scaling.py --small --models 16 --no-update   # a quick look
    nice -n 19 python benchmarks/scaling.py --inference --windows 12 --repeats 2   # inference rows
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import load_sentence, machine_description, markdown_table, median, update_section  # noqa: E402
from core.config import CONFIG_DIR, load_config  # noqa: E402
from core.distributed import ordered_results  # noqa: E402
from data_prep.synthesize import SynthesizeConfig, synthesize  # noqa: E402


def _noop(item: int) -> int:
    return item


def compute_seconds(stream, key_prefix: str) -> list[float]:
    """Seconds each task whose key starts with ``key_prefix`` spent computing on a worker
    (``distributed.get_task_stream`` records)."""
    return [
        part["stop"] - part["start"]
        for task in stream.data
        if str(task.get("key", "")).startswith(key_prefix)
        for part in task.get("startstops", ())
        if part.get("action") == "compute"
    ]


def scheduler_overhead_s(client, tasks: int = 200) -> float:
    """Wall seconds per task of ``tasks`` no-op tasks through ``ordered_results`` (window 2 per thread)."""
    list(ordered_results(client, _noop, range(20), name="warm"))
    start = time.perf_counter()
    list(ordered_results(client, _noop, range(tasks), name="noop"))
    return (time.perf_counter() - start) / tasks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=48)
    parser.add_argument("--chunk-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--small", action="store_true", help="configs/data/small.yaml's survey (32 x 48).")
    parser.add_argument("--no-update", action="store_true")
    parser.add_argument(
        "--inference", action="store_true", help="Measure pipeline.infer instead of synthesis."
    )
    parser.add_argument("--windows", type=int, default=12, help="--inference: windows of the line.")
    parser.add_argument(
        "--batch-size", type=int, default=2, help="--inference: windows per task (batch_size)."
    )
    args = parser.parse_args(argv)
    if args.inference:
        return inference_main(args)

    import dask
    import distributed

    files = [CONFIG_DIR / "data" / "small.yaml"] if args.small else []
    config = load_config(
        SynthesizeConfig,
        files=files,
        values={"count": args.models, "chunk_size": args.chunk_size, "batch_size": args.chunk_size},
    )
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} (1 min) on {os.cpu_count()} cores", flush=True)
    root = Path(tempfile.mkdtemp(prefix="scaling-"))
    in_process: list[float] = []
    on_cluster: list[float] = []
    try:
        started = time.perf_counter()
        with (
            dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}),
            distributed.LocalCluster(
                n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            client.wait_for_workers(args.workers)
            startup_s = time.perf_counter() - started

            def run(kind: str, index: int) -> float:
                out = root / f"{kind}-{index}"
                begin = time.perf_counter()
                synthesize(config, out, progress=False, client=client if kind == "cluster" else None)
                seconds = time.perf_counter() - begin
                shutil.rmtree(out)
                return seconds

            run("local", -1)  # warm-up: TensorFlow, XLA compilation
            run("cluster", -1)  # warm-up: the workers' imports and compilation
            for index in range(args.repeats):
                in_process.append(run("local", index))
                on_cluster.append(run("cluster", index))
                print(
                    f"repeat {index + 1}: in-process {in_process[-1]:.2f} s, cluster {on_cluster[-1]:.2f} s",
                    flush=True,
                )

            # One more cluster run, recorded: per-task compute time on the workers.
            with distributed.get_task_stream(client) as stream:
                begin = time.perf_counter()
                synthesize(config, root / "stream", progress=False, client=client)
                stream_wall_s = time.perf_counter() - begin
            computes = compute_seconds(stream, "synthesize-chunk")
            task_s = statistics.median(computes)
            busy_s = sum(computes)
            scheduler_s = scheduler_overhead_s(client)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()

    chunks = -(-args.models // args.chunk_size)
    local_s, cluster_s = median(in_process), median(on_cluster)
    overhead = cluster_s / local_s - 1
    # The client's share per chunk: what the workers' busy time does not explain of the cluster run's wall time.
    client_s = max(0.0, stream_wall_s - busy_s / args.workers) / chunks
    projections = []
    for workers in (2, 8, 32, 128, 512):
        per_chunk = max(task_s / workers, client_s, scheduler_s)
        projections.append((workers, args.chunk_size / per_chunk))

    geometry = config.geometry
    survey = (
        f"{geometry.grid_shape[0]} x {geometry.grid_shape[1]} grid, {geometry.num_sources} shots x "
        f"{geometry.num_receivers} receivers x {geometry.num_samples} samples"
    )
    rows = [
        ["in-process (engine on 2 cores)", local_s, args.models / local_s, ""],
        [
            f"LocalCluster, {args.workers} workers x 1 thread",
            cluster_s,
            args.models / cluster_s,
            f"{100 * overhead:+.1f} %",
        ],
    ]
    table = markdown_table(["path", "wall s (median)", "models/s", "overhead"], rows)
    projection = markdown_table(
        ["workers (1 core each)", "projected models/s", "bounded by"],
        [
            [
                workers,
                rate,
                "workers"
                if task_s / workers >= max(client_s, scheduler_s)
                else ("client (single writer)" if client_s >= scheduler_s else "scheduler"),
            ]
            for workers, rate in projections
        ],
    )
    markdown = f"""## Scaling out: synthesis on Dask (`benchmarks/scaling.py`)

`python benchmarks/scaling.py --models {args.models} --chunk-size {args.chunk_size} --repeats {args.repeats}{" --small" if args.small else ""}` —
{machine_description()}. {load_sentence(load_before[0], load_after[0])}

{args.models} models ({config.family}, {survey}), chunks of {args.chunk_size} models (one engine call each);
the in-process run and the cluster run interleaved, median of {args.repeats} after a warm-up each. The
cluster's start-up (2 spawned worker processes importing TensorFlow) took {startup_s:.1f} s, once per
command, not counted above.

{table}

Goal: overhead <= 10 % at equal cores. Per task on a worker (compute, median): {task_s:.3g} s for
{args.chunk_size} models; the client's time per chunk (receive and write: the single writer): {client_s:.3g} s;
the scheduler's cost per task (no-op tasks, same glue): {1000 * scheduler_s:.3g} ms. Projected throughput
for N single-core workers, `chunk_size / max(task / N, client, scheduler)` (the writer's disk assumed
to keep up):

{projection}
"""
    print(markdown)
    if not args.no_update:
        print(f"updated {update_section('scaling', markdown)}")
    return 0


def inference_main(args: argparse.Namespace) -> int:
    """The ``--inference`` benchmark (see the module docstring)."""
    import dask
    import distributed

    from benchmarks.inference import make_bundle, simulate_base_shots, write_line
    from core.config import from_dict
    from pipeline.bundle import load_bundle
    from pipeline.infer import InferConfig, infer
    from pipeline.infer.cluster import bundle_on_workers

    config = from_dict(
        InferConfig,
        {"batch_size": args.batch_size, "mirror_average": False, "outputs": {"png": False, "segy": False}},
    )
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} (1 min) on {os.cpu_count()} cores", flush=True)
    root = Path(tempfile.mkdtemp(prefix="scaling-infer-"))
    in_process: list[float] = []
    on_cluster: list[float] = []
    try:
        base, window = simulate_base_shots()
        bundle_path = make_bundle(root / "bundle", base, window)
        bundle = load_bundle(bundle_path)
        survey = root / "line.sgy"
        line = write_line(survey, args.windows, base, window)
        started = time.perf_counter()
        with (
            dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}),
            distributed.LocalCluster(
                n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            client.wait_for_workers(args.workers)
            startup_s = time.perf_counter() - started
            started = time.perf_counter()
            with bundle_on_workers(client, bundle, str(bundle_path)):
                load_s = time.perf_counter() - started

                def run(kind: str, index: int) -> tuple[float, object]:
                    out = root / f"{kind}-{index}"
                    begin = time.perf_counter()
                    result = infer(
                        [survey],
                        bundle,
                        out,
                        config,
                        progress=False,
                        model_uri=str(bundle_path),
                        client=client if kind == "cluster" else None,
                    )
                    seconds = time.perf_counter() - begin
                    shutil.rmtree(out)
                    return seconds, result

                # Warm-ups on the whole line: a shorter one would compile on only some of the workers, and the
                # first timed cluster run would pay the others' compilation (it did: 9.0 s against 2.9 s).
                run("local", -1)  # warm-up: TensorFlow, XLA compilation
                run("cluster", -1)  # warm-up: every worker's compilation
                for index in range(args.repeats):
                    in_process.append(run("local", index)[0])
                    on_cluster.append(run("cluster", index)[0])
                    print(
                        f"repeat {index + 1}: in-process {in_process[-1]:.2f} s, cluster {on_cluster[-1]:.2f} s",
                        flush=True,
                    )
                with distributed.get_task_stream(client) as stream:
                    _, recorded = run("cluster", args.repeats)
                computes = compute_seconds(stream, "infer-windows")
                task_s = statistics.median(computes)
                scheduler_s = scheduler_overhead_s(client)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()

    tasks = -(-args.windows // args.batch_size)
    local_s, cluster_s = median(in_process), median(on_cluster)
    overhead = cluster_s / local_s - 1
    # The client's share per batch: receiving and writing its window files (timed by pipeline.infer).
    client_s = recorded.timings_s.get("write", 0.0) / tasks
    rows = [
        ["in-process (TensorFlow and the engine on 2 cores)", local_s, args.windows / local_s, ""],
        [
            f"LocalCluster, {args.workers} workers x 1 thread",
            cluster_s,
            args.windows / cluster_s,
            f"{100 * overhead:+.1f} %",
        ],
    ]
    table = markdown_table(["path", "wall s (median)", "windows/s", "overhead"], rows)
    projection = markdown_table(
        ["workers (1 core each)", "projected windows/s", "bounded by"],
        [
            [
                workers,
                args.batch_size / max(task_s / workers, client_s, scheduler_s),
                "workers"
                if task_s / workers >= max(client_s, scheduler_s)
                else ("client (single writer)" if client_s >= scheduler_s else "scheduler"),
            ]
            for workers in (2, 8, 32, 128, 512)
        ],
    )
    markdown = f"""## Scaling out: survey inference on Dask (`benchmarks/scaling.py --inference`)

`python benchmarks/scaling.py --inference --windows {args.windows} --batch-size {args.batch_size} --repeats {args.repeats}` —
{machine_description()}. {load_sentence(load_before[0], load_after[0])}

A line of {args.windows} OpenFWI-size windows ({line["shots"]} shots, {line["traces"]} traces,
{line["segy_mb"]:.0f} MB of SEG-Y; `benchmarks/inference.py`'s survey and untrained default U-Net), physics QC
on (one re-simulation per window), batches of {args.batch_size} windows (one task each); in-process and
cluster runs interleaved, median of {args.repeats} after a warm-up each. Paid once per command and not counted
above: the cluster's start-up ({startup_s:.1f} s: 2 spawned workers importing TensorFlow) and loading the
model on the workers ({load_s:.1f} s, in parallel, once per worker for all the command's lines).

{table}

Goal: overhead <= 10 % at equal cores. Per task on a worker (compute, median): {task_s:.3g} s for
{args.batch_size} windows; the client's time per batch (receive and write its window files): {client_s:.3g} s;
the scheduler's cost per task (no-op tasks): {1000 * scheduler_s:.3g} ms. Projected throughput for N
single-core workers, `batch_size / max(task / N, client, scheduler)` (stitching, which streams the window
files once at the end, not included):

{projection}
"""
    print(markdown)
    if not args.no_update:
        print(f"updated {update_section('scaling-inference', markdown)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
