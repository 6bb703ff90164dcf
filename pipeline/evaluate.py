"""Evaluation of a trained model on a dataset split: metrics in both conventions, per family and per sample.

Pipeline position: after ``pipeline.train`` (which calls ``evaluate_model`` on the test split at the end of
training), or on its own for any bundle and any labelled dataset::

    python -m pipeline.evaluate --model models:/seisinvert-unet@champion --data data/flatvel-a.h5 --split test
    python -m pipeline.evaluate --model runs:/<run_id>/model --data other.h5
    python -m pipeline.evaluate --model outputs/<run_id>/bundle --data other.h5 --no-tracking

Metrics (``models.metrics``): ``velocity_mae``, ``velocity_rmse``, ``velocity_ssim`` in OpenFWI's convention
(normalised scale, SSIM on [0, 1]), ``velocity_mae_mps`` and ``velocity_rmse_mps`` in m/s, and edge
precision/recall/F1 when the model has an edge head, and what the edge task is meant to improve:
``velocity_interface_mae_mps`` (the MAE within two cells of a true interface) and ``velocity_error_tv_mps``
(the total variation of the error map: lower is smoother); overall, per family when the dataset holds several,
and per sample (CSV). The worst ``k`` samples by SSIM are drawn in one figure. Results are logged to MLflow
as an *evaluation run* tagged with the model URI and the run that trained the model.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from core.cli import add_common_arguments, make_parser, run_main
from core.config import add_config_arguments, load_config, to_dict, to_yaml
from core.errors import UserError
from data_prep.normalization import NormalizationStats, VelocityNormalization, denormalize_velocity
from pipeline.tracking import TrackingSettings

logger = logging.getLogger(__name__)

VELOCITY = "velocity"
EDGES = "edges"

#: Columns of the metrics table, with their headers.
TABLE_COLUMNS = (
    ("velocity_mae", "MAE"),
    ("velocity_rmse", "RMSE"),
    ("velocity_ssim", "SSIM"),
    ("velocity_mae_mps", "MAE m/s"),
    ("velocity_rmse_mps", "RMSE m/s"),
    ("edges_f1", "edge F1"),
    ("velocity_interface_mae_mps", "near interfaces m/s"),
    ("velocity_error_tv_mps", "error TV m/s"),
)


@dataclass
class Evaluation:
    """Everything ``evaluate_model`` computes.

    Attributes:
        metrics: overall metrics (``models.metrics.evaluate_arrays`` names).
        per_family: family -> metrics (only when the split holds more than one family).
        per_sample: one dict per sample (index, sample_id, family, mae, rmse, ssim, mae_mps, edges_f1).
        indices: dataset indices of the samples, in evaluation order.
        targets, predictions: ``{"velocity": normalised, "edges": ...}`` arrays (predictions lack
            ``edges`` for models without an edge head).
    """

    metrics: dict[str, float]
    per_family: dict[str, dict[str, float]] = field(default_factory=dict)
    per_sample: list[dict[str, Any]] = field(default_factory=list)
    indices: np.ndarray | None = None
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)


def predict_dataset(
    model, dataset, batch_size: int | None = None, mirror_order: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Model outputs for every sample of a ``SeismicDataset`` (in its order), as float32 arrays.

    With ``mirror_order`` (``pipeline.feeding.mirror_shot_order``) every batch is also predicted mirrored
    left to right and the two outputs averaged, the mirrored one mirrored back (``ModelBundle.predict``'s
    ``mirror_average``).
    """
    from pipeline.feeding import average_with_mirror, mirrored_seismic

    def run(seismic):
        if batch_size is None:
            return model.predict_on_batch(seismic)
        return model.predict(seismic, batch_size=batch_size, verbose=0)

    outputs: dict[str, list[np.ndarray]] = {}
    for index in range(len(dataset)):
        seismic, _ = dataset[index]
        result = {name: np.asarray(values, dtype=np.float32) for name, values in run(seismic).items()}
        if mirror_order is not None:
            mirrored = run(mirrored_seismic(seismic, mirror_order))
            result = {
                name: average_with_mirror(values, np.asarray(mirrored[name], dtype=np.float32))
                for name, values in result.items()
            }
        for name, values in result.items():
            outputs.setdefault(name, []).append(values)
    return {name: np.concatenate(values) for name, values in outputs.items()}


