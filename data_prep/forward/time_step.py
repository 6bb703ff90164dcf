"""One leapfrog time step of the whole batch (``step_forward``), its transpose (``step_adjoint``) and the two
joined into a step with a hand-written gradient (``differentiable_step``), the unit the time loops repeat.

Why the step is written the way it is (measurements in ``docs/forward_modelling.md``):

* **One fused kernel per row region, each doing only the work its cells need.** The whole state, pressure
  and the four CPML memory variables, is one array ``(5, batch, shots, depth, x)`` with a zero halo of
  ``spatial_order / 2`` cells. The rows are cut into regions (``data_prep.forward.layout.Grid``): the depth
  layers (reaching ``halo`` rows into the model) run both axes' CPML terms, the rows between them only the
  x axis's (the depth memory variables stay zero there). Each region's update is one elementwise
  expression written with one ``slice_update`` (dynamic-update-slice) of a contiguous block of fields into
  the other state buffer, which XLA compiles to one vectorised loop nest writing in place: 3 kernels per
  step (2 with a free surface). A whole-grid CPML kernel spent ~4x the bare stencil's time per cell on the
  60 % of cells where the memory terms are zero.
* **Every expression reads only the current state**, so writing the new state into the other buffer in
  place is legal: the CPML is the single-pass form Deepwave uses (the derivative of the memory variable at
  step n is expanded with the product rule into terms of step n-1), and ``p[n-1]`` is read from the target
  buffer at the very cell being written.
* **A hand-written adjoint per step**: differentiating the step's ~40 slices automatically produced a
  full-size pad-and-add per slice, ~100x slower and ~5x the memory (``backend_glue.with_custom_gradient``).

``cpml`` below is always ``(a_depth, b_depth, da_depth, a_x, b_x, da_x, source_cells)``: the CPML
coefficients ``(batch, padded_depth)`` and ``(batch, padded_x)`` (``data_prep.forward.cpml``) and the
sources' one-hot cells ``(1, shots, padded_depth, padded_x)``.
"""

from __future__ import annotations

from keras import ops

from data_prep.forward.backend_glue import with_custom_gradient
from data_prep.forward.layout import (
    CHI_DEPTH,
    CHI_X,
    PRESSURE,
    ZETA_DEPTH,
    ZETA_X,
    Grid,
)


def axis_terms(grid: Grid, state, rows, columns, axis):
    """Second and first derivative of p, and first derivative of the axis's memory variable chi."""
    second, first, halo, field = (
        grid.discretisation.second,
        grid.discretisation.first,
        grid.discretisation.halo,
        grid.field,
    )
    memory_field = CHI_DEPTH if axis == 0 else CHI_X
    second_axis, first_axis, memory = second[0] * field(state, PRESSURE, rows, columns), 0.0, 0.0
    for k in range(1, halo + 1):
        offset_plus, offset_minus = ((k, 0), (-k, 0)) if axis == 0 else ((0, k), (0, -k))
        plus = field(state, PRESSURE, rows, columns, *offset_plus)
        minus = field(state, PRESSURE, rows, columns, *offset_minus)
        second_axis = second_axis + second[k] * (plus + minus)
        first_axis = first_axis + first[k - 1] * (plus - minus)
        memory = memory + first[k - 1] * (
            field(state, memory_field, rows, columns, *offset_plus)
            - field(state, memory_field, rows, columns, *offset_minus)
        )
    return second_axis, first_axis, memory


