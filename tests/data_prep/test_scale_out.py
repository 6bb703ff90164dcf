"""Synthesis and ingest on a Dask cluster (``--scheduler``, issue 25): the same outputs as in-process, a worker
killed mid-run losing nothing, one writer.

Small on purpose (the ``configs/data/small.yaml`` survey, a few models, clusters of 2 single-threaded worker
processes): what is checked is identity with the in-process path, byte for byte or array for array.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from core.config import CONFIG_DIR, load_config
from data_prep import schema
from data_prep.ingest import IngestConfig, ingest
from data_prep.ingest import main as ingest_main
from data_prep.synthesize import SynthesizeConfig, main, synthesize
from tests.data_prep.segy_fixtures import (
    layered_velocity,
    tiny_geometry,
    write_fixture,
    write_synthetic_folder,
)

distributed = pytest.importorskip("distributed")

from tests.conftest import local_dask_client  # noqa: E402

SMALL = CONFIG_DIR / "data" / "small.yaml"
QUIET = IngestConfig(progress=False)


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def _assert_same_files(expected: Path, received: Path) -> None:
    want, got = _files(expected), _files(received)
    assert sorted(got) == sorted(want), f"the same files expected: {sorted(want)}, got {sorted(got)}"
    different = [name for name in want if want[name] != got[name]]
    assert not different, f"these files differ from the in-process run's bytes: {different}"


@pytest.fixture(scope="module")
def client():
    """2 worker processes of 1 thread each (``tests.conftest.local_dask_client``)."""
    with local_dask_client() as client:
        yield client


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """4 small models in chunks of 1, simulated in this process."""
    out = tmp_path_factory.mktemp("in-process")
    config = load_config(SynthesizeConfig, files=[SMALL], values={"count": 4, "chunk_size": 1, "seed": 3})
    synthesize(config, out, progress=False)
    return out


def test_cli_with_a_local_cluster_writes_the_in_process_bytes(tmp_path: Path, capsys):
    """The issue's done-when: --scheduler local:2 is byte-identical to in-process (same seed)."""
    arguments = ["--config", str(SMALL), "--count", "4", "--seed", "5", "--quiet"]
    assert main([*arguments, "--out", str(tmp_path / "local")]) == 0
    assert main([*arguments, "--out", str(tmp_path / "dask"), "--scheduler", "local:2"]) == 0
    _assert_same_files(tmp_path / "local", tmp_path / "dask")


def test_a_worker_killed_mid_run_loses_nothing(client, reference: Path, tmp_path: Path):
    """One of the 2 workers is killed (SIGKILL) while it simulates a chunk: its tasks are rerun elsewhere,
    and the folder is complete and identical to the in-process one."""
    config = load_config(SynthesizeConfig, files=[SMALL], values={"count": 4, "chunk_size": 1, "seed": 3})
    pids = client.run(os.getpid)
    killed: list[str] = []
    done = threading.Event()

    def kill_a_busy_worker() -> None:
        while not done.is_set():
            busy = [address for address, keys in client.processing().items() if keys]
            if busy and busy[0] in pids:
                time.sleep(0.5)  # inside the task, past its start
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
    killer.start()
    try:
        synthesize(config, tmp_path, progress=False, client=client)
    finally:
        done.set()
        killer.join(timeout=10)
    assert killed, "a worker must have been killed while it held a task (the run was too quick to catch)"
    assert killed[0] not in client.scheduler_info()["workers"], "the killed worker must have left the cluster"
    _assert_same_files(reference, tmp_path)
    assert not list(tmp_path.glob(".*")), "no temporary file may be left behind"


def _read_all(path: Path) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as h5:
        h5.visititems(
            lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None
        )
        provenance = schema.read_provenance(h5)
    arrays["provenance sources"] = np.array(
        [(source["path"], source["sha256"]) for source in provenance["sources"]]
    )
    return arrays


def _assert_same_dataset(expected: Path, received: Path) -> None:
    want, got = _read_all(expected), _read_all(received)
    assert sorted(got) == sorted(want), f"the same datasets expected: {sorted(want)}, got {sorted(got)}"
    different = [name for name in want if not np.array_equal(want[name], got[name])]
    assert not different, f"these arrays differ from the in-process dataset's: {different}"
    with h5py.File(expected, "r") as a, h5py.File(received, "r") as b:
        assert schema.read_splits(a).keys() == schema.read_splits(b).keys()
        for name, indices in schema.read_splits(a).items():
            assert np.array_equal(indices, schema.read_splits(b)[name]), f"the {name} split differs"


