"""Ingest benchmark: SEG-Y -> HDF5 throughput against a raw segyio read, and peak memory vs input size.

Writes a synthetic survey with OpenFWI's geometry (5 shots x 70 receivers x 1000 samples per model,
float32, through ``data_prep.segy_io``, i.e. segyio) of ``--models`` models and one ``--scale`` times
larger, then:

* throughput: ``ingest`` of the small survey against reading the same SEG-Y files (shots and velocity)
  with segyio (``segyio.open``, ``f.mmap()``, ``f.trace.raw[:]``) in the same run, both from a warm page
  cache, interleaved (raw, ingest, raw, ingest, ...) so both see the same machine load, median of
  ``--repeats``; the target is ingest >= 0.8x the raw read. Wall and CPU seconds (all threads) are given;
* what bounds ingest: the per-byte stages it cannot avoid, each timed alone on the same files: segyio's
  read of every sample, the transpose into (shot, time, receiver), the HDF5 chunk writes, and the SHA-256
  of every input (provenance);
* memory: peak resident memory of a fresh process that ingests each survey (psutil, sampled every 2 ms)
  minus its memory after the imports; the target is flat (the large input must not need more).

Prints a table and rewrites the "ingest" section of docs/benchmarks.md (unless ``--no-update``).

    python benchmarks/ingest.py                 # ~87 MB and ~870 MB inputs
    python benchmarks/ingest.py --models 10 --scale 4 --no-update   # quick look
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import segyio

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import machine_description, markdown_table, median, update_section  # noqa: E402
from data_prep.geometry import AcquisitionGeometry  # noqa: E402
from data_prep.ingest import IngestConfig, ingest  # noqa: E402
from data_prep.segy_io import write_shot_gathers, write_velocity_models  # noqa: E402

CHUNK_MODELS = 25

_MEMORY_SCRIPT = """
import json, sys, threading, time, tracemalloc
import psutil
sys.path.insert(0, {root!r})
from data_prep.ingest import IngestConfig, ingest
process = psutil.Process()
before = process.memory_info().rss
peak = before
done = False

def sample():
    global peak
    while not done:
        peak = max(peak, process.memory_info().rss)
        time.sleep(0.002)

thread = threading.Thread(target=sample, daemon=True)
tracemalloc.start()
thread.start()
ingest([{source!r}], {destination!r}, IngestConfig(progress=False), overwrite=True)
done = True
thread.join()
traced_peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({{"before_mib": before / 2**20, "peak_mib": peak / 2**20, "traced_mib": traced_peak / 2**20}}))
"""


def write_survey(folder: Path, num_models: int, seed: int = 0) -> Path:
    """Random OpenFWI-shaped gathers and constant velocity models, in chunk files of CHUNK_MODELS models."""
    geometry = AcquisitionGeometry()
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for first in range(0, num_models, CHUNK_MODELS):
        count = min(CHUNK_MODELS, num_models - first)
        seismic = rng.standard_normal(
            (count, geometry.num_sources, geometry.num_samples, geometry.num_receivers), dtype=np.float32
        )
        velocity = np.full((count, *geometry.grid_shape), 3000.0, dtype=np.float32)
        last = first + count - 1
        write_shot_gathers(folder / f"bench_shots_{first:06d}-{last:06d}.segy", seismic, geometry, first)
        write_velocity_models(
            folder / f"bench_velocity_{first:06d}-{last:06d}.segy", velocity, geometry.grid_spacing_m, first
        )
    return folder


def raw_segyio_read(folder: Path) -> int:
    """Reads every trace of every SEG-Y file in ``folder`` with segyio; returns the number of shot traces."""
    traces = 0
    for path in sorted(folder.glob("*.segy")):
        with segyio.open(path, ignore_geometry=True) as f:
            f.mmap()
            read = len(f.trace.raw[:])
            traces += read if "shots" in path.name else 0
    return traces


def sha256_files(folder: Path) -> None:
    """SHA-256 of every input file, as ingest's provenance computes it (hashlib, one thread)."""
    for path in sorted(folder.glob("*.segy")):
        with open(path, "rb") as handle:
            hashlib.file_digest(handle, "sha256")


