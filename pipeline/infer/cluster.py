"""Survey inference on a Dask cluster (``python -m pipeline.infer ... --scheduler ADDRESS|local:N``).

What runs where:

* **Once per worker: the model.** ``bundle_on_workers`` registers a ``distributed.WorkerPlugin`` that loads
  the bundle when a worker starts using it (every worker of the cluster, and any worker that joins later: one
  restarted after a crash included) and keeps it for every task and every line of the command; it is
  unregistered (the model released) when the command ends. A bundle folder travels as its two files'
  bytes (``model.keras``, ``bundle.json``), so the workers need no access to the client's disk or MLflow
  store; an in-memory bundle (a test's oracle, a baseline) travels pickled.
* **Once per line: the line.** The ``LineJob`` (survey line geometry, window plan, input correction, calibration,
  engine set-up, truth) is one task's value, fetched once by each worker; the batches' tasks depend on it. The workers read the survey's
  SEG-Y files themselves (the same paths: a shared file system).
* **Per task: a batch of windows** (``batch_size``, the cut of the in-process path, so each task runs exactly
  what the in-process loop runs): ``pipeline.infer.processing.predict_batch``.
* **Here, in the command's process: everything written.** At most ``max_in_flight`` batches (default twice
  the workers' threads) are submitted and not yet written; results are taken as they complete
  (``distributed.as_completed``), each window's file is saved at once (``OUT/.work/windows``, atomic: what
  ``--resume`` skips) and the next batch is submitted. Memory here is one batch's results whatever the line's
  length; the stitcher then streams the window files into ``section.h5`` exactly as after an in-process run.

Faults: a worker that dies has its tasks rerun elsewhere by the scheduler (up to
``distributed.scheduler.allowed-failures``); a task that raises an unexpected error is retried
(``core.distributed.DEFAULT_RETRIES``); an input error (``UserError``, ...) is raised here at once. Windows
written before an interruption (Ctrl-C, a lost client) are kept, and ``--resume`` predicts only the rest.

Same numbers: the engine's cut of a batch into concurrent calls (which the last bits of a simulation depend
on) is the client's, sent with the line, so workers on machines with other core counts simulate the QC as
this machine would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin, as_completed, get_worker

from core.distributed import DEFAULT_RETRIES, TaskOutcome, relay_records, run_task, total_threads
from core.errors import EXPECTED_ERRORS
from core.progress import Progress
from pipeline.bundle import INFO_FILE, MODEL_FILE
from pipeline.infer.model import model_identity
from pipeline.infer.processing import LineJob, batches, predict_batch, write_window

logger = logging.getLogger(__name__)

#: Registered bundles per client: plugin name -> how many ``bundle_on_workers`` blocks use it now.
_REGISTERED: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()


class BundlePlugin(WorkerPlugin):
    """Loads a model bundle once per worker and keeps it for the tasks (``get_worker().plugins[name].bundle``).

    Attributes:
        name: the plugin's name (one per model identity: the same model is never loaded twice).
        files: ``{file name: bytes}`` of a bundle folder, or None.
        bundle: the in-memory bundle (pickled with the plugin) or, on a worker, the loaded one.
        loads: how many times this worker loaded the bundle (1: what the tests check).
        tasks: how many batches this worker predicted with it.
    """

    def __init__(self, name: str, files: dict[str, bytes] | None, bundle: Any = None) -> None:
        self.name = name
        self.files = files
        self.bundle = bundle
        self.loads = 0
        self.tasks = 0
        self.lock = None

    def setup(self, worker: Any) -> None:
        if self.files is not None:
            from pipeline.bundle import load_bundle

            folder = Path(tempfile.mkdtemp(prefix="seisinvert-worker-bundle-"))
            try:
                for name, content in self.files.items():
                    (folder / name).write_bytes(content)
                self.bundle = load_bundle(folder)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            self.files = None  # the model is in memory now: the bytes are not needed twice
        self.lock = threading.Lock()  # Keras' predict from several threads of one worker, one at a time
        self.loads += 1

    def teardown(self, worker: Any) -> None:
        self.bundle = None


def _plugin_for(bundle: Any, name: str) -> BundlePlugin:
    path = getattr(bundle, "path", None)
    if path is not None and (Path(path) / MODEL_FILE).is_file():
        files = {file: (Path(path) / file).read_bytes() for file in (MODEL_FILE, INFO_FILE)}
        return BundlePlugin(name, files)
    return BundlePlugin(name, None, bundle)


@contextlib.contextmanager
def bundle_on_workers(client: Any, bundle: Any, model_uri: str) -> Iterator[str]:
    """Loads ``bundle`` on every worker of ``client`` (once per worker) for the block; yields the plugin name.

    Nested blocks with the same model (``infer_lines`` around ``infer``) share one registration.
    """
    name = f"seisinvert-bundle-{model_identity(bundle, model_uri)}"
    users = _REGISTERED.setdefault(client, {})
    if not users.get(name):
        started = time.perf_counter()
        client.register_plugin(_plugin_for(bundle, name), name=name)
        logger.info("Model loaded on the workers in %.1f s.", time.perf_counter() - started)
    users[name] = users.get(name, 0) + 1
    try:
        yield name
    finally:
        users[name] -= 1
        if not users[name]:
            del users[name]
            with contextlib.suppress(Exception):  # a cluster already gone has nothing left to release
                client.unregister_worker_plugin(name)


class _SerialPredict:
    """The worker's bundle with ``predict``/``predict_windows`` taken one thread at a time."""

    def __init__(self, bundle: Any, lock: threading.Lock) -> None:
        self._bundle, self._lock = bundle, lock
        if hasattr(bundle, "predict_windows"):
            self.predict_windows = self._predict_windows

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bundle, name)

    def predict(self, *args, **kwargs):
        with self._lock:
            return self._bundle.predict(*args, **kwargs)

    def _predict_windows(self, *args, **kwargs):
        with self._lock:
            return self._bundle.predict_windows(*args, **kwargs)


