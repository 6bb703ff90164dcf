"""One traced call of the propagator: its inputs turned into the arrays the time loop reads
(``Propagation.build``), the loop over pairs of time steps (``run_pairs``) and the forward itself.

The loop's shape, and why (measurements in ``docs/forward_modelling.md``):

* **Two steps per loop iteration** (ping-pong between two state buffers), so both buffers return to their
  own loop-carry slots without copies.
* **Receivers are recorded right after the step that produced the sample.** Recording before the step made
  XLA copy the whole state twice per iteration (the read was unordered with the next in-place write);
  after, every read of a buffer precedes its overwrite in the dataflow.
* **Checkpointed segments** (``backend_glue.checkpointed_segments``): a gradient by the backend's reverse
  mode stores the state at segment starts and recomputes each segment's steps. The adjoint-state path
  (``data_prep.forward.adjoint``) runs the same ``run_pairs`` in its own segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from keras import ops

from data_prep.forward.backend_glue import checkpointed_segments, fixed_trip_loop
from data_prep.forward.config import adjoint_segments, resolved_checkpoint_segments
from data_prep.forward.cpml import cpml_coefficients, layer_profile, pad_edge
from data_prep.forward.layout import NUM_FIELDS, PRESSURE, Discretisation, Grid
from data_prep.forward.time_step import differentiable_step


@dataclass(frozen=True, eq=False)
class Propagation:
    """The traced arrays of one call (``mode`` "forward", "storing" or "backward", see
    ``data_prep.forward.propagator.kernel``) and its static ``grid``.

    ``courant_squared`` ``(batch, 1, padded_depth, padded_x)``: ``(v dt / dx)^2``; ``source_strength``
    ``(batch, shots)``: ``(v dt)^2`` at each shot's source cell; ``cpml``: ``(a_depth, b_depth, da_depth,
    a_x, b_x, da_x, source_cells)`` (``data_prep.forward.time_step``); ``source_time_functions`` ``(steps,
    shots)``, zero-padded past the record to the loop's length; ``receiver_index`` / ``source_index``: flat
    indices of the receivers into the state and of each slab's source cell into one pressure field;
    ``step``: ``time_step.differentiable_step``. The adjoint path runs ``num_segments`` equal segments of
    ``segment_pairs`` pairs of steps, the last one padded past the record (the source is zero there and
    the extra samples are dropped).
    """

    grid: Grid
    velocity: Any
    padded_velocity: Any
    courant_squared: Any
    source_strength: Any
    cpml: tuple
    source_time_functions: Any
    receiver_index: Any
    source_index: Any
    step: Any
    num_samples: int
    num_pairs: int
    num_traces: int
    num_segments: int
    segment_pairs: int
    state_size: int

    @classmethod
    def build(
        cls,
        discretisation: Discretisation,
        mode: str,
        velocity,
        source_time_functions,
        source_depth_one_hot,
        source_x_one_hot,
        source_flat_index,
        receiver_flat_index,
    ) -> Propagation:
        """The call's arrays from the propagator's inputs (``compiled_propagator`` documents them)."""
        halo, width, top = discretisation.halo, discretisation.absorbing_width_cells, discretisation.top
        dt, dx = discretisation.time_step_s, discretisation.grid_spacing_m
        batch, depth_cells, _ = (int(n) for n in velocity.shape)
        num_shots = int(source_depth_one_hot.shape[0])
        padded_depth, padded_x = int(source_depth_one_hot.shape[1]), int(source_x_one_hot.shape[1])
        grid = Grid.build(discretisation, batch, num_shots, depth_cells, padded_depth, padded_x)
        num_steps = int(source_time_functions.shape[0])
        num_samples = num_steps // discretisation.substeps
        bottom, haloed_depth, haloed_x = grid.bottom, grid.haloed_depth, grid.haloed_x

        padded_velocity = pad_edge(velocity, top, bottom, width)
        courant_squared = (padded_velocity * (dt / dx)) ** 2  # (batch, depth, x)
        max_velocity = ops.stop_gradient(ops.max(velocity, axis=(1, 2)))
        depth_coefficients = cpml_coefficients(
            discretisation, layer_profile(padded_depth, top, bottom, width), max_velocity
        )
        x_coefficients = cpml_coefficients(
            discretisation, layer_profile(padded_x, width, width, width), max_velocity
        )

        flat_courant = ops.reshape(courant_squared, (batch, padded_depth * padded_x))
        source_strength = ops.take(flat_courant, source_flat_index, axis=1) * (dx * dx)
        source_cells = source_depth_one_hot[None, :, :, None] * source_x_one_hot[None, :, None, :]
        courant_squared = courant_squared[:, None]  # (batch, 1, depth, x)
        receiver_depth, receiver_x = receiver_flat_index // padded_x, receiver_flat_index % padded_x
        receiver_in_slab = (receiver_depth + halo) * haloed_x + receiver_x + halo
        slab_size = batch * num_shots * haloed_depth * haloed_x
        slab_offsets = np.arange(batch * num_shots, dtype=np.int32)[:, None] * (haloed_depth * haloed_x)
        receiver_index = ops.reshape(PRESSURE * slab_size + slab_offsets + receiver_in_slab[None, :], (-1,))
        source_in_slab = (
            (source_flat_index // padded_x + halo) * haloed_x + source_flat_index % padded_x + halo
        )
        # Each (model, shot) slab's own source cell, as flat indices into one pressure field.
        source_index = ops.reshape(slab_offsets[:, 0] + ops.tile(source_in_slab, (batch,)), (-1,))

        num_pairs = num_samples // 2
        num_segments, segment_pairs = adjoint_segments(discretisation.checkpoint_segments, num_pairs)
        loop_pairs = num_pairs if mode == "forward" else num_segments * segment_pairs
        padded_steps = max(2 * loop_pairs * discretisation.substeps, num_steps)
        source_time_functions = ops.pad(source_time_functions, ((0, padded_steps - num_steps), (0, 0)))
        return cls(
            grid=grid,
            velocity=velocity,
            padded_velocity=padded_velocity,
            courant_squared=courant_squared,
            source_strength=source_strength,
            cpml=(*depth_coefficients, *x_coefficients, source_cells),
            source_time_functions=source_time_functions,
            receiver_index=receiver_index,
            source_index=source_index,
            step=differentiable_step(grid),
            num_samples=num_samples,
            num_pairs=num_pairs,
            num_traces=batch * num_shots * int(receiver_flat_index.shape[0]),
            num_segments=num_segments,
            segment_pairs=segment_pairs,
            state_size=NUM_FIELDS * slab_size,
        )

    @property
    def coefficients(self) -> tuple:
        """The velocity-dependent arrays a step takes: ``(courant_squared, source_strength, *cpml)``."""
        return (self.courant_squared, self.source_strength, *self.cpml)

    def zero_state(self):
        """The state at rest, ``(NUM_FIELDS, batch, shots, haloed_depth, haloed_x)``."""
        grid = self.grid
        return ops.zeros(
            (NUM_FIELDS, grid.batch, grid.num_shots, grid.haloed_depth, grid.haloed_x), "float32"
        )

    def record(self, state):
        """The pressure at every receiver of every (model, shot) slab: ``(traces,)``."""
        return ops.take(ops.reshape(state, (self.state_size,)), self.receiver_index, axis=0)

    def run_pairs(self, first_pair, count: int, buffers, coefficients):
        """``count`` pairs of samples from pair ``first_pair`` on: the two state buffers after them and the
        ``(2 count, traces)`` block of samples ``2 first_pair + 1 ...`` they recorded. ``coefficients`` are
        the velocity-dependent inputs, passed explicitly so that a checkpointed segment's gradient reaches
        them (TensorFlow's recompute_grad ignores closed-over tensors)."""
        substeps, step = self.grid.discretisation.substeps, self.step

        def body(index, carry):
            state, other, block = carry
            for half in range(2):
                sample = 2 * (first_pair + index) + half
                for sub in range(substeps):
                    amplitude = ops.take(self.source_time_functions, sample * substeps + sub, axis=0)
                    other = step(state, other, amplitude, *coefficients)
                    state, other = other, state
                block = ops.slice_update(block, (2 * index + half, 0), self.record(state)[None])
            return state, other, block

        # What a segment starts from (and a checkpoint stores): the state and the previous step's pressure,
        # 6 fields. The other buffer's memory fields are overwritten before being read, or (depth fields
        # between the depth layers) zero in every buffer, so they are rebuilt from the state's.
        state, previous_pressure = buffers
        other = ops.slice_update(state, (PRESSURE, 0, 0, 0, 0), previous_pressure[None])
        block = ops.zeros((2 * count, self.num_traces), "float32")
        state, other, block = fixed_trip_loop(count, body, (state, other, block))
        return (state, other[PRESSURE]), block

    def forward(self):
        """The traces, ``(batch, shots, time, receivers)``.

        Sample 0 is the initial state (zero); sample k is recorded right after the step that produced it.
        Two samples per loop iteration: an even number of leapfrog steps, so the two state buffers come back
        to their own loop-carry slots (no copies). The loop runs in checkpointed segments, so a gradient
        stores the state at segment starts and recomputes each segment's steps.
        """
        state = self.zero_state()
        segments = resolved_checkpoint_segments(self.grid.discretisation.checkpoint_segments, self.num_pairs)
        buffers = (state, state[PRESSURE])
        _, block = checkpointed_segments(
            self.run_pairs, 0, self.num_pairs, segments, buffers, self.coefficients, self.num_traces
        )
        return self.traces_from_block(block)

    def traces_from_block(self, block):
        """``(batch, shots, time, receivers)`` from the ``(samples - 1 or more, traces)`` block of samples
        1, 2, ... (sample 0 is the state at rest)."""
        num_traces, num_samples = int(block.shape[1]), self.num_samples
        traces = ops.concatenate([ops.zeros((1, num_traces), "float32"), block], axis=0)
        traces = ops.reshape(traces[:num_samples], (num_samples, self.grid.batch, self.grid.num_shots, -1))
        return ops.transpose(traces, (1, 2, 0, 3))
