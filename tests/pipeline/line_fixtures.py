"""Survey-line fixtures for the inference tests, generated in code (see tests/pipeline/FIXTURES.md).

A small model window (16 x 24 cells of 10 m, 3 shots at x = 0, 120, 220 m, 24 receivers every 10 m at the
surface, 256 samples of 1 ms, 15 Hz Ricker) and a velocity section several windows wide. ``simulate_line``
runs the project's engine once for every shot of a line over the whole section (so each shot sees the whole
earth, as in a real survey); ``write_line`` writes the gathers as one prestack SEG-Y file (through segyio)
with standard headers and options for what real surveys do differently: shots a few metres off, a moving
spread, a rotated line (map coordinates at an azimuth), a coarser receiver spacing, another sample interval.

Bundles: ``OracleBundle`` returns the true velocity of each window (it is told the window's position), so
stitching and plumbing are checked exactly; ``keras_bundle`` saves a small untrained U-Net with
``pipeline.bundle.save_bundle`` (real normalisation and prediction path, meaningless values).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_prep.forward import EngineConfig, simulate
from data_prep.geometry import AcquisitionGeometry
from data_prep.normalization import NormalizationConfig, StatisticsAccumulator
from data_prep.schema import DatasetGeometry
from data_prep.segy_io import write_segy_traces, write_velocity_models
from pipeline.bundle import ModelBundle, amplitude_statistics

GRID_SPACING_M = 10.0
DEPTH_CELLS = 16
WINDOW_CELLS = 24
NUM_SAMPLES = 256
SAMPLE_INTERVAL_S = 0.001
PEAK_FREQUENCY_HZ = 15.0
MODEL_SOURCE_X_CELLS = (0, 12, 22)
ENGINE = EngineConfig(spatial_order=4, absorbing_width_cells=20, free_surface=False)
#: The fixtures' own simulations run as one engine call: one compilation per shape (threads would compile
#: one propagator per call size); results do not depend on it.
_FIXTURE_ENGINE = EngineConfig(
    spatial_order=4, absorbing_width_cells=20, free_surface=False, max_concurrent_calls=1
)
VELOCITY_RANGE_MPS = (1500.0, 3500.0)


def window_geometry() -> AcquisitionGeometry:
    """The model's acquisition window."""
    return AcquisitionGeometry(
        grid_shape=(DEPTH_CELLS, WINDOW_CELLS),
        grid_spacing_m=GRID_SPACING_M,
        num_samples=NUM_SAMPLES,
        sample_interval_s=SAMPLE_INTERVAL_S,
        peak_frequency_hz=PEAK_FREQUENCY_HZ,
        source_cells=tuple((0, x) for x in MODEL_SOURCE_X_CELLS),
        receiver_cells=tuple((0, x) for x in range(WINDOW_CELLS)),
    )


def engine_settings_dict() -> dict:
    """The engine settings as bundles record them (``data_prep.forward.engine_settings`` when present)."""
    try:
        from data_prep.forward import engine_settings
    except ImportError:
        return {
            "wavelet": "ricker",
            "peak_frequency_hz": PEAK_FREQUENCY_HZ,
            "spatial_order": ENGINE.spatial_order,
            "absorbing_width_cells": ENGINE.absorbing_width_cells,
            "free_surface": ENGINE.free_surface,
            "time_step_s": SAMPLE_INTERVAL_S,
        }
    return engine_settings(window_geometry(), ENGINE)


def smooth_section(num_columns: int) -> np.ndarray:
    """``(16, num_columns)`` float32 m/s: a depth gradient with a gentle lateral undulation (no interfaces)."""
    depth = np.arange(DEPTH_CELLS)[:, None]
    x_m = np.arange(num_columns)[None, :] * GRID_SPACING_M
    velocity = 1700.0 + 70.0 * depth + 150.0 * np.sin(2 * np.pi * x_m / 700.0) * (1 + depth / DEPTH_CELLS)
    return velocity.astype(np.float32)


