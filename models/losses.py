"""Training losses for the velocity and edge outputs, keyed by output name.

Pipeline position: ``pipeline.train`` calls ``build_losses(LossConfig, model.output_names)`` and passes the
returned ``(losses, loss_weights)`` dicts to ``model.compile``.

* ``VelocityLoss``: L1 (OpenFWI trains InversionNet with L1), L2, or the mix
  ``(1 - l2_fraction) · L1 + l2_fraction · L2``, on the normalised [-1, 1] scale, averaged over the grid.
* ``EdgeLoss``: edge maps are ~5–10 % positive, so a plain BCE is minimised by predicting "no edge"
  everywhere. ``EdgeLoss`` combines a positive-weighted BCE (every edge pixel counts ``positive_weight``
  times) with the soft Dice loss, which depends on the overlap ratio only and so ignores the class balance.

All losses compute in float32 and keras.ops only (TensorFlow and JAX backends).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import keras
from keras import ops

from models.layers import EDGES, PACKAGE, VELOCITY
from models.metrics import ssim_tensor

VELOCITY_LOSSES = ("l1", "l2", "mix")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Loss settings (YAML: the ``loss`` section of a training config).

    Attributes:
        velocity_loss: ``"l1"``, ``"l2"`` or ``"mix"``.
        velocity_l2_fraction: weight of L2 in the ``"mix"`` loss, in [0, 1].
        velocity_ssim_weight: weight of ``1 - SSIM`` (OpenFWI's SSIM, ``models.metrics.ssim_tensor``) added
            to the velocity loss; 0 = off. The pixel losses alone reach a given MAE with blurrier layer
            boundaries than SSIM rewards.
        edge_bce_weight: weight of the positive-weighted BCE inside the edge loss.
        edge_dice_weight: weight of the soft Dice loss inside the edge loss.
        edge_positive_weight: factor on the BCE term of edge pixels (≈ negatives / positives).
        velocity_weight: weight of the velocity loss in the total loss.
        edges_weight: weight of the edge loss in the total loss.
    """

    velocity_loss: Literal["l1", "l2", "mix"] = "l1"
    velocity_l2_fraction: float = 0.5
    velocity_ssim_weight: float = 0.0
    edge_bce_weight: float = 1.0
    edge_dice_weight: float = 1.0
    edge_positive_weight: float = 10.0
    velocity_weight: float = 1.0
    edges_weight: float = 0.1