def per_sample_metrics(
    targets: Mapping[str, np.ndarray],
    predictions: Mapping[str, np.ndarray],
    stats: NormalizationStats,
    edge_threshold: float = 0.5,
) -> dict[str, np.ndarray]:
    """``(samples,)`` arrays: ``mae``, ``rmse`` (normalised scale), ``ssim`` (OpenFWI), ``mae_mps``,
    ``rmse_mps`` and, with edges, ``edges_f1``. Their means over samples equal the overall metrics (every
    sample has the same number of cells), except RMSE and F1, which are not means."""
    from models.metrics import ssim_per_sample

    velocity = VelocityNormalization.coerce(stats)
    true, pred = np.asarray(targets[VELOCITY], np.float64), np.asarray(predictions[VELOCITY], np.float64)
    error = pred - true
    axes = (1, 2)
    result = {
        "mae": np.mean(np.abs(error), axis=axes),
        "rmse": np.sqrt(np.mean(np.square(error), axis=axes)),
        "mae_mps": np.mean(np.abs(error), axis=axes) * abs(velocity.scale_mps),
        "rmse_mps": np.sqrt(np.mean(np.square(error), axis=axes)) * abs(velocity.scale_mps),
        "ssim": ssim_per_sample(
            velocity.to_unit_interval(denormalize_velocity(true, velocity, np.float64)),
            velocity.to_unit_interval(denormalize_velocity(pred, velocity, np.float64)),
        ),
    }
    if EDGES in targets and EDGES in predictions:
        predicted = np.asarray(predictions[EDGES]) >= edge_threshold
        actual = np.asarray(targets[EDGES]) >= 0.5
        tp = np.sum(predicted & actual, axis=axes).astype(np.float64)
        fp = np.sum(predicted & ~actual, axis=axes).astype(np.float64)
        fn = np.sum(~predicted & actual, axis=axes).astype(np.float64)
        precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
        recall = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
        result["edges_f1"] = np.divide(
            2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0
        )
    return result


def evaluate_model(
    model,
    dataset,
    stats: NormalizationStats | None = None,
    edge_threshold: float = 0.5,
    mirror_order: np.ndarray | None = None,
) -> Evaluation:
    """Predicts every sample of a ``SeismicDataset`` and computes overall, per-family and per-sample metrics.

    Args:
        model: a Keras model (normalised seismic in, normalised velocity and edge probabilities out).
        dataset: ``pipeline.feeding.SeismicDataset`` (not shuffled, no augmentation).
        stats: the normalisation the model was trained with (default: the dataset's).
        edge_threshold: probability at or above which a cell counts as an edge.
        mirror_order: predict mirror-averaged (``predict_dataset``); None: as the model predicts.
    """
    from models.metrics import evaluate_arrays, smoothness_metrics

    stats = stats or dataset.stats
    predictions = predict_dataset(model, dataset, mirror_order=mirror_order)
    order = dataset.epoch_order()
    velocity_mps, edges = dataset.read_labels(order)
    from data_prep.normalization import normalize_velocity

    targets = {VELOCITY: normalize_velocity(velocity_mps, stats), EDGES: edges.astype(np.float32)}
    predictions = {name: predictions[name] for name in (VELOCITY, EDGES) if name in predictions}
    scored_targets = {name: targets[name] for name in predictions}
    metrics = evaluate_arrays(scored_targets, predictions, normalization=stats, edge_threshold=edge_threshold)
    metrics.update(smoothness_metrics(targets, predictions, normalization=stats))
    families = dataset.families_of(order)
    per_family: dict[str, dict[str, float]] = {}
    unique = sorted(set(families))
    if len(unique) > 1:
        for family in unique:
            mask = families == family
            per_family[family] = evaluate_arrays(
                {k: v[mask] for k, v in scored_targets.items()},
                {k: v[mask] for k, v in predictions.items()},
                normalization=stats,
                edge_threshold=edge_threshold,
            )
            per_family[family].update(
                smoothness_metrics(
                    {k: v[mask] for k, v in targets.items()},
                    {k: v[mask] for k, v in predictions.items()},
                    normalization=stats,
                )
            )
    sample_values = per_sample_metrics(scored_targets, predictions, stats, edge_threshold)
    sample_ids = dataset.sample_ids_of(order)
    origins = dataset.origins_of(order)
    per_sample = [
        {
            "index": int(order[i]),
            "origin": str(origins[i]),
            "sample_id": int(sample_ids[i]),
            "family": str(families[i]),
            **{name: float(values[i]) for name, values in sample_values.items()},
        }
        for i in range(len(order))
    ]
    return Evaluation(metrics, per_family, per_sample, np.asarray(order), targets, predictions)


