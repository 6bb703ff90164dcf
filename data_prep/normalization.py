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
  ``method="standard"`` gives ``(v - mean) / std`` of the training split. Either way the map is affine,
  ``v_mps = scale_mps * v + offset_mps``; ``VelocityNormalization`` holds those numbers (and the range), and
  ``denormalize_velocity`` is the one place in the code base that turns network velocities into m/s.
  Evaluation metrics (``models.metrics``) take a ``VelocityNormalization`` or the ``NormalizationStats``.

``NormalizationStats.to_dict()`` is strict JSON: a statistic that was not computed (seismic mean/std under
``minmax``) is ``None`` (JSON ``null``), never NaN. Files written before this rule hold NaN there; they are
read as ``None``.

Running statistics (count, min, max, mean, M2) are kept so that appending samples to a dataset merges the
new training samples' statistics into the old ones without re-reading the old data (Chan et al.'s
parallel variance formula).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

#: OpenFWI's velocity range, mapped to [-1, 1].
OPENFWI_VELOCITY_RANGE_MPS = (1500.0, 4500.0)
#: Normalisation methods (seismic and velocity use the same one).
METHODS = ("minmax", "standard")


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
        if (
            self.velocity_range_mps is not None
            and not 0 < self.velocity_range_mps[0] < self.velocity_range_mps[1]
        ):
            raise ValueError(
                f"velocity_range_mps must be (min, max) with 0 < min < max m/s. Received: {self.velocity_range_mps}"
            )


class RunningStats:
    """Count, minimum, maximum, mean and sum of squared deviations (M2) of a stream of values, in float64."""

    def __init__(
        self,
        count: int = 0,
        minimum: float = np.inf,
        maximum: float = -np.inf,
        mean: float = 0.0,
        m2: float = 0.0,
        moments: bool = True,
    ) -> None:
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
            return self.merge(
                RunningStats(values.size, float(values.min()), float(values.max()), moments=False)
            )
        block = np.asarray(values, dtype=np.float64).ravel()
        mean = float(block.mean())
        other = RunningStats(
            block.size, float(block.min()), float(block.max()), mean, float(np.square(block - mean).sum())
        )
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

    def to_dict(self) -> dict[str, float | None]:
        """``count, min, max, mean, std``; a statistic that is not available (NaN, ±inf) is ``None``."""
        values = {
            "count": self.count,
            "min": self.minimum,
            "max": self.maximum,
            "mean": self.mean,
            "std": self.std,
        }
        return _finite_or_none(values)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], moments: bool = True) -> RunningStats:
        """Inverse of ``to_dict``; also reads NaN (files written before statistics JSON had no NaN)."""
        count = int(values["count"])
        mean, std = _float_or_nan(values.get("mean")), _float_or_nan(values.get("std"))
        if moments and not (math.isfinite(mean) and math.isfinite(std)):
            raise ValueError(
                "These statistics were stored without mean/std (method minmax): cannot add moments."
            )
        minimum = values.get("min")
        maximum = values.get("max")
        return cls(
            count,
            np.inf if minimum is None else float(minimum),
            -np.inf if maximum is None else float(maximum),
            mean,
            std**2 * count,
            moments,
        )


