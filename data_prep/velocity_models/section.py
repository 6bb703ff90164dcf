"""The ``section`` family: windows of a user's own 2-D velocity model, as it is.

Part of ``data_prep.velocity_models``. A geophysicist who has realistic sections (Marmousi, a SEG/EAGE salt
slice, a company model) can score a trained network on them or fine-tune it with them the way the other
families are used: ``python -m data_prep.synthesize --family section --set family_overrides.prior_path=FILE
--set family_overrides.prior_spacing_m=4`` simulates windows of it in the survey's geometry. Each model is a
window of the grid's size at a random position across the section (and, with ``section_top_m``, at a random
depth), resampled from the file's spacing to the grid's cell averaged in slowness (``data_prep.priors``
reads the file and refuses what cannot be a velocity model in m/s).
"""

from __future__ import annotations

import numpy as np

from data_prep.priors import PriorError, load_prior, prior_on_grid
from data_prep.velocity_models.recipes import FamilyParameters
from data_prep.velocity_models.velocity_model import VelocityModel, frozen_model


def section_model(
    parameters: FamilyParameters, rng: np.random.Generator, grid_shape: tuple[int, int]
) -> VelocityModel:
    """One window of the user's section (``parameters.prior_path``) on ``grid_shape``.

    The window's top is drawn from ``section_top_m``, its left edge uniformly over the positions where it
    fits. The model has one geological unit (no interfaces or faults are known of a user's section): edge
    labels come from its velocity jumps, as for every family (``data_prep.edges``).

    Raises:
        PriorError: an unreadable file, a 1-D profile, or a section too small for the window.
    """
    section = load_prior(parameters.prior_path, parameters.prior_spacing_m, parameters.prior_x_spacing_m)
    if section.is_profile:
        raise PriorError(
            f"The section family cuts windows from a 2-D (depth, x) model; {section.source!r} is a 1-D profile. "
            "Use the prior family for a profile (it adds structure around it), or give a 2-D model."
        )
    deepest_top = section.depth_m[-1] - (grid_shape[0] - 1) * parameters.grid_spacing_m
    if parameters.section_top_m[1] > deepest_top + 1e-6:
        raise PriorError(
            f"section_top_m reaches {parameters.section_top_m[1]:g} m, but a window of {grid_shape[0]} cells of "
            f"{parameters.grid_spacing_m:g} m in {section.source!r} (depths {section.depth_m[0]:g}-"
            f"{section.depth_m[-1]:g} m) must start at {max(deepest_top, 0):g} m or shallower. Lower "
            "section_top_m; check prior_spacing_m."
        )
    top_m = float(rng.uniform(*parameters.section_top_m))
    velocity = prior_on_grid(section, grid_shape, parameters.grid_spacing_m, rng, top_m=top_m, antialias=True)
    return frozen_model(
        velocity_mps=velocity.astype(np.float32),
        family=parameters.name,
        interfaces=(),
        faults=(),
        fault_traces=(),
        labels=np.zeros(grid_shape, np.int16),
        layer_velocities_mps=(),
    )


__all__ = ["section_model"]
