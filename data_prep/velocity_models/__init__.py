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
inclusions     a structural section (0-2 faults) holding 1-3 closed bodies (lenses, pods, blobs) 400-1800 m/s
               faster or slower than what they replace: the generic anomaly, salt included.
prior          built around a user's prior: a smooth 2-D model or a 1-D profile (well log, tomography;
               ``.npy``, SEG-Y or a depth/velocity table, ``data_prep.priors``) plus the structural family's
               random layering, faults and unconformity as perturbations. Not in ``FAMILY_NAMES``: it needs
               ``prior_path`` (``family_parameters("prior", prior_path=...)``).
section        windows of a user's own 2-D velocity model (a realistic section: Marmousi, a company model) as
               they are, at random positions, resampled to the grid: to score a trained model on realistic
               geology or to fine-tune it. Not in ``FAMILY_NAMES``: it needs ``prior_path``.
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

The package, one concept per module (import the public names from ``data_prep.velocity_models``):

============================================  ================================================================
module                                        holds
============================================  ================================================================
``data_prep.velocity_models.recipes``         ``FamilyParameters``, ``FAMILIES``, ``FAMILY_NAMES``,
                                              ``PRIOR_FAMILY``, ``family_parameters`` and the grid rules
``data_prep.velocity_models.generate``        ``generate_model``, ``generate_models``: seeding, argument and
                                              grid checks, one generator per recipe kind
``data_prep.velocity_models.velocity_model``  ``VelocityModel``, the result and its true geometry
``data_prep.velocity_models.layered``         flatvel, curvevel, flatfault, curvefault (A, B) and salt
``data_prep.velocity_models.gradient``        gradient
``data_prep.velocity_models.structural``      structural, structural-salt, inclusions and prior
``data_prep.velocity_models.bodies``          the inclusions family's closed bodies
``data_prep.velocity_models.section``         windows of a user's section
``data_prep.velocity_models.faults``          ``Fault``; drawing, applying and tracing faults
``data_prep.velocity_models.salt``            salt bodies (blob, rugose diapir or sheet) and the interfaces
                                              they cut
``data_prep.velocity_models.shapes``          random curves, gaps and velocities every generator draws
============================================  ================================================================

A new family with the existing kinds of structure is a ``FAMILIES`` entry in ``recipes``; a new kind of
structure is a generator module dispatched from ``generate.generate_model``.
"""

from data_prep.velocity_models.faults import Fault
from data_prep.velocity_models.generate import generate_model, generate_models
from data_prep.velocity_models.recipes import (
    FAMILIES,
    FAMILY_NAMES,
    MIN_GRID_CELLS,
    PRIOR_FAMILY,
    SECTION_FAMILY,
    FamilyParameters,
    family_parameters,
)
from data_prep.velocity_models.velocity_model import VelocityModel

__all__ = [
    "FAMILIES",
    "FAMILY_NAMES",
    "PRIOR_FAMILY",
    "SECTION_FAMILY",
    "Fault",
    "FamilyParameters",
    "MIN_GRID_CELLS",
    "VelocityModel",
    "family_parameters",
    "generate_model",
    "generate_models",
]
