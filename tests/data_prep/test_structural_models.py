"""The structural families (issue 21): what real sections have together, checked on the geometry they were
built from rather than on pictures.

``structural``: folded and dipping layers, faults with throw, an unconformity truncating them, thin high- and
low-velocity layers, a compaction trend with lateral variation. ``structural-salt``: the same pierced by salt
with a rugose top, steep flanks and an overhanging cap. The families' bounds, determinism, grid sizes and thin
edges are also covered by the parametrised tests of ``test_velocity_models.py`` and ``test_edges.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from data_prep.edges import edge_map
from data_prep.velocity_models import (
    FAMILIES,
    FAMILY_NAMES,
    family_parameters,
    generate_model,
    generate_models,
)

SEED = 11
NUM_MODELS = 40


@pytest.fixture(scope="module")
def structural():
    return list(generate_models("structural", NUM_MODELS, SEED))


@pytest.fixture(scope="module")
def salted():
    return list(generate_models("structural-salt", NUM_MODELS, SEED))


def test_new_families_are_listed_and_documented():
    assert {"structural", "structural-salt"} <= set(FAMILY_NAMES)
    for name in ("structural", "structural-salt"):
        assert FAMILIES[name].kind == "structural"
    assert FAMILIES["structural-salt"].salt_probability == 1.0
    assert FAMILIES["structural"].salt_probability == 0.0


def test_compaction_trend_increases_with_depth_and_varies_laterally(structural):
    velocity = np.stack([m.velocity_mps for m in structural]).astype(np.float64)
    row_means = velocity.mean(axis=(0, 2))
    # Averaged over models the layer offsets cancel and the trend shows: the bottom is much faster.
    assert row_means[-1] - row_means[0] > 1200, row_means[[0, -1]]
    assert np.all(np.diff(row_means[::10]) > 0), "the mean velocity must rise with depth"
    # Within a layer the velocity follows the trend, so it is not constant (unlike the OpenFWI families).
    model = structural[0]
    unit = np.bincount(model.labels.ravel()).argmax()
    assert np.ptp(model.velocity_mps[model.labels == unit]) > 50


def test_unconformity_truncates_the_lower_sequence(structural):
    with_unconformity = [m for m in structural if m.unconformity is not None]
    # unconformity_probability 0.7: 28 of 40 expected; a binomial 3-sigma band.
    assert 0.45 * NUM_MODELS <= len(with_unconformity) <= 0.95 * NUM_MODELS, len(with_unconformity)
    truncated = 0
    for model in with_unconformity:
        rows = np.arange(model.grid_shape[0])[:, None]
        below = rows >= model.unconformity[None, :]
        assert np.all(model.labels[below] >= model.num_upper_units), (
            "below the unconformity: the lower sequence"
        )
        assert np.all(model.labels[~below] < model.num_upper_units), "above it: the upper sequence"
        # Erosion: the lower unit sub-cropping at the unconformity changes along it in most models.
        first_below = np.argmax(below, axis=0)
        subcrop = model.labels[
            np.minimum(first_below, model.grid_shape[0] - 1), np.arange(model.grid_shape[1])
        ]
        truncated += len(np.unique(subcrop)) > 1
        # The unconformity is one of the reported interfaces.
        assert any(np.array_equal(i, model.unconformity, equal_nan=True) for i in model.interfaces)
    assert truncated >= 0.5 * len(with_unconformity), truncated
    assert all(m.num_upper_units == 0 for m in structural if m.unconformity is None)


def test_thin_layers_include_velocity_inversions(structural):
    thin, inversions = 0, 0
    for model in structural:
        for column in range(0, model.grid_shape[1], 7):
            labels = model.labels[:, column]
            runs = np.split(np.arange(len(labels)), np.flatnonzero(np.diff(labels)) + 1)
            for before, run, after in zip(runs, runs[1:], runs[2:], strict=False):
                if len(run) <= 3 and len(before) > 3 and len(after) > 3:
                    thin += 1
                    velocity = model.velocity_mps[:, column]
                    if velocity[run].mean() < min(velocity[before[-1]], velocity[after[0]]) - 200:
                        inversions += 1
    assert thin >= 10, f"only {thin} thin-layer crossings in {NUM_MODELS} models"
    assert inversions >= 3, f"only {inversions} low-velocity thin layers (velocity inversions)"


def test_faults_have_throw_and_layers_dip(structural):
    faulted = [m for m in structural if m.faults]
    assert len(faulted) >= 0.9 * NUM_MODELS
    assert all(fault.throw_cells >= 2 for model in faulted for fault in model.faults)
    # Regional dip: the lower interfaces of a model change depth across the grid.
    slopes = []
    for model in structural:
        for interface in model.interfaces:
            finite = np.isfinite(interface)
            if finite.sum() > 30:
                x = np.flatnonzero(finite)
                slopes.append(abs(np.polyfit(x, interface[finite], 1)[0]))
    assert np.percentile(slopes, 75) > 0.1, "most interfaces should dip (slope > 0.1 cell per cell)"


def test_salt_has_a_rugose_top_steep_flanks_and_an_overhang(salted):
    assert all(m.salt_velocity_mps is not None and 4300 <= m.salt_velocity_mps <= 4500 for m in salted)
    overhangs, rugose = 0, 0
    for model in salted:
        mask = model.salt_mask
        assert mask.any()
        widths = mask.sum(axis=1)
        rows = np.flatnonzero(widths)
        # An overhang: the salt is wider at some depth than somewhere below it (a cap over a narrower stem).
        if any(widths[r] > widths[rows[rows > r]].min() + 4 for r in rows[:-1]):
            overhangs += 1
        # A rugose top: the depth of the top of salt jumps by 2+ cells between neighbouring columns.
        columns = np.flatnonzero(mask.any(axis=0))
        top = np.array([np.argmax(mask[:, c]) for c in columns])
        if np.abs(np.diff(top)).max() >= 2:
            rugose += 1
    assert overhangs >= 0.5 * NUM_MODELS, overhangs
    assert rugose >= 0.5 * NUM_MODELS, rugose


def test_salt_outline_is_labelled_as_edges(salted):
    from scipy import ndimage

    for model in salted[:10]:
        outline = model.salt_mask & ~ndimage.binary_erosion(model.salt_mask, border_value=1)
        edges = edge_map(model.velocity_mps).astype(bool)
        assert ndimage.binary_dilation(edges)[outline].mean() > 0.95


def test_reported_interfaces_sit_on_unit_boundaries(structural):
    for model in structural[:15]:
        boundaries = model.interface_mask()
        for interface in model.interfaces:
            finite = np.flatnonzero(np.isfinite(interface))
            rows = np.ceil(interface[finite]).astype(int)
            inside = rows < model.grid_shape[0]
            if not inside.any():
                continue
            hit = boundaries[rows[inside], finite[inside]]
            assert hit.mean() > 0.9, f"{hit.mean():.2f} of an interface's cells are on a unit boundary"


def test_recipe_overrides_and_refusals():
    flat = family_parameters(
        "structural", dip_deg=[0, 0], curvature_amplitude_fraction=0.0, num_faults=[0, 0]
    )
    model = generate_model(flat, 0, 0)
    assert not model.faults
    with pytest.raises(ValueError, match=r"dip_deg must lie in \[0, 60\)"):
        family_parameters("structural", dip_deg=[10, 70])
    with pytest.raises(ValueError, match="unconformity_probability must be a probability"):
        family_parameters("structural", unconformity_probability=1.5)
    with pytest.raises(ValueError, match="num_upper_layers must be at least 1"):
        family_parameters("structural", num_upper_layers=[0, 2])


# ----------------------------------------------------------------------------------------------------------
# inclusions: closed bodies faster or slower than their host
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def included():
    return list(generate_models("inclusions", NUM_MODELS, SEED))


def test_inclusions_hold_bodies_of_both_signs_within_the_range(included):
    parameters = FAMILIES["inclusions"]
    assert parameters.kind == "structural" and parameters.num_bodies == (1, 3)
    faster = slower = 0
    for model in included:
        assert 1 <= len(model.body_velocities_mps) <= 3
        assert model.body_mask.any() and not model.salt_mask.any()
        low, high = parameters.velocity_range_mps
        for number, velocity in enumerate(model.body_velocities_mps):
            assert low <= velocity <= high
            cells = model.labels == model.num_layers + 1 + number
            if cells.any():  # a body covered by a younger one has no cells left
                np.testing.assert_array_equal(model.velocity_mps[cells], np.float32(velocity))
        # Against the layers around it: the median of the model's non-body cells in the body's rows.
        body = model.labels == model.num_layers + 1
        if body.any():
            rows = np.unique(np.nonzero(body)[0])
            host = np.median(model.velocity_mps[rows][~model.body_mask[rows]])
            faster += model.body_velocities_mps[0] > host
            slower += model.body_velocities_mps[0] < host
    assert faster >= 0.3 * NUM_MODELS and slower >= 0.1 * NUM_MODELS, (faster, slower)


def test_body_outlines_are_edges_and_cut_the_interfaces(included):
    from scipy import ndimage

    for model in included[:10]:
        mask = model.body_mask
        outline = mask & ~ndimage.binary_erosion(mask, border_value=1)
        edges = ndimage.binary_dilation(edge_map(model.velocity_mps).astype(bool))
        # Two bodies of nearly one velocity can touch without an edge between them: most of the outline.
        assert edges[outline].mean() > 0.8
        for interface in model.interfaces:  # no reported interface runs through a body
            finite = np.flatnonzero(np.isfinite(interface))
            rows = np.ceil(interface[finite]).astype(int)
            inside = rows < model.grid_shape[0]
            assert not mask[rows[inside], finite[inside]].any()


def test_draw_bodies_anomaly_against_its_host():
    from data_prep.velocity_models.bodies import draw_bodies

    recipe = family_parameters("inclusions", num_bodies=[1, 1], body_contrast_mps=[500, 500])
    host = np.full((40, 60), 2500.0)
    drawn = [draw_bodies(recipe, np.random.default_rng(seed), host) for seed in range(8)]
    assert {velocity for bodies in drawn for _, velocity in bodies} == {2000.0, 3000.0}
    assert all(mask.any() and not mask.all() for bodies in drawn for mask, _ in bodies)
    # Too close to the top of the range for a fast body: the anomaly goes the other way.
    always_fast = family_parameters("inclusions", body_fast_probability=1.0, body_contrast_mps=[500, 500])
    bodies = draw_bodies(always_fast, np.random.default_rng(0), np.full((40, 60), 4450.0))
    assert bodies and all(velocity == 3950.0 for _, velocity in bodies)


def test_bodies_on_other_recipes_and_refusals():
    plain = generate_model(family_parameters("inclusions", num_bodies=[0, 0]), 0, 0)
    assert plain.body_velocities_mps == () and not plain.body_mask.any()
    salted_bodies = generate_model(family_parameters("structural-salt", num_bodies=[2, 2]), 0, 1)
    assert salted_bodies.salt_mask.any() and len(salted_bodies.body_velocities_mps) == 2
    with pytest.raises(ValueError, match="num_bodies and body_contrast_mps cannot be negative"):
        family_parameters("inclusions", num_bodies=[-1, 2])
    with pytest.raises(ValueError, match=r"body_width_fraction must be a range of fractions in \[0, 1\]"):
        family_parameters("inclusions", body_width_fraction=[0.5, 1.5])
    with pytest.raises(ValueError, match="body_fast_probability must be a probability"):
        family_parameters("inclusions", body_fast_probability=2)
