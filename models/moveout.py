"""A velocity-spectrum view of the shot gathers: what a processing geophysicist reads the deep velocity from.

A reflection from depth ``z`` under a layer stack of RMS velocity ``v`` arrives at offset ``h`` at
``t(h) = sqrt(t0² + (h / v)²)``; scanning trial velocities and stacking the gather along each hyperbola gives
a *velocity spectrum* (semblance, Neidell and Taner 1971), whose peak at each zero-offset time ``t0`` is the
RMS velocity above that reflector. The U-Net can learn moveout from the traces in principle, but on a few
thousand samples it does not: held-out families get the training mix's deep velocity trend instead of their
own (docs/training.md, "Longer offsets"). ``MoveoutSemblance`` computes the spectrum of every shot
inside the model (a fixed gather, no weights), and ``semblance_features`` turns it into a few feature
channels on the velocity grid, placed laterally by shot position, that the encoder sees next to the
recorded traces.

The spectrum needs the acquisition geometry in physical units (sample interval, receiver spacing, the
receiver column of every shot); ``pipeline.train`` fills it in from the dataset when the option is on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from models.layers import PACKAGE, ResizeToGrid, validate_filters


def semblance_gather_plan(
    time_steps: int,
    receivers: int,
    source_receivers: Sequence[float],
    time_step_s: float,
    receiver_spacing_m: float,
    velocities_m_s: np.ndarray,
    t0_stride: int,
    receiver_stride: int,
    stretch_mute: float,
    wavelet_delay_s: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Flat gather indices and validity of every (shot, t0, velocity, receiver) hyperbola sample.

    Returns:
        ``(indices, valid)``, both ``(shots, t0s, velocities, used receivers)``: ``indices`` into the
        ``(shots · time · receivers)`` flattening of one sample (nearest time sample), ``valid`` 1 where the
        hyperbola is inside the record and stretched by at most ``stretch_mute`` (``t ≤ (1 + stretch_mute)·t0``),
        else 0 (its index then points at sample 0 and is masked).
    """
    shots = len(source_receivers)
    t0 = np.arange(0, time_steps, t0_stride) * time_step_s
    columns = np.arange(0, receivers, receiver_stride)
    offsets = (
        np.abs(columns[None, :] - np.asarray(source_receivers, dtype=float)[:, None]) * receiver_spacing_m
    )
    # (shots, t0s, velocities, receivers)
    times = np.sqrt(
        t0[None, :, None, None] ** 2 + (offsets[:, None, None, :] / velocities_m_s[None, None, :, None]) ** 2
    )
    samples = np.rint((times + wavelet_delay_s) / time_step_s).astype(np.int64)
    # The stretch mute of NMO processing: far offsets at early t0 are where the direct wave and refractions
    # cross every hyperbola, and would pull the spectrum towards the near-surface velocity.
    valid = (samples < time_steps) & (times <= (1.0 + stretch_mute) * t0[None, :, None, None])
    samples = np.where(valid, samples, 0)
    flat = (np.arange(shots)[:, None, None, None] * time_steps + samples) * receivers + columns[
        None, None, None, :
    ]
    return flat.astype("int32"), valid.astype("float32")


