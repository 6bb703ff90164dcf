"""``pipeline.infer`` on a Dask cluster (``--scheduler``, issue 25): the in-process section, the model loaded once
per worker, ``--resume``, a worker killed mid-run, several lines in one call, an unreachable scheduler.

Small on purpose: the nine-window line of ``tests/pipeline/test_infer.py`` (``line_fixtures``), batches of
one or two windows, one ``LocalCluster`` of 2 single-threaded worker processes for the module (processes:
one is killed with SIGKILL). The real prediction path is a small untrained U-Net saved as a bundle folder
(``line_fixtures.keras_bundle``), with the physics QC on, so every number of the in-process run is compared;
``OracleBundle`` (the true velocity, pickled to the workers) checks resume.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import numpy as np
import pytest

from core.config import from_dict
from pipeline.infer import InferConfig, infer, infer_lines, main
from pipeline.infer.cluster import bundle_on_workers
from pipeline.section import read_section
from tests.pipeline import line_fixtures as F

distributed = pytest.importorskip("distributed")

from tests.conftest import local_dask_client  # noqa: E402

#: The cluster's section must equal the in-process one exactly. Measured on this 2-core machine: 0 difference
#: (velocity, edges, QC misfit, calibration): each task runs the in-process batch (same windows, same code) and
#: the engine's cut of a batch into concurrent calls is the client's (``pinned_engine``), so the same floats come
#: out. Workers on machines with another CPU could differ in the last float32 bits (Keras' kernels); on one
#: machine there is nothing to tolerate.


def quiet(**values) -> InferConfig:
    values.setdefault("outputs", {"png": False, "segy": False})
    return from_dict(InferConfig, values)


@pytest.fixture(scope="module")
def line():
    return F.simulate_line()


@pytest.fixture(scope="module")
def survey(tmp_path_factory, line):
    folder = tmp_path_factory.mktemp("survey")
    return {"line": F.write_line(folder / "line.sgy", line), "folder": folder}


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory):
    return F.keras_bundle(tmp_path_factory.mktemp("bundle") / "unet")


@pytest.fixture(scope="module")
def client():
    """2 worker processes of 1 thread each (``tests.conftest.local_dask_client``)."""
    with local_dask_client() as client:
        yield client


@pytest.fixture(scope="module")
def reference(tmp_path_factory, survey, bundle_path):
    """The in-process section of the U-Net bundle, QC on, batches of 2 windows."""
    out = tmp_path_factory.mktemp("in-process") / "run"
    infer([survey["line"]], str(bundle_path), out, quiet(batch_size=2), progress=False)
    return read_section(out / "section.h5")


def assert_same_section(expected: dict, received: dict) -> None:
    for name in ("velocity_mps", "edges", "coverage_weight"):
        np.testing.assert_array_equal(
            received[name], expected[name], err_msg=f"{name}: the in-process values expected"
        )
    for name in ("data_misfit", "source_scale", "calibration_factor", "amplitude_statistic", "input_delay_s"):
        if name in expected["windows"]:
            np.testing.assert_array_equal(
                received["windows"][name],
                expected["windows"][name],
                err_msg=f"windows/{name}: the in-process values",
            )
    assert list(received["windows"]["flags"]) == list(expected["windows"]["flags"])


# First in the module, before the cluster fixture starts: a nanny of that cluster lives in this process, and
# its log lines ("Restarting worker", after the killed-worker test) would land in this test's stderr.
def test_an_unreachable_scheduler_is_one_error_line_naming_what_to_do(survey, bundle_path, tmp_path, capsys):
    import dask

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: nothing listens there
    arguments = ["--model", str(bundle_path), "--input", str(survey["line"]), "--out", str(tmp_path / "out")]
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        status = main([*arguments, "--quiet", "--scheduler", f"tcp://127.0.0.1:{port}"])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2, f"exit status 2 (a user error) expected, got {status}: {error}"
    assert len(error) == 1 and error[0].startswith(
        f"error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"
    ), f"one error line expected: {error}"
    assert "--scheduler local:N" in error[0] and "dask scheduler" in error[0], (
        f"it must say what to do: {error}"
    )
    assert not (tmp_path / "out").exists(), "nothing may be written when the scheduler cannot be reached"


def test_cluster_gives_the_in_process_section_with_the_model_loaded_once_per_worker(
    client, survey, bundle_path, reference, tmp_path
):
    from pipeline.bundle import load_bundle

    bundle = load_bundle(bundle_path)
    uri = str(bundle_path)
    with bundle_on_workers(client, bundle, uri) as plugin:  # held open to read the workers' counters
        result = infer(
            [survey["line"]], bundle, tmp_path / "run", quiet(batch_size=2), client=client, model_uri=uri
        )
        counters = client.run(
            lambda dask_worker, name=plugin: (
                dask_worker.plugins[name].loads,
                dask_worker.plugins[name].tasks,
            )
        )
    assert result.merged and result.processed == 9
    loads = [each[0] for each in counters.values()]
    tasks = sum(each[1] for each in counters.values())
    assert loads == [1, 1], f"the model must be loaded once on each of the 2 workers, got {counters}"
    assert tasks == 5, f"9 windows in batches of 2 are 5 tasks, got {tasks} ({counters})"
    assert_same_section(reference, read_section(tmp_path / "run" / "section.h5"))
    assert not any(client.run(lambda dask_worker, name=plugin: name in dask_worker.plugins).values()), (
        "the model is released on the workers when the command ends"
    )


def test_resume_on_the_cluster_predicts_only_the_unfinished_windows(client, line, survey, tmp_path):
    out = tmp_path / "run"
    config = quiet(
        batch_size=2, qc={"enabled": False}, outputs={"png": False, "segy": False, "keep_window_files": True}
    )
    with pytest.raises(KeyboardInterrupt):
        infer(
            [survey["line"]],
            F.OracleBundle(line.velocity_mps, interrupt_after=4),
            out,
            config,
            progress=False,
        )
    windows = out / ".work" / "windows"
    finished = {path.name: path.stat().st_mtime_ns for path in windows.iterdir()}
    assert len(finished) == 4

    oracle = F.OracleBundle(line.velocity_mps)
    result = infer([survey["line"]], oracle, out, config, resume=True, progress=False, client=client)
    assert result.merged and result.processed == 5 and result.skipped == 4
    assert {name: windows.joinpath(name).stat().st_mtime_ns for name in finished} == finished, (
        "the windows finished before the interruption must not be computed again"
    )
    assert len(list(windows.iterdir())) == 9
    np.testing.assert_allclose(read_section(out / "section.h5")["velocity_mps"], line.velocity_mps, atol=1e-3)


def test_batches_in_flight_are_bounded_and_written_as_they_complete(
    client, line, survey, tmp_path, monkeypatch
):
    """Memory stays flat on a long line: at most twice the workers' threads batches are in flight (submitted,
    not yet taken for writing), whatever the number of windows."""
    from pipeline.infer import cluster

    live: list[int] = []
    write = cluster.write_window

    def counting_write(work, output):
        live.append(sum(str(key).startswith("infer-windows") for key in client.futures))
        write(work, output)

    monkeypatch.setattr(cluster, "write_window", counting_write)
    config = quiet(batch_size=1, qc={"enabled": False})
    result = infer(
        [survey["line"]], F.OracleBundle(line.velocity_mps), tmp_path / "run", config, client=client
    )
    assert result.processed == 9 and len(live) == 9
    # 2 workers x 1 thread x 2 = 4 in flight, plus the one being written (the next is submitted first).
    assert max(live) <= 5, f"at most 4 batches in flight besides the one being written, saw {live}"
    np.testing.assert_allclose(
        read_section(result.section_path)["velocity_mps"], line.velocity_mps, atol=1e-3
    )


def test_several_lines_in_one_command_on_the_cluster(client, line, survey, bundle_path, tmp_path, capsys):
    folder = tmp_path / "lines"
    folder.mkdir()
    F.write_line(folder / "east.sgy", line)
    F.write_line(folder / "west.sgy", line, shots=slice(0, 30))
    config = quiet(qc={"enabled": False})
    local = infer_lines(
        sorted(folder.glob("*.sgy")), str(bundle_path), tmp_path / "local", config, progress=False
    )
    assert list(local) == ["east", "west"] and local["west"].num_windows < local["east"].num_windows

    arguments = [
        "--model",
        str(bundle_path),
        "--lines",
        str(folder),
        "--out",
        str(tmp_path / "dask"),
        "--quiet",
    ]
    options = ["--set", "qc.enabled=false", "--set", "outputs.png=false", "--set", "outputs.segy=false"]
    assert main([*arguments, *options, "--scheduler", client.scheduler.address]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [text.split(":")[0] for text in printed] == ["east", "west"], printed
    for name in ("east", "west"):
        expected = read_section(tmp_path / "local" / name / "section.h5")
        received = read_section(tmp_path / "dask" / name / "section.h5")
        np.testing.assert_array_equal(received["velocity_mps"], expected["velocity_mps"], err_msg=name)


def test_a_worker_killed_mid_run_loses_nothing(client, survey, bundle_path, reference, tmp_path):
    """One of the 2 workers is killed (SIGKILL) while it predicts a batch: the scheduler reruns it elsewhere
    and the section is the in-process one. Last of the tests that use the cluster: its nanny restarts the
    killed worker (TensorFlow imported again), which the module's teardown then stops."""
    pids = client.run(os.getpid)
    killed: list[str] = []
    done = threading.Event()

    def kill_a_busy_worker() -> None:
        while not done.is_set():
            busy = [
                address
                for address, keys in client.processing().items()
                if any(str(key).startswith("infer-windows") for key in keys)
            ]
            if busy and busy[0] in pids:
                time.sleep(0.3)  # inside the task, past its start
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
    killer.start()
    try:
        result = infer(
            [survey["line"]],
            str(bundle_path),
            tmp_path / "run",
            quiet(batch_size=2),
            progress=False,
            client=client,
        )
    finally:
        done.set()
        killer.join(timeout=10)
    assert killed, "a worker must have been killed while it held a batch (the run was too quick to catch)"
    assert result.merged and result.processed == 9
    assert_same_section(reference, read_section(tmp_path / "run" / "section.h5"))
