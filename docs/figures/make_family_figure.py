"""Draws docs/figures/families.png: one model of every velocity-model family and its edge labels.

Run from anywhere: ``python docs/figures/make_family_figure.py`` (writes next to this script).
The models are ``generate_model(family, seed=7, index=0)`` on the default 70 x 70 grid of 10 m cells, so
the picture changes only when a family recipe does.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on CI machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from data_prep.edges import EdgeConfig, edge_map  # noqa: E402
from data_prep.velocity_models import FAMILY_NAMES, generate_model  # noqa: E402

SEED = 7
GRID_SPACING_M = 10.0  # for the axis labels only: OpenFWI's cell size
OUTPUT = Path(__file__).resolve().parent / "families.png"


def main(output: Path = OUTPUT) -> Path:
    columns = 5
    rows = 2 * int(np.ceil(len(FAMILY_NAMES) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(13, 2.55 * rows), constrained_layout=True)
    for number, family in enumerate(FAMILY_NAMES):
        model = generate_model(family, SEED, 0)
        depth_cells, x_cells = model.grid_shape
        extent = (0, x_cells * GRID_SPACING_M / 1000, depth_cells * GRID_SPACING_M / 1000, 0)
        row, column = 2 * (number // columns), number % columns
        image = axes[row, column].imshow(
            model.velocity_mps, cmap="viridis", vmin=1500, vmax=4500, extent=extent, interpolation="nearest"
        )
        axes[row, column].set_title(
            f"{family} ({model.num_layers} layers, {len(model.faults)} faults)", fontsize=9
        )
        edges = edge_map(model.velocity_mps, EdgeConfig())
        axes[row + 1, column].imshow(edges, cmap="gray_r", extent=extent, interpolation="nearest")
        axes[row + 1, column].set_title("edge labels (gradient, 100 m/s)", fontsize=8)
    for number in range(len(FAMILY_NAMES), rows // 2 * columns):  # the last row's empty places
        row, column = 2 * (number // columns), number % columns
        axes[row, column].axis("off")
        axes[row + 1, column].axis("off")
    for axis in axes.flat:
        axis.tick_params(labelsize=7)
    for row in range(rows):
        axes[row, 0].set_ylabel("depth (km)", fontsize=8)
    for axis in axes[-1]:
        axis.set_xlabel("x (km)", fontsize=8)
    for column in range(len(FAMILY_NAMES) % columns or columns, columns):  # x labels under the last full row
        axes[-3, column].set_xlabel("x (km)", fontsize=8)
    figure.colorbar(image, ax=axes[0::2].ravel().tolist(), shrink=0.6, label="velocity (m/s)")
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return output


if __name__ == "__main__":
    print(main())
