"""Vision-Transformer baseline for seismic velocity inversion.

Pipeline position: built by ``models.build("transformer", config)``.

Architecture:

1. Patch embedding over ``(time, receivers)``. With ``shot_embedding="channels"`` the shots are the
   channels of each patch, so one token covers ``patch_size`` of every shot (200 tokens for OpenFWI with
   the default 50×7 patches). With ``shot_embedding="tokens"`` every shot is patched separately and a
   learned shot embedding is added, so attention can relate individual shots (5× more tokens, ~25× more
   attention cost). Inputs whose time or receiver count is not a multiple of the patch size are
   zero-padded at the end.
2. Learned position embedding (one vector per token: patch row, patch column and, in ``tokens`` mode, shot).
3. ``num_layers`` pre-norm encoder blocks (``models.layers.TransformerEncoderBlock``) and a final layer norm.
4. Decoder to the grid: tokens are put back on their ``(time patches, receiver patches)`` grid (shots
   concatenated along features in ``tokens`` mode), a 1×1 projection to ``decoder_filters``, a bilinear
   resize to the ``(depth, x)`` grid, two 3×3 conv blocks and float32 1×1 output heads (velocity tanh or
   linear; optional sigmoid edge head).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Literal

import keras

from models.layers import (
    EDGES,
    NORMALIZATIONS,
    PACKAGE,
    VELOCITY,
    VELOCITY_ACTIVATIONS,
    PositionEmbedding,
    ResizeToGrid,
    TransformerEncoderBlock,
    conv_block,
    output_head,
    seismic_to_image,
    validate_choice,
    validate_filters,
    validate_rate,
    validate_shape,
)

SHOT_EMBEDDINGS = ("channels", "tokens")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Constructor arguments of ``TransformerInverter`` (YAML: ``configs/model/transformer.yaml``)."""

    family: Literal["transformer"] = "transformer"
    seismic_shape: tuple[int, int, int] = (5, 1000, 70)
    grid_shape: tuple[int, int] = (70, 70)
    patch_size: tuple[int, int] = (50, 7)
    shot_embedding: Literal["channels", "tokens"] = "channels"
    hidden_dim: int = 128
    num_layers: int = 4
    num_heads: int = 4
    mlp_dim: int = 256
    dropout_rate: float = 0.0
    decoder_filters: int = 32
    normalization: Literal["batch", "group", "layer", "none"] = "batch"
    velocity_activation: Literal["tanh", "linear"] = "tanh"
    edge_head: bool = True


