"""Atomic output: a failure leaves neither the final file nor the temporary one."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_prep.atomic import atomic_output, write_text_atomic


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
