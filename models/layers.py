"""Custom Keras layers and block builders shared by the model families.

Every model of ``models/`` is a Keras functional model built from standard Keras layers plus the few
custom layers defined here. The custom layers are registered serializable under the package name
``seisinvert`` so that ``.keras`` files load with ``keras.saving.load_model(path, safe_mode=True)``.

The block builders (``conv_block``, ``seismic_front_end``, ``output_head``) return tensors, not layers:
they create standard layers and call them, which keeps weight sharing (``decoder_mode="shared_upsampling"``
of the U-Net) a matter of calling the same layer object twice in the functional graph.

Axis conventions inside the models (channels last):
    seismic input: ``(batch, shots, time, receivers)``, normalised to [-1, 1];
    image tensors: ``(batch, rows, columns, channels)`` where rows are time samples in the front end and
    depth cells after it, and columns are receivers / lateral cells;
    outputs: ``(batch, depth, x)`` float32 maps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

PACKAGE = "seisinvert"

#: Names of the output maps, identical in model outputs, loss and metric dicts, MLflow and HDF5.
VELOCITY = "velocity"
EDGES = "edges"
OUTPUT_NAMES = (VELOCITY, EDGES)

NORMALIZATIONS = ("batch", "group", "layer", "none")
VELOCITY_ACTIVATIONS = ("tanh", "linear")


# ----------------------------------------------------------------------------------------------------------
# Validation helpers (shared by every model constructor)
# ----------------------------------------------------------------------------------------------------------


def validate_shape(value: Sequence[int], length: int, argument: str, meaning: str) -> tuple[int, ...]:
    """Returns ``value`` as a tuple of positive ints, or raises a ValueError that names the argument."""
    try:
        shape = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{argument}` must be a sequence of {length} positive integers {meaning}. "
            f"Received: {argument}={value!r}"
        ) from None
    if len(shape) != length or any(v <= 0 for v in shape) or any(int(v) != v for v in value):
        raise ValueError(
            f"`{argument}` must be {length} positive integers {meaning}. Received: {argument}={value!r}"
        )
    return shape


def validate_choice(value: str, choices: Sequence[str], argument: str) -> str:
    """Returns ``value`` when it is one of ``choices``; otherwise raises a ValueError listing them."""
    if value not in choices:
        raise ValueError(
            f"`{argument}` must be one of {', '.join(map(repr, choices))}. Received: {argument}={value!r}"
        )
    return value


def validate_filters(value: Sequence[int], argument: str, minimum_length: int = 1) -> tuple[int, ...]:
    """Returns ``value`` as a tuple of positive channel counts (at least ``minimum_length`` of them)."""
    try:
        filters = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{argument}` must be a list of positive channel counts. Received: {argument}={value!r}"
        ) from None
    if len(filters) < minimum_length or any(v <= 0 for v in filters):
        raise ValueError(
            f"`{argument}` must hold at least {minimum_length} positive channel count(s). "
            f"Received: {argument}={value!r}"
        )
    return filters


def validate_rate(value: float, argument: str) -> float:
    """Returns a dropout rate in [0, 1)."""
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"`{argument}` must be in [0, 1). Received: {argument}={value!r}")
    return float(value)


# ----------------------------------------------------------------------------------------------------------
# Custom layers
# ----------------------------------------------------------------------------------------------------------


def interpolation_matrix(size_in: int, size_out: int, interpolation: str = "bilinear") -> np.ndarray:
    """The ``(size_out, size_in)`` matrix of 1-D linear or nearest resampling with half-pixel centres.

    Output cell ``i`` samples the input at ``(i + 0.5) · size_in / size_out - 0.5``, clamped to the input's
    extent; this is ``keras.ops.image.resize(..., antialias=False)`` along one axis.
    """
    positions = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    matrix = np.zeros((size_out, size_in), dtype=np.float64)
    if interpolation == "nearest":
        index = np.clip(np.floor((np.arange(size_out) + 0.5) * size_in / size_out), 0, size_in - 1).astype(
            int
        )
        matrix[np.arange(size_out), index] = 1.0
        return matrix
    positions = np.clip(positions, 0.0, size_in - 1)
    lower = np.floor(positions).astype(int)
    upper = np.minimum(lower + 1, size_in - 1)
    weight = positions - lower
    np.add.at(matrix, (np.arange(size_out), lower), 1.0 - weight)
    np.add.at(matrix, (np.arange(size_out), upper), weight)
    return matrix


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResizeToGrid(keras.layers.Layer):
    """Resizes a channels-last image to a fixed ``(height, width)`` by separable linear interpolation.

    Used to bring the time-reduced seismic features onto the velocity grid (DD-Net's resize idea) and to
    bring decoder features of the baselines onto the output grid, whatever the input geometry.

    The result equals ``keras.ops.image.resize(..., antialias=False)`` (half-pixel centres), but it is
    computed as two small matrix products with fixed interpolation matrices: on CPU this is several times
    faster than the gather-based resize kernels, and it is the same code path on every backend.

    Args:
        height: output rows (depth cells).
        width: output columns (lateral cells).
        interpolation: ``"bilinear"`` or ``"nearest"``.

    Call args:
        inputs: ``(batch, rows, columns, channels)`` with static ``rows`` and ``columns``.

    Returns:
        ``(batch, height, width, channels)`` in the layer's compute dtype.
    """

    def __init__(self, height: int, width: int, interpolation: str = "bilinear", **kwargs):
        super().__init__(**kwargs)
        self.height = int(height)
        self.width = int(width)
        self.interpolation = validate_choice(interpolation, ("bilinear", "nearest"), "interpolation")

    def build(self, input_shape):
        rows, columns = input_shape[1], input_shape[2]
        if rows is None or columns is None:
            raise ValueError(f"ResizeToGrid needs static spatial sizes. Received input shape {input_shape}")
        # Constants derived from the configuration, not weights: nothing to save or load.
        self._row_matrix = interpolation_matrix(int(rows), self.height, self.interpolation).astype("float32")
        self._column_matrix = interpolation_matrix(int(columns), self.width, self.interpolation).astype(
            "float32"
        )

    def call(self, inputs):
        # An axis whose size already matches is left alone (its matrix is the identity).
        x = inputs
        if int(inputs.shape[1]) != self.height:
            rows = ops.convert_to_tensor(self._row_matrix, dtype=inputs.dtype)
            x = ops.einsum("hr,brwc->bhwc", rows, x)
        if int(inputs.shape[2]) != self.width:
            columns = ops.convert_to_tensor(self._column_matrix, dtype=inputs.dtype)
            x = ops.einsum("vw,bhwc->bhvc", columns, x)
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update({"height": self.height, "width": self.width, "interpolation": self.interpolation})
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class TimeGain(keras.layers.Layer):
    """Appends a time-gained copy of the seismic channels, balanced to their amplitude.

    Late arrivals (deep reflections) are tens of times weaker than the direct wave, even after the log
    compression of the input normalisation. A processing geophysicist applies a gain in time (``t^p``, with
    ``p`` near 2 for spherical spreading) before looking at them; this layer gives the network that view next
    to the recorded one, so nothing of the original amplitudes is lost. The gained copy of every (sample,
    channel) is scaled to the RMS of the original, so that both views enter the first convolution at the same
    level and a global amplitude change (the amplitude augmentation, another survey's units) scales both
    alike.

    Args:
        power: ``p`` of the gain ``((i + 0.5) / n) ** p`` over the ``n`` rows (time samples); positive.

    Call args:
        inputs: ``(batch, time, receivers, channels)`` with static ``time``.

    Returns:
        ``(batch, time, receivers, 2 * channels)``: the inputs, then their gained copies.
    """

    def __init__(self, power: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        if not float(power) > 0:
            raise ValueError(f"`power` of TimeGain must be positive. Received: power={power}")
        self.power = float(power)

    def build(self, input_shape):
        steps = input_shape[1]
        if steps is None:
            raise ValueError(f"TimeGain needs a static time axis. Received input shape {input_shape}")
        # A constant derived from the configuration, not a weight.
        self._gain = (((np.arange(int(steps)) + 0.5) / int(steps)) ** self.power).astype("float32")

    def call(self, inputs):
        gain = ops.cast(ops.convert_to_tensor(self._gain), inputs.dtype)[None, :, None, None]
        gained = inputs * gain
        inputs_rms = ops.sqrt(ops.mean(ops.square(inputs), axis=(1, 2), keepdims=True))
        gained_rms = ops.sqrt(ops.mean(ops.square(gained), axis=(1, 2), keepdims=True))
        balanced = gained * (inputs_rms / (gained_rms + 1e-6))
        return ops.concatenate([inputs, balanced], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], None if input_shape[-1] is None else 2 * input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"power": self.power})
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned position embedding to a token sequence.

    Args:
        sequence_length: number of tokens the embedding covers (fixed by the patch grid).
        initializer: initializer of the ``(sequence_length, hidden_dim)`` table.

    Call args:
        inputs: ``(batch, sequence_length, hidden_dim)``.

    Returns:
        ``inputs + embedding``, same shape.
    """

    def __init__(self, sequence_length: int, initializer: str = "glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if int(sequence_length) <= 0:
            raise ValueError(
                f"`sequence_length` must be positive. Received: sequence_length={sequence_length}"
            )
        self.sequence_length = int(sequence_length)
        self.initializer = initializer

    def build(self, input_shape):
        if input_shape[-2] is not None and input_shape[-2] != self.sequence_length:
            raise ValueError(
                f"PositionEmbedding was configured for {self.sequence_length} tokens. "
                f"Received inputs of shape {input_shape}"
            )
        self.embedding = self.add_weight(
            name="embedding",
            shape=(self.sequence_length, input_shape[-1]),
            initializer=keras.initializers.get(self.initializer),
            trainable=True,
        )

    def call(self, inputs):
        return inputs + ops.cast(self.embedding, inputs.dtype)[None]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"sequence_length": self.sequence_length, "initializer": self.initializer})
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class TransformerEncoderBlock(keras.layers.Layer):
    """A pre-norm Transformer encoder block: ``x + MHA(LN(x))`` then ``x + MLP(LN(x))``.

    Pre-normalisation (Xiong et al., 2020) trains stably without learning-rate warm-up, which matters for
    short baseline runs.

    Args:
        num_heads: attention heads; must divide the token width.
        mlp_dim: hidden width of the two-layer GELU MLP.
        dropout_rate: dropout after attention and in the MLP.
        layer_norm_epsilon: epsilon of both layer normalisations.

    Call args:
        inputs: ``(batch, tokens, hidden_dim)``.

    Returns:
        ``(batch, tokens, hidden_dim)``.
    """

    def __init__(
        self,
        num_heads: int,
        mlp_dim: int,
        dropout_rate: float = 0.0,
        layer_norm_epsilon: float = 1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.mlp_dim = int(mlp_dim)
        self.dropout_rate = validate_rate(dropout_rate, "dropout_rate")
        self.layer_norm_epsilon = float(layer_norm_epsilon)

    def build(self, input_shape):
        hidden_dim = int(input_shape[-1])
        if hidden_dim % self.num_heads:
            raise ValueError(
                f"The token width {hidden_dim} must be divisible by num_heads={self.num_heads}: "
                "change hidden_dim or num_heads."
            )
        dtype = self.dtype_policy
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=dtype, name="attention_norm"
        )
        self.attention = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=hidden_dim // self.num_heads,
            dropout=self.dropout_rate,
            dtype=dtype,
            name="attention",
        )
        self.attention_dropout = keras.layers.Dropout(
            self.dropout_rate, dtype=dtype, name="attention_dropout"
        )
        self.mlp_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=dtype, name="mlp_norm"
        )
        self.mlp_dense_1 = keras.layers.Dense(
            self.mlp_dim, activation="gelu", dtype=dtype, name="mlp_dense_1"
        )
        self.mlp_dense_2 = keras.layers.Dense(hidden_dim, dtype=dtype, name="mlp_dense_2")
        self.mlp_dropout = keras.layers.Dropout(self.dropout_rate, dtype=dtype, name="mlp_dropout")

        self.attention_norm.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self.mlp_norm.build(input_shape)
        self.mlp_dense_1.build(input_shape)
        self.mlp_dense_2.build(tuple(input_shape[:-1]) + (self.mlp_dim,))

    def call(self, inputs, training=None):
        normalised = self.attention_norm(inputs)
        attended = self.attention(normalised, normalised, training=training)
        x = inputs + self.attention_dropout(attended, training=training)
        hidden = self.mlp_dense_2(self.mlp_dense_1(self.mlp_norm(x)))
        return x + self.mlp_dropout(hidden, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "mlp_dim": self.mlp_dim,
                "dropout_rate": self.dropout_rate,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config


# ----------------------------------------------------------------------------------------------------------
# Block builders (functional)
# ----------------------------------------------------------------------------------------------------------


def normalization_layer(kind: str, channels: int, name: str) -> keras.layers.Layer | None:
    """The normalisation layer named by ``kind`` (``batch``, ``group``, ``layer`` or ``none``)."""
    if kind == "batch":
        return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)
    if kind == "group":
        return keras.layers.GroupNormalization(groups=math.gcd(8, channels), epsilon=1e-5, name=name)
    if kind == "layer":
        return keras.layers.LayerNormalization(epsilon=1e-5, name=name)
    if kind == "none":
        return None
    raise ValueError(
        f"`normalization` must be one of {', '.join(map(repr, NORMALIZATIONS))}. Received: {kind!r}"
    )


