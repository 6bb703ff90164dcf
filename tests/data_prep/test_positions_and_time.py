"""Per-sample positions and start times (issue 7 item 3; issue 8 items 2 and 4), each with a code-built fixture.

* Samples cut from different places of a line (velocity grids with different x origins), slightly
  different spreads, shots in other places: each sample keeps its own positions, in its grid's frame.
* Shots or receivers outside the velocity grid (grid 70 x 60 cells of 10 m, receivers up to 690 m):
  refused by ingest and by ``schema.validate``.
* Recording delays (DelayRecordingTime, byte 109): stored per sample; different delays in one dataset are
  refused unless ``regularization.start_time_s`` aligns them (whole samples, zero-filled).
"""

from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest

from core.errors import UserError
from data_prep import schema
from data_prep.dataset_writer import OriginRecord, SamplePlan, SourceRecord, write_dataset
from data_prep.geometry import AcquisitionGeometry
from data_prep.ingest import IngestConfig, RegularizationConfig, ingest
from data_prep.segy_io import format_textual_header, write_segy_traces, write_velocity_models
from data_prep.segy_io.headers import velocity_model_headers, velocity_textual_lines
from tests.data_prep.segy_fixtures import encoded_seismic, layered_velocity, tiny_geometry, write_fixture

QUIET = IngestConfig(progress=False)
GEOMETRY = tiny_geometry()  # 6 x 10 cells of 10 m; shots at x = 0, 90 m; receivers at 0, 40, 90 m; 2 ms


def _velocity_with_x_origins(path, velocity, x_origins_m):
    """A velocity SEG-Y file (project layout) whose model ``m`` starts at survey x ``x_origins_m[m]``."""
    headers, traces = [], []
    for model, origin in enumerate(x_origins_m):
        columns = velocity_model_headers(model, model, velocity.shape[2], velocity.shape[1], 10.0)
        for name in ("SourceX", "GroupX", "CDP_X"):
            columns[name] = columns[name] + int(round(origin * 100))
        headers.append(
            {name: np.broadcast_to(value, (velocity.shape[2],)) for name, value in columns.items()}
        )
        traces.append(velocity[model].T)
    merged = {name: np.concatenate([h[name] for h in headers]) for name in headers[0]}
    lines = velocity_textual_lines(0, len(velocity), velocity.shape[1], velocity.shape[2], 10.0)
    return write_segy_traces(
        path,
        merged,
        np.concatenate(traces),
        velocity.shape[1],
        10000,
        textual_header=format_textual_header(lines),
    )


def _shifted_model(shift_cm, which="all", model=1):
    """``edit_headers`` moving model ``model``'s sources and/or receivers along x by ``shift_cm``."""

    def edit(headers):
        mine = headers["UnassignedInt1"] == model + 1
        if which in ("all", "sources"):
            headers["SourceX"] = np.where(mine, headers["SourceX"] + shift_cm, headers["SourceX"])
        if which in ("all", "receivers"):
            headers["GroupX"] = np.where(mine, headers["GroupX"] + shift_cm, headers["GroupX"])
        if which == "middle receiver":
            middle = mine & (headers["TraceNumber"] == 2)
            headers["GroupX"] = np.where(middle, headers["GroupX"] + shift_cm, headers["GroupX"])

    return edit