def step_forward(
    grid: Grid, state, target, amplitude, courant_squared, source_strength, cpml, keep_laplacian
):
    """One leapfrog step, region by region, written into ``target`` (which holds ``p[n-1]``); with
    ``keep_laplacian`` also the stretched Laplacian ``(batch, shots, depth, x)`` (the adjoint step's
    residual).

    ``amplitude`` ``(shots,)``: the source time functions at this step; ``courant_squared`` ``(batch, 1,
    padded_depth, padded_x)``: ``(v dt / dx)^2``; ``source_strength`` ``(batch, shots)``: ``(v dt)^2`` at
    each shot's source cell.
    """
    second, halo, field, batch = grid.discretisation.second, grid.discretisation.halo, grid.field, grid.batch
    a_depth, b_depth, da_depth, a_x, b_x, da_x, source_cells = cpml
    injection = (source_strength * amplitude[None, :])[:, :, None, None] * source_cells
    laplacians = []
    for (row_low, row_high, depth_layer), (column_low, column_high, x_layer) in grid.regions:
        rows, columns = (row_low, row_high), (column_low, column_high)
        centre = field(state, PRESSURE, rows, columns)
        laplacian = 0.0
        depth_fields, x_fields = [], []
        for axis, active in ((0, depth_layer), (1, x_layer)):
            if not active:
                for k in range(1, halo + 1):
                    offset_plus, offset_minus = ((k, 0), (-k, 0)) if axis == 0 else ((0, k), (0, -k))
                    laplacian = laplacian + second[k] * (
                        field(state, PRESSURE, rows, columns, *offset_plus)
                        + field(state, PRESSURE, rows, columns, *offset_minus)
                    )
                laplacian = laplacian + second[0] * centre
                continue
            if axis == 0:
                a, b, da = (
                    ops.reshape(c[:, row_low:row_high], (batch, 1, -1, 1))
                    for c in (a_depth, b_depth, da_depth)
                )
                zeta, chi = field(state, ZETA_DEPTH, rows, columns), field(state, CHI_DEPTH, rows, columns)
            else:
                a, b, da = (
                    ops.reshape(c[:, column_low:column_high], (batch, 1, 1, -1)) for c in (a_x, b_x, da_x)
                )
                zeta, chi = field(state, ZETA_X, rows, columns), field(state, CHI_X, rows, columns)
            second_axis, first_axis, memory = axis_terms(grid, state, rows, columns, axis)
            # D2 p + D psi[n] along the axis, then zeta[n] = b zeta[n-1] + a (that).
            stretched = (1.0 + a) * second_axis + da * first_axis + memory
            new_zeta = b * zeta + a * stretched
            laplacian = laplacian + stretched + new_zeta
            new_chi = b * (chi + a * first_axis)
            (depth_fields if axis == 0 else x_fields).extend([new_chi, new_zeta])
        region_courant = courant_squared[:, :, row_low:row_high, column_low:column_high]
        region_injection = injection[:, :, row_low:row_high, column_low:column_high]
        pressure = (
            2.0 * centre
            - field(target, PRESSURE, rows, columns)
            + region_courant * laplacian
            + region_injection
        )
        # Fields are ordered CHI_X, ZETA_X, PRESSURE, CHI_DEPTH, ZETA_DEPTH, so the region's outputs are one
        # contiguous block.
        update = ops.stack([*x_fields, pressure, *depth_fields], axis=0)
        first_field = CHI_X if x_fields else PRESSURE
        target = ops.slice_update(target, (first_field, 0, 0, halo + row_low, halo + column_low), update)
        if keep_laplacian:
            laplacians.append(laplacian)
    if grid.discretisation.free_surface:
        # Pressure-release surface half a cell above row 0: the halo holds the odd image -p.
        image = -ops.flip(target[PRESSURE : PRESSURE + 1, :, :, halo : 2 * halo, :], axis=3)
        target = ops.slice_update(target, (PRESSURE, 0, 0, 0, 0), image)
    if keep_laplacian:
        return target, ops.concatenate(laplacians, axis=2)
    return target


