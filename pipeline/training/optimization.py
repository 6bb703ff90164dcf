"""The optimizer and its learning-rate schedule: linear warm-up, then a cosine decay to a floor.

Pipeline position: ``pipeline.training.trainer`` compiles the model with ``build_optimizer(config,
learning_rate_schedule(...))``; the time budget (``pipeline.training.callbacks.TimeBudget``) shortens the
schedule while training runs (``WarmupCosineDecay.set_decay_steps``).
"""

from __future__ import annotations

import functools
import math

from pipeline.training.config import OptimizerConfig


@functools.cache
def _warmup_cosine_class():
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="seisinvert")
    class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
        """Linear warm-up from ``peak * initial_fraction`` to ``peak`` over ``warmup_steps``, then cosine decay
        to ``peak * final_fraction`` over ``decay_steps``.

        ``decay_steps`` lives in a variable, so a time budget can shorten the schedule after training started
        (``set_decay_steps``) without re-tracing the TensorFlow train step (JAX steps are re-traced).
        """

        def __init__(
            self,
            peak,
            warmup_steps,
            decay_steps,
            final_fraction=0.02,
            initial_fraction=1e-3,
            name="warmup_cosine",
        ):
            self.peak = float(peak)
            self.warmup_steps = int(warmup_steps)
            self.final_fraction = float(final_fraction)
            self.initial_fraction = float(initial_fraction)
            self.name = name
            self._decay_steps = keras.Variable(
                float(max(1, decay_steps)), trainable=False, dtype="float32", name="learning_rate_decay_steps"
            )

        @property
        def decay_steps(self) -> int:
            return int(round(float(ops.convert_to_numpy(self._decay_steps.value))))

        def set_decay_steps(self, steps: int) -> None:
            self._decay_steps.assign(float(max(1, steps)))

        def __call__(self, step):
            step = ops.cast(step, "float32")
            warmup = float(max(1, self.warmup_steps))
            warm = self.peak * (self.initial_fraction + (1.0 - self.initial_fraction) * step / warmup)
            progress = ops.clip((step - float(self.warmup_steps)) / self._decay_steps, 0.0, 1.0)
            cosine = self.final_fraction + (1.0 - self.final_fraction) * 0.5 * (
                1.0 + ops.cos(math.pi * progress)
            )
            decayed = self.peak * cosine
            if self.warmup_steps == 0:
                return decayed
            return ops.where(step < float(self.warmup_steps), warm, decayed)

        def get_config(self):
            return {
                "peak": self.peak,
                "warmup_steps": self.warmup_steps,
                "decay_steps": self.decay_steps,
                "final_fraction": self.final_fraction,
                "initial_fraction": self.initial_fraction,
                "name": self.name,
            }

    return WarmupCosineDecay


def learning_rate_schedule(config: OptimizerConfig, steps_per_epoch: int, epochs: int):
    """Linear warm-up over ``warmup_epochs`` then cosine decay to ``final_learning_rate_fraction`` at the end
    of ``epochs`` (a ``WarmupCosineDecay``)."""
    total = max(1, steps_per_epoch * epochs)
    warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), total - 1)
    return _warmup_cosine_class()(
        config.learning_rate, warmup, total - warmup, config.final_learning_rate_fraction
    )


def build_optimizer(config: OptimizerConfig, schedule):
    import keras

    kwargs = {"learning_rate": schedule}
    if config.clipnorm is not None:
        kwargs["clipnorm"] = config.clipnorm
    if config.name == "adamw":
        return keras.optimizers.AdamW(weight_decay=config.weight_decay, **kwargs)
    return keras.optimizers.Adam(**kwargs)


def current_learning_rate(optimizer) -> float:
    """The learning rate the optimizer uses at its current iteration."""
    import keras

    value = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(value))