def conv_block(
    x,
    filters: int,
    kernel_size: int | tuple[int, int],
    name: str,
    strides: int | tuple[int, int] = 1,
    normalization: str = "batch",
    activation: str = "leaky_relu",
    dropout_rate: float = 0.0,
    padding: str = "same",
):
    """Conv2D → normalisation → activation (→ spatial dropout); returns the output tensor.

    The convolution has no bias when a normalisation follows (the normalisation's offset replaces it).
    ``leaky_relu`` uses Keras' default negative slope 0.2, the slope of OpenFWI's blocks.
    """
    norm = normalization_layer(normalization, filters, f"{name}_norm")
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=norm is None, name=f"{name}_conv"
    )(x)
    if norm is not None:
        x = norm(x)
    x = keras.layers.Activation(activation, name=f"{name}_act")(x)
    if dropout_rate > 0:
        x = keras.layers.SpatialDropout2D(dropout_rate, name=f"{name}_dropout")(x)
    return x


def seismic_to_image(inputs):
    """``(batch, shots, time, receivers)`` → ``(batch, time, receivers, shots)``: shots become channels."""
    return keras.layers.Permute((2, 3, 1), name="shots_to_channels")(inputs)


def time_reduction_front_end(
    x,
    filters: Sequence[int],
    kernel_sizes: Sequence[int],
    normalization: str,
    activation: str = "leaky_relu",
    name: str = "front_end",
):
    """Strided convolutions along time only (stride ``(2, 1)``), one per entry of ``filters``.

    Each stage halves the time axis and keeps the receiver axis: receivers map to lateral cells of the
    grid, while time maps to depth only through wave propagation, so time is the axis to compress early.
    """
    for index, (channels, kernel) in enumerate(zip(filters, kernel_sizes, strict=True)):
        x = conv_block(
            x,
            channels,
            (kernel, 1),
            strides=(2, 1),
            normalization=normalization,
            activation=activation,
            name=f"{name}_{index}",
        )
    return x


