"""SEG-Y writing and reading: header conventions, every sample format, both byte orders; segyio is the oracle."""

from __future__ import annotations

import numpy as np
import pytest
import segyio

from data_prep.geometry import AcquisitionGeometry
from data_prep.segy_io import (
    SegyFormatError,
    detect_endianness,
    read_segy,
    scan_segy,
    write_segy_traces,
    write_shot_gathers,
    write_velocity_models,
)
from tests.data_prep.segy_fixtures import (
    FORMATS,
    decode,
    encoded_seismic,
    layered_velocity,
    set_binary_field,
    tiny_geometry,
    write_fixture,
)


def _segyio_traces(path, endian="big"):
    with segyio.open(path, ignore_geometry=True, endian=endian) as f:
        return f.trace.raw[:].astype(np.float64), {
            field: f.attributes(getattr(segyio.TraceField, field))[:]
            for field in (
                "FieldRecord",
                "TraceNumber",
                "EnergySourcePoint",
                "UnassignedInt1",
                "SourceX",
                "GroupX",
                "offset",
                "SourceGroupScalar",
                "TRACE_SAMPLE_COUNT",
                "TRACE_SAMPLE_INTERVAL",
                "SourceDepth",
                "ReceiverGroupElevation",
                "CDP_X",
            )
        }


def test_shot_gathers_round_trip_through_segyio_with_documented_headers(tmp_path):
    geometry = AcquisitionGeometry.surface_line(
        grid_shape=(8, 12), num_sources=3, num_receivers=4, num_samples=16, source_depth_cell=1
    )
    seismic = np.random.default_rng(0).standard_normal((2, 3, 16, 4)).astype(np.float32)
    path = write_shot_gathers(tmp_path / "shots.segy", seismic, geometry, first_model_index=5)

    traces, headers = _segyio_traces(path)
    with segyio.open(path, ignore_geometry=True) as f:
        assert f.bin[segyio.BinField.Format] == 5, "IEEE float (format 5) expected"
        assert f.bin[segyio.BinField.Samples] == 16 and f.bin[segyio.BinField.Interval] == 1000
        binary = {
            field: f.bin[getattr(segyio.BinField, field)]
            for field in (
                "Traces",
                "AuxTraces",
                "IntervalOriginal",
                "SamplesOriginal",
                "SortingCode",
                "MeasurementSystem",
                "SEGYRevision",
                "TraceFlag",
            )
        }
        text = f.text[0].decode()
    assert binary == {
        "Traces": 0,
        "AuxTraces": 0,
        "IntervalOriginal": 1000,
        "SamplesOriginal": 16,
        "SortingCode": 1,
        "MeasurementSystem": 1,
        "SEGYRevision": 1,
        "TraceFlag": 1,
    }, "the documented binary header"
    # Traces are ordered model, shot, receiver; samples bit-identical.
    assert np.array_equal(traces.astype(np.float32).reshape(2, 3, 4, 16).transpose(0, 1, 3, 2), seismic)
    model, shot, receiver = np.meshgrid(np.arange(2), np.arange(3), np.arange(4), indexing="ij")
    model, shot, receiver = model.ravel(), shot.ravel(), receiver.ravel()
    assert np.array_equal(headers["FieldRecord"], (5 + model) * 3 + shot + 1), "global shot number, 1-based"
    assert np.array_equal(headers["TraceNumber"], receiver + 1)
    assert np.array_equal(headers["EnergySourcePoint"], shot + 1)
    assert np.array_equal(headers["UnassignedInt1"], 5 + model + 1), "model id = model index + 1"
    assert np.all(headers["SourceGroupScalar"] == -100)
    source_x_m = geometry.source_positions_m()[shot, 1]
    group_x_m = geometry.receiver_positions_m()[receiver, 1]
    assert np.array_equal(headers["SourceX"], np.rint(source_x_m * 100)), "centimetres"
    assert np.array_equal(headers["GroupX"], np.rint(group_x_m * 100))
    # Byte 37 in whole metres, unscaled (SEG-Y rev 1): what segyio (and every other reader) reports.
    assert np.array_equal(headers["offset"], (headers["GroupX"] - headers["SourceX"]) / 100), (
        "offset in metres"
    )
    assert np.all(headers["SourceDepth"] == 1000), "source 1 cell (10 m) deep = +1000 cm"
    assert np.all(headers["ReceiverGroupElevation"] == 0)
    assert np.all(headers["TRACE_SAMPLE_COUNT"] == 16) and np.all(headers["TRACE_SAMPLE_INTERVAL"] == 1000)
    assert "SHOT GATHERS" in text and "233 MODEL ID" in text and len(text) == 3200


