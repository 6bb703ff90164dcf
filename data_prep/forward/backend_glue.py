"""Backend glue: the only code of the engine that knows which Keras backend runs.

Everything numerical in ``data_prep.forward`` is written with ``keras.ops``; what ``keras.ops`` lacks is
here, once per backend (TensorFlow and JAX; other backends run the plain code uncompiled):

* XLA compilation of a propagator, with the backend's reverse mode (``xla_compile``) or with a hand-written
  reverse pass (``xla_compile_with_adjoint``: ``tf.custom_gradient`` / ``jax.custom_vjp``);
* a custom gradient of one time step (``with_custom_gradient``);
* a fixed-trip loop that the backend can reverse-differentiate (``fixed_trip_loop``) and its gradient
  checkpointing in (nested) segments (``checkpointed_segments``);
* TensorFlow specifics: a gradient for ``XlaDynamicUpdateSlice``, the retracing warning filtered out;
* whether an accelerator computes (``accelerator_present``, for the default number of concurrent calls).
"""

from __future__ import annotations

import functools
import logging

import keras
from keras import ops


@functools.lru_cache(maxsize=1)
def accelerator_present() -> bool:
    """Whether the active backend computes on a GPU/TPU (backend glue, like ``xla_compile``)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    return False


def xla_compile(function):
    """Compiles ``function`` with XLA on the active Keras backend: the engine's only backend-specific code.

    ``keras.ops`` has no compile primitive, so this dispatches to ``tf.function(jit_compile=True)``
    (TensorFlow) or ``jax.jit`` (JAX). Other backends run the same ``keras.ops`` code uncompiled.
    Both compilers cache one executable per input shape and dtype. The result is differentiable with
    respect to its first argument (the velocity) only.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        _register_tensorflow_slice_update_gradient()
        _quiet_retracing_warnings()
        forward = tf.function(function, jit_compile=True, reduce_retracing=False)

        # An eager GradientTape around an XLA function would have to carry the loop's accumulators
        # across the XLA boundary, which TensorFlow does not support. The backward pass is therefore its
        # own XLA function that re-runs the forward under a tape inside XLA (the gradient costs one
        # extra forward); the forward call itself stores nothing.
        @tf.function(jit_compile=True, reduce_retracing=False)
        def velocity_vjp(upstream, velocity, *others):
            with tf.GradientTape() as tape:
                tape.watch(velocity)
                outputs = function(velocity, *others)
            return tape.gradient(outputs, velocity, output_gradients=upstream)

        def differentiable(velocity, *others):
            # Only the velocity goes through tf.custom_gradient: it would also watch the other inputs, and
            # watching the int32 shot/receiver indices printed TensorFlow's "The dtype of the watched tensor
            # must be floating" warning at every gradient (issue 22). They are constants of the call.
            @tf.custom_gradient
            def with_gradient(velocity):
                def gradient(upstream):
                    return velocity_vjp(upstream, velocity, *others)

                # stop_gradient: the tape must not record the forward call itself (see above).
                return forward(tf.stop_gradient(velocity), *others), gradient

            return with_gradient(velocity)

        return differentiable
    if backend == "jax":
        import jax

        return jax.jit(function)
    return function


