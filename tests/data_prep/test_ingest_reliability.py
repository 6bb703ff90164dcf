"""Issue 8 (ingest reliability): inputs once turned silently into a wrong dataset, or ending in a traceback.

Each case has its own fixture (``reliability_fixtures``; table in FIXTURES.md) and asserts the behaviour
now documented in docs/data_format.md ("Repairs, warnings and refusals"): a correct result, a repair
with a warning that names what was wrong, or one line on stderr with exit code 2 that says what to do.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from data_prep import schema
from data_prep.ingest import main
from data_prep.segy_io import SegyFormatError, decode_textual_header, scan_segy, write_velocity_models
from tests.conftest import REPO_ROOT
from tests.data_prep.reliability_fixtures import (
    GEOMETRY,
    disagreeing_intervals,
    extended_sample_count,
    negative_binary_interval,
    shots_without_velocity,
    stale_trace_sample_count,
    textual_header_bytes,
    truncated_synthesize_folder,
    variable_extended_headers,
    with_textual_header,
    write_survey,
    wrong_binary_sample_count,
)
from tests.data_prep.segy_fixtures import (
    encoded_seismic,
    layered_velocity,
    set_binary_field,
    write_fixture,
    write_synthetic_folder,
)


def _fails(arguments, out_folder, capsys, *expected):
    """Runs the CLI; expects exit 2, one ``error:`` line holding every ``expected`` text, nothing written."""
    code = main([*map(str, arguments), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, f"expected exit code 2, got {code}; stderr: {err}"
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, f"one line expected: {err}"
    for text in expected:
        assert text in err, f"{text!r} missing from: {err}"
    if out_folder is not None:
        assert not any(out_folder.iterdir()), f"nothing may be written: {list(out_folder.iterdir())}"
    return err


def _warnings(caplog) -> str:
    return "\n".join(record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING)


# --- Case 1: sample intervals are signed; implausible ones fall back to the trace headers ---------------------


def test_case1_negative_binary_interval_falls_back_to_trace_headers(tmp_path, caplog):
    path = negative_binary_interval(tmp_path / "shots.segy")
    with caplog.at_level(logging.WARNING):
        scan = scan_segy(path)
    assert scan.sample_interval == 2000, "the trace headers' 2000 µs, not -2000 read unsigned (63536)"
    warning = _warnings(caplog)
    assert (
        "-2000" in warning and "63536 unsigned" in warning and "used 2000 from the trace headers" in warning
    )


def test_case1_negative_binary_interval_through_ingest(tmp_path, caplog):
    folder = write_survey(tmp_path / "in")
    set_binary_field(folder / "shots.segy", 3217, -2000)
    with caplog.at_level(logging.WARNING):
        assert main([str(folder), "--out", str(tmp_path / "d.h5"), "--quiet"]) == 0
    with h5py.File(tmp_path / "d.h5", "r") as h5:
        assert h5["geometry"].attrs["sample_interval_s"] == pytest.approx(0.002, abs=1e-12)
        assert np.array_equal(h5["seismic"][()], encoded_seismic(2, GEOMETRY))


def test_case1_negative_interval_and_no_trace_interval_is_refused_or_configured(tmp_path, caplog):
    def no_trace_interval(headers):
        headers["TRACE_SAMPLE_INTERVAL"] = 0

    folder = write_survey(tmp_path / "in", edit_headers=no_trace_interval)
    set_binary_field(folder / "shots.segy", 3217, -1000)
    with pytest.raises(SegyFormatError, match=r"-1000 when read as the signed field.*sample_interval_us"):
        scan_segy(folder / "shots.segy")
    with caplog.at_level(logging.WARNING):
        assert scan_segy(folder / "shots.segy", sample_interval_override=1000).sample_interval == 1000
    assert "used the configured sample_interval_us=1000" in _warnings(caplog)


def test_case1_binary_and_trace_intervals_disagree_warning_names_both(tmp_path, caplog):
    path = disagreeing_intervals(tmp_path / "shots.segy", trace_interval_us=1000)
    with caplog.at_level(logging.WARNING):
        scan = scan_segy(path)
    assert scan.sample_interval == 2000, "the binary header's, as segyio reads it"
    warning = _warnings(caplog)
    assert "2000 in the binary header" in warning and "but 1000 in 12 trace header(s)" in warning, warning


def test_case1_large_unsigned_interval_confirmed_by_every_trace_header_is_kept(tmp_path, caplog):
    """40000 in both headers (read unsigned; e.g. a 40 m depth spacing in mm): consistent, so not refused."""
    from tests.data_prep.segy_fixtures import write_fixture

    def large(headers):
        headers["TRACE_SAMPLE_INTERVAL"] = np.full(
            12, 40000 - 65536
        )  # the same two bytes, as segyio writes them

    path = write_fixture(tmp_path / "shots.segy", encoded_seismic(2, GEOMETRY), GEOMETRY, edit_headers=large)
    set_binary_field(path, 3217, 40000, signed=False)
    with caplog.at_level(logging.WARNING):
        assert scan_segy(path).sample_interval == 40000
    assert _warnings(caplog) == ""


# --- Case 5: a stale trace-header sample count, the file size confirming the binary header's ----------------


def test_case5_stale_trace_header_sample_count_is_repaired_with_a_warning(tmp_path, caplog):
    folder = write_survey(tmp_path / "in")
    stale_trace_sample_count(folder / "shots.segy", stale_count=6)
    with caplog.at_level(logging.WARNING):
        assert main([str(folder), "--out", str(tmp_path / "d.h5"), "--quiet"]) == 0
    warning = _warnings(caplog)
    assert "trace headers say 6 samples" in warning and "file size confirms 8" in warning, warning
    with h5py.File(tmp_path / "d.h5", "r") as h5:
        assert np.array_equal(h5["seismic"][()], encoded_seismic(2, GEOMETRY))


def test_case5_trace_headers_in_another_byte_order_are_still_refused(tmp_path):
    """2048 is 8 with its two bytes swapped: trace headers from another byte order, not a stale field."""
    path = stale_trace_sample_count(tmp_path / "shots.segy", stale_count=2048)
    with pytest.raises(SegyFormatError, match="trace 1 declares 2048 samples.*byte order"):
        scan_segy(path)


def test_case5_trace_headers_that_disagree_with_each_other_are_refused(tmp_path):
    def variable(headers):
        headers["TRACE_SAMPLE_COUNT"] = np.where(np.arange(12) % 2, 8, 6)

    from tests.data_prep.segy_fixtures import write_fixture

    path = write_fixture(
        tmp_path / "shots.segy", encoded_seismic(2, GEOMETRY), GEOMETRY, edit_headers=variable
    )
    with pytest.raises(SegyFormatError, match="trace 1 declares 6 samples.*Variable-length traces"):
        scan_segy(path)


def test_case5_wrong_binary_count_names_the_count_the_size_confirms_and_the_fix_works(tmp_path):
    path = wrong_binary_sample_count(tmp_path / "shots.segy", binary_count=6)
    with pytest.raises(
        SegyFormatError, match=r"first trace header says 8, which gives exactly 12 traces"
    ) as error:
        scan_segy(path)
    assert "f.seek(3220)" in str(error.value)
    # The advice, followed: write 8 into bytes 3221-3222 of a copy.
    copy = tmp_path / "copy.segy"
    copy.write_bytes(path.read_bytes())
    with open(copy, "r+b") as handle:
        handle.seek(3220)
        handle.write(struct.pack(">H", 8))
    traces = scan_segy(copy).read_traces(slice(None))
    assert np.array_equal(traces.reshape(2, 2, 3, 8).transpose(0, 1, 3, 2), encoded_seismic(2, GEOMETRY))


# --- Minor: a variable number (-1) of extended textual headers is described, not "implausible" ---------------


def test_minor_variable_extended_header_count_is_explained_and_the_fix_works(tmp_path):
    path = variable_extended_headers(tmp_path / "ext.segy")
    with pytest.raises(SegyFormatError) as error:
        scan_segy(path)
    message = str(error.value)
    assert "implausible" not in message
    assert (
        "variable number (-1) of extended textual headers" in message
        and "has 2 extended header(s)" in message
    )
    assert "f.seek(3504)" in message
    copy = tmp_path / "copy.segy"
    copy.write_bytes(path.read_bytes())
    with open(copy, "r+b") as handle:
        handle.seek(3504)
        handle.write(struct.pack(">h", 2))
    scan = scan_segy(copy)
    assert scan.data_offset == 3600 + 2 * 3200 and scan.num_traces == 12
    assert np.array_equal(scan.read_traces([0])[0], encoded_seismic(2, GEOMETRY)[0, 0, :, 0])


# --- Minor: /dev/zero and FIFOs are named for what they are -------------------------------------------------


def test_minor_fifo_is_not_reported_as_missing(tmp_path, capsys):
    fifo = tmp_path / "pipe.segy"
    os.mkfifo(fifo)
    (tmp_path / "out").mkdir()
    err = _fails([fifo, "--out", tmp_path / "out" / "d.h5"], tmp_path / "out", capsys, "pipe.segy", "FIFO")
    assert "does not exist" not in err
    with pytest.raises(
        SegyFormatError, match="is a FIFO"
    ):  # the reader alone refuses it too, without blocking
        scan_segy(fifo)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_minor_character_device_is_not_reported_as_missing(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    err = _fails(["/dev/zero", "--out", tmp_path / "out" / "d.h5"], tmp_path / "out", capsys, "/dev/zero")
    assert "character device" in err and "does not exist" not in err
    with pytest.raises(SegyFormatError, match="character device"):
        scan_segy("/dev/zero")


# --- Case 11: EBCDIC or ASCII, decided robustly ------------------------------------------------------------

BLANK_LINES = "".join(f"C{i:2d} ".ljust(80) for i in range(1, 41))


@pytest.mark.parametrize(
    ("kind", "expected_start", "expected_line_40"),
    [
        ("blank-ebcdic", "C 1 ", "C40 "),
        ("blank-ascii", "C 1 ", "C40 "),
        ("ebcdic", "C 1 CLIENT SEISMIC COMPANY  LINE 42", "C40 "),
        ("ascii", "C 1 CLIENT SEISMIC COMPANY  LINE 42", "C40 "),
        ("mixed", "C 1 CLIENT SEISMIC COMPANY  LINE 42", "C40 END TEXTUAL HEADER (PATCHED IN ASCII)"),
    ],
)
def test_case11_textual_header_encoding(kind, expected_start, expected_line_40):
    text = decode_textual_header(textual_header_bytes(kind))
    assert len(text) == 3200 and "@" not in text, text[:200]
    assert text.startswith(expected_start), text[:80]
    assert text[80:160].startswith("C 2 "), text[80:160]
    assert text[39 * 80 :].rstrip() == expected_line_40.rstrip(), text[39 * 80 :]
    if kind.startswith("blank"):
        assert text == BLANK_LINES


def test_case11_all_zero_textual_header_is_blank():
    assert decode_textual_header(textual_header_bytes("zeros")) == " " * 3200


def test_case11_blank_ebcdic_header_reaches_provenance_as_spaces(tmp_path):
    folder = tmp_path / "in"
    write_survey(folder)
    with_textual_header(folder / "shots.segy", textual_header_bytes("blank-ebcdic"))
    scan = scan_segy(folder / "shots.segy")
    assert scan.textual_header == BLANK_LINES


# --- Case 6: output problems are one line, exit 2, found before the inputs are scanned ----------------------


def test_case6_out_naming_an_existing_folder_with_overwrite(tmp_path, capsys):
    folder = write_survey(tmp_path / "in")
    (folder / "shots.segy").write_bytes((folder / "shots.segy").read_bytes()[:-10])  # would fail the scan
    (tmp_path / "out").mkdir()
    _fails(
        [folder, "--out", tmp_path / "out", "--overwrite"],
        tmp_path / "out",
        capsys,
        "is an existing folder",
        "dataset.h5",
    )


def test_case6_out_under_an_existing_file_says_what_is_wrong(tmp_path, capsys):
    folder = write_survey(tmp_path / "in")
    (folder / "shots.segy").write_bytes((folder / "shots.segy").read_bytes()[:-10])
    (tmp_path / "existing_file").write_text("not a folder")
    err = _fails(
        [folder, "--out", tmp_path / "existing_file" / "x.h5"],
        None,
        capsys,
        "existing_file is a file, not a folder",
    )
    assert "Errno" not in err and "truncated" not in err, "the output is checked before the inputs"
    assert (tmp_path / "existing_file").read_text() == "not a folder"


def test_case6_append_to_a_folder_is_one_line(tmp_path, capsys):
    folder = write_survey(tmp_path / "in")
    (tmp_path / "out").mkdir()
    _fails(
        [folder, "--out", tmp_path / "out", "--append"], tmp_path / "out", capsys, "--append", "is a folder"
    )


def _unprivileged_prefix() -> list[str]:
    """A command prefix under which file permissions apply (root ignores them unless its capabilities go)."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        pytest.skip("running as root without setpriv: permissions cannot be denied")
    if probe.returncode != 0:
        pytest.skip(f"running as root and setpriv cannot drop capabilities: {probe.stderr!r}")
    return prefix


