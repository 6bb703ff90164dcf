"""Draws the README's pictures into ``docs/figures/`` (each PNG well under 300 KB).

Every picture is made by this script from the project's own code; re-make them all with::

    python docs/make_figures.py --model models:/seisinvert-unet@champion --tracking-uri sqlite:///mlflow.db \\
        --data data/default-flatvel-a-1000-seed0.h5

after the default run (``python -m pipeline.train``), from the repository root (``--data`` defaults to the
dataset the default run writes, ``pipeline.training.default_dataset.default_dataset_path``). ``python -m benchmarks.default_run``
runs the default run in a fresh directory and calls this script with ``--only prediction,section`` on the
model it registered. One picture at a time:
``--only gather`` (or ``prediction``, ``section``, ``dashboard``; comma-separated for several).

What each picture is (``--only`` name: files):

* ``gather``: ``shot_gather.png``, one CurveFault-A model (seed 7) and its five shot gathers at OpenFWI's
  geometry, simulated by ``data_prep.forward.simulate``. Needs nothing else.
* ``prediction``: ``prediction.png``, the first test samples of ``--data`` predicted by ``--model`` (a registered
  model, ``runs:/`` URI or bundle folder): true and predicted velocity, the error, true and predicted edges
  (``pipeline.figures.prediction_grid``).
* ``section``: ``section.png``, a FlatVel-A line five windows long of ``--model``'s geometry, simulated shot by
  shot, written as SEG-Y and inverted by ``pipeline.infer`` with ``--truth``: the stitched section, the truth,
  the edges and the physics QC per window (data misfit, velocity MAE).
* ``dashboard``: ``dashboard.png`` and ``dashboard_predictions.png``, a small comparison (``pipeline.compare``:
  three small models, at most 12 epochs / 90 s each on 200 synthetic samples of ``configs/data/small.yaml``)
  logged to its own sqlite store, served by the project's ``mlflow server`` (``pipeline.dashboard``) on
  127.0.0.1 and photographed by headless Chromium (Debian: ``apt-get install chromium``; ``--browser`` for
  another binary): MLflow's compare page of the child runs, and the parent run's ``predictions.png`` artifact.
  MLflow 3.17's assistant side panel is cropped off. About 5 minutes on 2 busy CPU cores.

The MLflow store given by ``--tracking-uri`` is never written: a sqlite file is copied into ``--work`` first
(its runs' artifacts are read where they are). Scratch files go to ``--work`` (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `python docs/make_figures.py` from anywhere
    sys.path.insert(0, str(REPO_ROOT))

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

FIGURES = ("gather", "prediction", "section", "dashboard")
DEFAULT_OUT = REPO_ROOT / "docs" / "figures"
#: Pictures above this size are refused (they go into git).
MAX_BYTES = 300_000


def _default_dataset() -> Path:
    """The dataset the default run writes (``data/default-flatvel-a-1000-seed0.h5`` today), from its config."""
    from pipeline.training.config import DefaultDatasetConfig
    from pipeline.training.default_dataset import default_dataset_path

    return default_dataset_path(DefaultDatasetConfig())


def _save(figure, path: Path, dpi: int = 90) -> Path:
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    print(f"{path}: {path.stat().st_size / 1000:.0f} KB")
    return path


# ----------------------------------------------------------------------------------------------------------
# shot_gather.png
# ----------------------------------------------------------------------------------------------------------


def shot_gather_figure(out: Path) -> Path:
    from data_prep.forward import EngineConfig, simulate
    from data_prep.geometry import AcquisitionGeometry
    from data_prep.velocity_models import generate_model

    geometry = AcquisitionGeometry()  # OpenFWI's: 70 x 70 cells of 10 m, 5 shots, 70 receivers, 1000 x 1 ms
    model = generate_model("curvefault-a", 7, 0)
    gathers = np.asarray(simulate(model.velocity_mps, geometry, EngineConfig()))[0]
    spacing_km = geometry.grid_spacing_m / 1000
    depth_cells, x_cells = geometry.grid_shape
    duration_s = geometry.num_samples * geometry.sample_interval_s
    figure, axes = plt.subplots(
        1, 6, figsize=(15, 3.4), constrained_layout=True, gridspec_kw={"width_ratios": [1.35, 1, 1, 1, 1, 1]}
    )
    image = axes[0].imshow(
        model.velocity_mps, cmap="viridis", vmin=1500, vmax=4500,
        extent=(0, x_cells * spacing_km, depth_cells * spacing_km, 0),
    )  # fmt: skip
    sources_km = np.asarray(geometry.source_cells)[:, 1] * spacing_km
    axes[0].plot(sources_km, np.full(len(sources_km), 0.01), "v", color="red", markersize=6)
    axes[0].set(title="CurveFault-A model, 5 shots", xlabel="x (km)", ylabel="depth (km)")
    figure.colorbar(image, ax=axes[0], label="m/s", shrink=0.9)
    clip = np.percentile(np.abs(gathers), 90)  # clipped hard so that the weaker reflections show
    for shot in range(5):
        axis = axes[shot + 1]
        axis.imshow(
            gathers[shot], cmap="gray", vmin=-clip, vmax=clip, aspect="auto",
            extent=(0, x_cells * spacing_km, duration_s, 0),
        )  # fmt: skip
        axis.set(title=f"shot at x = {sources_km[shot]:.2f} km", xlabel="receiver x (km)")
        if shot == 0:
            axis.set_ylabel("time (s)")
    return _save(figure, out / "shot_gather.png")


# ----------------------------------------------------------------------------------------------------------
# prediction.png
# ----------------------------------------------------------------------------------------------------------


def prediction_figure(out: Path, model: str, data: Path, samples: int = 3) -> Path:
    from data_prep import schema
    from pipeline.figures import prediction_grid, save_png
    from pipeline.tracking import load_bundle

    bundle = load_bundle(model)
    with schema.open_dataset(data) as h5:
        chosen = np.sort(schema.read_splits(h5)["test"][:samples])
        seismic = np.stack([h5[schema.SEISMIC][index] for index in chosen])
        true_velocity = np.stack([h5[schema.VELOCITY][index] for index in chosen])
        true_edges = np.stack([h5[schema.EDGES][index] for index in chosen]).astype(np.float32)
        spacing = schema.read_geometry(h5).grid_spacing_m
    outputs = bundle.predict(seismic)
    predicted = outputs["velocity_mps"]
    errors = np.abs(predicted - true_velocity).mean(axis=(1, 2))
    image = prediction_grid(
        true_velocity,
        predicted,
        true_edges,
        outputs.get("edges"),
        velocity_range_mps=(bundle.stats.velocity_min_mps, bundle.stats.velocity_max_mps),
        grid_spacing_m=spacing,
        titles=[f"test #{index}: MAE {error:.0f} m/s" for index, error in zip(chosen, errors, strict=True)],
        suptitle=f"{model} on {data.name} (test split)",
    )
    path = save_png(image, out / "prediction.png")
    print(f"{path}: {path.stat().st_size / 1000:.0f} KB")
    return path


# ----------------------------------------------------------------------------------------------------------
# section.png
# ----------------------------------------------------------------------------------------------------------


def simulate_line(bundle, num_windows: int, work: Path, seed: int = 11) -> tuple[Path, Path, np.ndarray]:
    """A FlatVel-A line of ``num_windows`` half-overlapping windows of the bundle's geometry, as SEG-Y.

    Shots sit where every window needs them (each window's model shots), receivers on every column; every shot
    is simulated over the whole line. Returns the shot-gather file, the truth file and the true velocity.
    """
    from data_prep.forward import EngineConfig, simulate
    from data_prep.geometry import AcquisitionGeometry
    from data_prep.segy_io import write_shot_gathers, write_velocity_models
    from data_prep.velocity_models import generate_model

    geometry = bundle.geometry
    spacing = geometry.grid_spacing_m
    depth_cells, width = geometry.grid_shape
    step = width // 2
    columns = width + step * (num_windows - 1)
    source_cells = np.rint(np.asarray(geometry.source_positions_m) / spacing).astype(int)
    receiver_cells = np.rint(np.asarray(geometry.receiver_positions_m) / spacing).astype(int)
    shots = sorted(
        {int(start + x) for start in range(0, columns - width + 1, step) for x in source_cells[:, 1]}
    )
    source_row, receiver_row = int(source_cells[0, 0]), int(receiver_cells[0, 0])
    line = AcquisitionGeometry(
        grid_shape=(depth_cells, columns),
        grid_spacing_m=spacing,
        num_samples=geometry.num_samples,
        sample_interval_s=geometry.sample_interval_s,
        peak_frequency_hz=float(bundle.engine_settings.get("peak_frequency_hz", 15.0)),
        source_cells=tuple((source_row, x) for x in shots),
        receiver_cells=tuple((receiver_row, x) for x in range(columns)),
    )
    settings = bundle.engine_settings
    engine = EngineConfig(
        spatial_order=int(settings.get("spatial_order", 4)),
        absorbing_width_cells=int(settings.get("absorbing_width_cells", 14)),
        free_surface=bool(settings.get("free_surface", False)),
    )
    velocity = generate_model("flatvel-a", seed=seed, index=0, grid_shape=(depth_cells, columns)).velocity_mps
    gathers = np.asarray(simulate(velocity, line, engine))
    survey = write_shot_gathers(work / "line.sgy", gathers, line, 0)
    truth = write_velocity_models(work / "truth.sgy", velocity[None], spacing, 0)
    return survey, truth, velocity


def section_figure(out: Path, model: str, work: Path, num_windows: int = 5) -> Path:
    from pipeline.infer import InferConfig, infer
    from pipeline.section import read_section
    from pipeline.tracking import load_bundle

    bundle = load_bundle(model)
    survey, truth, velocity = simulate_line(bundle, num_windows, work)
    config = InferConfig(truth=truth)
    result = infer([survey], bundle, work / "section", config, progress=False, model_uri=model)
    section = read_section(result.section_path)
    matplotlib.use("Agg")
    x_km = section["x_m"] / 1000
    depth_km = section["depth_m"] / 1000
    extent = (x_km[0], x_km[-1], depth_km[-1], depth_km[0])
    windows = section["windows"]
    centres_km = (windows["x_start_m"] + windows["x_end_m"]) / 2000
    figure, axes = plt.subplots(4, 1, figsize=(11, 9.2), constrained_layout=True,
                                gridspec_kw={"height_ratios": [1, 1, 1, 0.8]})  # fmt: skip
    for axis, values, title in (
        (axes[0], velocity, "true velocity (FlatVel-A, simulated shot by shot along the line)"),
        (axes[1], section["velocity_mps"], f"stitched section: {result.num_windows} windows of {model}"),
    ):
        image = axis.imshow(values, cmap="viridis", vmin=1500, vmax=4500, aspect="auto", extent=extent)
        axis.set(title=title, ylabel="depth (km)")
        figure.colorbar(image, ax=axis, label="m/s", pad=0.01)
    image = axes[2].imshow(section["edges"], cmap="gray_r", vmin=0, vmax=1, aspect="auto", extent=extent)
    axes[2].set(title="predicted edges (probability)", ylabel="depth (km)")
    figure.colorbar(image, ax=axes[2], pad=0.01)
    axes[3].bar(centres_km, windows["data_misfit"], width=0.8 * np.diff(centres_km).min(), color="tab:blue")
    # The line is simulated with the training wavelet, so the QC resolves to the "scale" correction's threshold.
    threshold = config.qc.resolved(recorded_elsewhere=False).misfit_threshold
    axes[3].axhline(threshold, color="tab:red", linestyle="--", label="misfit threshold")
    axes[3].set(ylabel="data misfit", xlabel="x along the line (km)", xlim=(x_km[0], x_km[-1]),
                title="physics QC: each window's prediction re-simulated and compared with the recorded gathers")  # fmt: skip
    twin = axes[3].twinx()
    twin.plot(centres_km, windows["velocity_mae_mps"], "o-", color="tab:orange", label="velocity MAE")
    twin.set_ylabel("MAE (m/s)")
    twin.set_ylim(0, 1.3 * float(np.nanmax(windows["velocity_mae_mps"])))
    twin.ticklabel_format(axis="y", useOffset=False)
    axes[3].legend(loc="upper left", fontsize=8)
    twin.legend(loc="upper right", fontsize=8)
    errors = result.section_errors
    figure.suptitle(
        f"Section MAE {errors['velocity_mae_mps']:.0f} m/s against the truth; median data misfit "
        f"{np.median(windows['data_misfit']):.2f}",
        fontsize=10,
    )
    return _save(figure, out / "section.png", dpi=80)


# ----------------------------------------------------------------------------------------------------------
# dashboard.png
# ----------------------------------------------------------------------------------------------------------


def tiny_comparison(work: Path) -> tuple[str, str, str]:
    """Trains three small models on a small synthetic set as one comparison; returns (store, experiment id,
    parent run id)."""
    import mlflow

    from core.config import CONFIG_DIR, load_config
    from data_prep.ingest import ingest
    from data_prep.synthesize import SynthesizeConfig, synthesize
    from pipeline.compare import CompareConfig, compare

    synthetic = load_config(
        SynthesizeConfig,
        files=[CONFIG_DIR / "data" / "small.yaml"],
        values={"family": "flatvel-a", "count": 200, "seed": 0, "chunk_size": 200, "batch_size": 16},
    )
    dataset = ingest([synthesize(synthetic, work / "segy", progress=False).parent], work / "dataset.h5")
    store = f"sqlite:///{work / 'mlflow.db'}"
    config = load_config(
        CompareConfig,
        files=[CONFIG_DIR / "experiment" / "compare.yaml"],
        values={
            "train": {
                "epochs": 12,
                "max_train_time_s": 90,
                "batch_size": 8,
                "data": {"path": str(dataset)},
                "tracking": {
                    "tracking_uri": store,
                    "experiment": "model comparison (README picture)",
                    "system_metrics": False,
                    "image_every_epochs": 0,
                },  # fmt: skip
                "runtime": {
                    "jit_compile": False,
                    "checkpoint_dir": str(work / "checkpoints"),
                    "output_dir": str(work / "outputs"),
                    "progress_interval_s": 0.0,
                },  # fmt: skip
            },
            "models": [
                {"name": "unet", "model": "unet", "model_options": {"encoder_filters": [8, 16, 32]}},
                {
                    "name": "unet-no-edges",
                    "model": "unet",
                    "model_options": {"encoder_filters": [8, 16, 32], "edge_head": False},
                },  # fmt: skip
                {
                    "name": "transformer",
                    "model": "transformer",
                    "model_options": {
                        "patch_size": [16, 4],
                        "hidden_dim": 32,
                        "num_layers": 2,
                        "num_heads": 2,
                        "mlp_dim": 64,
                        "decoder_filters": 8,
                    },
                },  # fmt: skip
            ],
        },
    )
    result = compare(config, echo=lambda *_: None)
    experiment = mlflow.MlflowClient(store).get_experiment_by_name("model comparison (README picture)")
    return store, experiment.experiment_id, result.parent_run_id


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def dashboard_figure(
    out: Path, work: Path, browser: str, width: int = 1900, height: int = 1050
) -> list[Path]:
    from pipeline.dashboard import server_command, server_environment

    store, experiment_id, parent_run_id = tiny_comparison(work)
    port = _free_port()
    command = server_command(store, "127.0.0.1", port, artifacts_destination=work / "mlartifacts")
    log = (work / "server.log").open("w")
    server = subprocess.Popen(
        command, env=server_environment(), stdout=log, stderr=subprocess.STDOUT, cwd=work
    )
    targets: list[Path] = []
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: see {work / 'server.log'}")
            time.sleep(1)
        runs = client_runs(store, experiment_id, parent_run_id)
        quoted = urllib.parse.quote(json.dumps(runs, separators=(",", ":")))
        pages = {
            # the comparison's child runs side by side (MLflow's compare page: parallel coordinates, run details)
            "dashboard.png": f"{base}/#/compare-runs?runs={quoted}&experiments=%5B%22{experiment_id}%22%5D",
            # the parent run's artifacts: the same test samples predicted by every model
            "dashboard_predictions.png": f"{base}/#/experiments/{experiment_id}/runs/{parent_run_id}"
            "/artifacts/predictions.png",
        }
        for name, url in pages.items():
            subprocess.run(
                [
                    browser,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    f"--user-data-dir={work / 'chromium-profile'}",
                    f"--window-size={width},{height}",
                    "--virtual-time-budget=25000",
                    f"--screenshot={work / name}",
                    url,
                ],
                check=True,
                capture_output=True,
                timeout=180,
            )
            targets.append(_crop_assistant(work / name, out / name))
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    for target in targets:
        print(
            f"{target}: {target.stat().st_size / 1000:.0f} KB (runs of {store}, parent run {parent_run_id})"
        )
    return targets


def client_runs(store: str, experiment_id: str, parent_run_id: str) -> list[str]:
    """The comparison's child runs, in training order."""
    import mlflow

    children = mlflow.MlflowClient(store).search_runs(
        [experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'", order_by=["attributes.start_time"]
    )
    return [run.info.run_id for run in children]


def _crop_assistant(screenshot: Path, target: Path) -> Path:
    """Cuts MLflow 3's assistant side panel (its right ``ASSISTANT_PANEL_PX``) off a screenshot, then shrinks
    the PNG if needed."""
    from PIL import Image

    with Image.open(screenshot) as image:
        image.crop((0, 0, image.width - ASSISTANT_PANEL_PX, image.height)).save(target, optimize=True)
    _shrink_png(target)
    return target


#: Width of the "MLflow Assistant" panel that MLflow 3.17's UI opens on the right of every page.
ASSISTANT_PANEL_PX = 490


def _shrink_png(path: Path) -> None:
    """Re-encodes a screenshot with a 256-colour palette when it is too large for git."""
    if path.stat().st_size <= MAX_BYTES:
        return
    image = plt.imread(path)
    from PIL import Image

    rgb = Image.fromarray((image[..., :3] * 255).astype(np.uint8))
    rgb.quantize(colors=256).save(path, optimize=True)


# ----------------------------------------------------------------------------------------------------------


def _read_only_store(tracking_uri: str | None, work: Path) -> str | None:
    """A copy of a sqlite store (so the original is never written); other URIs unchanged."""
    if not tracking_uri or not tracking_uri.startswith("sqlite:///"):
        return tracking_uri
    source = Path(tracking_uri[len("sqlite:///") :])
    copy = work / "store-copy" / source.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, copy)
    return f"sqlite:///{copy}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python docs/make_figures.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the PNGs (docs/figures)")
    parser.add_argument("--only", default=",".join(FIGURES), help=f"comma-separated subset of {FIGURES}")
    parser.add_argument(
        "--model", default="models:/seisinvert-unet@champion", help="trained model URI or folder"
    )
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="store of --model (read only)")
    parser.add_argument("--data", type=Path, default=_default_dataset(),
                        help="labelled dataset of --model's geometry (its test split is drawn; default: the "
                             "default run's dataset)")  # fmt: skip
    parser.add_argument("--work", type=Path, help="scratch folder (default: a new temporary folder)")
    parser.add_argument("--browser", default=shutil.which("chromium") or "chromium", help="headless browser")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(FIGURES))
    if unknown:
        parser.error(f"unknown figure(s) {unknown}: choose from {', '.join(FIGURES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="seisinvert-figures-"))
    work.mkdir(parents=True, exist_ok=True)
    if {"prediction", "section"} & set(chosen):
        store = _read_only_store(args.tracking_uri, work)
        if store:
            os.environ["MLFLOW_TRACKING_URI"] = store
    made = []
    if "gather" in chosen:
        made.append(shot_gather_figure(args.out))
    if "prediction" in chosen:
        made.append(prediction_figure(args.out, args.model, args.data))
    if "section" in chosen:
        section_work = work / "section"
        section_work.mkdir(exist_ok=True)
        made.append(section_figure(args.out, args.model, section_work))
    if "dashboard" in chosen:
        dashboard_work = work / "dashboard"
        dashboard_work.mkdir(exist_ok=True)
        made.extend(dashboard_figure(args.out, dashboard_work, args.browser))
    too_large = [
        f"{path.name} ({path.stat().st_size / 1000:.0f} KB)"
        for path in made
        if path.stat().st_size > MAX_BYTES
    ]
    print(json.dumps({"figures": [str(path) for path in made], "work": str(work)}))
    if too_large:
        print(f"error: larger than {MAX_BYTES // 1000} KB: {', '.join(too_large)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