def metrics_table(rows: Mapping[str, Mapping[str, float]], title: str = "") -> str:
    """A markdown table: one row per entry (e.g. ``{"test": metrics}`` or one per family or model)."""
    columns = [
        (key, header) for key, header in TABLE_COLUMNS if any(key in values for values in rows.values())
    ]
    lines = []
    if title:
        lines.append(title)
    lines.append("| | " + " | ".join(header for _, header in columns) + " |")
    lines.append("|---|" + "---|" * len(columns))
    for name, values in rows.items():
        cells = []
        for key, _ in columns:
            value = values.get(key)
            if value is None:
                cells.append("")
            elif key.endswith("_mps"):
                cells.append(f"{value:.1f}")
            else:
                cells.append(f"{value:.4f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_sample_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The per-sample metrics as CSV text."""
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {key: (f"{value:.6g}" if isinstance(value, float) else value) for key, value in row.items()}
        )
    return buffer.getvalue()


def worst_samples_figure(
    evaluation: Evaluation, stats: NormalizationStats, k: int = 4, grid_spacing_m: float = 10.0
) -> np.ndarray:
    """The ``k`` samples with the lowest SSIM: truth, prediction, error and edges (RGB array)."""
    from pipeline.figures import prediction_grid

    ssim = np.array([row["ssim"] for row in evaluation.per_sample])
    worst = np.argsort(ssim)[: max(1, min(k, len(ssim)))]
    velocity = VelocityNormalization.coerce(stats)
    true_mps = denormalize_velocity(evaluation.targets[VELOCITY][worst], velocity)
    pred_mps = denormalize_velocity(evaluation.predictions[VELOCITY][worst], velocity)
    has_edges = EDGES in evaluation.predictions
    titles = [
        f"#{evaluation.per_sample[i]['index']} {evaluation.per_sample[i]['family']}\nSSIM {ssim[i]:.3f}"
        for i in worst
    ]
    return prediction_grid(
        true_mps,
        pred_mps,
        evaluation.targets[EDGES][worst] if has_edges else None,
        evaluation.predictions[EDGES][worst] if has_edges else None,
        velocity_range_mps=(velocity.min_mps, velocity.max_mps),
        grid_spacing_m=grid_spacing_m,
        titles=titles,
        suptitle=f"worst {len(worst)} samples by SSIM",
    )


# ----------------------------------------------------------------------------------------------------------
# The stage: python -m pipeline.evaluate
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluateConfig:
    """Settings of ``python -m pipeline.evaluate``.

    Attributes:
        model: bundle folder, ``runs:/<run_id>/model`` or ``models:/<name>@<alias>`` / ``models:/<name>/<v>``.
        data: labelled dataset (``data_prep.ingest`` output).
        split: ``train``, ``val`` or ``test``.
        batch_size: samples per forward pass.
        max_samples: evaluate only the first ``max_samples`` samples of the split.
        worst_k: samples in the worst-k figure.
        edge_threshold: probability at or above which a cell counts as an edge.
        mirror_average: predict every sample also mirrored left to right and average the two sections
            (the test-time augmentation of ``pipeline.infer``'s ``mirror_average``); needs a geometry that
            mirrors onto itself within one cell.
        output_dir: where the report, CSV and figure are written (default ``outputs/evaluation-<name>``).
        tracking: the evaluation run in MLflow (``pipeline.tracking.TrackingSettings``: ``enabled``,
            ``tracking_uri``, ``experiment``, ``run_name``; default ``./mlflow.db``, ``seisinvert``). The flat
            keys ``tracking: false``, ``tracking_uri`` and ``experiment`` of earlier versions are read with a
            warning.
    """

    MOVED_KEYS: ClassVar[dict[str, str]] = {
        "tracking": "tracking.enabled",
        "tracking_uri": "tracking.tracking_uri",
        "experiment": "tracking.experiment",
    }

    model: str = ""
    data: str = ""
    split: str = "test"
    batch_size: int = 16
    max_samples: int | None = None
    worst_k: int = 4
    edge_threshold: float = 0.5
    mirror_average: bool = False
    output_dir: str | None = None
    tracking: TrackingSettings = TrackingSettings()


