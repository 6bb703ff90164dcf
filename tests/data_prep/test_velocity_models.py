"""Tests of the velocity-model families: recipes, statistics per family, determinism, geometry reports.

Family statistics are computed over ``NUM_MODELS`` seeded models per family; every check is on values
(velocities, layer counts, interface depths, fault offsets), not only on shapes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from data_prep.velocity_models import (
    FAMILIES,
    FAMILY_NAMES,
    FamilyParameters,
    VelocityModel,
    family_parameters,
    generate_model,
    generate_models,
)

NUM_MODELS = 20
SEED = 1234
LAYERED = [name for name in FAMILY_NAMES if FAMILIES[name].kind == "layered"]
A_FAMILIES = [name for name in LAYERED if name.endswith("-a")]
FAULT_FAMILIES = [name for name in LAYERED if FAMILIES[name].is_faulted]


@pytest.fixture(scope="module")
def models() -> dict[str, list[VelocityModel]]:
    """``NUM_MODELS`` models of every family on the default 70 x 70 grid (generated once: ~0.1 s)."""
    return {name: list(generate_models(name, NUM_MODELS, SEED)) for name in FAMILY_NAMES}


def _layer_thicknesses(model: VelocityModel) -> np.ndarray:
    """Thickness (cells) of every layer of an unfaulted layered model, min over columns."""
    depth_cells = model.grid_shape[0]
    bounds = (
        [np.zeros(model.grid_shape[1])] + list(model.interfaces) + [np.full(model.grid_shape[1], depth_cells)]
    )
    return np.array([np.nanmin(lower - upper) for upper, lower in zip(bounds[:-1], bounds[1:], strict=True)])


# ----------------------------------------------------------------------------------------------------------
# Recipes
# ----------------------------------------------------------------------------------------------------------


def test_family_names_match_recipes():
    assert tuple(FAMILIES) == FAMILY_NAMES
    assert all(FAMILIES[name].name == name for name in FAMILY_NAMES), "each recipe must carry its own name"


def test_unknown_family_lists_valid_names():
    with pytest.raises(ValueError, match="Valid names: flatvel-a, flatvel-b") as info:
        family_parameters("flatvel-c")
    assert "flatvel-c" in str(info.value)
    with pytest.raises(ValueError, match="Valid names"):
        generate_model("marmousi", 0, 0)


def test_overrides_accept_yaml_lists_and_are_validated():
    parameters = family_parameters("flatvel-a", num_layers=[3, 5], min_contrast_mps=250)
    assert parameters.num_layers == (3, 5) and parameters.min_contrast_mps == 250.0
    assert FAMILIES["flatvel-a"].num_layers == (2, 4), "overrides must not change the shared recipe"
    with pytest.raises(ValueError, match="Unknown configuration key"):
        family_parameters("flatvel-a", num_layer=[3, 5])
    with pytest.raises(ValueError, match="low <= high"):
        family_parameters("flatvel-a", num_layers=[5, 3])
    with pytest.raises(ValueError, match="need a 3200 m/s range"):
        family_parameters("flatvel-a", num_layers=[2, 17], min_contrast_mps=200)
    with pytest.raises(ValueError, match="cannot rename"):
        family_parameters("flatvel-a", name="other")


def test_overridden_recipe_is_used():
    parameters = family_parameters(
        "flatvel-a", num_layers=[6, 6], min_layer_thickness_fraction=0.05, min_contrast_mps=400
    )
    for index in range(5):
        model = generate_model(parameters, SEED, index)
        assert model.num_layers == 6
        assert np.all(np.diff(model.layer_velocities_mps) >= 400 - 1e-6)


# ----------------------------------------------------------------------------------------------------------
# Family statistics
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_velocities_within_family_bounds(models, family):
    parameters = FAMILIES[family]
    if parameters.kind == "gradient":
        low = min(
            parameters.gradient_top_velocity_range_mps[0], parameters.gradient_bottom_velocity_range_mps[0]
        )
        high = max(
            parameters.gradient_top_velocity_range_mps[1], parameters.gradient_bottom_velocity_range_mps[1]
        )
    elif parameters.kind == "salt" or parameters.salt_probability > 0:
        low, high = parameters.velocity_range_mps[0], parameters.salt_velocity_range_mps[1]
    else:
        low, high = parameters.velocity_range_mps
    for model in models[family]:
        velocity = model.velocity_mps
        assert velocity.shape == (70, 70) and velocity.dtype == np.float32
        assert np.isfinite(velocity).all()
        assert low <= velocity.min() and velocity.max() <= high, (
            f"{family}: velocities {velocity.min():.0f}-{velocity.max():.0f} m/s outside {low:.0f}-{high:.0f}"
        )
        # OpenFWI's A recipes (and all of ours) stay in OpenFWI's 1500-4500 m/s.
        assert 1500 <= velocity.min() and velocity.max() <= 4500
    # The draws spread over the range instead of clustering: the 20 models together span most of it.
    pooled = np.concatenate([m.velocity_mps.ravel() for m in models[family]])
    assert pooled.max() - pooled.min() > 0.6 * (high - low), (
        f"{family}: velocities barely vary between models"
    )


@pytest.mark.parametrize("family", LAYERED + ["salt"])
def test_layer_counts_and_contrasts(models, family):
    parameters = FAMILIES[family]
    counts = [model.num_layers for model in models[family]]
    assert all(parameters.num_layers[0] <= n <= parameters.num_layers[1] for n in counts), counts
    assert len(set(counts)) > 1, f"{family}: all {NUM_MODELS} models have {counts[0]} layers"
    for model in models[family]:
        velocities = np.asarray(model.layer_velocities_mps)
        assert len(model.interfaces) == model.num_layers - 1
        assert np.all(np.abs(np.diff(velocities)) >= parameters.min_contrast_mps - 1e-6)
        if parameters.velocity_increases_with_depth:
            assert np.all(np.diff(velocities) > 0), f"{family}: velocities must increase with depth"
        # The velocity is the velocity of each cell's unit.
        lookup = np.append(velocities, model.salt_velocity_mps or np.nan).astype(np.float32)
        np.testing.assert_array_equal(model.velocity_mps, lookup[model.labels])
        if not model.faults and model.salt_velocity_mps is None:
            # Unfaulted layers: every layer is present and carries its own velocity.
            assert len(np.unique(model.velocity_mps)) == model.num_layers
            assert set(np.unique(model.labels)) == set(range(model.num_layers))


def test_b_recipes_have_more_thinner_layers_and_more_contrast(models):
    for kind in ("flatvel", "curvevel"):
        a_models, b_models = models[f"{kind}-a"], models[f"{kind}-b"]
        assert np.mean([m.num_layers for m in b_models]) > np.mean([m.num_layers for m in a_models]) + 2
        a_thickness = np.mean([_layer_thicknesses(m).mean() for m in a_models])
        b_thickness = np.mean([_layer_thicknesses(m).mean() for m in b_models])
        assert b_thickness < 0.7 * a_thickness, (
            f"{kind}: B layers {b_thickness:.1f} vs A {a_thickness:.1f} cells"
        )
        a_contrast = np.mean([np.abs(np.diff(m.layer_velocities_mps)).mean() for m in a_models])
        b_contrast = np.mean([np.abs(np.diff(m.layer_velocities_mps)).mean() for m in b_models])
        assert b_contrast > a_contrast
    # B velocities are not forced to increase with depth: low-velocity layers occur.
    assert any(np.any(np.diff(m.layer_velocities_mps) < 0) for m in models["flatvel-b"])


@pytest.mark.parametrize("family", ["flatvel-a", "flatvel-b", "curvevel-a", "curvevel-b"])
def test_minimum_layer_thickness(models, family):
    parameters = FAMILIES[family]
    minimum = max(2.0, parameters.min_layer_thickness_fraction * 70)
    for model in models[family]:
        assert _layer_thicknesses(model).min() >= minimum - 1e-9


@pytest.mark.parametrize("family", ["flatvel-a", "flatvel-b", "flatfault-a", "flatfault-b"])
def test_flat_families_have_flat_layering_and_curved_ones_do_not(models, family):
    curved = family.replace("flat", "curve")
    for model in models[family]:
        if not model.faults:
            assert all(np.ptp(interface) == 0 for interface in model.interfaces)
    # Curved families: interfaces undulate by several cells.
    relief = [
        max(np.nanmax(interface) - np.nanmin(interface) for interface in m.interfaces)
        for m in models[curved]
        if m.interfaces
    ]
    assert np.median(relief) > 3.0, f"{curved}: median interface relief {np.median(relief):.1f} cells"


@pytest.mark.parametrize("family", FAULT_FAMILIES)
def test_fault_families_have_faults_with_measurable_offset(models, family):
    parameters = FAMILIES[family]
    for model in models[family]:
        assert parameters.num_faults[0] <= len(model.faults) <= parameters.num_faults[1]
        for fault in model.faults:
            assert fault.throw_cells >= 2.0
            assert parameters.fault_dip_deg[0] <= fault.dip_deg <= parameters.fault_dip_deg[1]
            # The fault crosses mid-depth inside the grid, so it cuts the layering instead of a corner.
            assert 0 <= fault.x_at_depth(35.0) <= 69
        # Faults of one model never cross inside the grid (crossings cut slivers too thin to label).
        rows = np.arange(70.0)
        for first, second in zip(model.faults[:-1], model.faults[1:], strict=True):
            assert np.abs(first.x_at_depth(rows) - second.x_at_depth(rows)).min() >= 3.0
        # Measurable offset in the velocities: along some row the velocity jumps laterally by at least
        # the minimum layer contrast, which unfaulted (flat or gently curved) layering never does this often.
        lateral_jumps = np.abs(np.diff(model.velocity_mps, axis=1)) >= parameters.min_contrast_mps
        assert lateral_jumps.sum() >= 2, f"{family}: fault leaves no lateral velocity jump"
    if family.startswith("curve"):
        return  # curvature alone already moves interfaces laterally; the comparison below needs flat layers
    unfaulted = models[family.replace("fault", "vel")]
    jumps_faulted = np.mean([(np.abs(np.diff(m.velocity_mps, axis=1)) > 0).sum() for m in models[family]])
    jumps_unfaulted = np.mean([(np.abs(np.diff(m.velocity_mps, axis=1)) > 0).sum() for m in unfaulted])
    assert jumps_faulted > jumps_unfaulted


def test_single_flat_fault_offsets_layers_by_its_throw():
    # A steep fault through the middle: the two edge columns lie on opposite sides of it at every depth.
    parameters = family_parameters(
        "flatfault-a",
        num_layers=[3, 3],
        num_faults=[1, 1],
        fault_dip_deg=[80, 85],
        fault_throw_fraction=[0.1, 0.1],
    )
    for index in range(10):
        model = generate_model(parameters, SEED, index)
        (fault,) = model.faults
        assert fault.throw_cells == pytest.approx(7.0)
        hanging, foot = (-1, 0) if fault.dip_direction > 0 else (0, -1)
        top = model.interfaces[0]
        # The hanging wall slid down by the throw.
        assert top[hanging] - top[foot] == pytest.approx(fault.throw_cells)
        assert np.isnan(model.interfaces[1][hanging]) or (
            model.interfaces[1][hanging] - model.interfaces[1][foot] == pytest.approx(fault.throw_cells)
        )


def test_salt_bodies_are_present_fast_and_cut_interfaces(models):
    parameters = FAMILIES["salt"]
    cut_somewhere = False
    for model in models["salt"]:
        salt = model.salt_mask
        area = salt.mean()
        assert 0.02 < area < 0.4, f"salt covers {area:.1%} of the model"
        assert (
            parameters.salt_velocity_range_mps[0]
            <= model.salt_velocity_mps
            <= parameters.salt_velocity_range_mps[1]
        )
        assert np.all(model.velocity_mps[salt] == np.float32(model.salt_velocity_mps))
        # The salt is the fastest unit by a wide margin.
        assert model.velocity_mps[~salt].max() <= parameters.velocity_range_mps[1] < model.salt_velocity_mps
        # Interfaces are NaN exactly where the first cell below them is salt.
        for interface in model.interfaces:
            missing = np.isnan(interface)
            cut_somewhere |= bool(missing.any())
            for column in np.flatnonzero(missing):
                assert salt[:, column].any()
            columns = np.flatnonzero(~missing)
            assert not salt[np.ceil(interface[columns]).astype(int), columns].any()
    assert cut_somewhere, "no salt body cut an interface in 20 models"
    # Salt shapes vary: not the same blob every time.
    assert len({int(m.salt_mask.sum()) for m in models["salt"]}) > 10


def test_gradient_family_is_smooth_and_increases_with_depth(models):
    for model in models["gradient"]:
        velocity = model.velocity_mps.astype(np.float64)
        assert model.interfaces == () and model.faults == () and model.num_layers == 1
        assert np.all(np.diff(velocity, axis=0) >= 0), "velocity must not decrease with depth"
        assert velocity[-1].mean() - velocity[0].mean() > 400
        # Smooth: no jump between neighbouring cells anywhere near a layer contrast.
        assert np.abs(np.diff(velocity, axis=0)).max() < 60
        assert np.abs(np.diff(velocity, axis=1)).max() < 60
        assert not model.interface_mask().any()
        # Mild but real lateral variation.
        assert 0 < np.ptp(velocity[0]) < 0.1 * velocity[0].mean()


# ----------------------------------------------------------------------------------------------------------
# Reported geometry
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", LAYERED + ["salt"])
def test_interfaces_sit_on_velocity_jumps(models, family):
    for model in models[family]:
        mask = model.interface_mask()
        depth_cells, x_cells = model.grid_shape
        for interface in model.interfaces:
            assert interface.shape == (x_cells,)
            columns = np.flatnonzero(np.isfinite(interface))
            rows = np.ceil(interface[columns]).astype(int)
            assert np.all((rows >= 1) & (rows <= depth_cells - 1))
            assert mask[rows, columns].all(), f"{family}: interface cells missing from interface_mask()"
            # The unit changes across the interface: different labels above and below.
            assert np.all(model.labels[rows, columns] != model.labels[rows - 1, columns])
        # Every row where the unit changes down a column lies on some reported interface (or salt).
        changes = np.zeros(model.grid_shape, dtype=bool)
        changes[1:] = model.labels[1:] != model.labels[:-1]
        reported = np.zeros(model.grid_shape, dtype=bool)
        for interface in model.interfaces:
            columns = np.flatnonzero(np.isfinite(interface))
            reported[np.ceil(interface[columns]).astype(int), columns] = True
        salt_outline = np.zeros(model.grid_shape, dtype=bool)
        salt = model.salt_mask
        salt_outline[1:] = salt[1:] != salt[:-1]
        assert not (changes & ~reported & ~salt_outline).any()


@pytest.mark.parametrize("family", FAULT_FAMILIES)
def test_fault_traces(models, family):
    for model in models[family]:
        assert len(model.fault_traces) == len(model.faults)
        fault_mask = model.fault_mask()
        # The youngest fault is undisplaced: a straight line crossing every row where it is inside the grid.
        youngest = model.fault_traces[-1]
        assert np.allclose(model.faults[-1].x_at_depth(youngest[:, 0]), youngest[:, 1])
        assert len(np.unique(np.rint(youngest[:, 0]))) >= 35, (
            "a fault through mid-depth crosses half the rows"
        )
        # Every lateral change of unit lies on (within 1 cell of) some fault trace: faults explain all
        # lateral offsets of flat layering.
        if family.startswith("flat"):
            lateral = np.zeros(model.grid_shape, dtype=bool)
            lateral[:, 1:] = model.labels[:, 1:] != model.labels[:, :-1]
            near = ndimage.binary_dilation(fault_mask, structure=np.ones((3, 3)))
            assert near[lateral].all(), f"{family}: lateral offset away from every fault trace"
        with_planes = model.interface_mask(include_fault_planes=True)
        assert with_planes[fault_mask].all() and with_planes[model.interface_mask()].all()
        ends = model.faults[0].polyline_cells(model.grid_shape)
        assert ends.shape == (2, 2) and ends[0, 0] == 0 and ends[1, 0] == 69
        assert math.isclose(ends[0, 1], model.faults[0].x_top_cell)


# ----------------------------------------------------------------------------------------------------------
# Determinism, grids, validation
# ----------------------------------------------------------------------------------------------------------


def _assert_same(first: VelocityModel, second: VelocityModel) -> None:
    np.testing.assert_array_equal(first.velocity_mps, second.velocity_mps)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert len(first.interfaces) == len(second.interfaces)
    for a, b in zip(first.interfaces, second.interfaces, strict=True):
        np.testing.assert_array_equal(a, b)  # NaNs compare equal here
    assert first.faults == second.faults
    # NaN (a layer eroded or faulted out of the grid) compares equal here
    np.testing.assert_array_equal(first.layer_velocities_mps, second.layer_velocities_mps)
    assert first.salt_velocity_mps == second.salt_velocity_mps
    assert first.body_velocities_mps == second.body_velocities_mps


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_same_seed_and_index_give_identical_models(family):
    _assert_same(generate_model(family, 7, 3), generate_model(family, 7, 3))
    # A slice of a batch equals the models generated one by one (what sharding relies on).
    batch = list(generate_models(family, 4, 7, start=2))
    for offset, model in enumerate(batch):
        _assert_same(model, generate_model(family, 7, 2 + offset))
    # Other indices, seeds and families give other models.
    assert not np.array_equal(batch[0].velocity_mps, batch[1].velocity_mps)
    assert not np.array_equal(
        generate_model(family, 7, 3).velocity_mps, generate_model(family, 8, 3).velocity_mps
    )


def test_families_do_not_share_random_draws():
    flat_a = generate_model("flatvel-a", 5, 0)
    fault_a = generate_model("flatfault-a", 5, 0)
    assert flat_a.layer_velocities_mps != fault_a.layer_velocities_mps


def test_models_are_read_only():
    model = generate_model("flatvel-a", 0, 0)
    with pytest.raises(ValueError, match="read-only"):
        model.velocity_mps[0, 0] = 0.0


@pytest.mark.parametrize("grid_shape", [(40, 120), (120, 40), (32, 48), (16, 16)])
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_any_grid_shape(family, grid_shape):
    parameters = FAMILIES[family]
    if grid_shape == (16, 16) and parameters.num_layers[1] > 4:
        pytest.skip("eight layers do not fit in 16 cells; covered by test_grid_too_small_for_recipe")
    for index in range(3):
        model = generate_model(family, SEED, index, grid_shape)
        assert model.velocity_mps.shape == grid_shape and model.labels.shape == grid_shape
        assert all(interface.shape == (grid_shape[1],) for interface in model.interfaces)
        fewest, most = parameters.layer_count_range
        assert fewest <= model.num_layers <= most
        if parameters.kind == "layered" and not parameters.is_faulted:
            assert len(np.unique(model.velocity_mps)) == model.num_layers
            minimum = max(2.0, parameters.min_layer_thickness_fraction * grid_shape[0])
            assert _layer_thicknesses(model).min() >= minimum - 1e-9


def test_feature_sizes_scale_with_the_grid():
    # The same recipe on a grid twice as fine: layer thicknesses in cells roughly double.
    coarse = np.mean([_layer_thicknesses(m).mean() for m in generate_models("flatvel-a", 20, SEED)])
    fine = np.mean(
        [_layer_thicknesses(m).mean() for m in generate_models("flatvel-a", 20, SEED, grid_shape=(140, 140))]
    )
    assert 1.6 < fine / coarse < 2.4


def test_grid_too_small_for_recipe():
    with pytest.raises(ValueError, match=r"at least 8 cells .*Received: \(4, 70\)"):
        generate_model("flatvel-a", 0, 0, (4, 70))
    # Decided by the recipe's worst case, so every index fails alike (not only unlucky ones).
    for index in range(3):
        with pytest.raises(ValueError, match=r"8 layers .* do not fit in 12 depth cells. Use a deeper grid"):
            generate_model("flatvel-b", 0, index, (12, 70))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(seed=-1, index=0), "seed must be a non-negative integer"),
        (dict(seed=0, index=1.5), "index must be a non-negative integer"),
        (dict(seed=0, index=0, grid_shape=(70,)), "grid_shape must be"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_model("flatvel-a", **kwargs)


def test_generate_models_validates_count():
    with pytest.raises(ValueError, match="count must be a non-negative integer"):
        list(generate_models("flatvel-a", -1, 0))
    assert list(generate_models("flatvel-a", 0, 0)) == []


def test_family_parameters_is_a_frozen_dataclass():
    parameters = FAMILIES["salt"]
    assert isinstance(parameters, FamilyParameters)
    with pytest.raises(AttributeError):
        parameters.num_layers = (1, 1)


def test_families_yaml_documents_the_recipes():
    """configs/data/families.yaml loads, its overrides suit every family, and its documented defaults
    are the real ones (flatvel-a's), so the file cannot drift from the code unnoticed."""
    import yaml

    from core.config import CONFIG_DIR

    path = CONFIG_DIR / "data" / "families.yaml"
    data = yaml.safe_load(path.read_text())
    assert set(data) == {"family_overrides"}
    for name in FAMILY_NAMES:
        family_parameters(name, **data["family_overrides"])
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "Fields and the defaults" in line)
    documented = {}
    for line in lines[start + 1 :]:
        if not line.startswith("#   "):
            break
        key, _, rest = line[4:].partition(":")
        documented[key.strip()] = yaml.safe_load(rest.split("  ")[0].strip() or rest)
    flatvel_a = FAMILIES["flatvel-a"]
    assert len(documented) >= 10
    for key, value in documented.items():
        actual = getattr(flatvel_a, key)
        expected = tuple(value) if isinstance(value, list) else value
        assert actual == expected, f"families.yaml documents {key}: {value}, the code has {actual}"