def _batch_task(plugin_name: str, job: LineJob, batch: list[int], expected: tuple) -> TaskOutcome:
    """Runs on a worker: one batch of windows with the worker's model (``predict_batch``)."""
    plugin = get_worker().plugins[plugin_name]
    plugin.tasks += 1
    bundle = _SerialPredict(plugin.bundle, plugin.lock)

    def run(windows: list[int]) -> tuple[list, dict[str, float]]:
        timings: dict[str, float] = {}
        return predict_batch(bundle, job, windows, timings), timings

    return run_task(run, batch, expected)


def pinned_engine(job: LineJob) -> LineJob:
    """The job with the engine's cut into concurrent calls fixed to this machine's (see the module docstring)."""
    if job.setup is None:
        return job
    from data_prep.forward import resolved_concurrent_calls

    config = dataclasses.replace(
        job.setup.config, max_concurrent_calls=resolved_concurrent_calls(job.setup.config)
    )
    return dataclasses.replace(job, setup=dataclasses.replace(job.setup, config=config))


def _line_job(job: LineJob) -> LineJob:
    return job


def process_on_cluster(
    client: Any,
    todo: list[int],
    bundle: Any,
    model_uri: str,
    job: LineJob,
    work: Path,
    timings: dict[str, float],
    show_progress: bool,
    max_in_flight: int | None = None,
) -> None:
    """Predicts the windows ``todo`` on the workers of ``client``, saving each window's file here as it comes.

    Args:
        client: a ``distributed.Client``.
        todo: the windows to predict (the finished ones are already left out: ``--resume``).
        bundle, model_uri: the resolved model and its name (its identity names the worker plugin).
        job: the line's ``LineJob`` (``prepare_line``).
        work: the run's work folder.
        timings: seconds per step, summed over the workers' tasks (read, predict, qc, refine), and here
            (write, cluster: the wall time of the whole loop).
        show_progress: print progress lines as batches complete.
        max_in_flight: batches submitted and not yet written (default: twice the workers' threads).

    Raises:
        The first input error a task raised, at once; an unexpected error after its retries; a
        ``distributed`` error when a batch's workers died more often than the scheduler allows.
    """
    started = time.perf_counter()
    (work / "windows").mkdir(parents=True, exist_ok=True)
    reporter = Progress(
        total=len(todo),
        desc="infer",
        unit="windows",
        disable=not show_progress,
        interval_s=job.config.progress_interval_s,
    )
    token = uuid.uuid4().hex[:8]
    with bundle_on_workers(client, bundle, model_uri) as plugin_name:
        # A task whose value is the job, rather than scattered data: the scheduler can recompute it if every
        # worker holding it dies. Each worker fetches it once and its tasks share it.
        shared = client.submit(_line_job, pinned_engine(job), key=f"infer-line-{token}", pure=False)
        work_left = iter(enumerate(batches(todo, job.config.batch_size)))
        window = max(1, max_in_flight or 2 * total_threads(client))
        pending = as_completed()
        in_flight: set[Any] = set()

        def submit_next() -> None:
            for number, batch in work_left:
                future = client.submit(
                    _batch_task,
                    plugin_name,
                    shared,
                    batch,
                    EXPECTED_ERRORS,
                    key=f"infer-windows-{batch[0]}-{number}-{token}",
                    retries=DEFAULT_RETRIES,
                    pure=False,
                )
                in_flight.add(future)
                pending.add(future)
                return

        try:
            for _ in range(window):
                submit_next()
            for future in pending:
                outcome: TaskOutcome = future.result()
                in_flight.discard(future)
                future.release()
                relay_records(outcome.records)
                if outcome.error is not None:
                    raise outcome.error
                submit_next()  # before writing: the workers stay busy meanwhile
                outputs, task_timings = outcome.value
                tick = time.perf_counter()
                for output in outputs:
                    write_window(work, output)
                timings["write"] = timings.get("write", 0.0) + time.perf_counter() - tick
                for name, seconds in task_timings.items():
                    timings[name] = timings.get(name, 0.0) + seconds
                reporter.update(len(outputs))
        finally:
            if in_flight:
                client.cancel(list(in_flight))
            with contextlib.suppress(Exception):
                client.cancel([shared])
            reporter.close()
    timings["cluster"] = timings.get("cluster", 0.0) + time.perf_counter() - started


__all__ = ["BundlePlugin", "bundle_on_workers", "pinned_engine", "process_on_cluster"]