def _per_sample(folder: Path):
    """Yields ``(segyio file, first trace, traces per sample)`` for every sample of the shot files."""
    geometry = AcquisitionGeometry()
    per_sample = geometry.num_sources * geometry.num_receivers
    for path in sorted(folder.glob("*shots*.segy")):
        with segyio.open(path, ignore_geometry=True) as f:
            f.mmap()
            for first in range(0, f.tracecount, per_sample):
                yield f, first, per_sample


def read_samples(folder: Path, transpose: bool) -> None:
    """segyio reads of one sample (model) at a time, optionally transposed into (shot, time, receiver)."""
    geometry = AcquisitionGeometry()
    buffer = np.empty((geometry.num_sources, geometry.num_samples, geometry.num_receivers), dtype=np.float32)
    for f, first, count in _per_sample(folder):
        traces = f.trace.raw[first : first + count]
        if transpose:
            buffer[...] = traces.reshape(geometry.num_sources, geometry.num_receivers, -1).transpose(0, 2, 1)


def write_chunks(folder: Path, destination: Path) -> None:
    """HDF5 writes of one (shot, time, receiver) chunk per sample, as ingest does, of constant data."""
    geometry = AcquisitionGeometry()
    shape = (geometry.num_sources, geometry.num_samples, geometry.num_receivers)
    buffer = np.ones(shape, dtype=np.float32)
    count = sum(1 for _ in _per_sample(folder))
    with h5py.File(destination, "w") as h5:
        dataset = h5.create_dataset("seismic", shape=(count, *shape), dtype=np.float32, chunks=(1, *shape))
        for index in range(count):
            dataset.id.write_direct_chunk((index, 0, 0, 0), buffer)


