"""Progress of a long loop, for a person at a terminal and for a log file alike.

Used by every stage that loops over many items (``data_prep.synthesize`` shots, ``data_prep.ingest`` traces,
``pipeline.infer`` windows). On a terminal it is a tqdm bar; when the stream is a file, a pipe or a CI log it
writes a plain line every ``interval_s`` seconds and one at the end, because a bar would write a
carriage-return update per refresh into the log (thousands of lines).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any


class Progress:
    """Progress of a loop: a tqdm bar on a terminal, a plain line every ``interval_s`` seconds otherwise.

    A drop-in for the part of tqdm the stages use: ``with Progress(total=...) as bar: bar.update(n)``, or
    iterate over ``Progress(iterable, ...)``. When ``stream`` is not a terminal (a log file, a pipe, CI) it writes
    ``desc: done/total unit (percent), rate, elapsed, ETA`` lines, at most one per ``interval_s`` and one at
    the end, instead of a carriage-return update per refresh.

    Args:
        iterable: items to iterate over (optional; ``total`` defaults to its length).
        total: the number of units expected.
        desc: the prefix of each line (the stage: ``"infer"``, ``"ingest"``).
        unit: what is counted (``"windows"``, ``"trace"``).
        disable: no output at all (``--quiet``).
        interval_s: seconds between two plain lines (0: a line per update).
        stream: where to write (default ``sys.stderr``).
        **tqdm_options: passed to tqdm on a terminal.
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        disable: bool = False,
        interval_s: float = 30.0,
        stream=None,
        **tqdm_options: Any,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit, self.disable = total, desc, unit, disable
        self.interval_s = interval_s
        self.stream = stream if stream is not None else sys.stderr
        self.n = 0
        self.started = self.last = time.monotonic()
        self.bar = None
        self._reported = 0
        if not disable and _is_terminal(self.stream):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, **tqdm_options)

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None, "Progress(iterable, ...) to iterate"
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def update(self, count: float = 1) -> None:
        self.n += count
        if self.bar is not None:
            self.bar.update(count)
        elif not self.disable and time.monotonic() - self.last >= self.interval_s:
            self._report()

    def set_postfix_str(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif not self.disable and self.n and self._reported != self.n:
            self._report()
        self.disable = True

    def _report(self) -> None:
        now = time.monotonic()
        self.last, self._reported = now, self.n
        elapsed = now - self.started
        rate = self.n / elapsed if elapsed > 0 else 0.0
        done = f"{self.n:g}"
        if self.total:
            done += f"/{self.total:g} {self.unit} ({100 * self.n / self.total:.0f}%)"
            eta = f", ETA {(self.total - self.n) / rate:.0f} s" if rate > 0 and self.n < self.total else ""
        else:
            done, eta = f"{done} {self.unit}", ""
        prefix = f"{self.desc}: " if self.desc else ""
        print(f"{prefix}{done}, {rate:.3g} {self.unit}/s, {elapsed:.0f} s{eta}", file=self.stream, flush=True)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


__all__ = ["Progress"]
