"""Running a stage's tasks on a Dask cluster: the ``--scheduler`` option and the glue every stage shares.

``data_prep.synthesize``, ``data_prep.ingest`` and ``pipeline.infer`` take ``--scheduler ADDRESS``
(a running ``dask scheduler``, ``tcp://host:8786``; the address a ``dask-jobqueue`` or ``dask-kubernetes``
cluster gives) or ``--scheduler local:N`` (a ``distributed.LocalCluster`` of N single-threaded worker
processes on this machine). Without the option a stage runs in its own process, as before. What the stages
share lives here:

* ``add_scheduler_argument`` / ``parse_scheduler``: the option and its checks;
* ``connect``: a ``distributed.Client`` for the option, with one line saying where the workers are and where
  the dashboard is, and a one-line ``UserError`` when the scheduler cannot be reached;
* ``ordered_results``: maps a function over items on the workers with at most ``max_in_flight`` tasks
  submitted and not yet consumed (backpressure: results wait on the workers, not on the client, and the
  client holds one at a time), yields the results in the items' order (so a single writer on the client
  writes them as the in-process path would), retries tasks that fail unexpectedly (``retries``; a worker that
  dies has its tasks rescheduled by the scheduler, and results it held recomputed), and reports expected
  errors (bad input: ``UserError``, ...) at once, without retrying them;
* the warnings and errors a task logs on its worker are logged again on the client (the worker's own log
  is on another machine), so a repair note reads the same as in-process.

(``pipeline.infer.cluster`` takes its results as they complete rather than in order, since each window is
its own file, with the same window of tasks in flight, ``run_task`` and ``relay_records``.)

Dask is an optional dependency (``pip install 'seisinvert[dask]'``): it is imported only when a scheduler is
used, and a user without it gets one line naming the extra.

Layering: part of ``core``, the bottom layer (standard library only at import time; ``dask.distributed``
lazily), so every stage may use it.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import itertools
import logging
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from core.errors import EXPECTED_ERRORS, UserError

logger = logging.getLogger(__name__)

#: What a user without Dask is told to install.
DASK_EXTRA = "pip install 'seisinvert[dask]'"
#: Tasks retried after an unexpected failure (an I/O hiccup on a worker); expected errors are not retried.
DEFAULT_RETRIES = 2

_LOCAL = re.compile(r"^local:(\d+)$")
_ADDRESS = re.compile(r"^((tcp|tls|ucx|ws|wss|inproc)://)?[^\s:/]+(:\d+)?$")


@dataclass(frozen=True)
class SchedulerSpec:
    """Where to run: ``address`` of a running scheduler, or ``local_workers`` for a ``LocalCluster``."""

    address: str | None = None
    local_workers: int | None = None

    def __str__(self) -> str:
        return self.address if self.address is not None else f"local:{self.local_workers}"


def parse_scheduler(text: str) -> SchedulerSpec:
    """Parses ``--scheduler``: ``local:N`` (N >= 1) or a scheduler address (``tcp://host:port``, ``host:port``)."""
    text = text.strip()
    local = _LOCAL.match(text)
    if local:
        workers = int(local.group(1))
        if workers < 1:
            raise UserError(f"--scheduler local:N needs N >= 1 worker. Received: {text!r}")
        return SchedulerSpec(local_workers=workers)
    if text.startswith("local"):
        raise UserError(
            f"--scheduler local:N takes a whole number of workers, e.g. local:4. Received: {text!r}"
        )
    if not _ADDRESS.match(text):
        raise UserError(
            "--scheduler takes a scheduler address (tcp://host:8786, as printed by `dask scheduler` or a "
            f"dask-jobqueue cluster's scheduler_address) or local:N. Received: {text!r}"
        )
    return SchedulerSpec(address=text)


def add_scheduler_argument(parser: Any) -> None:
    """Adds ``--scheduler ADDRESS|local:N`` to a stage's parser (see the module docstring)."""
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS|local:N",
        help=(
            "Run the work on a Dask cluster: the address of a running scheduler (tcp://host:8786; SLURM, "
            "Kubernetes: docs/scaling.md) or local:N for N single-threaded worker processes on this machine. "
            f"Outputs are the same as without it. Needs Dask ({DASK_EXTRA})."
        ),
    )