def test_case6_permission_errors_are_one_line_exit_2_without_traceback(tmp_path):
    """Unwritable output folder (checked before scanning) and unreadable input, in a real process."""
    root = Path(tempfile.mkdtemp(prefix="perm-", dir=tmp_path))
    folder = write_survey(root / "in")
    readonly = root / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    unreadable = write_survey(root / "secret")
    (unreadable / "shots.segy").chmod(0o000)
    script = textwrap.dedent(
        """
        import contextlib, io, json, sys
        from data_prep.ingest import main
        results = []
        for argv in json.loads(sys.argv[1]):
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = main(argv + ["--quiet"])
            results.append({"code": code, "stderr": err.getvalue()})
        print(json.dumps(results))
        """
    )
    runs = [
        [str(folder / "shots.segy"), "--out", str(readonly / "d.h5"), "--set", "require_velocity=false"],
        [str(unreadable), "--out", str(root / "d.h5")],
    ]
    try:
        completed = subprocess.run(
            [*_unprivileged_prefix(), sys.executable, "-c", script, json.dumps(runs)],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
            timeout=300,
        )
    finally:
        readonly.chmod(0o755)
        (unreadable / "shots.segy").chmod(0o644)
    assert completed.returncode == 0, completed.stderr
    out_folder, input_file = json.loads(completed.stdout.strip().splitlines()[-1])
    for result in (out_folder, input_file):
        assert result["code"] == 2 and "Traceback" not in result["stderr"], result
        assert len(result["stderr"].strip().splitlines()) == 1, result["stderr"]
    assert "cannot write in" in out_folder["stderr"] and "readonly" in out_folder["stderr"], out_folder
    assert "permission denied" in input_file["stderr"] and "shots.segy" in input_file["stderr"], input_file
    assert not (root / "d.h5").exists() and list(readonly.iterdir()) == []


