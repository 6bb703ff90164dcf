"""InversionNet (Wu & Lin, 2019) as OpenFWI defines it: the published reference every model is compared to.

Pipeline position: built by ``models.build("inversionnet", config)`` for the comparison runs.

Layer for layer it follows OpenFWI's ``network.py`` (``InversionNet``, FlatFault/CurveFault setting), with
its default widths ``dim1..dim5 = 32, 64, 128, 256, 512`` (``filters`` here):

encoder
    conv (7, 1)/stride (2, 1) → dim1; three times [conv (3, 1)/stride (2, 1), conv (3, 1)] (dim2, dim2,
    dim3): 1000 time samples → 63; three times [conv 3×3/stride 2, conv 3×3] (dim3, dim4, dim4):
    63×70 → 8×9; a final "valid" convolution whose kernel covers the remaining 8×9 map → 1×1×dim5.
decoder
    transposed conv 5×5/stride 2 from 1×1 → 5×5 (dim5), conv 3×3; four times [transposed conv
    4×4/stride 2, conv 3×3] (dim4, dim3, dim2, dim1): 5 → 80; crop to the grid (80 → 70: 5 cells each
    side); conv 3×3 → 1 channel, batch norm, tanh.

Every convolution is followed by batch normalisation and LeakyReLU(0.2) as in OpenFWI's ``ConvBlock``.
Differences from the PyTorch reference, none of which change a shape or a parameter count: Keras'
``padding="same"`` with stride 2 pads at the end where PyTorch pads symmetrically, and Keras' batch-norm
momentum 0.9 equals PyTorch's 0.1. For grids other than 70×70 the encoder's final kernel is computed from
the input geometry, and the decoder output is cropped centrally (or first resized if the grid is larger than
the 80×80 the decoder produces).

The optional edge head (``edge_head=True``, default off to keep the reference model as published) is a
3×3 conv block and a sigmoid 1×1 convolution on the cropped decoder features.
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
    center_crop_or_resize,
    conv_block,
    normalization_layer,
    output_head,
    seismic_to_image,
    validate_choice,
    validate_filters,
    validate_shape,
)


@dataclasses.dataclass(frozen=True)
class InversionNetConfig:
    """Constructor arguments of ``InversionNet`` (YAML: ``configs/model/inversionnet.yaml``)."""

    family: Literal["inversionnet"] = "inversionnet"
    seismic_shape: tuple[int, int, int] = (5, 1000, 70)
    grid_shape: tuple[int, int] = (70, 70)
    filters: tuple[int, int, int, int, int] = (32, 64, 128, 256, 512)
    normalization: Literal["batch", "group", "layer", "none"] = "batch"
    velocity_activation: Literal["tanh", "linear"] = "tanh"
    edge_head: bool = False


@keras.saving.register_keras_serializable(package=PACKAGE)
class InversionNet(keras.Model):
    """OpenFWI's InversionNet: encoder to a 1×1 code, transposed-convolution decoder, crop, tanh.

    Args:
        seismic_shape: ``(shots, time, receivers)`` of one input sample; time must allow four halvings and
            the remaining map three more.
        grid_shape: ``(depth, x)`` cells of the output velocity map.
        filters: OpenFWI's ``dim1`` … ``dim5`` channel widths.
        normalization: ``"batch"`` (OpenFWI), ``"group"``, ``"layer"`` or ``"none"``.
        velocity_activation: ``"tanh"`` (OpenFWI) or ``"linear"``.
        edge_head: add an ``"edges"`` output (sigmoid probabilities).
        **kwargs: ``keras.Model`` arguments such as ``name``.

    Call args:
        seismic: ``(batch, shots, time, receivers)`` float32, normalised to [-1, 1].

    Returns:
        ``{"velocity": (batch, depth, x)}`` float32 on the normalised [-1, 1] scale, plus
        ``"edges": (batch, depth, x)`` probabilities when ``edge_head`` is true.
    """

    def __init__(
        self,
        seismic_shape: Sequence[int] = (5, 1000, 70),
        grid_shape: Sequence[int] = (70, 70),
        filters: Sequence[int] = (32, 64, 128, 256, 512),
        normalization: str = "batch",
        velocity_activation: str = "tanh",
        edge_head: bool = False,
        **kwargs,
    ):
        seismic_shape = validate_shape(seismic_shape, 3, "seismic_shape", "(shots, time, receivers)")
        grid_shape = validate_shape(grid_shape, 2, "grid_shape", "(depth, x)")
        filters = validate_filters(filters, "filters", minimum_length=5)
        if len(filters) != 5:
            raise ValueError(
                f"`filters` must hold OpenFWI's five widths dim1..dim5. Received: filters={filters}"
            )
        validate_choice(normalization, NORMALIZATIONS, "normalization")
        validate_choice(velocity_activation, VELOCITY_ACTIVATIONS, "velocity_activation")
        if seismic_shape[1] < 16 * 8 // 2 or seismic_shape[2] < 4:
            raise ValueError(
                "InversionNet halves time 7 times and receivers 3 times: it needs at least 64 time samples and "
                f"4 receivers. Received: seismic_shape={seismic_shape}"
            )
        dim1, dim2, dim3, dim4, dim5 = filters
        block = {"normalization": normalization, "activation": "leaky_relu"}
        depth_cells, lateral_cells = grid_shape

        # === Layers ===
        # Built in the functional graph below, in OpenFWI's order (convblock1 … convblock8, deconv1 … deconv6).

        # === Functional model ===
        seismic = keras.Input(shape=seismic_shape, name="seismic")
        x = seismic_to_image(seismic)
        x = conv_block(x, dim1, (7, 1), strides=(2, 1), name="convblock1", **block)
        for name, channels in (("convblock2", dim2), ("convblock3", dim2), ("convblock4", dim3)):
            x = conv_block(x, channels, (3, 1), strides=(2, 1), name=f"{name}_1", **block)
            x = conv_block(x, channels, (3, 1), name=f"{name}_2", **block)
        for name, channels in (("convblock5", dim3), ("convblock6", dim4), ("convblock7", dim4)):
            x = conv_block(x, channels, 3, strides=2, name=f"{name}_1", **block)
            x = conv_block(x, channels, 3, name=f"{name}_2", **block)
        # OpenFWI: kernel (8, ceil(70 / 8)) = the whole remaining 8×9 map → 1×1.
        x = conv_block(
            x, dim5, (int(x.shape[1]), int(x.shape[2])), padding="valid", name="convblock8", **block
        )

        x = self._deconv_block(x, dim5, 5, "valid", "deconv1_1", normalization)
        x = conv_block(x, dim5, 3, name="deconv1_2", **block)
        for index, channels in enumerate((dim4, dim3, dim2, dim1), start=2):
            x = self._deconv_block(x, channels, 4, "same", f"deconv{index}_1", normalization)
            x = conv_block(x, channels, 3, name=f"deconv{index}_2", **block)
        x = center_crop_or_resize(x, depth_cells, lateral_cells, name="decoder")
        features = x

        velocity_norm = normalization_layer(normalization, 1, "deconv6_norm")
        x = keras.layers.Conv2D(1, 3, padding="same", use_bias=velocity_norm is None, name="deconv6_conv")(x)
        if velocity_norm is not None:
            x = velocity_norm(x)
        outputs = {VELOCITY: _activation_output(x, velocity_activation, VELOCITY)}
        if edge_head:
            edges = conv_block(features, dim1, 3, name="edge_block", **block)
            outputs[EDGES] = output_head(edges, EDGES, "sigmoid")

        super().__init__(inputs=seismic, outputs=outputs, **kwargs)

        # === Config ===
        self.seismic_shape = seismic_shape
        self.grid_shape = grid_shape
        self.filters = filters
        self.normalization = normalization
        self.velocity_activation = velocity_activation
        self.edge_head = bool(edge_head)

    @staticmethod
    def _deconv_block(x, filters: int, kernel_size: int, padding: str, name: str, normalization: str):
        """OpenFWI's ``DeconvBlock``: transposed conv (stride 2) → normalisation → LeakyReLU(0.2)."""
        norm = normalization_layer(normalization, filters, f"{name}_norm")
        x = keras.layers.Conv2DTranspose(
            filters, kernel_size, strides=2, padding=padding, use_bias=norm is None, name=f"{name}_deconv"
        )(x)
        if norm is not None:
            x = norm(x)
        return keras.layers.Activation("leaky_relu", name=f"{name}_act")(x)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "seismic_shape": list(self.seismic_shape),
            "grid_shape": list(self.grid_shape),
            "filters": list(self.filters),
            "normalization": self.normalization,
            "velocity_activation": self.velocity_activation,
            "edge_head": self.edge_head,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _activation_output(x, activation: str, name: str):
    """Final activation in float32 and squeeze of the channel axis: ``(batch, depth, x)``."""
    height, width = int(x.shape[1]), int(x.shape[2])
    x = keras.layers.Activation(activation, dtype="float32", name=f"{name}_activation")(x)
    return keras.layers.Reshape((height, width), dtype="float32", name=name)(x)


__all__ = ["InversionNet", "InversionNetConfig"]
