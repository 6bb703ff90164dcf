"""Evaluation metrics in OpenFWI's and in physical conventions, as Keras metrics and as NumPy functions.

Pipeline position: ``pipeline.train`` compiles the Keras metrics (``build_metrics``); ``pipeline.evaluate``
calls the array functions (``evaluate_arrays``) on whole prediction sets. Both give the same numbers.

Conventions (velocity arrays are ``(batch, depth, x)`` on the normalised [-1, 1] scale, as the models
output them):

* OpenFWI: MAE and RMSE on the [-1, 1] scale, averaged over every cell of every sample (RMSE = square root
  of OpenFWI's MSE); SSIM on the [0, 1] scale (``v / 2 + 0.5``) with OpenFWI's ``pytorch_ssim``: an 11×11
  Gaussian window (σ = 1.5, normalised to sum 1), ``C1 = 0.01²``, ``C2 = 0.03²`` (data range 1), population
  (biased) local variances, the window applied with **zero padding** of 5 cells, and the mean taken over
  the full map including the zero-padded border (``border="openfwi"``). ``border="valid"`` averages only
  the cells whose window lies inside the map: that is scikit-image's ``structural_similarity`` with
  ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1``.
* Physical: MAE and RMSE in m/s after de-normalising with the velocity range (default 1500–4500 m/s:
  ``v_mps = (v + 1) / 2 · (max - min) + min``).
* Edges: precision, recall and F1 of ``probability >= threshold`` against the binary label, counted over
  every cell of every sample (micro-averaged).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import numpy as np
from keras import ops
from scipy import ndimage

from models.layers import EDGES, PACKAGE, VELOCITY

SSIM_BORDERS = ("openfwi", "valid")
VELOCITY_SCALES = ("normalized", "physical")
DEFAULT_VELOCITY_RANGE_MPS = (1500.0, 4500.0)
SSIM_WINDOW_SIZE = 11
SSIM_SIGMA = 1.5


# ----------------------------------------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------------------------------------


def gaussian_window(window_size: int = SSIM_WINDOW_SIZE, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The 2-D Gaussian SSIM window, ``(window_size, window_size)`` float64, summing to 1."""
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"`window_size` must be a positive odd integer. Received: window_size={window_size}")
    offsets = np.arange(window_size) - window_size // 2
    profile = np.exp(-(offsets**2) / (2.0 * sigma**2))
    profile /= profile.sum()
    return np.outer(profile, profile)


def _check_range(velocity_range_mps: Sequence[float]) -> tuple[float, float]:
    low, high = (float(v) for v in velocity_range_mps)
    if not high > low:
        raise ValueError(f"`velocity_range_mps` must be (min, max) with max > min, in m/s. "
                         f"Received: velocity_range_mps={tuple(velocity_range_mps)}")
    return low, high


def _check_choice(value: str, choices: Sequence[str], argument: str) -> str:
    if value not in choices:
        raise ValueError(f"`{argument}` must be one of {', '.join(map(repr, choices))}. Received: {argument}={value!r}")
    return value


# ----------------------------------------------------------------------------------------------------------
# NumPy array functions (evaluation)
# ----------------------------------------------------------------------------------------------------------


def denormalize_velocity(velocity: np.ndarray, velocity_range_mps: Sequence[float] = DEFAULT_VELOCITY_RANGE_MPS):
    """Normalised [-1, 1] velocity → m/s: ``(v + 1) / 2 · (max - min) + min``."""
    low, high = _check_range(velocity_range_mps)
    return (np.asarray(velocity, dtype=np.float64) + 1.0) / 2.0 * (high - low) + low


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error over every element (OpenFWI's MAE on the [-1, 1] scale)."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(np.abs(y_pred - y_true)))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root of the mean squared error over every element (√ of OpenFWI's MSE)."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean(np.square(y_pred - y_true))))


def physical_mae(y_true, y_pred, velocity_range_mps: Sequence[float] = DEFAULT_VELOCITY_RANGE_MPS) -> float:
    """MAE in m/s of normalised velocity maps."""
    return mae(denormalize_velocity(y_true, velocity_range_mps), denormalize_velocity(y_pred, velocity_range_mps))


def physical_rmse(y_true, y_pred, velocity_range_mps: Sequence[float] = DEFAULT_VELOCITY_RANGE_MPS) -> float:
    """RMSE in m/s of normalised velocity maps."""
    return rmse(denormalize_velocity(y_true, velocity_range_mps), denormalize_velocity(y_pred, velocity_range_mps))


