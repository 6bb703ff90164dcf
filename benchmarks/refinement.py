"""Refinement benchmark: the network alone, FWI refinement from the network, and FWI from a smooth start.

Usage (from the repository root)::

    python -m benchmarks.refinement                       # trains a small U-Net, writes docs/benchmarks.md
    python -m benchmarks.refinement --windows 2 --iterations 3 --train-time-s 60 --no-write   # a quick look
    python -m benchmarks.refinement --bundle DIR          # an existing bundle for the same geometry

Setup (all cached in ``--work``, so an interrupted run resumes where it stopped):

1. **Geometry**: ``configs/data/small.yaml`` (32 x 48 cells of 10 m, 3 sources and 24 receivers 10 m below the
   surface, 400 samples of 1 ms, 15 Hz Ricker), the engine's default settings (4th order, 20-cell CPML): small
   enough for hundreds of engine gradients on a shared 2-core CPU.
2. **Network**: ``--train-samples`` CurveVel-A models are synthesized (``data_prep.synthesize``) and ingested
   (``data_prep.ingest``), and a small dual U-Net is trained by ``pipeline.train`` for ``--train-time-s``
   seconds of wall clock (no MLflow), best validation epoch kept.
3. **Test windows**: ``--windows`` models of each family in ``--families`` (default: CurveVel-A, the network's
   own family, with another seed than its training set; CurveFault-B and salt, families it never saw), their
   gathers simulated by the engine with the training data's settings (the bundle's ``engine_settings``).
4. **Per window**: the network's prediction; ``pipeline.refine.refine`` from it with ``--iterations`` engine
   gradients; the same refinement (same settings, same number of gradients) from a smooth starting model, the
   least-squares linear ``v(z)`` fitted to the true model's lateral average (a best-case 1D-gradient start: it
   uses the truth, which real FWI cannot); velocity MAE (m/s), SSIM (OpenFWI's: [0, 1] over the bounds,
   11 x 11 Gaussian window) and full-band data misfit (``pipeline.qc``'s: ``||d - a s|| / ||d||`` with the
   least-squares source scale), and wall time per window (refinement only; the prediction's time is listed
   separately).

Results are appended to ``--work/results.jsonl`` as each window finishes; the table is rebuilt from that
file. The goal of issue 11: refinement from the network beats both the network alone and FWI from the smooth
start at equal iterations.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.report import machine_description, markdown_table, update_section

REPO_ROOT = Path(__file__).resolve().parent.parent
TRAIN_FAMILY = "curvevel-a"
FAMILIES = ("curvevel-a", "curvefault-b", "salt")
METHODS = ("network", "refined", "smooth_fwi")
SMOOTH_LABELS = {
    "prior": "the training family's linear v(z) trend (the straight line through the mean depth profile of 200 "
    "training-recipe models: no knowledge of the test model)",
    "truth": "the least-squares linear v(z) of the true model's lateral average (best case for the baseline: it "
    "uses the truth)",
}
METHOD_LABELS = {
    "network": "network alone",
    "refined": "FWI from the network",
    "smooth_fwi": "FWI from a smooth 1D start",
}
SMALL_UNET = {
    "front_end_filters": [8, 16],
    "front_end_kernel_sizes": [7, 3],
    "encoder_filters": [16, 32, 64],
    "blocks_per_level": 1,
}


def small_geometry():
    from core.config import load_config
    from data_prep.synthesize import SynthesizeConfig

    return load_config(SynthesizeConfig, files=[REPO_ROOT / "configs" / "data" / "small.yaml"]).geometry


def build_dataset(work: Path, count: int, seed: int = 0) -> Path:
    """Synthesizes and ingests ``count`` CurveVel-A models on the small geometry (cached)."""
    from data_prep.forward import EngineConfig
    from data_prep.ingest import IngestConfig, ingest
    from data_prep.synthesize import SynthesizeConfig, synthesize

    path = work / f"{TRAIN_FAMILY}-{count}-seed{seed}.h5"
    if path.is_file():
        return path
    segy = work / f"{TRAIN_FAMILY}-{count}-seed{seed}-segy"
    started = time.monotonic()
    print(f"synthesizing {count} {TRAIN_FAMILY} models ...", flush=True)
    config = SynthesizeConfig(
        family=TRAIN_FAMILY,
        count=count,
        seed=seed,
        chunk_size=250,
        batch_size=16,
        geometry=small_geometry(),
        engine=EngineConfig(),
    )
    synthesize(config, segy, progress=False)
    ingest([segy], path, IngestConfig(progress=False))
    print(f"{path}: {time.monotonic() - started:.0f} s", flush=True)
    return path


def train_network(work: Path, dataset: Path, budget_s: float) -> tuple[Path, dict]:
    """Trains the small U-Net for ``budget_s`` seconds (cached: ``work/network.json``)."""
    record_path = work / "network.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        return Path(record["bundle"]), record
    from core.config import from_dict
    from pipeline.train import TrainConfig, train

    config = from_dict(
        TrainConfig,
        {
            "model": "unet",
            "model_options": SMALL_UNET,
            "batch_size": 16,
            "epochs": 200,
            "max_train_time_s": budget_s,
            "optimizer": {"learning_rate": 2e-3, "warmup_epochs": 0.5},
            "data": {"path": str(dataset)},
            "tracking": {"enabled": False},
            "runtime": {"output_dir": str(work / "outputs"), "checkpoint_dir": str(work / "checkpoints")},
        },
    )
    started = time.monotonic()
    result = train(config)
    record = {
        "bundle": str(result.bundle_dir),
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "train_wall_s": time.monotonic() - started,
        "test_metrics": result.test_metrics,
    }
    record_path.write_text(json.dumps(record, indent=1, default=float) + "\n")
    return result.bundle_dir, record


def linear_profile(profile: np.ndarray, width: int) -> np.ndarray:
    """The least-squares straight line ``v(z)`` through a depth profile, repeated over ``width`` columns."""
    depth = np.arange(len(profile), dtype=np.float64)
    slope, intercept = np.polyfit(depth, profile, 1)
    return np.repeat((intercept + slope * depth)[:, None], width, axis=1).astype(np.float32)


def prior_start(grid_shape: tuple[int, int], count: int = 200) -> np.ndarray:
    """The training family's linear ``v(z)`` trend: the straight line through the mean depth profile of
    ``count`` models of the training recipe (what the network knows too, and nothing about the test model)."""
    from data_prep.velocity_models import generate_model

    profiles = [
        generate_model(TRAIN_FAMILY, 0, i, grid_shape).velocity_mps.mean(axis=1) for i in range(count)
    ]
    return linear_profile(np.mean(profiles, axis=0), grid_shape[1])


def scores(velocity: np.ndarray, truth: np.ndarray, bounds: tuple[float, float]) -> dict[str, float]:
    from models.metrics import ssim_per_sample

    span = bounds[1] - bounds[0]
    unit_true = (np.asarray(truth, np.float64) - bounds[0]) / span
    unit_pred = (np.clip(np.asarray(velocity, np.float64), *bounds) - bounds[0]) / span
    return {
        "mae_mps": float(np.mean(np.abs(np.asarray(velocity, np.float64) - truth))),
        "ssim": float(ssim_per_sample(unit_true, unit_pred)),
    }


def run(args: argparse.Namespace) -> None:
    from data_prep.velocity_models import generate_model
    from pipeline.bundle import load_bundle
    from pipeline.qc import engine_setup
    from pipeline.refine import RefineConfig, refine
    from pipeline.windows import ModelLayout

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.bundle:
        bundle_path, network = Path(args.bundle), {"bundle": args.bundle}
    else:
        dataset = build_dataset(work, args.train_samples)
        bundle_path, network = train_network(work, dataset, args.train_time_s)
    if args.prepare_only:
        return
    bundle = load_bundle(bundle_path)
    layout = ModelLayout.from_geometry(bundle.geometry)
    setup = engine_setup(layout, bundle.engine_settings)
    bounds = (float(bundle.stats.velocity_min_mps), float(bundle.stats.velocity_max_mps))
    config = RefineConfig(
        iterations=args.iterations,
        optimizer=args.optimizer,
        step_mps=args.step_mps,
        smoothing_cells=args.smoothing_cells,
        frequency_schedule_hz=tuple(args.schedule),
    )
    results_path = work / "results.jsonl"
    done = set()
    if results_path.is_file():
        for line in results_path.read_text().splitlines():
            row = json.loads(line)
            if row["config"] == _config_key(config, args.smooth_start):
                done.add((row["family"], row["index"]))
    print(f"bundle {bundle_path}; refinement {config}; {len(done)} window(s) already done", flush=True)
    from data_prep.forward import simulate

    grid_shape = tuple(bundle.geometry.grid_shape)
    prior = prior_start(grid_shape)
    # Compile the engine's forward and gradient for this shape before anything is timed.
    warm = refine(
        np.zeros((setup.geometry.num_sources, setup.geometry.num_samples, setup.geometry.num_receivers)),
        prior,
        setup.geometry,
        setup.config,
        RefineConfig(iterations=1),
        wavelet=setup.wavelet,
        bounds_mps=bounds,
    )
    del warm

    for family in args.families:
        for index in range(args.windows):
            if (family, index) in done:
                continue
            seed = args.test_seed
            truth = generate_model(family, seed, index, grid_shape).velocity_mps
            clipped = int(np.sum((truth < bounds[0]) | (truth > bounds[1])))
            truth = np.clip(truth, *bounds)
            observed = np.asarray(
                simulate(truth, setup.geometry, setup.config, wavelet=setup.wavelet), np.float32
            )[0]
            load_before = os.getloadavg()[0]
            tick = time.perf_counter()
            prediction = bundle.predict(observed[None], batch_size=1)["velocity_mps"][0]
            predict_s = time.perf_counter() - tick
            row = {
                "config": _config_key(config, args.smooth_start),
                "family": family,
                "index": index,
                "seed": seed,
                "predict_s": predict_s,
                "load_1min": load_before,
                "truth_cells_clipped": clipped,
            }
            smooth = (
                prior if args.smooth_start == "prior" else linear_profile(truth.mean(axis=1), truth.shape[1])
            )
            for method, start in (("refined", prediction), ("smooth_fwi", smooth)):
                result = refine(
                    observed,
                    start,
                    setup.geometry,
                    setup.config,
                    config,
                    wavelet=setup.wavelet,
                    bounds_mps=bounds,
                    true_velocity_mps=truth,
                )
                if method == "refined":
                    row["network"] = {
                        **scores(np.clip(prediction, *bounds), truth, bounds),
                        "misfit": result.misfit_before,
                    }
                row[method] = {
                    **scores(result.velocity_mps, truth, bounds),
                    "misfit": result.misfit_after,
                    "misfit_start": result.misfit_before,
                    "time_s": result.time_s,
                    "best_iteration": result.best_iteration,
                    "gradients": result.gradient_evaluations,
                    "history": [round(entry["misfit"], 5) for entry in result.history],
                    "warning": result.warning,
                }
            with open(results_path, "a") as handle:
                handle.write(json.dumps(row, default=float) + "\n")
            print(
                f"{family} #{index}: MAE network {row['network']['mae_mps']:.0f}, refined "
                f"{row['refined']['mae_mps']:.0f}, smooth FWI {row['smooth_fwi']['mae_mps']:.0f} m/s; misfit "
                f"{row['network']['misfit']:.3f} -> {row['refined']['misfit']:.3f} (smooth start "
                f"{row['smooth_fwi']['misfit_start']:.3f} -> {row['smooth_fwi']['misfit']:.3f}); "
                f"{row['refined']['time_s']:.0f} + {row['smooth_fwi']['time_s']:.0f} s, load {load_before:.1f}",
                flush=True,
            )
    args.network = network
    args.config = config


def _config_key(config, smooth_start: str) -> str:
    from core.config import to_dict

    return json.dumps({**to_dict(config), "smooth_start": smooth_start}, sort_keys=True)


def summarize(args: argparse.Namespace) -> str:
    rows = [json.loads(line) for line in (Path(args.work) / "results.jsonl").read_text().splitlines()]
    rows = [
        row
        for row in rows
        if row["config"] == _config_key(args.config, args.smooth_start) and row["family"] in args.families
    ]
    table, verdicts = [], []
    for family in args.families:
        chosen = [row for row in rows if row["family"] == family]
        if not chosen:
            continue
        means = {}
        for method in METHODS:
            values = {
                key: np.mean([row[method][key] for row in chosen]) for key in ("mae_mps", "ssim", "misfit")
            }
            seconds = (
                np.mean([row["predict_s"] for row in chosen])
                if method == "network"
                else np.mean([row[method]["time_s"] for row in chosen])
            )
            means[method] = values
            own = " (trained on)" if family == TRAIN_FAMILY else " (unseen)"
            table.append(
                [
                    family + own,
                    METHOD_LABELS[method],
                    len(chosen),
                    round(values["mae_mps"], 1),
                    round(values["ssim"], 3),
                    round(values["misfit"], 4),
                    round(float(seconds), 2),
                ]
            )
        wins = {
            key: sum(
                row["refined"][key] < min(row["network"][key], row["smooth_fwi"][key])
                if key != "ssim"
                else row["refined"][key] > max(row["network"][key], row["smooth_fwi"][key])
                for row in chosen
            )
            for key in ("mae_mps", "ssim", "misfit")
        }
        beats = all(
            (means["refined"][key] < min(means["network"][key], means["smooth_fwi"][key]))
            if key != "ssim"
            else (means["refined"][key] > max(means["network"][key], means["smooth_fwi"][key]))
            for key in ("mae_mps", "ssim", "misfit")
        )
        verdicts.append(
            f"- {family}: refinement from the network {'beats' if beats else 'does NOT beat'} both others on the "
            f"mean of all three measures; per window it is best on MAE in {wins['mae_mps']}/{len(chosen)}, "
            f"SSIM {wins['ssim']}/{len(chosen)}, misfit {wins['misfit']}/{len(chosen)} (an accuracy verdict, not a "
            f"timing; 1-minute load {min(r['load_1min'] for r in chosen):.1f}-{max(r['load_1min'] for r in chosen):.1f})."
        )
    network = getattr(args, "network", {})
    loads = [row["load_1min"] for row in rows]
    config = args.config
    text = f"""## Refinement: network, FWI from the network, FWI from a smooth start (issue 11)

