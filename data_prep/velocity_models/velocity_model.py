"""``VelocityModel``: one generated model, its velocities and the true geometry it was built from.

Part of ``data_prep.velocity_models``: every generator returns one through ``frozen_model`` (arrays made
read-only); ``data_prep.edges`` and the tests read its interfaces, faults and unit labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_prep.velocity_models.faults import Fault


@dataclass(frozen=True, eq=False)
class VelocityModel:
    """One generated velocity model and the geometry it was built from.

    Arrays are read-only (the dataclass is frozen; copy before modifying).

    Attributes:
        velocity_mps: ``(depth, x)`` float32, P-wave velocity in m/s.
        family: name of the family recipe.
        interfaces: one ``(x,)`` float64 array per layer boundary, shallowest first: the depth (cells,
            fractional) of the boundary in each column, following the module's convention (first cell
            below it = ``ceil(depth)``). NaN where the boundary is absent from the column: cut by salt, or
            pushed below the grid by a fault. Where a fault juxtaposes layers, the boundaries between them
            all lie on the fault line in that column. Empty for ``gradient`` models.
        faults: the faults as drawn, oldest first (empty for unfaulted families). A younger fault displaces
            the traces of older ones; ``fault_traces`` holds where they lie in the final model.
        fault_traces: one ``(points, 2)`` float64 array per fault (same order): ``(depth, x)`` points in
            cells, sampled every 0.25 cell of depth, of the fault line in the final model, inside the grid.
            A trace offset by a younger fault has a gap there.
        labels: ``(depth, x)`` int16 geological unit of each cell: layer ``0 .. num_layers - 1`` from the
            top of the unfaulted stratigraphy, ``num_layers`` for salt, ``num_layers + 1 + i`` for body ``i``.
        layer_velocities_mps: velocity of each layer, m/s, top first (empty for ``gradient``).
        salt_velocity_mps: velocity of the salt body, m/s, or ``None`` when there is none.
        body_velocities_mps: velocity of each closed body (``inclusions``), m/s, oldest first; a body covered
            entirely by a younger one keeps its entry and has no cells.
        unconformity: ``structural``/``prior`` models with an erosional unconformity: its ``(x,)`` depth (cells,
            fractional; the cells ``i >= depth`` of a column belong to the eroded lower sequence), also listed
            among ``interfaces``; ``None`` otherwise.
        num_upper_units: how many of the first unit labels belong to the sequence above the unconformity.
    """

    velocity_mps: np.ndarray
    family: str
    interfaces: tuple[np.ndarray, ...]
    faults: tuple[Fault, ...]
    fault_traces: tuple[np.ndarray, ...]
    labels: np.ndarray
    layer_velocities_mps: tuple[float, ...]
    salt_velocity_mps: float | None = None
    body_velocities_mps: tuple[float, ...] = ()
    unconformity: np.ndarray | None = None
    num_upper_units: int = 0

    @property
    def num_layers(self) -> int:
        """Number of layers of the (unfaulted) stratigraphy, salt excluded; 1 for ``gradient`` models.

        Faults can push the deepest thin layers below the grid in every column (mostly with several
        faults on small grids); those layers still count here, and their interfaces are all NaN.
        """
        return max(1, len(self.layer_velocities_mps))

    @property
    def grid_shape(self) -> tuple[int, int]:
        return tuple(self.velocity_mps.shape)

    @property
    def salt_mask(self) -> np.ndarray:
        """``(depth, x)`` bool, True inside the salt body (all False without salt)."""
        if self.salt_velocity_mps is None:
            return np.zeros(self.grid_shape, dtype=bool)
        return self.labels == len(self.layer_velocities_mps)

    @property
    def body_mask(self) -> np.ndarray:
        """``(depth, x)`` bool, True inside the closed bodies (``inclusions``; salt excluded)."""
        return self.labels > len(self.layer_velocities_mps)

    def fault_mask(self) -> np.ndarray:
        """``(depth, x)`` bool: the cells nearest to the fault traces (``fault_traces`` rasterised)."""
        mask = np.zeros(self.grid_shape, dtype=bool)
        for trace in self.fault_traces:
            rows, columns = np.rint(trace).astype(int).T
            mask[rows, columns] = True
        return mask

    def interface_mask(self, include_fault_planes: bool = False) -> np.ndarray:
        """``(depth, x)`` bool: the cells on true interfaces.

        A cell is on an interface when its geological unit differs from that of the cell above it or of the
        cell to its left. This marks, for every layer boundary, the first cell below it (``ceil(depth)``),
        the salt outline, and fault segments where the fault juxtaposes different layers — exactly the
        cells where ``data_prep.edges.edge_map`` (gradient method) finds a velocity jump larger than its
        threshold, when all contrasts exceed it.

        Args:
            include_fault_planes: also mark every fault trace cell (``fault_mask()``), including where the
                same layer lies on both sides and the fault is invisible in the velocities.
        """
        labels = self.labels
        mask = np.zeros(labels.shape, dtype=bool)
        mask[1:, :] |= labels[1:, :] != labels[:-1, :]
        mask[:, 1:] |= labels[:, 1:] != labels[:, :-1]
        if include_fault_planes:
            mask |= self.fault_mask()
        return mask


def frozen_model(**fields) -> VelocityModel:
    """A ``VelocityModel`` of ``fields`` with contiguous, read-only arrays (interfaces and traces float64)."""
    for key in ("velocity_mps", "labels"):
        fields[key] = np.ascontiguousarray(fields[key])
        fields[key].setflags(write=False)
    interfaces = []
    for interface in fields["interfaces"]:
        interface = np.array(interface, dtype=np.float64)
        interface.setflags(write=False)
        interfaces.append(interface)
    fields["interfaces"] = tuple(interfaces)
    traces = []
    for trace in fields["fault_traces"]:
        trace = np.array(trace, dtype=np.float64).reshape(-1, 2)
        trace.setflags(write=False)
        traces.append(trace)
    fields["fault_traces"] = tuple(traces)
    if fields.get("unconformity") is not None:
        fields["unconformity"] = np.array(fields["unconformity"], dtype=np.float64)
        fields["unconformity"].setflags(write=False)
    return VelocityModel(**fields)


__all__ = ["VelocityModel", "frozen_model"]