def require_distributed():
    """The ``distributed`` module, or a ``UserError`` naming the extra that installs it."""
    try:
        import distributed
    except ImportError:
        raise UserError(
            f"--scheduler needs Dask's distributed scheduler, which is not installed: {DASK_EXTRA}"
        ) from None
    return distributed


@contextlib.contextmanager
def connect(
    scheduler: str | SchedulerSpec,
    *,
    timeout_s: float | None = None,
    announce: bool = True,
    stream=None,
) -> Iterator[Any]:
    """A ``distributed.Client`` for ``--scheduler``, closed on exit (with its ``LocalCluster`` for ``local:N``).

    Args:
        scheduler: the option's text or its parsed form.
        timeout_s: how long to try to reach the scheduler; None = Dask's ``distributed.comm.timeouts.connect``
            (30 s unless configured).
        announce: print one line: the workers, their threads, the scheduler and the dashboard.
        stream: where to print it (default ``sys.stderr``).

    Raises:
        UserError: Dask is not installed, or the scheduler cannot be reached (one line: the address, the
            reason, what to do).
    """
    spec = parse_scheduler(scheduler) if isinstance(scheduler, str) else scheduler
    distributed = require_distributed()
    import dask

    stream = stream if stream is not None else sys.stderr
    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_dask_logging())
        if spec.local_workers is not None:
            # Spawned (not forked) worker processes: a fork of a client that has started TensorFlow's or
            # JAX's thread pools can hang; one thread each, as the engine uses one core per task.
            stack.enter_context(dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}))
            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=spec.local_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                )
            )
            client = stack.enter_context(distributed.Client(cluster))
        else:
            timeout = (
                timeout_s if timeout_s is not None else dask.config.get("distributed.comm.timeouts.connect")
            )
            try:
                client = stack.enter_context(distributed.Client(spec.address, timeout=timeout))
            except (OSError, TimeoutError, ValueError) as error:
                reason = " ".join(str(error).split()) or type(error).__name__
                raise UserError(
                    f"cannot reach the Dask scheduler at {spec.address} ({reason}): check that it is running "
                    "(`dask scheduler`, or your cluster's scheduler_address) and that this machine can reach "
                    "that host and port, or use --scheduler local:N."
                ) from None
        if announce:
            print(describe_cluster(client), file=stream, flush=True)
        yield client


@contextlib.contextmanager
def _quiet_dask_logging() -> Iterator[None]:
    """Dask's INFO lines (workers starting, a LocalCluster's workers stopped at the end) off the terminal,
    unless the command runs with ``--debug``; its warnings (a worker lost, restarted) stay."""
    loggers = [logging.getLogger(name) for name in ("distributed", "tornado")]
    saved = [each.level for each in loggers]
    nanny = logging.getLogger("distributed.nanny")
    quiet = not logging.getLogger("core").isEnabledFor(logging.DEBUG)
    if quiet:
        for each in loggers:
            each.setLevel(logging.WARNING)
        nanny.addFilter(_drop_slow_exit)
    try:
        yield
    finally:
        for each, level in zip(loggers, saved, strict=True):
            each.setLevel(level)
        nanny.removeFilter(_drop_slow_exit)


def _drop_slow_exit(record: logging.LogRecord) -> bool:
    # A LocalCluster's workers that take more than a few seconds to exit (TensorFlow's teardown on a busy
    # machine) are killed by their nanny, with a warning each: the work is done by then.
    return "still alive after" not in record.getMessage()


def describe_cluster(client: Any) -> str:
    """One line: ``dask: N worker(s), T thread(s), scheduler ADDRESS, dashboard URL``."""
    info = client.scheduler_info()
    workers = info.get("workers", {})
    threads = sum(int(worker.get("nthreads", 0)) for worker in workers.values())
    services = info.get("services", {})
    local = getattr(client.cluster, "scheduler_address", None) is not None
    if "dashboard" not in services or (local and importlib.util.find_spec("bokeh") is None):
        dashboard = "none (pip install 'bokeh>=3.1' for the Dask dashboard)"
    else:
        dashboard = client.dashboard_link
    return (
        f"dask: {len(workers)} worker(s), {threads} thread(s), scheduler {info.get('address', '?')}, "
        f"dashboard {dashboard}"
    )