def _float_or_nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _finite_or_none(values: Any) -> Any:
    """Replaces non-finite floats (anywhere in nested dicts/lists) with None, so ``json.dumps`` is strict JSON."""
    if isinstance(values, Mapping):
        return {key: _finite_or_none(value) for key, value in values.items()}
    if isinstance(values, list | tuple):
        return type(values)(_finite_or_none(value) for value in values)
    if isinstance(values, float) and not math.isfinite(values):
        return None
    return values


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
            mean and std are ``None`` unless ``method="standard"``.
        seismic_raw: the same for the untransformed training seismic (for reference and plots).
        velocity: statistics of the training velocities, m/s.
        velocity_min_mps, velocity_max_mps: the dataset's velocity range, m/s: mapped to [-1, 1] by ``minmax``;
            under both methods the range that SSIM maps to [0, 1] (see ``VelocityNormalization``).
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
        """Plain nested dict, strict-JSON friendly (no NaN: missing statistics are ``None``), e.g. to log with a model."""
        return _finite_or_none(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> NormalizationStats:
        """Inverse of ``to_dict``; NaN statistics of older files are read as ``None``."""
        return cls(
            **{field.name: _finite_or_none(values.get(field.name)) for field in dataclasses.fields(cls)}
        )

    def velocity_normalization(self) -> VelocityNormalization:
        """The velocity part: what ``denormalize_velocity`` and the metrics in m/s and SSIM need."""
        return VelocityNormalization.from_stats(self)

    def velocities_beyond(
        self,
        low_mps: float | None = None,
        high_mps: float | None = None,
        subject: str = "the training velocities",
    ) -> str | None:
        """Where the training velocities (``velocity``) reach beyond ``[low_mps, high_mps]`` (default: this
        dataset's range) by more than 1 % of its span, in words (``subject`` names them); None when they do
        not, or are not known.

        A model with a bounded velocity output (``tanh``, every model's default) maps that range to [-1, 1] and
        no further: a velocity beyond it is predicted at the range's edge.
        """
        low = self.velocity_min_mps if low_mps is None else float(low_mps)
        high = self.velocity_max_mps if high_mps is None else float(high_mps)
        if not self.velocity or low is None or high is None:
            return None
        tolerance = 0.01 * (high - low)
        observed_low, observed_high = self.velocity.get("min"), self.velocity.get("max")
        reach = []
        if observed_high is not None and observed_high > high + tolerance:
            reach.append(f"up to {observed_high:.0f} m/s")
        if observed_low is not None and observed_low < low - tolerance:
            reach.append(f"down to {observed_low:.0f} m/s")
        if not reach:
            return None
        return f"{subject} reach {' and '.join(reach)}, beyond the range {low:g}-{high:g} m/s"

    def covering_range_mps(
        self, low_mps: float | None = None, high_mps: float | None = None
    ) -> tuple[float, float]:
        """``[low_mps, high_mps]`` (default: this dataset's range) widened to whole 100 m/s that hold every
        training velocity: the ``velocity_range_mps`` to ingest with so that nothing lies beyond it."""
        low = self.velocity_min_mps if low_mps is None else float(low_mps)
        high = self.velocity_max_mps if high_mps is None else float(high_mps)
        observed = self.velocity or {}
        if observed.get("min") is not None:
            low = min(low, math.floor(observed["min"] / 100.0) * 100.0)
        if observed.get("max") is not None:
            high = max(high, math.ceil(observed["max"] / 100.0) * 100.0)
        return low, high


@dataclass(frozen=True)
class VelocityNormalization:
    """How network velocities relate to m/s: the velocity part of ``NormalizationStats``.

    The network's velocity ``v`` (output or target) and the velocity in m/s are related by the affine map
    ``v_mps = scale_mps * v + offset_mps``:

    * ``minmax``: ``[min_mps, max_mps]`` ↔ ``[-1, 1]``: ``scale_mps = (max - min) / 2``, ``offset_mps = (max + min) / 2``;
    * ``standard``: ``scale_mps = std_mps``, ``offset_mps = mean_mps`` (of the training split).

    SSIM (``models.metrics``) is computed on ``(v_mps - min_mps) / (max_mps - min_mps)`` with data range 1, for
    both methods: for ``minmax`` that is exactly OpenFWI's ``v / 2 + 0.5``; for ``standard`` it is the same
    quantity (so the same maps in m/s give the same SSIM whatever the method), with ``[min_mps, max_mps]`` the
    dataset's declared range (``velocity_range_mps`` of the ingest config) or, with ``velocity_range_mps: null``,
    the training split's min and max. Values outside the range are not clipped.

    Attributes:
        method: ``"minmax"`` or ``"standard"``.
        min_mps, max_mps: the dataset's velocity range, m/s (``0 < min < max``).
        mean_mps, std_mps: mean and standard deviation of the training velocities, m/s; needed for
            ``standard`` only (``None`` otherwise).
    """

    method: str = "minmax"
    min_mps: float = OPENFWI_VELOCITY_RANGE_MPS[0]
    max_mps: float = OPENFWI_VELOCITY_RANGE_MPS[1]
    mean_mps: float | None = None
    std_mps: float | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(
                f"Velocity normalisation method must be 'minmax' or 'standard'. Received: {self.method!r}"
            )
        for name in ("min_mps", "max_mps", "mean_mps", "std_mps"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(value))
        if not (math.isfinite(self.min_mps) and math.isfinite(self.max_mps) and self.max_mps > self.min_mps):
            raise ValueError(
                f"The velocity range must have min < max (m/s); constant training velocities cannot be "
                f"normalised: set a fixed velocity_range_mps when ingesting. Received: min_mps={self.min_mps}, "
                f"max_mps={self.max_mps}"
            )
        if self.method == "standard" and not (
            self.mean_mps is not None
            and self.std_mps is not None
            and math.isfinite(self.mean_mps)
            and math.isfinite(self.std_mps)
            and self.std_mps > 0
        ):
            raise ValueError(
                "method='standard' needs the training velocities' finite mean_mps and positive std_mps. "
                f"Received: mean_mps={self.mean_mps}, std_mps={self.std_mps}"
            )

    @classmethod
    def from_stats(cls, stats: NormalizationStats) -> VelocityNormalization:
        """The velocity normalisation of a dataset's statistics (raises if the dataset has no velocities)."""
        if stats.velocity_min_mps is None or stats.velocity_max_mps is None:
            raise ValueError("This dataset has no velocity models, so there are no velocity statistics.")
        velocity = stats.velocity or {}
        standard = stats.method == "standard"
        return cls(
            method=stats.method,
            min_mps=stats.velocity_min_mps,
            max_mps=stats.velocity_max_mps,
            mean_mps=velocity.get("mean") if standard else None,
            std_mps=velocity.get("std") if standard else None,
        )

    @classmethod
    def coerce(
        cls, value: VelocityNormalization | NormalizationStats | Mapping[str, Any] | None
    ) -> VelocityNormalization:
        """Accepts a ``VelocityNormalization``, ``NormalizationStats``, the ``to_dict()`` of either, or ``None``
        (OpenFWI: ``minmax`` over 1500-4500 m/s)."""
        if value is None:
            return cls()
        if isinstance(value, VelocityNormalization):
            return value
        if isinstance(value, NormalizationStats):
            return cls.from_stats(value)
        if isinstance(value, Mapping):
            if "velocity_min_mps" in value:  # a NormalizationStats dict
                return cls.from_stats(NormalizationStats.from_dict(value))
            unknown = set(value) - {field.name for field in dataclasses.fields(cls)}
            if unknown:
                raise ValueError(
                    f"Unknown velocity normalisation keys {sorted(unknown)}: expected method, min_mps, max_mps, "
                    f"mean_mps, std_mps (or a NormalizationStats dict). Received: {dict(value)}"
                )
            return cls(**value)
        raise TypeError(
            "Expected VelocityNormalization, NormalizationStats, a dict of either, or None. "
            f"Received: {type(value).__name__}"
        )

    @property
    def scale_mps(self) -> float:
        """m/s per unit of normalised velocity (an error on the normalised scale × this = error in m/s)."""
        return self.std_mps if self.method == "standard" else (self.max_mps - self.min_mps) / 2.0

    @property
    def offset_mps(self) -> float:
        """Velocity in m/s where the normalised velocity is 0."""
        return self.mean_mps if self.method == "standard" else (self.max_mps + self.min_mps) / 2.0

    def unit_interval_affine(self) -> tuple[float, float]:
        """``(a, b)`` with ``a * v + b = (v_mps - min_mps) / (max_mps - min_mps)`` for normalised ``v``: SSIM's input."""
        span = self.max_mps - self.min_mps
        return self.scale_mps / span, (self.offset_mps - self.min_mps) / span

    def to_unit_interval(self, velocity_mps: np.ndarray) -> np.ndarray:
        """``(v_mps - min_mps) / (max_mps - min_mps)`` in float64: [min, max] m/s → [0, 1] (SSIM's scale)."""
        return (np.asarray(velocity_mps, dtype=np.float64) - self.min_mps) / (self.max_mps - self.min_mps)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (strict JSON); ``VelocityNormalization(**d)`` or ``coerce(d)`` restores it."""
        return dataclasses.asdict(self)


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
            if previous and previous.seismic_raw["count"]
            else RunningStats(moments=moments)
        )
        self.seismic = (
            RunningStats.from_dict(previous.seismic, moments)
            if previous and previous.seismic["count"]
            else RunningStats(moments=moments)
        )
        self.velocity = (
            RunningStats.from_dict(previous.velocity)
            if previous and previous.velocity and previous.velocity["count"]
            else RunningStats()
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
            raise ValueError(
                "No training samples: the statistics need at least one sample in the train split."
            )
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
        raise ValueError(
            f"Cannot min-max normalise with min {low} >= max {high}: the training data are constant."
        )
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


def normalize_velocity(
    velocity_mps: np.ndarray, stats: NormalizationStats | VelocityNormalization, dtype=np.float32
) -> np.ndarray:
    """Velocity ``(..., depth, x)`` in m/s -> network target (``dtype``; [-1, 1] for ``minmax``)."""
    velocity = VelocityNormalization.coerce(_required(stats))
    result = (np.asarray(velocity_mps, dtype=np.float64) - velocity.offset_mps) / velocity.scale_mps
    return np.asarray(result, dtype=dtype)


def denormalize_velocity(
    normalized: np.ndarray, stats: NormalizationStats | VelocityNormalization, dtype=np.float32
) -> np.ndarray:
    """Network velocity ``(..., depth, x)`` -> m/s, ``v_mps = scale_mps * v + offset_mps``; inverse of
    ``normalize_velocity``.

    The one denormaliser of the code base: evaluation (``models.metrics``), inference and plots call it.

    Args:
        normalized: velocities on the network's scale, any shape.
        stats: the dataset's ``NormalizationStats`` or its ``VelocityNormalization``.
        dtype: result dtype (float32 by default; metrics use float64).

    Returns:
        Velocity in m/s, same shape.
    """
    velocity = VelocityNormalization.coerce(_required(stats))
    result = np.asarray(normalized, dtype=np.float64) * velocity.scale_mps + velocity.offset_mps
    return np.asarray(result, dtype=dtype)


def _required(stats):
    if stats is None:
        raise ValueError("Velocity (de)normalisation needs the dataset's NormalizationStats. Received: None")
    return stats