def test_samples_cut_from_different_places_of_a_line_share_the_grid_frame(tmp_path):
    seismic = encoded_seismic(2, GEOMETRY)
    write_fixture(tmp_path / "in" / "shots.segy", seismic, GEOMETRY, edit_headers=_shifted_model(50_000))
    _velocity_with_x_origins(tmp_path / "in" / "velocity.segy", layered_velocity(2, GEOMETRY), [0.0, 500.0])
    path = ingest([tmp_path / "in"], tmp_path / "d.h5", QUIET)
    with schema.open_dataset(path) as h5:
        table = schema.read_sample_table(h5)
        nominal = schema.read_geometry(h5)
    assert table.x_origin_m.tolist() == [0.0, 500.0], "model 2's grid starts at x = 500 m on the line"
    for sample in range(2):
        assert np.allclose(table.source_positions_m[sample], GEOMETRY.source_positions_m())
        assert np.allclose(table.receiver_positions_m[sample], GEOMETRY.receiver_positions_m())
    assert np.allclose(nominal.receiver_positions_m, GEOMETRY.receiver_positions_m())
    assert np.allclose(table.source_positions_m[1, :, 1] + table.x_origin_m[1], [500.0, 590.0]), "recorded x"

    # The same shots with a velocity file that does not move model 2: its shots lie outside its grid.
    write_velocity_models(tmp_path / "in" / "velocity.segy", layered_velocity(2, GEOMETRY), 10.0, 0)
    with pytest.raises(UserError, match=r"sample 2: shot 1 at \(depth, x\) = \(0, 500\) m lies outside"):
        ingest([tmp_path / "in"], tmp_path / "e.h5", QUIET)


def test_slightly_different_spreads_are_stored_per_sample_or_refused_on_request(tmp_path, caplog):
    seismic = encoded_seismic(2, GEOMETRY)
    folder = tmp_path / "in"
    write_fixture(
        folder / "shots.segy", seismic, GEOMETRY, edit_headers=_shifted_model(200, "middle receiver")
    )
    write_velocity_models(folder / "velocity.segy", layered_velocity(2, GEOMETRY), 10.0, 0)
    with caplog.at_level("INFO", logger="data_prep.ingest.plan"):
        path = ingest([folder], tmp_path / "d.h5", QUIET)
    assert (
        "1 of 2 samples (from 1 origin(s)) have shots or receivers away from the nominal geometry, by up to 2 m"
        in caplog.text
    )
    with h5py.File(path, "r") as h5:
        sources, receivers = schema.read_sample_positions(h5)
        assert np.array_equal(h5["seismic"][()], seismic), "positions differ; the traces are as recorded"
    assert receivers[:, :, 1].tolist() == [[0.0, 40.0, 90.0], [0.0, 42.0, 90.0]]
    assert np.array_equal(sources[1], GEOMETRY.source_positions_m())

    strict = dataclasses.replace(QUIET, max_position_deviation_m=1.0)
    with pytest.raises(
        UserError, match=r"sample 2: its shots or receivers lie up to 2 m from the dataset's nominal"
    ):
        ingest([folder], tmp_path / "e.h5", strict)

    # Regularisation interpolates such a sample onto the nominal receivers (values linear in x: exact).
    receiver_x = np.array([[0.0, 40.0, 90.0], [0.0, 42.0, 90.0]])
    linear = np.broadcast_to(receiver_x[:, None, None, :], (2, 2, 8, 3)).astype(np.float32)
    write_fixture(
        folder / "shots.segy", linear, GEOMETRY, edit_headers=_shifted_model(200, "middle receiver")
    )
    regularised = dataclasses.replace(QUIET, regularization=RegularizationConfig(enabled=True))
    path = ingest([folder], tmp_path / "f.h5", regularised)
    with h5py.File(path, "r") as h5:
        stored = h5["seismic"][()]
        _, receivers = schema.read_sample_positions(h5)
    assert np.allclose(stored[1, 0, 0], [0.0, 40.0, 90.0], atol=1e-4), "interpolated onto x = 40 m"
    assert receivers[1, :, 1].tolist() == [0.0, 40.0, 90.0], "stored where the data now are"


def _outside_grid_survey(folder):
    """The issue's case: velocity grid 70 x 60 cells (depth, x) of 10 m, 70 receivers at x = 0..690 m."""
    acquisition = AcquisitionGeometry(
        grid_shape=(70, 70),
        num_samples=8,
        sample_interval_s=0.002,
        source_cells=((1, 0), (1, 59)),
        receiver_cells=tuple((1, x) for x in range(70)),
    )
    seismic = encoded_seismic(1, acquisition)
    write_fixture(folder / "shots.segy", seismic, acquisition)
    velocity = np.full((1, 70, 60), 2000.0, np.float32)
    write_velocity_models(folder / "velocity.segy", velocity, 10.0, 0)
    return acquisition, seismic, velocity


