"""The time budget of a training run: how long the epochs may take, and the callback that keeps them in it.

Pipeline position: ``pipeline.training.trainer`` adds ``TimeBudget`` to the ``fit`` callbacks when the
configuration sets ``max_train_time_s`` and/or ``max_total_time_s`` (a resumed run has no budget).

The second epoch (no compilation in it) gives the first estimate of an epoch's duration, and the learning-rate
schedule is fitted to the epochs the budget leaves room for. Every later epoch re-estimates it from the last
complete epochs (the median of three, logging and checkpoint included: one epoch slowed by another job on the
machine must not cut the plan) and, when fewer epochs fit than planned, shortens the schedule, so that the
cosine reaches its floor when the budget ends instead of being cut off part-way. The plan only ever shrinks:
growing it would raise the learning rate.
"""

from __future__ import annotations

import time

import keras
import numpy as np

from pipeline.training.config import TrainConfig


def training_budget(config: TrainConfig, started: float, loop_started: float) -> float | None:
    """Seconds the training loop may take (evaluation reserve included), or None without a budget."""
    limits = []
    if config.max_train_time_s:
        limits.append(float(config.max_train_time_s))
    if config.max_total_time_s:
        limits.append(float(config.max_total_time_s) - (loop_started - started))
    return max(0.0, min(limits)) if limits else None


def budget_cut_line(config: TrainConfig, epochs: int) -> str:
    """The one line a run prints when its time budget cuts the configured ``epochs`` to ``epochs``: which
    setting did it, and how to get the full schedule."""
    settings = [
        f"{name}={float(value):g} s"
        for name, value in (
            ("max_total_time_s", config.max_total_time_s),
            ("max_train_time_s", config.max_train_time_s),
        )
        if value
    ]
    nulls = " ".join(f"--set {setting.split('=')[0]}=null" for setting in settings)
    return (
        f"time budget: {' and '.join(settings)} cut{'s' if len(settings) == 1 else ''} training to {epochs} of the "
        f"{config.epochs} configured epochs; for the full schedule: {nulls}"
    )


def epochs_within_budget(planned: int, epoch: int, seconds_left: float, epoch_s: float) -> int:
    """How many epochs (0-based ``epoch`` just finished) the plan should hold: the finished ones plus as
    many as ``seconds_left`` holds at ``epoch_s`` each, never more than ``planned`` and never fewer than
    ``epoch + 1``."""
    affordable = epoch + 1 + int(max(0.0, seconds_left) // max(epoch_s, 1e-9))
    return max(epoch + 1, min(planned, affordable))


def evaluation_reserve_s(epoch_s: float, train_samples: int, test_samples: int) -> float:
    """Time to keep for the test evaluation, the bundle and the model logging after the last epoch."""
    per_sample = epoch_s / max(1, train_samples)
    return 30.0 + test_samples * per_sample  # inference is ~1/3 of a training step; x3 for margin


class TimeBudget(keras.callbacks.Callback):
    """Refits the schedule to the epochs that fit in the budget, and stops training when it is spent.

    Args:
        config: the run's configuration (its budget settings and configured epochs).
        run: the state the callbacks share (``pipeline.training.callbacks.TrainingRun``): its
            ``planned_epochs`` shrinks here; ``stopped_early`` and ``budget_cut`` are set here.
        schedule: the optimizer's ``WarmupCosineDecay`` (shortened with ``set_decay_steps``).
        steps_per_epoch: steps of one epoch.
        train_samples, test_samples: sizes of the training epoch and the test split (the evaluation reserve).
        started: ``time.monotonic()`` when the run started (``max_total_time_s`` counts from there).
        echo: where the lines go.

    Place it after the callbacks that measure the epoch and decide early stopping, before the checkpoint (which
    records the plan).
    """

    def __init__(
        self,
        config: TrainConfig,
        run,
        schedule,
        steps_per_epoch: int,
        train_samples: int,
        test_samples: int,
        started: float,
        echo=print,
    ) -> None:
        super().__init__()
        self.config = config
        self.run = run
        self.schedule = schedule
        self.steps_per_epoch = steps_per_epoch
        self.train_samples = train_samples
        self.test_samples = test_samples
        self.started = started
        self.echo = echo
        self.budget: float | None = None
        self.reserve = 0.0
        self.durations: list[float] = []

    def on_train_begin(self, logs=None):
        self.loop_started = time.monotonic()
        self.epoch_started = self.loop_started
        self.budget = training_budget(self.config, self.started, self.loop_started)
        if self.budget is not None:
            self.echo(f"time budget: {self.budget:.0f} s for training and evaluation")

    def on_epoch_begin(self, epoch, logs=None):
        if epoch > self.run.start_epoch + 1:  # the previous epoch, complete, without compilation
            self.durations.append(time.monotonic() - self.epoch_started)
        self.epoch_started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if self.budget is None:
            return
        start = self.run.start_epoch
        if epoch > start:
            self._refit_plan(epoch)
        if epoch + 1 >= self.run.planned_epochs:
            self.model.stop_training = True  # the (shortened) plan is complete
            return
        if self.model.stop_training:  # early stopping came first
            return
        # The first epoch's duration includes the compilation and says little about the next one (which the
        # second epoch measures): after it, stop only when the budget is already spent.
        now = time.monotonic()
        last = 0.0 if epoch == start else now - self.epoch_started
        if now - self.loop_started + 0.9 * last > self.budget:
            self.run.after_epoch_lines.append(f"time budget reached after epoch {epoch + 1}")
            if not self.run.budget_cut:
                self.run.after_epoch_lines.append(budget_cut_line(self.config, epoch + 1))
                self.run.budget_cut = True
            self.run.stopped_early = True
            self.model.stop_training = True

    def _refit_plan(self, epoch: int) -> None:
        first_estimate = epoch == self.run.start_epoch + 1
        if first_estimate:
            steady = time.monotonic() - self.epoch_started
            self.reserve = evaluation_reserve_s(steady, self.train_samples, self.test_samples)
            self.budget -= self.reserve
        else:
            steady = float(np.median(self.durations[-3:]))
        planned = self.run.planned_epochs
        fitting = epochs_within_budget(
            planned, epoch, self.budget - (time.monotonic() - self.loop_started), steady
        )
        if fitting < planned:
            if not self.run.budget_cut:
                self.echo(budget_cut_line(self.config, fitting))
                self.run.budget_cut = True
            self.run.planned_epochs = fitting
            self.schedule.set_decay_steps(self.steps_per_epoch * fitting - self.schedule.warmup_steps)
            if keras.backend.backend() != "tensorflow":
                self.model.make_train_function(force=True)  # JAX traces the schedule's variables as constants
            if not first_estimate:
                self.echo(
                    f"time budget: epochs take ~{steady:.0f} s now; the schedule ends after epoch {fitting}"
                )
        if first_estimate:
            self.echo(
                f"time budget: {self.run.planned_epochs} epochs of ~{steady:.0f} s fit in {self.budget:.0f} s of "
                f"training ({self.reserve:.0f} s kept for evaluation)"
            )
