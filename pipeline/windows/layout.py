"""``ModelLayout``: the acquisition window a model was trained on, in metres from its grid's left edge.

Part of ``pipeline.windows``: built from the model's training geometry
(``data_prep.schema.DatasetGeometry``, kept in its bundle); the window every step slides along the line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import UserError
from data_prep.schema import DatasetGeometry


@dataclass(frozen=True)
class ModelLayout:
    """The acquisition window a model was trained on (positions relative to its grid's left edge).

    Attributes:
        source_x_m, source_depth_m: ``(shots,)`` in the model's shot order.
        receiver_x_m, receiver_depth_m: ``(receivers,)`` in the model's receiver order.
        sample_interval_s, num_samples: the model's time axis.
        grid_spacing_m: velocity cell size (metres).
        grid_shape: ``(depth, x)`` cells of one window's velocity model.
    """

    source_x_m: np.ndarray
    source_depth_m: np.ndarray
    receiver_x_m: np.ndarray
    receiver_depth_m: np.ndarray
    sample_interval_s: float
    num_samples: int
    grid_spacing_m: float
    grid_shape: tuple[int, int]

    @classmethod
    def from_geometry(cls, geometry: DatasetGeometry) -> ModelLayout:
        if not (np.isfinite(geometry.grid_spacing_m) and geometry.grid_spacing_m > 0) or 0 in tuple(
            geometry.grid_shape
        ):
            raise UserError(
                "The model's training geometry has no velocity grid (grid spacing "
                f"{geometry.grid_spacing_m}, grid shape {tuple(geometry.grid_shape)}): it cannot place windows "
                "along a line. Use a model trained on a labelled dataset."
            )
        sources = np.asarray(geometry.source_positions_m, dtype=np.float64)
        receivers = np.asarray(geometry.receiver_positions_m, dtype=np.float64)
        return cls(
            source_x_m=sources[:, 1].copy(),
            source_depth_m=sources[:, 0].copy(),
            receiver_x_m=receivers[:, 1].copy(),
            receiver_depth_m=receivers[:, 0].copy(),
            sample_interval_s=float(geometry.sample_interval_s),
            num_samples=int(geometry.num_samples),
            grid_spacing_m=float(geometry.grid_spacing_m),
            grid_shape=(int(geometry.grid_shape[0]), int(geometry.grid_shape[1])),
        )

    @property
    def num_shots(self) -> int:
        return len(self.source_x_m)

    @property
    def num_receivers(self) -> int:
        return len(self.receiver_x_m)

    @property
    def width_cells(self) -> int:
        return self.grid_shape[1]

    @property
    def receiver_spacing_m(self) -> float:
        spacing = np.diff(np.sort(self.receiver_x_m))
        spacing = spacing[spacing > 0]
        return float(spacing.min()) if spacing.size else self.grid_spacing_m


__all__ = [
    "ModelLayout",
]
