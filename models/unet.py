"""Dual-decoder U-Net: the product's core model, mapping seismic gathers to velocity and edge maps.

Pipeline position: ``pipeline.train`` builds it through ``models.build("unet", config)``; its outputs are
the named maps ``{"velocity", "edges"}`` that the losses, metrics, MLflow logs and HDF5 predictions share.

Architecture (defaults in brackets, OpenFWI input ``(5, 1000, 70)`` → grid ``(70, 70)``):

1. Front end (DD-Net's idea): shots become channels; strided convolutions along time only
   ``(k, 1)``/stride ``(2, 1)`` compress 1000 samples to 125 [3 stages, 16/32/32 channels], then a bilinear
   resize brings ``(time, receivers)`` onto the ``(depth, x)`` grid. Compressing time first is what keeps
   the model cheap: every later layer works on the 70×70 grid, not on 1000×70 samples.
2. Shared encoder: ``len(encoder_filters)`` levels [16, 32, 64, 128, 256], each ``blocks_per_level`` conv
   blocks, levels separated by 2×2 max pooling (70 → 35 → 18 → 9 → 5); the outputs of every level but the
   deepest are skip connections.
3. Two decoder heads, velocity and edges: per level, 2×2 transposed convolution up, crop to the skip's size,
   concatenate the skip, conv blocks; a 1×1 float32 output convolution. ``decoder_mode="independent"``
   gives each head its own weights; ``"shared_upsampling"`` shares the transposed convolutions between the
   heads (DD-Net's published variant) while each head keeps its own conv blocks; ``"shared"`` is one
   decoder whose last feature map feeds both 1×1 output convolutions (the edge task then costs almost no
   compute: it shapes the shared features instead of training a second decoder).

Velocity is returned on the normalised [-1, 1] scale through ``tanh`` by default: labels are min-max
normalised to exactly that range, so a bounded output can never predict a velocity outside the training
range, and it matches InversionNet's last layer. ``velocity_activation="linear"`` is available for data
normalised otherwise. Edges are probabilities (sigmoid).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import keras

from models.layers import (
    EDGES,
    NORMALIZATIONS,
    PACKAGE,
    VELOCITY,
    VELOCITY_ACTIVATIONS,
    ResizeToGrid,
    TimeGain,
    conv_block,
    output_head,
    seismic_to_image,
    time_reduction_front_end,
    validate_choice,
    validate_filters,
    validate_rate,
    validate_shape,
)
from models.moveout import semblance_features, validate_scan

DECODER_MODES = ("independent", "shared_upsampling", "shared")


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Constructor arguments of ``DualDecoderUNet`` (YAML: ``configs/model/unet*.yaml``).

    ``family`` selects the model in ``models.build``; every other field is a constructor argument of the
    same name. See ``DualDecoderUNet`` for their meaning.
    """

    family: Literal["unet"] = "unet"
    seismic_shape: tuple[int, int, int] = (5, 1000, 70)
    grid_shape: tuple[int, int] = (70, 70)
    time_pooling: int = 1
    time_gain_power: float = 0.0
    moveout_scan: dict | None = None
    front_end_filters: tuple[int, ...] = (16, 32, 32)
    front_end_kernel_sizes: tuple[int, ...] = (7, 3, 3)
    encoder_filters: tuple[int, ...] = (16, 32, 64, 128, 256)
    blocks_per_level: int = 2
    decoder_mode: Literal["independent", "shared_upsampling", "shared"] = "independent"
    normalization: Literal["batch", "group", "layer", "none"] = "batch"
    activation: str = "leaky_relu"
    dropout_rate: float = 0.0
    velocity_activation: Literal["tanh", "linear"] = "tanh"


