"""``python -m pipeline.dashboard``: serve the project's MLflow store in the browser, on this machine only.

Pipeline position: after ``pipeline.train`` / ``pipeline.evaluate``, to look at runs, metrics, images and
registered models. It runs ``mlflow server`` (the same as ``mlflow ui``) on 127.0.0.1 for the sqlite store
that training writes by default (``./mlflow.db``, artifacts in ``./mlruns``)::

    python -m pipeline.dashboard                      # http://127.0.0.1:5000
    python -m pipeline.dashboard --store runs/mlflow.db --port 5001

The same line without this module: ``mlflow ui --backend-store-uri sqlite:///mlflow.db``. For a shared
tracking server (several users or machines), run ``mlflow server`` yourself and pass its URL to training
with ``--tracking-uri http://HOST:PORT``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
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
        "address; Ctrl-C stops it.",
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
    try:
        return subprocess.call(command, env=server_environment())
    except KeyboardInterrupt:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
