"""Recurrent baseline (LSTM, GRU or plain RNN) for seismic velocity inversion.

Pipeline position: built by ``models.build("lstm", config)``; ``cell`` selects LSTM, GRU or SimpleRNN (the
plain RNN of the seed material), so one family covers the three configs ``configs/model/{lstm,gru,rnn}.yaml``.

Design choice: the recurrence runs over **traces (receivers)**, not over time.

* The receiver axis is the lateral axis of the output grid: the hidden state at step ``r`` summarises what
  the traces up to receiver ``r`` (both directions when bidirectional) say about the ground beneath it, and
  each step is decoded into one velocity column. Running over time would have to map a temporal state onto
  a depth-by-x image with no such correspondence.
* 70 steps instead of 1000: sequential recurrences cannot be parallelised, so 1000 steps per sample would
  make the baseline far slower than every other model on CPU, and gradients through 1000 steps of a
  SimpleRNN vanish.
* Time is still used in full: a time-striding convolutional front end (as in the U-Net) compresses each
  trace's ``(shots, time)`` record into the step's feature vector.

Architecture: shots → channels; strided ``(k, 1)`` convolutions along time; per receiver, the remaining
``(time', channels)`` block is flattened and projected to ``projection_dim``; ``len(recurrent_units)``
(bi)directional recurrent layers over receivers; a dense layer per step producing ``depth × decoder_filters``
features, i.e. one column of the grid; a resize to the ``(depth, x)`` grid (receivers → x); a 3×3 conv block;
float32 1×1 output heads.
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
    conv_block,
    output_head,
    seismic_to_image,
    time_reduction_front_end,
    validate_choice,
    validate_filters,
    validate_rate,
    validate_shape,
)

CELLS = ("lstm", "gru", "rnn")
_CELL_LAYERS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}


@dataclasses.dataclass(frozen=True)
class LSTMConfig:
    """Constructor arguments of ``LSTMInverter`` (YAML: ``configs/model/{lstm,gru,rnn}.yaml``)."""

    family: Literal["lstm"] = "lstm"
    seismic_shape: tuple[int, int, int] = (5, 1000, 70)
    grid_shape: tuple[int, int] = (70, 70)
    cell: Literal["lstm", "gru", "rnn"] = "lstm"
    front_end_filters: tuple[int, ...] = (16, 16, 16, 16)
    front_end_kernel_sizes: tuple[int, ...] = (7, 3, 3, 3)
    projection_dim: int = 128
    recurrent_units: tuple[int, ...] = (128, 128)
    bidirectional: bool = True
    decoder_filters: int = 16
    normalization: Literal["batch", "group", "layer", "none"] = "batch"
    dropout_rate: float = 0.0
    velocity_activation: Literal["tanh", "linear"] = "tanh"
    edge_head: bool = True


@keras.saving.register_keras_serializable(package=PACKAGE)
class LSTMInverter(keras.Model):
    """Recurrent baseline over receivers with a convolutional time front end and a grid decoder.

    Args:
        seismic_shape: ``(shots, time, receivers)`` of one input sample.
        grid_shape: ``(depth, x)`` cells of the output maps.
        cell: ``"lstm"``, ``"gru"`` or ``"rnn"`` (Keras ``SimpleRNN``).
        front_end_filters: channels of the time-striding convolutions (each halves time).
        front_end_kernel_sizes: time kernel length of each front-end stage.
        projection_dim: width of the per-receiver feature vector fed to the recurrence.
        recurrent_units: units of each stacked recurrent layer (per direction).
        bidirectional: run each recurrent layer in both directions and concatenate.
        decoder_filters: channels of each decoded grid column and of the refining conv block.
        normalization: normalisation of the conv blocks (``batch``, ``group``, ``layer``, ``none``).
        dropout_rate: dropout on the inputs of the recurrent layers, in [0, 1).
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
        cell: str = "lstm",
        front_end_filters: Sequence[int] = (16, 16, 16, 16),
        front_end_kernel_sizes: Sequence[int] = (7, 3, 3, 3),
        projection_dim: int = 128,
        recurrent_units: Sequence[int] = (128, 128),
        bidirectional: bool = True,
        decoder_filters: int = 16,
        normalization: str = "batch",
        dropout_rate: float = 0.0,
        velocity_activation: str = "tanh",
        edge_head: bool = True,
        **kwargs,
    ):
        seismic_shape = validate_shape(seismic_shape, 3, "seismic_shape", "(shots, time, receivers)")
        grid_shape = validate_shape(grid_shape, 2, "grid_shape", "(depth, x)")
        validate_choice(cell, CELLS, "cell")
        front_end_filters = validate_filters(front_end_filters, "front_end_filters", minimum_length=0)
        front_end_kernel_sizes = validate_filters(front_end_kernel_sizes, "front_end_kernel_sizes", 0)
        if len(front_end_kernel_sizes) != len(front_end_filters):
            raise ValueError(
                "`front_end_kernel_sizes` needs one kernel length per entry of `front_end_filters`. Received: "
                f"front_end_filters={front_end_filters}, front_end_kernel_sizes={front_end_kernel_sizes}"
            )
        if seismic_shape[1] < 2 ** len(front_end_filters):
            raise ValueError(
                f"{len(front_end_filters)} front-end stages halve {seismic_shape[1]} time samples too often: "
                f"use fewer stages. Received: seismic_shape={seismic_shape}"
            )
        recurrent_units = validate_filters(recurrent_units, "recurrent_units", minimum_length=1)
        (projection_dim,) = validate_filters((projection_dim,), "projection_dim")
        (decoder_filters,) = validate_filters((decoder_filters,), "decoder_filters")
        validate_choice(normalization, NORMALIZATIONS, "normalization")
        validate_choice(velocity_activation, VELOCITY_ACTIVATIONS, "velocity_activation")
        dropout_rate = validate_rate(dropout_rate, "dropout_rate")
        depth_cells, lateral_cells = grid_shape
        num_receivers = seismic_shape[2]
        block = {"normalization": normalization, "activation": "leaky_relu"}

        # === Layers ===
        recurrent_layers = []
        for index, units in enumerate(recurrent_units):
            layer = _CELL_LAYERS[cell](
                units, return_sequences=True, dropout=dropout_rate, name=f"{cell}_{index}"
            )
            if bidirectional:
                layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{cell}_{index}")
            recurrent_layers.append(layer)

        # === Functional model ===
        seismic = keras.Input(shape=seismic_shape, name="seismic")
        x = seismic_to_image(seismic)
        x = time_reduction_front_end(x, front_end_filters, front_end_kernel_sizes, normalization)
        # (batch, time', receivers, channels) → one feature vector per receiver: (batch, receivers, features)
        x = keras.layers.Permute((2, 1, 3), name="receivers_first")(x)
        x = keras.layers.Reshape((num_receivers, int(x.shape[2]) * int(x.shape[3])), name="traces")(x)
        x = keras.layers.Dense(projection_dim, activation="gelu", name="trace_projection")(x)
        for layer in recurrent_layers:
            x = layer(x)
        # Each step becomes one grid column: (batch, receivers, depth * filters) → (batch, depth, receivers, f)
        x = keras.layers.Dense(depth_cells * decoder_filters, name="column_decoder")(x)
        x = keras.layers.Reshape((num_receivers, depth_cells, decoder_filters), name="columns")(x)
        x = keras.layers.Permute((2, 1, 3), name="depth_first")(x)
        x = ResizeToGrid(depth_cells, lateral_cells, name="resize_to_grid")(x)
        x = conv_block(x, decoder_filters, 3, name="decoder_block", **block)
        outputs = {VELOCITY: output_head(x, VELOCITY, velocity_activation)}
        if edge_head:
            outputs[EDGES] = output_head(x, EDGES, "sigmoid")

        super().__init__(inputs=seismic, outputs=outputs, **kwargs)

        # === Config ===
        self.seismic_shape = seismic_shape
        self.grid_shape = grid_shape
        self.cell = cell
        self.front_end_filters = front_end_filters
        self.front_end_kernel_sizes = front_end_kernel_sizes
        self.projection_dim = projection_dim
        self.recurrent_units = recurrent_units
        self.bidirectional = bool(bidirectional)
        self.decoder_filters = decoder_filters
        self.normalization = normalization
        self.dropout_rate = dropout_rate
        self.velocity_activation = velocity_activation
        self.edge_head = bool(edge_head)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "seismic_shape": list(self.seismic_shape),
            "grid_shape": list(self.grid_shape),
            "cell": self.cell,
            "front_end_filters": list(self.front_end_filters),
            "front_end_kernel_sizes": list(self.front_end_kernel_sizes),
            "projection_dim": self.projection_dim,
            "recurrent_units": list(self.recurrent_units),
            "bidirectional": self.bidirectional,
            "decoder_filters": self.decoder_filters,
            "normalization": self.normalization,
            "dropout_rate": self.dropout_rate,
            "velocity_activation": self.velocity_activation,
            "edge_head": self.edge_head,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


__all__ = ["CELLS", "LSTMConfig", "LSTMInverter"]