def evaluate(config: EvaluateConfig) -> dict[str, Any]:
    """Evaluates ``config.model`` on ``config.data``'s ``config.split``; writes and logs the results.

    Returns:
        ``{"metrics", "per_family", "csv", "figure", "report", "run_id"}``.
    """
    from data_prep import schema
    from pipeline import tracking
    from pipeline.feeding import SeismicDataset
    from pipeline.figures import save_png

    if not config.model:
        raise UserError("Pass the model to evaluate: --model PATH|runs:/...|models:/NAME@ALIAS.")
    if not config.data:
        raise UserError("Pass the dataset to evaluate on: --data DATASET.h5.")
    tracking_uri = tracking.resolve_tracking_uri(config.tracking.tracking_uri)
    if config.model.startswith(("runs:/", "models:/")):
        tracking.set_tracking_uri(tracking_uri)
    bundle = tracking.load_bundle(config.model)
    dataset_path = Path(config.data)
    summary = schema.validate(dataset_path, check_values=False)
    differences = bundle.geometry.differences(summary.geometry)
    if differences:
        raise UserError(
            f"{dataset_path} was recorded with another geometry than the model was trained for: "
            + "; ".join(differences)
            + ". Evaluate on data of the training geometry (or run pipeline.infer)."
        )
    beyond = schema.read_normalization(dataset_path).velocities_beyond(
        bundle.stats.velocity_min_mps,
        bundle.stats.velocity_max_mps,
        subject="its velocities (training split)",
    )
    if beyond is not None:
        logger.warning(
            "%s: %s, the output range of %s: those cells are scored against predictions that stop at its "
            "edge, an error that no training at this range removes.",
            dataset_path, beyond, config.model,
        )  # fmt: skip
    outputs = ("velocity", "edges") if bundle.has_edges else ("velocity",)
    dataset = SeismicDataset(
        dataset_path,
        config.split,
        batch_size=config.batch_size,
        outputs=outputs,
        max_samples=config.max_samples,
        stats=bundle.stats,
    )
    mirror_order = bundle.mirror_order() if config.mirror_average else None
    result = evaluate_model(bundle.model, dataset, bundle.stats, config.edge_threshold, mirror_order)

    name = config.model.replace(":/", "-").replace("/", "-").replace("@", "-").strip("-")
    output_dir = Path(config.output_dir or Path("outputs") / f"evaluation-{name}")
    output_dir.mkdir(parents=True, exist_ok=True)
    from core.atomic import write_text_atomic

    csv_path = write_text_atomic(
        output_dir / f"per_sample_{config.split}.csv", per_sample_csv(result.per_sample)
    )
    figure = worst_samples_figure(result, bundle.stats, config.worst_k, bundle.geometry.grid_spacing_m)
    figure_path = save_png(figure, output_dir / f"worst_{config.split}.png")
    rows = {
        config.split: result.metrics,
        **{f"{config.split} · {f}": m for f, m in result.per_family.items()},
    }
    report = metrics_table(
        rows,
        f"Evaluation of {config.model} on {dataset_path.name} ({config.split}, "
        f"{len(result.per_sample)} samples)",
    )
    report_path = write_text_atomic(output_dir / "report.md", report + "\n")
    (output_dir / "metrics.json").write_text(
        json.dumps({"metrics": result.metrics, "per_family": result.per_family}, indent=2)
    )

    run_id = None
    if config.tracking.enabled:
        trained_by = tracking.run_id_of(config.model, tracking_uri) or bundle.info.get("mlflow_run_id")
        tags = {
            "seisinvert.run_type": "evaluation",
            "seisinvert.model_uri": config.model,
            "seisinvert.evaluated_run_id": str(trained_by),
            "seisinvert.split": config.split,
        }
        with tracking.RunTracker(
            tracking_uri,
            config.tracking.experiment,
            run_name=config.tracking.run_name or f"evaluate {name} on {dataset_path.stem}",
            system_metrics=False,
            tags=tags,
        ) as tracker:
            run_id = tracker.run_id
            tracker.log_config(to_dict(config), to_yaml(config))
            tracker.log_dataset(_dataset_info(dataset_path, summary), context="evaluation")
            prefix = f"{config.split}_"
            tracker.log_metrics({prefix + key: value for key, value in result.metrics.items()})
            for family, values in result.per_family.items():
                tracker.log_metrics({f"{prefix}{family}_{key}": value for key, value in values.items()})
            tracker.log_artifact(csv_path)
            tracker.log_artifact(figure_path)
            tracker.log_artifact(report_path)
            if trained_by and trained_by != "None":
                _link_to_model_run(tracker, trained_by, result.metrics, prefix, config)
    return {
        "metrics": result.metrics,
        "per_family": result.per_family,
        "csv": csv_path,
        "figure": figure_path,
        "report": report,
        "run_id": run_id,
    }


