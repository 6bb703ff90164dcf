"""Draws docs/figures/water.png: four families' models as drawn and under a water column, with edge labels.

Run from anywhere: ``python docs/figures/make_water_figure.py`` (writes next to this script). The models are
``generate_model(family, seed=7, index=i)`` for the i-th family shown, on OpenFWI's 70 x 70 grid of 10 m cells;
the water column is ``WaterLayerConfig(probability=1)`` drawn for the same ``(seed, index)`` (its default depths
and dips), so the picture changes only when a family recipe or the water layer does.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on CI machines
import matplotlib.pyplot as plt  # noqa: E402

from data_prep.edges import EdgeConfig, edge_map  # noqa: E402
from data_prep.velocity_models import generate_model  # noqa: E402
from data_prep.velocity_models.water_layer import WaterLayerConfig, add_water  # noqa: E402

SEED = 7
GRID_SPACING_M = 10.0
FAMILIES = ("flatfault-b", "curvefault-b", "salt", "structural-salt")
OUTPUT = Path(__file__).resolve().parent / "water.png"


def main(output: Path = OUTPUT) -> Path:
    water = WaterLayerConfig(probability=1.0)
    figure, axes = plt.subplots(3, len(FAMILIES), figsize=(11, 7.6), constrained_layout=True)
    for column, family in enumerate(FAMILIES):
        velocity = generate_model(family, SEED, column).velocity_mps
        depth_cells, x_cells = velocity.shape
        cells = water.draw(SEED, column, velocity.shape, GRID_SPACING_M)
        marine = add_water(velocity, cells, water.velocity_mps)
        depths = sorted({int(cells.min() * GRID_SPACING_M), int(cells.max() * GRID_SPACING_M)})
        extent = (0, x_cells * GRID_SPACING_M / 1000, depth_cells * GRID_SPACING_M / 1000, 0)
        for row, (model, title) in enumerate(
            (
                (velocity, f"{family} (index {column})"),
                (marine, f"under {'-'.join(map(str, depths))} m of water"),
            )
        ):
            image = axes[row, column].imshow(
                model, cmap="viridis", vmin=1500, vmax=4500, extent=extent, interpolation="nearest"
            )
            axes[row, column].set_title(title, fontsize=9)
        axes[2, column].imshow(
            edge_map(marine, EdgeConfig()), cmap="gray_r", extent=extent, interpolation="nearest"
        )
        axes[2, column].set_title("edge labels under water", fontsize=8)
    for axis in axes.flat:
        axis.tick_params(labelsize=7)
    for row in range(3):
        axes[row, 0].set_ylabel("depth (km)", fontsize=8)
    for axis in axes[-1]:
        axis.set_xlabel("x (km)", fontsize=8)
    figure.colorbar(image, ax=axes[:2].ravel().tolist(), shrink=0.6, label="velocity (m/s)")
    figure.savefig(output, dpi=90)
    plt.close(figure)
    return output


if __name__ == "__main__":
    print(main())
