"""Velocity-model families: seeded, reproducible 2D P-wave velocity models of any grid size.

This is the first stage of the data engine. ``data_prep.synthesize`` draws models from a family here,
simulates shot gathers on them with ``data_prep.forward`` and writes both to SEG-Y; ``data_prep.edges``
turns the same models into edge labels. Every model also reports its true interfaces and faults, so labels
and tests can be checked against the geometry the model was built from rather than against the pixels.

Families (``FAMILY_NAMES``), after OpenFWI's recipes (Deng et al., 2022) and beyond them:

============== =============================================================================================
flatvel-a      2-4 flat layers, velocity increasing with depth, 1500-4500 m/s (OpenFWI FlatVel-A).
flatvel-b      5-8 thinner flat layers, higher contrast, velocity not necessarily increasing with depth.
curvevel-a     as flatvel-a with smoothly curved, conformable interfaces (sums of random sinusoids).
curvevel-b     as flatvel-b with curved interfaces of larger amplitude.
flatfault-a    flatvel-a layering cut by 1-2 dipping normal faults (the hanging wall slides down).
flatfault-b    flatvel-b layering cut by 2-3 faults with larger throws.
curvefault-a   curvevel-a layering cut by 1-2 faults.
curvefault-b   curvevel-b layering cut by 2-3 faults.
salt           a layered background (1500-3500 m/s) with an irregular salt body of 4000-4500 m/s: a
               smoothed random blob, half of the time with a stem reaching the bottom (a diapir).
gradient       no interfaces: v(z, x) = v_top(x) + k * z, a smooth depth gradient with mild lateral
               variation of the top velocity.
structural     what real sections have together: a folded, dipping, faulted lower sequence truncated by an
               erosional unconformity with a gently dipping upper sequence onlapping it, thin high- and
               low-velocity layers (velocity inversions) and a compaction trend with lateral variation.
structural-salt
               a structural section (fewer faults) pierced by a salt body with a rugose top, steep flanks
               and an overhanging cap (or a detached salt sheet), 4300-4500 m/s.
prior          built around a user's prior: a smooth 2-D model or a 1-D profile (well log, tomography;
               ``.npy``, SEG-Y or a depth/velocity table, ``data_prep.priors``) plus the structural family's
               random layering, faults and unconformity as perturbations. Not in ``FAMILY_NAMES``: it needs
               ``prior_path`` (``family_parameters("prior", prior_path=...)``).
============== =============================================================================================

Conventions:
    * Arrays are ``(depth, x)``; cell ``(0, 0)`` is the top-left corner (as in ``data_prep.geometry``).
    * Feature sizes (layer thickness, curvature, throw, salt size) are fractions of the grid, so any grid
      size works and a 140 x 140 model looks like a finer sampling of a 70 x 70 one.
    * An interface at fractional depth ``d`` (cells) in column ``x`` separates the cells ``i < d`` (above)
      from the cells ``i >= d`` (below): the first cell below it is ``ceil(d)``. Layer velocities are constant,
      so the velocity jumps exactly between rows ``ceil(d) - 1`` and ``ceil(d)``.
    * Model ``index`` of a family drawn with ``seed`` depends only on ``(seed, index, family name)``, never on
      which other models were generated before it, so shards on different machines agree.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.config import from_dict, to_dict
from core.errors import ConfigError

FAMILY_NAMES = (
    "flatvel-a",
    "flatvel-b",
    "curvevel-a",
    "curvevel-b",
    "flatfault-a",
    "flatfault-b",
    "curvefault-a",
    "curvefault-b",
    "salt",
    "gradient",
    "structural",
    "structural-salt",
)

#: The family built around a user's prior model; it needs ``prior_path`` and is therefore not in
#: ``FAMILY_NAMES`` (which lists the families that can be drawn as they are).
PRIOR_FAMILY = "prior"

#: Smallest grid a model can be drawn on; below it layers and faults no longer fit as whole cells.
MIN_GRID_CELLS = 8

#: An interface must be at least this many cells from the next one, whatever the fraction says, so that
#: two interfaces never fall on the same row (edge labels would merge them).
MIN_LAYER_THICKNESS_CELLS = 2.0


#: Faults of one model stay at least this fraction of the width apart at every row (they never cross).
FAULT_SEPARATION_FRACTION = 0.1

#: How many times a fault is redrawn to keep it apart from the model's other faults before it is dropped.
MAX_FAULT_DRAWS = 100


# ==========================================================================================================
# Family recipes
# ==========================================================================================================


@dataclass(frozen=True)
class FamilyParameters:
    """One family's recipe. Lengths are fractions of the grid so that any grid size works.

    Ranges are inclusive ``(low, high)`` pairs; each model draws its own value uniformly from them.

    Attributes:
        name: family name; also seeds the random stream (``generate_model``), so two families with the
            same seed do not share their random draws.
        kind: ``"layered"`` (layers, optionally curved and faulted), ``"salt"`` (layers plus a salt body)
            or ``"gradient"`` (a smooth depth gradient without interfaces).
        num_layers: range of the number of layers (``layered``/``salt``); the bottom layer is a half-space.
        velocity_range_mps: layer velocities, m/s (for ``salt``: the background; the salt has its own).
        min_layer_thickness_fraction: minimum layer thickness as a fraction of the depth cells (at least
            ``MIN_LAYER_THICKNESS_CELLS`` cells).
        min_contrast_mps: minimum velocity jump between vertically adjacent layers, m/s.
        velocity_increases_with_depth: ``True`` sorts layer velocities (OpenFWI "A"); ``False`` lets them
            alternate (OpenFWI "B"), still with ``min_contrast_mps`` between neighbours.
        curvature_amplitude_fraction: largest undulation of the interfaces, fraction of the depth (0 = flat).
            The model draws an amplitude between half and all of it, reduced where the drawn number of
            layers would not fit the grid's depth otherwise (shallow grids with many layers).
        curvature_wavelength_fraction: range of the undulation wavelengths, fractions of the width.
        num_faults: range of the number of faults (0 = unfaulted). Faults never cross: one that cannot be
            placed ``FAULT_SEPARATION_FRACTION`` of the width away from the others (after
            ``MAX_FAULT_DRAWS`` seeded attempts) is left out, so very crowded settings may get fewer.
        fault_throw_fraction: range of the vertical fault throw, fraction of the depth.
        fault_dip_deg: range of fault dips from the horizontal, degrees; the dip direction is random.
        salt_velocity_range_mps: salt velocity range, m/s (``salt`` only).
        salt_width_fraction: range of the salt body width, fraction of the grid width.
        salt_height_fraction: range of the salt body height, fraction of the grid depth.
        salt_stem_probability: chance that the body is a diapir with a stem reaching the bottom of the grid.
        gradient_top_velocity_range_mps: range of the velocity at the top (``gradient`` only), m/s.
        gradient_bottom_velocity_range_mps: range of the velocity at the bottom (``gradient`` only), m/s.
        lateral_variation_fraction: largest relative lateral change of the top velocity (``gradient``,
            and the compaction trend of ``structural``).
        dip_deg: range of the regional dip of the lower sequence, degrees from the horizontal (``structural``,
            ``prior``); the direction is random.
        num_thin_layers: range of the number of thin layers (2-3 % of the depth, at least 2 cells) inserted
            inside the lower sequence's layers (``structural``, ``prior``).
        thin_layer_contrast_mps: range of a thin layer's velocity anomaly against its host layer, m/s; the
            sign is random, so about half are low-velocity layers (velocity inversions).
        layer_offset_mps: layer velocities of ``structural``/``prior`` are the compaction trend (or the prior)
            plus a per-layer offset drawn in ``[-layer_offset_mps, +layer_offset_mps]``, neighbours at least
            ``min_contrast_mps`` apart.
        unconformity_probability: chance that an erosional unconformity truncates the lower sequence
            (``structural``, ``prior``); an upper sequence of ``num_upper_layers`` gently dipping layers
            onlaps it.
        unconformity_depth_fraction: range of the unconformity's mean depth, fraction of the depth.
        num_upper_layers: range of the number of layers above the unconformity.
        salt_probability: chance that a ``structural`` model gets a salt body.
        salt_rugosity_fraction: largest short-wavelength relief of the salt top, fraction of the depth.
        salt_sheet_probability: chance that the salt is a detached sheet (no stem) instead of a diapir with
            an overhanging cap.
        prior_path: ``prior`` only: the prior model, read by ``data_prep.priors.load_prior`` (``.npy`` with
            one (depth,) profile or a (depth, x) model, SEG-Y with one trace per x, or a ``.csv``/``.txt``
            table of depth (m) and velocity (m/s)).
        prior_spacing_m: ``prior`` only: sample spacing of a ``.npy``/SEG-Y prior, m (both axes of a 2-D one).
        grid_spacing_m: ``prior`` only: cell size of the grids the models are drawn on, m (to place the prior).
    """

    name: str = "custom"
    kind: Literal["layered", "salt", "gradient", "structural", "prior"] = "layered"
    num_layers: tuple[int, int] = (2, 4)
    velocity_range_mps: tuple[float, float] = (1500.0, 4500.0)
    min_layer_thickness_fraction: float = 0.1
    min_contrast_mps: float = 200.0
    velocity_increases_with_depth: bool = True
    curvature_amplitude_fraction: float = 0.0
    curvature_wavelength_fraction: tuple[float, float] = (0.6, 2.0)
    num_faults: tuple[int, int] = (0, 0)
    fault_throw_fraction: tuple[float, float] = (0.05, 0.15)
    fault_dip_deg: tuple[float, float] = (55.0, 85.0)
    salt_velocity_range_mps: tuple[float, float] = (4000.0, 4500.0)
    salt_width_fraction: tuple[float, float] = (0.25, 0.5)
    salt_height_fraction: tuple[float, float] = (0.2, 0.4)
    salt_stem_probability: float = 0.5
    gradient_top_velocity_range_mps: tuple[float, float] = (1500.0, 2500.0)
    gradient_bottom_velocity_range_mps: tuple[float, float] = (3000.0, 4500.0)
    lateral_variation_fraction: float = 0.05
    dip_deg: tuple[float, float] = (0.0, 0.0)
    num_thin_layers: tuple[int, int] = (0, 0)
    thin_layer_contrast_mps: tuple[float, float] = (300.0, 900.0)
    layer_offset_mps: float = 450.0
    unconformity_probability: float = 0.0
    unconformity_depth_fraction: tuple[float, float] = (0.15, 0.45)
    num_upper_layers: tuple[int, int] = (1, 3)
    salt_probability: float = 0.0
    salt_rugosity_fraction: float = 0.0
    salt_sheet_probability: float = 0.0
    prior_path: str | None = None
    prior_spacing_m: float = 10.0
    grid_spacing_m: float = 10.0

    def __post_init__(self) -> None:
        ranges = (
            "num_layers", "velocity_range_mps", "curvature_wavelength_fraction", "num_faults",
            "fault_throw_fraction", "fault_dip_deg", "salt_velocity_range_mps", "salt_width_fraction",
            "salt_height_fraction", "gradient_top_velocity_range_mps", "gradient_bottom_velocity_range_mps",
            "dip_deg", "num_thin_layers", "thin_layer_contrast_mps", "unconformity_depth_fraction",
            "num_upper_layers",
        )  # fmt: skip
        for field in ranges:
            value = getattr(self, field)
            if len(value) != 2 or not value[0] <= value[1]:
                raise ValueError(
                    f"{field} of family {self.name!r} must be a (low, high) pair with low <= high. "
                    f"Received: {value!r}"
                )
        if self.kind not in ("layered", "salt", "gradient", "structural", "prior"):
            raise ValueError(
                "kind must be 'layered', 'salt', 'gradient', 'structural' or 'prior'. "
                f"Received: {self.kind!r}"
            )
        if self.kind == "prior" and not self.prior_path:
            raise ValueError(
                f"Family {self.name!r} is built around a prior model: set prior_path to a .npy, SEG-Y or "
                "depth/velocity table file (e.g. --set family_overrides.prior_path=well.csv). Received: "
                "prior_path=None"
            )
        if not (0 <= self.dip_deg[0] and self.dip_deg[1] < 60):
            raise ValueError(f"dip_deg must lie in [0, 60) degrees. Received: {self.dip_deg}")
        if self.num_thin_layers[0] < 0 or self.num_upper_layers[0] < 1:
            raise ValueError(
                "num_thin_layers cannot be negative and num_upper_layers must be at least 1. Received: "
                f"num_thin_layers={self.num_thin_layers}, num_upper_layers={self.num_upper_layers}"
            )
        for field in ("prior_spacing_m", "grid_spacing_m"):
            if not getattr(self, field) > 0:
                raise ValueError(
                    f"{field} must be a positive length in m. Received: {getattr(self, field)!r}"
                )
        if self.layer_offset_mps < 0:
            raise ValueError(f"layer_offset_mps cannot be negative. Received: {self.layer_offset_mps}")
        if self.num_layers[0] < 1:
            raise ValueError(f"num_layers must be at least 1. Received: {self.num_layers!r}")
        if self.num_faults[0] < 0:
            raise ValueError(f"num_faults cannot be negative. Received: {self.num_faults!r}")
        if self.velocity_range_mps[0] <= 0 or self.salt_velocity_range_mps[0] <= 0:
            raise ValueError(
                f"Velocities must be positive m/s. Received: velocity_range_mps={self.velocity_range_mps}, "
                f"salt_velocity_range_mps={self.salt_velocity_range_mps}"
            )
        if not (0 < self.fault_dip_deg[0] and self.fault_dip_deg[1] < 90):
            raise ValueError(
                f"fault_dip_deg must lie strictly between 0 and 90. Received: {self.fault_dip_deg}"
            )
        for field in (
            "min_layer_thickness_fraction",
            "curvature_amplitude_fraction",
            "lateral_variation_fraction",
            "salt_rugosity_fraction",
        ):
            if not 0 <= getattr(self, field) < 1:
                raise ValueError(f"{field} must be a fraction in [0, 1). Received: {getattr(self, field)}")
        for field in ("unconformity_probability", "salt_probability", "salt_sheet_probability"):
            if not 0 <= getattr(self, field) <= 1:
                raise ValueError(f"{field} must be a probability in [0, 1]. Received: {getattr(self, field)}")
        if self.min_contrast_mps < 0:
            raise ValueError(f"min_contrast_mps cannot be negative. Received: {self.min_contrast_mps}")
        # Layer velocities are drawn with a minimum jump between neighbours; check it can be honoured.
        span = self.velocity_range_mps[1] - self.velocity_range_mps[0]
        needed = (self.num_layers[1] - 1) * self.min_contrast_mps
        sorted_layers = self.kind in ("layered", "salt") and self.velocity_increases_with_depth
        if sorted_layers and needed > span:
            raise ValueError(
                f"Family {self.name!r}: {self.num_layers[1]} increasing layers {self.min_contrast_mps:g} m/s "
                f"apart need a {needed:g} m/s range, but velocity_range_mps={self.velocity_range_mps} spans "
                f"{span:g} m/s. Widen the range, lower min_contrast_mps or reduce num_layers."
            )
        if self.kind in ("layered", "salt") and self.num_layers[1] > 1 and 2 * self.min_contrast_mps > span:
            raise ValueError(
                f"Family {self.name!r}: min_contrast_mps={self.min_contrast_mps:g} leaves no room in "
                f"velocity_range_mps={self.velocity_range_mps}. Lower the contrast or widen the range."
            )

    @property
    def is_faulted(self) -> bool:
        return self.num_faults[1] > 0

    @property
    def layer_count_range(self) -> tuple[int, int]:
        """The fewest and most layers (``VelocityModel.num_layers``) a model of this recipe can have.

        ``num_layers`` itself for the OpenFWI-style kinds; ``structural``/``prior`` models add the upper
        sequence (when an unconformity is drawn) and two layers per thin layer to their ``num_layers``.
        """
        if self.kind not in ("structural", "prior"):
            return self.num_layers
        upper = self.num_upper_layers[1] if self.unconformity_probability > 0 else 0
        return self.num_layers[0], self.num_layers[1] + 2 * self.num_thin_layers[1] + upper


_A_LAYERS = dict(num_layers=(2, 4), min_layer_thickness_fraction=0.12, min_contrast_mps=200.0)
# "B": more, thinner layers, larger jumps, velocities free to decrease with depth (low-velocity zones).
_B_LAYERS = dict(
    num_layers=(5, 8),
    min_layer_thickness_fraction=0.05,
    min_contrast_mps=500.0,
    velocity_increases_with_depth=False,
)

# What real sections have together (the "structural" kind): a compaction trend (v_top + k z, lateral
# variation), folded and dipping layers offset from it, faults, an unconformity, thin layers.
_STRUCTURAL = dict(
    kind="structural",
    num_layers=(3, 6),
    velocity_range_mps=(1500.0, 4500.0),
    min_layer_thickness_fraction=0.08,
    min_contrast_mps=150.0,
    curvature_amplitude_fraction=0.12,
    curvature_wavelength_fraction=(0.5, 2.0),
    num_faults=(1, 3),
    fault_throw_fraction=(0.04, 0.15),
    fault_dip_deg=(50.0, 80.0),
    gradient_top_velocity_range_mps=(1500.0, 2200.0),
    gradient_bottom_velocity_range_mps=(3200.0, 4500.0),
    lateral_variation_fraction=0.08,
    dip_deg=(0.0, 20.0),
    num_thin_layers=(0, 2),
    thin_layer_contrast_mps=(300.0, 900.0),
    layer_offset_mps=450.0,
    unconformity_probability=0.7,
    unconformity_depth_fraction=(0.15, 0.45),
    num_upper_layers=(1, 3),
)

FAMILIES: dict[str, FamilyParameters] = {
    "flatvel-a": FamilyParameters(name="flatvel-a", **_A_LAYERS),
    "flatvel-b": FamilyParameters(name="flatvel-b", **_B_LAYERS),
    "curvevel-a": FamilyParameters(name="curvevel-a", curvature_amplitude_fraction=0.12, **_A_LAYERS),
    "curvevel-b": FamilyParameters(name="curvevel-b", curvature_amplitude_fraction=0.18, **_B_LAYERS),
    "flatfault-a": FamilyParameters(name="flatfault-a", num_faults=(1, 2), **_A_LAYERS),
    "flatfault-b": FamilyParameters(
        name="flatfault-b", num_faults=(2, 3), fault_throw_fraction=(0.08, 0.2), **_B_LAYERS
    ),
    "curvefault-a": FamilyParameters(
        name="curvefault-a", curvature_amplitude_fraction=0.1, num_faults=(1, 2), **_A_LAYERS
    ),
    "curvefault-b": FamilyParameters(
        name="curvefault-b",
        curvature_amplitude_fraction=0.15,
        num_faults=(2, 3),
        fault_throw_fraction=(0.08, 0.2),
        **_B_LAYERS,
    ),
    "salt": FamilyParameters(
        name="salt",
        kind="salt",
        num_layers=(2, 4),
        velocity_range_mps=(1500.0, 3500.0),
        min_layer_thickness_fraction=0.12,
        min_contrast_mps=200.0,
        curvature_amplitude_fraction=0.06,
    ),
    "gradient": FamilyParameters(name="gradient", kind="gradient", num_layers=(1, 1)),
    "structural": FamilyParameters(name="structural", **_STRUCTURAL),
    "structural-salt": FamilyParameters(
        name="structural-salt",
        **{
            **_STRUCTURAL,
            "velocity_range_mps": (1500.0, 4000.0),
            "gradient_bottom_velocity_range_mps": (2800.0, 3800.0),
            "num_faults": (0, 2),
            "salt_probability": 1.0,
            "salt_velocity_range_mps": (4300.0, 4500.0),
            "salt_width_fraction": (0.3, 0.6),
            "salt_height_fraction": (0.2, 0.45),
            "salt_rugosity_fraction": 0.04,
            "salt_sheet_probability": 0.3,
        },
    ),
}


def family_parameters(name: str, /, **overrides) -> FamilyParameters:
    """The recipe of family ``name``, with some fields replaced.

    Override values are type-checked like configuration values, so YAML/JSON lists are accepted for the
    ``(low, high)`` ranges: ``family_parameters("flatvel-a", num_layers=[3, 5])``.

    Args:
        name: one of ``FAMILY_NAMES``.
        **overrides: ``FamilyParameters`` fields to change.

    Returns:
        The (validated) recipe.

    Raises:
        ValueError: unknown family, unknown field, or a value of the wrong type or out of range.
    """
    if name == PRIOR_FAMILY:
        base = FamilyParameters(name=PRIOR_FAMILY, **{**_STRUCTURAL, "kind": "prior", "prior_path": "unset"})
        merged = {**to_dict(base), "prior_path": None, **overrides}
        try:
            return from_dict(FamilyParameters, merged, path=f"family {name}")
        except ConfigError as error:
            raise ValueError(str(error)) from None
    if name not in FAMILIES:
        raise ValueError(
            f"Unknown velocity-model family {name!r}. Valid names: {', '.join(FAMILY_NAMES)}, and "
            f"{PRIOR_FAMILY!r} with a prior_path."
        )
    if not overrides:
        return FAMILIES[name]
    if "name" in overrides and overrides["name"] != name:
        raise ValueError(
            f"Overrides cannot rename family {name!r} (the name seeds its random stream). "
            f"Received: name={overrides['name']!r}"
        )
    merged = {**to_dict(FAMILIES[name]), **overrides}
    try:
        return from_dict(FamilyParameters, merged, path=f"family {name}")
    except ConfigError as error:
        raise ValueError(str(error)) from None


# ==========================================================================================================
# Models
# ==========================================================================================================


@dataclass(frozen=True)
class Fault:
    """A planar (in 2D: straight) normal fault.

    The fault line passes through ``(0, x_top_cell)`` and dips at ``dip_deg`` from the horizontal towards
    ``+x`` (``dip_direction=+1``) or ``-x`` (``-1``): at depth ``z`` (cells) it lies at
    ``x = x_top_cell + dip_direction * z / tan(dip)``. The hanging wall (the block above the dipping plane)
    moved down by ``throw_cells`` relative to the footwall.

    Attributes:
        x_top_cell: x of the fault line at depth 0, cells (may lie outside the grid).
        dip_deg: dip from the horizontal, degrees, in (0, 90).
        dip_direction: +1 or -1, the x direction the fault dips towards.
        throw_cells: vertical displacement of the hanging wall, cells (positive = down).
    """

    x_top_cell: float
    dip_deg: float
    dip_direction: int
    throw_cells: float

    def x_at_depth(self, depth_cells: np.ndarray | float) -> np.ndarray:
        """x (cells, fractional) of the fault line at the given depths (cells)."""
        return self.x_top_cell + self.dip_direction * np.asarray(depth_cells, dtype=float) / math.tan(
            math.radians(self.dip_deg)
        )

    def depth_at_x(self, x_cells: np.ndarray | float) -> np.ndarray:
        """Depth (cells) where the fault line crosses the given x positions; cells above it in that column
        belong to the hanging wall."""
        return (
            self.dip_direction
            * (np.asarray(x_cells, dtype=float) - self.x_top_cell)
            * math.tan(math.radians(self.dip_deg))
        )

    def polyline_cells(self, grid_shape: tuple[int, int]) -> np.ndarray:
        """``(2, 2)`` float array: the ``(depth, x)`` end points of the fault line at the top and bottom rows.

        This is the line as drawn; a younger fault of the same model may have displaced part of it (see
        ``VelocityModel.fault_traces``). The x values may lie outside ``[0, x_cells - 1]`` where the fault
        leaves the grid sideways.
        """
        depths = np.array([0.0, grid_shape[0] - 1.0])
        return np.stack([depths, self.x_at_depth(depths)], axis=1)

    def displace(self, depth_cells: np.ndarray, x_cells: np.ndarray) -> np.ndarray:
        """Where points of older structures end up after this fault moved, as new depths (cells).

        Points in the hanging wall move down by the throw while they stay above the fault line; points
        below it (footwall) stay. Hanging-wall points that would end below the fault line are cut out by
        the fault plane and come back as NaN.
        """
        depth = np.asarray(depth_cells, dtype=float)
        fault_depth = self.depth_at_x(x_cells)
        shifted = depth + self.throw_cells
        return np.where(shifted < fault_depth, shifted, np.where(depth >= fault_depth, depth, np.nan))


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
            top of the unfaulted stratigraphy, and ``num_layers`` for salt.
        layer_velocities_mps: velocity of each layer, m/s, top first (empty for ``gradient``).
        salt_velocity_mps: velocity of the salt body, m/s, or ``None`` when there is none.
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


def _family_key(name: str) -> int:
    # A stable integer per family name (Python's hash() is salted per process, crc32 is not).
    return zlib.crc32(name.encode("utf-8"))


def _random_generator(parameters: FamilyParameters, seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index, _family_key(parameters.name)]))


def generate_model(
    family: str | FamilyParameters, seed: int, index: int, grid_shape: tuple[int, int] = (70, 70)
) -> VelocityModel:
    """Draws model number ``index`` of a family.

    The result depends only on ``(family recipe, seed, index, grid_shape)``: the random stream is
    ``np.random.SeedSequence([seed, index, crc32(family name)])``, so model 12 345 is the same whether it is
    drawn alone, in a batch or on another machine.

    Args:
        family: a name from ``FAMILY_NAMES`` or a (possibly overridden) ``FamilyParameters``.
        seed: non-negative integer seed of the data set.
        index: non-negative index of the model within the data set.
        grid_shape: ``(depth_cells, x_cells)``, each at least ``MIN_GRID_CELLS``.

    Returns:
        The model, with ``velocity_mps`` of shape ``grid_shape`` (float32, m/s).

    Raises:
        ValueError: unknown family, negative seed or index, a grid too small for the recipe.
    """
    parameters = family if isinstance(family, FamilyParameters) else family_parameters(family)
    for label, value in (("seed", seed), ("index", index)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"{label} must be a non-negative integer. Received: {value!r}")
    grid_shape = _check_grid_shape(grid_shape)
    _check_recipe_fits(parameters, grid_shape)
    rng = _random_generator(parameters, int(seed), int(index))
    if parameters.kind == "gradient":
        return _gradient_model(parameters, rng, grid_shape)
    if parameters.kind in ("structural", "prior"):
        return _structural_model(parameters, rng, grid_shape)
    return _layered_model(parameters, rng, grid_shape)


def generate_models(
    family: str | FamilyParameters,
    count: int,
    seed: int,
    start: int = 0,
    grid_shape: tuple[int, int] = (70, 70),
) -> Iterator[VelocityModel]:
    """Yields models ``start, start + 1, ..., start + count - 1`` of a family (see ``generate_model``).

    Each yielded model equals ``generate_model(family, seed, i, grid_shape)``, so a shard
    ``generate_models(family, n, seed, start=k)`` is a slice of the full sequence.
    """
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
        raise ValueError(f"count must be a non-negative integer. Received: {count!r}")
    if isinstance(start, bool) or not isinstance(start, int | np.integer) or start < 0:
        raise ValueError(f"start must be a non-negative integer. Received: {start!r}")
    parameters = family if isinstance(family, FamilyParameters) else family_parameters(family)
    for index in range(int(start), int(start) + int(count)):
        yield generate_model(parameters, seed, index, grid_shape)


# ==========================================================================================================
# Internals
# ==========================================================================================================


def _check_grid_shape(grid_shape) -> tuple[int, int]:
    try:
        depth_cells, x_cells = (int(n) for n in grid_shape)
        exact = all(int(n) == n for n in grid_shape)
    except (TypeError, ValueError):
        raise ValueError(f"grid_shape must be (depth_cells, x_cells). Received: {grid_shape!r}") from None
    if not exact or depth_cells < MIN_GRID_CELLS or x_cells < MIN_GRID_CELLS:
        raise ValueError(
            f"grid_shape must be two integers of at least {MIN_GRID_CELLS} cells (depth, x). "
            f"Received: {tuple(grid_shape)!r}"
        )
    return depth_cells, x_cells


def _smooth_curve(
    rng: np.random.Generator, x_cells: int, wavelength_fraction: tuple[float, float]
) -> np.ndarray:
    """A smooth random curve over the columns: a sum of 3 sinusoids, scaled to a peak |value| of 1."""
    x = np.arange(x_cells, dtype=float)
    wavelengths = rng.uniform(*wavelength_fraction, size=3) * x_cells
    amplitudes = rng.uniform(0.3, 1.0, size=3) / np.arange(1, 4)
    phases = rng.uniform(0.0, 2 * np.pi, size=3)
    curve = (
        amplitudes[:, None] * np.sin(2 * np.pi * x[None, :] / wavelengths[:, None] + phases[:, None])
    ).sum(0)
    peak = np.abs(curve).max()
    # A wavelength much longer than the width can leave an almost constant curve; that is still a valid
    # (nearly flat) interface, so only guard against division by zero.
    return curve / peak if peak > 1e-12 else curve


def _sorted_with_gaps(
    rng: np.random.Generator, count: int, low: float, high: float, gap: float
) -> np.ndarray:
    """``count`` sorted uniform values in [low, high] with at least ``gap`` between neighbours."""
    # Draw in the range shrunk by the total gap, sort, then add i * gap: uniform over the feasible set.
    values = np.sort(rng.uniform(low, high - (count - 1) * gap, size=count))
    return values + gap * np.arange(count)


def _alternating_velocities(
    rng: np.random.Generator, count: int, low: float, high: float, contrast: float
) -> np.ndarray:
    """Velocities in [low, high], each at least ``contrast`` from the previous one, in any order."""
    velocities = [rng.uniform(low, high)]
    for _ in range(count - 1):
        previous = velocities[-1]
        # Allowed set: [low, previous - contrast] U [previous + contrast, high]; draw on its total length
        # and map the draw across the forbidden gap.
        left = max(0.0, previous - contrast - low)
        right = max(0.0, high - previous - contrast)
        u = rng.uniform(0.0, left + right)
        velocities.append(low + u if u < left else previous + contrast + (u - left))
    return np.asarray(velocities)


def _layer_velocities(parameters: FamilyParameters, rng: np.random.Generator, num_layers: int) -> np.ndarray:
    low, high = parameters.velocity_range_mps
    if parameters.velocity_increases_with_depth:
        return _sorted_with_gaps(rng, num_layers, low, high, parameters.min_contrast_mps)
    return _alternating_velocities(rng, num_layers, low, high, parameters.min_contrast_mps)


def _depth_layout(
    parameters: FamilyParameters, num_layers: int, amplitude: float, depth_cells: int
) -> tuple[float, float, float, float, float]:
    """Spacing rules for the interfaces: ``(min_thickness, wobble_amplitude, gap, low, high)`` in cells.

    Interface base depths lie in ``[low, high]``, at least ``gap`` apart; with the shared undulation
    (``amplitude``) and the individual wobble added, every layer stays ``min_thickness`` thick.
    """
    min_thickness = max(MIN_LAYER_THICKNESS_CELLS, parameters.min_layer_thickness_fraction * depth_cells)
    # The individual wobble stays below a quarter of the minimum thickness, so that neighbouring
    # interfaces can never cross or touch.
    wobble_amplitude = 0.25 * min_thickness if amplitude > 0 else 0.0
    gap = min_thickness + 2 * wobble_amplitude
    low = min_thickness + amplitude + wobble_amplitude
    high = depth_cells - 1 - min_thickness - amplitude - wobble_amplitude
    return min_thickness, wobble_amplitude, gap, low, high


def _largest_amplitude(parameters: FamilyParameters, num_layers: int, depth_cells: int) -> float:
    """The largest interface undulation (cells) with which ``num_layers`` layers still fit the depth."""
    min_thickness, wobble_amplitude, gap, _, _ = _depth_layout(parameters, num_layers, 1.0, depth_cells)
    # Depth budget: top and bottom layers, (num_layers - 2) gaps, and the undulation above and below.
    free = depth_cells - 1 - 2 * min_thickness - 2 * wobble_amplitude - max(0, num_layers - 2) * gap
    return max(0.0, free / 2)


def _check_recipe_fits(parameters: FamilyParameters, grid_shape: tuple[int, int]) -> None:
    """Refuses a grid too shallow for the recipe's most layers even when flat, so that a recipe and a grid
    either always work or always fail, whatever the index. (Curvature shrinks to fit instead.)"""
    if parameters.kind in ("gradient", "structural", "prior"):
        return  # structural layer thicknesses are fractions of the depth that always fit
    depth_cells = grid_shape[0]
    num_layers = parameters.num_layers[1]
    min_thickness, _, gap, low, high = _depth_layout(parameters, num_layers, 0.0, depth_cells)
    if num_layers > 1 and high - low < (num_layers - 2) * gap:
        raise ValueError(
            f"Family {parameters.name!r}: {num_layers} layers at least {min_thickness:.1f} cells thick do not "
            f"fit in {depth_cells} depth cells. Use a deeper grid, or override num_layers or "
            f"min_layer_thickness_fraction. Received: grid_shape={tuple(grid_shape)}"
        )


def _interface_depths(
    parameters: FamilyParameters, rng: np.random.Generator, num_layers: int, grid_shape: tuple[int, int]
) -> np.ndarray:
    """``(num_layers - 1, x)`` depths (cells) of the unfaulted interfaces, shallowest first."""
    depth_cells, x_cells = grid_shape
    num_interfaces = num_layers - 1
    amplitude = parameters.curvature_amplitude_fraction * depth_cells * rng.uniform(0.5, 1.0)
    # On shallow grids the most layers may not fit with the full undulation: flatten them just enough.
    amplitude = min(amplitude, _largest_amplitude(parameters, num_layers, depth_cells))
    _, wobble_amplitude, gap, low, high = _depth_layout(parameters, num_layers, amplitude, depth_cells)
    # All interfaces share one shape (conformable layering) plus a small individual wobble.
    wavelengths = parameters.curvature_wavelength_fraction
    shared = amplitude * _smooth_curve(rng, x_cells, wavelengths)
    wobbles = np.zeros((num_interfaces, x_cells))
    for number in range(num_interfaces):
        wobbles[number] = wobble_amplitude * _smooth_curve(rng, x_cells, wavelengths)
    bases = _sorted_with_gaps(rng, num_interfaces, low, high, gap)
    return bases[:, None] + shared[None, :] + wobbles


def _draw_fault(parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int]) -> Fault:
    depth_cells, x_cells = grid_shape
    dip = rng.uniform(*parameters.fault_dip_deg)
    direction = int(rng.choice([-1, 1]))
    # Place the fault so that it crosses mid-depth in the central half of the grid: it then cuts most
    # interfaces instead of slipping past a corner.
    x_mid = rng.uniform(0.25, 0.75) * (x_cells - 1)
    x_top = x_mid - direction * (depth_cells / 2) / math.tan(math.radians(dip))
    # At least 2 cells of throw: smaller offsets are invisible at the grid's resolution.
    throw = max(2.0, rng.uniform(*parameters.fault_throw_fraction) * depth_cells)
    return Fault(
        x_top_cell=float(x_top), dip_deg=float(dip), dip_direction=direction, throw_cells=float(throw)
    )


def _draw_separated_fault(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int], existing: list[Fault]
) -> Fault | None:
    """A fault that stays ``FAULT_SEPARATION_FRACTION`` of the width away from ``existing`` at every row.

    Crossing faults cut slivers one or two cells wide whose edges merge into bands thicker than two cells,
    and are rare in the recipes we imitate; so redraw (a bounded, seeded number of times, hence still
    deterministic) and give up on this fault, returning ``None``, if no separated one is found.
    """
    depth_cells, x_cells = grid_shape
    separation = max(3.0, FAULT_SEPARATION_FRACTION * x_cells)
    rows = np.arange(depth_cells, dtype=float)
    for _ in range(MAX_FAULT_DRAWS):
        fault = _draw_fault(parameters, rng, grid_shape)
        x = fault.x_at_depth(rows)
        if all(np.abs(x - other.x_at_depth(rows)).min() >= separation for other in existing):
            return fault
    return None


def _apply_fault(depths: np.ndarray, fault: Fault) -> np.ndarray:
    """Interface depths after a normal fault: the part of each column above the fault line moves down."""
    x = np.arange(depths.shape[1], dtype=float)
    fault_depth = fault.depth_at_x(x)[None, :]
    shifted = depths + fault.throw_cells
    # In a column, the hanging wall occupies depths < fault_depth and the footwall the rest. A boundary
    # stays in the hanging wall if its shifted depth is still above the fault line; otherwise it appears in
    # the footwall at its old depth, or on the fault line itself where the fault juxtaposes the layers.
    # Unit labels down each column stay non-decreasing, so each boundary crosses each column once.
    return np.where(shifted < fault_depth, shifted, np.maximum(depths, fault_depth))


def _fault_traces(faults: list[Fault], grid_shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Each fault line, displaced by the younger faults, as ``(points, 2)`` (depth, x) inside the grid."""
    depth_cells, x_cells = grid_shape
    # Start above the grid by the total throw: younger faults can bring shallower parts of a line down.
    total_throw = sum(fault.throw_cells for fault in faults)
    traces = []
    for number, fault in enumerate(faults):
        depth = np.arange(-np.ceil(total_throw), depth_cells, 0.25)
        x = fault.x_at_depth(depth)
        for younger in faults[number + 1 :]:
            depth = younger.displace(depth, x)
        inside = (
            np.isfinite(depth) & (depth >= 0) & (depth <= depth_cells - 1) & (x >= 0) & (x <= x_cells - 1)
        )
        traces.append(np.stack([depth[inside], x[inside]], axis=1))
    return tuple(traces)


