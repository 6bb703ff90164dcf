"""Reporting a line's refinement: its numbers (``summarise``), one terminal line, and its figure.

Part of ``pipeline.refine``, used by ``pipeline.infer``'s outputs: ``summarise`` reads the per-window
records (``REFINE_FIELDS``) into the line's numbers for ``summary.json``, ``summary_line`` says what was
measured (the data misfit; the velocity only with a truth), ``plot_refinement`` draws ``refinement.png``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Line-wide refinement numbers: windows refined, windows whose **data misfit** fell (the only thing a
    refinement measures without a truth), median misfit before/after, the estimated wavelet's polarity, and
    median velocity MAE before/after when a truth was given."""

    def finite(key):
        values = np.asarray([row.get(key, np.nan) for row in rows], dtype=np.float64)
        return values[np.isfinite(values)]

    before, after = finite("refine_misfit_before"), finite("refine_misfit_after")
    result: dict[str, float] = {"num_refined": float(before.size)}
    if before.size:
        result["num_misfit_reduced"] = float(
            sum(
                1
                for row in rows
                if np.isfinite(row.get("refine_misfit_after", np.nan))
                and row["refine_misfit_after"] < row["refine_misfit_before"]
            )
        )
        result["num_warnings"] = float(sum(1 for row in rows if row.get("refine_note")))
        result["misfit_before_median"] = float(np.median(before))
        result["misfit_after_median"] = float(np.median(after))
        times = finite("refine_time_s")
        if times.size:
            result["time_per_window_s"] = float(np.mean(times))
    polarity = finite("refine_wavelet_polarity")
    if polarity.size:
        result["wavelet_polarity_median"] = float(np.median(polarity))
        result["wavelet_lag_median_s"] = float(np.median(finite("refine_wavelet_lag_s")))
    mae_before, mae_after = finite("refine_velocity_mae_before_mps"), finite("refine_velocity_mae_after_mps")
    if mae_before.size:
        result["velocity_mae_before_median_mps"] = float(np.median(mae_before))
        result["velocity_mae_after_median_mps"] = float(np.median(mae_after))
    return result


def summary_line(summary: Mapping[str, float]) -> str:
    """One line for the terminal: what was measured (the data misfit), and the velocity only with a truth."""
    if not summary.get("num_refined"):
        return "Refinement: no window refined."
    if summary.get("mode") == "line":
        text = (
            "Refinement (whole line, the shots of {num_refined:.0f} windows): data misfit "
            "{misfit_before_median:.3g} -> {misfit_after_median:.3g} in {time_s:.0f} s"
        ).format(**summary)
        if summary.get("warning"):
            text += f" (warning: {summary['warning']})"
        if np.isfinite(summary.get("wavelet_polarity_median", np.nan)):
            text += "; estimated wavelet polarity {:+.0f}, lag {:.0f} ms".format(
                summary["wavelet_polarity_median"], 1e3 * summary["wavelet_lag_median_s"]
            )
        return text
    text = (
        "Refinement: data misfit median {misfit_before_median:.3g} -> {misfit_after_median:.3g}, lower in "
        "{num_misfit_reduced:.0f} of {num_refined:.0f} windows"
    ).format(**summary)
    if summary.get("num_warnings"):
        text += " ({num_warnings:.0f} with a warning: see refine_note in qc.csv)".format(**summary)
    if "wavelet_polarity_median" in summary:
        text += "; estimated wavelet polarity {:+.0f}, lag {:.0f} ms".format(
            summary["wavelet_polarity_median"], 1e3 * summary["wavelet_lag_median_s"]
        )
    return text


def plot_refinement(
    section_path,
    path,
    rows: Sequence[Mapping[str, Any]],
    max_columns: int = 2000,
    summary: Mapping[str, Any] | None = None,
) -> None:
    """Network section, refined section, their difference, and the data misfit per window before/after (the
    line's, from ``summary``, when the line was refined as one model), saved as PNG at ``path``."""
    refinement_figure(section_path, rows, max_columns, summary).savefig(path, dpi=100, format="png")


def refinement_figure(
    section_path,
    rows: Sequence[Mapping[str, Any]],
    max_columns: int = 2000,
    summary: Mapping[str, Any] | None = None,
):
    """The ``matplotlib.figure.Figure`` that ``plot_refinement`` saves: four panels over one x axis."""
    import h5py

    # A Figure of its own, not pyplot: switching pyplot's backend would turn off a notebook's inline plots.
    from matplotlib.figure import Figure

    with h5py.File(section_path, "r") as h5:
        x_m, depth_m = h5["x_m"][()], h5["depth_m"][()]
        step = max(1, int(np.ceil(len(x_m) / max_columns)))
        network = h5["velocity_mps"][:, ::step]
        refined = h5["refined_velocity_mps"][:, ::step]
    spacing = float(depth_m[1] - depth_m[0]) if len(depth_m) > 1 else 1.0
    extent = (x_m[0], x_m[-1], depth_m[-1] + spacing / 2, depth_m[0] - spacing / 2)
    figure = Figure(figsize=(10, 10), layout="constrained")
    # One column of panels sharing x and one narrow column for their colour bars (the misfit panel's slot
    # stays empty), so every panel has the same width and the x axes line up.
    grid = figure.add_gridspec(4, 2, width_ratios=(40, 1))
    axes = [figure.add_subplot(grid[0, 0])]
    axes += [figure.add_subplot(grid[row, 0], sharex=axes[0]) for row in (1, 2, 3)]
    bars = [figure.add_subplot(grid[row, 1]) for row in (0, 1, 2)]
    low = float(np.nanmin([np.nanmin(network), np.nanmin(refined)]))
    high = float(np.nanmax([np.nanmax(network), np.nanmax(refined)]))
    for axis, bar, image, title in (
        (axes[0], bars[0], network, "network"),
        (axes[1], bars[1], refined, "refined (FWI from the network)"),
    ):
        shown = axis.imshow(image, aspect="auto", cmap="viridis", extent=extent, vmin=low, vmax=high)
        figure.colorbar(shown, cax=bar, label="velocity (m/s)")
        axis.set_title(title)
        axis.set_ylabel("depth (m)")
    change = refined - network
    limit = float(np.nanmax(np.abs(change))) if np.isfinite(change).any() else 1.0
    limit = limit if limit > 0 else 1.0
    shown = axes[2].imshow(change, aspect="auto", cmap="RdBu_r", extent=extent, vmin=-limit, vmax=limit)
    figure.colorbar(shown, cax=bars[2], label="m/s")
    axes[2].set_title("refined - network")
    axes[2].set_ylabel("depth (m)")
    for axis in axes[:3]:
        axis.tick_params(labelbottom=False)
    centre = np.asarray([(row["x_start_m"] + row["x_end_m"]) / 2 for row in rows])
    for key, label, style in (
        ("refine_misfit_before", "network", "o-"),
        ("refine_misfit_after", "refined", "s-"),
    ):
        axes[3].plot(centre, [row.get(key, np.nan) for row in rows], style, markersize=3, label=label)
    if summary is not None and summary.get("mode") == "line":
        for key, label, style in (
            ("misfit_before_median", "network, whole line", "--"),
            ("misfit_after_median", "refined, whole line", "-"),
        ):
            axes[3].axhline(summary[key], linestyle=style, color="k" if "net" in label else "C1", label=label)
    axes[3].set_ylabel("data misfit")
    axes[3].set_xlabel("along-line position (m)")
    axes[3].legend(loc="upper right", fontsize=8)
    return figure
