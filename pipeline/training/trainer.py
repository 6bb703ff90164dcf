"""``train(config)``: train a model on an HDF5 dataset with one ``fit`` call, evaluate it, log and register it.

Pipeline position: after ``data_prep.ingest`` (or ``data_prep.openfwi``); ``python -m pipeline.train`` (the
CLI, ``pipeline/train.py``) and ``pipeline.compare`` call it. Its outputs are an MLflow run (config,
per-epoch metrics, images, system metrics, dataset lineage), a model bundle (``outputs/<run_id>/bundle``, see
``pipeline.bundle``), ``run_summary.json`` and a registered pyfunc model version (alias ``champion`` for the
best by validation SSIM), which ``pipeline.evaluate`` and ``pipeline.infer`` use.

``train`` reads as the run does: resolve the checkpoint (``--resume``), set up distribution, precision and
seeds, open the data, build and compile the model, start the MLflow run, ``fit`` with the callbacks of
``pipeline.training.callbacks`` (data order, metrics, early stopping, time budget, checkpoint, logging,
images, lines), then evaluate on the test split, save the bundle, log and register the model and write the
run summary. Every epoch ends with a checkpoint written atomically; ``--resume`` restores it, continues the
same MLflow run and logs only the epochs MLflow does not have yet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import write_text_atomic
from core.config import config_hash, from_dict, to_dict, to_yaml
from core.errors import ConfigError, UserError
from pipeline.lineage import dataset_info
from pipeline.training.checkpointing import Checkpointer, find_checkpoint, restore_rng_state
from pipeline.training.config import TrainConfig, TrainResult
from pipeline.training.default_dataset import ensure_default_dataset
from pipeline.training.distribution import (
    Distribution,
    inference_model,
    seed_everything,
    setup_distribution,
    setup_precision,
)
from pipeline.training.summary import RUN_SUMMARY_FILE, run_summary


def train(
    config: TrainConfig,
    resume: str | bool | None = None,
    echo=print,
    parent_run_id: str | None = None,
    extra_tags: Mapping[str, str] | None = None,
) -> TrainResult:
    """Trains ``config.model`` on the dataset, evaluates, logs to MLflow and registers the model.

    Args:
        config: the resolved configuration.
        resume: a run id (or True for the latest unfinished run) to continue from its checkpoint; the
            configuration is then the checkpoint's (``config`` only supplies the checkpoint folder).
        echo: where progress lines go (``print`` by default; a no-op silences training).
        parent_run_id: log as a child run of this MLflow run (model comparison).
        extra_tags: tags of a new run.

    Returns:
        A ``TrainResult``.
    """
    from pipeline.training.callbacks import training_callbacks

    started = time.monotonic()
    config, state = _checkpoint_to_resume(config, resume, echo)
    distribution = setup_distribution(config.runtime.distribution)
    policy = setup_precision(config.runtime.mixed_precision)
    seed_everything(config.runtime.seed, config.runtime.deterministic)

    dataset_path = _dataset_path(config, state, echo)
    info = dataset_info(dataset_path)
    # The families this run learns from: data.families filters the dataset's (the bundle and its children's
    # lineage must name these, not every family the file holds).
    info["trained_families"] = sorted(config.data.families) if config.data.families else info["families"]
    model, family_config, parent = _build_model(config, dataset_path, info, distribution, echo)
    data = _open_data(config, dataset_path, model, distribution, parent)
    _check_velocity_range(dataset_path, data.stats, family_config, parent, echo)
    run = _training_run(config, state)
    schedule, evaluator = _compile(config, model, data, run.planned_epochs, distribution)
    tracker = _start_tracking(
        config, state, dataset_path, family_config, parent, distribution, parent_run_id, extra_tags
    )
    run_id = (
        tracker.run_id if tracker.enabled else (state["run_id"] if state else f"local-{int(time.time())}")
    )
    session = Session(config, dataset_path, info, model, family_config, data, distribution, tracker, run_id)
    try:
        if state is None:
            _log_new_run(session, policy, echo)
        else:
            session.checkpointer.restore(model, state)
            restore_rng_state(state.get("rng", {}))
        callbacks = training_callbacks(
            config, run, data, evaluator, schedule, tracker, session.checkpointer, family_config, distribution,
            identity=session.checkpoint_identity(), budget=state is None, started=started,
            test_samples=info["split_sizes"]["test"], echo=echo,
        )  # fmt: skip
        model.fit(
            data.train.as_tf_dataset() if data.multi_worker else data.train,
            initial_epoch=run.start_epoch,
            epochs=run.planned_epochs,
            verbose=0,
            callbacks=callbacks,
        )
        result = _finish(session, run, started, echo)
    except KeyboardInterrupt:
        tracker.end("KILLED")
        raise
    except BaseException:
        tracker.end("FAILED")
        raise
    tracker.end("FINISHED")
    if tracker.enabled and config.tracking.enabled:
        from pipeline.tracking import dashboard_command

        echo(f"MLflow run {run_id} in {tracker.tracking_uri}")
        echo(f"dashboard: {dashboard_command(tracker.tracking_uri)}")
    return result


@dataclass
class TrainingData:
    """The splits a run reads: ``train`` (shuffled, augmented, curriculum), ``val``, ``metrics`` (the first
    training samples, for the training metrics; None when off), their statistics and the epoch's steps."""

    train: Any
    val: Any
    metrics: Any
    stats: Any
    outputs: tuple[str, ...]
    steps_per_epoch: int
    multi_worker: bool