def output_head(x, name: str, activation: str):
    """A 1×1 convolution to one channel in float32, then squeeze to ``(batch, depth, x)``.

    Both layers run in float32 whatever the global dtype policy, so the outputs (and the losses computed
    on them) are float32 under ``mixed_bfloat16``.
    """
    height, width = int(x.shape[1]), int(x.shape[2])
    x = keras.layers.Conv2D(1, 1, activation=activation, dtype="float32", name=f"{name}_logits")(x)
    return keras.layers.Reshape((height, width), dtype="float32", name=name)(x)


def center_crop_or_resize(x, height: int, width: int, name: str):
    """Crops ``x`` centrally to ``(height, width)``, resizing first if it is smaller on either axis.

    InversionNet's decoder produces 80×80 and crops 5 cells on every side to reach 70×70; other grids
    crop by the same rule (an odd difference puts the extra cell at the bottom/right).
    """
    rows, columns = int(x.shape[1]), int(x.shape[2])
    if rows < height or columns < width:
        x = ResizeToGrid(max(rows, height), max(columns, width), name=f"{name}_resize")(x)
        rows, columns = max(rows, height), max(columns, width)
    if (rows, columns) == (height, width):
        return x
    top, left = (rows - height) // 2, (columns - width) // 2
    return keras.layers.Cropping2D(
        ((top, rows - height - top), (left, columns - width - left)), name=f"{name}_crop"
    )(x)


__all__ = [
    "EDGES",
    "NORMALIZATIONS",
    "OUTPUT_NAMES",
    "PACKAGE",
    "PositionEmbedding",
    "ResizeToGrid",
    "TransformerEncoderBlock",
    "VELOCITY",
    "VELOCITY_ACTIVATIONS",
    "center_crop_or_resize",
    "interpolation_matrix",
    "conv_block",
    "normalization_layer",
    "output_head",
    "seismic_to_image",
    "time_reduction_front_end",
]