# --- Case 9: SIGTERM rolls back like Ctrl-C; after kill -9, --repair or re-running the append works ---------

#: Runs the ingest CLI in a real process that pauses in its second trace read (mid-append: the file is
#: flagged and one sample is written) after creating the marker file, so the test can signal it there.
PAUSING_INGEST = """
import sys, time, pathlib
from data_prep.segy_io.read import SegyScan
marker, real, calls = pathlib.Path(sys.argv[1]), SegyScan.read_traces, [0]
def pausing(self, indices):
    calls[0] += 1
    if calls[0] == 3:
        marker.write_text("paused")
        time.sleep(120)
    return real(self, indices)
SegyScan.read_traces = pausing
from data_prep.ingest import main
sys.exit(main(sys.argv[2:]))
"""


def _base_and_new_inputs(tmp_path):
    """A 2-sample dataset (models 1-2) and a folder with models 3-4 to append."""
    base = write_survey(tmp_path / "base")
    assert main([str(base), "--out", str(tmp_path / "d.h5"), "--quiet"]) == 0
    new = tmp_path / "new"
    write_fixture(new / "shots.segy", encoded_seismic(4, GEOMETRY)[2:], GEOMETRY, first_model=2)
    write_velocity_models(new / "velocity.segy", layered_velocity(4, GEOMETRY)[2:], 10.0, 2)
    with h5py.File(tmp_path / "d.h5", "r") as h5:
        before = {name: h5[name][()] for name in ("seismic", "velocity", "splits/train")}
        before["provenance"] = dict(h5["provenance"].attrs)
    return new, tmp_path / "d.h5", before


