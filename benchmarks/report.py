"""Shared helpers for benchmark scripts: machine description, medians, and docs/benchmarks.md sections.

Each benchmark owns one section of ``docs/benchmarks.md``, delimited by HTML comments
``<!-- BEGIN name -->`` / ``<!-- END name -->``; re-running a benchmark replaces only its own section.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"

_HEADER = """# Benchmarks

Measured by the scripts in `benchmarks/`; each section is rewritten by its script and names the command. The
machines are shared and noisy, so every timing is a median over repeats (accuracy rows are means over seeds),
and every speed target is stated as a ratio against a reference measured in the same run on the same
machine. A speed verdict is written only when the run's measurements agree with themselves
(`benchmarks/references.py`) and names the 1-minute load it ran under.
"""


def machine_description() -> str:
    """One line describing the machine: CPU model, core count, Python, Keras backend and versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, Keras backend {backend}"


def load_sentence(before: float, after: float, cores: int | None = None) -> str:
    """How loaded the machine was around a timed benchmark, from the 1-minute load averages before it started and
    after it ended (the second includes the benchmark's own processes, up to one per core): "quiet" only when
    nothing else ran before it and not more than its own cores' worth of work at the end."""
    cores = cores or os.cpu_count() or 1
    measured = f"load average {before:.1f} before, {after:.1f} after (1 min, {cores} cores)"
    if before <= 0.5 * cores and after <= cores + 1:
        return f"Quiet machine: {measured}."
    return (
        f"**Provisional**: {measured}: other jobs shared the cores, so the timed paths ran on fewer free "
        "cores than the machine has and the ratio, not the absolute speed, is the figure to read."
    )


def time_repeats(function: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``function`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        function()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return seconds


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; floats are printed with 4 significant digits."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def update_section(name: str, markdown: str, path: Path = BENCHMARKS_MD) -> Path:
    """Replaces (or appends) the section ``name`` of the benchmarks page with ``markdown``."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.exists() else _HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".md.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
    return path


def run_isolated(function, *args, **kwargs):
    """Runs ``function`` in a fresh spawned process and returns its (picklable) result.

    One process per training run (or comparison): a benchmark process that trained one model after another
    was killed by the kernel's OOM killer on the 24 GB machine, at 15.5 GB (generalisation) and 16.4 GB
    (accuracy): each run's in-memory data cache and graphs were not all given back,
    ``keras.backend.clear_session`` notwithstanding. A spawned process gives back everything when it ends.
    """
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args, kwargs)
