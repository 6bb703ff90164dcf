"""Random shapes every family draws from: smooth curves, lobed outlines, sorted values with gaps, alternating
velocities.

Part of ``data_prep.velocity_models``. Each takes the model's ``np.random.Generator`` and draws from it in a
fixed order, so a model stays a function of ``(seed, index, family)`` only.
"""

from __future__ import annotations

import numpy as np


def smooth_curve(
    rng: np.random.Generator, x_cells: int, wavelength_fraction: tuple[float, float]
) -> np.ndarray:
    """A smooth random curve over the columns: a sum of 3 sinusoids, scaled to a peak |value| of 1."""
    x = np.arange(x_cells, dtype=float)
    wavelengths = rng.uniform(*wavelength_fraction, size=3) * x_cells
    amplitudes = rng.uniform(0.3, 1.0, size=3) / np.arange(1, 4)
    phases = rng.uniform(0.0, 2 * np.pi, size=3)
    curve = (
        amplitudes[:, None] * np.sin(2 * np.pi * x[None, :] / wavelengths[:, None] + phases[:, None])
    ).sum(0)
    peak = np.abs(curve).max()
    # A wavelength much longer than the width can leave an almost constant curve; that is still a valid
    # (nearly flat) interface, so only guard against division by zero.
    return curve / peak if peak > 1e-12 else curve


def lobed_radius(
    rng: np.random.Generator, angle: np.ndarray, harmonics: np.ndarray, max_amplitude: float
) -> np.ndarray:
    """The radius (1 on average) of a smooth, irregular closed outline at polar ``angle``: modulated by
    ``harmonics`` (numbers of lobes) of random amplitude up to ``max_amplitude`` and random phase. With
    ``len(harmonics) * max_amplitude < 1`` the radius stays positive: the outline is star-shaped."""
    amplitudes = rng.uniform(0.0, max_amplitude, size=len(harmonics))
    phases = rng.uniform(0, 2 * np.pi, size=len(harmonics))
    return 1.0 + (
        amplitudes[:, None, None] * np.cos(harmonics[:, None, None] * angle + phases[:, None, None])
    ).sum(0)


def sorted_with_gaps(rng: np.random.Generator, count: int, low: float, high: float, gap: float) -> np.ndarray:
    """``count`` sorted uniform values in [low, high] with at least ``gap`` between neighbours."""
    # Draw in the range shrunk by the total gap, sort, then add i * gap: uniform over the feasible set.
    values = np.sort(rng.uniform(low, high - (count - 1) * gap, size=count))
    return values + gap * np.arange(count)


def alternating_velocities(
    rng: np.random.Generator, count: int, low: float, high: float, contrast: float
) -> np.ndarray:
    """Velocities in [low, high], each at least ``contrast`` from the previous one, in any order."""
    velocities = [rng.uniform(low, high)]
    for _ in range(count - 1):
        previous = velocities[-1]
        # Allowed set: [low, previous - contrast] U [previous + contrast, high]; draw on its total length
        # and map the draw across the forbidden gap.
        left = max(0.0, previous - contrast - low)
        right = max(0.0, high - previous - contrast)
        u = rng.uniform(0.0, left + right)
        velocities.append(low + u if u < left else previous + contrast + (u - left))
    return np.asarray(velocities)


__all__ = ["alternating_velocities", "lobed_radius", "smooth_curve", "sorted_with_gaps"]
