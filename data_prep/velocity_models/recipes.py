"""Family recipes: ``FamilyParameters``, the named families (``FAMILIES``) and ``family_parameters``.

The first piece of ``data_prep.velocity_models``: a recipe says what a family's models are made of
(layers, curvature, faults, salt, gradient, structural elements) as ranges of fractions of the grid; the
generators (``layered``, ``gradient``, ``structural``) draw one model from it. Also the grid-independent
rules every generator keeps (``MIN_GRID_CELLS``, ``MIN_LAYER_THICKNESS_CELLS``, fault separation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
    "inclusions",
)

#: The family built around a user's prior model; it needs ``prior_path`` and is therefore not in
#: ``FAMILY_NAMES`` (which lists the families that can be drawn as they are).
PRIOR_FAMILY = "prior"

#: Windows of a user's own 2-D velocity model (``prior_path``) as they are, at random positions: a realistic
#: section to test a trained model on or to fine-tune it with. Not in ``FAMILY_NAMES`` for the same reason.
SECTION_FAMILY = "section"

#: The families that read ``prior_path``.
USER_MODEL_KINDS = ("prior", "section")

#: Smallest grid a model can be drawn on; below it layers and faults no longer fit as whole cells.
MIN_GRID_CELLS = 8

#: An interface must be at least this many cells from the next one, whatever the fraction says, so that
#: two interfaces never fall on the same row (edge labels would merge them).
MIN_LAYER_THICKNESS_CELLS = 2.0


#: Faults of one model stay at least this fraction of the width apart at every row (they never cross).
FAULT_SEPARATION_FRACTION = 0.1

#: How many times a fault is redrawn to keep it apart from the model's other faults before it is dropped.
MAX_FAULT_DRAWS = 100


@dataclass(frozen=True)
class FamilyParameters:
    """One family's recipe. Lengths are fractions of the grid so that any grid size works.

    Ranges are inclusive ``(low, high)`` pairs; each model draws its own value uniformly from them.

    Attributes:
        name: family name; also seeds the random stream (``generate_model``), so two families with the
            same seed do not share their random draws.
        kind: ``"layered"`` (layers, optionally curved and faulted), ``"salt"`` (layers plus a salt body),
            ``"gradient"`` (a smooth depth gradient without interfaces), ``"structural"``, ``"prior"`` (the
            structural elements around a user's model) or ``"section"`` (windows of a user's model as it is).
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
        num_bodies: range of the number of closed bodies of their own velocity placed last (``structural``,
            ``prior``; the ``inclusions`` family): lenses, pods and blobs of any orientation
            (``data_prep.velocity_models.bodies``); 0 = none.
        body_width_fraction: range of a body's width (before its tilt of up to 30 degrees), of the grid width.
        body_height_fraction: range of a body's height, of the grid depth.
        body_depth_fraction: range of the depth of a body's centre, of the grid depth.
        body_contrast_mps: range of a body's velocity anomaly against the median of the cells it replaces, m/s.
        body_fast_probability: chance that a body is faster than its host (else slower).
        section_top_m: ``section`` only: range of the depth of a window's top in the user's model, m (0: windows
            start at its surface, where the acquisition is).
        prior_path: ``prior`` and ``section``: the user's model, read by ``data_prep.priors.load_prior`` (``.npy`` with
            one (depth,) profile or a (depth, x) model, SEG-Y with one trace per x, or a ``.csv``/``.txt``
            table of depth (m) and velocity (m/s)).
        prior_x_spacing_m: ``prior``/``section``: lateral sample spacing of a 2-D model, m, where it differs
            from ``prior_spacing_m`` (None: the same).
        prior_spacing_m: ``prior``/``section``: sample spacing of a ``.npy``/SEG-Y prior, m (both axes of a 2-D one,
            unless ``prior_x_spacing_m`` is set).
        grid_spacing_m: ``prior``/``section``: cell size of the grids the models are drawn on, m (to place the prior).
    """

    name: str = "custom"
    kind: Literal["layered", "salt", "gradient", "structural", "prior", "section"] = "layered"
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
    num_bodies: tuple[int, int] = (0, 0)
    body_width_fraction: tuple[float, float] = (0.1, 0.5)
    body_height_fraction: tuple[float, float] = (0.06, 0.3)
    body_depth_fraction: tuple[float, float] = (0.15, 0.9)
    body_contrast_mps: tuple[float, float] = (400.0, 1800.0)
    body_fast_probability: float = 0.6
    section_top_m: tuple[float, float] = (0.0, 0.0)
    prior_path: str | None = None
    prior_spacing_m: float = 10.0
    prior_x_spacing_m: float | None = None
    grid_spacing_m: float = 10.0

    def __post_init__(self) -> None:
        ranges = (
            "num_layers", "velocity_range_mps", "curvature_wavelength_fraction", "num_faults",
            "fault_throw_fraction", "fault_dip_deg", "salt_velocity_range_mps", "salt_width_fraction",
            "salt_height_fraction", "gradient_top_velocity_range_mps", "gradient_bottom_velocity_range_mps",
            "dip_deg", "num_thin_layers", "thin_layer_contrast_mps", "unconformity_depth_fraction",
            "num_upper_layers", "num_bodies", "body_width_fraction", "body_height_fraction",
            "body_depth_fraction", "body_contrast_mps", "section_top_m",
        )  # fmt: skip
        for field in ranges:
            value = getattr(self, field)
            if len(value) != 2 or not value[0] <= value[1]:
                raise ValueError(
                    f"{field} of family {self.name!r} must be a (low, high) pair with low <= high. "
                    f"Received: {value!r}"
                )
        if self.kind not in ("layered", "salt", "gradient", "structural", *USER_MODEL_KINDS):
            raise ValueError(
                "kind must be 'layered', 'salt', 'gradient', 'structural', 'prior' or 'section'. "
                f"Received: {self.kind!r}"
            )
        if self.kind == "prior" and not self.prior_path:
            raise ValueError(
                f"Family {self.name!r} is built around a prior model: set prior_path to a .npy, SEG-Y or "
                "depth/velocity table file (e.g. --set family_overrides.prior_path=well.csv). Received: "
                "prior_path=None"
            )
        if self.kind == "section" and not self.prior_path:
            raise ValueError(
                f"Family {self.name!r} cuts windows from your own 2-D velocity model: set prior_path to a .npy "
                "(depth, x) array or a SEG-Y file with one trace per x, and prior_spacing_m to its sample "
                "spacing (e.g. --set family_overrides.prior_path=marmousi.segy --set "
                "family_overrides.prior_spacing_m=4). Received: prior_path=None"
            )
        if self.section_top_m[0] < 0:
            raise ValueError(
                f"section_top_m cannot be negative (m below the surface). Received: {self.section_top_m}"
            )
        if not (0 <= self.dip_deg[0] and self.dip_deg[1] < 60):
            raise ValueError(f"dip_deg must lie in [0, 60) degrees. Received: {self.dip_deg}")
        if self.num_thin_layers[0] < 0 or self.num_upper_layers[0] < 1:
            raise ValueError(
                "num_thin_layers cannot be negative and num_upper_layers must be at least 1. Received: "
                f"num_thin_layers={self.num_thin_layers}, num_upper_layers={self.num_upper_layers}"
            )
        for field in ("prior_spacing_m", "grid_spacing_m", "prior_x_spacing_m"):
            if getattr(self, field) is not None and not getattr(self, field) > 0:
                raise ValueError(
                    f"{field} must be a positive length in m. Received: {getattr(self, field)!r}"
                )
        if self.layer_offset_mps < 0:
            raise ValueError(f"layer_offset_mps cannot be negative. Received: {self.layer_offset_mps}")
        if self.num_layers[0] < 1:
            raise ValueError(f"num_layers must be at least 1. Received: {self.num_layers!r}")
        if self.num_bodies[0] < 0 or self.body_contrast_mps[0] < 0:
            raise ValueError(
                "num_bodies and body_contrast_mps cannot be negative. Received: "
                f"num_bodies={self.num_bodies}, body_contrast_mps={self.body_contrast_mps}"
            )
        for field in ("body_width_fraction", "body_height_fraction", "body_depth_fraction"):
            low, high = getattr(self, field)
            if not (0 <= low and high <= 1 and high > 0):
                raise ValueError(f"{field} must be a range of fractions in [0, 1]. Received: {(low, high)}")
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
        for field in (
            "unconformity_probability",
            "salt_probability",
            "salt_sheet_probability",
            "body_fast_probability",
        ):
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
        if self.kind == "section":
            return (1, 1)  # a user's model has no layers we know of: one unit
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
    # A structural section (fewer faults) holding 1-3 closed bodies faster or slower than their host: the
    # generic anomaly (carbonate build-up, intrusion, gas sand, channel fill, salt) that layers alone lack.
    "inclusions": FamilyParameters(
        name="inclusions", **{**_STRUCTURAL, "num_faults": (0, 2), "num_bodies": (1, 3)}
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
    if name == SECTION_FAMILY:
        base = FamilyParameters(name=SECTION_FAMILY, kind="section", num_layers=(1, 1), prior_path="unset")
        merged = {**to_dict(base), "prior_path": None, **overrides}
        try:
            return from_dict(FamilyParameters, merged, path=f"family {name}")
        except ConfigError as error:
            raise ValueError(str(error)) from None
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
            f"{PRIOR_FAMILY!r} or {SECTION_FAMILY!r} with a prior_path."
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


__all__ = [
    "FAMILIES",
    "FAMILY_NAMES",
    "FAULT_SEPARATION_FRACTION",
    "FamilyParameters",
    "MAX_FAULT_DRAWS",
    "MIN_GRID_CELLS",
    "MIN_LAYER_THICKNESS_CELLS",
    "PRIOR_FAMILY",
    "SECTION_FAMILY",
    "USER_MODEL_KINDS",
    "family_parameters",
]