def _salt_mask(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int]
) -> np.ndarray:
    """An irregular salt body: a star-shaped blob with a smooth random outline, optionally with a stem."""
    depth_cells, x_cells = grid_shape
    half_width = 0.5 * rng.uniform(*parameters.salt_width_fraction) * x_cells
    half_height = 0.5 * rng.uniform(*parameters.salt_height_fraction) * depth_cells
    centre_x = rng.uniform(0.35, 0.65) * (x_cells - 1)
    centre_z = rng.uniform(0.4, 0.7) * (depth_cells - 1)
    z, x = np.mgrid[0:depth_cells, 0:x_cells].astype(float)
    angle = np.arctan2((z - centre_z) / half_height, (x - centre_x) / half_width)
    # Radius modulated by low harmonics (2-4 lobes): smooth but irregular, never self-intersecting.
    harmonics = np.arange(2, 5)
    amplitudes = rng.uniform(0.0, 0.15, size=3)
    phases = rng.uniform(0, 2 * np.pi, size=3)
    radius = 1.0 + (
        amplitudes[:, None, None] * np.cos(harmonics[:, None, None] * angle + phases[:, None, None])
    ).sum(0)
    mask = np.hypot((z - centre_z) / half_height, (x - centre_x) / half_width) <= radius
    if rng.uniform() < parameters.salt_stem_probability:
        # A diapir: a stem, narrower than the body and slightly wavy, rises from the bottom of the grid.
        stem_half_width = rng.uniform(0.3, 0.5) * half_width
        sway = 0.3 * stem_half_width * np.sin(2 * np.pi * z / depth_cells + rng.uniform(0, 2 * np.pi))
        mask |= (np.abs(x - centre_x - sway) <= stem_half_width) & (z >= centre_z)
    return mask


