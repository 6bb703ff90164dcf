"""The shared model test harness: one set of checks run for every model family.

``SMALL_CONFIGS`` are tiny versions of each family (seconds to build and train on CPU) used wherever a check
does not need the default size; ``EXPECTED_OUTPUTS`` is the output-name contract of each family's defaults.
"""

from __future__ import annotations

import numpy as np

SMALL_SEISMIC_SHAPE = (3, 128, 24)  # (shots, time samples, receivers)
SMALL_GRID_SHAPE = (20, 28)  # (depth, x): deliberately non-square

SMALL_CONFIGS: dict[str, dict] = {
    "unet": {
        "front_end_filters": [8, 8],
        "front_end_kernel_sizes": [5, 3],
        "encoder_filters": [8, 16, 32],
        "blocks_per_level": 1,
    },
    "inversionnet": {"filters": [8, 8, 16, 16, 32], "edge_head": True},
    "lstm": {
        "front_end_filters": [8, 8],
        "front_end_kernel_sizes": [5, 3],
        "projection_dim": 16,
        "recurrent_units": [16],
        "decoder_filters": 8,
    },
    "transformer": {
        "patch_size": [16, 4],
        "hidden_dim": 16,
        "num_layers": 1,
        "num_heads": 2,
        "mlp_dim": 32,
        "decoder_filters": 8,
    },
}

#: Output names of each family with its default configuration.
EXPECTED_OUTPUTS = {
    "unet": {"velocity", "edges"},
    "inversionnet": {"velocity"},
    "lstm": {"velocity", "edges"},
    "transformer": {"velocity", "edges"},
}


def small_config(name: str, seismic_shape=SMALL_SEISMIC_SHAPE, grid_shape=SMALL_GRID_SHAPE) -> dict:
    """The small configuration of family ``name`` as a mapping for ``models.build``."""
    return {
        "family": name,
        "seismic_shape": list(seismic_shape),
        "grid_shape": list(grid_shape),
        **SMALL_CONFIGS[name],
    }


def random_batch(seismic_shape, grid_shape, batch_size: int = 2, seed: int = 0):
    """A random seismic batch and matching targets: velocity in [-1, 1], sparse binary edges."""
    rng = np.random.default_rng(seed)
    seismic = rng.uniform(-1, 1, (batch_size, *seismic_shape)).astype("float32")
    velocity = rng.uniform(-1, 1, (batch_size, *grid_shape)).astype("float32")
    edges = (rng.uniform(size=(batch_size, *grid_shape)) > 0.9).astype("float32")
    return seismic, {"velocity": velocity, "edges": edges}