def timed(function) -> tuple[float, float]:
    """``(wall seconds, CPU seconds of this process, all threads)`` of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def peak_memory_mib(source: Path, destination: Path) -> tuple[float, float, float]:
    """``(RSS after imports, peak RSS during ingest, peak Python/numpy allocations)`` in MiB.

    Measured in a fresh interpreter ingesting ``source``: RSS sampled every 2 ms by a thread (psutil), and
    tracemalloc's peak (numpy reports its buffers to tracemalloc; HDF5's C allocations are not included).
    """
    script = _MEMORY_SCRIPT.format(root=str(REPO_ROOT), source=str(source), destination=str(destination))
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    return float(result["before_mib"]), float(result["peak_mib"]), float(result["traced_mib"])


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.glob("*.segy")) / 2**20


def measure(args: argparse.Namespace) -> SimpleNamespace:
    """Every timing and memory figure of the benchmark, measured on two surveys written for it."""
    workdir = Path(tempfile.mkdtemp(prefix="ingest-bench-", dir=args.workdir))
    try:
        small = write_survey(workdir / "small", args.models)
        large = write_survey(workdir / "large", args.models * args.scale, seed=1)
        small_mib, large_mib = folder_mib(small), folder_mib(large)
        config = IngestConfig(progress=False)
        # A new output file each time (as for ingest): replacing one would also time freeing its blocks.
        outputs = iter(workdir / f"small-{i}.h5" for i in range(args.repeats + 1))
        chunk_outputs = iter(workdir / f"chunks-{i}.h5" for i in range(args.repeats + 1))
        stages = {
            "raw": lambda: raw_segyio_read(small),
            "ingest": lambda: ingest([small], next(outputs), config),
            "read": lambda: read_samples(small, transpose=False),
            "transpose": lambda: read_samples(small, transpose=True),
            "write": lambda: write_chunks(small, next(chunk_outputs)),
            "sha256": lambda: sha256_files(small),
        }
        wall: dict[str, list[float]] = {name: [] for name in stages}
        cpu: dict[str, list[float]] = {name: [] for name in stages}
        for repeat in range(args.repeats + 1):  # the first round warms the page cache and is not counted
            for name, function in stages.items():
                seconds, cpu_seconds = timed(function)
                if repeat:
                    wall[name].append(seconds)
                    cpu[name].append(cpu_seconds)
        load = os.getloadavg()[0]
        traces = raw_segyio_read(small)
        raw_s, ingest_s = median(wall["raw"]), median(wall["ingest"])
        large_start = time.perf_counter()
        ingest([large], workdir / "large.h5", config, overwrite=True)
        large_s = time.perf_counter() - large_start

        small_before, small_peak, small_traced = peak_memory_mib(small, workdir / "small-mem.h5")
        large_before, large_peak, large_traced = peak_memory_mib(large, workdir / "large-mem.h5")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return SimpleNamespace(
        **{k: v for k, v in locals().items() if k not in ("args", "stages", "outputs", "chunk_outputs")}
    )


def tables(args: argparse.Namespace, m: SimpleNamespace) -> tuple[str, str, str, float, float]:
    """The throughput, bound and memory tables, and the stages' floor and hashing seconds."""
    small_mib, large_mib, traces, raw_s, ingest_s, large_s, wall, cpu = (
        m.small_mib,
        m.large_mib,
        m.traces,
        m.raw_s,
        m.ingest_s,
        m.large_s,
        m.wall,
        m.cpu,
    )
    small_before, small_peak, small_traced = m.small_before, m.small_peak, m.small_traced
    large_before, large_peak, large_traced = m.large_before, m.large_peak, m.large_traced
    throughput = markdown_table(
        [
            "input",
            "size MiB",
            "shot traces",
            "raw segyio read s",
            "ingest s",
            "raw CPU s",
            "ingest CPU s",
            "raw MiB/s",
            "ingest MiB/s",
            "ingest traces/s",
            "ingest / raw",
        ],
        [
            [
                f"{args.models} models",
                small_mib,
                traces,
                raw_s,
                ingest_s,
                median(cpu["raw"]),
                median(cpu["ingest"]),
                small_mib / raw_s,
                small_mib / ingest_s,
                traces / ingest_s,
                raw_s / ingest_s,
            ],
            [
                f"{args.models * args.scale} models (1 run)",
                large_mib,
                traces * args.scale,
                "",
                large_s,
                "",
                "",
                "",
                large_mib / large_s,
                traces * args.scale / large_s,
                "",
            ],
        ],
    )
    read_s, transpose_s, write_s, sha_s = (
        median(wall[name]) for name in ("read", "transpose", "write", "sha256")
    )
    main_floor = transpose_s + write_s
    bound = markdown_table(
        ["stage (alone, same files)", "s", "MiB/s", "raw read / stage"],
        [
            ["segyio read, one sample (350 traces) at a time", read_s, small_mib / read_s, raw_s / read_s],
            [
                "... + transpose into (shot, time, receiver)",
                transpose_s,
                small_mib / transpose_s,
                raw_s / transpose_s,
            ],
            ["HDF5 writes, one chunk per sample", write_s, small_mib / write_s, raw_s / write_s],
            ["SHA-256 of every input (provenance)", sha_s, small_mib / sha_s, raw_s / sha_s],
            [
                "read + transpose + write (ingest's main thread, floor)",
                main_floor,
                small_mib / main_floor,
                raw_s / main_floor,
            ],
            [
                "all four on one core",
                main_floor + sha_s,
                small_mib / (main_floor + sha_s),
                raw_s / (main_floor + sha_s),
            ],
        ],
    )
    memory = markdown_table(
        [
            "input",
            "size MiB",
            "RSS after imports MiB",
            "peak RSS during ingest MiB",
            "RSS working memory MiB",
            "peak numpy/Python allocations MiB",
        ],
        [
            [
                f"{args.models} models",
                small_mib,
                small_before,
                small_peak,
                small_peak - small_before,
                small_traced,
            ],
            [
                f"{args.models * args.scale} models",
                large_mib,
                large_before,
                large_peak,
                large_peak - large_before,
                large_traced,
            ],
        ],
    )
    return throughput, bound, memory, main_floor, sha_s