def _faulted(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int], depths: np.ndarray
) -> tuple[np.ndarray, list[Fault]]:
    """Draws the recipe's faults one after the other and displaces the interface depths by each."""
    faults: list[Fault] = []
    num_faults = int(rng.integers(parameters.num_faults[0], parameters.num_faults[1] + 1))
    for _ in range(num_faults):
        fault = _draw_separated_fault(parameters, rng, grid_shape, faults)
        if fault is None:
            break
        depths = _apply_fault(depths, fault)
        faults.append(fault)
    return depths, faults


def _cut_by_salt(interfaces, salt: np.ndarray) -> None:
    """Sets, in place, each interface to NaN in the columns where its first cell below lies in the salt."""
    depth_cells, x_cells = salt.shape
    columns = np.arange(x_cells)
    for interface in interfaces:
        finite = np.isfinite(interface)
        first_below = np.clip(np.ceil(np.where(finite, interface, 0)).astype(int), 0, depth_cells - 1)
        interface[finite & salt[first_below, columns]] = np.nan


def _layered_model(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int]
) -> VelocityModel:
    depth_cells, x_cells = grid_shape
    num_layers = int(rng.integers(parameters.num_layers[0], parameters.num_layers[1] + 1))
    velocities = _layer_velocities(parameters, rng, num_layers)
    depths = _interface_depths(parameters, rng, num_layers, grid_shape)

    depths, faults = _faulted(parameters, rng, grid_shape, depths)

    traces = _fault_traces(faults, grid_shape)

    # Cell i lies below interface k when i >= depth_k: the unit label counts the interfaces above the cell.
    rows = np.arange(depth_cells, dtype=float)[None, :, None]
    labels = (rows >= depths[:, None, :]).sum(axis=0).astype(np.int16)
    reported = depths.copy()
    # A boundary below the last row has no cell under it: it is not in the model.
    reported[reported > depth_cells - 1] = np.nan

    salt_velocity = None
    if parameters.kind == "salt":
        salt = _salt_mask(parameters, rng, grid_shape)
        salt_velocity = float(rng.uniform(*parameters.salt_velocity_range_mps))
        labels[salt] = num_layers
        _cut_by_salt(reported, salt)

    lookup = np.append(velocities, salt_velocity if salt_velocity is not None else np.nan).astype(np.float32)
    velocity = lookup[labels]
    return _frozen_model(
        velocity_mps=velocity,
        family=parameters.name,
        interfaces=tuple(reported),
        faults=tuple(faults),
        fault_traces=traces,
        labels=labels,
        layer_velocities_mps=tuple(float(v) for v in velocities),
        salt_velocity_mps=salt_velocity,
    )


