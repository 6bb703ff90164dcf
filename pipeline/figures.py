"""Figures of predicted velocity and edge maps: the pictures training, evaluation and comparison log.

Pipeline position: ``pipeline.tracking`` logs ``prediction_grid`` per epoch for fixed validation samples
(an MLflow image series), ``pipeline.evaluate`` saves the worst-k figure with it, and ``pipeline.compare``
draws every model's prediction of the same test samples with ``comparison_grid``. Everything is drawn with
matplotlib's non-interactive Agg canvas and returned as an RGB ``uint8`` array (what ``mlflow.log_image``
takes) or written to a PNG.

Maps are ``(depth, x)`` in m/s (velocity) or probabilities in [0, 1] (edges); axes are labelled in metres
from the grid spacing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _figure(rows: int, columns: int, width_per_column: float = 2.3, height_per_row: float = 2.1):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(columns * width_per_column, rows * height_per_row + 0.5), dpi=80)
    axes = figure.subplots(rows, columns, squeeze=False)
    # Fixed margins: tight_layout measures every tick label and takes seconds per figure on a busy CPU.
    figure.subplots_adjust(
        left=0.09,
        right=0.97,
        bottom=0.1 / max(1, rows) + 0.03,
        top=1 - 0.8 / (rows * height_per_row + 0.5),
        wspace=0.25,
        hspace=0.3,
    )
    return figure, axes


def _label_axes(axes, spacing_m: float, shape: Sequence[int]) -> None:
    """Ticks in metres on the left column and the bottom row only (three each), none inside the grid."""
    rows, columns = axes.shape
    depth, width = shape
    spacing = spacing_m if np.isfinite(spacing_m) and spacing_m > 0 else 1.0
    for row in range(rows):
        for column in range(columns):
            axis = axes[row, column]
            axis.tick_params(labelsize=6, length=2)
            if column == 0:
                axis.set_yticks([0, depth * spacing / 2, depth * spacing])
            else:
                axis.set_yticks([])
            if row == rows - 1:
                axis.set_xticks([0, width * spacing / 2, width * spacing])
            else:
                axis.set_xticks([])


def figure_to_array(figure) -> np.ndarray:
    """Renders a matplotlib figure to an ``(height, width, 3)`` uint8 RGB array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _extent(shape: Sequence[int], spacing_m: float) -> list[float]:
    depth, width = shape
    spacing = spacing_m if np.isfinite(spacing_m) and spacing_m > 0 else 1.0
    return [0.0, width * spacing, depth * spacing, 0.0]


def prediction_grid(
    true_velocity_mps: np.ndarray,
    predicted_velocity_mps: np.ndarray,
    true_edges: np.ndarray | None = None,
    predicted_edges: np.ndarray | None = None,
    velocity_range_mps: tuple[float, float] = (1500.0, 4500.0),
    grid_spacing_m: float = 10.0,
    titles: Sequence[str] | None = None,
    suptitle: str | None = None,
) -> np.ndarray:
    """One row per sample: true velocity, predicted velocity, error (m/s) and, if given, true/predicted edges.

    Args:
        true_velocity_mps, predicted_velocity_mps: ``(samples, depth, x)`` m/s.
        true_edges, predicted_edges: ``(samples, depth, x)`` 0/1 labels and probabilities, or None.
        velocity_range_mps: colour scale of the velocity maps.
        grid_spacing_m: cell size, for the axes in metres.
        titles: one label per row (e.g. sample index and its SSIM).
        suptitle: a title over the figure (e.g. the epoch).

    Returns:
        RGB uint8 image ``(height, width, 3)``.
    """
    samples = len(true_velocity_mps)
    with_edges = true_edges is not None and predicted_edges is not None
    columns = 5 if with_edges else 3
    figure, axes = _figure(samples, columns)
    extent = _extent(true_velocity_mps.shape[1:], grid_spacing_m)
    low, high = velocity_range_mps
    error_limit = max(50.0, float(np.percentile(np.abs(predicted_velocity_mps - true_velocity_mps), 99)))
    for row in range(samples):
        panels = [
            ("true velocity (m/s)", true_velocity_mps[row], "viridis", low, high),
            ("predicted velocity (m/s)", predicted_velocity_mps[row], "viridis", low, high),
            (
                "error (m/s)",
                predicted_velocity_mps[row] - true_velocity_mps[row],
                "RdBu_r",
                -error_limit,
                error_limit,
            ),
        ]
        if with_edges:
            panels += [
                ("true edges", true_edges[row], "gray_r", 0.0, 1.0),
                ("predicted edges", predicted_edges[row], "gray_r", 0.0, 1.0),
            ]
        for column, (name, values, colormap, vmin, vmax) in enumerate(panels):
            axis = axes[row, column]
            axis.imshow(values, cmap=colormap, vmin=vmin, vmax=vmax, extent=extent, aspect="auto")
            if row == 0:
                axis.set_title(name + (f"\n[{vmin:.0f}, {vmax:.0f}]" if column in (1, 2) else ""), fontsize=7)
            if column == 0:
                axis.set_ylabel((titles[row] + "\n" if titles else "") + "depth (m)", fontsize=7)
            if row == samples - 1:
                axis.set_xlabel("x (m)", fontsize=7)
    _label_axes(axes, grid_spacing_m, true_velocity_mps.shape[1:])
    if suptitle:
        figure.suptitle(suptitle, fontsize=9)
    return figure_to_array(figure)


