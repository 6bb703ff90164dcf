"""Survey geometry from trace headers, checks against the model's window, regridding and sliding windows.

The line (``line_fixtures.simulate_line``): a 120-column layered section, a shot every 20 m, simulated by the
engine once; each test writes the variant of the survey it needs (SEG-Y through segyio).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.errors import UserError
from data_prep.schema import DatasetGeometry
from pipeline.windows import (
    LineConfig,
    ModelLayout,
    RegridConfig,
    WindowConfig,
    WindowReader,
    check_geometry,
    read_survey_line,
)
from tests.pipeline import line_fixtures as F


@pytest.fixture(scope="module")
def line():
    return F.simulate_line()


@pytest.fixture(scope="module")
def layout():
    return ModelLayout.from_geometry(DatasetGeometry.from_acquisition(F.window_geometry()))


def plan_for(paths, layout, regrid=False, **regrid_options):
    survey = read_survey_line(paths, grid_spacing_m=F.GRID_SPACING_M)
    regrid_config = RegridConfig(enabled=regrid, **regrid_options)
    check = check_geometry(survey, layout, LineConfig(), regrid_config)
    return survey, check, regrid_config


def read_all(survey, layout, plan, regrid_config):
    reader = WindowReader(survey, layout, plan, regrid_config)
    return np.stack([reader.read(w) for w in range(plan.num_windows)])


def expected_windows(line, plan):
    starts = plan.column_start + int(round(plan.origin_m / F.GRID_SPACING_M))
    return np.stack([F.window_seismic(line, int(s)) for s in starts])


def test_fixed_spread_line_gives_half_overlapping_windows_with_exact_gathers(tmp_path, line, layout):
    path = F.write_line(tmp_path / "line.sgy", line)
    survey, check, regrid = plan_for([path], layout)
    assert survey.num_shots == 60
    np.testing.assert_allclose(survey.shot_x_m, np.arange(0, 1200, 20.0))
    assert np.all(np.diff(survey.trace_start) == 120), "every shot records all 120 receivers"
    assert check.mismatches == [] and check.refusal is None
    plan = check.raise_if_refused()
    assert plan.origin_m == pytest.approx(0.0)
    np.testing.assert_array_equal(plan.column_start, np.arange(0, 97, 12))
    assert plan.num_columns == 120 and plan.uncovered_columns().size == 0
    # Model shot i of window w is the survey shot at x = (start + source cell) * 10 m.
    expected_shots = (plan.column_start[:, None] + np.asarray(F.MODEL_SOURCE_X_CELLS)[None, :]) // 2
    np.testing.assert_array_equal(plan.shot_index, expected_shots)
    assert not plan.receivers_interpolated.any() and not plan.time_resampled
    np.testing.assert_array_equal(read_all(survey, layout, plan, regrid), expected_windows(line, plan))


def test_trace_order_does_not_matter(tmp_path, line, layout):
    path = F.write_line(tmp_path / "shuffled.sgy", line, shuffle_seed=5)
    survey, check, regrid = plan_for([path], layout)
    plan = check.raise_if_refused()
    np.testing.assert_array_equal(read_all(survey, layout, plan, regrid), expected_windows(line, plan))


def test_line_split_over_two_files_is_one_line(tmp_path, line, layout):
    first = F.write_line(tmp_path / "a.sgy", line, shots=slice(0, 31))
    second = F.write_line(tmp_path / "b.sgy", line, shots=slice(31, None))
    survey, check, regrid = plan_for([second, first], layout)
    assert survey.num_shots == 60
    plan = check.raise_if_refused()
    np.testing.assert_array_equal(read_all(survey, layout, plan, regrid), expected_windows(line, plan))


def test_line_at_an_azimuth_is_projected_onto_its_direction(tmp_path, line, layout):
    origin = (500_000.0, 4_200_000.0)
    path = F.write_line(tmp_path / "rotated.sgy", line, origin_xy=origin, azimuth_deg=30.0)
    survey, check, regrid = plan_for([path], layout)
    direction = np.array(survey.frame.direction)
    np.testing.assert_allclose(direction, [np.cos(np.pi / 6), np.sin(np.pi / 6)], atol=1e-6)
    np.testing.assert_allclose(np.diff(survey.shot_x_m), 20.0, atol=0.02)
    plan = check.raise_if_refused()
    np.testing.assert_array_equal(plan.column_start, np.arange(0, 97, 12))
    gathers = read_all(survey, layout, plan, regrid)
    starts = np.arange(0, 97, 12)
    np.testing.assert_array_equal(gathers, np.stack([F.window_seismic(line, int(s)) for s in starts]))
    x, y = survey.frame.to_xy(plan.column_x_m([0, 119]))
    np.testing.assert_allclose(x, [origin[0], origin[0] + 1190 * np.cos(np.pi / 6)], atol=0.02)
    np.testing.assert_allclose(y, [origin[1], origin[1] + 1190 * np.sin(np.pi / 6)], atol=0.02)


def test_crooked_line_is_refused(tmp_path, line, layout):
    def bend(headers):
        headers["GroupY"] = np.where(headers["TraceNumber"] == 60, 3000, 0)  # 30 m off the line

    path = F.write_line(tmp_path / "crooked.sgy", line, edit_headers=bend)
    with pytest.raises(UserError, match=r"off the straight line.*line.max_crossline_m"):
        read_survey_line([path], grid_spacing_m=F.GRID_SPACING_M)


def test_moving_split_spread_works_and_end_on_spread_is_refused(tmp_path, line, layout):
    split = F.write_line(tmp_path / "split.sgy", line, spread_m=240.0)
    survey, check, regrid = plan_for([split], layout)
    assert np.diff(survey.trace_start).max() == 49
    plan = check.raise_if_refused()
    np.testing.assert_array_equal(read_all(survey, layout, plan, regrid), expected_windows(line, plan))

    end_on = F.write_line(tmp_path / "end_on.sgy", line, spread_m=240.0, end_on=True)
    _, check, _ = plan_for([end_on], layout, regrid=True)
    with pytest.raises(
        UserError,
        match=r"No window position.*where the shots fit, the model receivers were not recorded.*recorded receivers at",
    ):
        check.raise_if_refused()


@pytest.mark.parametrize("spread_m", [None, 240.0], ids=["fixed spread", "moving split spread"])
def test_read_span_adds_the_receivers_each_shot_recorded_beyond_the_window(tmp_path, line, layout, spread_m):
    """``read_span`` (the refinement's longer offsets): the window's own gathers, then the receiver spacing
    continued up to ``padding_cells`` columns each side, stopping at the outermost recorded receiver; each
    trace is the shot's recorded one, and a receiver a shot did not record (a moving spread) is masked out."""
    path = F.write_line(tmp_path / "line.sgy", line, spread_m=spread_m)
    survey, check, regrid = plan_for([path], layout)
    plan = check.raise_if_refused()
    reader = WindowReader(survey, layout, plan, regrid)
    padding, width = 10, F.WINDOW_CELLS
    for window in (0, plan.num_windows // 2, plan.num_windows - 1):
        start = int(plan.column_start[window])
        shot_columns = line.shot_columns[plan.shot_index[window]]
        reach = np.inf if spread_m is None else spread_m / F.GRID_SPACING_M
        first = int(max(0, shot_columns.min() - reach))
        last = int(min(line.num_columns - 1, shot_columns.max() + reach))
        span = reader.read_span(window, padding)
        assert (span.left_cells, span.right_cells) == (
            min(padding, start - first),
            min(padding, last - (start + width - 1)),
        )
        columns = np.arange(start - span.left_cells, start + width + span.right_cells)
        np.testing.assert_allclose(span.receiver_x_m, (columns - start) * F.GRID_SPACING_M)
        recorded = (np.abs(columns[None, :] - shot_columns[:, None]) <= reach).astype(float)
        np.testing.assert_array_equal(span.trace_mask, recorded)
        expected = line.gathers[plan.shot_index[window]][:, :, columns] * recorded[:, None, :]
        np.testing.assert_array_equal(span.gathers, expected.astype(np.float32))
        inside = slice(span.left_cells, span.left_cells + width)
        np.testing.assert_array_equal(span.gathers[:, :, inside], reader.read(window))
    middle = reader.read_span(plan.num_windows // 2, padding)
    assert middle.left_cells == middle.right_cells == padding, "the middle window gets the full padding"
    if spread_m is not None:
        assert middle.trace_mask.min() == 0.0, "a moving spread leaves some receivers unrecorded"
    assert reader.read_span(0, 0).gathers.shape == (3, F.NUM_SAMPLES, width)
    with pytest.raises(ValueError, match="padding_cells must be >= 0"):
        reader.read_span(0, -1)


def test_line_shorter_than_one_window_is_refused(tmp_path, line, layout):
    path = F.write_line(tmp_path / "short.sgy", line, shots=slice(0, 8))
    _, check, _ = plan_for([path], layout, regrid=True)
    with pytest.raises(UserError, match=r"shorter than one window: its 8 shot\(s\) span 140 m.*span 220 m"):
        check.raise_if_refused()


def test_regular_shot_spacing_within_one_cell_of_the_layout_is_regridded(tmp_path, line, layout):
    """Shots every 60 m: the model's shots (0, 120, 220 m) fit a window starting 10 m after a shot only with
    every shot moved by one cell (10 m): accepted with --regrid by default, each move reported."""
    path = F.write_line(tmp_path / "sparse.sgy", line, shots=slice(None, None, 3))
    _, check, _ = plan_for([path], layout)
    with pytest.raises(
        UserError, match=r"--regrid, i\.e\. --set regrid\.enabled=true .*cost: shots used up to"
    ):
        check.raise_if_refused()
    survey, check, regrid = plan_for([path], layout, regrid=True)
    plan = check.raise_if_refused()
    assert np.abs(plan.shot_offset_m).max() == pytest.approx(10.0)
    assert plan.shot_offset_m.shape == (plan.num_windows, 3)
    # The window's shots are the survey shots nearest to the model's positions.
    targets = plan.window_origin_m()[:, None] + layout.source_x_m[None, :]
    np.testing.assert_allclose(survey.shot_x_m[plan.shot_index] - targets, plan.shot_offset_m)
    assert any("10.00 m from the model's positions" in m.describe() for m in check.mismatches)


def test_shot_spacing_that_cannot_fit_the_layout_is_refused_naming_the_override(tmp_path, line, layout):
    path = F.write_line(tmp_path / "sparse.sgy", line, shots=slice(None, None, 4))  # a shot every 80 m
    _, check, _ = plan_for([path], layout, regrid=True)
    with pytest.raises(UserError) as refusal:
        check.raise_if_refused()
    message = str(refusal.value)
    assert "no survey shot lies near a model shot" in message and "the nearest is 20.00 m away" in message
    assert "--set regrid.shot_tolerance_m=20 admits the closest position" in message, message
    assert "off by up to 13.3 ms at 1500 m/s" in message, message
    # The override named in the message works.
    _, check, _ = plan_for([path], layout, regrid=True, shot_tolerance_m=20.0)
    assert check.raise_if_refused().num_windows >= 1


def test_windows_prefer_starts_whose_shots_are_on_the_model_positions(tmp_path, line, layout):
    """Shots every 20 m, one cell of tolerance: odd starts need shots moved 10 m, even ones are exact; with
    --regrid the planner still takes the exact ones."""
    path = F.write_line(tmp_path / "line.sgy", line)
    _, check, _ = plan_for([path], layout, regrid=True)
    plan = check.raise_if_refused()
    np.testing.assert_array_equal(plan.column_start, np.arange(0, 97, 12))
    assert not np.any(plan.shot_offset_m)


def test_shots_a_few_metres_off_are_refused_then_regridded_to_the_nearest_shot(tmp_path, line, layout):
    rng = np.random.default_rng(1)
    jitter = rng.uniform(1.0, 4.0, len(line.shot_columns)) * rng.choice([-1, 1], len(line.shot_columns))
    path = F.write_line(tmp_path / "jitter.sgy", line, shot_jitter_m=jitter)
    _, check, _ = plan_for([path], layout)
    with pytest.raises(UserError) as refusal:
        check.raise_if_refused()
    message = str(refusal.value)
    assert (
        "shots up to" in message
        and "--regrid, i.e. --set regrid.enabled=true (nearest shot within 10 m" in message
    )
    assert "cost: shots used up to" in message, message

    survey, check, regrid = plan_for([path], layout, regrid=True)
    plan = check.raise_if_refused()
    assert plan.num_windows == 9
    assert np.abs(plan.shot_offset_m).max() <= 4.0 + 1e-6
    assert np.abs(plan.shot_offset_m).max() > 3.0
    np.testing.assert_array_equal(read_all(survey, layout, plan, regrid), expected_windows(line, plan))

    # Any position is within half a cell of the grid, so a tighter tolerance shows the refusal.
    _, check, _ = plan_for([path], layout, regrid=True, shot_tolerance_m=0.5)
    with pytest.raises(UserError, match=r"no survey shot within 0\.5 m, the nearest is [1-4]\.\d\d m away"):
        check.raise_if_refused()


def test_other_sample_interval_is_refused_naming_it_then_resampled(tmp_path, line, layout):
    fine = F.resampled(line, 2, 1, num_samples=2 * F.NUM_SAMPLES)
    path = F.write_line(tmp_path / "half_ms.sgy", fine)
    _, check, _ = plan_for([path], layout)
    with pytest.raises(
        UserError, match=r"sample interval 0\.5 ms instead of the model's 1 ms \(fix: --regrid"
    ):
        check.raise_if_refused()

    survey, check, regrid = plan_for([path], layout, regrid=True)
    plan = check.raise_if_refused()
    assert plan.time_resampled
    gathers = read_all(survey, layout, plan, regrid)
    expected = expected_windows(line, plan)
    assert gathers.shape == expected.shape
    relative = np.linalg.norm(gathers - expected) / np.linalg.norm(expected)
    assert relative < 0.01, f"upsampled then resampled back should match within 1 %, got {relative:.4f}"


def test_shorter_traces_are_refused_then_zero_padded(tmp_path, line, layout):
    short = dataclasses.replace(line, gathers=line.gathers[:, :200])
    path = F.write_line(tmp_path / "short_traces.sgy", short)
    _, check, _ = plan_for([path], layout)
    with pytest.raises(
        UserError, match=r"traces last 199 ms \(200 samples\) instead of the model's 255 ms.*zero-padded"
    ):
        check.raise_if_refused()
    survey, check, regrid = plan_for([path], layout, regrid=True)
    plan = check.raise_if_refused()
    gathers = read_all(survey, layout, plan, regrid)
    expected = expected_windows(line, plan)
    np.testing.assert_array_equal(gathers[:, :, :200], expected[:, :, :200])
    assert not gathers[:, :, 200:].any()


def test_coarser_receivers_are_refused_then_interpolated(tmp_path, line, layout):
    path = F.write_line(tmp_path / "coarse.sgy", line, receiver_step_cells=2)  # receivers every 20 m
    _, check, _ = plan_for([path], layout)
    with pytest.raises(
        UserError, match=r"model receivers not recorded at their exact positions.*interpolated linearly"
    ):
        check.raise_if_refused()

    survey, check, regrid = plan_for([path], layout, regrid=True)
    plan = check.raise_if_refused()
    assert plan.receivers_interpolated.all()
    # Receivers were recorded up to x = 1180 m and interpolation does not extrapolate. The last window with
    # exact shots ends at 1170 m; one more (start 950 m, its shots moved one cell) reaches 1180 m.
    assert plan.column_start[-2] + 23 == 117 and plan.column_start[-1] + 23 == 118
    np.testing.assert_array_equal(plan.shot_offset_m[-1], -10.0)
    assert not plan.shot_offset_m[:-1].any()
    exact = dataclasses.replace(
        plan,
        column_start=plan.column_start[:-1],
        shot_index=plan.shot_index[:-1],
        shot_offset_m=plan.shot_offset_m[:-1],
        receivers_interpolated=plan.receivers_interpolated[:-1],
    )
    gathers = read_all(survey, layout, exact, regrid)
    expected = expected_windows(line, exact)
    # Even receivers were recorded; odd ones are the mean of their recorded neighbours.
    np.testing.assert_array_equal(gathers[..., 0:23:2], expected[..., 0:23:2])
    np.testing.assert_allclose(
        gathers[..., 1:22:2], 0.5 * (expected[..., 0:21:2] + expected[..., 2:23:2]), rtol=1e-5, atol=1e-6
    )

    _, check, _ = plan_for([path], layout, regrid=True, receivers="nearest")
    with pytest.raises(UserError, match=r"No window position.*--set regrid\.receiver_tolerance_m=10 admits"):
        check.raise_if_refused()
    _, check, _ = plan_for([path], layout, regrid=True, max_receiver_gap_m=15.0)
    with pytest.raises(UserError, match=r"No window position.*--set regrid\.max_receiver_gap_m=20 admits"):
        check.raise_if_refused()
    survey, check, regrid = plan_for(
        [path], layout, regrid=True, receivers="nearest", receiver_tolerance_m=10.0, shot_tolerance_m=5.0
    )
    plan = check.raise_if_refused()
    assert plan.column_start[-1] == 96, (
        "nearest receivers may use the receiver at 1180 m for the model's 1190 m"
    )
    gathers = read_all(survey, layout, plan, regrid)
    expected = expected_windows(line, plan)
    np.testing.assert_array_equal(gathers[..., 0:23:2], expected[..., 0:23:2])
    np.testing.assert_array_equal(
        gathers[..., 1:23:2], expected[..., 0:22:2]
    )  # ties go to the left neighbour


def test_depth_mismatch_cannot_be_regridded_and_every_mismatch_is_listed(tmp_path, line, layout):
    fine = F.resampled(line, 2, 1, num_samples=2 * F.NUM_SAMPLES)
    jitter = np.full(len(line.shot_columns), 3.0)
    path = F.write_line(tmp_path / "everything.sgy", fine, source_depth_m=20.0, shot_jitter_m=jitter)
    _, check, _ = plan_for([path], layout, regrid=True)
    with pytest.raises(UserError) as refusal:
        check.raise_if_refused()
    message = str(refusal.value)
    assert "source depths 20..20 m below the datum in the headers instead of the model's 0 m" in message
    assert "none by regridding" in message and "--set line.depth_tolerance_m=20 (" in message, message
    assert "arrivals may be off by up to 13.3 ms at 1500 m/s" in message, message
    assert "sample interval" not in message, "with --regrid the interval is fixed, so it is not listed"
    _, check, _ = plan_for([path], layout, regrid=False)
    with pytest.raises(UserError) as refusal:
        check.raise_if_refused()
    message = str(refusal.value)
    for expected in ("(1)", "(2)", "(3)", "sample interval 0.5 ms", "source depths", "shots up to 3.00 m"):
        assert expected in message, f"{expected!r} missing from: {message}"


def test_zero_depths_in_the_headers_against_a_model_at_one_cell_depth_give_a_warning(tmp_path, line, layout):
    """Headers with depths 0 (left unset), a model trained with sources and receivers 10 m deep: accepted,
    with one warning per kind naming the cost; two cells off is still refused."""
    deep = dataclasses.replace(
        layout, source_depth_m=np.full(3, 10.0), receiver_depth_m=np.full(layout.num_receivers, 10.0)
    )
    path = F.write_line(tmp_path / "line.sgy", line)  # depths 0
    survey = read_survey_line([path], grid_spacing_m=F.GRID_SPACING_M)
    check = check_geometry(survey, deep)
    plan = check.raise_if_refused()
    assert plan.num_windows == 9 and check.mismatches == []
    assert len(check.warnings) == 2, check.warnings
    assert check.warnings[0].startswith(
        "source depths 0..0 m below the datum in the headers instead of the model's 10 m (zero depths"
    )
    assert "receiver depths" in check.warnings[1] and "6.7 ms" in check.warnings[1], check.warnings
    deeper = dataclasses.replace(deep, source_depth_m=np.full(3, 20.0))
    with pytest.raises(UserError, match=r"source depths 0\.\.0 m .*--set line\.depth_tolerance_m=20 "):
        check_geometry(survey, deeper).raise_if_refused()
    assert check_geometry(survey, deeper, LineConfig(depth_tolerance_m=20.0)).raise_if_refused()
    assert check_geometry(survey, layout).warnings == [], "equal depths: no warning"


def test_window_step_and_grid_origin_options(tmp_path, line, layout):
    path = F.write_line(tmp_path / "line.sgy", line)
    survey = read_survey_line([path], grid_spacing_m=F.GRID_SPACING_M)
    plan = check_geometry(survey, layout, window_config=WindowConfig(step_cells=20)).raise_if_refused()
    # Starts must be even (shots every 20 m); step 20 columns, and the last window reaches the line's end.
    np.testing.assert_array_equal(plan.column_start, [0, 20, 40, 60, 80, 96])
    plan = check_geometry(survey, layout, window_config=WindowConfig(step_cells=5)).raise_if_refused()
    assert np.all(np.diff(plan.column_start) == 4), "the largest even step within 5 columns is 4"


@pytest.mark.parametrize(
    "case, edit, expected",
    [
        (
            "no coordinates",
            lambda h: h.update(SourceX=0, GroupX=0, SourceY=0, GroupY=0),
            "coordinates .* are 0",
        ),
        ("recording delay", lambda h: h.update(DelayRecordingTime=40), "DelayRecordingTime, byte 109"),
        (
            "shot traces disagree",
            lambda h: h["SourceX"].__setitem__(5, h["SourceX"][5] + 5000),
            "disagree about the source position",
        ),
        (
            "duplicate receiver",
            lambda h: h["GroupX"].__setitem__(1, h["GroupX"][0]),
            "two traces record the receiver",
        ),
    ],
)
def test_bad_headers_are_refused_with_a_message(tmp_path, line, case, edit, expected):
    path = F.write_line(tmp_path / "bad.sgy", line, shots=slice(0, 12), edit_headers=edit)
    with pytest.raises(UserError, match=expected):
        read_survey_line([path], grid_spacing_m=F.GRID_SPACING_M)


def test_bad_inputs_are_refused_with_a_message(tmp_path, line):
    with pytest.raises(UserError, match="does not exist"):
        read_survey_line([tmp_path / "missing.sgy"])
    with pytest.raises(UserError, match="No input SEG-Y files"):
        read_survey_line([])
    truth = F.write_truth(tmp_path / "velocity.sgy", line)
    with pytest.raises(UserError, match="velocity-model file"):
        read_survey_line([truth])
    part = F.write_line(tmp_path / "a.sgy", line, shots=slice(0, 12))
    with pytest.raises(UserError, match="repeated position"):
        read_survey_line([part, part])
    not_segy = tmp_path / "notes.sgy"
    not_segy.write_text("not a seg-y file" * 400)
    with pytest.raises(UserError, match="not a readable SEG-Y|not a SEG-Y"):
        read_survey_line([not_segy])