@keras.saving.register_keras_serializable(package=PACKAGE)
class DualDecoderUNet(keras.Model):
    """U-Net with a shared encoder and two decoder heads (velocity and edges).

    Args:
        seismic_shape: ``(shots, time, receivers)`` of one input sample.
        grid_shape: ``(depth, x)`` cells of the output maps; non-square grids are supported.
        time_pooling: average the time axis over windows of this many samples before the front end (1 =
            off). OpenFWI's 1 ms sampling oversamples its 15 Hz wavelet (energy below ~40 Hz, Nyquist
            500 Hz), so pooling by 2 or 4 loses no signal and takes most of the front end's cost away.
        time_gain_power: if positive, the front end also sees a copy of the (pooled) seismic gained by
            ``t ** time_gain_power`` and balanced to the original's amplitude (``layers.TimeGain``), so that
            late, deep reflections are as visible as the direct wave; 0 = off.
        moveout_scan: if given, the ``models.moveout.MoveoutSemblance`` arguments (``source_receivers``,
            ``time_step_s`` of the input's samples, ``receiver_spacing_m``, ...): the encoder also sees
            ``moveout.semblance_features``, each shot's velocity spectrum placed on the grid, next to the
            front end's features; None = off. ``pipeline.train`` fills the geometry in from the data.
        front_end_filters: channels of the time-striding front-end convolutions; each stage halves time.
        front_end_kernel_sizes: time-axis kernel length of each front-end stage (same length as
            ``front_end_filters``).
        encoder_filters: channels per encoder level, shallow to deep (at least two levels).
        blocks_per_level: 3×3 conv blocks per encoder/decoder level.
        decoder_mode: ``"independent"`` (two decoders), ``"shared_upsampling"`` (the heads share their
            transposed-convolution weights, DD-Net's variant) or ``"shared"`` (one decoder, two 1×1 output
            convolutions on its last feature map).
        normalization: ``"batch"``, ``"group"``, ``"layer"`` or ``"none"`` after every convolution.
        activation: Keras activation name of the conv blocks.
        dropout_rate: spatial dropout after every decoder block, in [0, 1).
        velocity_activation: ``"tanh"`` (bounded to the normalised [-1, 1] range) or ``"linear"``.
        **kwargs: ``keras.Model`` arguments such as ``name``.

    Call args:
        seismic: ``(batch, shots, time, receivers)`` float32, normalised to [-1, 1].

    Returns:
        ``{"velocity": (batch, depth, x), "edges": (batch, depth, x)}``, float32; velocity on the
        normalised [-1, 1] scale, edges as probabilities in [0, 1].

    Example:
        >>> model = DualDecoderUNet(seismic_shape=(5, 1000, 70), grid_shape=(70, 70))
        >>> outputs = model(keras.random.uniform((2, 5, 1000, 70), -1, 1))
        >>> outputs["velocity"].shape, outputs["edges"].shape
        ((2, 70, 70), (2, 70, 70))
    """

    def __init__(
        self,
        seismic_shape: Sequence[int] = (5, 1000, 70),
        grid_shape: Sequence[int] = (70, 70),
        time_pooling: int = 1,
        time_gain_power: float = 0.0,
        moveout_scan: dict | None = None,
        front_end_filters: Sequence[int] = (16, 32, 32),
        front_end_kernel_sizes: Sequence[int] = (7, 3, 3),
        encoder_filters: Sequence[int] = (16, 32, 64, 128, 256),
        blocks_per_level: int = 2,
        decoder_mode: str = "independent",
        normalization: str = "batch",
        activation: str = "leaky_relu",
        dropout_rate: float = 0.0,
        velocity_activation: str = "tanh",
        **kwargs,
    ):
        seismic_shape = validate_shape(seismic_shape, 3, "seismic_shape", "(shots, time, receivers)")
        grid_shape = validate_shape(grid_shape, 2, "grid_shape", "(depth, x)")
        front_end_filters = validate_filters(front_end_filters, "front_end_filters", minimum_length=0)
        front_end_kernel_sizes = validate_filters(front_end_kernel_sizes, "front_end_kernel_sizes", 0)
        if len(front_end_kernel_sizes) != len(front_end_filters):
            raise ValueError(
                "`front_end_kernel_sizes` needs one kernel length per entry of `front_end_filters`. Received: "
                f"front_end_filters={front_end_filters}, front_end_kernel_sizes={front_end_kernel_sizes}"
            )
        time_pooling = int(time_pooling)
        if time_pooling < 1:
            raise ValueError(f"`time_pooling` must be at least 1. Received: time_pooling={time_pooling}")
        if seismic_shape[1] // time_pooling < 2 ** len(front_end_filters):
            raise ValueError(
                f"Pooling time by {time_pooling}, then {len(front_end_filters)} front-end stages that each halve "
                f"it, is too much for {seismic_shape[1]} time samples: pool less or use fewer stages. "
                f"Received: seismic_shape={seismic_shape}, time_pooling={time_pooling}"
            )
        time_gain_power = float(time_gain_power)
        if time_gain_power < 0:
            raise ValueError(
                f"`time_gain_power` must be 0 (off) or positive. Received: time_gain_power={time_gain_power}"
            )
        validate_scan(moveout_scan)
        encoder_filters = validate_filters(encoder_filters, "encoder_filters", minimum_length=2)
        if int(blocks_per_level) < 1:
            raise ValueError(
                f"`blocks_per_level` must be at least 1. Received: blocks_per_level={blocks_per_level}"
            )
        validate_choice(decoder_mode, DECODER_MODES, "decoder_mode")
        validate_choice(normalization, NORMALIZATIONS, "normalization")
        validate_choice(velocity_activation, VELOCITY_ACTIVATIONS, "velocity_activation")
        dropout_rate = validate_rate(dropout_rate, "dropout_rate")
        depth_cells, lateral_cells = grid_shape
        levels = len(encoder_filters)
        if min(grid_shape) < 2 ** (levels - 1):
            raise ValueError(
                f"{levels} encoder levels pool the grid {levels - 1} times, too often for a {grid_shape} grid: "
                f"use fewer `encoder_filters` entries. Received: grid_shape={grid_shape}, "
                f"encoder_filters={encoder_filters}"
            )
        block = {"normalization": normalization, "activation": activation}

        # === Layers ===
        # The transposed convolutions are the only layers the two heads may share, so they are created
        # up front; everything else is created where it is used in the graph below.
        def upsampling_layers(prefix: str) -> list[keras.layers.Layer]:
            return [
                keras.layers.Conv2DTranspose(
                    encoder_filters[level], 2, strides=2, padding="same", name=f"{prefix}_up_{level}"
                )
                for level in range(levels - 2, -1, -1)
            ]

        if decoder_mode == "shared_upsampling":
            shared = upsampling_layers("shared")
            head_upsampling = {VELOCITY: shared, EDGES: shared}
        elif decoder_mode == "shared":
            head_upsampling = {VELOCITY: upsampling_layers(VELOCITY)}
        else:
            head_upsampling = {VELOCITY: upsampling_layers(VELOCITY), EDGES: upsampling_layers(EDGES)}

        # === Functional model ===
        seismic = keras.Input(shape=seismic_shape, name="seismic")
        x = seismic_to_image(seismic)
        if time_pooling > 1:
            x = keras.layers.AveragePooling2D((time_pooling, 1), name="time_pooling")(x)
        pooled = x
        if time_gain_power > 0:
            x = TimeGain(time_gain_power, name="time_gain")(x)
        x = time_reduction_front_end(x, front_end_filters, front_end_kernel_sizes, normalization, activation)
        x = ResizeToGrid(depth_cells, lateral_cells, name="resize_to_grid")(x)
        if moveout_scan:
            spectra = semblance_features(pooled, moveout_scan, grid_shape, time_pooling)
            x = keras.layers.Concatenate(name="moveout_concat")([x, spectra])

        skips = []
        for level, channels in enumerate(encoder_filters):
            if level > 0:
                x = keras.layers.MaxPooling2D(2, padding="same", name=f"encoder_pool_{level}")(x)
            for index in range(int(blocks_per_level)):
                x = conv_block(x, channels, 3, name=f"encoder_{level}_{index}", **block)
            skips.append(x)
        bottleneck = skips.pop()

        outputs = {}
        heads = ((VELOCITY, velocity_activation), (EDGES, "sigmoid"))
        if decoder_mode == "shared":
            # One decoder (the velocity head's layers); the edge head is only its own 1×1 output convolution.
            heads = heads[:1]
        for head, activation_name in heads:
            y = bottleneck
            for up_layer, skip in zip(head_upsampling[head], reversed(skips), strict=True):
                y = up_layer(y)
                rows, columns = int(skip.shape[1]), int(skip.shape[2])
                # Pooling with padding="same" rounds odd sizes up (35 → 18), so the upsampled map can be one
                # cell larger than the skip; the extra cell is at the bottom/right.
                extra_rows, extra_columns = int(y.shape[1]) - rows, int(y.shape[2]) - columns
                name = up_layer.name.replace("shared", head)
                if extra_rows or extra_columns:
                    y = keras.layers.Cropping2D(((0, extra_rows), (0, extra_columns)), name=f"{name}_crop")(y)
                y = keras.layers.Concatenate(name=f"{name}_concat")([y, skip])
                for index in range(int(blocks_per_level)):
                    y = conv_block(
                        y,
                        int(skip.shape[-1]),
                        3,
                        name=f"{name}_block_{index}",
                        dropout_rate=dropout_rate,
                        **block,
                    )
            outputs[head] = output_head(y, head, activation_name)
        if decoder_mode == "shared":
            outputs[EDGES] = output_head(y, EDGES, "sigmoid")

        super().__init__(inputs=seismic, outputs=outputs, **kwargs)

        # === Config ===
        self.seismic_shape = seismic_shape
        self.grid_shape = grid_shape
        self.time_pooling = time_pooling
        self.time_gain_power = time_gain_power
        self.moveout_scan = dict(moveout_scan) if moveout_scan else None
        self.front_end_filters = front_end_filters
        self.front_end_kernel_sizes = front_end_kernel_sizes
        self.encoder_filters = encoder_filters
        self.blocks_per_level = int(blocks_per_level)
        self.decoder_mode = decoder_mode
        self.normalization = normalization
        self.activation = activation
        self.dropout_rate = dropout_rate
        self.velocity_activation = velocity_activation

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "seismic_shape": list(self.seismic_shape),
            "grid_shape": list(self.grid_shape),
            "time_pooling": self.time_pooling,
            "time_gain_power": self.time_gain_power,
            "moveout_scan": self.moveout_scan,
            "front_end_filters": list(self.front_end_filters),
            "front_end_kernel_sizes": list(self.front_end_kernel_sizes),
            "encoder_filters": list(self.encoder_filters),
            "blocks_per_level": self.blocks_per_level,
            "decoder_mode": self.decoder_mode,
            "normalization": self.normalization,
            "activation": self.activation,
            "dropout_rate": self.dropout_rate,
            "velocity_activation": self.velocity_activation,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


__all__ = ["DECODER_MODES", "DualDecoderUNet", "UNetConfig"]