@keras.saving.register_keras_serializable(package=PACKAGE)
class TransformerInverter(keras.Model):
    """Pre-norm Transformer encoder over seismic patches with a convolutional decoder to the grid.

    Args:
        seismic_shape: ``(shots, time, receivers)`` of one input sample.
        grid_shape: ``(depth, x)`` cells of the output maps.
        patch_size: ``(time samples, receivers)`` covered by one patch.
        shot_embedding: ``"channels"`` (shots stacked in each patch) or ``"tokens"`` (one token per shot
            and patch).
        hidden_dim: token width; divisible by ``num_heads``.
        num_layers: encoder blocks.
        num_heads: attention heads per block.
        mlp_dim: hidden width of each block's MLP.
        dropout_rate: dropout inside the encoder blocks, in [0, 1).
        decoder_filters: channels of the convolutional decoder.
        normalization: normalisation of the decoder conv blocks.
        velocity_activation: ``"tanh"`` or ``"linear"``.
        edge_head: add an ``"edges"`` output (sigmoid probabilities).
        **kwargs: ``keras.Model`` arguments such as ``name``.

    Call args:
        seismic: ``(batch, shots, time, receivers)`` float32, normalised to [-1, 1].

    Returns:
        ``{"velocity": (batch, depth, x)}`` on the normalised [-1, 1] scale, plus
        ``"edges": (batch, depth, x)`` probabilities when ``edge_head`` is true; float32.
    """

    def __init__(
        self,
        seismic_shape: Sequence[int] = (5, 1000, 70),
        grid_shape: Sequence[int] = (70, 70),
        patch_size: Sequence[int] = (50, 7),
        shot_embedding: str = "channels",
        hidden_dim: int = 128,
        num_layers: int = 4,
        num_heads: int = 4,
        mlp_dim: int = 256,
        dropout_rate: float = 0.0,
        decoder_filters: int = 32,
        normalization: str = "batch",
        velocity_activation: str = "tanh",
        edge_head: bool = True,
        **kwargs,
    ):
        seismic_shape = validate_shape(seismic_shape, 3, "seismic_shape", "(shots, time, receivers)")
        grid_shape = validate_shape(grid_shape, 2, "grid_shape", "(depth, x)")
        patch_size = validate_shape(patch_size, 2, "patch_size", "(time samples, receivers)")
        validate_choice(shot_embedding, SHOT_EMBEDDINGS, "shot_embedding")
        (hidden_dim, num_layers, num_heads, mlp_dim, decoder_filters) = validate_filters(
            (hidden_dim, num_layers, num_heads, mlp_dim, decoder_filters),
            "hidden_dim, num_layers, num_heads, mlp_dim and decoder_filters",
        )
        if hidden_dim % num_heads:
            raise ValueError(
                f"`hidden_dim` must be divisible by `num_heads`. "
                f"Received: hidden_dim={hidden_dim}, num_heads={num_heads}"
            )
        dropout_rate = validate_rate(dropout_rate, "dropout_rate")
        validate_choice(normalization, NORMALIZATIONS, "normalization")
        validate_choice(velocity_activation, VELOCITY_ACTIVATIONS, "velocity_activation")
        num_shots, num_samples, num_receivers = seismic_shape
        depth_cells, lateral_cells = grid_shape
        patch_rows = math.ceil(num_samples / patch_size[0])
        patch_columns = math.ceil(num_receivers / patch_size[1])
        pad_time = patch_rows * patch_size[0] - num_samples
        pad_receivers = patch_columns * patch_size[1] - num_receivers
        shots_as_tokens = shot_embedding == "tokens"
        num_tokens = patch_rows * patch_columns * (num_shots if shots_as_tokens else 1)
        block = {"normalization": normalization, "activation": "leaky_relu"}

        # === Layers ===
        encoder_blocks = [
            TransformerEncoderBlock(num_heads, mlp_dim, dropout_rate, name=f"encoder_block_{index}")
            for index in range(num_layers)
        ]

        # === Functional model ===
        seismic = keras.Input(shape=seismic_shape, name="seismic")
        if shots_as_tokens:
            # (batch, shots, time, receivers, 1): a 3-D convolution with a 1-shot kernel patches every shot.
            x = keras.layers.Reshape(seismic_shape + (1,), name="shots_as_depth")(seismic)
            if pad_time or pad_receivers:
                x = keras.layers.ZeroPadding3D(((0, 0), (0, pad_time), (0, pad_receivers)), name="pad")(x)
            x = keras.layers.Conv3D(
                hidden_dim, (1,) + patch_size, strides=(1,) + patch_size, name="patch_embedding"
            )(x)
        else:
            x = seismic_to_image(seismic)
            if pad_time or pad_receivers:
                x = keras.layers.ZeroPadding2D(((0, pad_time), (0, pad_receivers)), name="pad")(x)
            x = keras.layers.Conv2D(hidden_dim, patch_size, strides=patch_size, name="patch_embedding")(x)
        x = keras.layers.Reshape((num_tokens, hidden_dim), name="tokens")(x)
        # Token order is (shot,) patch row, patch column; the learned embedding covers all three.
        x = PositionEmbedding(num_tokens, name="position_embedding")(x)
        for encoder_block in encoder_blocks:
            x = encoder_block(x)
        x = keras.layers.LayerNormalization(epsilon=1e-6, name="encoder_norm")(x)

        if shots_as_tokens:
            x = keras.layers.Reshape((num_shots, patch_rows, patch_columns, hidden_dim), name="token_grid")(x)
            x = keras.layers.Permute((2, 3, 1, 4), name="shots_last")(x)
            x = keras.layers.Reshape((patch_rows, patch_columns, num_shots * hidden_dim), name="merge_shots")(
                x
            )
        else:
            x = keras.layers.Reshape((patch_rows, patch_columns, hidden_dim), name="token_grid")(x)
        x = keras.layers.Conv2D(decoder_filters, 1, name="decoder_projection")(x)
        x = ResizeToGrid(depth_cells, lateral_cells, name="resize_to_grid")(x)
        x = conv_block(x, decoder_filters, 3, name="decoder_block_0", **block)
        x = conv_block(x, decoder_filters, 3, name="decoder_block_1", **block)
        outputs = {VELOCITY: output_head(x, VELOCITY, velocity_activation)}
        if edge_head:
            outputs[EDGES] = output_head(x, EDGES, "sigmoid")

        super().__init__(inputs=seismic, outputs=outputs, **kwargs)

        # === Config ===
        self.seismic_shape = seismic_shape
        self.grid_shape = grid_shape
        self.patch_size = patch_size
        self.shot_embedding = shot_embedding
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.dropout_rate = dropout_rate
        self.decoder_filters = decoder_filters
        self.normalization = normalization
        self.velocity_activation = velocity_activation
        self.edge_head = bool(edge_head)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "seismic_shape": list(self.seismic_shape),
            "grid_shape": list(self.grid_shape),
            "patch_size": list(self.patch_size),
            "shot_embedding": self.shot_embedding,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "mlp_dim": self.mlp_dim,
            "dropout_rate": self.dropout_rate,
            "decoder_filters": self.decoder_filters,
            "normalization": self.normalization,
            "velocity_activation": self.velocity_activation,
            "edge_head": self.edge_head,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


__all__ = ["SHOT_EMBEDDINGS", "TransformerConfig", "TransformerInverter"]