def _gradient_model(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int]
) -> VelocityModel:
    depth_cells, x_cells = grid_shape
    top = rng.uniform(*parameters.gradient_top_velocity_range_mps)
    bottom = rng.uniform(*parameters.gradient_bottom_velocity_range_mps)
    # Mild lateral variation of the top velocity, as in a compacting basin whose surface layer changes
    # laterally; the gradient k = (bottom - top) / depth stays the same in every column.
    lateral = (
        parameters.lateral_variation_fraction
        * rng.uniform(0.5, 1.0)
        * _smooth_curve(rng, x_cells, (1.0, 3.0))
    )
    z = np.arange(depth_cells, dtype=float)[:, None] / max(1, depth_cells - 1)
    velocity = top * (1.0 + lateral[None, :]) + (bottom - top) * z
    low = min(parameters.gradient_top_velocity_range_mps[0], parameters.gradient_bottom_velocity_range_mps[0])
    high = max(
        parameters.gradient_top_velocity_range_mps[1], parameters.gradient_bottom_velocity_range_mps[1]
    )
    velocity = np.clip(velocity, low, high).astype(np.float32)
    return _frozen_model(
        velocity_mps=velocity,
        family=parameters.name,
        interfaces=(),
        faults=(),
        fault_traces=(),
        labels=np.zeros(grid_shape, dtype=np.int16),
        layer_velocities_mps=(),
        salt_velocity_mps=None,
    )


