"""What inference may change and how it reads the line: ``LineConfig``, ``RegridConfig``, ``WindowConfig``.

Part of ``pipeline.windows``; the three sections ``line``, ``regrid`` and ``windows`` of
``pipeline.infer``'s configuration (``configs/infer/``, ``--set regrid.enabled=true``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class RegridConfig:
    """What may be changed to bring a survey onto the model's geometry (all off unless ``enabled``).

    Attributes:
        enabled: allow regridding (``--regrid``); without it every mismatch is refused with its fix listed.
        receivers: ``"linear"`` interpolation between the two recorded receivers around a model receiver,
            or ``"nearest"`` recorded receiver (within ``receiver_tolerance_m``).
        shot_tolerance_m: a model shot may use the nearest survey shot this far away (metres). None: one grid
            cell, so that a regular shot line whose spacing does not divide the model's irregular layout
            (OpenFWI's shots are 17, 17, 18 and 17 cells apart) still fits; every moved shot is reported
            (``WindowPlan.shot_offset_m``). A shot used ``e`` metres from its model position shifts its
            near-offset arrivals by up to ``e / v`` (7 ms for 10 m at 1500 m/s).
        receiver_tolerance_m: ``"nearest"`` receivers within this distance. None: half a grid cell.
        max_receiver_gap_m: linear interpolation only between recorded receivers at most this far apart.
            None: 2.5 x the model's receiver spacing (a survey spread of twice the model's spacing passes).
    """

    enabled: bool = False
    receivers: Literal["linear", "nearest"] = "linear"
    shot_tolerance_m: float | None = None
    receiver_tolerance_m: float | None = None
    max_receiver_gap_m: float | None = None


@dataclass(frozen=True)
class LineConfig:
    """How traces are grouped into shots and positions read from the headers.

    Attributes:
        shot_key: trace-header field identifying a shot within a file; ``"auto"`` uses ``FieldRecord`` when
            it is set, else the source coordinates.
        max_crossline_m: largest distance of a source or receiver from the fitted straight line (metres).
            None: half a grid cell.
        exact_tolerance_m: positions closer than this are the same position (metres; SEG-Y stores
            centimetres).
        depth_tolerance_m: largest accepted difference between survey and model source/receiver depths
            (metres). None: one grid cell. Any difference above ``exact_tolerance_m`` but within it is
            accepted with a warning (``GeometryCheck.warnings``): field files often leave the depths 0 while
            the model was trained with sources and receivers one cell (10 m) below the surface.
    """

    shot_key: str = "auto"
    max_crossline_m: float | None = None
    exact_tolerance_m: float = 0.01
    depth_tolerance_m: float | None = None


@dataclass(frozen=True)
class WindowConfig:
    """Where windows are placed along the line.

    Attributes:
        step_cells: columns between the starts of consecutive windows. None: half the window width (a
            Hann-type blend then sums to a constant). Where no window matches at the ideal start the
            nearest matching start before it is used (or after it, leaving a gap that is reported).
        origin_m: along-line position of section column 0's grid (metres, modulo the grid spacing). None:
            the circular mean of the receiver positions modulo the grid spacing (``grid_origin_m``).
    """

    step_cells: int | None = None
    origin_m: float | None = None

    def __post_init__(self) -> None:
        if self.step_cells is not None and self.step_cells < 1:
            raise ValueError(f"windows.step_cells must be at least 1. Received: {self.step_cells}")


__all__ = [
    "LineConfig",
    "RegridConfig",
    "WindowConfig",
]
