"""The engine with its gradient, as the refinement calls it: simulated gathers and their pullback.

Part of ``pipeline.refine``. ``refinement_engine`` chooses the gradient's checkpointing for the memory one
engine call may keep; ``shot_groups`` splits the shots into equal groups (one compilation) that
``simulate_with_pullback`` and ``simulate_once`` run on concurrent threads, one per CPU core. The gradient
is the engine's adjoint-state method (``data_prep.forward.EngineConfig.gradient``) through the backend's
vector-Jacobian product (TensorFlow or JAX).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from data_prep.geometry import AcquisitionGeometry
from pipeline.refine.config import RefineConfig

# The engine imports Keras and its backend: imported where it is used, so that importing this module (for
# its config, e.g. by ``python -m pipeline.infer --help``) stays light.

#: The most memory one engine call of a refinement may keep for its gradient before it checkpoints: below
#: it, the forward keeps every step's Laplacian and the adjoint pass recomputes nothing (one forward fewer).
STORED_GRADIENT_BYTES = 256 * 2**20


def refinement_engine(
    engine: Any,
    num_samples: int,
    config: RefineConfig | None = None,
    geometry: AcquisitionGeometry | None = None,
) -> Any:
    """The engine settings the refinement runs with: the training data's, with the gradient's checkpointing.

    The engine's gradient is the adjoint-state method (``EngineConfig.gradient``). Given the ``geometry``,
    when one engine call's Laplacians (every time step, ``shot_groups``' shots per call) fit
    ``STORED_GRADIENT_BYTES`` the forward keeps them all (``checkpoint_segments=1``): 115 MB and ~4 instead
    of ~5 forwards per gradient of an OpenFWI window's 3-shot call. Otherwise (or without ``geometry``) one
    level of ``sqrt(samples / 2)`` segments, each recomputed once. Results do not depend on it.
    """
    from data_prep.forward import EngineConfig, stored_gradient_bytes

    if engine is None:
        engine = EngineConfig()
    segments = config.checkpoint_segments if config is not None else None
    if segments is None and geometry is not None:
        shots = int(shot_groups(geometry.num_sources, config.shots_per_call if config else None)[0].size)
        if stored_gradient_bytes(geometry, engine, shots) <= STORED_GRADIENT_BYTES:
            segments = 1
    if segments is None:
        segments = max(1, round(math.sqrt(max(1, num_samples // 2))))
    if getattr(engine, "checkpoint_segments", None) == segments:
        return engine
    return dataclasses.replace(engine, checkpoint_segments=segments)


def shot_groups(num_shots: int, shots_per_call: int | None = None) -> list[np.ndarray]:
    """Shot indices per engine call, every group of the same size (the last padded by repeating its last
    shot, whose traces are then ignored) so that the engine compiles once. None: one group per CPU core."""
    if shots_per_call is None:
        from data_prep.forward import available_cpu_count

        groups = max(1, min(available_cpu_count(), num_shots))
        shots_per_call = -(-num_shots // groups)
    size = max(1, min(int(shots_per_call), num_shots))
    result = []
    for first in range(0, num_shots, size):
        group = np.arange(first, min(first + size, num_shots))
        if group.size < size:
            group = np.concatenate([group, np.full(size - group.size, group[-1])])
        result.append(group)
    return result


def simulate_with_pullback(
    velocity_mps: np.ndarray,
    geometry: AcquisitionGeometry,
    engine: Any,
    wavelet: np.ndarray | None,
    bounds_mps: tuple[float, float],
    shots_per_call: int | None = None,
) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Simulated gathers of one model and the engine's vector-Jacobian product.

    The shots run in equal groups (``shot_groups``) on concurrent threads: XLA runs one call on one core.

    Args:
        velocity_mps: ``(depth, x)`` m/s.
        geometry, engine, wavelet: as for ``data_prep.forward.simulate``.
        bounds_mps: the velocity range for the engine's CFL/dispersion checks (values are traced).
        shots_per_call: see ``shot_groups``.

    Returns:
        ``(gathers (shots, time, receivers) float64, pullback)``, ``pullback(w)`` being
        ``d/dv sum(simulate(v) * w)``, ``(depth, x)`` float64, for ``w`` of the gathers' shape.

    Raises:
        ValueError: a Keras backend without reverse-mode support here (use TensorFlow or JAX), or the
            engine's own refusals (CFL at the upper bound, shapes).
    """
    groups = shot_groups(geometry.num_sources, shots_per_call)
    if len(groups) == 1 and groups[0].size == geometry.num_sources:
        return _group_with_pullback(velocity_mps, geometry, engine, wavelet, bounds_mps)
    jobs = [_group_job(geometry, wavelet, group) for group in groups]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        parts = list(
            pool.map(lambda job: _group_with_pullback(velocity_mps, job[0], engine, job[1], bounds_mps), jobs)
        )
    gathers = np.empty((geometry.num_sources, geometry.num_samples, geometry.num_receivers))
    for group, (part, _) in zip(groups, parts, strict=True):
        gathers[group] = part  # a padded group's repeated shot writes the same values twice
    unique = [np.unique(group, return_index=True)[1] for group in groups]

    def pullback(weights: np.ndarray) -> np.ndarray:
        weights = np.asarray(weights)

        def one(index: int) -> np.ndarray:
            group, keep = groups[index], unique[index]
            group_weights = np.zeros((group.size, *weights.shape[1:]))
            group_weights[keep] = weights[group[keep]]
            return parts[index][1](group_weights)

        with ThreadPoolExecutor(max_workers=len(groups)) as pool:
            return np.sum(list(pool.map(one, range(len(groups)))), axis=0)

    return gathers, pullback