def layered_section(num_columns: int) -> np.ndarray:
    """``(16, num_columns)`` float32 m/s: three layers whose interfaces undulate along the line."""
    x_m = np.arange(num_columns) * GRID_SPACING_M
    first = 5.0 + 1.5 * np.sin(2 * np.pi * x_m / 500.0)
    second = 10.5 + 2.0 * np.cos(2 * np.pi * x_m / 800.0)
    depth = np.arange(DEPTH_CELLS)[:, None]
    velocity = np.where(depth < first[None], 1800.0, np.where(depth < second[None], 2400.0, 3100.0))
    return velocity.astype(np.float32)


@dataclass(frozen=True)
class Line:
    """A simulated line: gathers of every shot at every section column (fixed spread over the section)."""

    velocity_mps: np.ndarray  # (depth, columns)
    shot_columns: np.ndarray  # (shots,)
    gathers: np.ndarray  # (shots, time, columns)
    sample_interval_s: float

    @property
    def num_columns(self) -> int:
        return self.velocity_mps.shape[1]


@functools.lru_cache(maxsize=8)
def simulate_line(
    num_columns: int = 120,
    shot_step_cells: int = 2,
    kind: str = "layered",
    sample_interval_s: float = SAMPLE_INTERVAL_S,
    num_samples: int = NUM_SAMPLES,
    peak_frequency_hz: float = PEAK_FREQUENCY_HZ,
    ricker_delay_s: float | None = None,
) -> Line:
    """Simulates a line with a shot every ``shot_step_cells`` and a receiver on every column (cached).

    ``kind``: ``"layered"`` (``layered_section``), ``"smooth"`` (``smooth_section``) or a family name of
    ``data_prep.velocity_models`` (one model of that family drawn over the whole line, seed 11).
    ``peak_frequency_hz``, ``ricker_delay_s``: the line's Ricker wavelet (a wavelet other than the model's
    training wavelet: 15 Hz peaking at the engine's default 72 ms); the model's window stays 15 Hz.
    """
    if kind == "layered":
        velocity = layered_section(num_columns)
    elif kind == "smooth":
        velocity = smooth_section(num_columns)
    else:  # a velocity-model family drawn over the whole line, e.g. "flatvel-a"
        from data_prep.velocity_models import generate_model

        velocity = generate_model(kind, seed=11, index=0, grid_shape=(DEPTH_CELLS, num_columns)).velocity_mps
    shot_columns = np.arange(0, num_columns, shot_step_cells)
    geometry = AcquisitionGeometry(
        grid_shape=velocity.shape,
        grid_spacing_m=GRID_SPACING_M,
        num_samples=num_samples,
        sample_interval_s=sample_interval_s,
        peak_frequency_hz=peak_frequency_hz,
        source_cells=tuple((0, int(x)) for x in shot_columns),
        receiver_cells=tuple((0, x) for x in range(num_columns)),
    )
    engine = dataclasses.replace(_FIXTURE_ENGINE, ricker_delay_s=ricker_delay_s)
    gathers = np.asarray(simulate(velocity, geometry, engine))[0]
    gathers.setflags(write=False)
    return Line(velocity, shot_columns, gathers, sample_interval_s)