def _structural_model(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int]
) -> VelocityModel:
    """A ``structural`` (or ``prior``) model: lower sequence, faults, unconformity, upper sequence, salt.

    Built in geological order: the lower sequence is deposited (conformable layers with thin layers inside
    them), folded and tilted as one package, then faulted; erosion cuts it along the unconformity and the
    upper sequence onlaps the erosional surface; salt, last, pierces everything. Velocities are a smooth
    background (the compaction trend, or the user's prior for ``prior``) plus one offset per layer.
    """
    depth_cells, x_cells = grid_shape
    x = np.arange(x_cells, dtype=float)
    rows = np.arange(depth_cells, dtype=float)[:, None]
    min_thickness = max(MIN_LAYER_THICKNESS_CELLS, parameters.min_layer_thickness_fraction * depth_cells)

    # --- Lower sequence: conformable layers, folded and tilted together.
    num_lower = int(rng.integers(parameters.num_layers[0], parameters.num_layers[1] + 1))
    slope = math.tan(math.radians(rng.uniform(*parameters.dip_deg))) * rng.choice([-1.0, 1.0])
    amplitude = parameters.curvature_amplitude_fraction * depth_cells * rng.uniform(0.4, 1.0)
    shape = slope * (x - (x_cells - 1) / 2) + amplitude * _smooth_curve(
        rng, x_cells, parameters.curvature_wavelength_fraction
    )
    # Interfaces are spread over the depths the package shows inside the grid, wherever its shape puts it.
    low = min_thickness - shape.min()
    high = depth_cells - 1 - min_thickness - shape.max()
    # Steep or strongly folded packages may not fit: then part of them leaves the grid.
    high = max(high, low + max(0, num_lower - 2) * min_thickness + 1e-6)
    bases = _sorted_with_gaps(rng, num_lower - 1, low, high, min_thickness)
    offsets = list(_layer_offsets(parameters, rng, num_lower))
    # Thin layers (2-3 % of the depth, >= 2 cells) inside host layers thick enough to hold them with room
    # above and below, each a strong anomaly of either sign against its host.
    thin = max(MIN_LAYER_THICKNESS_CELLS, 0.025 * depth_cells)
    num_thin = int(rng.integers(parameters.num_thin_layers[0], parameters.num_thin_layers[1] + 1))
    tops = np.concatenate([[low - 2 * min_thickness], bases])
    bottoms = np.concatenate([bases, [max(low, high) + 2 * min_thickness]])
    for _ in range(num_thin):
        room = [
            i for i in range(1, len(tops) - 1) if bottoms[i] - tops[i] >= thin + 2 * MIN_LAYER_THICKNESS_CELLS
        ]
        if not room:
            break
        host = int(rng.choice(room))
        top = rng.uniform(
            tops[host] + MIN_LAYER_THICKNESS_CELLS, bottoms[host] - thin - MIN_LAYER_THICKNESS_CELLS
        )
        anomaly = rng.uniform(*parameters.thin_layer_contrast_mps) * rng.choice([-1.0, 1.0])
        # Split the host: host above, the thin layer, host again below.
        tops = np.concatenate([tops[: host + 1], [top, top + thin], tops[host + 1 :]])
        bottoms = np.concatenate([bottoms[:host], [top, top + thin, bottoms[host]], bottoms[host + 1 :]])
        offsets[host + 1 : host + 1] = [offsets[host] + anomaly, offsets[host]]
    depths = tops[1:, None] + shape[None, :]

    depths, faults = _faulted(parameters, rng, grid_shape, depths)
    lower_labels = (rows[None] >= depths[:, None, :]).sum(axis=0)

    # --- Unconformity and upper sequence.
    if rng.uniform() < parameters.unconformity_probability:
        mean_depth = rng.uniform(*parameters.unconformity_depth_fraction) * depth_cells
        relief = 0.03 * depth_cells * _smooth_curve(rng, x_cells, (0.3, 1.0))
        tilt = math.tan(math.radians(rng.uniform(0.0, 3.0))) * rng.choice([-1.0, 1.0]) * (x - x_cells / 2)
        unconformity = np.clip(mean_depth + relief + tilt, MIN_LAYER_THICKNESS_CELLS, depth_cells - 2.0)
        num_upper = int(rng.integers(parameters.num_upper_layers[0], parameters.num_upper_layers[1] + 1))
        upper_slope = math.tan(math.radians(rng.uniform(0.0, 3.0))) * rng.choice([-1.0, 1.0])
        upper_shape = upper_slope * (x - (x_cells - 1) / 2)
        upper_low = min_thickness - upper_shape.min()
        upper_high = unconformity.min() - min_thickness - upper_shape.max()
        # As many upper layers as the space above the unconformity holds (at least the one filling it).
        fits = 1 + max(0, int((upper_high - upper_low) // min_thickness) + 1)
        num_upper = max(1, min(num_upper, fits))
        upper_bases = _sorted_with_gaps(
            rng,
            num_upper - 1,
            upper_low,
            max(upper_high, upper_low + max(0, num_upper - 2) * min_thickness + 1e-6),
            min_thickness,
        )
        upper_depths = upper_bases[:, None] + upper_shape[None, :]
        # Onlap: an upper interface below the erosional surface does not exist there.
        upper_depths = np.where(upper_depths < unconformity[None, :], upper_depths, np.nan)
        upper_labels = (rows[None] >= np.nan_to_num(upper_depths, nan=np.inf)[:, None, :]).sum(axis=0)
        # The eroded lower sequence was buried deeper before uplift: it is faster than its depth suggests
        # (not around a user's prior, which already is the expected velocity: perturbations stay zero-mean).
        uplift = rng.uniform(100.0, 400.0) if parameters.kind == "structural" else 0.0
        offsets = list(_layer_offsets(parameters, rng, num_upper)) + [o + uplift for o in offsets]
        below = rows >= unconformity[None, :]
        labels = np.where(below, num_upper + lower_labels, upper_labels)
    else:
        unconformity, num_upper, upper_depths = None, 0, np.zeros((0, x_cells))
        labels = lower_labels

    # --- Velocity: smooth background + one offset per layer.
    background = _background_velocity(parameters, rng, grid_shape)
    low_velocity, high_velocity = parameters.velocity_range_mps
    offsets_array = np.asarray(offsets)
    velocity = np.clip(background + offsets_array[labels], low_velocity, high_velocity)

    # --- Reported interfaces: the module's convention, NaN where eroded, onlapped or outside the grid.
    reported = [row for row in upper_depths]
    if unconformity is not None:
        reported.append(unconformity.copy())
        lower_reported = np.where(depths >= unconformity[None, :], depths, np.nan)
    else:
        lower_reported = depths.copy()
    reported.extend(lower_reported)
    reported = [np.where((depth >= 0) & (depth <= depth_cells - 1), depth, np.nan) for depth in reported]
    traces = list(_fault_traces(faults, grid_shape))
    if unconformity is not None:  # the faults predate the unconformity: erosion truncates them
        traces = [trace[trace[:, 0] >= np.interp(trace[:, 1], x, unconformity)] for trace in traces]

    salt_velocity = None
    labels = labels.astype(np.int16)
    if rng.uniform() < parameters.salt_probability:
        salt = _rugose_salt_mask(parameters, rng, grid_shape)
        salt_velocity = float(rng.uniform(*parameters.salt_velocity_range_mps))
        labels[salt] = len(offsets)
        velocity = np.where(salt, salt_velocity, velocity)
        _cut_by_salt(reported, salt)
        traces = [
            trace[~salt[np.rint(trace[:, 0]).astype(int), np.rint(trace[:, 1]).astype(int)]]
            for trace in traces
        ]
    # Layer velocities: each layer's mean (they vary within a layer with the background).
    layer_means = tuple(
        float(velocity[labels == unit].mean()) if (labels == unit).any() else float("nan")
        for unit in range(len(offsets))
    )
    return _frozen_model(
        velocity_mps=velocity.astype(np.float32),
        family=parameters.name,
        interfaces=tuple(reported),
        faults=tuple(faults),
        fault_traces=tuple(traces),
        labels=labels,
        layer_velocities_mps=layer_means,
        salt_velocity_mps=salt_velocity,
        unconformity=unconformity,
        num_upper_units=num_upper,
    )


def _layer_offsets(parameters: FamilyParameters, rng: np.random.Generator, count: int) -> np.ndarray:
    """Per-layer velocity offsets from the background, m/s: neighbours ``min_contrast_mps`` apart."""
    spread = parameters.layer_offset_mps
    contrast = min(parameters.min_contrast_mps, spread)  # a narrow spread cannot honour a large contrast
    return _alternating_velocities(rng, count, -spread, spread, contrast)


def _background_velocity(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int]
) -> np.ndarray:
    """``(depth, x)`` smooth background: the compaction trend, or the user's prior for ``prior``."""
    depth_cells, x_cells = grid_shape
    if parameters.kind == "prior":
        from data_prep.priors import load_prior, prior_on_grid

        prior = load_prior(parameters.prior_path, parameters.prior_spacing_m)
        return prior_on_grid(prior, grid_shape, parameters.grid_spacing_m, rng)
    top = rng.uniform(*parameters.gradient_top_velocity_range_mps)
    bottom = rng.uniform(*parameters.gradient_bottom_velocity_range_mps)
    lateral = (
        parameters.lateral_variation_fraction
        * rng.uniform(0.3, 1.0)
        * _smooth_curve(rng, x_cells, (1.0, 3.0))
    )
    z = np.arange(depth_cells, dtype=float)[:, None] / max(1, depth_cells - 1)
    # Compaction: velocity rises fastest near the surface (a square-root-like profile, not a straight line).
    trend = top + (bottom - top) * z ** rng.uniform(0.6, 1.0)
    return trend * (1.0 + lateral[None, :])


def _rugose_salt_mask(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int]
) -> np.ndarray:
    """A salt body with a rugose top and steep flanks: a diapir whose cap overhangs its stem, or a sheet.

    The cap spans ``salt_width_fraction`` of the width and ``salt_height_fraction`` of the depth; its top
    is a dome plus short-wavelength relief (``salt_rugosity_fraction``), its base a gentler curve. A diapir's
    stem, narrower than the cap (the overhang), rises from the bottom of the grid with a slight sway.
    """
    depth_cells, x_cells = grid_shape
    z = np.arange(depth_cells, dtype=float)[:, None]
    x = np.arange(x_cells, dtype=float)[None, :]
    half_width = 0.5 * rng.uniform(*parameters.salt_width_fraction) * x_cells
    height = rng.uniform(*parameters.salt_height_fraction) * depth_cells
    centre_x = rng.uniform(0.3, 0.7) * (x_cells - 1)
    top_depth = rng.uniform(0.2, 0.5) * depth_cells
    u = (x - centre_x) / half_width  # -1 .. 1 across the cap
    inside = np.abs(u) <= 1.0
    # Rugose top: a dome (shallowest in the middle) plus short-wavelength relief.
    dome = 0.35 * height * u**2
    relief = (
        parameters.salt_rugosity_fraction * depth_cells * _smooth_curve(rng, x_cells, (0.08, 0.3))[None, :]
    )
    top = top_depth + dome + relief
    # Base of the cap: thickest in the middle, thinning towards steep, rounded flanks.
    thickness = height * np.sqrt(np.clip(1.0 - np.abs(u) ** rng.uniform(2.5, 4.0), 0.0, 1.0))
    mask = inside & (z >= top) & (z <= top + thickness)
    if rng.uniform() >= parameters.salt_sheet_probability:
        stem_half_width = rng.uniform(0.3, 0.6) * half_width
        sway = 0.4 * stem_half_width * np.sin(2 * np.pi * z / depth_cells + rng.uniform(0, 2 * np.pi))
        stem_top = top_depth + 0.5 * height
        mask |= (np.abs(x - centre_x - sway) <= stem_half_width) & (z >= stem_top)
    return mask


def _frozen_model(**fields) -> VelocityModel:
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


__all__ = [
    "FAMILIES",
    "FAMILY_NAMES",
    "PRIOR_FAMILY",
    "Fault",
    "FamilyParameters",
    "MIN_GRID_CELLS",
    "VelocityModel",
    "family_parameters",
    "generate_model",
    "generate_models",
]
