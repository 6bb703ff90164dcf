"""``DatasetGeometry``: the acquisition geometry stored with a dataset, and where positions leave its grid.

Part of ``data_prep.schema``: the nominal geometry a model trained on the dataset expects (``/geometry``,
written by ``write_geometry``, read by ``read_geometry``), compared with other geometries
(``DatasetGeometry.differences``) and with each sample's own positions (``outside_grid``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from data_prep.schema.layout import POSITION_TOLERANCE_M


@dataclass(frozen=True)
class DatasetGeometry:
    """Acquisition geometry stored with a dataset (positions in metres, not grid cells).

    Attributes:
        source_positions_m: ``(shots, 2)`` ``(depth_m, x_m)``, depth positive down from the datum.
        receiver_positions_m: ``(receivers, 2)`` ``(depth_m, x_m)``; the same for every shot.
        sample_interval_s: time sample interval, seconds.
        num_samples: time samples per trace.
        grid_spacing_m: velocity-model cell size in metres (NaN when the dataset has no velocity models).
        grid_shape: velocity-model ``(depth, x)`` cells (``(0, 0)`` without velocity models).
        start_time_s: time after the shot of each trace's first sample, seconds (the recording delay; 0 for
            synthetic data, whose sample 0 is the state at rest when the source starts).
    """

    source_positions_m: np.ndarray
    receiver_positions_m: np.ndarray
    sample_interval_s: float
    num_samples: int
    grid_spacing_m: float = float("nan")
    grid_shape: tuple[int, int] = (0, 0)
    start_time_s: float = 0.0

    @property
    def num_shots(self) -> int:
        return len(self.source_positions_m)

    @property
    def num_receivers(self) -> int:
        return len(self.receiver_positions_m)

    @classmethod
    def from_acquisition(cls, geometry) -> DatasetGeometry:
        """From a ``data_prep.geometry.AcquisitionGeometry`` (grid cells -> metres)."""
        return cls(
            source_positions_m=geometry.source_positions_m(),
            receiver_positions_m=geometry.receiver_positions_m(),
            sample_interval_s=float(geometry.sample_interval_s),
            num_samples=int(geometry.num_samples),
            grid_spacing_m=float(geometry.grid_spacing_m),
            grid_shape=tuple(int(n) for n in geometry.grid_shape),
        )

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> DatasetGeometry:
        """Inverse of ``to_json`` (keys it does not know are ignored; missing ones take their defaults)."""
        names = {field.name for field in dataclasses.fields(cls)}
        arguments: dict[str, Any] = {}
        for key, value in values.items():
            if key not in names:
                continue
            if key.endswith("_positions_m"):
                value = np.asarray(value, dtype=np.float64).reshape(-1, 2)
            elif key == "grid_shape":
                value = tuple(int(n) for n in value)
            elif key == "grid_spacing_m" and value is None:
                value = float("nan")
            arguments[key] = value
        return cls(**arguments)

    def differences(
        self, other: DatasetGeometry, tolerance_m: float = POSITION_TOLERANCE_M, positions: bool = True
    ) -> list[str]:
        """Every difference between two geometries, described for an error message (empty if equal).

        Positions are compared to ``tolerance_m`` (half a centimetre: SEG-Y coordinates are centimetres);
        the sample interval and start time to 1 ns. ``positions=False`` compares the shot and receiver
        counts but not where they are (samples of a dataset may have their own positions).
        """
        found = []
        if self.num_samples != other.num_samples:
            found.append(f"time samples {other.num_samples} instead of {self.num_samples}")
        if abs(self.sample_interval_s - other.sample_interval_s) > 1e-9:
            found.append(
                f"sample interval {other.sample_interval_s * 1e3:g} ms instead of {self.sample_interval_s * 1e3:g} ms"
            )
        if abs(self.start_time_s - other.start_time_s) > 1e-9:
            found.append(
                f"start time (recording delay) {other.start_time_s * 1e3:g} ms instead of "
                f"{self.start_time_s * 1e3:g} ms"
            )
        for label, mine, theirs in (
            ("shots", self.source_positions_m, other.source_positions_m),
            ("receivers", self.receiver_positions_m, other.receiver_positions_m),
        ):
            if len(mine) != len(theirs):
                found.append(f"{len(theirs)} {label} instead of {len(mine)}")
            elif (
                positions
                and len(mine)
                and np.max(np.abs(np.asarray(mine) - np.asarray(theirs))) > tolerance_m
            ):
                index = int(np.argmax(np.max(np.abs(np.asarray(mine) - np.asarray(theirs)), axis=1)))
                found.append(
                    f"{label[:-1]} {index + 1} at (depth, x) = {_metres(theirs[index])} m instead of "
                    f"{_metres(mine[index])} m"
                )
        if (
            tuple(self.grid_shape) != tuple(other.grid_shape)
            and other.grid_shape != (0, 0)
            and self.grid_shape != (0, 0)
        ):
            found.append(f"velocity grid {tuple(other.grid_shape)} instead of {tuple(self.grid_shape)} cells")
        if (
            np.isfinite(self.grid_spacing_m)
            and np.isfinite(other.grid_spacing_m)
            and abs(self.grid_spacing_m - other.grid_spacing_m) > 1e-6
        ):
            found.append(f"grid spacing {other.grid_spacing_m:g} m instead of {self.grid_spacing_m:g} m")
        return found

    def grid_extent_m(self) -> tuple[float, float] | None:
        """``(max depth, max x)`` in metres of the velocity grid's nodes, or None without a grid."""
        if not np.isfinite(self.grid_spacing_m) or min(self.grid_shape) < 1:
            return None
        return (
            (self.grid_shape[0] - 1) * float(self.grid_spacing_m),
            (self.grid_shape[1] - 1) * float(self.grid_spacing_m),
        )

    def to_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["source_positions_m"] = np.asarray(self.source_positions_m).tolist()
        values["receiver_positions_m"] = np.asarray(self.receiver_positions_m).tolist()
        values["grid_shape"] = list(self.grid_shape)
        return values