def _signal_append_midway(new, dataset, tmp_path, signal_number):
    marker = tmp_path / "paused"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            PAUSING_INGEST,
            str(marker),
            str(new),
            "--out",
            str(dataset),
            "--append",
            "--quiet",
        ],
        cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert process.poll() is None, f"the append ended before pausing: {process.communicate()}"
            assert time.monotonic() < deadline, "the append never reached its second read"
            time.sleep(0.05)
        with h5py.File(dataset, "r", locking=False) as h5:
            assert h5.attrs.get("write_in_progress"), "paused mid-append: the file must be flagged"
        process.send_signal(signal_number)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, err


def _assert_unchanged(dataset, before):
    summary = schema.validate(dataset, check_values=True)
    assert summary.num_samples == 2
    with h5py.File(dataset, "r") as h5:
        for name in ("seismic", "velocity", "splits/train"):
            assert np.array_equal(h5[name][()], before[name]), f"{name} must be as before the append"
        assert dict(h5["provenance"].attrs) == before["provenance"]
        assert "append_journal" not in h5 and "write_in_progress" not in h5.attrs


def _assert_appended(dataset):
    schema.validate(dataset, check_values=True)
    with h5py.File(dataset, "r") as h5:
        assert np.array_equal(h5["seismic"][()], encoded_seismic(4, GEOMETRY))
        assert np.array_equal(h5["velocity"][()], layered_velocity(4, GEOMETRY))