def test_velocity_models_one_trace_per_x_with_depth_interval_in_millimetres(tmp_path):
    geometry = tiny_geometry()
    velocity = layered_velocity(3, geometry, first_model=7)
    path = write_velocity_models(
        tmp_path / "velocity.segy", velocity, 12.5, first_model_index=7, textual_header="MY SURVEY"
    )
    traces, headers = _segyio_traces(path)
    with segyio.open(path, ignore_geometry=True) as f:
        assert f.bin[segyio.BinField.Interval] == 12500, "12.5 m = 12500 mm"
        text = f.text[0].decode()
    assert traces.shape == (3 * 10, 6), "one trace per x position, depth samples down the trace"
    assert np.array_equal(traces.reshape(3, 10, 6).transpose(0, 2, 1), velocity)
    assert np.array_equal(headers["FieldRecord"], np.repeat([8, 9, 10], 10))
    assert np.array_equal(headers["UnassignedInt1"], np.repeat([8, 9, 10], 10))
    assert np.array_equal(headers["TraceNumber"], np.tile(np.arange(1, 11), 3))
    assert np.array_equal(headers["CDP_X"], np.tile(np.arange(10) * 1250, 3)), "x in cm"
    assert text.startswith("C 1 MY SURVEY") and "DEPTH SAMPLES; SAMPLE INTERVAL IN MM" in text


