"""Stitching: taper weights, exactness, no seams on a smooth model, streaming with bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.stitching import StitchingConfig, StreamingStitcher, column_weights, stitch_in_memory

DEPTH, WIDTH = 6, 24


def smooth(num_columns: int) -> np.ndarray:
    x = np.arange(num_columns)[None, :]
    z = np.arange(DEPTH)[:, None]
    return (2000 + 50 * z + 300 * np.sin(2 * np.pi * x / 90.0)).astype(np.float64)


def windows_of(section: np.ndarray, starts, bias=None):
    maps = []
    for k, start in enumerate(starts):
        window = section[:, start : start + WIDTH].copy()
        if bias is not None:
            window += bias[k]
        maps.append({"velocity_mps": window})
    return maps


@pytest.mark.parametrize("taper", ["tukey", "hann", "uniform"])
def test_weights_positive_symmetric_and_bounded(taper):
    weights = column_weights(WIDTH, StitchingConfig(taper=taper))
    assert weights.shape == (WIDTH,)
    assert np.all(weights > 0) and np.all(weights <= 1.0), weights
    np.testing.assert_allclose(weights, weights[::-1], err_msg="weights must be symmetric")
    if taper == "tukey":
        ramp = round(0.5 * WIDTH / 2)
        assert np.all(weights[ramp:-ramp] == 1.0), "tukey weights are 1 between the ramps"
        assert weights[0] < 0.05, "the ramp starts near 0"


def test_hann_windows_half_a_width_apart_sum_to_a_constant():
    weights = column_weights(WIDTH, StitchingConfig(taper="hann"))
    total = weights[WIDTH // 2 :] + weights[: WIDTH // 2]
    np.testing.assert_allclose(total, 1.0, atol=1e-12)


@pytest.mark.parametrize("taper", ["tukey", "hann", "uniform"])
def test_stitching_windows_of_one_section_reproduces_it_exactly(taper):
    section = smooth(100)
    starts = [0, 10, 25, 40, 52, 64, 76]  # uneven overlaps
    result, weight = stitch_in_memory(100, starts, windows_of(section, starts), StitchingConfig(taper=taper))
    covered = weight > 0
    assert covered[: 76 + WIDTH].all()
    np.testing.assert_allclose(result["velocity_mps"][:, covered], section[:, covered], rtol=0, atol=1e-3)


def test_uncovered_columns_are_nan_with_zero_weight():
    section = smooth(80)
    starts = [0, 50]  # columns 24..49 have no window
    result, weight = stitch_in_memory(80, starts, windows_of(section, starts))
    assert np.all(weight[24:50] == 0) and np.all(weight[:24] > 0) and np.all(weight[50:74] > 0)
    assert np.isnan(result["velocity_mps"][:, 24:50]).all()
    assert np.isnan(result["velocity_mps"][:, 74:]).all(), "columns after the last window are uncovered too"
    np.testing.assert_allclose(result["velocity_mps"][:, 50:74], section[:, 50:74], atol=1e-3)


def test_no_seams_where_windows_disagree():
    """Windows = smooth model + a different constant per window (as a network's windows differ).

    A plain average jumps by half the difference at every window edge; the tapered blend spreads the change over
    the ramp, so the largest column-to-column step of the stitched section stays close to the smooth model's own.
    """
    num_columns = 24 + 12 * 9
    section = smooth(num_columns)
    starts = list(range(0, num_columns - WIDTH + 1, 12))
    bias = np.random.default_rng(3).uniform(-60, 60, len(starts))
    bias_jump = np.max(np.abs(np.diff(bias)))

    def largest_extra_step(taper):
        result, _ = stitch_in_memory(
            num_columns, starts, windows_of(section, starts, bias), StitchingConfig(taper=taper)
        )
        residual = result["velocity_mps"].astype(np.float64) - section  # the blended bias alone
        return np.max(np.abs(np.diff(residual, axis=1)))

    uniform_step = largest_extra_step("uniform")
    tukey_step = largest_extra_step("tukey")
    hann_step = largest_extra_step("hann")
    assert uniform_step > 0.3 * bias_jump, "the plain average should show the seams this test is about"
    # Tukey ramp of 6 columns: the blend's slope is at most ~ (pi / 2) / 6 of the jump per column.
    assert tukey_step < 0.3 * bias_jump, (tukey_step, bias_jump)
    assert hann_step < 0.3 * bias_jump, (hann_step, bias_jump)


def test_streaming_sink_gets_every_column_once_in_order_and_memory_is_one_window():
    num_columns = 24 + 12 * 40
    section = smooth(num_columns)
    starts = list(range(0, num_columns - WIDTH + 1, 12))
    received = []

    def sink(first, blocks, weight):
        received.append((first, blocks["velocity_mps"].shape[1]))
        np.testing.assert_allclose(blocks["velocity_mps"], section[:, first : first + len(weight)], atol=1e-3)

    stitcher = StreamingStitcher(num_columns, DEPTH, WIDTH, ("velocity_mps",), sink)
    for start, window in zip(starts, windows_of(section, starts), strict=True):
        stitcher.add(start, window)
        assert stitcher._sums["velocity_mps"].shape == (DEPTH, WIDTH), "the buffer must stay one window wide"
    stitcher.finish()
    position = 0
    for first, count in received:
        assert first == position, "blocks must arrive left to right without gaps or repeats"
        position += count
    assert position == num_columns


def test_out_of_order_or_misshaped_windows_are_refused():
    stitcher = StreamingStitcher(60, DEPTH, WIDTH, ("velocity_mps",), lambda *args: None)
    stitcher.add(10, {"velocity_mps": np.zeros((DEPTH, WIDTH))})
    with pytest.raises(ValueError, match="in order of their first column"):
        stitcher.add(5, {"velocity_mps": np.zeros((DEPTH, WIDTH))})
    with pytest.raises(ValueError, match="outside the section"):
        stitcher.add(50, {"velocity_mps": np.zeros((DEPTH, WIDTH))})
    with pytest.raises(ValueError, match="must be"):
        stitcher.add(20, {"velocity_mps": np.zeros((DEPTH, WIDTH + 1))})
    with pytest.raises(ValueError, match="taper_fraction"):
        StitchingConfig(taper_fraction=0.0)