def _dataset_info(path: Path, summary) -> dict[str, Any]:
    from pipeline.lineage import dataset_info

    return dataset_info(path)


def _link_to_model_run(tracker, trained_by: str, metrics: Mapping[str, float], prefix: str, config) -> None:
    """Records the evaluation on the training run too (a tag pointing to the evaluation run)."""
    try:
        tracker.client.set_tag(
            trained_by, f"seisinvert.evaluation.{Path(config.data).stem}.{config.split}", tracker.run_id
        )
    except Exception as error:  # noqa: BLE001 - the link is a convenience
        logger.warning("Could not tag the training run %s: %s", trained_by, error)


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "python -m pipeline.evaluate",
        "Evaluate a trained model on a labelled dataset split: metrics table, per-sample CSV and worst-k "
        "figure, logged to MLflow as an evaluation run linked to the training run.",
        examples=[
            "python -m pipeline.evaluate --model models:/seisinvert-unet@champion --data data/cfb.h5 --split test",
            "python -m pipeline.evaluate --model runs:/<run_id>/model --data data/other.h5 --out reports/other",
            "python -m pipeline.evaluate --model outputs/<run_id>/bundle --data data/cfb.h5 --no-tracking",
        ],
    )
    parser.add_argument("--model", help="bundle folder, runs:/<run_id>/model or models:/<name>@<alias>")
    parser.add_argument("--data", help="labelled dataset (.h5)")
    parser.add_argument("--split", choices=("train", "val", "test"), help="split to evaluate (default test)")
    parser.add_argument("--tracking-uri", help="MLflow store (default sqlite:///mlflow.db)")
    parser.add_argument("--experiment", help="MLflow experiment of the evaluation run")
    parser.add_argument("--out", dest="output_dir", help="folder for report, CSV and figure")
    parser.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    parser.add_argument(
        "--mirror-average",
        action="store_true",
        default=None,
        help="also predict every sample mirrored left to right and average the two (test-time augmentation)",
    )
    add_config_arguments(parser)
    add_common_arguments(parser)
    return parser


def _main(args: argparse.Namespace) -> int:
    values = {
        "model": args.model,
        "data": args.data,
        "split": args.split,
        "tracking": {"tracking_uri": args.tracking_uri, "experiment": args.experiment},
        "output_dir": args.output_dir,
        "mirror_average": args.mirror_average,
    }
    if args.no_tracking:
        values["tracking"]["enabled"] = False
    config = load_config(EvaluateConfig, files=args.config, values=values, overrides=args.overrides)
    result = evaluate(config)
    print(result["report"])
    print(f"per-sample metrics: {result['csv']}\nworst samples: {result['figure']}")
    if result["run_id"]:
        print(f"MLflow evaluation run: {result['run_id']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