def report(args: argparse.Namespace, m: SimpleNamespace) -> str:
    """The markdown section from ``measure``'s figures."""
    small_mib, large_mib, raw_s, ingest_s, wall, cpu, load = (
        m.small_mib,
        m.large_mib,
        m.raw_s,
        m.ingest_s,
        m.wall,
        m.cpu,
        m.load,
    )
    small_before, small_peak, small_traced = m.small_before, m.small_peak, m.small_traced
    large_before, large_peak, large_traced = m.large_before, m.large_peak, m.large_traced
    throughput, bound, memory, main_floor, sha_s = tables(args, m)
    ratio = raw_s / ingest_s
    cores = os.cpu_count()
    growth = (large_peak - large_before) / max(small_peak - small_before, 1e-9)
    traced_growth = large_traced / max(small_traced, 1e-9)
    upper = raw_s / max(main_floor, sha_s)  # the per-byte stages alone, perfectly overlapped
    verdict = (
        ": 0.8x is out of reach on this machine while every input is hashed and the output written in another layout"
        if upper < 0.8
        else ", so 0.8x needs the stages almost perfectly overlapped"
    )
    from benchmarks.references import problems_of, spread_problem
    from benchmarks.references import verdict as reference_verdict

    # The ratio is drawn only from timings that agree with their own repeats (benchmarks/references.py).
    ratio_verdict = reference_verdict(
        ratio >= 0.8,
        problems_of(spread_problem(f"{name} (wall)", wall[name]) for name in ("raw", "ingest")),
        load,
    )
    markdown = f"""## Ingest (`benchmarks/ingest.py`)

{machine_description()}. OpenFWI geometry (5 shots x 70 receivers x 1000 samples, IEEE float, big-endian),
files of {CHUNK_MODELS} models written with segyio; warm page cache; raw read and ingest interleaved, median of
{args.repeats} runs. Load average during the run: {load:.1f} on {cores} cores (other work shares the machine, so
the figures are noisy above 1).

* **raw segyio read**: `segyio.open`, `f.mmap()`, `f.trace.raw[:]` of every file (shots and velocity), into
  fresh arrays; nothing else.
* **ingest**: `ingest([folder], out.h5)`, everything: resolve the inputs, scan every trace header with segyio
  (`f.attributes`), group and check traces, read every sample with segyio, check NaN/Inf, transpose to (shot,
  time, receiver), write HDF5 (one chunk per sample), edges and training statistics, splits, SHA-256 of every
  input (background thread), provenance, validate, rename. CPU seconds include every thread.

{throughput}

Ingest / raw read = **{ratio:.2f}x** (target >= 0.8x: **{ratio_verdict}**).

What bounds it: each stage ingest must do per byte, timed alone on the same files in the same run.

{bound}

On a warm page cache the raw read is a memory copy with a byte swap. Ingest adds, for every byte, a
transpose (its output layout differs from the file's), a write into the HDF5 file, and a SHA-256 (the
provenance the dataset carries), which alone runs at {small_mib / sha_s:.0f} MiB/s here against the raw read's
{small_mib / raw_s:.0f} MiB/s. Measured alone, reading, transposing and writing the samples take
{main_floor / raw_s:.2f}x the raw read's time and hashing the input files {sha_s / raw_s:.2f}x. The SHA-256 runs in a background
thread, so even with the two overlapping perfectly on two free cores and no other work at all, ingest could
reach at most raw / max(stages) = **{upper:.2f}x** of the raw read{verdict}. The rest of ingest's work (scanning trace
headers, planning, statistics and edges, creating, validating and describing the HDF5 file) and the other
processes on this shared 2-core machine account for the remaining gap; ingest used {median(cpu["ingest"]):.3g} s of CPU
(all threads) for {ingest_s:.3g} s of wall time. Writing a new file is the other variable: buffered writes of new files run at whatever the kernel's write-back
allows at that moment (not measured here), and that can dominate the single {args.models * args.scale}-model run ({large_mib:.0f} MiB written after the surveys and the outputs of the
timed runs).

{memory}

Ingest's RSS working memory (peak RSS minus RSS after imports, sampled every 2 ms with psutil in a fresh
process) changes {growth:.2f}x for a {args.scale}x larger input, its numpy/Python allocations (tracemalloc)
{traced_growth:.2f}x (target: flat, 1x). Samples are streamed one at a time (one 1.4 MB buffer plus segyio's
array); velocity models and edges go in blocks of `block_bytes`; planning keeps about 12 bytes per trace (trace
order and the two grouping keys kept for error messages). Files are mapped by segyio (`f.mmap()`) and closed
after every block, so their page-cache pages count in RSS only while a block is read; the rest is HDF5's own
C-level caches.
"""
    return markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=60, help="models in the small survey (1.4 MB each)")
    parser.add_argument("--scale", type=int, default=10, help="the large survey is this many times larger")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)"
    )
    parser.add_argument("--no-update", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)

    markdown = report(args, measure(args))
    print(markdown)
    if not args.no_update:
        print(f"updated {update_section('ingest', markdown)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
