"""Test-wide settings: quiet TensorFlow, no MLflow telemetry, and a helper to run code under JAX.

Keras fixes its backend at import time, so tests that exercise the JAX backend run a small script in a
subprocess with ``KERAS_BACKEND=jax`` (see ``run_with_backend``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_with_backend(code: str, backend: str = "jax", timeout: float = 600) -> dict:
    """Runs ``code`` in a fresh interpreter under ``KERAS_BACKEND=backend`` and returns its JSON result.

    The script must print one JSON object as its last line of stdout. Fails the test with the
    subprocess's stderr when it exits non-zero.
    """
    environment = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO_ROOT))
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO_ROOT,
        timeout=timeout,
    )
    if completed.returncode != 0:
        pytest.fail(f"{backend} subprocess failed (exit {completed.returncode}):\n{completed.stderr[-4000:]}")
    last_line = completed.stdout.strip().splitlines()[-1]
    return json.loads(last_line)


@pytest.fixture
def jax_runner():
    """The ``run_with_backend`` helper as a fixture; skips when JAX is not installed."""
    pytest.importorskip("jax")
    return run_with_backend


@pytest.fixture(scope="session")
def trained_flatvel(tmp_path_factory):
    """A small U-Net trained on 192 synthesized flatvel-a samples (~70 s on 2 cores), registered in a temporary
    MLflow store; shared by every test of the run that needs a trained model (``tests/pipeline/trained_model.py``).

    ``SEISINVERT_BREAK_LEARNING=zero-lr`` or ``=shuffled-labels`` breaks learning on purpose (the learning tests
    must then fail).
    """
    from tests.pipeline.trained_model import BREAK_VARIABLE, train_small_flatvel

    return train_small_flatvel(
        tmp_path_factory.mktemp("trained_flatvel"), os.environ.get(BREAK_VARIABLE) or None
    )


@contextlib.contextmanager
def local_dask_client():
    """A ``distributed.Client`` on 2 worker processes of 1 thread each, spawned (the test process has
    started TensorFlow, which a forked worker would inherit half-initialised)."""
    import dask
    import distributed

    with (
        dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client