def test_receivers_outside_the_velocity_grid_are_refused_by_ingest(tmp_path):
    _outside_grid_survey(tmp_path / "in")
    with pytest.raises(
        UserError,
        match=r"sample 1: receiver 61 at \(depth, x\) = \(10, 600\) m lies outside the velocity grid \(depth 0-690 m, "
        r"x 0-590 m: 70 x 60 cells of 10 m\); 10 receiver\(s\) outside, up to x = 690 m",
    ):
        ingest([tmp_path / "in"], tmp_path / "d.h5", QUIET)
    assert not (tmp_path / "d.h5").exists()


def test_receivers_outside_the_velocity_grid_are_refused_by_the_writer_and_validate(tmp_path):
    acquisition, seismic, velocity = _outside_grid_survey(tmp_path / "in")
    shots = tmp_path / "in" / "shots.segy"
    record = SourceRecord(shots, "shots", shots.stat().st_size, "0" * 64)
    origin = OriginRecord("in", "segy", tmp_path / "in")
    # The writer refuses a labelled sample outside its grid, whoever planned it (nothing is left behind).
    narrow = dataclasses.replace(schema.DatasetGeometry.from_acquisition(acquisition), grid_shape=(70, 60))
    plan = SamplePlan(1, 0, 140, lambda: (seismic[0], velocity[0]))
    with pytest.raises(
        UserError, match=r"sample 1 \(origin 0\): receiver 61 at \(depth, x\) = \(10, 600\) m"
    ):
        write_dataset(tmp_path / "d.h5", [plan], narrow, True, [record], QUIET, "test", [origin])
    assert not (tmp_path / "d.h5").exists()

    # A file that says so anyway (written on a 70 x 70 grid, its models then cut to 70 x 60): validate
    # refuses the nominal geometry (structure) and each sample's positions (values).
    wide = schema.DatasetGeometry.from_acquisition(acquisition)
    model = np.full((70, 70), 2000.0, np.float32)
    plan = SamplePlan(1, 0, 140, lambda: (seismic[0], model))
    path = write_dataset(tmp_path / "d.h5", [plan], wide, True, [record], QUIET, "test", [origin])
    with h5py.File(path, "r+") as h5:
        h5["geometry"].attrs["grid_shape"] = np.array([70, 60])
        for name in ("velocity", "edges"):
            data = h5[name][:, :, :60]
            del h5[name]
            h5.create_dataset(name, data=data, chunks=(1, 70, 60), maxshape=(None, 70, 60))
    message = (
        r"receiver 61 at \(depth, x\) = \(10, 600\) m lies outside the velocity grid \(depth 0-690 m, x 0-590 m: "
        r"70 x 60 cells of 10 m\); 10 receiver\(s\) outside, up to x = 690 m"
    )
    with pytest.raises(schema.SchemaError, match=r"the nominal geometry's " + message):
        schema.validate(path, check_values=False)
    with h5py.File(path, "r+") as h5:  # a nominal geometry inside the grid; the sample's own positions not
        h5["geometry/receiver_positions_m"][60:, 1] = 590.0
    with pytest.raises(schema.SchemaError, match=r"holds invalid values: sample 0: " + message):
        schema.validate(path)


def _delays(per_model_ms, per_trace=None):
    """``edit_headers`` setting DelayRecordingTime (byte 109, ms) per model, or per trace."""

    def edit(headers):
        model = headers["UnassignedInt1"] - 1
        headers["DelayRecordingTime"] = np.asarray(per_model_ms)[model]
        if per_trace is not None:
            headers["DelayRecordingTime"] = np.asarray(per_trace)

    return edit


def test_a_common_recording_delay_is_the_datasets_start_time(tmp_path):
    seismic = encoded_seismic(2, GEOMETRY)
    write_fixture(tmp_path / "in" / "shots.segy", seismic, GEOMETRY, edit_headers=_delays([4, 4]))
    write_velocity_models(tmp_path / "in" / "velocity.segy", layered_velocity(2, GEOMETRY), 10.0, 0)
    path = ingest([tmp_path / "in"], tmp_path / "d.h5", QUIET)
    with schema.open_dataset(path) as h5:
        assert schema.read_geometry(h5).start_time_s == pytest.approx(0.004)
        assert schema.read_sample_start_times(h5) == pytest.approx([0.004, 0.004])
        assert np.array_equal(h5["seismic"][()], seismic), "nothing shifted"