def step_adjoint(grid: Grid, new_cotangent, laplacian, amplitude, courant_squared, source_strength, cpml):
    """Cotangents of ``step_forward``'s inputs (state, target, amplitude, courant_squared, source_strength)
    from the cotangent of its output: the transposed (adjoint) step.

    Per axis, with P, Z, C the cotangents of the new pressure, zeta and chi, c2 = (v dt/dx)^2 and a, b, da
    the CPML coefficients (mask = 1 where the axis runs its CPML terms): ``Zt = mask (Z + c2 P)``,
    ``St = c2 P + a Zt``; the state's pressure receives ``2 P + D2(g2) - D1(g1)`` with ``g2 = (1 + a) St``,
    ``g1 = mask (da St + b a C)`` (the centred second-derivative stencil is symmetric, the first-derivative
    one antisymmetric), its chi ``mask b C - D1(mask St)``, its zeta ``mask b Zt``; the target's pressure
    ``-P``; c2 receives ``sum over shots of P x laplacian``. Cotangents of halo cells (constant zeros) and
    of the memory fields a region leaves untouched (always zero) are dropped.
    """
    second, first, halo = grid.discretisation.second, grid.discretisation.first, grid.discretisation.halo
    window, deep_window, batch, interior = grid.window, grid.deep_window, grid.batch, grid.interior
    a_depth, b_depth, da_depth, a_x, b_x, da_x, source_cells = cpml

    def haloed(array):  # (batch, n) -> zero-padded by the halo
        return ops.pad(array, ((0, 0), (halo, halo)))

    pressure_cotangent = new_cotangent[PRESSURE]
    if grid.discretisation.free_surface:
        image = pressure_cotangent[:, :, :halo, :]
        folded = pressure_cotangent[:, :, halo : 2 * halo, :] - ops.flip(image, axis=2)
        pressure_cotangent = ops.slice_update(pressure_cotangent, (0, 0, halo, 0), folded)
    pressure_cotangent = pressure_cotangent * interior
    weighted = ops.pad(courant_squared, ((0, 0), (0, 0), (halo, halo), (halo, halo))) * pressure_cotangent

    state_pressure = 2.0 * deep_window(pressure_cotangent)
    memory_cotangents = {}
    for axis in (0, 1):
        if axis == 0:
            a, b, da = (ops.reshape(haloed(c), (batch, 1, -1, 1)) for c in (a_depth, b_depth, da_depth))
            mask, zeta_field, chi_field = grid.depth_mask, ZETA_DEPTH, CHI_DEPTH
        else:
            a, b, da = (ops.reshape(haloed(c), (batch, 1, 1, -1)) for c in (a_x, b_x, da_x))
            mask, zeta_field, chi_field = grid.x_mask, ZETA_X, CHI_X
        zeta_cotangent = new_cotangent[zeta_field] * interior
        chi_cotangent = new_cotangent[chi_field] * interior
        zeta_total = mask * (zeta_cotangent + weighted)
        stretched_total = weighted + a * zeta_total
        second_weight = (1.0 + a) * stretched_total
        first_weight = mask * (da * stretched_total + b * a * chi_cotangent)
        memory_weight = mask * stretched_total
        chi_state = window(mask * b * chi_cotangent)
        state_pressure = state_pressure + second[0] * deep_window(second_weight)
        for k in range(1, halo + 1):
            plus, minus = ((k, 0), (-k, 0)) if axis == 0 else ((0, k), (0, -k))
            state_pressure = (
                state_pressure
                + second[k] * (deep_window(second_weight, *plus) + deep_window(second_weight, *minus))
                - first[k - 1] * (deep_window(first_weight, *plus) - deep_window(first_weight, *minus))
            )
            chi_state = chi_state - first[k - 1] * (
                window(memory_weight, *plus) - window(memory_weight, *minus)
            )
        memory_cotangents[chi_field] = chi_state
        memory_cotangents[zeta_field] = window(mask * b * zeta_total)

    def padded(array):
        return ops.pad(array, ((0, 0), (0, 0), (halo, halo), (halo, halo)))

    source_pressure = window(pressure_cotangent)
    zeros = ops.zeros_like(source_pressure)
    state_cotangent = ops.stack(
        [
            padded(memory_cotangents[CHI_X]),
            padded(memory_cotangents[ZETA_X]),
            ops.pad(state_pressure, ((0, 0), (0, 0), (0, 0), (halo, halo))),
            padded(memory_cotangents[CHI_DEPTH]),
            padded(memory_cotangents[ZETA_DEPTH]),
        ],
        axis=0,
    )
    target_cotangent = ops.stack([padded(f) for f in (zeros, zeros, -source_pressure, zeros, zeros)], axis=0)
    courant_cotangent = ops.sum(source_pressure * laplacian, axis=1, keepdims=True)
    at_sources = ops.sum(source_pressure * source_cells, axis=(2, 3))  # (batch, shots)
    strength_cotangent = at_sources * amplitude[None, :]
    amplitude_cotangent = ops.sum(at_sources * source_strength, axis=0)
    return state_cotangent, target_cotangent, amplitude_cotangent, courant_cotangent, strength_cotangent


def differentiable_step(grid: Grid):
    """``step(state, target, amplitude, courant_squared, source_strength, *cpml) -> new target``, whose
    reverse-mode derivative is ``step_adjoint`` (the stretched Laplacian kept as residual). ``cpml`` carries
    the source cells too: JAX's ``custom_vjp`` functions may not close over traced values, so every array
    the step uses is an argument."""

    def primal(state, target, amplitude, courant_squared, source_strength, *cpml):
        return step_forward(grid, state, target, amplitude, courant_squared, source_strength, cpml, False)

    def forward_with_residuals(state, target, amplitude, courant_squared, source_strength, *cpml):
        new, laplacian = step_forward(
            grid, state, target, amplitude, courant_squared, source_strength, cpml, True
        )
        return new, (laplacian, amplitude, courant_squared, source_strength, *cpml)

    def backward(residuals, new_cotangent):
        laplacian, amplitude, courant_squared, source_strength, *cpml = residuals
        cotangents = step_adjoint(
            grid, new_cotangent, laplacian, amplitude, courant_squared, source_strength, cpml
        )
        return (*cotangents, *(ops.zeros_like(c) for c in cpml))

    return with_custom_gradient(primal, forward_with_residuals, backward)
