"""The compiled propagator: one XLA executable per static configuration and input shape, differentiable
with respect to velocity by the backend's reverse mode or by the adjoint-state method.

``compiled_propagator`` is what ``simulate`` calls; ``kernel`` is the traced function behind it, built of
``Propagation`` (``data_prep.forward.propagation``: the call's arrays and the forward time loop), the time
step (``data_prep.forward.time_step``) and the adjoint pass (``data_prep.forward.adjoint``). Compiling and the
custom gradients are backend glue (``data_prep.forward.backend_glue``).
"""

from __future__ import annotations

import functools

from data_prep.forward.adjoint import backpropagate, store_checkpoints
from data_prep.forward.backend_glue import xla_compile, xla_compile_with_adjoint
from data_prep.forward.layout import Discretisation
from data_prep.forward.propagation import Propagation


@functools.lru_cache(maxsize=32)
def compiled_propagator(
    *,
    spatial_order: int,
    free_surface: bool,
    absorbing_width_cells: int,
    time_step_s: float,
    grid_spacing_m: float,
    substeps: int,
    cpml_frequency_hz: float,
    checkpoint_segments: int | None,
    backend: str,
    gradient: str = "autodiff",
):
    """The XLA-compiled propagator for one static configuration (cached; ``backend`` is part of the key).

    The propagator is ``propagate(velocity, source_time_functions, source_depth_one_hot, source_x_one_hot,
    source_flat_index, receiver_flat_index) -> traces``: ``velocity`` ``(batch, depth, x)``, m/s;
    ``source_time_functions`` ``(steps, shots)``; the sources' one-hot rows ``(shots, padded_depth)`` and
    columns ``(shots, padded_x)`` and flat cells ``(shots,)``, the receivers' flat cells ``(receivers,)``, all
    in the padded grid (``simulation._Plan``); ``traces`` ``(batch, shots, time, receivers)``.

    ``gradient``: ``"autodiff"`` differentiates the time loop by the backend's reverse mode (each step's
    hand-written adjoint inside it, the loop checkpointed by ``checkpoint_segments`` levels);
    ``"adjoint"`` gives the whole propagator a hand-written reverse pass (the adjoint-state method,
    ``data_prep.forward.adjoint``).

    The performance notes (why the code looks the way it does) are with the code they explain: the step's
    in ``data_prep.forward.time_step``, the loop's in ``data_prep.forward.propagation``; the measurements
    in ``docs/forward_modelling.md``.
    """
    del backend  # only part of the cache key
    discretisation = Discretisation(
        spatial_order=spatial_order,
        free_surface=free_surface,
        absorbing_width_cells=absorbing_width_cells,
        time_step_s=time_step_s,
        grid_spacing_m=grid_spacing_m,
        substeps=substeps,
        cpml_frequency_hz=cpml_frequency_hz,
        checkpoint_segments=checkpoint_segments,
    )

    def propagate(*arguments):
        return kernel(discretisation, "forward", *arguments)

    if gradient == "autodiff":
        return xla_compile(propagate)

    def propagate_storing(*arguments):
        return kernel(discretisation, "storing", *arguments)

    def propagate_backward(upstream, checkpoints, *arguments):
        return kernel(discretisation, "backward", *arguments, upstream=upstream, checkpoints=checkpoints)

    return xla_compile_with_adjoint(propagate, propagate_storing, propagate_backward)


def kernel(
    discretisation: Discretisation,
    mode: str,
    velocity,
    source_time_functions,
    source_depth_one_hot,
    source_x_one_hot,
    source_flat_index,
    receiver_flat_index,
    upstream=None,
    checkpoints=None,
):
    """``mode`` "forward": the traces; "storing": the traces and the adjoint path's checkpoints;
    "backward": the velocity's cotangent for the traces' cotangent ``upstream`` (``checkpoints`` from
    "storing")."""
    propagation = Propagation.build(
        discretisation,
        mode,
        velocity,
        source_time_functions,
        source_depth_one_hot,
        source_x_one_hot,
        source_flat_index,
        receiver_flat_index,
    )
    if mode == "forward":
        return propagation.forward()
    if mode == "storing":
        return store_checkpoints(propagation)
    return backpropagate(propagation, upstream, checkpoints)
