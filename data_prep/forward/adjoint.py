"""The adjoint-state method on the engine's own discretisation: the propagator's hand-written reverse pass
(``EngineConfig(gradient="adjoint")``, the default).

``store_checkpoints`` (mode "storing") runs the forward in ``num_segments`` segments of ``segment_pairs``
pairs of steps and keeps each segment's starting wavefields (the state's 5 fields and the previous
pressure). ``backpropagate`` (mode "backward") walks the segments from the last to the first: it recomputes
a segment from its checkpoint keeping each step's stretched Laplacian, then runs the transposed steps
(``TransposedStep``, ``time_step.step_adjoint`` rearranged for speed) backwards through it, injecting the
traces' cotangent (the adjoint source, i.e. the residuals) at the receivers after every recorded step, and
sums the zero-lag products of the adjoint wavefield with the forward Laplacian (and with the source at the
source cells): the gradient with respect to ``(v dt / dx)^2``, then by the chain rule (edge padding folded
back) with respect to velocity. Cost: the forward, one recomputation and the adjoint propagation; no trace of
the backend's reverse mode (whose loop bookkeeping cost ~12 forwards here). Exact: it is the transpose of
the discrete forward, to float32 round-off.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from data_prep.forward.backend_glue import fixed_trip_loop
from data_prep.forward.cpml import pad_edge_adjoint
from data_prep.forward.layout import (
    CHI_DEPTH,
    CHI_X,
    NUM_FIELDS,
    PRESSURE,
    ZETA_DEPTH,
    ZETA_X,
    Grid,
)
from data_prep.forward.propagation import Propagation
from data_prep.forward.time_step import step_forward


class TransposedStep:
    """The adjoint path's transposed step, ``step_adjoint`` rearranged for speed: the coefficients haloed
    once per call, every term on the haloed grid (shifts with zero fill instead of a pad per stencil tap),
    the target's cotangent (``-P``, pressure only) carried to the next transposed step instead of a
    five-field array, and the source's cotangent gathered at the source cells.

    Calling it, ``(cotangent, previous_pressure, laplacian, amplitude) -> (cotangent of the step's input
    state, its pressure part P (the next step's ``previous_pressure``), the contribution to the cotangent of
    (v dt / dx)^2 (batch, 1, depth, x), and to the source strength (batch, shots))``; ``cotangent`` is that
    of the step's output plus, in its pressure, ``-P`` of the step after it (``previous_pressure``).
    """

    def __init__(self, grid: Grid, courant_squared, cpml, source_index):
        self.grid, self.source_index = grid, source_index
        halo, batch = grid.discretisation.halo, grid.batch
        a_depth, b_depth, da_depth, a_x, b_x, da_x, _ = cpml
        self.haloed_courant = ops.pad(courant_squared, ((0, 0), (0, 0), (halo, halo), (halo, halo)))
        self.axes = []
        for axis, coefficients, mask, zeta_field, chi_field in (
            (0, (a_depth, b_depth, da_depth), grid.depth_mask * grid.interior, ZETA_DEPTH, CHI_DEPTH),
            (1, (a_x, b_x, da_x), grid.x_mask * grid.interior, ZETA_X, CHI_X),
        ):
            shape = (batch, 1, -1, 1) if axis == 0 else (batch, 1, 1, -1)
            a, b, da = (ops.reshape(ops.pad(c, ((0, 0), (halo, halo))), shape) for c in coefficients)
            self.axes.append((axis, a, b, da, mask, zeta_field, chi_field))

    def shifts(self, array, axis):
        """``shifted(k)``: ``array`` at index + k along the axis (2 or 3 of the array), zero outside."""
        halo = self.grid.discretisation.halo
        widths = [(0, 0)] * 4
        widths[2 + axis] = (halo, halo)
        padded = ops.pad(array, widths)
        length = int(array.shape[2 + axis])

        def shifted(k):
            if axis == 0:
                return padded[:, :, halo + k : halo + k + length, :]
            return padded[:, :, :, halo + k : halo + k + length]

        return shifted

    def __call__(self, cotangent, previous_pressure, laplacian, amplitude):
        grid = self.grid
        second, first, halo = grid.discretisation.second, grid.discretisation.first, grid.discretisation.halo
        pressure = cotangent[PRESSURE]
        if grid.discretisation.free_surface:
            image = pressure[:, :, :halo, :]
            folded = pressure[:, :, halo : 2 * halo, :] - ops.flip(image, axis=2)
            pressure = ops.slice_update(pressure, (0, 0, halo, 0), folded)
        pressure = pressure * grid.interior
        weighted = self.haloed_courant * pressure
        new_pressure = 2.0 * pressure - previous_pressure
        outputs = {}
        for axis, a, b, da, mask, zeta_field, chi_field in self.axes:
            chi = cotangent[chi_field]
            zeta_total = mask * (cotangent[zeta_field] + weighted)
            stretched_total = weighted + a * zeta_total
            second_weight = (1.0 + a) * stretched_total
            first_weight = mask * (da * stretched_total + b * a * chi)
            memory_weight = mask * stretched_total
            second_shift = self.shifts(second_weight, axis)
            first_shift = self.shifts(first_weight, axis)
            memory_shift = self.shifts(memory_weight, axis)
            new_pressure = new_pressure + second[0] * second_weight
            new_chi = mask * b * chi
            for k in range(1, halo + 1):
                new_pressure = (
                    new_pressure
                    + second[k] * (second_shift(k) + second_shift(-k))
                    - first[k - 1] * (first_shift(k) - first_shift(-k))
                )
                new_chi = new_chi - first[k - 1] * (memory_shift(k) - memory_shift(-k))
            outputs[chi_field] = new_chi
            outputs[zeta_field] = mask * b * zeta_total
        outputs[PRESSURE] = new_pressure
        new_cotangent = ops.stack([outputs[index] for index in range(NUM_FIELDS)], axis=0)
        inner = pressure[:, :, halo : halo + grid.padded_depth, halo : halo + grid.padded_x]
        courant_part = ops.sum(inner * laplacian, axis=1, keepdims=True)
        at_sources = ops.reshape(
            ops.take(ops.reshape(pressure, (-1,)), self.source_index, axis=0), (grid.batch, grid.num_shots)
        )
        return new_cotangent, pressure, courant_part, at_sources * amplitude[None, :]


def run_keeping(propagation: Propagation, first_pair, state, other, keep_traces: bool):
    """``segment_pairs`` pairs from ``first_pair`` on, keeping every step's stretched Laplacian (and, with
    ``keep_traces``, the recorded block): ``(laplacians, block or None)``."""
    grid, substeps = propagation.grid, propagation.grid.discretisation.substeps
    courant_squared, source_strength, cpml = (
        propagation.courant_squared,
        propagation.source_strength,
        propagation.cpml,
    )
    rows = 2 * propagation.segment_pairs

    def body(index, carry):
        state, other, laplacians, block = carry
        for half in range(2):
            sample = 2 * (first_pair + index) + half
            for sub in range(substeps):
                amplitude = ops.take(propagation.source_time_functions, sample * substeps + sub, axis=0)
                other, laplacian = step_forward(
                    grid, state, other, amplitude, courant_squared, source_strength, cpml, True
                )
                position = (2 * index + half) * substeps + sub
                laplacians = ops.slice_update(laplacians, (position, 0, 0, 0, 0), laplacian[None])
                state, other = other, state
            if keep_traces:
                block = ops.slice_update(block, (2 * index + half, 0), propagation.record(state)[None])
        return state, other, laplacians, block

    field_shape = (grid.batch, grid.num_shots, grid.padded_depth, grid.padded_x)
    laplacians = ops.zeros((rows * substeps, *field_shape), "float32")
    block = ops.zeros((rows if keep_traces else 1, propagation.num_traces), "float32")
    _, _, laplacians, block = fixed_trip_loop(
        propagation.segment_pairs, body, (state, other, laplacians, block)
    )
    return laplacians, (block if keep_traces else None)


def store_checkpoints(propagation: Propagation):
    """Mode "storing": ``(traces, checkpoints)``, the checkpoints ``(segments, NUM_FIELDS + 1, batch, shots,
    haloed_depth, haloed_x)`` (each segment's starting state and previous pressure) or, with one segment,
    every step's stretched Laplacian (the forward keeps them, the reverse pass recomputes nothing)."""
    state = propagation.zero_state()
    num_segments, segment_pairs = propagation.num_segments, propagation.segment_pairs
    rows = 2 * segment_pairs
    if num_segments == 1:
        laplacians, block = run_keeping(propagation, 0, state, state, True)
        return propagation.traces_from_block(block), laplacians

    def store(index, carry):
        state, previous, checkpoints, block = carry
        checkpoint = ops.concatenate([state, previous[None]], axis=0)[None]
        checkpoints = ops.slice_update(checkpoints, (index, 0, 0, 0, 0, 0), checkpoint)
        (state, previous), segment_block = propagation.run_pairs(
            index * segment_pairs, segment_pairs, (state, previous), propagation.coefficients
        )
        block = ops.slice_update(block, (index * rows, 0), segment_block)
        return state, previous, checkpoints, block

    checkpoints = ops.zeros((num_segments, NUM_FIELDS + 1, *state.shape[1:]), "float32")
    block = ops.zeros((num_segments * rows, propagation.num_traces), "float32")
    _, _, checkpoints, block = fixed_trip_loop(
        num_segments, store, (state, state[PRESSURE], checkpoints, block)
    )
    return propagation.traces_from_block(block), checkpoints


def backpropagate(propagation: Propagation, upstream, checkpoints):
    """Mode "backward": the velocity's cotangent ``(batch, depth, x)`` for the traces' cotangent
    ``upstream`` ``(batch, shots, time, receivers)``, ``checkpoints`` from ``store_checkpoints``."""
    grid, discretisation = propagation.grid, propagation.grid.discretisation
    substeps, num_samples, num_traces = (
        discretisation.substeps,
        propagation.num_samples,
        propagation.num_traces,
    )
    num_segments, segment_pairs = propagation.num_segments, propagation.segment_pairs
    state = propagation.zero_state()
    rows = 2 * segment_pairs
    # The traces' cotangent as the block's rows: row r is sample r + 1; rows past the record are zero.
    adjoint_sources = ops.reshape(ops.transpose(upstream, (2, 0, 1, 3)), (num_samples, num_traces))[1:]
    adjoint_sources = ops.pad(adjoint_sources, ((0, num_segments * rows - (num_samples - 1)), (0, 0)))
    state_size = int(np.prod(state.shape))

    def recompute(first_pair, checkpoint):
        """The segment's forward again from its checkpoint, keeping every step's stretched Laplacian."""
        state = checkpoint[:NUM_FIELDS]
        other = ops.slice_update(state, (PRESSURE, 0, 0, 0, 0), checkpoint[NUM_FIELDS][None])
        return run_keeping(propagation, first_pair, state, other, False)[0]

    def inject(cotangent, values):
        """Adds the cotangent of ``record`` (a gather of the pressure at the receivers)."""
        flat = ops.reshape(cotangent, (state_size,))
        flat = flat + ops.scatter(propagation.receiver_index[:, None], values, (state_size,))
        return ops.reshape(flat, cotangent.shape)

    def reverse(first_pair, laplacians, carry):
        """The segment's transposed steps, last to first."""

        def body(count, carry):
            state_cotangent, previous_pressure, courant_cotangent, strength_cotangent = carry
            index = segment_pairs - 1 - count
            for half in (1, 0):
                sample = 2 * (first_pair + index) + half
                state_cotangent = inject(state_cotangent, ops.take(adjoint_sources, sample, axis=0))
                for sub in reversed(range(substeps)):
                    amplitude = ops.take(propagation.source_time_functions, sample * substeps + sub, axis=0)
                    laplacian = ops.take(laplacians, (2 * index + half) * substeps + sub, axis=0)
                    state_cotangent, previous_pressure, courant_part, strength_part = transposed_step(
                        state_cotangent, previous_pressure, laplacian, amplitude
                    )
                    courant_cotangent = courant_cotangent + courant_part
                    strength_cotangent = strength_cotangent + strength_part
            return state_cotangent, previous_pressure, courant_cotangent, strength_cotangent

        return fixed_trip_loop(segment_pairs, body, carry)

    def segment(count, carry):
        index = num_segments - 1 - count
        laplacians = recompute(index * segment_pairs, ops.take(checkpoints, index, axis=0))
        return reverse(index * segment_pairs, laplacians, carry)

    transposed_step = TransposedStep(
        grid, propagation.courant_squared, propagation.cpml, propagation.source_index
    )
    carry = (
        ops.zeros_like(state),
        ops.zeros_like(state[PRESSURE]),
        ops.zeros((grid.batch, 1, grid.padded_depth, grid.padded_x), "float32"),
        ops.zeros((grid.batch, grid.num_shots), "float32"),
    )
    if num_segments == 1:  # `checkpoints` holds every step's Laplacian
        _, _, courant_cotangent, strength_cotangent = reverse(0, checkpoints, carry)
    else:
        _, _, courant_cotangent, strength_cotangent = fixed_trip_loop(num_segments, segment, carry)
    return velocity_cotangent(propagation, courant_cotangent, strength_cotangent)


def velocity_cotangent(propagation: Propagation, courant_cotangent, strength_cotangent):
    """The velocity's cotangent ``(batch, depth, x)`` from those of ``(v dt / dx)^2`` ``(batch, 1,
    padded_depth, padded_x)`` and of the source strength ``(batch, shots)``, ``(v dt / dx)^2 dx^2`` at each
    shot's source cell: the chain rule, the absorbing layer's cells folded back onto the model's edges."""
    discretisation = propagation.grid.discretisation
    dt, dx = discretisation.time_step_s, discretisation.grid_spacing_m
    source_cells = propagation.cpml[-1]  # (1, shots, depth, x)
    courant_cotangent = courant_cotangent[:, 0] + (dx * dx) * ops.sum(
        strength_cotangent[:, :, None, None] * source_cells, axis=1
    )
    padded_cotangent = courant_cotangent * 2.0 * propagation.padded_velocity * (dt / dx) ** 2
    return pad_edge_adjoint(
        padded_cotangent, discretisation.top, propagation.grid.bottom, discretisation.absorbing_width_cells
    )