@keras.saving.register_keras_serializable(package=PACKAGE)
class MoveoutSemblance(keras.layers.Layer):
    """The semblance velocity spectrum of every shot gather (no weights).

    For each shot, zero-offset time ``t0`` and trial RMS velocity ``v``, the traces are read along the
    hyperbola ``t = sqrt(t0² + (h / v)²)`` (``h`` the source-receiver offset, nearest sample) and the
    semblance ``S = Σ_t0-window (Σ_h d)² / (N · Σ_t0-window Σ_h d²)`` is taken over a short window of
    ``t0``: 1 where the gather is coherent along the hyperbola, near 0 where it is not. Semblance is a ratio,
    so the traces' polarity and amplitude scale do not change it.

    Args:
        source_receivers: receiver column of each shot (fractions allowed), in the order of the channels.
        time_step_s: sample interval of the input's rows, in seconds (after any time pooling).
        receiver_spacing_m: distance between neighbouring receivers, in metres.
        velocity_range_m_s: ``(lowest, highest)`` trial RMS velocity.
        num_velocities: trial velocities, evenly spaced over the range.
        t0_stride: one ``t0`` every this many input rows.
        receiver_stride: use every this-many-th receiver (the gather's cost scales with it).
        window: ``t0`` values averaged in the semblance's numerator and denominator (odd).
        stretch_mute: leave out the samples of a hyperbola later than ``(1 + stretch_mute) · t0`` (NMO stretch
            mute), where the direct wave and refractions dominate.
        wavelet_delay_s: time of the source wavelet's peak after the record's zero time (a Ricker wavelet is
            delayed by about 1.1 / peak frequency): every hyperbola is shifted by it.

    Call args:
        inputs: ``(batch, time, receivers, shots)`` with static sizes (the U-Net's shots-as-channels image).

    Returns:
        ``(batch, shots, t0s, velocities)`` semblance in [0, 1], ``t0s = ceil(time / t0_stride)``.
    """

    def __init__(
        self,
        source_receivers: Sequence[float],
        time_step_s: float,
        receiver_spacing_m: float,
        velocity_range_m_s: Sequence[float] = (1400.0, 5600.0),
        num_velocities: int = 24,
        t0_stride: int = 2,
        receiver_stride: int = 2,
        window: int = 3,
        stretch_mute: float = 1.0,
        wavelet_delay_s: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.source_receivers = [float(s) for s in source_receivers]
        if not self.source_receivers:
            raise ValueError("MoveoutSemblance needs the receiver column of at least one shot.")
        self.time_step_s = float(time_step_s)
        self.receiver_spacing_m = float(receiver_spacing_m)
        if not (self.time_step_s > 0 and self.receiver_spacing_m > 0):
            raise ValueError(
                "MoveoutSemblance needs a positive sample interval and receiver spacing. Received: "
                f"time_step_s={time_step_s}, receiver_spacing_m={receiver_spacing_m}"
            )
        low, high = (float(v) for v in velocity_range_m_s)
        if not 0 < low < high:
            raise ValueError(
                "`velocity_range_m_s` must be (lowest, highest) trial velocities in m/s, 0 < lowest < highest. "
                f"Received: velocity_range_m_s={velocity_range_m_s}"
            )
        self.velocity_range_m_s = [low, high]
        self.num_velocities, self.t0_stride, self.receiver_stride = validate_filters(
            (num_velocities, t0_stride, receiver_stride), "num_velocities, t0_stride and receiver_stride"
        )
        self.window = int(window)
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(
                f"`window` must be a positive odd number of t0 values. Received: window={window}"
            )
        self.wavelet_delay_s = float(wavelet_delay_s)
        self.stretch_mute = float(stretch_mute)
        if not self.stretch_mute > 0:
            raise ValueError(f"`stretch_mute` must be positive. Received: stretch_mute={stretch_mute}")

    def build(self, input_shape):
        _, steps, receivers, shots = input_shape
        if steps is None or receivers is None:
            raise ValueError(f"MoveoutSemblance needs static time and receiver sizes. Received {input_shape}")
        if shots != len(self.source_receivers):
            raise ValueError(
                f"MoveoutSemblance was given {len(self.source_receivers)} shot positions for {shots} shots: "
                "pass the receiver column of every shot of the data."
            )
        velocities = np.linspace(*self.velocity_range_m_s, self.num_velocities)
        # Constants derived from the configuration, not weights: nothing to save or load.
        self._indices, self._valid = semblance_gather_plan(
            int(steps),
            int(receivers),
            self.source_receivers,
            self.time_step_s,
            self.receiver_spacing_m,
            velocities,
            self.t0_stride,
            self.receiver_stride,
            self.stretch_mute,
            self.wavelet_delay_s,
        )
        self._count = self._valid.sum(axis=-1)

    def call(self, inputs):
        batch = ops.shape(inputs)[0]
        shots, t0s, velocities, _ = self._indices.shape
        flat = ops.reshape(ops.transpose(inputs, (0, 3, 1, 2)), (batch, -1))
        traces = ops.take(flat, ops.convert_to_tensor(self._indices), axis=1)
        traces = traces * ops.cast(ops.convert_to_tensor(self._valid), traces.dtype)
        stack = ops.square(ops.sum(traces, axis=-1))
        energy = ops.sum(ops.square(traces), axis=-1) * ops.cast(
            ops.convert_to_tensor(self._count), traces.dtype
        )
        if self.window > 1:

            def smooth(x):  # a moving average over t0, shot and velocity kept apart
                x = ops.reshape(ops.transpose(x, (0, 2, 1, 3)), (batch, t0s, shots * velocities))
                x = ops.average_pool(x, self.window, strides=1, padding="same")
                return ops.transpose(ops.reshape(x, (batch, t0s, shots, velocities)), (0, 2, 1, 3))

            stack, energy = smooth(stack), smooth(energy)
        # A floor relative to each gather's strongest energy keeps the ratio scale-free where the traces are
        # nearly silent; the absolute one makes a dead gather 0.
        floor = 1e-6 * ops.max(energy, axis=(2, 3), keepdims=True) + 1e-12
        return stack / (energy + floor)

    def compute_output_shape(self, input_shape):
        batch, steps, _, shots = input_shape
        return (batch, shots, -(-int(steps) // self.t0_stride), self.num_velocities)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "source_receivers": self.source_receivers,
                "time_step_s": self.time_step_s,
                "receiver_spacing_m": self.receiver_spacing_m,
                "velocity_range_m_s": self.velocity_range_m_s,
                "num_velocities": self.num_velocities,
                "t0_stride": self.t0_stride,
                "receiver_stride": self.receiver_stride,
                "window": self.window,
                "stretch_mute": self.stretch_mute,
                "wavelet_delay_s": self.wavelet_delay_s,
            }
        )
        return config


def receivers_from_shots(source_receivers: Sequence[float], receivers: int) -> np.ndarray:
    """``(receivers, shots)`` weights placing per-shot values along the line: linear between the two nearest
    shots, the nearest shot's value beyond the outermost ones."""
    positions = np.asarray(source_receivers, dtype=float)
    order = np.argsort(positions)
    columns = np.arange(receivers, dtype=float)
    matrix = np.zeros((receivers, len(positions)), dtype="float32")
    for rank, shot in enumerate(order):
        matrix[:, shot] = np.interp(columns, positions[order], np.eye(len(positions))[rank])
    return matrix


@keras.saving.register_keras_serializable(package=PACKAGE)
class ShotsAlongLine(keras.layers.Layer):
    """``(batch, shots, rows, channels)`` → ``(batch, rows, receivers, channels)``: per-shot features placed at
    the shots' receiver columns and interpolated linearly between them (``receivers_from_shots``).

    Args:
        source_receivers: receiver column of each shot.
        receivers: columns of the output.
    """

    def __init__(self, source_receivers: Sequence[float], receivers: int, **kwargs):
        super().__init__(**kwargs)
        self.source_receivers = [float(s) for s in source_receivers]
        self.receivers = int(receivers)
        self._matrix = receivers_from_shots(self.source_receivers, self.receivers)

    def call(self, inputs):
        matrix = ops.convert_to_tensor(self._matrix, dtype=inputs.dtype)
        return ops.einsum("rs,bsic->birc", matrix, inputs)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2], self.receivers, input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update({"source_receivers": self.source_receivers, "receivers": self.receivers})
        return config