def _group_job(geometry: AcquisitionGeometry, wavelet, group: np.ndarray):
    sub = geometry.replace(source_cells=tuple(geometry.source_cells[i] for i in group))
    if wavelet is not None and np.ndim(wavelet) == 2:
        wavelet = np.asarray(wavelet)[group]
    return sub, wavelet


def _group_with_pullback(velocity_mps, geometry, engine, wavelet, bounds_mps):
    import keras

    from data_prep.forward import simulate

    backend = keras.backend.backend()
    velocity = np.asarray(velocity_mps, np.float32)[None]

    def forward(model):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # dispersion: the training data had it too
            return simulate(model, geometry, engine, wavelet=wavelet, velocity_bounds_mps=bounds_mps)

    if backend == "tensorflow":
        import tensorflow as tf

        model = tf.constant(velocity)
        with tf.GradientTape() as tape:
            tape.watch(model)
            gathers = forward(model)

        def pullback(weights: np.ndarray) -> np.ndarray:
            cotangent = tf.constant(np.asarray(weights, np.float32)[None])
            return np.asarray(tape.gradient(gathers, model, output_gradients=cotangent), np.float64)[0]

        return np.asarray(gathers, np.float64)[0], pullback
    if backend == "jax":
        import jax

        gathers, vjp = jax.vjp(forward, jax.numpy.asarray(velocity))

        def pullback(weights: np.ndarray) -> np.ndarray:
            cotangent = jax.numpy.asarray(np.asarray(weights, np.float32)[None])
            return np.asarray(vjp(cotangent)[0], np.float64)[0]

        return np.asarray(gathers, np.float64)[0], pullback
    raise ValueError(
        f"Refinement needs the engine's gradient, available here under the TensorFlow and JAX backends. "
        f"Received: KERAS_BACKEND={backend}. Set KERAS_BACKEND=tensorflow or jax."
    )


def simulate_once(
    velocity_mps: np.ndarray,
    geometry: AcquisitionGeometry,
    engine: Any,
    wavelet: np.ndarray | None,
    bounds_mps: tuple[float, float],
    shots_per_call: int | None = None,
) -> np.ndarray:
    """Gathers ``(shots, time, receivers)`` float64 of one model, through the same compiled engine calls as
    ``simulate_with_pullback`` (backend tensors of the same shapes: no second compilation)."""
    from keras import ops

    from data_prep.forward import simulate

    def one(job):
        sub, sub_wavelet = job
        model = ops.convert_to_tensor(np.asarray(velocity_mps, np.float32)[None])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            gathers = simulate(model, sub, engine, wavelet=sub_wavelet, velocity_bounds_mps=bounds_mps)
        return np.asarray(ops.convert_to_numpy(gathers), np.float64)[0]

    groups = shot_groups(geometry.num_sources, shots_per_call)
    if len(groups) == 1 and groups[0].size == geometry.num_sources:
        return one((geometry, wavelet))
    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        parts = list(pool.map(one, [_group_job(geometry, wavelet, group) for group in groups]))
    gathers = np.empty((geometry.num_sources, geometry.num_samples, geometry.num_receivers))
    for group, part in zip(groups, parts, strict=True):
        gathers[group] = part
    return gathers