def test_ingest_on_workers_writes_the_in_process_dataset(client, tmp_path: Path):
    """A synthesize folder and a loose SEG-Y file with .npy velocity models, scanned and read on the workers
    a chunk of samples at a time (chunks of about 2 samples: several in flight), then appended to."""
    geometry = tiny_geometry(num_samples=32, num_shots=3, num_receivers=5)
    rng = np.random.default_rng(0)
    folder, _, _ = write_synthetic_folder(
        tmp_path / "survey", geometry, 7, 2, seismic=rng.standard_normal((7, 3, 32, 5)).astype(np.float32)
    )
    loose = tmp_path / "loose"
    loose.mkdir()
    write_fixture(loose / "shots.segy", rng.standard_normal((3, 3, 32, 5)).astype(np.float32), geometry)
    np.save(loose / "velocity.npy", layered_velocity(3, geometry)[:, None])
    sample_bytes = 4 * 3 * 32 * 5
    config = IngestConfig(progress=False, block_bytes=2 * sample_bytes)

    ingest([folder], tmp_path / "local.h5", config)
    ingest([folder], tmp_path / "dask.h5", config, client=client)
    _assert_same_dataset(tmp_path / "local.h5", tmp_path / "dask.h5")

    npy_config = IngestConfig(progress=False, block_bytes=2 * sample_bytes, grid_spacing_m=10.0)
    loose_inputs = [loose / "shots.segy", loose / "velocity.npy"]
    ingest(loose_inputs, tmp_path / "local.h5", npy_config, append=True)
    ingest(loose_inputs, tmp_path / "dask.h5", npy_config, append=True, client=client)
    _assert_same_dataset(tmp_path / "local.h5", tmp_path / "dask.h5")


def test_ingest_cli_reports_a_bad_input_read_on_a_worker_in_one_line(tmp_path: Path, capsys):
    """A file that is not SEG-Y, scanned on a worker of --scheduler local:1: the in-process error line."""
    (tmp_path / "broken.segy").write_bytes(b"not a SEG-Y file" * 300)
    status = ingest_main(
        [
            str(tmp_path / "broken.segy"),
            "--out",
            str(tmp_path / "x.h5"),
            "--set",
            "require_velocity=false",
            "--scheduler",
            "local:1",
            "--quiet",
        ]
    )
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2, f"exit status 2 (a user error) expected, got {status}: {error}"
    assert error[-1].startswith("error: ") and "broken.segy" in error[-1], (
        f"one error line naming the file expected: {error}"
    )
    assert not (tmp_path / "x.h5").exists()


def test_an_unstable_engine_setting_is_reported_from_the_worker_without_retries(client, tmp_path: Path):
    """The engine's CFL check fails on the worker: the in-process ValueError, at once, and no chunk file."""
    config = load_config(
        SynthesizeConfig, files=[SMALL], values={"count": 2}, overrides=["geometry.grid_spacing_m=1.0"]
    )
    started = time.monotonic()
    with pytest.raises(ValueError, match="CFL"):
        synthesize(config, tmp_path, progress=False, client=client)
    assert not list(tmp_path.glob("*.segy")), "no chunk file may be written for a failed chunk"
    assert time.monotonic() - started < 60, "an expected error must not wait for retries"


def test_cli_with_an_unreachable_scheduler_is_one_error_line(tmp_path: Path, capsys):
    import socket

    import dask

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: nothing listens there
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        status = main(
            ["--config", str(SMALL), "--count", "1", "--out", str(tmp_path / "out"), "--quiet"]
            + ["--scheduler", f"tcp://127.0.0.1:{port}"]
        )
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2, f"exit status 2 (a user error) expected, got {status}: {error}"
    assert len(error) == 1 and error[0].startswith(
        "error: cannot reach the Dask scheduler at tcp://127.0.0.1"
    ), f"one error line expected: {error}"
    assert not (tmp_path / "out").exists(), "nothing may be written when the scheduler cannot be reached"


def test_max_threads_changes_the_threads_not_the_bytes():
    """A worker runs the client's cut of a batch into engine calls on its one thread: the same bytes."""
    from data_prep.forward import EngineConfig, simulate

    config = load_config(SynthesizeConfig, files=[SMALL])
    velocity = np.full((2, *config.geometry.grid_shape), 2000.0, dtype=np.float32)
    velocity[:, 16:] = 3000.0
    engine = EngineConfig(max_concurrent_calls=2)
    both = np.asarray(simulate(velocity, config.geometry, engine))
    one = np.asarray(simulate(velocity, config.geometry, engine, max_threads=1))
    assert np.array_equal(both, one), "capping the threads must not change a single bit of the traces"