def validate_scan(moveout_scan: Any) -> None:
    """Refuses a U-Net ``moveout_scan`` that is on but lacks the geometry ``MoveoutSemblance`` needs."""
    if moveout_scan and not (
        isinstance(moveout_scan, Mapping)
        and {"source_receivers", "time_step_s", "receiver_spacing_m"} <= set(moveout_scan)
    ):
        raise ValueError(
            "`moveout_scan` needs the MoveoutSemblance arguments, at least `source_receivers`, `time_step_s` "
            "and `receiver_spacing_m` (pipeline.train fills them in from the dataset for `moveout_scan: true`)."
            f" Received: moveout_scan={moveout_scan}"
        )


def semblance_features(
    image, scan: Mapping[str, Any], grid_shape: Sequence[int], time_pooling: int = 1, channels: int = 8
):
    """The velocity spectra of ``image`` as ``channels`` feature maps on the ``(depth, x)`` grid.

    Each shot's spectrum ``(t0, velocity)`` goes through two small convolutions shared by all shots, its
    velocity axis is folded into ``channels`` features per ``t0`` (where the coherent peak is, and how
    sharp), the shots are placed along the line by their receiver columns, and ``(t0, receivers)`` is resized
    onto the grid as the front end does with ``(time, receivers)``.

    Args:
        image: ``(batch, time, receivers, shots)``, after any time pooling.
        scan: ``MoveoutSemblance`` arguments, ``time_step_s`` the sample interval of the data before pooling.
        time_pooling: samples the image's rows average (its sample interval is ``time_step_s`` times this).
        grid_shape: ``(depth, x)`` of the output.
        channels: feature maps returned.

    Returns:
        ``(batch, depth, x, channels)``.
    """
    scan = {**scan, "time_step_s": float(scan["time_step_s"]) * time_pooling}
    spectra = MoveoutSemblance(**scan, name="moveout_semblance")(image)
    x = keras.layers.Reshape((*spectra.shape[1:], 1), name="moveout_expand")(spectra)
    for index in range(2):
        x = keras.layers.Conv3D(
            channels, (1, 5, 3), padding="same", activation="relu", name=f"moveout_conv_{index}"
        )(x)
    shots, t0s, velocities = spectra.shape[1:]
    x = keras.layers.Reshape((shots, t0s, velocities * channels), name="moveout_fold")(x)
    x = keras.layers.Dense(channels, activation="leaky_relu", name="moveout_dense")(x)
    x = ShotsAlongLine(scan["source_receivers"], int(image.shape[2]), name="moveout_along_line")(x)
    return ResizeToGrid(*grid_shape, name="moveout_to_grid")(x)