def test_case9_sigterm_during_append_rolls_back_like_ctrl_c(tmp_path):
    new, dataset, before = _base_and_new_inputs(tmp_path)
    code, err = _signal_append_midway(new, dataset, tmp_path, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, f"exit status {code}: {err}"
    assert "stopped by SIGTERM: the append was rolled back" in err and "Traceback" not in err, err
    _assert_unchanged(dataset, before)
    assert main([str(new), "--out", str(dataset), "--append", "--quiet"]) == 0, "the append, run again, works"
    _assert_appended(dataset)


def test_case9_after_kill_9_repair_and_rerunning_the_append_both_work(tmp_path, capsys, caplog):
    new, dataset, before = _base_and_new_inputs(tmp_path)
    code, _ = _signal_append_midway(new, dataset, tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    with pytest.raises(schema.SchemaError, match="interrupted"):
        schema.validate(dataset, check_values=False)
    killed_copy = tmp_path / "killed-copy.h5"
    shutil.copyfile(dataset, killed_copy)  # the same killed state, for the second way out
    # Documented way 1: --repair (no inputs needed) restores the dataset as it was.
    assert main(["--repair", "--out", str(dataset), "--quiet"]) == 0
    assert "rolled back an interrupted append" in capsys.readouterr().out
    _assert_unchanged(dataset, before)
    # Documented way 2: the append is simply run again; it rolls back first, with a warning, then appends.
    with caplog.at_level(logging.WARNING):
        assert main([str(new), "--out", str(killed_copy), "--append", "--quiet"]) == 0
    assert "rolled back an interrupted append" in _warnings(caplog)
    _assert_appended(killed_copy)


# --- Case 3: a synthesize folder must hold every model its manifest lists ---------------------------------


def test_case3_shots_file_cut_at_a_model_boundary_is_refused(tmp_path, capsys):
    folder = truncated_synthesize_folder(tmp_path / "run", keep_models=1)
    (tmp_path / "out").mkdir()
    _fails(
        [folder, "--out", tmp_path / "out" / "d.h5"],
        tmp_path / "out",
        capsys,
        "disagree with manifest.json",
        "fixture_shots_000000-000001.segy holds 1 model(s), the manifest lists 2 (ids 1-2); missing 2",
        "re-run the same synthesize command",
    )


def test_case3_the_advice_ingests_what_is_there_and_reports_the_velocity_model_without_shots(
    tmp_path, caplog
):
    folder = truncated_synthesize_folder(tmp_path / "run", keep_models=1)
    files = sorted(str(path) for path in folder.glob("*.segy"))
    with caplog.at_level(logging.WARNING):
        assert main([*files, "--out", str(tmp_path / "d.h5"), "--quiet"]) == 0
    assert "1 velocity model(s) have no shot gathers among the inputs" in _warnings(caplog)
    assert "model 2 in" in _warnings(caplog)
    with h5py.File(tmp_path / "d.h5", "r") as h5:
        kept = [0, 2, 3]  # models 1, 3, 4
        assert np.array_equal(h5["seismic"][()], encoded_seismic(4, GEOMETRY)[kept])
        assert np.array_equal(h5["velocity"][()], layered_velocity(4, GEOMETRY)[kept])


def test_case3_manifest_count_must_match_its_files(tmp_path, capsys):
    folder, _, _ = write_synthetic_folder(tmp_path / "run", GEOMETRY, num_models=4, chunk_size=2)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["count"] = 6
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "out").mkdir()
    _fails(
        [folder, "--out", tmp_path / "out" / "d.h5"],
        tmp_path / "out",
        capsys,
        "its files list 4 model(s) but its count is 6",
    )


# --- Case 7: shot gathers without velocity models ------------------------------------------------------------


@pytest.mark.parametrize("field_style", [False, True], ids=["seisinvert-shots", "field-export"])
def test_case7_no_velocity_model_says_so_and_the_advice_works(tmp_path, capsys, field_style):
    folder = shots_without_velocity(tmp_path / "line", field_style=field_style)
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "d.h5"
    err = _fails(
        [folder, "--out", out],
        tmp_path / "out",
        capsys,
        "No velocity model was found among the inputs",
        "--set require_velocity=false",
    )
    assert "grid spacing" not in err.split("require_velocity=false")[0], (
        "no advice about .npy grid spacing first"
    )
    # The advice, followed. A field export without model ids is then asked how its shots form samples.
    advice = ["--set", "require_velocity=false"]
    if field_style:
        _fails([folder, "--out", out, *advice], tmp_path / "out", capsys, "grouping.sample_key=file")
        advice += ["--set", "grouping.sample_key=file"]
    assert main([str(folder), "--out", str(out), "--quiet", *advice]) == 0
    summary = schema.validate(out, check_values=True)
    assert not summary.labelled
    with h5py.File(out, "r") as h5:
        seismic = h5["seismic"][()]
    expected = encoded_seismic(2, GEOMETRY)
    assert seismic.size == expected.size
    assert np.array_equal(np.sort(seismic.ravel()), np.sort(expected.ravel())), "every trace exactly once"


# --- Case 10: a kill -9 leaves a partial file; the next run into the same destination removes it ----------


def _signal_ingest_midway(folder, dataset, tmp_path, signal_number):
    """Starts a new (not append) ingest in a real process and signals it while it writes its partial file."""
    marker = tmp_path / "paused"
    process = subprocess.Popen(
        [sys.executable, "-c", PAUSING_INGEST, str(marker), str(folder), "--out", str(dataset), "--quiet"],
        cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert process.poll() is None, f"the ingest ended before pausing: {process.communicate()}"
            assert time.monotonic() < deadline, "the ingest never reached its second read"
            time.sleep(0.05)
        partials = [path for path in dataset.parent.iterdir() if path.name.endswith(".partial")]
        assert len(partials) == 1, f"one partial file while writing: {partials}"
        process.send_signal(signal_number)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, err, partials[0]


def test_case10_partial_file_of_a_killed_run_is_removed_by_the_next_run(tmp_path, caplog):
    folder = write_survey(tmp_path / "in")
    (tmp_path / "out").mkdir()
    dataset = tmp_path / "out" / "d.h5"
    code, _, partial = _signal_ingest_midway(folder, dataset, tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL and partial.exists() and not dataset.exists()
    with caplog.at_level(logging.WARNING):
        assert main([str(folder), "--out", str(dataset), "--quiet"]) == 0
    assert f"removed {partial}" in _warnings(caplog) and "no longer runs" in _warnings(caplog)
    assert sorted(path.name for path in dataset.parent.iterdir()) == ["d.h5"]
    with h5py.File(dataset, "r") as h5:
        assert np.array_equal(h5["seismic"][()], encoded_seismic(2, GEOMETRY))


@pytest.mark.slow  # the same mechanism as the SIGTERM append test, which runs by default
def test_case10_sigterm_while_writing_a_new_dataset_leaves_nothing(tmp_path):
    folder = write_survey(tmp_path / "in")
    (tmp_path / "out").mkdir()
    code, err, partial = _signal_ingest_midway(folder, tmp_path / "out" / "d.h5", tmp_path, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM and "stopped by SIGTERM: no partial output was kept" in err, err
    assert "Traceback" not in err and list((tmp_path / "out").iterdir()) == []


# --- Minor: messages that lead somewhere -------------------------------------------------------------------


def test_minor_duplicate_receiver_message_suggests_receiver_key_and_that_works(tmp_path, capsys):
    def duplicate(headers):
        headers["TraceNumber"][1] = headers["TraceNumber"][0]  # receivers 1 and 2 of shot 1 both numbered 1

    folder = write_survey(tmp_path / "in", edit_headers=duplicate)
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "d.h5"
    _fails([folder, "--out", out], tmp_path / "out", capsys, "traces 1 and 2", "--set grouping.receiver_key=")
    assert main([str(folder), "--out", str(out), "--quiet", "--set", "grouping.receiver_key=GroupX"]) == 0
    with h5py.File(out, "r") as h5:
        assert np.array_equal(h5["seismic"][()], encoded_seismic(2, GEOMETRY))


def test_minor_ingest_help_cites_ingest_keys_that_load():
    from core.config import load_config
    from data_prep.ingest import IngestConfig, build_parser

    text = " ".join(build_parser().format_help().split())
    assert "geometry.num_samples" not in text, "not an ingest key"
    assert "--set grouping.shots_per_sample=5" in text and "--set require_velocity=false" in text
    assert "--repair" in text
    config = load_config(IngestConfig, overrides=["grouping.shots_per_sample=5", "require_velocity=false"])
    assert config.grouping.shots_per_sample == 5 and config.require_velocity is False


# --- No input of the corpus ends in a traceback ----------------------------------------------------------------


def _corpus(root: Path) -> dict[str, list[str]]:
    """Every damaged or unusual input built in this file and in test_bad_input.py, as ingest arguments."""
    cases: dict[str, list[str]] = {}

    def survey(name, edit_headers=None, damage=None, **kwargs):
        folder = write_survey(root / name, edit_headers=edit_headers, **kwargs)
        if damage is not None:
            damage(folder / "shots.segy")
        cases[name] = [str(folder)]

    def cut(path, count=10):
        path.write_bytes(path.read_bytes()[:-count])

    def zero(field):
        def edit(headers):
            headers[field] = 0

        return edit

    survey("valid")
    survey("little-endian", endian="little")
    survey("truncated", damage=cut)
    survey("cut-to-headers", damage=lambda path: path.write_bytes(path.read_bytes()[:3600]))
    survey("empty", damage=lambda path: path.write_bytes(b""))
    survey("short", damage=lambda path: path.write_bytes(b"\x40" * 1000))
    survey("text", damage=lambda path: path.write_text("not seismic\n" * 400))
    survey("negative-interval", damage=lambda path: set_binary_field(path, 3217, -2000))
    survey(
        "no-interval",
        edit_headers=zero("TRACE_SAMPLE_INTERVAL"),
        damage=lambda p: set_binary_field(p, 3217, 0),
    )
    survey("zero-binary-count", damage=lambda path: set_binary_field(path, 3221, 0))
    survey("stale-trace-count", damage=lambda path: stale_trace_sample_count(path, 6))
    survey("wrong-binary-count", damage=lambda path: wrong_binary_sample_count(path, 6))
    survey("format-4", damage=lambda path: set_binary_field(path, 3225, 4))
    survey("format-99", damage=lambda path: set_binary_field(path, 3225, 99))
    survey("extended-minus-one", damage=lambda path: variable_extended_headers(path))
    survey("extended-minus-seven", damage=lambda path: set_binary_field(path, 3505, -7))
    survey("no-coordinates", edit_headers=lambda h: h.update(SourceX=0, GroupX=0))
    survey("zero-counts", edit_headers=zero("TRACE_SAMPLE_COUNT"))
    survey("delay", edit_headers=lambda h: h.update(DelayRecordingTime=np.arange(12) % 3))
    survey(
        "ebcdic-blank", damage=lambda path: with_textual_header(path, textual_header_bytes("blank-ebcdic"))
    )
    nan = encoded_seismic(2, GEOMETRY)
    nan[0, 0, 0, 0] = np.nan
    write_fixture(root / "nan" / "shots.segy", nan, GEOMETRY)
    write_velocity_models(root / "nan" / "velocity.segy", layered_velocity(2, GEOMETRY), 10.0, 0)
    cases["nan"] = [str(root / "nan")]
    cases["shots-only"] = [str(shots_without_velocity(root / "shots-only"))]
    cases["field-only"] = [str(shots_without_velocity(root / "field-only", field_style=True))]
    cases["truncated-folder"] = [str(truncated_synthesize_folder(root / "truncated-folder"))]
    cases["missing"] = [str(root / "nowhere.segy")]
    cases["folder-of-nothing"] = [str((root / "nothing").mkdir() or root / "nothing")]
    cases["no-match"] = [str(root / "*.nothing")]
    fifo = root / "pipe.segy"
    os.mkfifo(fifo)
    cases["fifo"] = [str(fifo)]
    return cases


def test_no_input_of_the_corpus_ends_in_a_traceback(tmp_path, capsys):
    outcomes = {}
    for name, arguments in _corpus(tmp_path / "corpus").items():
        out = tmp_path / "out" / f"{name}.h5"
        code = main([*arguments, "--out", str(out), "--quiet"])  # an unexpected exception would propagate
        err = capsys.readouterr().err
        outcomes[name] = code
        assert code in (0, 2), f"{name}: exit code {code}: {err}"
        assert "Traceback" not in err, f"{name}: {err}"
        if code == 2:
            assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, f"{name}: {err}"
            assert not out.exists()
        else:
            schema.validate(out, check_values=True)
    accepted = sorted(name for name, code in outcomes.items() if code == 0)
    # Repaired with a warning: a negative interval, a stale or zero trace-header sample count. Refused, with
    # one line: everything else (the blank-EBCDIC file, too, as it lacks the signature that makes byte 233 a
    # model id; the mixed delays, as no alignment was asked for).
    assert accepted == ["little-endian", "negative-interval", "stale-trace-count", "valid", "zero-counts"], (
        accepted
    )


# --- Issue 24: messages that gave the wrong reason ----------------------------------------------------------


@pytest.mark.parametrize(
    ("num_samples", "two_byte_field", "revision"),
    [
        (70_000, None, 2),  # segyio's own rev-2 file: bytes 3221-3222 hold 70000 mod 65536
        (1_000_000, None, 2),  # 3 traces of 1,000,000 samples: once "truncated"
        (65_527, 0, 2),  # 2-byte field 0: once "sample count is 0" / "implausible"
        (65_527, 0, 1),  # 2-byte field 0, rev 1: segyio still takes the extended count
    ],
)
def test_extended_binary_header_sample_count_is_read_as_segyio_reads_it(
    tmp_path, num_samples, two_byte_field, revision, caplog
):
    import segyio

    path = extended_sample_count(tmp_path / "long.sgy", num_samples, two_byte_field, revision)
    with segyio.open(path, ignore_geometry=True) as reference:
        assert len(reference.samples) == num_samples  # the behaviour ours must match
    with scan_segy(path) as scan:
        traces = scan.read_traces(slice(None))
    assert scan.num_samples == num_samples and traces.shape == (3, num_samples)
    expected = np.arange(num_samples, dtype=np.float32)[None] + 1000 * np.arange(3, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(traces, expected)
    assert "truncated" not in _warnings(caplog) and "stale" not in _warnings(caplog), _warnings(caplog)


def test_extended_count_is_ignored_in_a_rev1_file_with_a_two_byte_count(tmp_path):
    """segyio uses bytes 3269-3272 only for rev 2 or a 0 two-byte count; a rev-1 file with a stray value
    there is read by its 2-byte count (a file of 8 samples per trace)."""
    path = write_fixture(tmp_path / "s.segy", encoded_seismic(2, GEOMETRY), GEOMETRY)
    set_binary_field(path, 3269, 70_000, size=4)
    with scan_segy(path) as scan:
        assert scan.num_samples == 8


def test_a_symbolic_link_loop_is_named_as_a_loop_not_as_missing(tmp_path, capsys):
    loop = tmp_path / "loop.segy"
    os.symlink(loop, loop)
    (tmp_path / "out").mkdir()
    err = _fails([loop, "--out", tmp_path / "out" / "d.h5"], tmp_path / "out", capsys, "loop.segy", "loops")
    assert "does not exist" not in err
    with pytest.raises(SegyFormatError, match="symbolic link that loops"):
        scan_segy(loop)


def test_a_dangling_link_names_its_missing_target(tmp_path, capsys):
    link = tmp_path / "link.segy"
    os.symlink(tmp_path / "gone.segy", link)
    (tmp_path / "out").mkdir()
    _fails(
        [link, "--out", tmp_path / "out" / "d.h5"], tmp_path / "out", capsys, "symbolic link to", "gone.segy"
    )


def test_a_path_that_is_not_utf8_is_named_with_the_reason(tmp_path, capsys):
    folder = write_survey(tmp_path / "survey")
    raw_name = os.fsencode(str(folder)) + b"/shots\xff.segy"
    os.rename(folder / "shots.segy", raw_name)
    (tmp_path / "out").mkdir()
    err = _fails(
        [os.fsdecode(raw_name), folder / "velocity.segy", "--out", tmp_path / "out" / "d.h5"],
        tmp_path / "out",
        capsys,
        "shots\\xff.segy",
        "not valid UTF-8",
    )
    assert "codec" not in err, err


def test_a_negative_trace_header_interval_is_printed_signed(tmp_path, capsys):
    def edit(headers):
        headers["TRACE_SAMPLE_INTERVAL"] = np.full(12, -25000)

    path = write_fixture(tmp_path / "s.segy", encoded_seismic(2, GEOMETRY), GEOMETRY, edit_headers=edit)
    set_binary_field(path, 3217, 0)
    (tmp_path / "out").mkdir()
    _fails(
        [path, "--out", tmp_path / "out" / "d.h5", "--set", "require_velocity=false"],
        tmp_path / "out",
        capsys,
        "-25000 (40536 read unsigned)",
    )


def test_subfolders_and_dangling_links_in_an_input_folder_are_named_in_a_warning(tmp_path, caplog):
    folder = write_survey(tmp_path / "survey")
    write_survey(folder / "more")
    os.symlink(tmp_path / "gone.segy", folder / "dangling.segy")
    assert main([str(folder), "--out", str(tmp_path / "d.h5"), "--quiet"]) == 0
    warnings = _warnings(caplog)
    assert "skipped 1 subfolder(s) (more)" in warnings, warnings
    assert "name no file (dangling or looping): dangling.segy" in warnings, warnings