def _metres(position: np.ndarray) -> str:
    """``(depth, x)`` in metres for messages, to the millimetre: ``(10, 40.5)``."""
    return "(" + ", ".join(f"{round(float(value), 3):g}" for value in position) + ")"


def outside_grid(
    positions_m: np.ndarray, geometry: DatasetGeometry, tolerance_m: float = POSITION_TOLERANCE_M
) -> np.ndarray:
    """Which ``(..., 2)`` ``(depth_m, x_m)`` positions lie outside the velocity grid (all False without a grid).

    The grid spans depth ``[0, (depth cells - 1) * spacing]`` and x ``[0, (x cells - 1) * spacing]`` (its
    nodes, where the engine places sources and receivers), widened by ``tolerance_m``.
    """
    positions_m = np.asarray(positions_m, dtype=np.float64)
    extent = geometry.grid_extent_m()
    if extent is None:
        return np.zeros(positions_m.shape[:-1], dtype=bool)
    depth, x = positions_m[..., 0], positions_m[..., 1]
    return (
        (depth < -tolerance_m)
        | (depth > extent[0] + tolerance_m)
        | (x < -tolerance_m)
        | (x > extent[1] + tolerance_m)
        | ~np.isfinite(depth)
        | ~np.isfinite(x)
    )


def describe_outside_grid(
    sources_m: np.ndarray, receivers_m: np.ndarray, geometry: DatasetGeometry
) -> str | None:
    """A message naming the first shot or receiver outside the velocity grid (None when all are inside).

    ``sources_m`` / ``receivers_m``: ``(shots, 2)`` / ``(receivers, 2)`` ``(depth_m, x_m)`` of one sample.
    """
    extent = geometry.grid_extent_m()
    if extent is None:
        return None
    for label, positions in (("shot", sources_m), ("receiver", receivers_m)):
        outside = np.flatnonzero(outside_grid(positions, geometry))
        if outside.size:
            worst = np.asarray(positions)[outside]
            index = int(outside[0])
            depth, x = (float(v) for v in np.asarray(positions)[index])
            return (
                f"{label} {index + 1} at (depth, x) = ({depth:g}, {x:g}) m lies outside the velocity grid "
                f"(depth 0-{extent[0]:g} m, x 0-{extent[1]:g} m: {geometry.grid_shape[0]} x "
                f"{geometry.grid_shape[1]} cells of {geometry.grid_spacing_m:g} m); {outside.size} {label}(s) "
                f"outside, up to x = {worst[:, 1].max():g} m"
            )
    return None


__all__ = [
    "DatasetGeometry",
    "describe_outside_grid",
    "outside_grid",
]
