"""Normalisation statistics and the normalise/denormalise functions shared by training and inference.

The statistics are computed by ``data_prep.ingest`` / ``data_prep.openfwi`` from the **training split
only**, stored in the dataset (HDF5 group ``normalization``, see ``data_prep.schema``) and meant to be
logged with every trained model, so inference denormalises with exactly the numbers used in training.

Conventions (OpenFWI's by default):

* seismic: ``t = sign(x) * log1p(|x|)`` (``seismic_transform="log1p"``; ``"none"`` keeps ``t = x``), then
  ``method="minmax"`` maps ``[t_min, t_max]`` of the training split to ``[-1, 1]``, or
  ``method="standard"`` gives ``(t - mean) / std``.
* velocity (m/s): ``method="minmax"`` maps ``velocity_range_mps`` (default 1500-4500 m/s, OpenFWI's) to
  ``[-1, 1]``; with ``velocity_range_mps=None`` the training split's min and max are used instead;
  ``method="standard"`` gives ``(v - mean) / std`` of the training split.

Running statistics (count, min, max, mean, M2) are kept so that appending samples to a dataset merges the
new training samples' statistics into the old ones without re-reading the old data (Chan et al.'s
parallel variance formula).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

#: OpenFWI's velocity range, mapped to [-1, 1].
OPENFWI_VELOCITY_RANGE_MPS = (1500.0, 4500.0)


@dataclass(frozen=True)
class NormalizationConfig:
    """How a dataset's samples are normalised for training.

    Attributes:
        method: ``"minmax"`` (to [-1, 1], OpenFWI) or ``"standard"`` (zero mean, unit variance).
        seismic_transform: ``"log1p"`` (``sign(x) * log1p(|x|)`` first, OpenFWI) or ``"none"``.
        velocity_range_mps: fixed ``(min, max)`` for velocity min-max; None takes them from the training split.
    """

    method: Literal["minmax", "standard"] = "minmax"
    seismic_transform: Literal["log1p", "none"] = "log1p"
    velocity_range_mps: tuple[float, float] | None = OPENFWI_VELOCITY_RANGE_MPS

    def __post_init__(self) -> None:
        if self.velocity_range_mps is not None and not 0 < self.velocity_range_mps[0] < self.velocity_range_mps[1]:
            raise ValueError(
                f"velocity_range_mps must be (min, max) with 0 < min < max m/s. Received: {self.velocity_range_mps}"
            )


class RunningStats:
    """Count, minimum, maximum, mean and sum of squared deviations (M2) of a stream of values, in float64."""

    def __init__(self, count: int = 0, minimum: float = np.inf, maximum: float = -np.inf, mean: float = 0.0,
                 m2: float = 0.0, moments: bool = True) -> None:
        self.moments = moments
        if not moments:
            mean = m2 = float("nan")
        self.count = int(count)
        self.minimum = float(minimum)
        self.maximum = float(maximum)
        self.mean = float(mean)
        self.m2 = float(m2)

    def update(self, values: np.ndarray) -> RunningStats:
        """Adds a block of values (any shape)."""
        values = np.asarray(values)
        if values.size == 0:
            return self
        if not self.moments:
            # Min and max only: a float32 reduction, no float64 copy of the block.
            return self.merge(RunningStats(values.size, float(values.min()), float(values.max()), moments=False))
        block = np.asarray(values, dtype=np.float64).ravel()
        mean = float(block.mean())
        other = RunningStats(block.size, float(block.min()), float(block.max()), mean,
                             float(np.square(block - mean).sum()))
        return self.merge(other)

    def merge(self, other: RunningStats) -> RunningStats:
        """Merges another accumulator into this one (in place) and returns self."""
        if other.count == 0:
            return self
        if self.count == 0:
            self.count, self.minimum, self.maximum = other.count, other.minimum, other.maximum
            self.mean, self.m2 = (other.mean, other.m2) if self.moments else (float("nan"), float("nan"))
            return self
        total = self.count + other.count
        delta = other.mean - self.mean
        self.mean += delta * other.count / total
        self.m2 += other.m2 + delta * delta * self.count * other.count / total
        self.count = total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        return self

    @property
    def std(self) -> float:
        """Population standard deviation."""
        return float(np.sqrt(self.m2 / self.count)) if self.count else float("nan")

    def to_dict(self) -> dict[str, float]:
        return {"count": self.count, "min": self.minimum, "max": self.maximum, "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, values: dict[str, Any], moments: bool = True) -> RunningStats:
        count = int(values["count"])
        if moments and not (np.isfinite(values["mean"]) and np.isfinite(values["std"])):
            raise ValueError("These statistics were stored without mean/std (method minmax): cannot add moments.")
        return cls(count, values["min"], values["max"], values["mean"], float(values["std"]) ** 2 * count, moments)


def seismic_forward_transform(seismic: np.ndarray, kind: str = "log1p") -> np.ndarray:
    """``sign(x) * log1p(|x|)`` (OpenFWI) or the identity; keeps float32 inputs float32."""
    if kind == "none":
        return np.asarray(seismic)
    if kind != "log1p":
        raise ValueError(f"seismic_transform must be 'log1p' or 'none'. Received: {kind!r}")
    return np.sign(seismic) * np.log1p(np.abs(seismic))


def seismic_inverse_transform(transformed: np.ndarray, kind: str = "log1p") -> np.ndarray:
    """Inverse of ``seismic_forward_transform``: ``sign(t) * expm1(|t|)``."""
    if kind == "none":
        return np.asarray(transformed)
    if kind != "log1p":
        raise ValueError(f"seismic_transform must be 'log1p' or 'none'. Received: {kind!r}")
    return np.sign(transformed) * np.expm1(np.abs(transformed))


@dataclass(frozen=True)
class NormalizationStats:
    """The numbers that turn a dataset's samples into network inputs/targets and back.

    Attributes:
        method: ``"minmax"`` or ``"standard"``.
        seismic_transform: ``"log1p"`` or ``"none"``.
        seismic: running statistics (count, min, max, mean, std) of the *transformed* training seismic;
            mean and std are NaN unless ``method="standard"``.
        seismic_raw: the same for the untransformed training seismic (for reference and plots).
        velocity: statistics of the training velocities, m/s.
        velocity_min_mps, velocity_max_mps: the velocity range mapped to [-1, 1] by ``minmax``.
        num_train_samples: number of training samples the statistics come from.
    """

    method: str
    seismic_transform: str
    seismic: dict[str, float]
    seismic_raw: dict[str, float]
    velocity: dict[str, float] | None
    velocity_min_mps: float | None
    velocity_max_mps: float | None
    num_train_samples: int

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON/YAML friendly, e.g. to log with a model)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NormalizationStats:
        return cls(**{field.name: values.get(field.name) for field in dataclasses.fields(cls)})


class StatisticsAccumulator:
    """Accumulates training-split statistics block by block (memory: one block).

    Seismic min and max are always computed; the mean and standard deviation of the (transformed) seismic
    only for ``method="standard"``, because the transform and the float64 moments cost more than reading
    the data (they are NaN otherwise). Since ``sign(x) * log1p(|x|)`` is monotonic, the transformed min/max
    are the transform of the raw min/max: no transform pass is needed for ``minmax``. Velocity statistics
    (small arrays) always include mean and standard deviation.
    """

    def __init__(self, config: NormalizationConfig, previous: NormalizationStats | None = None) -> None:
        self.config = config
        moments = config.method == "standard"
        self.seismic_raw = (
            RunningStats.from_dict(previous.seismic_raw, moments)
            if previous and previous.seismic_raw["count"] else RunningStats(moments=moments)
        )
        self.seismic = (
            RunningStats.from_dict(previous.seismic, moments)
            if previous and previous.seismic["count"] else RunningStats(moments=moments)
        )
        self.velocity = (
            RunningStats.from_dict(previous.velocity)
            if previous and previous.velocity and previous.velocity["count"] else RunningStats()
        )
        self.num_train_samples = previous.num_train_samples if previous else 0

    def update(self, seismic: np.ndarray, velocity_mps: np.ndarray | None = None) -> None:
        """Adds training samples: ``seismic (samples, shots, time, receivers)``, ``velocity (samples, depth, x)``."""
        self.seismic_raw.update(seismic)
        if self.seismic.moments:
            self.seismic.update(seismic_forward_transform(seismic, self.config.seismic_transform))
        elif np.size(seismic):
            # Monotonic transform: transformed extremes = transform of the raw extremes (same float32 maths).
            extremes = seismic_forward_transform(
                np.array([self.seismic_raw.minimum, self.seismic_raw.maximum], dtype=np.float32),
                self.config.seismic_transform,
            )
            self.seismic.count = self.seismic_raw.count
            self.seismic.minimum, self.seismic.maximum = float(extremes[0]), float(extremes[1])
        if velocity_mps is not None:
            self.velocity.update(velocity_mps)
        self.num_train_samples += len(seismic)

    def result(self, has_velocity: bool = True) -> NormalizationStats:
        if self.num_train_samples == 0:
            raise ValueError("No training samples: the statistics need at least one sample in the train split.")
        velocity = self.velocity.to_dict() if has_velocity and self.velocity.count else None
        if velocity is None:
            low = high = None
        elif self.config.velocity_range_mps is not None:
            low, high = map(float, self.config.velocity_range_mps)
        else:
            low, high = velocity["min"], velocity["max"]
        return NormalizationStats(
            method=self.config.method,
            seismic_transform=self.config.seismic_transform,
            seismic=self.seismic.to_dict(),
            seismic_raw=self.seismic_raw.to_dict(),
            velocity=velocity,
            velocity_min_mps=low,
            velocity_max_mps=high,
            num_train_samples=self.num_train_samples,
        )


def _to_unit_interval(values, low: float, high: float):
    if not high > low:
        raise ValueError(f"Cannot min-max normalise with min {low} >= max {high}: the training data are constant.")
    return (values - low) * (2.0 / (high - low)) - 1.0


def _from_unit_interval(values, low: float, high: float):
    return (values + 1.0) * ((high - low) / 2.0) + low


def normalize_seismic(seismic: np.ndarray, stats: NormalizationStats) -> np.ndarray:
    """Seismic ``(..., shots, time, receivers)`` pressure -> network input (float32)."""
    transformed = seismic_forward_transform(np.asarray(seismic, dtype=np.float32), stats.seismic_transform)
    if stats.method == "standard":
        result = (transformed - stats.seismic["mean"]) / stats.seismic["std"]
    else:
        result = _to_unit_interval(transformed, stats.seismic["min"], stats.seismic["max"])
    return np.asarray(result, dtype=np.float32)


def denormalize_seismic(normalized: np.ndarray, stats: NormalizationStats) -> np.ndarray:
    """Inverse of ``normalize_seismic``."""
    normalized = np.asarray(normalized, dtype=np.float64)
    if stats.method == "standard":
        transformed = normalized * stats.seismic["std"] + stats.seismic["mean"]
    else:
        transformed = _from_unit_interval(normalized, stats.seismic["min"], stats.seismic["max"])
    return np.asarray(seismic_inverse_transform(transformed, stats.seismic_transform), dtype=np.float32)


def normalize_velocity(velocity_mps: np.ndarray, stats: NormalizationStats) -> np.ndarray:
    """Velocity ``(..., depth, x)`` in m/s -> network target (float32; [-1, 1] for ``minmax``)."""
    _require_velocity(stats)
    velocity_mps = np.asarray(velocity_mps, dtype=np.float64)
    if stats.method == "standard":
        result = (velocity_mps - stats.velocity["mean"]) / stats.velocity["std"]
    else:
        result = _to_unit_interval(velocity_mps, stats.velocity_min_mps, stats.velocity_max_mps)
    return np.asarray(result, dtype=np.float32)


def denormalize_velocity(normalized: np.ndarray, stats: NormalizationStats) -> np.ndarray:
    """Network output -> velocity in m/s (float32). Inverse of ``normalize_velocity``."""
    _require_velocity(stats)
    normalized = np.asarray(normalized, dtype=np.float64)
    if stats.method == "standard":
        result = normalized * stats.velocity["std"] + stats.velocity["mean"]
    else:
        result = _from_unit_interval(normalized, stats.velocity_min_mps, stats.velocity_max_mps)
    return np.asarray(result, dtype=np.float32)


def _require_velocity(stats: NormalizationStats) -> None:
    if stats.velocity_min_mps is None:
        raise ValueError("This dataset has no velocity models, so there are no velocity statistics.")
