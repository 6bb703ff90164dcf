"""Model comparison: several models trained on the same data under the same budget, as child runs of one
MLflow parent run with a comparison table, bar charts and one side-by-side prediction figure.

Pipeline position: a variant of ``pipeline.train`` (``python -m pipeline.train --compare``); each model is
trained by ``pipeline.training.trainer.train`` with the shared settings of ``train`` and its own model entry::

    python -m pipeline.train --compare                                   # configs/experiment/compare.yaml
    python -m pipeline.train --compare --data data/cva.h5 --set train.max_train_time_s=600
    python -m pipeline.train --compare --config my_compare.yaml

The parent run holds ``comparison.csv`` and ``comparison.md`` (test metrics, parameters, epochs, training
time and speed of every model), a bar chart per metric, ``predictions.png`` (the same test samples predicted
by every model beside the truth, with true and predicted edges) and metrics ``<model>_test_<metric>``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.config import CONFIG_DIR, load_config, to_dict, to_yaml
from core.errors import ConfigError
from pipeline.training.config import TrainConfig, TrainResult
from pipeline.training.default_dataset import ensure_default_dataset
from pipeline.training.trainer import train

DEFAULT_CONFIG = CONFIG_DIR / "experiment" / "compare.yaml"

#: Metrics drawn as bar charts: (key in the test metrics, chart title, axis label).
CHARTS = (
    ("velocity_mae", "Test MAE (OpenFWI [-1, 1] scale, lower is better)", "MAE"),
    ("velocity_rmse", "Test RMSE (OpenFWI [-1, 1] scale, lower is better)", "RMSE"),
    ("velocity_ssim", "Test SSIM (higher is better)", "SSIM"),
    ("velocity_mae_mps", "Test MAE in m/s (lower is better)", "m/s"),
    ("edges_f1", "Test edge F1 (higher is better)", "F1"),
)


@dataclass(frozen=True)
class CompareModel:
    """One model of a comparison.

    Attributes:
        name: label in tables, figures and run names (``unet``, ``unet-no-edges``...).
        model: family or ``configs/model`` name or YAML path (as ``TrainConfig.model``).
        model_options: overrides of its config (``edge_head: false``...).
    """

    name: str
    model: str
    model_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CompareConfig:
    """Settings of ``--compare`` (YAML: ``configs/experiment/compare.yaml``).

    Attributes:
        train: training settings shared by every model; the budget is ``train.epochs`` and/or
            ``train.max_train_time_s`` (wall-clock seconds) per model.
        models: the models to compare.
        comparison_samples: test samples in the side-by-side figure.
        run_name: name of the parent run.
    """

    train: TrainConfig = TrainConfig()
    models: tuple[CompareModel, ...] = (
        CompareModel("unet", "unet"),
        CompareModel("unet-no-edges", "unet", {"edge_head": False}),
        CompareModel("inversionnet", "inversionnet"),
        CompareModel("lstm", "lstm"),
        CompareModel("transformer", "transformer"),
    )
    comparison_samples: int = 3
    run_name: str = "model comparison"

    def __post_init__(self) -> None:
        names = [entry.name for entry in self.models]
        if not names:
            raise ValueError("A comparison needs at least one model.")
        if len(set(names)) != len(names):
            raise ValueError(f"Model names in a comparison must be unique. Received: {names}")


@dataclass
class CompareResult:
    parent_run_id: str | None
    results: dict[str, TrainResult]
    table: list[dict[str, Any]]
    markdown: str
    figure: np.ndarray | None


def compare(config: CompareConfig, echo=print) -> CompareResult:
    """Trains every model of ``config`` on the same dataset as child runs of one parent run."""
    import keras

    from data_prep.normalization import VelocityNormalization, denormalize_velocity
    from pipeline import tracking
    from pipeline.evaluate import metrics_table
    from pipeline.feeding import SeismicDataset
    from pipeline.figures import bar_chart, comparison_grid

    base = config.train
    if not base.data.path:  # resolve once, so every model trains on the same file
        path = ensure_default_dataset(base.data.default, echo)
        base = dataclasses.replace(base, data=dataclasses.replace(base.data, path=str(path)))
    tracking_uri = tracking.resolve_tracking_uri(base.tracking.tracking_uri)
    base = dataclasses.replace(base, tracking=dataclasses.replace(base.tracking, tracking_uri=tracking_uri))
    parent = tracking.RunTracker(
        tracking_uri,
        base.tracking.experiment,
        run_name=config.run_name,
        system_metrics=False,
        enabled=base.tracking.enabled,
        tags={"seisinvert.run_type": "comparison"},
    )
    parent.start()
    try:
        parent.log_config(to_dict(config), to_yaml(config))
        test = SeismicDataset(
            base.data.path,
            "test",
            batch_size=base.batch_size,
            families=base.data.families or None,
            max_samples=base.data.max_test_samples,
        )
        chosen = test.indices[: max(1, config.comparison_samples)]
        seismic, true_mps, true_edges = test.read(chosen)
        from data_prep.normalization import normalize_seismic

        inputs = normalize_seismic(seismic, test.stats)
        predictions_mps: dict[str, np.ndarray] = {}
        predicted_edges: dict[str, np.ndarray | None] = {}
        results: dict[str, TrainResult] = {}
        rows: list[dict[str, Any]] = []
        velocity = VelocityNormalization.coerce(test.stats)
        for number, entry in enumerate(config.models, start=1):
            echo(f"=== comparison {number}/{len(config.models)}: {entry.name} ({entry.model}) ===")
            child = dataclasses.replace(
                base,
                model=entry.model,
                model_options={**base.model_options, **entry.model_options},
                tracking=dataclasses.replace(base.tracking, run_name=entry.name),
            )
            started = time.monotonic()
            result = train(
                child,
                echo=echo,
                parent_run_id=parent.run_id if parent.enabled else None,
                extra_tags={"seisinvert.compare_name": entry.name},
            )
            results[entry.name] = result
            outputs = result.model.predict_on_batch(inputs)
            predictions_mps[entry.name] = denormalize_velocity(np.asarray(outputs["velocity"]), velocity)
            predicted_edges[entry.name] = np.asarray(outputs["edges"]) if "edges" in outputs else None
            epochs_run = len(result.history)
            training_s = float(sum(logs.get("epoch_time_s", 0.0) for logs in result.history))
            rows.append(
                {
                    "model": entry.name,
                    "family": entry.model,
                    "parameters": int(result.model.count_params()),
                    "epochs": epochs_run,
                    "training_s": round(training_s, 1),
                    "train_samples_per_s": round(
                        float(np.median([h["train_samples_per_s"] for h in result.history])), 2
                    ),
                    "run_id": result.run_id,
                    **{key: value for key, value in result.test_metrics.items()},
                }
            )
            parent.log_metrics({f"{entry.name}_test_{k}": v for k, v in result.test_metrics.items()})
            echo(f"{entry.name}: {time.monotonic() - started:.0f} s")
            result.model = None
            keras.backend.clear_session()

        table = {row["model"]: row for row in rows}
        markdown = metrics_table(table, f"Test metrics of {len(rows)} models on {Path(base.data.path).name}")
        markdown += "\n\n" + _extra_table(rows)
        parent.log_text(markdown + "\n", "comparison.md")
        parent.log_text(_csv(rows), "comparison.csv")
        for key, title, label in CHARTS:
            values = {row["model"]: row[key] for row in rows if key in row}
            if values:
                parent.log_image_file(bar_chart(values, title, label), f"charts/{key}.png")
        parent.log_image_file(
            bar_chart({row["model"]: row["training_s"] for row in rows}, "Training time (s)", "s"),
            "charts/training_s.png",
        )
        figure = comparison_grid(
            true_mps,
            predictions_mps,
            true_edges,
            predicted_edges,
            velocity_range_mps=(velocity.min_mps, velocity.max_mps),
            grid_spacing_m=test.geometry.grid_spacing_m,
        )
        parent.log_image_file(figure, "predictions.png")
        echo(markdown)
    except BaseException:
        parent.end("FAILED")
        raise
    parent.end("FINISHED")
    return CompareResult(parent.run_id if parent.enabled else None, results, rows, markdown, figure)


def _extra_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | parameters | epochs | training s | samples/s |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['parameters']:,} | {row['epochs']} | {row['training_s']:.0f} | "
            f"{row['train_samples_per_s']:.1f} |"
        )
    return "\n".join(lines)


def _csv(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {key: (f"{value:.6g}" if isinstance(value, float) else value) for key, value in row.items()}
        )
    return buffer.getvalue()


def compare_from_args(args: argparse.Namespace, echo=print) -> CompareResult:
    """``python -m pipeline.train --compare``: flags map onto ``train.*`` of the comparison config."""
    if args.resume:
        raise ConfigError(
            "--resume applies to one training run, not to --compare: resume a child run by its id."
        )
    files = args.config or [DEFAULT_CONFIG]
    values: dict[str, Any] = {
        "train": {
            "epochs": args.epochs,
            "data": {"path": args.data},
            "tracking": {"tracking_uri": args.tracking_uri, "experiment": args.experiment},
        }
    }
    if args.model:
        raise ConfigError(
            "--model does not combine with --compare: list the models under `models` in the config."
        )
    config = load_config(CompareConfig, files=files, values=values, overrides=args.overrides)
    return compare(config, echo)


__all__ = ["CHARTS", "CompareConfig", "CompareModel", "CompareResult", "compare", "compare_from_args"]