def xla_compile_with_adjoint(forward, storing, backward):
    """Like ``xla_compile``, for a propagator with a hand-written reverse pass: ``forward(velocity,
    *others)`` gives the traces, ``storing(velocity, *others)`` the traces and the residuals,
    ``backward(upstream, residuals, velocity, *others)`` the velocity's cotangent. Each is compiled with
    XLA; the result is differentiable with respect to its first argument (the velocity) only. Backend
    glue: ``tf.custom_gradient`` or ``jax.custom_vjp``; other backends run ``forward`` uncompiled, without
    a gradient.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        _quiet_retracing_warnings()
        compiled_storing = tf.function(storing, jit_compile=True, reduce_retracing=False)
        compiled_backward = tf.function(backward, jit_compile=True, reduce_retracing=False)

        def differentiable(velocity, *others):
            # Only the velocity goes through tf.custom_gradient (it would watch the int32 indices too).
            @tf.custom_gradient
            def with_gradient(velocity):
                # stop_gradient: the tape must not record the compiled call itself (see xla_compile).
                traces, residuals = compiled_storing(tf.stop_gradient(velocity), *others)

                def gradient(upstream):
                    return compiled_backward(upstream, residuals, velocity, *others)

                return traces, gradient

            return with_gradient(velocity)

        return differentiable
    if backend == "jax":
        import jax

        compiled_forward = jax.jit(forward)
        compiled_storing = jax.jit(storing)
        compiled_backward = jax.jit(backward)

        @jax.custom_vjp
        def differentiable(velocity, *others):
            return compiled_forward(velocity, *others)

        def differentiable_forward(velocity, *others):
            traces, residuals = compiled_storing(velocity, *others)
            return traces, (residuals, velocity, others)

        def differentiable_backward(saved, upstream):
            residuals, velocity, others = saved
            return (compiled_backward(upstream, residuals, velocity, *others), *(None for _ in others))

        differentiable.defvjp(differentiable_forward, differentiable_backward)
        return differentiable
    return forward


class _RetracingFilter(logging.Filter):
    """Drops TensorFlow's "N out of the last M calls ... triggered tf.function retracing" warning.

    The engine compiles one XLA executable per input shape on purpose (a QC batch, a reference simulation and
    a refinement each have their own shape); TensorFlow's heuristic calls that excessive and printed it into
    the output of ``pipeline.infer`` (issue 22). Every other TensorFlow message passes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@functools.lru_cache(maxsize=1)
def _quiet_retracing_warnings() -> None:
    import tensorflow as tf

    tf.get_logger().addFilter(_RetracingFilter())


def fixed_trip_loop(num_iterations: int, body, carry):
    """``for i in range(num_iterations): carry = body(i, carry)``, reverse-differentiable on every backend.

    Backend glue, like ``xla_compile``. ``keras.ops.fori_loop`` is JAX's ``fori_loop`` (a
    differentiable ``scan`` for static bounds) but on TensorFlow a ``while_loop`` without
    ``maximum_iterations``, whose gradient XLA refuses to compile (unbounded accumulators); TensorFlow
    therefore gets ``keras.ops.while_loop`` with the trip count as ``maximum_iterations``.
    """
    if keras.backend.backend() != "tensorflow":
        return ops.fori_loop(0, num_iterations, body, carry)

    def condition(index, state):
        return index < num_iterations

    def step(index, state):
        return index + 1, body(index, state)

    return ops.while_loop(condition, step, (0, carry), maximum_iterations=num_iterations)[1]


