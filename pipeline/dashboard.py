"""``python -m pipeline.dashboard``: serve the project's MLflow store in the browser, on this machine only.

Pipeline position: after ``pipeline.train`` / ``pipeline.evaluate``, to look at runs, metrics, images and
registered models. It runs ``mlflow server`` (the same as ``mlflow ui``) on 127.0.0.1 for the sqlite store
that training writes by default (``./mlflow.db``, artifacts in ``./mlruns``)::

    python -m pipeline.dashboard                      # http://127.0.0.1:5000
    python -m pipeline.dashboard --store runs/mlflow.db --port 5001

The same line without this module: ``mlflow ui --backend-store-uri sqlite:///mlflow.db``. For a shared
tracking server (several users or machines), run ``mlflow server`` yourself and pass its URL to training
with ``--tracking-uri http://HOST:PORT``.

Stopping: ``mlflow server`` starts uvicorn (and worker) processes of its own. The server runs in a process
group of its own (``serve``); Ctrl-C, SIGTERM (``kill``, ``timeout``, a job scheduler) and SIGHUP (the terminal
closed) stop the whole group, so nothing keeps the port once the dashboard has exited.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from core.cli import add_common_arguments, make_parser, run_main
from core.errors import UserError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000


def server_command(
    store: str | Path = "mlflow.db",
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    artifacts_destination: str | Path | None = None,
    workers: int = 1,
) -> list[str]:
    """The ``mlflow server`` command line for a sqlite store file (or any backend store URI).

    Args:
        store: the sqlite file (``mlflow.db``) or a backend store URI (``sqlite:///...``, ``postgresql://...``).
        host, port: where to listen (loopback by default: nothing outside this machine can connect).
        artifacts_destination: where artifacts logged *through the server* are stored (default: ``mlruns``
            next to the store file); runs logged straight into the sqlite file keep their own ``mlruns``.
        workers: server worker processes.
    """
    text = str(store)
    if "://" in text or text.startswith("sqlite:"):
        uri = text
        folder = Path.cwd()
    else:
        path = Path(store).resolve()
        uri = f"sqlite:///{path}"
        folder = path.parent
    destination = Path(artifacts_destination) if artifacts_destination else folder / "mlruns"
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--artifacts-destination",
        str(destination.resolve()),
        "--host",
        host,
        "--port",
        str(int(port)),
        "--workers",
        str(int(workers)),
    ]


def server_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for ``mlflow server``: no telemetry, and no background job runner (MLflow 3 starts a
    job runner and several worker processes for its GenAI jobs by default; a dashboard does not need them)."""
    environment = dict(os.environ if base is None else base)
    environment.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    environment.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return environment


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "python -m pipeline.dashboard",
        "Serve the MLflow store that pipeline.train writes (default ./mlflow.db) on 127.0.0.1 and print its "
        "address; Ctrl-C (or SIGTERM, SIGHUP) stops it and every process it started.",
        examples=[
            "python -m pipeline.dashboard",
            "python -m pipeline.dashboard --store runs/mlflow.db --port 5001",
        ],
    )
    parser.add_argument("--store", default="mlflow.db", help="sqlite store file or backend store URI")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 5000)")
    add_common_arguments(parser)
    return parser


def _main(args: argparse.Namespace) -> int:
    store = str(args.store)
    if "://" not in store and not store.startswith("sqlite:") and not Path(store).is_file():
        raise UserError(
            f"No MLflow store at {Path(store).resolve()}: train a model first (python -m pipeline.train) or pass "
            "--store PATH to the mlflow.db of your runs."
        )
    command = server_command(store, args.host, args.port)
    print(f"MLflow dashboard on http://{args.host}:{args.port} (store {store}); Ctrl-C stops it.", flush=True)
    return serve(command, env=server_environment())


#: Signals that stop the dashboard and its server: Ctrl-C, ``kill``/``timeout``/schedulers, a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def serve(command: Sequence[str], env: dict[str, str] | None = None, grace_s: float = 10.0) -> int:
    """Runs a server command until it exits or a stop signal arrives; then no process of it is left.

    The server starts in a session (and so a process group) of its own, which holds every process it starts
    (``mlflow server`` → uvicorn → workers). SIGINT, SIGTERM and SIGHUP to this process send SIGTERM to that
    group, wait up to ``grace_s`` seconds for it to empty, then SIGKILL what remains. The group is stopped the
    same way when the server exits by itself (its children would otherwise keep the port).

    Returns:
        The exit status: 0 after Ctrl-C (the normal way to stop a dashboard), 128 + the signal number after
        SIGTERM or SIGHUP (the shell's convention for a process ended by a signal), else the server's status.
    """
    received: list[int] = []
    groups: list[int] = []

    def stop(signal_number: int, frame) -> None:
        received.append(signal_number)
        for group in groups:
            _signal_group(group, signal.SIGTERM)

    # Handlers first: a signal that arrives while the server starts still stops it.
    previous = {number: signal.signal(number, stop) for number in STOP_SIGNALS}
    try:
        process = subprocess.Popen(list(command), env=env, start_new_session=True)
        groups.append(process.pid)  # the leader of a new session: its process group id is its pid
        try:
            if received:
                _signal_group(process.pid, signal.SIGTERM)
            status = process.wait()
        finally:
            _stop_group(process.pid, grace_s)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=1.0)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if received:
        return 0 if received[0] == signal.SIGINT else 128 + int(received[0])
    return int(status if status >= 0 else 128 - status)


def group_members(group: int) -> list[int]:
    """The live (not zombie) processes of a process group, from ``/proc`` (empty where there is no ``/proc``)."""
    members = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after the last ")".
            fields = entry.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group and fields[0] != "Z":
                members.append(int(entry.parent.name))
    return sorted(members)


def _signal_group(group: int, signal_number: int) -> bool:
    """Sends a signal to a process group; False when the group no longer exists."""
    try:
        os.killpg(group, signal_number)
    except ProcessLookupError:
        return False
    except PermissionError:  # only zombies are left, or the id was reused by another user's group
        return False
    return True


def _stop_group(group: int, grace_s: float) -> None:
    """SIGTERM to the group, up to ``grace_s`` seconds for it to empty, then SIGKILL."""
    if not _signal_group(group, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _group_alive(group):
            return
        time.sleep(0.1)
    _signal_group(group, signal.SIGKILL)


def _group_alive(group: int) -> bool:
    if Path("/proc/self/stat").is_file():
        return bool(group_members(group))
    return _signal_group(group, 0)  # no /proc: zombies count as alive, so this may wait for the grace period


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
