"""One small U-Net trained on a small FlatVel-A set, shared by the whole test run (``trained_flatvel`` in
tests/conftest.py), and the baselines a trained model must beat.

The data are real physics at the inference tests' window geometry (``line_fixtures``: 16 x 24 cells of 10 m,
3 shots, 24 receivers, 256 samples of 1 ms): ``LEARNING_SAMPLES`` flatvel-a models simulated by the project's
engine (``data_prep.synthesize``) and ingested through the ``data_prep.ingest`` command line, split 80/10/10.
The model trains for a fixed number of epochs (no time budget), deterministically, into a temporary sqlite
MLflow store (with per-epoch images), and is registered as ``REGISTERED_NAME`` (alias ``champion``), so tests
use it through ``models:/`` as a user would: tests/pipeline/test_learning.py checks that it learned,
tests/test_end_to_end.py checks every stage's outputs around it.

``SEISINVERT_BREAK_LEARNING`` breaks learning on purpose, to show that the learning tests catch it:
``zero-lr`` trains with a learning rate of 0; ``shuffled-labels`` permutes the velocity models (and edges)
among the training samples, so seismic and labels no longer belong together (validation and test untouched).
Both must make ``tests/pipeline/test_learning.py`` fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.pipeline import line_fixtures as F

#: Synthesized flatvel-a models (192 train / 24 val / 24 test): ~20 s of engine and ingest on 2 cores.
LEARNING_SAMPLES = 240
#: Fixed epochs (no time budget: the result must not depend on the machine's speed); ~3 s each on 2 cores.
LEARNING_EPOCHS = 12
LEARNING_RATE = 3e-3
REGISTERED_NAME = "learning-unet"
BREAK_VARIABLE = "SEISINVERT_BREAK_LEARNING"
UNET_OPTIONS = {
    "front_end_filters": [8, 8],
    "front_end_kernel_sizes": [5, 3],
    "encoder_filters": [8, 16, 32],
    "blocks_per_level": 1,
}


@dataclass(frozen=True)
class TrainedFlatvel:
    """What ``train_small_flatvel`` made: the dataset, the training result, its printed lines, the MLflow store."""

    root: Path
    dataset: Path
    result: object  # pipeline.train.TrainResult
    lines: list[str]
    tracking_uri: str
    model_uri: str
    broken: str | None


def build_dataset(root: Path, count: int = LEARNING_SAMPLES, seed: int = 3) -> Path:
    """Synthesizes ``count`` flatvel-a models at the window geometry (the pure function) and ingests them to
    ``root/flatvel.h5`` through the ``data_prep.ingest`` command line (in this process)."""
    from data_prep.ingest import main as ingest_main
    from data_prep.synthesize import SynthesizeConfig, synthesize

    manifest = synthesize(
        SynthesizeConfig(
            family="flatvel-a",
            count=count,
            seed=seed,
            chunk_size=count,
            batch_size=40,
            geometry=F.window_geometry(),
            engine=F._FIXTURE_ENGINE,
        ),
        root / "synthetic",
        progress=False,
    )
    dataset = root / "flatvel.h5"
    if ingest_main([str(manifest.parent), "--out", str(dataset), "--quiet"]) != 0:
        raise RuntimeError("python -m data_prep.ingest exited with an error")
    return dataset


def shuffle_training_labels(dataset: Path, seed: int = 0) -> None:
    """Permutes velocity and edges among the training samples in place (validation and test untouched)."""
    import h5py

    with h5py.File(dataset, "r+") as h5:
        train = np.sort(h5["splits/train"][()])
        permuted = np.random.default_rng(seed).permutation(train)
        for name in ("velocity", "edges"):
            values = h5[name][()]
            values[train] = values[permuted]
            h5[name][...] = values


def train_small_flatvel(root: Path, broken: str | None = None) -> TrainedFlatvel:
    """Builds the dataset and trains the small U-Net; ``broken``: None, ``"zero-lr"`` or ``"shuffled-labels"``."""
    from core.config import from_dict
    from pipeline.train import TrainConfig, train

    if broken not in (None, "zero-lr", "shuffled-labels"):
        raise ValueError(f"{BREAK_VARIABLE} must be zero-lr or shuffled-labels. Received: {broken!r}")
    dataset = build_dataset(root)
    if broken == "shuffled-labels":
        shuffle_training_labels(dataset)
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    config = from_dict(
        TrainConfig,
        {
            "model": "unet",
            "model_options": UNET_OPTIONS,
            "batch_size": 8,
            "epochs": LEARNING_EPOCHS,
            "max_total_time_s": None,
            "optimizer": {
                "learning_rate": 0.0 if broken == "zero-lr" else LEARNING_RATE,
                "warmup_epochs": 0.5,
            },
            "data": {"path": str(dataset)},
            "tracking": {
                "tracking_uri": tracking_uri,
                "experiment": "learning",
                "registered_model_name": REGISTERED_NAME,
                "system_metrics": False,
                "image_samples": 2,
                "image_every_epochs": LEARNING_EPOCHS // 2,
            },
            "runtime": {
                "jit_compile": False,
                "deterministic": True,
                "checkpoint_dir": str(root / "checkpoints"),
                "output_dir": str(root / "outputs"),
                "progress_interval_s": 0.0,
            },
        },
    )
    lines: list[str] = []
    result = train(config, echo=lines.append)
    return TrainedFlatvel(
        root=root,
        dataset=dataset,
        result=result,
        lines=lines,
        tracking_uri=tracking_uri,
        model_uri=f"models:/{REGISTERED_NAME}@champion",
        broken=broken,
    )


def split_velocity(dataset: Path, split: str) -> np.ndarray:
    """``(samples, depth, x)`` m/s of one split, in the split's index order."""
    import h5py

    with h5py.File(dataset) as h5:
        indices = np.sort(h5[f"splits/{split}"][()])
        return h5["velocity"][indices]


def depth_average_model(dataset: Path) -> np.ndarray:
    """The 1-D-average baseline: the training split's mean velocity at each depth, ``(depth,)`` m/s.

    The best a model can do that has learned the typical velocity-depth trend and nothing from the seismic.
    """
    return split_velocity(dataset, "train").mean(axis=(0, 2))
