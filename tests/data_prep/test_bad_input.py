"""Bad SEG-Y input, each case generated here: a clear one-line error (exit 2) or a documented repair.

Every failing case also checks that nothing was written: no dataset, no temporary file.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import h5py
import numpy as np
import pytest

from data_prep.ingest import main
from data_prep.segy_io import write_velocity_models
from tests.conftest import REPO_ROOT
from tests.data_prep.segy_fixtures import (
    encoded_seismic,
    layered_velocity,
    replace_binary_header,
    set_binary_sample_count,
    tiny_geometry,
    write_fixture,
)

GEOMETRY = tiny_geometry()


@pytest.fixture
def survey(tmp_path):
    """A valid 2-model survey folder (shots + velocity) and an output folder."""
    folder = tmp_path / "in"
    write_fixture(folder / "shots.segy", encoded_seismic(2, GEOMETRY), GEOMETRY)
    write_velocity_models(folder / "velocity.segy", layered_velocity(2, GEOMETRY), 10.0, 0)
    (tmp_path / "out").mkdir()
    return folder, tmp_path / "out"


def _fails(arguments, out_folder, capsys, *expected):
    """Runs the CLI, expects exit 2 with every ``expected`` text in stderr and nothing in the output folder."""
    code = main([*map(str, arguments), "--out", str(out_folder / "data.h5"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, f"expected exit code 2, got {code}; stderr: {err}"
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, f"one line expected: {err}"
    for text in expected:
        assert text in err, f"{text!r} missing from: {err}"
    assert list(out_folder.iterdir()) == [], "nothing may be written after a failure"
    return err


def test_truncated_file(survey, capsys):
    folder, out = survey
    shots = folder / "shots.segy"
    shots.write_bytes(shots.read_bytes()[:-10])
    _fails([folder], out, capsys, "shots.segy", "truncated", "trace 12 has only")


def test_truncated_file_cli_subprocess_exit_code_without_traceback(survey):
    folder, out = survey
    shots = folder / "shots.segy"
    shots.write_bytes(shots.read_bytes()[:-10])
    completed = subprocess.run(
        [sys.executable, "-m", "data_prep.ingest", str(folder), "--out", str(out / "d.h5"), "--quiet"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert completed.returncode == 2
    assert "truncated" in completed.stderr and "Traceback" not in completed.stderr
    assert list(out.iterdir()) == []


def test_debug_shows_the_traceback(survey):
    folder, out = survey
    (folder / "shots.segy").write_bytes(b"")
    with pytest.raises(Exception, match="empty"):
        main([str(folder), "--out", str(out / "d.h5"), "--quiet", "--debug"])
    assert list(out.iterdir()) == []


def test_little_endian_is_detected_not_an_error(tmp_path):
    write_fixture(tmp_path / "in" / "shots.segy", encoded_seismic(2, GEOMETRY), GEOMETRY, endian="little")
    write_velocity_models(tmp_path / "in" / "velocity.segy", layered_velocity(2, GEOMETRY), 10.0, 0)
    assert main([str(tmp_path / "in"), "--out", str(tmp_path / "d.h5"), "--quiet"]) == 0
    with h5py.File(tmp_path / "d.h5", "r") as h5:
        assert np.array_equal(h5["seismic"][()], encoded_seismic(2, GEOMETRY))


def test_mixed_byte_order(survey, capsys):
    """Binary header big-endian, trace headers and samples little-endian: the trace headers give it away."""
    folder, out = survey
    shots = folder / "shots.segy"
    write_fixture(shots, encoded_seismic(2, GEOMETRY), GEOMETRY, endian="little")
    replace_binary_header(
        shots, write_fixture(out.parent / "big.segy", encoded_seismic(2, GEOMETRY), GEOMETRY)
    )
    _fails([folder], out, capsys, "shots.segy", "trace 1 declares 2048 samples", "byte order")


def test_sample_count_zero_in_the_binary_header(survey, capsys):
    """segyio reads the count from the binary header only: refused with the fix, naming the trace header's count."""
    folder, out = survey
    set_binary_sample_count(folder / "shots.segy", 0)
    _fails(
        [folder], out, capsys, "shots.segy", "sample count (bytes 3221-3222) is 0", "says 8", "f.seek(3220)"
    )


