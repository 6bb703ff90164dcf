"""``core.distributed``: the ``--scheduler`` option, reaching a scheduler, ordered results with backpressure.

The clusters here run their workers as threads of the test process (``processes=False``): what is tested is
the glue (order, window, errors, log relay), not Dask. Worker processes, and a worker killed mid-run, are
tested with the stages that use them (``tests/data_prep/test_scale_out.py``).
"""

from __future__ import annotations

import logging
import pickle
import socket
import sys
import threading
import time
import tomllib

import pytest

from core.distributed import (
    DASK_EXTRA,
    SchedulerSpec,
    connect,
    ordered_results,
    parse_scheduler,
    relay_records,
    require_distributed,
    run_task,
)
from core.errors import EXPECTED_ERRORS, UserError
from tests.conftest import REPO_ROOT

distributed = pytest.importorskip("distributed")


def test_parse_scheduler_accepts_addresses_and_local_workers():
    assert parse_scheduler("local:3") == SchedulerSpec(local_workers=3)
    assert parse_scheduler("tcp://10.0.0.5:8786") == SchedulerSpec(address="tcp://10.0.0.5:8786")
    assert parse_scheduler("head-node:8786") == SchedulerSpec(address="head-node:8786")
    for bad, expected in (
        ("local:0", "N >= 1"),
        ("local:many", "whole number"),
        ("tcp://host:port:extra", "scheduler address"),
    ):
        with pytest.raises(UserError, match=expected):
            parse_scheduler(bad)


def test_without_dask_the_message_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    with pytest.raises(UserError) as raised:
        require_distributed()
    message = str(raised.value)
    assert DASK_EXTRA in message and "\n" not in message, f"one line naming the extra expected: {message!r}"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_scheduler_is_a_one_line_user_error():
    address = f"tcp://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(UserError) as raised, connect(address, timeout_s=1, announce=False):
        pass
    message = str(raised.value)
    assert message.startswith(f"cannot reach the Dask scheduler at {address}"), message
    assert "\n" not in message and "--scheduler local:N" in message, (
        f"one line saying what to do: {message!r}"
    )
    assert time.monotonic() - started < 30, "the timeout given must bound the wait"


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


STARTED: list[int] = []
LOCK = threading.Lock()


def _record_and_square(item: int) -> int:
    with LOCK:
        STARTED.append(item)
    time.sleep(0.01 * (item % 3))  # out-of-order completion
    return item * item


def test_results_come_in_order_and_the_window_bounds_the_tasks_in_flight(client):
    STARTED.clear()
    window = 3
    results = []
    for value in ordered_results(client, _record_and_square, range(12), name="square", max_in_flight=window):
        results.append(value)
        time.sleep(0.05)  # a slow writer: the cluster must not run ahead of it
        with LOCK:
            started = len(STARTED)
        assert started <= len(results) + window, (
            f"{started} tasks started after {len(results)} results were consumed: at most "
            f"{len(results) + window} expected with max_in_flight={window}"
        )
    assert results == [item * item for item in range(12)], "results must come in the items' order"


def _repairing(item: int) -> int:
    logging.getLogger("data_prep.example").warning("item %d needed a %s", item, object())
    logging.getLogger("data_prep.example").info("not shown: below the default level")
    return item


def test_a_task_s_warnings_are_logged_again_on_the_client(caplog):
    outcome = run_task(_repairing, 5, EXPECTED_ERRORS)
    assert outcome.value == 5 and outcome.error is None
    records = pickle.loads(pickle.dumps(outcome.records))  # as they come back from a worker process
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        relay_records(records)
    relayed = [record.getMessage() for record in caplog.records if record.name == "data_prep.example"]
    assert len(relayed) == 1 and relayed[0].startswith("item 5 needed a <object object"), (
        f"the task's one warning, formatted on the worker, expected on the client; got {relayed}"
    )


ATTEMPTS: dict[str, int] = {}


def _fail(item: str) -> str:
    ATTEMPTS[item] = ATTEMPTS.get(item, 0) + 1
    if item == "bad input":
        raise UserError("bad input: fix the file")
    if item == "flaky" and ATTEMPTS[item] < 2:
        raise OSError("the network file system hiccuped")
    return item


def test_expected_errors_are_raised_at_once_and_unexpected_ones_retried(client):
    ATTEMPTS.clear()
    assert list(ordered_results(client, _fail, ["flaky", "fine"], name="retry", retries=2)) == [
        "flaky",
        "fine",
    ]
    assert ATTEMPTS["flaky"] == 2, "an unexpected error must be retried"
    with pytest.raises(UserError, match="bad input: fix the file"):
        list(ordered_results(client, _fail, ["fine", "bad input", "fine"], name="expected", retries=2))
    assert ATTEMPTS["bad input"] == 1, "an expected error (the user's input) must not be retried"


def test_dask_is_an_optional_extra_that_dev_pulls_in():
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    assert extras.get("dask") == ["dask[distributed]>=2024.1"], (
        f"a `dask` extra expected, got {extras.get('dask')}"
    )
    assert set(extras["dask"]) <= set(extras["dev"]), "`.[dev]` must pull in the dask extra, so CI tests it"
    assert DASK_EXTRA == "pip install 'seisinvert[dask]'", "the message must name the extra that exists"