@keras.saving.register_keras_serializable(package=PACKAGE)
class VelocityLoss(keras.losses.Loss):
    """L1, L2 or mixed velocity loss on ``(batch, depth, x)`` maps, per sample averaged over the grid.

    Args:
        kind: ``"l1"``, ``"l2"`` or ``"mix"``.
        l2_fraction: weight of L2 in ``"mix"``: ``(1 - l2_fraction) · L1 + l2_fraction · L2``.
        ssim_weight: adds ``ssim_weight · (1 - SSIM)`` per sample, SSIM as OpenFWI computes it on maps
            normalised to [-1, 1] (``models.metrics.ssim_tensor``); 0 = off.
        name, reduction: as ``keras.losses.Loss``.
    """

    def __init__(
        self,
        kind: str = "l1",
        l2_fraction: float = 0.5,
        ssim_weight: float = 0.0,
        name: str = "velocity_loss",
        reduction: str = "sum_over_batch_size",
        **kwargs,
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)
        if kind not in VELOCITY_LOSSES:
            raise ValueError(
                f"`kind` must be one of {', '.join(map(repr, VELOCITY_LOSSES))}. Received: kind={kind!r}"
            )
        if not 0.0 <= float(l2_fraction) <= 1.0:
            raise ValueError(f"`l2_fraction` must be in [0, 1]. Received: l2_fraction={l2_fraction}")
        if float(ssim_weight) < 0:
            raise ValueError(f"`ssim_weight` must be non-negative. Received: ssim_weight={ssim_weight}")
        self.kind = kind
        self.l2_fraction = float(l2_fraction)
        self.ssim_weight = float(ssim_weight)

    def call(self, y_true, y_pred):
        error = ops.cast(y_pred, "float32") - ops.cast(y_true, "float32")
        axes = tuple(range(1, len(error.shape)))
        l1 = ops.mean(ops.abs(error), axis=axes)
        l2 = ops.mean(ops.square(error), axis=axes)
        if self.kind == "l1":
            loss = l1
        elif self.kind == "l2":
            loss = l2
        else:
            loss = (1.0 - self.l2_fraction) * l1 + self.l2_fraction * l2
        if self.ssim_weight:
            loss = loss + self.ssim_weight * (1.0 - ssim_tensor(y_true, y_pred))
        return loss

    def get_config(self):
        config = super().get_config()
        config.update({"kind": self.kind, "l2_fraction": self.l2_fraction, "ssim_weight": self.ssim_weight})
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class EdgeLoss(keras.losses.Loss):
    """Positive-weighted binary cross-entropy plus soft Dice for imbalanced edge maps.

    Per sample: ``bce_weight · mean(-(w·t·log p + (1 - t)·log(1 - p))) + dice_weight · (1 - Dice)`` with
    ``Dice = (2·Σ p·t + ε) / (Σ p + Σ t + ε)``, ``w = positive_weight`` and ``ε = smooth``.

    Args:
        bce_weight: weight of the BCE term.
        dice_weight: weight of the Dice term.
        positive_weight: factor on the BCE of edge pixels (target 1).
        smooth: Dice smoothing; makes an empty prediction of an empty map score Dice = 1.
        epsilon: probability clipping of the logarithms.
        name, reduction: as ``keras.losses.Loss``.
    """

    def __init__(
        self,
        bce_weight: float = 1.0,
        dice_weight: float = 1.0,
        positive_weight: float = 10.0,
        smooth: float = 1.0,
        epsilon: float = 1e-7,
        name: str = "edge_loss",
        reduction: str = "sum_over_batch_size",
        **kwargs,
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)
        for argument, value in (
            ("bce_weight", bce_weight),
            ("dice_weight", dice_weight),
            ("positive_weight", positive_weight),
            ("smooth", smooth),
        ):
            if float(value) < 0:
                raise ValueError(f"`{argument}` must be non-negative. Received: {argument}={value}")
        if float(bce_weight) == 0 and float(dice_weight) == 0:
            raise ValueError(
                "At least one of `bce_weight` and `dice_weight` must be positive. Received: both 0"
            )
        self.bce_weight = float(bce_weight)
        self.dice_weight = float(dice_weight)
        self.positive_weight = float(positive_weight)
        self.smooth = float(smooth)
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        target = ops.cast(y_true, "float32")
        probability = ops.clip(ops.cast(y_pred, "float32"), self.epsilon, 1.0 - self.epsilon)
        axes = tuple(range(1, len(target.shape)))
        bce = -(
            self.positive_weight * target * ops.log(probability) + (1.0 - target) * ops.log(1.0 - probability)
        )
        loss = self.bce_weight * ops.mean(bce, axis=axes)
        if self.dice_weight:
            overlap = ops.sum(probability * target, axis=axes)
            total = ops.sum(probability, axis=axes) + ops.sum(target, axis=axes)
            dice = (2.0 * overlap + self.smooth) / (total + self.smooth)
            loss = loss + self.dice_weight * (1.0 - dice)
        return loss

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "bce_weight": self.bce_weight,
                "dice_weight": self.dice_weight,
                "positive_weight": self.positive_weight,
                "smooth": self.smooth,
                "epsilon": self.epsilon,
            }
        )
        return config


def build_losses(
    config: LossConfig | None = None, output_names: Sequence[str] = (VELOCITY, EDGES)
) -> tuple[dict[str, keras.losses.Loss], dict[str, float]]:
    """Losses and loss weights keyed by output name, for ``model.compile(loss=..., loss_weights=...)``.

    Args:
        config: loss settings; defaults when ``None``.
        output_names: the model's outputs (``model.output_names``); an edge loss is returned only when the
            model has an ``"edges"`` output.

    Returns:
        ``(losses, loss_weights)``, two dicts with the same keys.
    """
    config = config or LossConfig()
    unknown = sorted(set(output_names) - {VELOCITY, EDGES})
    if unknown or VELOCITY not in output_names:
        raise ValueError(
            f"Models must output {VELOCITY!r} and optionally {EDGES!r}. "
            f"Received output names: {list(output_names)}"
        )
    losses: dict[str, keras.losses.Loss] = {
        VELOCITY: VelocityLoss(config.velocity_loss, config.velocity_l2_fraction, config.velocity_ssim_weight)
    }
    weights = {VELOCITY: float(config.velocity_weight)}
    if EDGES in output_names:
        losses[EDGES] = EdgeLoss(config.edge_bce_weight, config.edge_dice_weight, config.edge_positive_weight)
        weights[EDGES] = float(config.edges_weight)
    return losses, weights


__all__ = ["EdgeLoss", "LossConfig", "VELOCITY_LOSSES", "VelocityLoss", "build_losses"]