def comparison_grid(
    true_velocity_mps: np.ndarray,
    predictions_mps: Mapping[str, np.ndarray],
    true_edges: np.ndarray | None = None,
    predicted_edges: Mapping[str, np.ndarray | None] | None = None,
    velocity_range_mps: tuple[float, float] = (1500.0, 4500.0),
    grid_spacing_m: float = 10.0,
) -> np.ndarray:
    """The same samples predicted by several models: truth, then one column per model; edges below each row.

    Args:
        true_velocity_mps: ``(samples, depth, x)`` m/s.
        predictions_mps: model name -> ``(samples, depth, x)`` m/s.
        true_edges: ``(samples, depth, x)`` labels, or None.
        predicted_edges: model name -> edge probabilities (or None for models without an edge head).
    """
    names = list(predictions_mps)
    samples = len(true_velocity_mps)
    with_edges = true_edges is not None
    rows = samples * (2 if with_edges else 1)
    figure, axes = _figure(rows, 1 + len(names))
    extent = _extent(true_velocity_mps.shape[1:], grid_spacing_m)
    low, high = velocity_range_mps
    for sample in range(samples):
        row = sample * (2 if with_edges else 1)
        columns = [("truth", true_velocity_mps[sample])] + [
            (name, predictions_mps[name][sample]) for name in names
        ]
        for column, (name, values) in enumerate(columns):
            axis = axes[row, column]
            axis.imshow(values, cmap="viridis", vmin=low, vmax=high, extent=extent, aspect="auto")
            axis.set_title(name if sample == 0 else "", fontsize=8)
        axes[row, 0].set_ylabel(f"sample {sample}\nvelocity", fontsize=7)
        if with_edges:
            edges = [true_edges[sample]] + [
                (predicted_edges or {}).get(name)[sample]
                if (predicted_edges or {}).get(name) is not None
                else None
                for name in names
            ]
            for column, values in enumerate(edges):
                axis = axes[row + 1, column]
                if values is None:
                    axis.text(
                        0.5,
                        0.5,
                        "no edge head",
                        ha="center",
                        va="center",
                        fontsize=7,
                        transform=axis.transAxes,
                    )
                    continue
                axis.imshow(values, cmap="gray_r", vmin=0, vmax=1, extent=extent, aspect="auto")
            axes[row + 1, 0].set_ylabel("edges", fontsize=7)
    _label_axes(axes, grid_spacing_m, true_velocity_mps.shape[1:])
    figure.suptitle(f"velocity colour scale {low:.0f}-{high:.0f} m/s", fontsize=8)
    return figure_to_array(figure)


def bar_chart(values: Mapping[str, float], title: str, ylabel: str) -> np.ndarray:
    """A labelled bar chart of one metric per model."""
    figure, axes = _figure(1, 1, width_per_column=max(3.5, 0.9 * len(values)), height_per_row=2.8)
    axis = axes[0, 0]
    names = list(values)
    heights = [values[name] for name in names]
    bars = axis.bar(range(len(names)), heights, color="tab:blue")
    axis.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
    axis.set_title(title, fontsize=9)
    axis.set_ylabel(ylabel, fontsize=8)
    axis.tick_params(labelsize=7)
    for bar, height in zip(bars, heights, strict=True):
        axis.annotate(
            f"{height:.4g}", (bar.get_x() + bar.get_width() / 2, height), ha="center", va="bottom", fontsize=6
        )
    figure.subplots_adjust(bottom=0.25, top=0.88, left=0.15)
    return figure_to_array(figure)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Writes an RGB uint8 array to a PNG file (atomically)."""
    import matplotlib.image

    from core.atomic import atomic_output

    path = Path(path)
    with atomic_output(path) as temporary:
        matplotlib.image.imsave(temporary, image, format="png")
    return path


__all__ = ["bar_chart", "comparison_grid", "figure_to_array", "prediction_grid", "save_png"]