def checkpointed_segments(
    run, first, total: int, levels: tuple[int, ...], buffers, coefficients: tuple, width: int
):
    """Runs ``run(first, count, buffers, coefficients) -> (buffers, block)`` over ``total`` loop iterations
    from iteration ``first`` on, gradient-checkpointed with ``levels[0]`` segments, each of them split the
    same way by ``levels[1:]`` (nested checkpointing). Returns the final buffers and the ``(2 total,
    width)`` block of recorded samples.

    Backend glue, like ``xla_compile``. Reverse mode then stores the two state buffers at each segment's
    start and, while differentiating a segment, that segment's own checkpoints or, at the innermost level,
    its steps (recomputed from its start). JAX: ``jax.checkpoint`` of each segment inside a ``lax.scan``;
    TensorFlow: ``tf.recompute_grad`` of each segment inside a bounded ``while_loop``. One segment, or
    another backend: the plain loop (every step stored).
    """
    backend = keras.backend.backend()
    num_segments, inner = (levels[0], levels[1:]) if levels else (1, ())
    num_segments = min(num_segments, total) if total else 1
    if num_segments <= 1 or backend not in ("jax", "tensorflow"):
        if inner and total > 1:
            return checkpointed_segments(run, first, total, inner, buffers, coefficients, width)
        return run(first, total, buffers, coefficients)

    def segment_run(start, count, carry, arguments):
        if inner:
            return checkpointed_segments(run, start, count, inner, carry, arguments, width)
        return run(start, count, carry, arguments)

    length, tail = divmod(total, num_segments)
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        def segment(carry, index):
            return segment_run(first + index * length, length, carry, coefficients)

        buffers, stacked = jax.lax.scan(
            jax.checkpoint(segment, prevent_cse=False), buffers, jnp.arange(num_segments)
        )
        block = jnp.reshape(stacked, (num_segments * stacked.shape[1], stacked.shape[2]))
        if tail:
            last = jax.checkpoint(
                lambda carry: segment_run(first + num_segments * length, tail, carry, coefficients)
            )
            buffers, tail_block = last(buffers)
            block = jnp.concatenate([block, tail_block], axis=0)
        return buffers, block

    import tensorflow as tf

    def flat_segment(state, other, start, *arguments):
        # recompute_grad watches every argument, and TensorFlow warns about watching an integer ("The dtype
        # of the watched tensor must be floating", three times per refinement: issue 22): the segment's
        # first step travels as float32 (exact below 2**24 steps) and is cast back here.
        start = ops.cast(start, "int32")
        (state, other), block = segment_run(start, length, (state, other), arguments)
        return state, other, block

    checkpointed = tf.recompute_grad(flat_segment)
    block_rows = 2 * length

    def body(index, carry):
        state, other, accumulated = carry
        start = ops.cast(first + index * length, "float32")
        state, other, block = checkpointed(state, other, start, *coefficients)
        return state, other, ops.slice_update(accumulated, (index * block_rows, 0), block)

    state, other = buffers
    accumulated = ops.zeros((num_segments * block_rows, width), "float32")
    state, other, accumulated = fixed_trip_loop(num_segments, body, (state, other, accumulated))
    if tail:

        def flat_tail(state, other, *arguments):
            (state, other), block = segment_run(
                first + num_segments * length, tail, (state, other), arguments
            )
            return state, other, block

        state, other, tail_block = tf.recompute_grad(flat_tail)(state, other, *coefficients)
        accumulated = ops.concatenate([accumulated, tail_block], axis=0)
    return (state, other), accumulated


def with_custom_gradient(primal, forward, backward):
    """``primal(*args)`` whose reverse-mode derivative is ``backward(residuals, output_cotangent)`` (one
    cotangent per argument), ``forward(*args)`` returning ``(output, residuals)``. Backend glue, like
    ``xla_compile``: ``jax.custom_vjp`` or ``tf.custom_gradient``; other backends differentiate
    ``primal`` themselves.

    The engine uses it for one time step, whose hand-written adjoint (``step_adjoint``) is a stencil as
    cheap as the step and keeps one field per step as residual: differentiating the step's ~40 slices
    automatically produced a full-size pad-and-add per slice, ~100x slower and ~5x the memory.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        function = jax.custom_vjp(primal)
        function.defvjp(forward, backward)
        return function
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.custom_gradient
        def function(*args):
            output, residuals = forward(*args)

            def gradient(upstream):
                return list(backward(residuals, upstream))

            return output, gradient

        return function
    return primal


@functools.lru_cache(maxsize=1)
def _register_tensorflow_slice_update_gradient() -> None:
    """Gives TensorFlow's ``XlaDynamicUpdateSlice`` (behind ``keras.ops.slice_update``) a gradient.

    TensorFlow 2.21 registers none, so ``GradientTape`` cannot differentiate ``slice_update``; JAX's
    ``dynamic_update_slice`` is differentiable already. The gradient is the textbook one: the incoming
    gradient with the updated window zeroed for ``inputs``, and that window for ``updates``.
    """
    import tensorflow as tf
    from tensorflow.compiler.tf2xla.python import xla

    def gradient(op, upstream):
        _, updates, start_indices = op.inputs
        return (
            xla.dynamic_update_slice(upstream, tf.zeros_like(updates), start_indices),
            xla.dynamic_slice(upstream, start_indices, tf.shape(updates)),
            None,
        )

    try:
        tf.RegisterGradient("XlaDynamicUpdateSlice")(gradient)
    except KeyError:  # a later TensorFlow (or another library) registered one already
        pass