def _ssim_map(local_mean, y_true, y_pred, data_range: float = 1.0):
    """The SSIM map from a windowed-mean function; arithmetic operators only, so it serves numpy arrays
    (``ssim_per_sample``) and backend tensors (``ssim_tensor``) alike.

    ``C1 = (0.01·L)²`` and ``C2 = (0.03·L)²`` with ``L = data_range``; variances and covariance are the
    population (biased) windowed moments, as in OpenFWI's pytorch_ssim.
    """
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_true, mu_pred = local_mean(y_true), local_mean(y_pred)
    var_true = local_mean(y_true * y_true) - mu_true**2
    var_pred = local_mean(y_pred * y_pred) - mu_pred**2
    covariance = local_mean(y_true * y_pred) - mu_true * mu_pred
    return ((2 * mu_true * mu_pred + c1) * (2 * covariance + c2)) / (
        (mu_true**2 + mu_pred**2 + c1) * (var_true + var_pred + c2)
    )


def ssim_per_sample(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    border: str = "openfwi",
    data_range: float = 1.0,
    window_size: int = SSIM_WINDOW_SIZE,
    sigma: float = SSIM_SIGMA,
) -> np.ndarray:
    """SSIM of each map of ``(batch, depth, x)`` (or one ``(depth, x)``) arrays already on the [0, 1] scale.

    Args:
        y_true, y_pred: maps in [0, 1] (use ``velocity_ssim`` for [-1, 1] velocities).
        border: ``"openfwi"`` (zero padding, mean over the full map) or ``"valid"`` (mean over cells whose
            window fits inside the map; scikit-image's convention).
        data_range: dynamic range of the data, for ``C1 = (0.01·L)²`` and ``C2 = (0.03·L)²``.
        window_size, sigma: Gaussian window.

    Returns:
        ``(batch,)`` float64 SSIM values (a 0-d array for single maps).
    """
    _check_choice(border, SSIM_BORDERS, "border")
    y_true, y_pred = _pair(y_true, y_pred)
    single = y_true.ndim == 2
    if single:
        y_true, y_pred = y_true[None], y_pred[None]
    if y_true.ndim != 3:
        raise ValueError(f"SSIM takes (batch, depth, x) or (depth, x) maps. Received shape {y_true.shape}")
    window = gaussian_window(window_size, sigma)[None]  # no mixing across the batch axis

    def local_mean(values):
        return ndimage.correlate(values, window, mode="constant", cval=0.0)

    ssim_map = _ssim_map(local_mean, y_true, y_pred, data_range)
    if border == "valid":
        pad = window_size // 2
        ssim_map = ssim_map[:, pad:ssim_map.shape[1] - pad, pad:ssim_map.shape[2] - pad]
        if ssim_map.size == 0:
            raise ValueError(f"border='valid' needs maps of at least {window_size}×{window_size} cells. "
                             f"Received shape {y_true.shape[1:]}")
    values = ssim_map.mean(axis=(1, 2))
    return values[0] if single else values


