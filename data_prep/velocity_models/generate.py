"""Drawing models: ``generate_model`` / ``generate_models``, seeded per ``(seed, index, family name)``.

Part of ``data_prep.velocity_models``: checks the arguments and the grid, builds the model's random
stream and hands the recipe to the generator of its kind (``layered``, ``gradient``, ``structural``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np

from data_prep.velocity_models.gradient import gradient_model
from data_prep.velocity_models.layered import check_recipe_fits, layered_model
from data_prep.velocity_models.recipes import MIN_GRID_CELLS, FamilyParameters, family_parameters
from data_prep.velocity_models.section import section_model
from data_prep.velocity_models.structural import structural_model
from data_prep.velocity_models.velocity_model import VelocityModel


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
    check_recipe_fits(parameters, grid_shape)
    rng = _random_generator(parameters, int(seed), int(index))
    if parameters.kind == "gradient":
        return gradient_model(parameters, rng, grid_shape)
    if parameters.kind in ("structural", "prior"):
        return structural_model(parameters, rng, grid_shape)
    if parameters.kind == "section":
        return section_model(parameters, rng, grid_shape)
    return layered_model(parameters, rng, grid_shape)


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


def _family_key(name: str) -> int:
    # A stable integer per family name (Python's hash() is salted per process, crc32 is not).
    return zlib.crc32(name.encode("utf-8"))


def _random_generator(parameters: FamilyParameters, seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index, _family_key(parameters.name)]))


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


__all__ = ["generate_model", "generate_models"]
