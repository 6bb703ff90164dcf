"""Atomic output: a failure leaves neither the final file nor the temporary one."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.atomic import _host, atomic_output, partial_files, temporary_sibling, write_text_atomic


def test_success_renames_into_place(tmp_path: Path):
    destination = tmp_path / "sub" / "file.txt"
    with atomic_output(destination) as temporary:
        assert temporary.parent == destination.parent and temporary != destination
        temporary.write_text("complete")
        assert not destination.exists()
    assert destination.read_text() == "complete"
    assert sorted(p.name for p in destination.parent.iterdir()) == ["file.txt"]


def test_failure_leaves_nothing_and_keeps_previous_file(tmp_path: Path):
    destination = tmp_path / "file.txt"
    write_text_atomic(destination, "old")
    with pytest.raises(RuntimeError), atomic_output(destination) as temporary:
        temporary.write_text("half")
        raise RuntimeError("crash mid-write")
    assert destination.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_refuses_to_overwrite_when_asked(tmp_path: Path):
    destination = tmp_path / "file.txt"
    destination.write_text("keep")
    with pytest.raises(FileExistsError, match="already exists"), atomic_output(destination, overwrite=False):
        pass
    assert destination.read_text() == "keep"


# --- Stale partial files (issue 8 case 10): removed when their writer is dead, named when it cannot be checked ---


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _partial(destination: Path, pid: int, host: str | None, age_s: float = 0.0, size: int = 1000) -> Path:
    suffix = f"@{host}" if host else ""
    path = destination.with_name(f".{destination.name}.{pid}-0123abcd{suffix}.partial")
    path.write_bytes(b"\0" * size)
    if age_s:
        stamp = time.time() - age_s
        os.utime(path, (stamp, stamp))
    return path


def test_temporary_name_records_process_and_host(tmp_path: Path):
    temporary = temporary_sibling(tmp_path / "data.h5")
    assert temporary.name.startswith(f".data.h5.{os.getpid()}-") and temporary.name.endswith(".partial")
    assert [partial.pid for partial in partial_files(tmp_path / "data.h5")] == []
    temporary.write_text("x")
    (found,) = partial_files(tmp_path / "data.h5")
    assert (found.path, found.pid, found.host) == (temporary, os.getpid(), _host())


def test_partial_of_a_dead_process_is_removed_by_the_next_write(tmp_path: Path, caplog):
    destination = tmp_path / "data.h5"
    dead = _dead_pid()
    stale = _partial(destination, dead, _host(), size=3 * 2**20)
    old_style = _partial(tmp_path / "other.h5", dead, None)  # name written by earlier versions: this host
    with caplog.at_level(logging.WARNING):
        write_text_atomic(destination, "new")
        write_text_atomic(tmp_path / "other.h5", "new")
    assert not stale.exists() and not old_style.exists()
    assert destination.read_text() == "new"
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert f"removed {stale} (3.0 MiB)" in messages and f"process {dead}, which no longer runs" in messages
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.h5", "other.h5"]


def test_partial_of_another_host_is_named_and_kept(tmp_path: Path, caplog):
    destination = tmp_path / "data.h5"
    foreign = _partial(destination, 12345, "some-other-node")
    with caplog.at_level(logging.WARNING):
        write_text_atomic(destination, "new")
    assert foreign.exists(), "another host's process cannot be checked: never deleted"
    message = " ".join(record.getMessage() for record in caplog.records)
    assert str(foreign) in message and "host some-other-node" in message and "delete it if no run" in message


def test_partial_of_a_live_writer_is_left_alone_unless_its_id_was_reused(tmp_path: Path, caplog):
    destination = tmp_path / "data.h5"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        live = _partial(destination, sleeper.pid, _host())  # written now, by a process that runs
        with caplog.at_level(logging.WARNING):
            write_text_atomic(destination, "new")
        assert live.exists() and not caplog.records, "a concurrent writer's file is not touched"
        # The same id on a file last written an hour before that process started: the id was reused.
        reused = _partial(tmp_path / "other.h5", sleeper.pid, _host(), age_s=3600)
        write_text_atomic(tmp_path / "other.h5", "new")
        assert not reused.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