def test_writers_are_deterministic_and_atomic(tmp_path):
    geometry = tiny_geometry()
    seismic = encoded_seismic(2, geometry)
    first = write_shot_gathers(tmp_path / "a.segy", seismic, geometry, 0).read_bytes()
    second = write_shot_gathers(tmp_path / "b.segy", seismic, geometry, 0).read_bytes()
    assert first == second, "same input must give the same bytes"
    with pytest.raises(ValueError, match="NaN or Inf"):
        write_shot_gathers(tmp_path / "c.segy", np.full_like(seismic, np.nan), geometry, 0)
    with pytest.raises(ValueError, match="geometry has"):
        write_shot_gathers(tmp_path / "d.segy", seismic[:, :1], geometry, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.segy", "b.segy"], "failed writes leave nothing"


def test_writers_are_deterministic_across_days(tmp_path, monkeypatch):
    """segyio.create stamps today's date into its default textual header; ours replaces it."""
    import datetime

    geometry = tiny_geometry()
    seismic = encoded_seismic(1, geometry)
    first = write_shot_gathers(tmp_path / "a.segy", seismic, geometry, 0).read_bytes()

    class Tomorrow(datetime.date):
        @classmethod
        def today(cls):
            return datetime.date(2031, 1, 2)

    monkeypatch.setattr(datetime, "date", Tomorrow)
    second = write_shot_gathers(tmp_path / "b.segy", seismic, geometry, 0).read_bytes()
    assert first == second, "the output must not depend on the date"
    assert "2031".encode("cp037") not in second, "no date (EBCDIC) in the file"
    assert "DATE" not in scan_segy(tmp_path / "b.segy").textual_header


def test_ibm_floats_written_and_read_by_segyio_within_ibm_precision(tmp_path):
    rng = np.random.default_rng(3)
    values = np.concatenate(
        [[0.0, -0.0, 1.0, -1.5], rng.standard_normal(998) * 10.0 ** rng.integers(-30, 30, 998)]
    )
    geometry = tiny_geometry(num_samples=len(values) // 6)
    seismic = values[: 6 * geometry.num_samples].astype(np.float32).reshape(1, 2, -1, 3)
    path = write_shot_gathers(tmp_path / "ibm.segy", seismic, geometry, 0, sample_format=1)
    with segyio.open(path, ignore_geometry=True) as f:
        assert f.bin[segyio.BinField.Format] == 1, "IBM float (format 1) expected"
    traces, _ = _segyio_traces(path)
    ours = scan_segy(path).read_traces(slice(None))
    assert np.array_equal(ours, traces.astype(np.float32)), "read_traces must return segyio's values"
    expected = seismic[0].transpose(0, 2, 1).reshape(6, -1).astype(np.float64)
    relative = np.abs(ours - expected) / np.maximum(np.abs(expected), 1e-300)
    # 24-bit base-16 fraction: at least 21 significant bits, so truncation loses less than 2**-20.
    assert np.max(relative) < 2.0**-20, "IBM float keeps at least 21 significant bits"
    in_seismic_order = ours.reshape(2, 3, -1).transpose(0, 2, 1).ravel()
    assert np.array_equal(in_seismic_order[:4], [0.0, -0.0, 1.0, -1.5]), (
        "exactly representable values stay exact"
    )


def test_low_level_writer_checks_its_input(tmp_path):
    headers = {"TraceNumber": np.arange(1, 4), "SourceGroupScalar": -100}
    samples = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = write_segy_traces(tmp_path / "ok.segy", headers, samples, num_samples=4, sample_interval=2000)
    traces, scan = read_segy(path)
    assert np.array_equal(traces, samples)
    assert np.array_equal(scan.headers["TraceNumber"], [1, 2, 3]) and np.all(
        scan.headers["SourceGroupScalar"] == -100
    )
    with pytest.raises(ValueError, match="outside the range of format 8"):
        write_segy_traces(tmp_path / "a.segy", headers, samples * 20, 4, 2000, sample_format=8)
    with pytest.raises(ValueError, match="not integral"):
        write_segy_traces(tmp_path / "b.segy", headers, samples + 0.5, 4, 2000, sample_format=3)
    with pytest.raises(ValueError, match="Unknown trace-header field"):
        write_segy_traces(tmp_path / "c.segy", {"Receiver": 1}, samples, 4, 2000)
    with pytest.raises(ValueError, match="num_traces is required"):
        write_segy_traces(tmp_path / "d.segy", None, iter([(headers, samples)]), 4, 2000)
    with pytest.raises(ValueError, match="2 traces were given for num_traces=3"):
        write_segy_traces(
            tmp_path / "e.segy", None, iter([({"TraceNumber": 1}, samples[:2])]), 4, 2000, num_traces=3
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.segy"], "failed writes leave nothing"


@pytest.mark.parametrize("endian", ["big", "little"])
@pytest.mark.parametrize("sample_format", sorted(FORMATS))
def test_every_format_and_byte_order_reads_like_segyio(tmp_path, sample_format, endian):
    geometry = tiny_geometry()
    seismic = encoded_seismic(2, geometry)  # max value 97: fits int8
    order = np.random.default_rng(sample_format).permutation(2 * 2 * 3)
    path = write_fixture(
        tmp_path / "f.segy", seismic, geometry, sample_format=sample_format, endian=endian, trace_order=order
    )
    assert detect_endianness(path) == endian
    scan = scan_segy(path)
    assert (scan.endian, scan.sample_format, scan.num_traces, scan.num_samples) == (
        endian,
        sample_format,
        12,
        8,
    )
    assert scan.sample_interval == 2000
    reference, headers = _segyio_traces(path, endian)
    traces = scan.read_traces(np.arange(12)[::-1])
    assert traces.dtype == np.float32
    assert np.array_equal(traces, reference[::-1].astype(np.float32)), "must equal segyio's reading"
    # One run in file order (segyio's array, cast) and scattered runs give the same values.
    assert np.array_equal(scan.read_traces(slice(2, 9)), reference[2:9].astype(np.float32))
    assert np.array_equal(
        scan.read_traces([5, 6, 0, 1, 11, 5]), reference[[5, 6, 0, 1, 11, 5]].astype(np.float32)
    )
    scan.close()
    # The values decode to the (model, shot, receiver, sample) the headers claim.
    model, shot, receiver, sample = decode(traces, geometry)
    file_headers = {k: v[::-1] for k, v in scan.headers.items()}
    assert np.array_equal(model[:, 0] + 1, file_headers["UnassignedInt1"])
    assert np.array_equal(shot[:, 0] + 1, file_headers["EnergySourcePoint"])
    assert np.array_equal(receiver[:, 0] + 1, file_headers["TraceNumber"])
    assert np.array_equal(sample, np.broadcast_to(np.arange(8), sample.shape))
    assert np.array_equal(scan.group_x_m()[::-1], geometry.receiver_positions_m()[receiver[:, 0], 1])
    assert np.array_equal(headers["GroupX"], scan.headers["GroupX"])


def test_little_endian_model_id_bytes_on_disk(tmp_path):
    """Bytes 233-236 hold the model id in the file's byte order (segyio 1.9 alone would leave them big-endian)."""
    geometry = tiny_geometry()
    for endian in ("big", "little"):
        path = write_fixture(
            tmp_path / f"{endian}.segy", encoded_seismic(2, geometry), geometry, first_model=4, endian=endian
        )
        data = path.read_bytes()
        trace_bytes = 240 + 8 * 4
        model_ids = [
            int.from_bytes(data[3600 + i * trace_bytes + 232 : 3600 + i * trace_bytes + 236], endian)
            for i in range(12)
        ]
        assert model_ids == [5] * 6 + [6] * 6, f"{endian}-endian model ids on disk"
        with segyio.open(path, ignore_geometry=True, endian=endian) as f:
            assert f.attributes(segyio.TraceField.UnassignedInt1)[:].tolist() == model_ids


def test_scan_keeps_textual_header_and_hash(tmp_path):
    import hashlib

    geometry = tiny_geometry()
    path = write_shot_gathers(
        tmp_path / "s.segy", encoded_seismic(1, geometry), geometry, 0, textual_header="HELLO"
    )
    assert path.read_bytes()[:3] == "C 1".encode("cp037"), "EBCDIC on disk"
    scan = scan_segy(path)
    assert scan.textual_header.startswith("C 1 HELLO")
    assert scan.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not scan.is_velocity_file
    assert scan_segy(path, compute_sha256=False).sha256 == ""


def test_ascii_textual_header_is_read_as_ascii(tmp_path):
    """segyio decodes every textual header as EBCDIC; some exporters write ASCII."""
    geometry = tiny_geometry()
    path = write_velocity_models(tmp_path / "v.segy", layered_velocity(1, geometry), 10.0, 0)
    data = bytearray(path.read_bytes())
    data[:3200] = "C 1 ASCII EXPORT, DEPTH SAMPLES".ljust(3200).encode("ascii")
    path.write_bytes(bytes(data))
    scan = scan_segy(path)
    assert scan.textual_header.startswith("C 1 ASCII EXPORT") and scan.is_velocity_file


def test_read_traces_releases_the_mapping_on_close(tmp_path):
    geometry = tiny_geometry()
    path = write_shot_gathers(tmp_path / "s.segy", encoded_seismic(2, geometry), geometry, 0)
    with scan_segy(path) as scan:
        first = scan.read_traces(np.arange(6))
        assert scan._segy is not None, "the handle stays open between reads"
    assert scan._segy is None, "closed on leaving the context"
    assert np.array_equal(scan.read_traces(np.arange(6)), first), "a later read opens it again"
    scan.close()


def test_not_segy_is_refused_with_both_byte_orders_described(tmp_path):
    path = tmp_path / "notes.segy"
    path.write_bytes(b"just some text, not seismic " * 200)
    with pytest.raises(SegyFormatError, match="implausible in both byte orders"):
        scan_segy(path)


@pytest.mark.parametrize(
    ("delay_ms", "scalar", "revision", "expected_s", "warned"),
    [
        (0, 0, 1, 0.0, False),
        (120, 0, 1, 0.120, False),  # scalar 0 means 1
        (-40, 1, 1, -0.040, False),  # negative delay: recorded before the shot
        (250, 10, 1, 2.5, False),  # rev 1/2 time scalar multiplies...
        (250, -10, 2, 0.025, False),  # ... or divides
        (250, 7, 1, 0.250, True),  # illegal scalar: not applied, warned
        (250, -10, 0, 0.250, True),  # rev 0: bytes 215-216 are unassigned, not applied, warned
    ],
)
def test_recording_delay_is_read_per_trace_with_the_time_scalar(
    tmp_path, delay_ms, scalar, revision, expected_s, warned
):
    """Case 2 of issue 8: DelayRecordingTime (byte 109) was dropped; it is each trace's start time."""
    geometry = tiny_geometry()

    def delay(headers):
        headers["DelayRecordingTime"] = np.full(12, delay_ms)
        headers["ScalarTraceHeader"] = np.full(12, scalar)

    path = write_fixture(tmp_path / "delay.segy", encoded_seismic(2, geometry), geometry, edit_headers=delay)
    set_binary_field(path, 3501, revision << 8)
    scan = scan_segy(path)
    assert np.allclose(scan.start_time_s(), np.full(12, expected_s), rtol=0, atol=1e-12), scan.start_time_s()
    assert scan.uniform_start_time_s == pytest.approx(expected_s, abs=1e-12)
    assert any("bytes 215-216" in repair for repair in scan.repairs) == warned, scan.repairs


def test_recording_delay_varies_per_trace_and_survives_header_trimming(tmp_path):
    geometry = tiny_geometry()
    delays = np.arange(12) * 4 - 8  # -8 .. 36 ms

    def delay(headers):
        headers["DelayRecordingTime"] = delays

    path = write_fixture(tmp_path / "delay.segy", encoded_seismic(2, geometry), geometry, edit_headers=delay)
    scan = scan_segy(path)
    assert np.array_equal(scan.start_time_s(), delays / 1000.0)
    assert np.array_equal(scan.start_time_s([3, 0]), [delays[3] / 1000.0, delays[0] / 1000.0])
    assert scan.uniform_start_time_s is None
    scan.headers = {}  # what ingest does after grouping: the start times are kept apart from the columns
    assert np.array_equal(scan.start_time_s(slice(10, None)), delays[10:] / 1000.0)
