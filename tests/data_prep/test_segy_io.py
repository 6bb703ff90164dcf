"""SEG-Y writing and reading: header conventions, every sample format, both byte orders; segyio is the oracle."""

from __future__ import annotations

import numpy as np
import pytest
import segyio

from data_prep.geometry import AcquisitionGeometry
from data_prep.segy_io import (
    SegyFormatError,
    detect_endianness,
    ibm_to_ieee,
    ieee_to_ibm,
    scan_segy,
    write_shot_gathers,
    write_velocity_models,
)
from tests.data_prep.segy_fixtures import (
    FORMATS,
    decode,
    encoded_seismic,
    layered_velocity,
    tiny_geometry,
    write_fixture,
)


def _segyio_traces(path, endian="big"):
    with segyio.open(path, ignore_geometry=True, endian=endian) as f:
        return f.trace.raw[:].astype(np.float64), {
            field: f.attributes(getattr(segyio.TraceField, field))[:]
            for field in ("FieldRecord", "TraceNumber", "EnergySourcePoint", "UnassignedInt1", "SourceX", "GroupX",
                          "offset", "SourceGroupScalar", "TRACE_SAMPLE_COUNT", "TRACE_SAMPLE_INTERVAL", "SourceDepth",
                          "ReceiverGroupElevation", "CDP_X")
        }


def test_shot_gathers_round_trip_through_segyio_with_documented_headers(tmp_path):
    geometry = AcquisitionGeometry.surface_line(grid_shape=(8, 12), num_sources=3, num_receivers=4, num_samples=16,
                                                source_depth_cell=1)
    seismic = np.random.default_rng(0).standard_normal((2, 3, 16, 4)).astype(np.float32)
    path = write_shot_gathers(tmp_path / "shots.segy", seismic, geometry, first_model_index=5)

    traces, headers = _segyio_traces(path)
    with segyio.open(path, ignore_geometry=True) as f:
        assert f.bin[segyio.BinField.Format] == 5, "IEEE float (format 5) expected"
        assert f.bin[segyio.BinField.Samples] == 16 and f.bin[segyio.BinField.Interval] == 1000
        text = f.text[0].decode()
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
    assert np.array_equal(headers["offset"], headers["GroupX"] - headers["SourceX"])
    assert np.all(headers["SourceDepth"] == 1000), "source 1 cell (10 m) deep = +1000 cm"
    assert np.all(headers["ReceiverGroupElevation"] == 0)
    assert np.all(headers["TRACE_SAMPLE_COUNT"] == 16) and np.all(headers["TRACE_SAMPLE_INTERVAL"] == 1000)
    assert "SHOT GATHERS" in text and "233 MODEL ID" in text and len(text) == 3200


def test_velocity_models_one_trace_per_x_with_depth_interval_in_millimetres(tmp_path):
    geometry = tiny_geometry()
    velocity = layered_velocity(3, geometry, first_model=7)
    path = write_velocity_models(tmp_path / "velocity.segy", velocity, 12.5, first_model_index=7,
                                 textual_header="MY SURVEY")
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


def test_ibm_conversion_matches_segyio_and_is_within_ibm_precision(tmp_path):
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.standard_normal(1000) * 10.0 ** rng.integers(-30, 30, 1000), [0.0, -0.0, 1.0, -1.5]])
    single = values.astype(np.float32).astype(np.float64)
    decoded = ibm_to_ieee(ieee_to_ibm(single))
    relative = np.abs(decoded - single) / np.maximum(np.abs(single), 1e-300)
    assert np.max(relative) <= 2.0**-21, "IBM float keeps at least 21 significant bits"
    geometry = tiny_geometry(num_samples=len(values) // 6)
    seismic = values[: 6 * geometry.num_samples].astype(np.float32).reshape(1, 2, -1, 3)
    path = write_shot_gathers(tmp_path / "ibm.segy", seismic, geometry, 0, sample_format=1)
    traces, _ = _segyio_traces(path)
    ours = scan_segy(path).read_traces(slice(None))
    assert np.array_equal(ours, traces.astype(np.float32)), "our IBM decoding must equal segyio's"


@pytest.mark.parametrize("endian", ["big", "little"])
@pytest.mark.parametrize("sample_format", sorted(FORMATS))
def test_every_format_and_byte_order_reads_like_segyio(tmp_path, sample_format, endian):
    geometry = tiny_geometry()
    seismic = encoded_seismic(2, geometry)  # max value 97: fits int8
    order = np.random.default_rng(sample_format).permutation(2 * 2 * 3)
    path = write_fixture(tmp_path / "f.segy", seismic, geometry, sample_format=sample_format, endian=endian,
                         trace_order=order)
    assert detect_endianness(path) == endian
    scan = scan_segy(path)
    assert (scan.endian, scan.sample_format, scan.num_traces, scan.num_samples) == (endian, sample_format, 12, 8)
    assert scan.sample_interval == 2000
    reference, headers = _segyio_traces(path, endian)
    traces = scan.read_traces(np.arange(12)[::-1])
    assert traces.dtype == np.float32
    assert np.array_equal(traces, reference[::-1].astype(np.float32)), "must equal segyio's reading"
    # The values decode to the (model, shot, receiver, sample) the headers claim.
    model, shot, receiver, sample = decode(traces, geometry)
    file_headers = {k: v[::-1] for k, v in scan.headers.items()}
    assert np.array_equal(model[:, 0] + 1, file_headers["UnassignedInt1"])
    assert np.array_equal(shot[:, 0] + 1, file_headers["EnergySourcePoint"])
    assert np.array_equal(receiver[:, 0] + 1, file_headers["TraceNumber"])
    assert np.array_equal(sample, np.broadcast_to(np.arange(8), sample.shape))
    assert np.array_equal(scan.group_x_m()[::-1], geometry.receiver_positions_m()[receiver[:, 0], 1])
    assert np.array_equal(headers["GroupX"], scan.headers["GroupX"])


def test_scan_keeps_textual_header_and_hash(tmp_path):
    geometry = tiny_geometry()
    path = write_shot_gathers(tmp_path / "s.segy", encoded_seismic(1, geometry), geometry, 0, textual_header="HELLO")
    scan = scan_segy(path)
    import hashlib

    assert scan.textual_header.startswith("C 1 HELLO")
    assert scan.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not scan.is_velocity_file


def test_not_segy_is_refused_with_both_byte_orders_described(tmp_path):
    path = tmp_path / "notes.segy"
    path.write_bytes(b"just some text, not seismic " * 200)
    with pytest.raises(SegyFormatError, match="implausible in both byte orders"):
        scan_segy(path)
