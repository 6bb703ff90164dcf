"""Realistic sections: trained models scored on windows of velocity models nobody here drew.

Usage (from the repository root; the sections are files you have, none ships with the repository)::

    python -m benchmarks.realistic \\
        --section marmousi=marmousi.npy:4:12.5 --section overthrust=overthrust.npy:20 \\
        --bundle "FlatVel-A model=runs/flat/bundle" --bundle "general=runs/general/bundle" \\
        --baseline-data data/default-mix12-5f33c385-400-seed0.h5 --count 100 --top 0 2300 --work-dir runs/realistic

A ``--section NAME=FILE:DZ[:DX]`` is a 2-D velocity model in m/s (``.npy`` ``(depth, x)`` or SEG-Y with one
trace per x) sampled every ``DZ`` m in depth and ``DX`` m across (default ``DZ``). For every section and every
geometry among the bundles', ``--count`` windows of the bundle's grid are cut at random positions (the top of
each drawn from ``--top``, m) by the ``section`` family (``data_prep.velocity_models.section``: resampled to
the grid averaged in slowness), simulated by ``data_prep.synthesize`` in the bundle's training geometry with
its 15 Hz Ricker and ingested (``data_prep.ingest``), the path a user takes with their own models. Each
bundle is then scored on every window of its geometry:

* the network's MAE (m/s) and SSIM (OpenFWI's, on 1500-4500 m/s);
* the **1-D baseline** of the benchmarks: the per-depth mean velocity of ``--baseline-data``'s training samples
  (the general mix), and ``skill = 1 - MAE / MAE(baseline)``;
* the **true 1-D average**: each window's own rows averaged across, the best a model without lateral structure
  can do (an oracle; what issue 21's table calls "the true 1-D average"), and the network's skill over it;
* the share of cells faster than the model's output range reaches (``velocity_max_mps`` of its statistics:
  OpenFWI's 4500 m/s unless trained with ``data.default.velocity_range_mps``), which it cannot predict.

Data is kept in ``--work-dir`` (one file per section, spacings, window tops, grid and count) and reused; the table goes to the ``realistic``
section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import machine_description, markdown_table, update_section

SECTION = "realistic"


def parse_section(text: str) -> tuple[str, Path, float, float]:
    """``NAME=FILE:DZ[:DX]`` -> ``(name, path, dz, dx)``."""
    name, separator, rest = text.partition("=")
    parts, spacings = rest.split(":"), []
    while len(parts) > 1 and len(spacings) < 2:  # the trailing numbers; a path may hold ':' itself
        try:
            spacings.insert(0, float(parts[-1]))
        except ValueError:
            break
        parts.pop()
    if not (separator and name and spacings and parts[0]):
        raise argparse.ArgumentTypeError(
            f"--section takes NAME=FILE:DZ or NAME=FILE:DZ:DX (spacings in m). Received: {text!r}"
        )
    if any(value <= 0 for value in spacings):
        raise argparse.ArgumentTypeError(f"--section spacings must be positive metres. Received: {text!r}")
    return name, Path(":".join(parts)), spacings[0], spacings[-1]


def parse_bundle(text: str) -> tuple[str, Path]:
    label, separator, path = text.partition("=")
    if not (separator and label and path):
        raise argparse.ArgumentTypeError(f"--bundle takes LABEL=DIR. Received: {text!r}")
    return label, Path(path)


def section_dataset(
    section: tuple[str, Path, float, float],
    setup: Any,
    count: int,
    top_m: tuple[float, float],
    work_dir: Path,
) -> Path:
    """``count`` windows of ``section`` simulated in ``setup``'s geometry (``pipeline.qc.engine_setup``) and
    ingested; reused when already there."""
    from data_prep.ingest import IngestConfig, ingest
    from data_prep.synthesize import SynthesizeConfig, synthesize

    name, path, dz, dx = section
    depth_cells, x_cells = setup.geometry.grid_shape
    # What changes the windows is in the name (the file by its content): a cached file is reused only for them.
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    target = work_dir / (
        f"{name}-{digest}-{dz:g}x{dx:g}m-top{top_m[0]:g}-{top_m[1]:g}-{depth_cells}x{x_cells}-{count}.h5"
    )
    if target.is_file():
        return target
    folder = target.with_suffix("")
    overrides = {
        "prior_path": str(path.resolve()),
        "prior_spacing_m": dz,
        "prior_x_spacing_m": dx,
        "grid_spacing_m": setup.geometry.grid_spacing_m,
        "section_top_m": list(top_m),
    }
    config = SynthesizeConfig(
        family="section",
        count=count,
        batch_size=50,  # one engine call per 50 windows, as the default dataset's synthesis
        geometry=setup.geometry,
        engine=setup.config,
        family_overrides=overrides,
    )
    print(f"{name}: simulating {count} windows of {depth_cells} x {x_cells} cells ...", flush=True)
    synthesize(config, folder, progress=False)
    ingest([folder], target, IngestConfig(progress=False), overwrite=True)
    return target


def score(bundle: Any, dataset_path: Path, baseline_mps: np.ndarray) -> dict[str, float]:
    """A bundle's scores on every window of ``dataset_path`` (see the module docstring), as predicted and
    mirror-averaged (``mirror_*``)."""
    from benchmarks.generalisation import bundle_predictions, mirror_scores, velocity_scores
    from data_prep import schema

    with schema.open_dataset(dataset_path) as h5:
        count = int(h5[schema.VELOCITY].shape[0])
    predictions = bundle_predictions(bundle, dataset_path, np.arange(count))
    true_mps, edges = predictions.true_mps, predictions.edges
    scores = {
        **velocity_scores(true_mps, predictions.plain, baseline_mps, edges),
        **mirror_scores(predictions, baseline_mps),
    }
    # The true 1-D average scored the same way: each window's rows averaged across.
    rows_mean = np.broadcast_to(true_mps.mean(axis=2, keepdims=True), true_mps.shape)
    oracle = velocity_scores(true_mps, rows_mean, baseline_mps, edges)
    oracle_mae = oracle["mae_mps"]
    return {
        **scores,
        "windows": count,
        "oracle_mae_mps": oracle_mae,
        "oracle_ssim": oracle["ssim"],
        "oracle_skill": 1.0 - scores["mae_mps"] / oracle_mae if oracle_mae > 0 else float("nan"),
        "faster_than_model_percent": float(100.0 * np.mean(true_mps > bundle.stats.velocity_max_mps)),
    }


def report(rows: Sequence[dict[str, Any]], settings: dict[str, Any]) -> str:
    header = [
        "section",
        "model",
        "windows",
        "MAE m/s",
        "SSIM",
        "mix 1-D mean: MAE / SSIM",
        "skill",
        "true 1-D average: MAE / SSIM",
        "skill over it",
        "bias m/s",
        "cells faster than the model's range",
        "mirror-averaged: MAE / SSIM",
    ]
    table = [
        [
            row["section"],
            row["model"],
            row["windows"],
            f"{row['mae_mps']:.0f}",
            f"{row['ssim']:.3f}",
            f"{row['baseline_mae_mps']:.0f} / {row['baseline_ssim']:.3f}",
            f"{row['skill']:+.2f}",
            f"{row['oracle_mae_mps']:.0f} / {row['oracle_ssim']:.3f}",
            f"{row['oracle_skill']:+.2f}",
            f"{row['bias_mps']:+.0f}",
            f"{row['faster_than_model_percent']:.1f} %",
            f"{row['mirror_mae_mps']:.0f} / {row['mirror_ssim']:.3f}" if "mirror_mae_mps" in row else "–",
        ]
        for row in rows
    ]
    return "\n".join(
        [
            "## Realistic sections: windows of velocity models nobody here drew"
            + (f", {settings['title']}" if settings.get("title") else ""),
            "",
            f"`{settings['command']}` — {settings['machine']}.",
            "",
            "Each window simulated in the model's own training geometry and engine (15 Hz Ricker), scored on "
            "every window; skill = 1 − MAE / MAE(baseline). The mix 1-D mean is the per-depth mean of "
            "`--baseline-data`'s training samples; the true 1-D average is each window's own rows averaged "
            "across (an oracle without lateral structure). Mirror-averaged: each window also predicted mirrored "
            "left to right and the two sections averaged (`pipeline.infer --set mirror_average=true`). Sections: "
            + "; ".join(settings["sections"])
            + ".",
            "",
            markdown_table(header, table),
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.realistic", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--section", type=parse_section, action="append", required=True, metavar="NAME=FILE:DZ[:DX]"
    )
    parser.add_argument("--bundle", type=parse_bundle, action="append", required=True, metavar="LABEL=DIR")
    parser.add_argument(
        "--baseline-data",
        type=Path,
        required=True,
        help="the training mix whose per-depth mean is the 1-D baseline",
    )
    parser.add_argument("--count", type=int, default=100, help="windows per section and geometry")
    parser.add_argument(
        "--top", type=float, nargs=2, default=(0.0, 0.0), metavar=("LOW", "HIGH"), help="window tops, m"
    )
    parser.add_argument("--work-dir", type=Path, default=Path("runs/realistic"))
    parser.add_argument("--section-name", default=SECTION, help="the docs/benchmarks.md section to write")
    parser.add_argument(
        "--title", default="", help="words added to the section's heading (what sets it apart)"
    )
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/ alone")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from benchmarks.generalisation import depth_baseline_mps
    from data_prep import schema
    from pipeline.bundle import load_bundle
    from pipeline.feeding import read_sample_families
    from pipeline.qc import ModelLayout, engine_setup

    for name, path, _, _ in args.section:
        if not path.is_file():
            raise SystemExit(
                f"--section {name}: {path} does not exist. Give the path of a .npy or SEG-Y model."
            )
    work_dir = args.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    with schema.open_dataset(args.baseline_data) as h5:
        families = sorted(set(read_sample_families(h5).tolist()))
    baseline = depth_baseline_mps(args.baseline_data, families)
    rows = []
    for label, bundle_dir in args.bundle:
        bundle = load_bundle(bundle_dir)
        setup = engine_setup(ModelLayout.from_geometry(bundle.geometry), bundle.engine_settings)
        for section in args.section:
            dataset = section_dataset(section, setup, args.count, tuple(args.top), work_dir)
            rows.append({"section": section[0], "model": label, **score(bundle, dataset, baseline)})
            print(
                f"{section[0]:>12} | {label}: MAE {rows[-1]['mae_mps']:.0f} m/s, SSIM {rows[-1]['ssim']:.3f}, "
                f"skill {rows[-1]['skill']:+.2f} (true 1-D average {rows[-1]['oracle_mae_mps']:.0f} m/s)",
                flush=True,
            )
    settings = {
        "command": "python -m benchmarks.realistic "
        + shlex.join(a for a in (argv if argv is not None else sys.argv[1:]) if a != "--no-write"),
        "machine": machine_description(),
        "sections": [f"{name} ({path.name}, {dz:g} × {dx:g} m)" for name, path, dz, dx in args.section],
        "title": args.title,
    }
    markdown = report(rows, settings)
    print(markdown)
    if not args.no_write:
        print(f"wrote {update_section(args.section_name, markdown)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
