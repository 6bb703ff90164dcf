"""The absorbing layer: the CPML's coefficients per cell, and the velocity model extended into the layer.

The CPML is the second-order formulation of Pasalic & McGarry (SEG 2010) in Deepwave's single-pass form;
its design constants (damping polynomial, theoretical reflection) are in ``data_prep.forward.config``. The
layer lies outside the velocity model, whose edge cells are copied outwards (``pad_edge``); the gradient
folds the layer's cotangents back onto those edge cells (``pad_edge_adjoint``).
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from data_prep.forward.config import CPML_POLYNOMIAL_ORDER, CPML_THEORETICAL_REFLECTION
from data_prep.forward.layout import Discretisation


def layer_profile(length: int, before: int, after: int, width: int) -> np.ndarray:
    """Normalised depth into the absorbing layer per cell: 1 at the outer edge, 1/width at its innermost
    cell, 0 in the model (``before``/``after`` = layer cells at each end, 0 or ``width``)."""
    cells = np.arange(length, dtype=np.float64)
    into_before = (before - cells) / width if before else np.zeros(length)
    into_after = (cells - (length - 1 - after)) / width if after else np.zeros(length)
    return np.clip(np.maximum(into_before, into_after), 0.0, 1.0).astype(np.float32)


def cpml_coefficients(discretisation: Discretisation, profile: np.ndarray, max_velocity):
    """Recursive-convolution coefficients ``(a, b)`` and ``dx * da/dx``, each ``(batch, len(profile))``.

    Damping profile ``d(s) = d0 s^N`` with ``d0 = (N + 1) vmax ln(1/R) / (2 L)``, frequency shift
    ``alpha = pi f_peak (1 - s)``, ``s`` the ``profile`` (Collino & Tsogka 2001; Komatitsch & Martin 2007);
    ``max_velocity`` ``(batch,)``, m/s, scales each model's damping.
    """
    dt, dx = discretisation.time_step_s, discretisation.grid_spacing_m
    width, halo, first = discretisation.absorbing_width_cells, discretisation.halo, discretisation.first
    damping_scale = (
        (CPML_POLYNOMIAL_ORDER + 1) * math.log(1.0 / CPML_THEORETICAL_REFLECTION) / (2.0 * width * dx)
    )
    damping = damping_scale * max_velocity[:, None] * profile[None, :] ** CPML_POLYNOMIAL_ORDER
    inside = (profile > 0).astype(np.float32)[None, :]
    shift = math.pi * discretisation.cpml_frequency_hz * (1.0 - profile[None, :]) * inside
    b = ops.exp(-(damping + shift) * dt)
    # a = d / (d + alpha) (b - 1); zero outside the layer, where d = alpha = 0 (and b = 1).
    a = damping / (damping + shift + (1.0 - inside)) * (b - 1.0) * inside
    # The derivative of `a` with the same first-derivative stencil (edge values continued outwards).
    extended = ops.concatenate(
        [ops.repeat(a[:, :1], halo, axis=1), a, ops.repeat(a[:, -1:], halo, axis=1)], axis=1
    )
    length = profile.shape[0]
    a_derivative = 0.0
    for k in range(1, halo + 1):
        a_derivative = a_derivative + first[k - 1] * (
            extended[:, halo + k : halo + k + length] - extended[:, halo - k : halo - k + length]
        )
    return a, b, a_derivative


def pad_edge(velocity, top: int, bottom: int, side: int):
    """Replicates the edge cells of ``(batch, depth, x)`` outwards (``mode="edge"``, which TF's pad lacks)."""
    parts = [ops.repeat(velocity[:, :1], top, axis=1)] if top else []
    parts += [velocity, ops.repeat(velocity[:, -1:], bottom, axis=1)]
    velocity = ops.concatenate(parts, axis=1)
    left, right = ops.repeat(velocity[:, :, :1], side, axis=2), ops.repeat(velocity[:, :, -1:], side, axis=2)
    return ops.concatenate([left, velocity, right], axis=2)


def pad_edge_adjoint(cotangent, top: int, bottom: int, side: int):
    """The transpose of ``pad_edge``: each padded cell's cotangent added to the edge cell it copies."""

    def fold(array, before: int, after: int, axis: int):
        length = int(array.shape[axis]) - before - after
        inner = ops.take(array, np.arange(before, before + length), axis=axis)
        shape = [1, 1, 1]
        shape[axis] = length
        for count, edge, cells in ((before, 0, np.arange(before)), (after, length - 1, None)):
            if not count:
                continue
            if cells is None:
                cells = np.arange(before + length, before + length + after)
            one_hot = np.zeros(length, np.float32)
            one_hot[edge] = 1.0
            summed = ops.sum(ops.take(array, cells, axis=axis), axis=axis, keepdims=True)
            inner = inner + summed * np.reshape(one_hot, shape)
        return inner

    return fold(fold(cotangent, top, bottom, 1), side, side, 2)