def velocity_ssim(y_true: np.ndarray, y_pred: np.ndarray, border: str = "openfwi") -> float:
    """OpenFWI's SSIM of normalised [-1, 1] velocity maps: mapped to [0, 1], averaged over samples."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(ssim_per_sample(y_true / 2 + 0.5, y_pred / 2 + 0.5, border=border)))


def edge_precision_recall_f1(
    y_true: np.ndarray, y_pred: np.ndarray, threshold: float = 0.5
) -> tuple[float, float, float]:
    """Micro-averaged precision, recall and F1 of ``y_pred >= threshold`` against binary ``y_true``.

    Empty denominators give 0 (no predicted edges → precision 0; no true edges → recall 0).
    """
    y_true, y_pred = _pair(y_true, y_pred)
    predicted = y_pred >= threshold
    actual = y_true >= 0.5
    true_positives = float(np.sum(predicted & actual))
    false_positives = float(np.sum(predicted & ~actual))
    false_negatives = float(np.sum(~predicted & actual))
    return _precision_recall_f1(true_positives, false_positives, false_negatives)


def evaluate_arrays(
    targets: Mapping[str, np.ndarray],
    predictions: Mapping[str, np.ndarray],
    velocity_range_mps: Sequence[float] = DEFAULT_VELOCITY_RANGE_MPS,
    edge_threshold: float = 0.5,
) -> dict[str, float]:
    """Every metric for dicts of ``(batch, depth, x)`` arrays keyed by output name.

    Returns:
        Flat dict with keys ``velocity_mae``, ``velocity_rmse``, ``velocity_ssim`` (OpenFWI convention),
        ``velocity_mae_mps``, ``velocity_rmse_mps`` (physical) and, when both dicts hold ``"edges"``,
        ``edges_precision``, ``edges_recall``, ``edges_f1``; the same names as the Keras metrics' logs.
    """
    if VELOCITY not in targets or VELOCITY not in predictions:
        raise ValueError(f"Both dicts need a {VELOCITY!r} entry. Received keys: targets={sorted(targets)}, "
                         f"predictions={sorted(predictions)}")
    true_velocity, predicted_velocity = targets[VELOCITY], predictions[VELOCITY]
    results = {
        f"{VELOCITY}_mae": mae(true_velocity, predicted_velocity),
        f"{VELOCITY}_rmse": rmse(true_velocity, predicted_velocity),
        f"{VELOCITY}_ssim": velocity_ssim(true_velocity, predicted_velocity),
        f"{VELOCITY}_mae_mps": physical_mae(true_velocity, predicted_velocity, velocity_range_mps),
        f"{VELOCITY}_rmse_mps": physical_rmse(true_velocity, predicted_velocity, velocity_range_mps),
    }
    if EDGES in targets and EDGES in predictions:
        precision, recall, f1 = edge_precision_recall_f1(targets[EDGES], predictions[EDGES], edge_threshold)
        results.update({f"{EDGES}_precision": precision, f"{EDGES}_recall": recall, f"{EDGES}_f1": f1})
    return results


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"Targets and predictions must have the same shape. "
                         f"Received: y_true {y_true.shape}, y_pred {y_pred.shape}")
    return y_true, y_pred


def _precision_recall_f1(true_positives, false_positives, false_negatives):
    precision = true_positives / (true_positives + false_positives) if true_positives + false_positives else 0.0
    recall = true_positives / (true_positives + false_negatives) if true_positives + false_negatives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


# ----------------------------------------------------------------------------------------------------------
# Keras metrics (training and validation logs; keras.ops only)
# ----------------------------------------------------------------------------------------------------------


class _VelocityErrorMetric(keras.metrics.Metric):
    """Accumulates a sum of (absolute or squared) errors and the number of cells."""

    _squared = False

    def __init__(self, scale: str = "normalized",
                 velocity_range_mps: Sequence[float] = DEFAULT_VELOCITY_RANGE_MPS, name: str | None = None,
                 dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.scale = _check_choice(scale, VELOCITY_SCALES, "scale")
        self.velocity_range_mps = _check_range(velocity_range_mps)
        low, high = self.velocity_range_mps
        # Normalised error × (max - min) / 2 = error in m/s.
        self._factor = (high - low) / 2.0 if scale == "physical" else 1.0
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        error = (ops.cast(y_pred, "float32") - ops.cast(y_true, "float32")) * self._factor
        values = ops.square(error) if self._squared else ops.abs(error)
        self.total.assign_add(ops.sum(values))
        self.count.assign_add(ops.cast(ops.size(values), "float32"))

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "scale": self.scale,
                "velocity_range_mps": list(self.velocity_range_mps)}


@keras.saving.register_keras_serializable(package=PACKAGE)
class VelocityMAE(_VelocityErrorMetric):
    """MAE over every cell: on the [-1, 1] scale (``scale="normalized"``, OpenFWI) or in m/s (``"physical"``)."""

    def result(self):
        return ops.divide_no_nan(self.total, self.count)


@keras.saving.register_keras_serializable(package=PACKAGE)
class VelocityRMSE(_VelocityErrorMetric):
    """RMSE over every cell: on the [-1, 1] scale (``scale="normalized"``) or in m/s (``"physical"``)."""

    _squared = True

    def result(self):
        return ops.sqrt(ops.divide_no_nan(self.total, self.count))


@keras.saving.register_keras_serializable(package=PACKAGE)
class VelocitySSIM(keras.metrics.Metric):
    """OpenFWI's SSIM of normalised [-1, 1] velocity maps, mean over samples (see the module docstring).

    Args:
        border: ``"openfwi"`` (zero padding, full-map mean) or ``"valid"`` (scikit-image's convention).
        window_size, sigma: Gaussian window (OpenFWI: 11, 1.5).
    """

    def __init__(self, border: str = "openfwi", window_size: int = SSIM_WINDOW_SIZE, sigma: float = SSIM_SIGMA,
                 name: str = "ssim", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.border = _check_choice(border, SSIM_BORDERS, "border")
        self.window_size = int(window_size)
        self.sigma = float(sigma)
        self._window = gaussian_window(self.window_size, self.sigma).astype("float32")[:, :, None, None]
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = ssim_tensor(y_true, y_pred, self._window, self.border)
        self.total.assign_add(ops.sum(values))
        self.count.assign_add(ops.cast(ops.shape(values)[0], "float32"))

    def result(self):
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "border": self.border,
                "window_size": self.window_size, "sigma": self.sigma}


def ssim_tensor(y_true, y_pred, window: np.ndarray | None = None, border: str = "openfwi"):
    """Per-sample SSIM of ``(batch, depth, x)`` normalised [-1, 1] velocity tensors (keras.ops).

    Returns:
        ``(batch,)`` float32 tensor.
    """
    if window is None:
        window = gaussian_window().astype("float32")[:, :, None, None]
    kernel = ops.convert_to_tensor(window, dtype="float32")
    padding = "same" if border == "openfwi" else "valid"
    true = ops.expand_dims(ops.cast(y_true, "float32") / 2.0 + 0.5, -1)
    pred = ops.expand_dims(ops.cast(y_pred, "float32") / 2.0 + 0.5, -1)
    # Stacking the five filtered quantities along channels would need a grouped convolution; five calls of a
    # single-channel convolution keep it backend-agnostic.
    def local_mean(values):
        # "same" zero-pads window_size // 2 cells on each side for an odd window: pytorch_ssim's padding.
        return ops.conv(values, kernel, strides=1, padding=padding)

    return ops.mean(_ssim_map(local_mean, true, pred), axis=(1, 2, 3))


@keras.saving.register_keras_serializable(package=PACKAGE)
class EdgeConfusion(keras.metrics.Metric):
    """Precision, recall or F1 of thresholded edge probabilities, micro-averaged over every cell.

    Args:
        statistic: ``"precision"``, ``"recall"`` or ``"f1"``.
        threshold: probability at or above which a cell counts as an edge.
    """

    STATISTICS = ("precision", "recall", "f1")

    def __init__(self, statistic: str = "f1", threshold: float = 0.5, name: str | None = None, dtype=None):
        super().__init__(name=name or statistic, dtype=dtype)
        self.statistic = _check_choice(statistic, self.STATISTICS, "statistic")
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"`threshold` must be in (0, 1). Received: threshold={threshold}")
        self.threshold = float(threshold)
        self.true_positives = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="tp")
        self.false_positives = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="fp")
        self.false_negatives = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="fn")

    def update_state(self, y_true, y_pred, sample_weight=None):
        predicted = ops.cast(ops.cast(y_pred, "float32") >= self.threshold, "float32")
        actual = ops.cast(ops.cast(y_true, "float32") >= 0.5, "float32")
        self.true_positives.assign_add(ops.sum(predicted * actual))
        self.false_positives.assign_add(ops.sum(predicted * (1.0 - actual)))
        self.false_negatives.assign_add(ops.sum((1.0 - predicted) * actual))

    def result(self):
        precision = ops.divide_no_nan(self.true_positives, self.true_positives + self.false_positives)
        recall = ops.divide_no_nan(self.true_positives, self.true_positives + self.false_negatives)
        if self.statistic == "precision":
            return precision
        if self.statistic == "recall":
            return recall
        return ops.divide_no_nan(2.0 * precision * recall, precision + recall)

    def reset_state(self):
        for variable in (self.true_positives, self.false_positives, self.false_negatives):
            variable.assign(0.0)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "statistic": self.statistic, "threshold": self.threshold}


def build_metrics(
    output_names: Sequence[str] = (VELOCITY, EDGES),
    velocity_range_mps: Sequence[float] = DEFAULT_VELOCITY_RANGE_MPS,
    edge_threshold: float = 0.5,
) -> dict[str, list[keras.metrics.Metric]]:
    """Keras metrics keyed by output name, for ``model.compile(metrics=...)``.

    Keras logs them as ``<output>_<metric>``, e.g. ``velocity_mae``, ``velocity_mae_mps``, ``edges_f1``:
    the keys ``evaluate_arrays`` returns.
    """
    metrics = {VELOCITY: [
        VelocityMAE("normalized", velocity_range_mps, name="mae"),
        VelocityRMSE("normalized", velocity_range_mps, name="rmse"),
        VelocitySSIM(name="ssim"),
        VelocityMAE("physical", velocity_range_mps, name="mae_mps"),
        VelocityRMSE("physical", velocity_range_mps, name="rmse_mps"),
    ]}
    if EDGES in output_names:
        metrics[EDGES] = [EdgeConfusion(statistic, edge_threshold, name=statistic)
                          for statistic in EdgeConfusion.STATISTICS]
    return metrics


__all__ = [
    "DEFAULT_VELOCITY_RANGE_MPS",
    "EdgeConfusion",
    "SSIM_BORDERS",
    "VelocityMAE",
    "VelocityRMSE",
    "VelocitySSIM",
    "build_metrics",
    "denormalize_velocity",
    "edge_precision_recall_f1",
    "evaluate_arrays",
    "gaussian_window",
    "mae",
    "physical_mae",
    "physical_rmse",
    "rmse",
    "ssim_per_sample",
    "ssim_tensor",
    "velocity_ssim",
]
