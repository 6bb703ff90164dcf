"""The Keras callbacks of a training run: what happens around each epoch of the one ``fit`` call.

Pipeline position: ``pipeline.training.trainer.train`` builds them (``training_callbacks``) and passes them to
``model.fit``; the time budget's callback is in ``pipeline.training.budget``.

In the order ``fit`` runs them:

* ``EpochData``: the epoch's data — curriculum stage, sample order (``SeismicDataset.set_epoch``), seeds;
* ``ProgressLines``: plain periodic lines within an epoch;
* ``EpochMetrics``: the metrics of the epoch, measured in inference mode on a training subset and on the
  validation split, plus learning rate and speed; appended to the run's history;
* ``BestEpoch``: Keras' ``EarlyStopping`` on ``val_loss``, resumable (its state comes from the checkpoint);
* ``TimeBudget`` (``pipeline.training.budget``);
* ``Checkpoint``: the checkpoint after every epoch, and the best epoch's weights restored at the end;
* ``MetricLogging``: the epoch's metrics to the MLflow run (through ``pipeline.tracking.RunTracker``; a resumed
  run first logs the epochs the checkpoint has and MLflow does not);
* ``ValidationImages``: the validation image series;
* ``EpochLines``: the epoch's line, then why training stops.

``mlflow.keras.MlflowCallback`` is not used: it logs the optimizer's settings as params of its own names and
every epoch unconditionally, while a resumed run must skip the steps MLflow already has, and the metrics logged
here are measured by ``EpochMetrics``, not by the train step. Keras' ``BackupAndRestore`` is not used either
(see ``pipeline.training.checkpointing``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from pipeline.training.checkpointing import CHECKPOINT_FORMAT, Checkpointer, rng_state
from pipeline.training.config import CurriculumStage, TrainConfig, stage_for
from pipeline.training.distribution import Distribution, inference_model
from pipeline.training.optimization import current_learning_rate


@dataclass
class TrainingRun:
    """What the callbacks of one ``fit`` share and ``train`` reads afterwards.

    Attributes:
        start_epoch: the first epoch of this ``fit`` (after a resume: the epoch after the checkpoint's).
        planned_epochs: the epochs the schedule spans (the time budget may shrink it).
        history: one dict of logs per completed epoch (the checkpoint's first, after a resume).
        best: ``{"epoch", "val_loss", "val_velocity_ssim"}`` of the lowest ``val_loss`` so far.
        wait: epochs since the best one (early stopping).
        stopped_early: early stopping or the time budget ended training.
        budget_cut: the time budget cut the configured epochs (its line was printed).
        after_epoch_lines: lines printed after the current epoch's line (why training stops).
        marks: ``time.monotonic()`` of the run's phases (``run_summary.json``).
    """

    start_epoch: int
    planned_epochs: int
    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"epoch": -1, "val_loss": math.inf})
    wait: int = 0
    stopped_early: bool = False
    budget_cut: bool = False
    after_epoch_lines: list[str] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)

    @property
    def best_epoch(self) -> int:
        """The epoch whose weights are kept: the lowest ``val_loss``, or the last without any."""
        return self.best["epoch"] if self.best["epoch"] >= 0 else len(self.history) - 1


class EpochData(keras.callbacks.Callback):
    """Fixes what each epoch sees before ``fit`` asks for its first batch: the curriculum stage (families,
    shots), the sample order of ``(seed, epoch)`` and the seeds of the epoch, so that the data order depends
    on the seed and the epoch only (and a resumed run sees what the interrupted one would have)."""

    def __init__(self, config: TrainConfig, run: TrainingRun, train_data, echo=print) -> None:
        super().__init__()
        self.config = config
        self.run = run
        self.train_data = train_data
        self.echo = echo
        self.stage = stage_for(config, run.start_epoch)
        if self.stage is not None:  # before fit reads its first batches (and fills a cache)
            self._apply(self.stage)

    def _apply(self, stage: CurriculumStage | None) -> None:
        families = (stage.families if stage and stage.families else None) or self.config.data.families or None
        self.train_data.set_stage(families, stage.active_shots if stage else None)

    def on_train_begin(self, logs=None):
        self.run.marks["loop_started"] = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        stage = stage_for(self.config, epoch)
        if stage != self.stage:
            self._apply(stage)
            self.stage = stage
            if stage is None:
                self.echo(f"curriculum: every family and shot from epoch {epoch + 1}")
        if stage is not None and (
            epoch == self.run.start_epoch or stage != stage_for(self.config, epoch - 1)
        ):
            self.echo(
                f"curriculum stage: epochs {epoch + 1}.. families {list(stage.families) or 'all'}, "
                f"shots {stage.active_shots or 'all'}"
            )
        keras.utils.set_random_seed(self.config.runtime.seed * 100_003 + epoch)
        self.train_data.set_epoch(epoch)

    def on_train_end(self, logs=None):
        self.run.marks["loop_ended"] = time.monotonic()


class ProgressLines(keras.callbacks.Callback):
    """Plain periodic lines within an epoch (readable in logs; no carriage returns)."""

    def __init__(self, run: TrainingRun, interval_s: float, steps: int, batch_size: int, echo=print) -> None:
        super().__init__()
        self.run = run
        self.interval_s = interval_s
        self.steps = steps
        self.batch_size = batch_size
        self.echo = echo

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.started = time.monotonic()
        self.last = self.started
        self.first_step_s = None

    def on_train_batch_end(self, batch, logs=None):
        now = time.monotonic()
        if self.first_step_s is None:
            # The first step of an epoch may include tracing/compilation: not a speed.
            self.first_step_s = now - self.started
            self.last = now
            return
        if self.interval_s > 0 and now - self.last >= self.interval_s and batch + 1 < self.steps:
            self.last = now
            done = batch + 1
            rate = batch * self.batch_size / max(1e-9, now - self.started - self.first_step_s)
            remaining = (self.steps - done) * self.batch_size / rate if rate > 0 else float("nan")
            loss = (logs or {}).get("loss")
            self.echo(
                f"  epoch {self.epoch + 1}/{self.run.planned_epochs}  step {done}/{self.steps}  loss "
                f"{float(loss):.4f}  {rate:.1f} samples/s  epoch ends in ~{remaining:.0f} s"
            )


class EpochMetrics(keras.callbacks.Callback):
    """Completes the epoch's logs and appends them to the run's history.

    The train step computes the losses only; the metrics (MAE, SSIM, edge F1...) are measured after the epoch
    by ``evaluator`` (``validation_model``: shares every weight) in inference mode: on the first training
    samples (``metric_data``; non-loss keys) and on the validation split (``val_`` keys). Then
    ``learning_rate``, ``epoch_time_s`` and ``train_samples_per_s``.
    """

    def __init__(self, run: TrainingRun, evaluator, train_data, val_data, metric_data, as_tf: bool) -> None:
        super().__init__()
        self.run = run
        self.evaluator = evaluator
        self.train_data = train_data
        self.val_data = val_data
        self.metric_data = metric_data
        self.as_tf = as_tf  # multi-worker: the datasets go to Keras as tf.data pipelines

    def _evaluate(self, data) -> dict[str, float]:
        measured = self.evaluator.evaluate(
            data.as_tf_dataset() if self.as_tf else data, verbose=0, return_dict=True
        )
        return {key: float(value) for key, value in measured.items()}

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs.update({key: float(value) for key, value in logs.items()})
        if self.metric_data is not None:
            measured = self._evaluate(self.metric_data)
            logs.update({key: value for key, value in measured.items() if not key.endswith("loss")})
        logs.update({f"val_{key}": value for key, value in self._evaluate(self.val_data).items()})
        seconds = time.monotonic() - self.started
        logs["learning_rate"] = current_learning_rate(self.model.optimizer)
        logs["epoch_time_s"] = seconds
        logs["train_samples_per_s"] = self.train_data.num_samples / seconds
        self.run.history.append(dict(logs))


def validation_model(model, losses, loss_weights, metrics, jit_compile: bool):
    """A compiled model that shares every weight of ``model`` and computes its losses and metrics.

    The trained model is compiled with its losses only, so the train step spends nothing on metrics; this
    one measures the metrics (``evaluate``) on held-out data after each epoch. Build it in the scope that
    built ``model``.
    """
    inputs = keras.Input(shape=tuple(model.inputs[0].shape[1:]), name="seismic")
    evaluator = keras.Model(inputs, model(inputs), name=f"{model.name}_validation")
    evaluator.compile(loss=losses, loss_weights=loss_weights, metrics=metrics, jit_compile=jit_compile)
    return evaluator


class BestEpoch(keras.callbacks.EarlyStopping):
    """Keras' ``EarlyStopping`` on ``val_loss`` that keeps the run's best epoch and can be resumed.

    It starts from the run's ``best`` and ``wait`` (a resumed run's come from its checkpoint) instead of
    forgetting them in ``on_train_begin``, records the best epoch in the run for the checkpoint, and
    ``patience=0`` means "never stop" (the best epoch is still tracked). The best weights are restored by
    ``Checkpoint`` from its file, which outlives the process, not from memory.
    """

    def __init__(self, run: TrainingRun, patience: int, min_delta: float) -> None:
        super().__init__(monitor="val_loss", mode="min", min_delta=min_delta, patience=patience or 2**62)
        self.run = run
        self.stopping = patience > 0

    def on_train_begin(self, logs=None):
        self.wait = self.run.wait
        self.best = self.run.best["val_loss"]
        self.best_epoch = self.run.best["epoch"]
        self.stopped_epoch = 0
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.best_epoch == epoch:
            self.run.best = {
                "epoch": epoch,
                "val_loss": float(logs["val_loss"]),
                "val_velocity_ssim": logs.get("val_velocity_ssim"),
            }
        self.run.wait = self.wait
        if self.stopping and self.stopped_epoch == epoch and self.model.stop_training:
            self.run.stopped_early = True
            self.run.after_epoch_lines.append(
                f"early stopping: val_loss has not improved for {self.wait} epochs "
                f"(best: epoch {self.run.best['epoch'] + 1})"
            )

    def on_train_end(self, logs=None):
        pass  # the line is printed by EpochLines, the weights restored by Checkpoint


class Checkpoint(keras.callbacks.Callback):
    """Writes the checkpoint after every epoch (``pipeline.training.checkpointing``); at the end of training,
    restores the weights of the best epoch when it is not the last.

    Args:
        checkpointer: the run's checkpoint folder.
        run: the shared state (history, best epoch, plan).
        identity: what the checkpoint records about the run besides the training state: ``run_id``,
            ``tracking_uri``, ``experiment``, ``dataset_path``, ``config``.
        echo: where the restore line goes.
    """

    def __init__(self, checkpointer: Checkpointer, run: TrainingRun, identity: Mapping[str, Any], echo=print):
        super().__init__()
        self.checkpointer = checkpointer
        self.run = run
        self.identity = dict(identity)
        self.echo = echo

    def on_epoch_end(self, epoch, logs=None):
        state = {
            "format": CHECKPOINT_FORMAT,
            **self.identity,
            "history": self.run.history,
            "best": self.run.best,
            "wait": self.run.wait,
            "planned_epochs": self.run.planned_epochs,
            "rng": rng_state(),
            "finished": False,
        }
        self.checkpointer.save(self.model, epoch, state, best=self.run.best["epoch"] == epoch)

    def on_train_end(self, logs=None):
        best = self.run.best["epoch"]
        if self.run.history and best >= 0 and best != len(self.run.history) - 1:
            if self.checkpointer.restore_best(self.model):
                self.echo(f"restored the weights of epoch {best + 1} (lowest val_loss)")


class MetricLogging(keras.callbacks.Callback):
    """Logs each epoch's logs to the MLflow run at step ``epoch`` (through ``pipeline.tracking.RunTracker``).

    A resumed run first logs the epochs its checkpoint has and MLflow does not (killed between the two
    writes); the checkpoint is written before the metrics, so no step is ever logged twice.
    """

    def __init__(self, tracker, run: TrainingRun) -> None:
        super().__init__()
        self.tracker = tracker
        self.run = run

    def on_train_begin(self, logs=None):
        if self.run.start_epoch > 0:
            logged = self.tracker.logged_steps("loss")
            for epoch, values in enumerate(self.run.history):
                if epoch not in logged:
                    self.tracker.log_metrics(values, step=epoch)

    def on_epoch_end(self, epoch, logs=None):
        self.tracker.log_metrics(self.run.history[-1], step=epoch)


class ValidationImages(keras.callbacks.Callback):
    """Every ``every`` epochs (and at the last planned one) a figure of fixed validation samples predicted by
    the current model, as the MLflow image series ``validation``."""

    def __init__(
        self, tracker, run: TrainingRun, every: int, samples: int, val_data, family_config, distribution
    ) -> None:
        super().__init__()
        self.tracker = tracker
        self.run = run
        self.every = every
        self.val_data = val_data
        self.indices = val_data.indices[: max(0, samples)]
        self.family_config = family_config
        self.distribution = distribution

    def on_epoch_end(self, epoch, logs=None):
        if not (self.tracker.enabled and self.every and len(self.indices)):
            return
        if (epoch + 1) % self.every == 0 or epoch + 1 == self.run.planned_epochs:
            model = inference_model(self.model, self.family_config, self.distribution)
            image = validation_image(model, self.val_data, self.indices, self.val_data.stats, epoch)
            self.tracker.log_image(image, "validation", epoch)


class EpochLines(keras.callbacks.Callback):
    """The epoch's line (losses, validation metrics, learning rate, seconds), then why training stops."""

    def __init__(self, run: TrainingRun, echo=print) -> None:
        super().__init__()
        self.run = run
        self.echo = echo

    def on_epoch_end(self, epoch, logs=None):
        self.echo(epoch_line(epoch, self.run.planned_epochs, logs, logs["epoch_time_s"]))
        for line in self.run.after_epoch_lines:
            self.echo(line)
        self.run.after_epoch_lines.clear()


def training_callbacks(
    config: TrainConfig,
    run: TrainingRun,
    data,
    evaluator,
    schedule,
    tracker,
    checkpointer: Checkpointer,
    family_config,
    distribution: Distribution,
    *,
    identity: Mapping[str, Any],
    budget: bool,
    started: float,
    test_samples: int,
    echo=print,
) -> list[keras.callbacks.Callback]:
    """The callbacks of a run's ``fit``, in order (see the module docstring).

    Args:
        data: the run's splits (``pipeline.training.trainer.TrainingData``).
        evaluator: ``validation_model`` of the trained model.
        schedule: the optimizer's learning-rate schedule.
        tracker: the run's ``pipeline.tracking.RunTracker``.
        identity: what the checkpoint records about the run (``Checkpoint``).
        budget: apply the configured time budget (a resumed run has none).
        started: ``time.monotonic()`` at the start of the run.
        test_samples: size of the test split (the time budget keeps time to evaluate it).
    """
    from pipeline.training.budget import TimeBudget

    callbacks = [
        EpochData(config, run, data.train, echo),
        ProgressLines(run, config.runtime.progress_interval_s, data.steps_per_epoch, config.batch_size, echo),
        EpochMetrics(run, evaluator, data.train, data.val, data.metrics, data.multi_worker),
        BestEpoch(run, config.early_stopping.patience, config.early_stopping.min_delta),
    ]
    if budget:
        callbacks.append(
            TimeBudget(
                config,
                run,
                schedule,
                data.steps_per_epoch,
                data.train.num_samples,
                test_samples,
                started,
                echo,
            )
        )
    return [
        *callbacks,
        Checkpoint(checkpointer, run, identity, echo),
        MetricLogging(tracker, run),
        ValidationImages(
            tracker,
            run,
            config.tracking.image_every_epochs,
            config.tracking.image_samples,
            data.val,
            family_config,
            distribution,
        ),
        EpochLines(run, echo),
    ]


def epoch_line(epoch: int, epochs: int, logs: Mapping[str, float], seconds: float) -> str:
    parts = [f"epoch {epoch + 1}/{epochs}"]
    for key, label in (
        ("loss", "loss"),
        ("val_loss", "val_loss"),
        ("val_velocity_mae", "val_MAE"),
        ("val_velocity_ssim", "val_SSIM"),
        ("val_velocity_mae_mps", "val_MAE_m/s"),
        ("val_edges_f1", "val_edgeF1"),
        ("learning_rate", "lr"),
    ):
        if key in logs:
            value = logs[key]
            parts.append(
                f"{label} {value:.3g}"
                if key == "learning_rate"
                else f"{label} {value:.1f}"
                if key.endswith("_mps")
                else f"{label} {value:.4f}"
            )
    parts.append(f"{seconds:.0f} s")
    return "  ".join(parts)


def validation_image(model, val_data, indices: Sequence[int], stats, epoch: int) -> np.ndarray:
    """True and predicted velocity (and edges) of validation samples ``indices``, titled with their SSIM."""
    from data_prep.normalization import (
        VelocityNormalization,
        denormalize_velocity,
        normalize_seismic,
        normalize_velocity,
    )
    from pipeline.evaluate import per_sample_metrics
    from pipeline.figures import prediction_grid

    seismic, velocity_mps, edges = val_data.read(indices)
    outputs = model.predict_on_batch(normalize_seismic(seismic, stats))
    velocity = VelocityNormalization.coerce(stats)
    predicted_mps = denormalize_velocity(np.asarray(outputs["velocity"]), velocity)
    scores = per_sample_metrics(
        {"velocity": normalize_velocity(velocity_mps, stats)},
        {"velocity": np.asarray(outputs["velocity"])},
        stats,
    )
    titles = [f"val #{int(i)}\nSSIM {s:.3f}" for i, s in zip(indices, scores["ssim"], strict=True)]
    return prediction_grid(
        velocity_mps,
        predicted_mps,
        edges if "edges" in outputs else None,
        np.asarray(outputs["edges"]) if "edges" in outputs else None,
        velocity_range_mps=(velocity.min_mps, velocity.max_mps),
        grid_spacing_m=val_data.geometry.grid_spacing_m,
        titles=titles,
        suptitle=f"epoch {epoch + 1}",
    )
