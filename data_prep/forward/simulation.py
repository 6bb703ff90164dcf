"""The public entry point, ``simulate``: inputs checked and prepared, the batch cut into calls of the
compiled propagator (``data_prep.forward.propagator``), the calls run, on several threads for NumPy input.

Sections: the entry point; call sizing and concurrency (how many calls a batch becomes and how big each is);
input preparation (velocity bounds, the source time functions at the internal step, the geometry as the
small arrays the propagator takes).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from data_prep.forward.backend_glue import accelerator_present
from data_prep.forward.checks import check_dispersion, check_stability
from data_prep.forward.config import EngineConfig, time_stepping
from data_prep.forward.propagator import compiled_propagator
from data_prep.geometry import AcquisitionGeometry
from data_prep.wavelets import ricker

# Budget for the state buffers of one concurrent CPU call (numpy input): three quarters of a 2 MiB L2
# cache. One OpenFWI model (5 shots) needs 2.6 MB, so each call then holds 2-3 of its shots.
_CPU_CALL_STATE_BYTES = 3 * 2**19


# --- Public entry point -------------------------------------------------------------------------------------


def simulate(
    velocity_mps: Any,
    geometry: AcquisitionGeometry,
    config: EngineConfig = EngineConfig(),
    wavelet: Any = None,
    *,
    velocity_bounds_mps: tuple[float, float] | None = None,
    max_threads: int | None = None,
):
    """Simulates shot gathers for one or a batch of velocity models.

    Args:
        velocity_mps: ``(batch, depth, x)`` or ``(depth, x)``, m/s; numpy array or backend tensor,
            cast to float32. ``(depth, x)`` must equal ``geometry.grid_shape``.
        geometry: survey geometry: grid spacing, time axis, source and receiver cells.
        config: engine settings.
        wavelet: source time function sampled at ``geometry.sample_interval_s``: ``(num_samples,)``
            shared by all shots or ``(num_shots, num_samples)``; ``None`` means a unit-peak Ricker
            wavelet of ``geometry.peak_frequency_hz`` peaking at ``config.resolved_ricker_delay_s``
            (OpenFWI's delay by default). It enters as ``(v dt)^2 w[n]`` at the source cell (the
            "openfwi" amplitude convention of the package docstring), so traces scale linearly with it.
        velocity_bounds_mps: ``(min, max)`` velocity used for the CFL and dispersion checks instead of
            reading the values, required when ``velocity_mps`` is traced (inside ``jax.grad``/``jit`` or a
            ``tf.function``), where the values cannot be read.
        max_threads: run the concurrent calls (``config.max_concurrent_calls``) on at most this many threads,
            without changing how the batch is cut into calls (which the last bits of the traces depend on):
            a Dask worker thread simulates a chunk on one core and still writes the bytes that this
            machine's in-process run writes. None = one thread per call.

    Returns:
        ``(batch, shots, time, receivers)`` float32 backend tensor of pressure, ``batch`` being 1 for a
        ``(depth, x)`` input. Sample ``k`` is at ``k * geometry.sample_interval_s``. Differentiable with
        respect to ``velocity_mps`` (not through the CPML damping, which is scaled by each model's maximum
        velocity treated as a constant).

    Raises:
        ValueError: wrong shape, non-positive or non-finite velocities, an unstable time step (CFL), a
            time step that does not divide the sample interval, or a wavelet of the wrong shape.

    Warns:
        RuntimeWarning: too few cells per wavelength (numerical dispersion).
    """
    differentiable_input = _is_backend_tensor(velocity_mps)
    velocity = velocity_mps if differentiable_input else np.asarray(velocity_mps, np.float32)
    shape = tuple(ops.shape(velocity))
    if len(shape) == 2:
        velocity = velocity[None]
        shape = (1, *shape)
    if len(shape) != 3 or tuple(shape[1:]) != tuple(geometry.grid_shape):
        raise ValueError(
            f"velocity_mps must have shape (batch, depth, x) or (depth, x) with (depth, x) equal to "
            f"geometry.grid_shape={tuple(geometry.grid_shape)}. Received: shape {shape}"
        )
    velocity = ops.cast(velocity, "float32") if differentiable_input else velocity.astype(np.float32)
    if min(geometry.grid_shape) < config.spatial_order // 2:
        raise ValueError(
            f"The grid must be at least {config.spatial_order // 2} cells in each direction for the "
            f"{config.spatial_order}th-order stencil. Received: grid_shape={tuple(geometry.grid_shape)}"
        )

    min_velocity, max_velocity = _velocity_bounds(velocity, velocity_bounds_mps)
    time_step_s, substeps = time_stepping(geometry, config)
    check_stability(max_velocity, geometry.grid_spacing_m, time_step_s, config.spatial_order)
    check_dispersion(min_velocity, geometry.grid_spacing_m, geometry.peak_frequency_hz, config)

    source_time_functions = _source_time_functions(
        geometry, wavelet, time_step_s, substeps, config.resolved_ricker_delay_s(geometry)
    )
    propagate = compiled_propagator(
        spatial_order=config.spatial_order,
        free_surface=config.free_surface,
        absorbing_width_cells=config.absorbing_width_cells,
        time_step_s=time_step_s,
        grid_spacing_m=float(geometry.grid_spacing_m),
        substeps=substeps,
        cpml_frequency_hz=float(geometry.peak_frequency_hz),
        # NumPy input cannot be differentiated: its time loop runs in one piece (checkpointing only
        # restructures the loop for a gradient that will never be taken).
        checkpoint_segments=config.checkpoint_segments if differentiable_input else 1,
        backend=keras.backend.backend(),
        gradient=config.gradient if differentiable_input else "autodiff",
    )

    def run(models, shots: slice):
        plan = _Plan.build(geometry.replace(source_cells=geometry.source_cells[shots]), config)
        return propagate(
            models,
            source_time_functions[:, shots],
            plan.source_depth_one_hot,
            plan.source_x_one_hot,
            plan.source_flat_index,
            plan.receiver_flat_index,
        )

    num_models = int(shape[0])
    workers = _concurrent_calls(config, differentiable_input, num_models, geometry.num_sources)
    if workers == 1:
        return run(velocity, slice(None))
    # XLA's CPU executables run one fused loop nest per kernel on one core; independent calls on
    # disjoint parts of the batch use the other cores. Only for numpy input: a gradient tape or tracer
    # would not see work done on other threads. The calls are cut small enough for their two state
    # buffers to stay in a core's L2 cache: with one large call per thread, 2 threads ran a batch no
    # faster than 1 thread (memory-bound), with cache-sized calls they scale.
    models_per_call, shot_groups = _call_size(geometry, config, num_models, workers)
    shot_bounds = np.linspace(0, geometry.num_sources, shot_groups + 1).round().astype(int)
    jobs = [
        (velocity[first : first + models_per_call], slice(low, high))
        for first in range(0, num_models, models_per_call)
        for low, high in zip(shot_bounds[:-1], shot_bounds[1:], strict=True)
    ]
    with ThreadPoolExecutor(max_workers=min(workers, max_threads or workers)) as pool:
        parts = list(pool.map(lambda job: ops.convert_to_numpy(run(*job)), jobs))
    rows = [np.concatenate(parts[i : i + shot_groups], axis=1) for i in range(0, len(parts), shot_groups)]
    return ops.convert_to_tensor(np.concatenate(rows, axis=0))


# --- Call sizing and concurrency ----------------------------------------------------------------------------


def _call_size(
    geometry: AcquisitionGeometry, config: EngineConfig, num_models: int, workers: int
) -> tuple[int, int]:
    """(models per call, groups the shots are split into) for concurrent CPU calls.

    Calls hold at most ``_CPU_CALL_STATE_BYTES`` of state, and there are at least ``workers`` of them
    when the batch allows it.
    """
    width, halo = config.absorbing_width_cells, config.spatial_order // 2
    top = 0 if config.free_surface else width
    depth_cells, x_cells = geometry.grid_shape
    cells = (top + depth_cells + width + 2 * halo) * (x_cells + 2 * width + 2 * halo)
    # Two buffers of five float32 fields (pressure and four CPML memory variables) per shot.
    bytes_per_model = 2 * 5 * 4 * cells * geometry.num_sources
    if bytes_per_model <= _CPU_CALL_STATE_BYTES and num_models >= workers:
        return min(-(-num_models // workers), _CPU_CALL_STATE_BYTES // bytes_per_model), 1
    # One model per call, its shots in groups: enough groups to fit the budget and to use every worker.
    groups = max(-(-bytes_per_model // _CPU_CALL_STATE_BYTES), -(-workers // num_models))
    return 1, min(groups, geometry.num_sources)


def available_cpu_count() -> int:
    """CPU cores this process may run on: its affinity mask where the OS has one (Linux: a container's or
    ``taskset``'s limit), else ``os.cpu_count()``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        return os.cpu_count() or 1


def _concurrent_calls(
    config: EngineConfig, differentiable_input: bool, num_models: int, num_shots: int
) -> int:
    """How many concurrent propagator calls to split a batch into (1 = a single call)."""
    if differentiable_input:
        return 1
    requested = resolved_concurrent_calls(config)
    return max(1, min(requested, max(num_models, num_shots)))


def resolved_concurrent_calls(config: EngineConfig) -> int:
    """``config.max_concurrent_calls``, or this machine's default for ``None``: one call per CPU core this
    process may use; on an accelerator one large call, which keeps the device busiest."""
    if config.max_concurrent_calls is not None:
        return config.max_concurrent_calls
    return 1 if accelerator_present() else available_cpu_count()


# --- Input preparation --------------------------------------------------------------------------------------


def _is_backend_tensor(value: Any) -> bool:
    return not isinstance(value, np.ndarray | list | tuple | float | int) and hasattr(value, "shape")


def _velocity_bounds(velocity, bounds: tuple[float, float] | None) -> tuple[float, float]:
    """(min, max) velocity for the checks: the given bounds, else the values; validates positivity."""
    if bounds is not None:
        low, high = (float(b) for b in bounds)
        if not (0 < low <= high and np.isfinite(high)):
            raise ValueError(
                f"velocity_bounds_mps must be (min, max) with 0 < min <= max. Received: {bounds}"
            )
        return low, high
    try:
        values = np.asarray(ops.convert_to_numpy(ops.stop_gradient(velocity)))
    except Exception as error:  # tracers of jax.jit/grad or tf.function symbolic tensors
        raise ValueError(
            "velocity_mps is a traced tensor whose values cannot be read for the CFL and dispersion "
            "checks: pass velocity_bounds_mps=(min, max) when calling simulate inside jit/grad/tf.function."
        ) from error
    if not np.all(np.isfinite(values)):
        raise ValueError(
            "velocity_mps contains NaN or infinite values. Received a model with non-finite cells."
        )
    low, high = float(values.min()), float(values.max())
    if low <= 0:
        raise ValueError(f"velocity_mps must be positive everywhere (m/s). Received: minimum {low:g} m/s")
    return low, high


def _source_time_functions(
    geometry: AcquisitionGeometry, wavelet: Any, time_step_s: float, substeps: int, delay_s: float
) -> np.ndarray:
    """``(num_samples * substeps, num_shots)`` float32 source amplitudes at the internal time step."""
    num_steps = geometry.num_samples * substeps
    num_shots = geometry.num_sources
    if wavelet is None:
        single = ricker(geometry.peak_frequency_hz, num_steps, time_step_s, delay_s=delay_s)
        return np.repeat(single[:, None], num_shots, axis=1)
    values = np.asarray(ops.convert_to_numpy(wavelet) if _is_backend_tensor(wavelet) else wavelet, np.float32)
    if values.ndim == 1:
        values = np.broadcast_to(values[None, :], (num_shots, values.shape[0]))
    if values.shape != (num_shots, geometry.num_samples):
        raise ValueError(
            f"wavelet must have shape (num_samples,) = ({geometry.num_samples},) or (num_shots, num_samples) = "
            f"({num_shots}, {geometry.num_samples}). Received: shape {np.shape(wavelet)}"
        )
    if substeps > 1:
        # Band-limited (polyphase FIR) interpolation: the wavelet is assumed to be sampled above Nyquist
        # at the recording interval, as any wavelet worth recording is.
        from scipy.signal import resample_poly

        values = resample_poly(values.astype(np.float64), substeps, 1, axis=1).astype(np.float32)
    return np.ascontiguousarray(values.T)


@dataclass(frozen=True)
class _Plan:
    """Geometry turned into the small arrays the propagator needs (all in the padded domain)."""

    source_depth_one_hot: np.ndarray  # (shots, padded_depth) float32
    source_x_one_hot: np.ndarray  # (shots, padded_x) float32
    source_flat_index: np.ndarray  # (shots,) int32
    receiver_flat_index: np.ndarray  # (receivers,) int32

    @staticmethod
    def build(geometry: AcquisitionGeometry, config: EngineConfig) -> _Plan:
        width = config.absorbing_width_cells
        top = 0 if config.free_surface else width
        depth_cells, x_cells = geometry.grid_shape
        padded_depth, padded_x = top + depth_cells + width, 2 * width + x_cells
        sources = np.asarray(geometry.source_cells, np.int64) + np.array([top, width])
        receivers = np.asarray(geometry.receiver_cells, np.int64) + np.array([top, width])
        eye_depth, eye_x = np.eye(padded_depth, dtype=np.float32), np.eye(padded_x, dtype=np.float32)
        return _Plan(
            source_depth_one_hot=eye_depth[sources[:, 0]],
            source_x_one_hot=eye_x[sources[:, 1]],
            source_flat_index=(sources[:, 0] * padded_x + sources[:, 1]).astype(np.int32),
            receiver_flat_index=(receivers[:, 0] * padded_x + receivers[:, 1]).astype(np.int32),
        )