def test_different_recording_delays_are_refused_unless_aligned(tmp_path):
    seismic = encoded_seismic(2, GEOMETRY)
    folder = tmp_path / "in"
    write_fixture(folder / "shots.segy", seismic, GEOMETRY, edit_headers=_delays([0, 4]))
    write_velocity_models(folder / "velocity.segy", layered_velocity(2, GEOMETRY), 10.0, 0)
    with pytest.raises(
        UserError,
        match=r"sample 2: its traces start 4 ms after the shot \(DelayRecordingTime, byte 109\), the dataset's time "
        r"axis at 0 ms: .* --set regularization.start_time_s=0",
    ):
        ingest([folder], tmp_path / "d.h5", QUIET)

    aligned = dataclasses.replace(QUIET, regularization=RegularizationConfig(start_time_s=0.0))
    path = ingest([folder], tmp_path / "d.h5", aligned)
    with schema.open_dataset(path) as h5:
        stored = h5["seismic"][()]
        assert schema.read_sample_start_times(h5).tolist() == [0.0, 0.0]
    assert np.array_equal(stored[0], seismic[0]), "sample 1 already starts at 0 ms"
    # Sample 2 was recorded from 4 ms = 2 samples of 2 ms: two zeros in front, the last two samples cut.
    assert np.array_equal(stored[1][:, 2:], seismic[1][:, :-2]) and not stored[1][:, :2].any()

    # Append a sample recorded from 6 ms: aligned to the dataset's 0 ms too (3 samples).
    late = encoded_seismic(1, GEOMETRY, first_model=2)
    write_fixture(
        tmp_path / "late" / "shots.segy", late, GEOMETRY, first_model=2, edit_headers=_delays([6, 6, 6])
    )
    write_velocity_models(tmp_path / "late" / "velocity.segy", layered_velocity(1, GEOMETRY, 2), 10.0, 2)
    with pytest.raises(UserError, match=r"its traces start 6 ms after the shot"):
        ingest([tmp_path / "late"], path, QUIET, append=True)
    ingest([tmp_path / "late"], path, aligned, append=True)
    with h5py.File(path, "r") as h5:
        assert np.array_equal(h5["seismic"][2][:, 3:], late[0][:, :-3]) and not h5["seismic"][2][:, :3].any()


def test_delays_within_a_sample_and_off_grid_delays(tmp_path):
    folder = tmp_path / "in"
    per_trace = np.zeros(12, dtype=int)
    per_trace[7] = 4  # one trace of sample 2 starts later
    write_fixture(
        folder / "shots.segy", encoded_seismic(2, GEOMETRY), GEOMETRY, edit_headers=_delays([0, 0], per_trace)
    )
    write_velocity_models(folder / "velocity.segy", layered_velocity(2, GEOMETRY), 10.0, 0)
    with pytest.raises(UserError, match=r"sample 2: its traces start 0 to 4 ms after the shot"):
        ingest([folder], tmp_path / "d.h5", QUIET)
    aligned = dataclasses.replace(QUIET, regularization=RegularizationConfig(start_time_s=0.0))
    path = ingest([folder], tmp_path / "d.h5", aligned)
    with h5py.File(path, "r") as h5:
        trace = h5["seismic"][1, 0, :, 1]  # sample 2, shot 1, receiver 2 = file trace 8
    original = encoded_seismic(2, GEOMETRY)[1, 0, :, 1]
    assert np.array_equal(trace, np.r_[0, 0, original[:-2]]), "each trace shifted by its own delay"

    write_fixture(folder / "shots.segy", encoded_seismic(2, GEOMETRY), GEOMETRY, edit_headers=_delays([0, 3]))
    with pytest.raises(
        UserError,
        match=r"sample 2: a trace starts at 3 ms, which is not a whole number of 2 ms samples",
    ):
        ingest([folder], tmp_path / "e.h5", aligned)