def write_line(
    path: Path,
    line: Line,
    *,
    spread_m: float | None = None,
    end_on: bool = False,
    receiver_step_cells: int = 1,
    shot_jitter_m: np.ndarray | None = None,
    scale: float = 1.0,
    origin_xy: tuple[float, float] = (0.0, 0.0),
    azimuth_deg: float = 0.0,
    shots: slice = slice(None),
    source_depth_m: float = 0.0,
    edit_headers=None,
    shuffle_seed: int | None = None,
) -> Path:
    """Writes a line as one prestack SEG-Y file (IEEE float, big-endian) with standard headers.

    Args:
        spread_m: a moving split spread: each shot records the receivers within this distance; None records
            every column (a fixed spread over the line).
        end_on: with ``spread_m``: only the receivers ahead of the shot (larger x).
        receiver_step_cells: write every n-th receiver (a coarser receiver spacing).
        shot_jitter_m: added to each written shot's x position in the headers (the traces are unchanged).
        scale: multiplies the samples (survey amplitude units).
        origin_xy, azimuth_deg: map coordinates of along-line position 0 and the line's direction
            (clockwise from the x axis towards y).
        shots: which shots of the line to write.
        edit_headers: ``f(headers dict) -> None`` to damage or change headers before writing.
        shuffle_seed: write the traces in a random order.
    """
    shot_indices = np.arange(len(line.shot_columns))[shots]
    receiver_columns = np.arange(0, line.num_columns, receiver_step_cells)
    jitter = np.zeros(len(line.shot_columns)) if shot_jitter_m is None else np.asarray(shot_jitter_m, float)
    rows, traces = [], []
    for shot in shot_indices:
        shot_x = line.shot_columns[shot] * GRID_SPACING_M
        receivers = receiver_columns
        if spread_m is not None:
            offset = receivers * GRID_SPACING_M - shot_x
            keep = np.abs(offset) <= spread_m + 1e-6
            if end_on:
                keep &= offset >= 0
            receivers = receivers[keep]
        for receiver in receivers:
            rows.append((shot, shot_x + jitter[shot], receiver * GRID_SPACING_M, receiver))
            traces.append(line.gathers[shot, :, receiver])
    shot_number = np.asarray([r[0] for r in rows]) + 1
    source_along = np.asarray([r[1] for r in rows])
    group_along = np.asarray([r[2] for r in rows])
    receiver_number = np.asarray([r[3] for r in rows]) + 1
    angle = np.deg2rad(azimuth_deg)

    def to_cm(along, axis):
        base = origin_xy[axis] + along * (np.cos(angle) if axis == 0 else np.sin(angle))
        return np.rint(base * 100).astype(np.int64)

    count = len(rows)
    headers = {
        "TRACE_SEQUENCE_LINE": np.arange(1, count + 1),
        "TRACE_SEQUENCE_FILE": np.arange(1, count + 1),
        "FieldRecord": shot_number,
        "TraceNumber": receiver_number,
        "TraceIdentificationCode": 1,
        "offset": np.rint(group_along - source_along).astype(np.int64),
        "SourceDepth": int(round(source_depth_m * 100)),
        "ElevationScalar": -100,
        "SourceGroupScalar": -100,
        "SourceX": to_cm(source_along, 0),
        "SourceY": to_cm(source_along, 1),
        "GroupX": to_cm(group_along, 0),
        "GroupY": to_cm(group_along, 1),
        "CoordinateUnits": 1,
        "TRACE_SAMPLE_COUNT": line.gathers.shape[1],
        "TRACE_SAMPLE_INTERVAL": int(round(line.sample_interval_s * 1e6)),
    }
    samples = np.asarray(traces, dtype=np.float32) * np.float32(scale)
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(count)
        samples = samples[order]
        headers = {k: (v[order] if isinstance(v, np.ndarray) else v) for k, v in headers.items()}
    if edit_headers is not None:
        edit_headers(headers)
    return write_segy_traces(
        path,
        headers,
        samples,
        num_samples=line.gathers.shape[1],
        sample_interval=int(round(line.sample_interval_s * 1e6)),
    )


def resampled(line: Line, up: int, down: int, num_samples: int | None = None) -> Line:
    """The line's gathers band-limited resampled by ``up / down`` (``resample_poly``), cut to ``num_samples``."""
    from scipy.signal import resample_poly

    gathers = resample_poly(line.gathers, up, down, axis=1).astype(np.float32)
    if num_samples is not None:
        gathers = gathers[:, :num_samples]
    return Line(line.velocity_mps, line.shot_columns, gathers, line.sample_interval_s * down / up)


def flipped(line: Line) -> Line:
    """The line with every trace's sign reversed (another polarity convention)."""
    gathers = -line.gathers
    gathers.setflags(write=False)
    return dataclasses.replace(line, gathers=gathers)


def write_truth(path: Path, line: Line) -> Path:
    """The line's velocity section as SEG-Y (``write_velocity_models``: one trace per column, x = column * 10 m)."""
    return write_velocity_models(path, line.velocity_mps[None], GRID_SPACING_M, 0)


def window_seismic(line: Line, window_start_column: int) -> np.ndarray:
    """The exact ``(shots, time, receivers)`` model-geometry gathers of a window (for the reader's test)."""
    shot_lookup = {int(c): i for i, c in enumerate(line.shot_columns)}
    shots = [shot_lookup[window_start_column + s] for s in MODEL_SOURCE_X_CELLS]
    return line.gathers[shots][:, :, window_start_column : window_start_column + WINDOW_CELLS]