def test_sample_count_zero_in_every_trace_header_is_repaired_with_a_warning(survey, caplog):
    folder, out = survey

    def zero_counts(headers):
        headers["TRACE_SAMPLE_COUNT"] = 0

    write_fixture(folder / "shots.segy", encoded_seismic(2, GEOMETRY), GEOMETRY, edit_headers=zero_counts)
    with caplog.at_level(logging.WARNING):
        assert main([str(folder), "--out", str(out / "d.h5"), "--quiet"]) == 0
    assert any("sample count (byte 115) is 0 in every trace header" in r.getMessage() for r in caplog.records)
    with h5py.File(out / "d.h5", "r") as h5:
        assert np.array_equal(h5["seismic"][()], encoded_seismic(2, GEOMETRY))


def test_inconsistent_trace_counts_between_shots(survey, capsys):
    folder, out = survey
    keep = np.delete(np.arange(12), 4)  # model 0, shot 1 loses its receiver 2
    write_fixture(folder / "shots.segy", encoded_seismic(2, GEOMETRY), GEOMETRY, trace_order=keep)
    _fails(
        [folder],
        out,
        capsys,
        "shots.segy",
        "inconsistent trace counts",
        "shot 2 (FieldRecord",
        "has 2 traces",
    )


def test_nan_samples_are_refused_naming_the_trace(survey, capsys):
    folder, out = survey
    seismic = encoded_seismic(2, GEOMETRY)
    seismic[1, 0, 3, 2] = np.nan  # model 1, shot 0, receiver 2 -> file trace 1*6 + 0*3 + 2 + 1 = 9
    write_fixture(folder / "shots.segy", seismic, GEOMETRY)
    _fails([folder], out, capsys, "shots.segy: trace 9", "NaN or Inf", "nonfinite=zero")


def test_inf_samples_replaced_when_asked(survey, caplog):
    folder, out = survey
    seismic = encoded_seismic(2, GEOMETRY)
    seismic[0, 1, 0, 0] = np.inf
    write_fixture(folder / "shots.segy", seismic, GEOMETRY)
    with caplog.at_level(logging.WARNING):
        assert main([str(folder), "--out", str(out / "d.h5"), "--quiet", "--set", "nonfinite=zero"]) == 0
    assert any("replaced with 0" in r.getMessage() for r in caplog.records)
    with h5py.File(out / "d.h5", "r") as h5:
        assert h5["seismic"][0, 1, 0, 0] == 0.0


def test_missing_geometry(survey, capsys):
    folder, out = survey

    def no_coordinates(headers):
        headers["SourceX"] = 0
        headers["GroupX"] = 0

    write_fixture(folder / "shots.segy", encoded_seismic(2, GEOMETRY), GEOMETRY, edit_headers=no_coordinates)
    _fails([folder], out, capsys, "shots.segy", "missing geometry", "fallback_geometry")


def test_duplicate_geometry(survey, capsys):
    folder, out = survey

    def duplicate(headers):
        headers["TraceNumber"][1] = headers["TraceNumber"][0]

    write_fixture(folder / "shots.segy", encoded_seismic(2, GEOMETRY), GEOMETRY, edit_headers=duplicate)
    _fails([folder], out, capsys, "shots.segy", "traces 1 and 2", "duplicate geometry")


def test_shot_without_velocity_model(survey, capsys):
    folder, out = survey
    write_velocity_models(folder / "velocity.segy", layered_velocity(1, GEOMETRY), 10.0, 0)
    _fails(
        [folder], out, capsys, "shots.segy", "model id) 2 have no velocity model", "require_velocity=false"
    )


def test_not_segy(survey, capsys):
    folder, out = survey
    (folder / "readme.sgy").write_text("This is a text file that happens to carry a SEG-Y suffix.\n" * 100)
    _fails([folder], out, capsys, "readme.sgy", "not a readable SEG-Y file")


def test_short_file(survey, capsys):
    folder, out = survey
    (folder / "stub.segy").write_bytes(b"\x40" * 1000)
    _fails([folder], out, capsys, "stub.segy", "not a SEG-Y file", "1000 bytes")


def test_empty_file(survey, capsys):
    folder, out = survey
    (folder / "empty.segy").write_bytes(b"")
    _fails([folder], out, capsys, "empty.segy", "is empty")


def test_missing_input_path(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    _fails([tmp_path / "nowhere.segy"], tmp_path / "out", capsys, "nowhere.segy", "does not exist")