def total_threads(client: Any) -> int:
    """Worker threads in the cluster now (at least 1, for a cluster whose workers are still starting)."""
    workers = client.scheduler_info().get("workers", {})
    return max(1, sum(int(worker.get("nthreads", 0)) for worker in workers.values()))


@dataclass
class TaskOutcome:
    """What a task sends back: its value, or the expected error it raised, and what it logged."""

    value: Any = None
    error: BaseException | None = None
    records: list[logging.LogRecord] | None = None


class _Capture(logging.Handler):
    """Collects the records this thread logs (a worker may run other tasks on other threads)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            # Formatted here: the arguments may not survive pickling.
            record.msg, record.args = record.getMessage(), None
            record.exc_info = record.exc_text = None
            self.records.append(record)


def run_task(
    function: Callable[[Any], Any], item: Any, expected: tuple[type[BaseException], ...]
) -> TaskOutcome:
    """Runs ``function(item)`` on a worker: expected errors are returned (not retried), warnings captured."""
    capture = _Capture()
    root = logging.getLogger()
    root.addHandler(capture)
    try:
        return TaskOutcome(value=function(item), records=capture.records)
    except expected as error:
        return TaskOutcome(error=error, records=capture.records)
    finally:
        root.removeHandler(capture)


def ordered_results(
    client: Any,
    function: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    name: str,
    max_in_flight: int | None = None,
    retries: int = DEFAULT_RETRIES,
    expected: tuple[type[BaseException], ...] = EXPECTED_ERRORS,
    on_result: Callable[[Any, Any], None] | None = None,
) -> Iterator[Any]:
    """Yields ``function(item)`` for each item, computed on the workers, in the items' order.

    At most ``max_in_flight`` tasks are submitted and not yet consumed (default: twice the cluster's
    threads): the next is submitted when the consumer takes a result, so a slow writer holds the cluster
    back instead of piling results up. Finished results stay on the workers until their turn, and the
    client holds one at a time.

    Args:
        client: a ``distributed.Client`` (``connect``).
        function: a module-level function (workers import it by name) of one picklable item.
        items: the work, in output order.
        name: the tasks' key prefix (shown on the dashboard).
        max_in_flight: the window.
        retries: re-runs of a task that raised an unexpected exception (a worker that dies does not count:
            the scheduler reschedules its tasks, up to ``distributed.scheduler.allowed-failures`` times).
        expected: exception types that are the user's input, not bad luck: raised on the client at once,
            not retried.
        on_result: called with ``(item, result)`` before each result is yielded (progress).

    Raises:
        The first expected error a task raised; or, after ``retries``, its unexpected one (the remaining
        tasks are cancelled either way).
    """
    window = max(1, max_in_flight if max_in_flight is not None else 2 * total_threads(client))
    token = uuid.uuid4().hex[:8]
    counter = itertools.count()
    work = iter(items)
    pending: collections.deque[tuple[Any, Any]] = collections.deque()

    def submit_next() -> bool:
        for item in work:
            future = client.submit(
                run_task,
                function,
                item,
                expected,
                key=f"{name}-{next(counter)}-{token}",
                retries=retries,
                pure=False,
            )
            pending.append((item, future))
            return True
        return False

    try:
        while len(pending) < window and submit_next():
            pass
        while pending:
            item, future = pending.popleft()
            outcome: TaskOutcome = future.result()
            future.release()
            relay_records(outcome.records)
            if outcome.error is not None:
                raise outcome.error
            submit_next()  # before the consumer works on this result: the workers stay busy meanwhile
            if on_result is not None:
                on_result(item, outcome.value)
            yield outcome.value
    finally:
        if pending:
            client.cancel([future for _, future in pending])


def relay_records(records: Iterable[logging.LogRecord] | None) -> None:
    """Logs a task's captured records again on the client, where the user reads the stage's output."""
    for record in records or ():
        target = logging.getLogger(record.name)
        if target.isEnabledFor(record.levelno):
            target.handle(record)


__all__ = [
    "DASK_EXTRA",
    "SchedulerSpec",
    "TaskOutcome",
    "add_scheduler_argument",
    "connect",
    "describe_cluster",
    "ordered_results",
    "parse_scheduler",
    "relay_records",
    "require_distributed",
    "run_task",
    "total_threads",
]