def scan_from_geometry(
    options: bool | Mapping[str, Any],
    *,
    sample_interval_s: float,
    start_time_s: float,
    source_x_m: Sequence[float],
    receiver_x_m: Sequence[float],
    default_wavelet_delay_s: float,
) -> dict[str, Any]:
    """``MoveoutSemblance`` arguments for data of this geometry: the user's ``options`` (``True`` = all
    defaults) completed with the shots' receiver columns, sample interval, receiver spacing and wavelet delay.

    ``wavelet_delay_s`` defaults to ``default_wavelet_delay_s`` minus the record's start time. Geometry the
    options already name is kept only if it agrees with the data.

    Raises:
        ValueError: receivers not evenly spaced along the line, or a shot off the receivers' span.
    """
    scan = {} if options is True else dict(options)
    receivers = np.asarray(receiver_x_m, dtype=float)
    steps = np.diff(receivers)
    spacing = float(np.median(steps)) if len(steps) else 0.0
    if len(steps) == 0 or spacing <= 0 or np.max(np.abs(steps - spacing)) > 0.01 * spacing:
        found = f"{steps.min():g}..{steps.max():g} m" if len(steps) else "one receiver"
        raise ValueError(
            f"model_options.moveout_scan needs receivers evenly spaced along the line, in order; this data has "
            f"spacings of {found}. Regrid the data onto a regular receiver line, or leave moveout_scan out."
        )
    columns = (np.asarray(source_x_m, dtype=float) - receivers[0]) / spacing
    outside = [
        f"{x:g} m" for x, c in zip(source_x_m, columns, strict=True) if not -0.5 <= c <= len(receivers) - 0.5
    ]
    if outside:
        raise ValueError(
            f"model_options.moveout_scan reads each shot's gather around its source, but the shots at {', '.join(outside)} "
            f"lie outside the receivers' span ({receivers[0]:g}..{receivers[-1]:g} m). Leave moveout_scan out for "
            "this geometry."
        )
    derived = {
        "source_receivers": [round(float(c), 6) for c in columns],
        "time_step_s": float(sample_interval_s),
        "receiver_spacing_m": spacing,
    }
    for key, value in derived.items():
        if key in scan and not np.allclose(scan[key], value, rtol=1e-3):
            raise ValueError(
                f"model_options.moveout_scan.{key}={scan[key]} does not match the data ({value}): leave it out, "
                "it is read from the dataset's geometry."
            )
    scan.update(derived)
    scan.setdefault("wavelet_delay_s", float(default_wavelet_delay_s) - float(start_time_s))
    return scan
