"""Benchmarks check their own references before they conclude.

A speed verdict ("met" / "NOT met") is a ratio against a reference measured in the same run. On a shared
machine a measurement can be broken without failing: another job oversubscribing the cores made Deepwave with
2 threads 136x slower than Deepwave with 1 thread in one run, and the ratio against it read as "184x, met".
Before a benchmark writes a verdict it checks that its measurements agree with themselves:

* repeats of one measurement spread by at most ``MAX_REPEAT_SPREAD`` (slowest / fastest);
* more threads, or more models per call, are not much slower per sample than fewer: at most
  ``MAX_SCALING_SLOWDOWN`` times the time of the smaller configuration.

A benchmark re-measures once when a check fails; if it still fails, the verdict is reported as invalid (with
the contradiction), never as met. Every verdict names the 1-minute load average it ran under.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

#: Slowest / fastest repeat of one measurement beyond which the measurement is not trusted.
MAX_REPEAT_SPREAD = 2.0
#: More threads or a bigger batch may be at most this many times slower per sample than fewer / smaller.
MAX_SCALING_SLOWDOWN = 1.5


def spread_problem(name: str, seconds: Sequence[float], max_spread: float = MAX_REPEAT_SPREAD) -> str | None:
    """A description of the problem when the repeats of ``name`` spread by more than ``max_spread``."""
    values = [float(value) for value in seconds if value is not None]
    if len(values) < 2:
        return None
    fastest, slowest = min(values), max(values)
    if fastest <= 0 or slowest / fastest > max_spread:
        return (
            f"{name}: repeats spread {slowest / fastest if fastest > 0 else float('inf'):.1f}x "
            f"({fastest:.3g}-{slowest:.3g} s; at most {max_spread:g}x trusted)"
        )
    return None


def scaling_problem(
    smaller: str,
    smaller_s: float,
    larger: str,
    larger_s: float,
    max_slowdown: float = MAX_SCALING_SLOWDOWN,
) -> str | None:
    """A description of the problem when ``larger`` (more threads, a bigger batch) takes more than
    ``max_slowdown`` times the seconds per sample of ``smaller``."""
    if smaller_s > 0 and larger_s > max_slowdown * smaller_s:
        return (
            f"{larger} takes {larger_s:.3g} s / sample against {smaller_s:.3g} s with {smaller} "
            f"({larger_s / smaller_s:.1f}x slower; at most {max_slowdown:g}x trusted)"
        )
    return None


def problems_of(checks: Iterable[str | None]) -> list[str]:
    return [problem for problem in checks if problem]


def current_load() -> float:
    """The 1-minute load average (``os.getloadavg``)."""
    return os.getloadavg()[0]


def verdict(passed: bool, problems: Sequence[str] = (), load: float | None = None) -> str:
    """``met`` / ``NOT met`` with the load it ran under, or ``INVALID`` naming the contradictions.

    Args:
        passed: whether the target is reached (ignored when ``problems`` is not empty).
        problems: self-contradictions of the measurements the verdict depends on.
        load: 1-minute load average (None: read now).
    """
    load = current_load() if load is None else load
    if problems:
        return (
            f"INVALID, no verdict: the reference contradicts itself ({'; '.join(problems)}); load {load:.1f}"
        )
    return f"{'met' if passed else 'NOT met'}, load {load:.1f}"