@dataclass
class Session:
    """What ``train`` sets up before ``fit`` and hands to what runs after it."""

    config: TrainConfig
    dataset_path: Path
    info: dict[str, Any]
    model: Any
    family_config: Any
    data: TrainingData
    distribution: Distribution
    tracker: Any
    run_id: str

    def __post_init__(self) -> None:
        root = Path(self.config.runtime.checkpoint_dir)
        self.checkpointer = Checkpointer(root / str(self.run_id), enabled=self.distribution.is_chief)

    @property
    def mlflow_run_id(self) -> str | None:
        return self.run_id if self.tracker.enabled else None

    def checkpoint_identity(self) -> dict[str, Any]:
        """What the checkpoint records about the run besides the training state (``--resume`` reads it)."""
        return {
            "run_id": self.run_id,
            "tracking_uri": self.tracker.tracking_uri,
            "experiment": self.config.tracking.experiment,
            "dataset_path": str(self.dataset_path.resolve()),
            "config": to_dict(self.config),
        }


# ----------------------------------------------------------------------------------------------------------
# Before fit
# ----------------------------------------------------------------------------------------------------------


def _checkpoint_to_resume(config: TrainConfig, resume, echo) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The configuration to run and the checkpoint state to continue from (None for a new run)."""
    if not resume:
        return config, None
    directory = find_checkpoint(config.runtime.checkpoint_dir, resume if isinstance(resume, str) else None)
    state = Checkpointer(directory).load_state()
    echo(f"resuming run {state['run_id']} after epoch {state['epoch'] + 1} from {directory}")
    return from_dict(TrainConfig, state["config"]), state


def _dataset_path(config: TrainConfig, state, echo) -> Path:
    if state is not None:
        return Path(state["dataset_path"])
    if config.data.path:
        path = Path(config.data.path)
        if not path.is_file():
            raise UserError(
                f"Dataset {path} does not exist: build it with data_prep.ingest, or leave "
                "--data out to use the default dataset."
            )
        return path
    return ensure_default_dataset(config.data.default, echo)


def _build_model(config: TrainConfig, dataset_path: Path, info, distribution: Distribution, echo):
    """The model (built in the distribution's scope), its family config and the fine-tuning parent (or None)."""
    import models  # noqa: F401 - registers custom objects
    from models.presets import build_model, resolve_model_config

    if not info["grid_shape"]:
        raise UserError(f"{dataset_path} holds no velocity models: training needs a labelled dataset.")
    parent = None
    if config.init_from:
        from data_prep import schema
        from pipeline import fine_tuning

        parent = fine_tuning.load_parent(config.init_from)
        with schema.open_dataset(dataset_path) as h5:
            fine_tuning.check_geometry(parent, schema.read_geometry(h5), dataset_path)
        family_config, edge_head = fine_tuning.parent_architecture(parent)
    else:
        options = dict(config.model_options)
        if options.get("moveout_scan"):
            options["moveout_scan"] = _moveout_scan(options["moveout_scan"], dataset_path)
        family_config, edge_head = resolve_model_config(
            config.model, options, info["seismic_shape"], info["grid_shape"]
        )
    with distribution.scope():
        model = build_model(family_config, edge_head)
        if parent is not None:
            fine_tuning.copy_weights(parent.bundle.model, model, parent.address)
            if config.freeze:
                frozen = fine_tuning.freeze(model, config.freeze)
                echo(f"fine-tuning: {len(frozen)} {config.freeze} layers of {config.init_from} frozen")
    if parent is not None:
        families = fine_tuning.trained_families(parent.bundle.info) or ["?"]
        echo(
            f"fine-tuning {config.init_from} ({family_config.family}, trained on {', '.join(families)}): its "
            "architecture, weights and normalisation statistics"
        )
    return model, family_config, parent


def _check_velocity_range(dataset_path: Path, model_stats, family_config, parent, echo) -> None:
    """Warns when the training velocities reach beyond the range the model's bounded output maps to (the
    dataset's own range, or the fine-tuning parent's): those cells would be learnt, and predicted, at its edge."""
    from data_prep import schema

    if getattr(family_config, "velocity_activation", "tanh") != "tanh":
        return
    low, high = model_stats.velocity_min_mps, model_stats.velocity_max_mps
    own = schema.read_normalization(dataset_path)
    beyond = own.velocities_beyond(low, high)
    if beyond is None:
        return
    wider = own.covering_range_mps(low, high)
    if parent is not None:
        remedy = (
            f"A fine-tuned model keeps its parent's range ({parent.address}); to reach them, train from scratch "
            f"on data ingested with --set 'normalization.velocity_range_mps=[{wider[0]:g}, {wider[1]:g}]'."
        )
    else:
        remedy = (
            f"Ingest the data again with --set 'normalization.velocity_range_mps=[{wider[0]:g}, {wider[1]:g}]' "
            "(or null: the training split's own range)."
        )
    echo(
        f"warning: {dataset_path}: {beyond}, which this model's output (tanh) cannot reach: those cells are "
        f"learnt and predicted at the range's edge. {remedy}"
    )


def _moveout_scan(options, dataset_path: Path) -> dict:
    """``model_options.moveout_scan`` completed with the dataset's geometry (``models.moveout``)."""
    from data_prep import schema
    from data_prep.wavelets import openfwi_ricker_delay_s
    from models.moveout import scan_from_geometry

    with schema.open_dataset(dataset_path) as h5:
        geometry = schema.read_geometry(h5)
    try:
        return scan_from_geometry(
            options,
            sample_interval_s=geometry.sample_interval_s,
            start_time_s=geometry.start_time_s,
            source_x_m=geometry.source_positions_m[:, 1],
            receiver_x_m=geometry.receiver_positions_m[:, 1],
            # OpenFWI's 15 Hz Ricker; data with other sources set model_options.moveout_scan.wavelet_delay_s.
            default_wavelet_delay_s=openfwi_ricker_delay_s(15.0, geometry.sample_interval_s),
        )
    except ValueError as error:
        raise ConfigError(f"{dataset_path}: {error}") from None


def _open_data(
    config: TrainConfig, dataset_path: Path, model, distribution: Distribution, parent
) -> TrainingData:
    from pipeline.feeding import SeismicDataset

    outputs = tuple(name for name in ("velocity", "edges") if name in model.output_names)
    multi_worker = distribution.name == "multi_worker_mirrored"
    if multi_worker and config.batch_size % distribution.workers:
        raise UserError(
            f"batch_size {config.batch_size} is not a multiple of the {distribution.workers} workers: every worker "
            "reads an equal part of each global batch."
        )
    common = {
        "batch_size": config.batch_size,
        "outputs": outputs,
        "families": config.data.families or None,
        "workers": config.data.workers,
        "use_multiprocessing": config.data.use_multiprocessing,
        "max_queue_size": config.data.max_queue_size,
        "cache": config.data.cache,
        # A fine-tuned model keeps seeing inputs on its parent's scale, and carries those numbers onwards.
        "stats": parent.bundle.stats if parent is not None else None,
        "shard": (distribution.worker_index, distribution.workers) if multi_worker else (0, 1),
    }
    train = SeismicDataset(
        dataset_path,
        "train",
        shuffle=True,
        seed=config.runtime.seed,
        drop_remainder=True,
        max_samples=config.data.max_train_samples,
        augmentation=config.data.augmentation,
        **common,
    )
    # Data parallel: every replica needs an equal part of every batch (and every worker the same number of
    # steps), so a last partial validation batch is left out there.
    held_out = {**common, "drop_remainder": distribution.replicas > 1}
    val = SeismicDataset(dataset_path, "val", max_samples=config.data.max_val_samples, **held_out)
    metrics = None
    if config.data.train_metric_samples > 0:
        count = min(config.data.train_metric_samples, train.num_samples)
        metrics = SeismicDataset(dataset_path, "train", max_samples=count, **held_out)
    return TrainingData(train, val, metrics, val.stats, outputs, len(train), multi_worker)


def _training_run(config: TrainConfig, state):
    """The state the callbacks share: a new run's, or the checkpoint's (history, best epoch, plan)."""
    from pipeline.training.callbacks import TrainingRun

    marks = {"data_ready": time.monotonic()}  # the run summary's phases (run_summary.json)
    if state is None:
        return TrainingRun(start_epoch=0, planned_epochs=config.epochs, marks=marks)
    return TrainingRun(
        start_epoch=int(state["epoch"]) + 1,
        planned_epochs=int(state.get("planned_epochs", config.epochs)),
        history=list(state["history"]),
        best=dict(state["best"]),
        wait=int(state.get("wait", 0)),
        marks=marks,
    )


def _compile(config: TrainConfig, model, data: TrainingData, planned_epochs: int, distribution: Distribution):
    """Compiles ``model`` with its losses only and builds the evaluator that measures the metrics after each
    epoch (``validation_model``: shares every weight). Returns ``(schedule, evaluator)``."""
    from models.losses import build_losses
    from models.metrics import build_metrics
    from pipeline.training.callbacks import validation_model
    from pipeline.training.optimization import build_optimizer, learning_rate_schedule

    schedule = learning_rate_schedule(config.optimizer, data.steps_per_epoch, planned_epochs)
    losses, loss_weights = build_losses(config.loss, data.outputs)
    with distribution.scope():
        model.compile(
            optimizer=build_optimizer(config.optimizer, schedule),
            loss=losses,
            loss_weights=loss_weights,
            jit_compile=config.runtime.jit_compile,
        )
        metrics = build_metrics(data.outputs, normalization=data.stats)
        evaluator = validation_model(model, losses, loss_weights, metrics, config.runtime.jit_compile)
    return schedule, evaluator


def _start_tracking(
    config, state, dataset_path, family_config, parent, distribution, parent_run_id, extra_tags
):
    """The run's ``RunTracker``, started: a new MLflow run, or the checkpoint's run continued."""
    from pipeline import fine_tuning, tracking

    tracking_uri = (
        state["tracking_uri"] if state else tracking.resolve_tracking_uri(config.tracking.tracking_uri)
    )
    tracker = tracking.RunTracker(
        tracking_uri,
        config.tracking.experiment,
        run_name=config.tracking.run_name or f"{config.model} on {dataset_path.stem}",
        run_id=state["run_id"] if state else None,
        parent_run_id=parent_run_id,
        system_metrics=config.tracking.system_metrics,
        system_metrics_interval_s=config.tracking.system_metrics_interval_s,
        enabled=config.tracking.enabled and distribution.is_chief,
        tags={
            **(extra_tags or {}),
            "seisinvert.run_type": "training",
            "seisinvert.model": family_config.family if parent is not None else config.model,
            **(fine_tuning.lineage_tags(parent, config.freeze) if parent is not None else {}),
        },
    )
    return tracker.start()


def _log_new_run(session: Session, policy: str, echo) -> None:
    """What a new run logs once: configuration, resolved runtime, model config, dataset lineage, tags."""
    config, tracker, model, info = session.config, session.tracker, session.model, session.info
    tracker.log_config(to_dict(config), to_yaml(config))
    tracker.log_params(
        {
            "model.family": session.family_config.family,
            "model.parameters": int(model.count_params()),
            "runtime.dtype_policy": policy,
            # What runtime.distribution (a config param, "auto" by default) resolved to on this machine.
            "runtime.strategy": session.distribution.name,
            "runtime.replicas": session.distribution.replicas,
            "data.steps_per_epoch": session.data.steps_per_epoch,
        }
    )
    tracker.log_text(json.dumps(to_dict(session.family_config), indent=2), "model_config.json")
    tracker.log_dataset(info)
    tracker.set_tags(
        {
            "seisinvert.checkpoint_dir": str(session.checkpointer.directory.resolve()),
            "seisinvert.dataset": info["path"],
        }
    )
    sizes = info["split_sizes"]
    echo(
        f"model {config.model}: {model.count_params():,} parameters; data {session.dataset_path} "
        f"({sizes['train']} train / {sizes['val']} val / {sizes['test']} test samples; "
        f"{session.data.steps_per_epoch} steps of {config.batch_size} per epoch)"
    )


# ----------------------------------------------------------------------------------------------------------
# After fit
# ----------------------------------------------------------------------------------------------------------


def _finish(session: Session, run, started: float, echo) -> TrainResult:
    """Evaluates the kept weights on the test split, saves the bundle, logs and registers the model, writes
    the run summary and marks the checkpoint finished."""
    config, tracker, distribution = session.config, session.tracker, session.distribution
    inference = inference_model(session.model, session.family_config, distribution)
    test = _evaluate_test(session, inference)
    run.marks["evaluated"] = time.monotonic()
    best_logs = run.history[run.best_epoch] if run.history else {}
    val_logs = {key: value for key, value in best_logs.items() if key.startswith("val_")}
    tracker.log_metrics({"best_epoch": run.best_epoch, **{f"best_{k}": v for k, v in val_logs.items()}})

    bundle_dir, summary_path = None, None
    outcome = {"model_uri": None, "registered_model": None, "version": None, "champion": False}
    if distribution.is_chief:
        bundle_dir = _save_bundle(session, run, inference, test)
        registered_name = None
        if config.tracking.register:
            registered_name = (
                config.tracking.registered_model_name or f"seisinvert-{session.family_config.family}"
            )
        outcome = tracker.log_bundle_model(bundle_dir, registered_name, best_logs.get("val_velocity_ssim"))
        if test is not None:
            from pipeline.evaluate import metrics_table

            echo(
                metrics_table(
                    {"test": test.metrics, **{f"test · {f}": m for f, m in test.per_family.items()}},
                    f"Test metrics ({len(test.per_sample)} samples; MAE/RMSE on OpenFWI's [-1, 1] "
                    "scale, SSIM on [0, 1], m/s after denormalisation):",
                )
            )
        echo(f"bundle: {bundle_dir}")
        if outcome.get("registered_model"):
            from pipeline.tracking import CHAMPION_ALIAS

            echo(
                f"registered model: models:/{outcome['registered_model']}/{outcome['version']}"
                + (f" (alias {CHAMPION_ALIAS})" if outcome.get("champion") else "")
            )
    wall = time.monotonic() - started
    tracker.log_metrics({"wall_time_s": wall})
    test_metrics = test.metrics if test is not None else {}
    if distribution.is_chief:
        summary = run_summary(
            config,
            run_id=session.mlflow_run_id,
            dataset_path=session.dataset_path,
            history=run.history,
            best_epoch=run.best_epoch,
            planned_epochs=run.planned_epochs,
            stopped_early=run.stopped_early,
            budget_cut=run.budget_cut,
            test_metrics=test_metrics,
            outcome=outcome,
            started=started,
            marks={**run.marks, "finished": started + wall},
            test_per_family=test.per_family if test is not None else {},
        )
        summary_path = Path(config.runtime.output_dir) / str(session.run_id) / RUN_SUMMARY_FILE
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(summary_path, json.dumps(summary, indent=2) + "\n")
        tracker.log_text(json.dumps(summary, indent=2), RUN_SUMMARY_FILE)
        echo(f"run summary: {summary_path}")
    checkpointer = session.checkpointer
    if run.history:
        checkpointer.mark_finished(
            {**checkpointer.load_state(), "finished": True} if checkpointer.enabled else {}
        )
    return TrainResult(
        run_id=session.mlflow_run_id,
        history=run.history,
        best_epoch=run.best_epoch,
        test_metrics=test_metrics,
        test_per_family=test.per_family if test is not None else {},
        bundle_dir=bundle_dir,
        model_uri=outcome.get("model_uri"),
        registered_model=outcome.get("registered_model"),
        model_version=outcome.get("version"),
        champion=bool(outcome.get("champion")),
        wall_time_s=wall,
        dataset_path=session.dataset_path,
        stopped_early=run.stopped_early,
        model=inference,
        distribution=distribution.name,
        replicas=distribution.replicas,
        summary_path=summary_path,
    )


def _evaluate_test(session: Session, inference):
    """The test evaluation (``pipeline.evaluate``), logged with its per-sample CSV and worst-samples figure;
    None when ``evaluate_test`` is off or on a worker that is not the chief."""
    config, data, tracker = session.config, session.data, session.tracker
    if not (config.evaluate_test and session.distribution.is_chief):
        return None
    from pipeline.evaluate import evaluate_model, per_sample_csv, worst_samples_figure
    from pipeline.feeding import SeismicDataset

    test_data = SeismicDataset(
        session.dataset_path,
        "test",
        batch_size=config.batch_size,
        outputs=data.outputs,
        families=config.data.families or None,
        max_samples=config.data.max_test_samples,
        stats=data.stats,
    )
    evaluation = evaluate_model(inference, test_data, data.stats)
    tracker.log_metrics({f"test_{key}": value for key, value in evaluation.metrics.items()})
    for family, values in evaluation.per_family.items():
        tracker.log_metrics({f"test_{family}_{key}": value for key, value in values.items()})
    tracker.log_text(per_sample_csv(evaluation.per_sample), "evaluation/per_sample_test.csv")
    tracker.log_image_file(
        worst_samples_figure(evaluation, data.stats, 4, data.val.geometry.grid_spacing_m),
        "evaluation/worst_test.png",
    )
    return evaluation


def _save_bundle(session: Session, run, inference, test) -> Path:
    """The bundle (``pipeline.bundle``) at ``<output_dir>/<run_id>/bundle``: the kept model, statistics,
    geometry, engine settings, lineage and the training's outcome."""
    from data_prep import schema
    from pipeline.bundle import amplitude_statistics, save_bundle

    config, data = session.config, session.data
    with schema.open_dataset(session.dataset_path) as h5:
        engine_settings = schema.read_engine_settings(h5)
    # The training data's amplitude range, from up to 128 samples drawn with a fixed seed.
    chosen = np.random.default_rng(0).choice(
        data.train.indices, size=min(128, len(data.train.indices)), replace=False
    )
    seismic, _, _ = data.train.read(np.sort(chosen))
    best_logs = run.history[run.best_epoch] if run.history else {}
    return save_bundle(
        Path(config.runtime.output_dir) / str(session.run_id) / "bundle",
        inference,
        stats=data.stats,
        geometry=data.val.geometry,
        engine_settings=engine_settings,
        dataset_info=session.info,
        amplitude_stats=amplitude_statistics(seismic),
        family=session.family_config.family,
        extra={
            "mlflow_run_id": session.mlflow_run_id,
            "model_config": to_dict(session.family_config),
            "edge_head": "edges" in inference.output_names,
            "training": {
                "best_epoch": run.best_epoch,
                "epochs_run": len(run.history),
                "val_metrics": {k: v for k, v in best_logs.items() if k.startswith("val_")},
                "test_metrics": test.metrics if test is not None else {},
                "config_hash": config_hash(config),
            },
        },
    )
