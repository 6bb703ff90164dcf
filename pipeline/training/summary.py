"""``run_summary.json``: what a training run did, in seconds and metrics, for scripts rather than eyes.

Pipeline position: ``pipeline.training.trainer`` writes it beside the bundle (``<output_dir>/<run_id>/``) and
logs it as an MLflow artifact; ``benchmarks/default_run.py`` reads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.training.config import TrainConfig

#: The machine-readable summary of a run, written beside its bundle and logged as an MLflow artifact.
RUN_SUMMARY_FILE = "run_summary.json"


def run_summary(
    config: TrainConfig,
    *,
    run_id: str | None,
    dataset_path: Path,
    history: Sequence[Mapping[str, float]],
    best_epoch: int,
    planned_epochs: int,
    stopped_early: bool,
    budget_cut: bool,
    test_metrics: Mapping[str, float],
    outcome: Mapping[str, Any],
    started: float,
    marks: Mapping[str, float],
    test_per_family: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """What a run did, in seconds and metrics, for scripts (``benchmarks/default_run.py``) rather than eyes.

    Phases (seconds, wall clock): ``data`` (synthesis/ingest of the default dataset if needed, opening the
    splits), ``setup`` (model build, compile call, MLflow run start), ``first_epoch`` (XLA compilation and the
    training split's first read happen in it), ``epochs`` (the whole epoch loop: steps, per-epoch metrics,
    checkpoints, images), ``evaluation`` (best weights restored, the test split evaluated), ``bundle_and_registry``
    (bundle saved, model logged and registered), ``total``. ``compilation_estimate`` is the first epoch's
    duration less the median of the others (None with one epoch). ``test_metrics_per_family``: the test
    metrics of each family (datasets with several; empty otherwise).
    """
    epoch_times = [float(logs.get("epoch_time_s", float("nan"))) for logs in history]
    steady = float(np.median(epoch_times[1:])) if len(epoch_times) > 1 else None

    def between(first: str, last: str) -> float | None:
        return float(marks[last] - marks[first]) if first in marks and last in marks else None

    return {
        "format": "seisinvert-run-summary",
        "format_version": 1,
        "run_id": run_id,
        "model": config.model,
        "dataset": str(dataset_path),
        "epochs": {
            "configured": config.epochs,
            "planned": planned_epochs,
            "run": len(history),
            "best": best_epoch + 1 if history else None,
            "stopped_early": stopped_early,
            "budget_cut": budget_cut,
        },
        "budget_s": {
            "max_total_time_s": config.max_total_time_s,
            "max_train_time_s": config.max_train_time_s,
        },
        "phases_s": {
            "data": float(marks["data_ready"] - started) if "data_ready" in marks else None,
            "setup": between("data_ready", "loop_started"),
            "first_epoch": epoch_times[0] if epoch_times else None,
            "steady_epoch_median": steady,
            "compilation_estimate": (epoch_times[0] - steady) if steady is not None else None,
            "epochs": between("loop_started", "loop_ended"),
            "evaluation": between("loop_ended", "evaluated"),
            "bundle_and_registry": between("evaluated", "finished"),
            "total": float(marks["finished"] - started) if "finished" in marks else None,
        },
        "epoch_times_s": epoch_times,
        "test_metrics": {key: float(value) for key, value in test_metrics.items()},
        "test_metrics_per_family": {
            family: {key: float(value) for key, value in metrics.items()}
            for family, metrics in (test_per_family or {}).items()
        },
        "registered_model": outcome.get("registered_model"),
        "model_version": outcome.get("version"),
        "champion": bool(outcome.get("champion")),
        "model_uri": outcome.get("model_uri"),
    }
