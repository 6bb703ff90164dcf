"""``python -m pipeline.dashboard`` leaves nothing behind: SIGTERM, SIGHUP and Ctrl-C stop the whole server.

Before (issue 23), SIGTERM ended the dashboard but its ``mlflow server`` and uvicorn children kept serving
the port. Each test starts the dashboard in a real process, signals it, and checks that every process it
started is gone and (for the real server) that the port is free again.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.dashboard import group_members
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads processes from /proc")


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, grandchildren, ...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            parents[int(entry.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _wait_until(condition, timeout_s: float, interval_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _port_is_free(port: int) -> bool:
    """Whether a new server could listen on the port. SO_REUSEADDR, as servers set it: the connections of the
    health checks linger in TIME_WAIT for a minute after the server is gone, and they do not hold the port."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
        return True


def _environment() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO_ROOT), MLFLOW_DISABLE_TELEMETRY="true")


#: A stand-in for ``mlflow server``: a process that starts a child (as uvicorn starts workers), both ignoring
#: nothing and sleeping, and writes both pids to a file once they run.
FAKE_SERVER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[1], "w").write(f"{child.pid}\\n")
time.sleep(600)
"""


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_every_stop_signal_stops_the_server_and_its_children(tmp_path: Path, signal_number: int):
    ready = tmp_path / "child.pid"
    driver = textwrap.dedent(f"""
        import sys
        from pipeline.dashboard import serve
        sys.exit(serve([sys.executable, "-c", {FAKE_SERVER!r}, {str(ready)!r}], grace_s=5.0))
    """)
    dashboard = subprocess.Popen([sys.executable, "-c", driver], env=_environment(), cwd=tmp_path)
    try:
        assert _wait_until(ready.exists, 60), "the stand-in server did not start"
        started = _descendants(dashboard.pid)
        assert len(started) == 2, f"server and its child expected below the dashboard, found {started}"
        dashboard.send_signal(signal_number)
        status = dashboard.wait(timeout=30)
    finally:
        if dashboard.poll() is None:
            dashboard.kill()
    assert _wait_until(lambda: not _alive(started), 5), f"left running after {signal_number.name}: {started}"
    expected = 0 if signal_number == signal.SIGINT else 128 + signal_number
    assert status == expected, f"exit status after {signal_number.name}: {status}, expected {expected}"


def test_a_real_dashboard_frees_its_port_on_sigterm(tmp_path: Path):
    # A real `mlflow server` (what `python -m pipeline.dashboard` runs) on a free loopback port. It starts
    # uvicorn in processes of its own: all of them must be gone a few seconds after SIGTERM.
    store = tmp_path / "mlflow.db"
    store.touch()
    port = _free_port()
    log = (tmp_path / "dashboard.log").open("w")
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "pipeline.dashboard", "--store", str(store), "--port", str(port)],
        cwd=tmp_path,
        env=_environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return dashboard.poll() is not None  # stop waiting: it exited

        assert _wait_until(healthy, 180, 0.5) and dashboard.poll() is None, (
            f"the dashboard did not start: {(tmp_path / 'dashboard.log').read_text()[-3000:]}"
        )
        started = _descendants(dashboard.pid)
        assert started and not _port_is_free(port), "a server process holds the port"
        groups = {os.getpgid(pid) for pid in _alive(started)}
        assert dashboard.pid not in groups, "the server runs in a process group of its own"
        dashboard.send_signal(signal.SIGTERM)
        status = dashboard.wait(timeout=30)
    finally:
        if dashboard.poll() is None:
            dashboard.kill()
        log.close()
    assert status == 128 + signal.SIGTERM
    assert _wait_until(lambda: not _alive(started), 5), (
        f"server processes survived SIGTERM: {_alive(started)}"
    )
    assert all(not group_members(group) for group in groups)
    assert _wait_until(lambda: _port_is_free(port), 5), f"port {port} is still taken after SIGTERM"