`python -m benchmarks.refinement` (see its docstring). Geometry `configs/data/small.yaml` (32 x 48 cells of
10 m, 3 sources, 24 receivers, 400 samples of 1 ms, 15 Hz), the engine's default settings. Network: a small
dual U-Net (`{json.dumps(SMALL_UNET)}`) trained by `pipeline.train` on {args.train_samples} synthesized
{TRAIN_FAMILY} models for a {args.train_time_s:.0f} s wall-clock budget ({network.get("epochs", "?")} epochs, best
{network.get("best_epoch", "?")}; test metrics {json.dumps({k: round(float(v), 4) for k, v in (network.get("test_metrics") or {}).items() if "velocity" in k})}).
Test windows: {args.windows} models per family (seed {args.test_seed}, not the training seed), observed gathers
simulated by the engine with the bundle's settings. Both FWI runs: `RefineConfig(iterations={config.iterations},
optimizer={config.optimizer!r}, step_mps={config.step_mps:g}, smoothing_cells={config.smoothing_cells:g},
frequency_schedule_hz={list(config.frequency_schedule_hz)})`, i.e. {config.iterations} forward+backward passes of
the engine per window and start; bounds = the training velocity range; the smooth start is {SMOOTH_LABELS[args.smooth_start]}. Each value is
the mean over the windows; MAE in m/s, SSIM on [0, 1] (OpenFWI's window), data misfit ||d - a s|| / ||d||;
time per window: prediction (network) or the whole refinement. {machine_description()}; 1-minute load average
{min(loads):.1f}-{max(loads):.1f} while it ran (shared machine: times are inflated by other jobs).

{markdown_table(["family", "method", "windows", "MAE m/s", "SSIM", "data misfit", "time per window s"], table)}

Goal (refinement from the network beats the network alone and FWI from the smooth start at equal iterations):
{chr(10).join(verdicts)}
"""
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="/tmp/seisinvert-refinement-bench", help="Cache folder.")
    parser.add_argument("--bundle", help="Use this bundle (small.yaml geometry) instead of training one.")
    parser.add_argument("--train-samples", type=int, default=2000)
    parser.add_argument("--train-time-s", type=float, default=300.0)
    parser.add_argument("--windows", type=int, default=6, help="Test windows per family.")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--test-seed", type=int, default=101)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--optimizer", default="lbfgs", choices=("lbfgs", "adam"))
    parser.add_argument("--step-mps", type=float, default=50.0)
    parser.add_argument("--smoothing-cells", type=float, default=1.0)
    parser.add_argument(
        "--schedule", type=float, nargs="*", default=[], help="Low-pass cut-offs, Hz (0: full)."
    )
    parser.add_argument(
        "--smooth-start",
        default="prior",
        choices=("prior", "truth"),
        help="prior: the training family's linear v(z) trend; truth: the line fitted to the test model (best case).",
    )
    parser.add_argument("--prepare-only", action="store_true", help="Only build the dataset and train.")
    parser.add_argument("--no-write", action="store_true", help="Print the table only.")
    args = parser.parse_args(argv)
    run(args)
    if args.prepare_only:
        return 0
    text = summarize(args)
    print(text)
    if not args.no_write:
        update_section("refinement", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