# ----------------------------------------------------------------------------------------------------------
# Bundles
# ----------------------------------------------------------------------------------------------------------


def training_windows(count: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A few windows (seismic, velocity) cut from the default simulated line, for training statistics."""
    line = simulate_line()
    seismic = np.stack([window_seismic(line, 16 * k) for k in range(count)])
    velocity = np.stack([line.velocity_mps[:, 16 * k : 16 * k + WINDOW_CELLS] for k in range(count)])
    return seismic, velocity


@functools.lru_cache(maxsize=1)
def training_statistics():
    seismic, velocity = training_windows()
    accumulator = StatisticsAccumulator(NormalizationConfig(velocity_range_mps=VELOCITY_RANGE_MPS))
    accumulator.update(seismic, velocity)
    return accumulator.result(), amplitude_statistics(seismic)


class OracleBundle(ModelBundle):
    """A 'model' that returns the true velocity of each window: exact stitching and plumbing checks.

    It implements ``predict_windows``, so ``pipeline.infer`` tells it where each window starts; it samples the
    true section (given on columns ``x = i * 10 m``) there with linear interpolation.
    """

    def __init__(
        self,
        true_velocity_mps: np.ndarray,
        *,
        edges: bool = True,
        bias_mps=None,
        interrupt_after: int | None = None,
    ) -> None:
        stats, amplitudes = training_statistics()
        super().__init__(
            model=None,
            stats=stats,
            geometry=DatasetGeometry.from_acquisition(window_geometry()),
            engine_settings=engine_settings_dict(),
            info={"family": "oracle", "amplitude_statistics": amplitudes},
        )
        self.truth = np.asarray(true_velocity_mps, dtype=np.float32)
        self.with_edges = edges
        self.bias_mps = bias_mps
        self.interrupt_after = (
            interrupt_after  # raise KeyboardInterrupt once this many windows were predicted
        )
        self.calls: list[float] = []

    @property
    def has_edges(self) -> bool:
        return self.with_edges

    def predict(self, seismic, batch_size: int = 16):
        raise AssertionError("infer must call predict_windows on a model that has it")

    def predict_windows(self, seismic, window_origins_m, batch_size: int = 16):
        self.check_input(seismic)
        if self.interrupt_after is not None and len(self.calls) >= self.interrupt_after:
            raise KeyboardInterrupt("simulated interruption")
        columns = np.arange(self.truth.shape[1]) * GRID_SPACING_M
        velocity = []
        for origin in window_origins_m:
            self.calls.append(float(origin))
            x_m = origin + np.arange(WINDOW_CELLS) * GRID_SPACING_M
            window = np.stack([np.interp(x_m, columns, row) for row in self.truth]).astype(np.float32)
            if self.bias_mps is not None:
                window = window + np.float32(self.bias_mps(origin))
            velocity.append(window)
        velocity = np.stack(velocity)
        edges = None
        if self.with_edges:
            jump = np.abs(np.diff(velocity, axis=1, prepend=velocity[:, :1])) > 100
            edges = jump.astype(np.float32)
        return {"velocity_mps": velocity, "edges": edges}


def keras_bundle(directory: Path, seed: int = 0) -> Path:
    """Saves a small untrained dual U-Net for the window geometry as a bundle folder."""
    import keras

    import models
    from pipeline.bundle import save_bundle

    keras.utils.set_random_seed(seed)
    model = models.build(
        "unet",
        {
            "family": "unet",
            "seismic_shape": [len(MODEL_SOURCE_X_CELLS), NUM_SAMPLES, WINDOW_CELLS],
            "grid_shape": [DEPTH_CELLS, WINDOW_CELLS],
            "front_end_filters": [8, 8],
            "front_end_kernel_sizes": [5, 3],
            "encoder_filters": [8, 16, 32],
            "blocks_per_level": 1,
        },
    )
    stats, amplitudes = training_statistics()
    return save_bundle(
        directory,
        model,
        stats=stats,
        geometry=DatasetGeometry.from_acquisition(window_geometry()),
        engine_settings=engine_settings_dict(),
        dataset_info={"path": "tests/pipeline/line_fixtures.py"},
        amplitude_stats=amplitudes,
        family="unet",
    )
