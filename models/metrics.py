"""Evaluation metrics in OpenFWI's and in physical conventions, as Keras metrics and as NumPy functions.

Pipeline position: ``pipeline.train`` compiles the Keras metrics (``build_metrics``); ``pipeline.evaluate``
calls the array functions (``evaluate_arrays``) on whole prediction sets. Both give the same numbers.

Velocity arrays are ``(batch, depth, x)`` on the network's normalised scale, as the models output them.
How that scale relates to m/s is the dataset's: every velocity metric in m/s and SSIM takes a
``normalization`` argument, the dataset's ``NormalizationStats`` or its ``VelocityNormalization``
(``data_prep.normalization``), or ``None`` for OpenFWI's (``minmax`` over 1500–4500 m/s). Conventions:

* Normalised scale: MAE and RMSE of the network's values, averaged over every cell of every sample (RMSE =
  square root of OpenFWI's MSE). With OpenFWI's normalisation this is OpenFWI's [-1, 1] MAE/MSE; with
  another range (or ``standard``) the numbers are in those units and not comparable with OpenFWI's tables.
* SSIM on ``u = (v_mps - min_mps) / (max_mps - min_mps)``, the velocity mapped to [0, 1] with the dataset's
  range (``velocity_min_mps``, ``velocity_max_mps`` of the statistics), for ``minmax`` and ``standard``
  alike; for ``minmax`` that is OpenFWI's ``v / 2 + 0.5`` for any range. Values outside the range are not
  clipped. The SSIM itself is OpenFWI's ``pytorch_ssim``: an 11×11
  Gaussian window (σ = 1.5, normalised to sum 1), ``C1 = 0.01²``, ``C2 = 0.03²`` (data range 1), population
  (biased) local variances, the window applied with **zero padding** of 5 cells, and the mean taken over
  the full map including the zero-padded border (``border="openfwi"``). ``border="valid"`` averages only
  the cells whose window lies inside the map: that is scikit-image's ``structural_similarity`` with
  ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1``.
* Physical: MAE and RMSE in m/s after ``data_prep.normalization.denormalize_velocity`` (the one
  denormaliser); the Keras metrics multiply the normalised error by the same ``scale_mps``.
* Edges: precision, recall and F1 of ``probability >= threshold`` against the binary label, counted over
  every cell of every sample (micro-averaged).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import keras
import numpy as np
from keras import ops
from scipy import ndimage

from data_prep.normalization import NormalizationStats, VelocityNormalization, denormalize_velocity
from models.layers import EDGES, PACKAGE, VELOCITY

SSIM_BORDERS = ("openfwi", "valid")
VELOCITY_SCALES = ("normalized", "physical")
#: What a ``normalization`` argument accepts (``None``: OpenFWI's minmax over 1500-4500 m/s).
Normalization = VelocityNormalization | NormalizationStats | Mapping | None
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


def _check_choice(value: str, choices: Sequence[str], argument: str) -> str:
    if value not in choices:
        raise ValueError(
            f"`{argument}` must be one of {', '.join(map(repr, choices))}. Received: {argument}={value!r}"
        )
    return value


# ----------------------------------------------------------------------------------------------------------
# NumPy array functions (evaluation)
# ----------------------------------------------------------------------------------------------------------


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error over every element (OpenFWI's MAE on the [-1, 1] scale)."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(np.abs(y_pred - y_true)))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root of the mean squared error over every element (√ of OpenFWI's MSE)."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean(np.square(y_pred - y_true))))


def physical_mae(y_true, y_pred, normalization: Normalization = None) -> float:
    """MAE in m/s of normalised velocity maps (denormalised with the dataset's ``normalization``)."""
    velocity = VelocityNormalization.coerce(normalization)
    return mae(
        denormalize_velocity(y_true, velocity, np.float64), denormalize_velocity(y_pred, velocity, np.float64)
    )


def physical_rmse(y_true, y_pred, normalization: Normalization = None) -> float:
    """RMSE in m/s of normalised velocity maps (denormalised with the dataset's ``normalization``)."""
    velocity = VelocityNormalization.coerce(normalization)
    return rmse(
        denormalize_velocity(y_true, velocity, np.float64), denormalize_velocity(y_pred, velocity, np.float64)
    )


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
        ssim_map = ssim_map[:, pad : ssim_map.shape[1] - pad, pad : ssim_map.shape[2] - pad]
        if ssim_map.size == 0:
            raise ValueError(
                f"border='valid' needs maps of at least {window_size}×{window_size} cells. "
                f"Received shape {y_true.shape[1:]}"
            )
    values = ssim_map.mean(axis=(1, 2))
    return values[0] if single else values


def velocity_ssim(
    y_true: np.ndarray, y_pred: np.ndarray, border: str = "openfwi", normalization: Normalization = None
) -> float:
    """OpenFWI's SSIM of normalised velocity maps, averaged over samples.

    The maps are denormalised to m/s with ``normalization`` and mapped to [0, 1] with the dataset's velocity
    range, ``(v_mps - min_mps) / (max_mps - min_mps)`` (OpenFWI's ``v / 2 + 0.5`` for ``minmax``).
    """
    velocity = VelocityNormalization.coerce(normalization)
    y_true, y_pred = _pair(y_true, y_pred)
    true01 = velocity.to_unit_interval(denormalize_velocity(y_true, velocity, np.float64))
    pred01 = velocity.to_unit_interval(denormalize_velocity(y_pred, velocity, np.float64))
    return float(np.mean(ssim_per_sample(true01, pred01, border=border)))


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
    *,
    normalization: Normalization,
    edge_threshold: float = 0.5,
) -> dict[str, float]:
    """Every metric for dicts of ``(batch, depth, x)`` arrays keyed by output name.

    Args:
        targets, predictions: ``{"velocity": (batch, depth, x), "edges": ...}`` on the network's scale.
        normalization: the dataset's ``NormalizationStats`` (or ``VelocityNormalization``, or their dicts);
            required so that a caller cannot silently evaluate with another dataset's range. ``None`` means
            OpenFWI's minmax over 1500–4500 m/s.
        edge_threshold: probability at or above which a cell counts as an edge.

    Returns:
        Flat dict with keys ``velocity_mae``, ``velocity_rmse``, ``velocity_ssim`` (OpenFWI convention),
        ``velocity_mae_mps``, ``velocity_rmse_mps`` (physical) and, when both dicts hold ``"edges"``,
        ``edges_precision``, ``edges_recall``, ``edges_f1``; the same names as the Keras metrics' logs.
    """
    if VELOCITY not in targets or VELOCITY not in predictions:
        raise ValueError(
            f"Both dicts need a {VELOCITY!r} entry. Received keys: targets={sorted(targets)}, "
            f"predictions={sorted(predictions)}"
        )
    true_velocity, predicted_velocity = targets[VELOCITY], predictions[VELOCITY]
    results = {
        f"{VELOCITY}_mae": mae(true_velocity, predicted_velocity),
        f"{VELOCITY}_rmse": rmse(true_velocity, predicted_velocity),
        f"{VELOCITY}_ssim": velocity_ssim(true_velocity, predicted_velocity, normalization=normalization),
        f"{VELOCITY}_mae_mps": physical_mae(true_velocity, predicted_velocity, normalization),
        f"{VELOCITY}_rmse_mps": physical_rmse(true_velocity, predicted_velocity, normalization),
    }
    if EDGES in targets and EDGES in predictions:
        precision, recall, f1 = edge_precision_recall_f1(targets[EDGES], predictions[EDGES], edge_threshold)
        results.update({f"{EDGES}_precision": precision, f"{EDGES}_recall": recall, f"{EDGES}_f1": f1})
    return results


def interface_mae(y_true, y_pred, true_edges, width: int = 2) -> float:
    """MAE over the cells within ``width`` cells (4-connected steps) of a true interface, in the arrays' units.

    What an edge-aware inversion is meant to get right: the velocity next to the layer boundaries, where a
    smooth prediction errs most. ``nan`` when no sample has an interface.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    edges = np.asarray(true_edges) >= 0.5
    if edges.shape != y_true.shape:
        raise ValueError(f"true_edges must have the velocity's shape {y_true.shape}. Received: {edges.shape}")
    edges = edges.reshape((-1,) + edges.shape[-2:])
    near = np.stack([ndimage.binary_dilation(e, iterations=width) if e.any() else e for e in edges])
    if not near.any():
        return float("nan")
    return float(np.abs(y_pred - y_true).reshape(near.shape)[near].mean())


def error_total_variation(y_true, y_pred) -> float:
    """Mean absolute jump of the error map between neighbouring cells, in the arrays' units (the mean of the
    depth and the lateral direction); 0 for an error constant over each map. Lower is a smoother, cleaner
    inversion: what the edge task is meant to give."""
    y_true, y_pred = _pair(y_true, y_pred)
    error = y_pred - y_true
    return float(np.abs(np.diff(error, axis=-2)).mean() / 2 + np.abs(np.diff(error, axis=-1)).mean() / 2)


def smoothness_metrics(
    targets: Mapping[str, np.ndarray], predictions: Mapping[str, np.ndarray], *, normalization: Normalization
) -> dict[str, float]:
    """``velocity_error_tv_mps`` and, when ``targets`` holds the true ``"edges"``,
    ``velocity_interface_mae_mps``: ``error_total_variation`` and ``interface_mae`` (two cells) in m/s. They
    need whole maps, so they have no Keras-metric twin and are computed on prediction sets only."""
    velocity = VelocityNormalization.coerce(normalization)
    true_mps = denormalize_velocity(targets[VELOCITY], velocity, np.float64)
    predicted_mps = denormalize_velocity(predictions[VELOCITY], velocity, np.float64)
    results = {f"{VELOCITY}_error_tv_mps": error_total_variation(true_mps, predicted_mps)}
    if EDGES in targets:
        results[f"{VELOCITY}_interface_mae_mps"] = interface_mae(true_mps, predicted_mps, targets[EDGES])
    return results


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"Targets and predictions must have the same shape. "
            f"Received: y_true {y_true.shape}, y_pred {y_pred.shape}"
        )
    return y_true, y_pred


def _precision_recall_f1(true_positives, false_positives, false_negatives):
    precision = (
        true_positives / (true_positives + false_positives) if true_positives + false_positives else 0.0
    )
    recall = true_positives / (true_positives + false_negatives) if true_positives + false_negatives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


# ----------------------------------------------------------------------------------------------------------
# Keras metrics (training and validation logs; keras.ops only)
# ----------------------------------------------------------------------------------------------------------


class _VelocityErrorMetric(keras.metrics.Metric):
    """Accumulates a sum of (absolute or squared) errors and the number of cells.

    Args:
        scale: ``"normalized"`` (the network's scale) or ``"physical"`` (m/s).
        normalization: the dataset's ``VelocityNormalization`` / ``NormalizationStats`` / their dict, or
            ``None`` (OpenFWI). Stored in ``get_config`` as ``VelocityNormalization.to_dict()``.
    """

    _squared = False

    def __init__(
        self,
        scale: str = "normalized",
        normalization: Normalization = None,
        name: str | None = None,
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype)
        self.scale = _check_choice(scale, VELOCITY_SCALES, "scale")
        self.normalization = VelocityNormalization.coerce(normalization)
        # v_mps = scale_mps · v + offset_mps, so an error on the normalised scale × scale_mps = error in m/s
        # (the offset cancels; denormalize_velocity's affine map, without float32 rounding of ~3000 m/s).
        self._factor = self.normalization.scale_mps if scale == "physical" else 1.0
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
        return {
            "name": self.name,
            "dtype": self.dtype,
            "scale": self.scale,
            "normalization": self.normalization.to_dict(),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class VelocityMAE(_VelocityErrorMetric):
    """MAE over every cell: on the network's scale (``scale="normalized"``, OpenFWI) or in m/s (``"physical"``)."""

    def result(self):
        return ops.divide_no_nan(self.total, self.count)


@keras.saving.register_keras_serializable(package=PACKAGE)
class VelocityRMSE(_VelocityErrorMetric):
    """RMSE over every cell: on the network's scale (``scale="normalized"``) or in m/s (``"physical"``)."""

    _squared = True

    def result(self):
        return ops.sqrt(ops.divide_no_nan(self.total, self.count))


@keras.saving.register_keras_serializable(package=PACKAGE)
class VelocitySSIM(keras.metrics.Metric):
    """OpenFWI's SSIM of normalised velocity maps, mean over samples (see the module docstring).

    Args:
        border: ``"openfwi"`` (zero padding, full-map mean) or ``"valid"`` (scikit-image's convention).
        window_size, sigma: Gaussian window (OpenFWI: 11, 1.5).
        normalization: the dataset's ``VelocityNormalization`` / ``NormalizationStats`` / their dict, or
            ``None`` (OpenFWI): the maps are compared as ``(v_mps - min_mps) / (max_mps - min_mps)``.
    """

    def __init__(
        self,
        border: str = "openfwi",
        window_size: int = SSIM_WINDOW_SIZE,
        sigma: float = SSIM_SIGMA,
        normalization: Normalization = None,
        name: str = "ssim",
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype)
        self.border = _check_choice(border, SSIM_BORDERS, "border")
        self.normalization = VelocityNormalization.coerce(normalization)
        self.window_size = int(window_size)
        self.sigma = float(sigma)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = ssim_tensor(y_true, y_pred, self.border, self.normalization, self.window_size, self.sigma)
        self.total.assign_add(ops.sum(values))
        self.count.assign_add(ops.cast(ops.shape(values)[0], "float32"))

    def result(self):
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {
            "name": self.name,
            "dtype": self.dtype,
            "border": self.border,
            "window_size": self.window_size,
            "sigma": self.sigma,
            "normalization": self.normalization.to_dict(),
        }


@functools.lru_cache(maxsize=32)
def gaussian_filter_matrix(
    size: int, border: str = "openfwi", window_size: int = SSIM_WINDOW_SIZE, sigma: float = SSIM_SIGMA
) -> np.ndarray:
    """The Gaussian window's 1-D profile as a banded matrix ``M``: ``M @ v`` filters an axis of ``size``.

    The 2-D window is the outer product of this profile with itself, so filtering a ``(depth, x)`` map is
    ``M_depth @ map @ M_x.T``: two small matrix products, which every backend runs fast, where a single-
    channel 11×11 convolution is slow on CPUs (~20× slower under XLA on TensorFlow, measured on 16 maps of
    70×70). ``border="openfwi"`` gives the zero-padded ``(size, size)`` matrix (a "same" correlation);
    ``"valid"`` the ``(size - window_size + 1, size)`` matrix of the windows that fit inside the axis.
    """
    _check_choice(border, SSIM_BORDERS, "border")
    profile = gaussian_window(window_size, sigma).sum(axis=0)
    half = window_size // 2
    if border == "openfwi":
        rows = np.arange(size)
        first = rows - half
    else:
        if size < window_size:
            raise ValueError(
                f"border='valid' needs maps of at least {window_size} cells per axis. Received: {size}"
            )
        rows = np.arange(size - window_size + 1)
        first = rows
    matrix = np.zeros((len(rows), size), dtype="float64")
    for offset, weight in enumerate(profile):
        columns = first + offset
        inside = (columns >= 0) & (columns < size)
        matrix[rows[inside], columns[inside]] = weight
    matrix.setflags(write=False)
    return matrix


def ssim_tensor(
    y_true,
    y_pred,
    border: str = "openfwi",
    normalization: Normalization = None,
    window_size: int = SSIM_WINDOW_SIZE,
    sigma: float = SSIM_SIGMA,
):
    """Per-sample SSIM of ``(batch, depth, x)`` normalised velocity tensors (keras.ops).

    The maps are compared as ``a · v + b = (v_mps - min_mps) / (max_mps - min_mps)``, with ``(a, b)`` from
    ``VelocityNormalization.unit_interval_affine`` (``(0.5, 0.5)`` for any ``minmax`` range: OpenFWI's).
    The Gaussian window is applied as two banded matrix products (``gaussian_filter_matrix``), the same
    numbers as ``ssim_per_sample``'s correlation to float32 round-off.

    Returns:
        ``(batch,)`` float32 tensor.
    """
    depth, lateral = int(y_true.shape[-2]), int(y_true.shape[-1])
    depth_filter = ops.convert_to_tensor(
        gaussian_filter_matrix(depth, border, window_size, sigma), dtype="float32"
    )
    lateral_filter_t = ops.convert_to_tensor(
        gaussian_filter_matrix(lateral, border, window_size, sigma).T, dtype="float32"
    )
    scale, offset = VelocityNormalization.coerce(normalization).unit_interval_affine()
    true = ops.cast(y_true, "float32") * scale + offset
    pred = ops.cast(y_pred, "float32") * scale + offset

    def local_mean(values):
        return ops.matmul(ops.matmul(depth_filter, values), lateral_filter_t)

    return ops.mean(_ssim_map(local_mean, true, pred), axis=(1, 2))


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
        return {
            "name": self.name,
            "dtype": self.dtype,
            "statistic": self.statistic,
            "threshold": self.threshold,
        }


def build_metrics(
    output_names: Sequence[str] = (VELOCITY, EDGES),
    *,
    normalization: Normalization,
    edge_threshold: float = 0.5,
) -> dict[str, list[keras.metrics.Metric]]:
    """Keras metrics keyed by output name, for ``model.compile(metrics=...)``.

    Keras logs them as ``<output>_<metric>``, e.g. ``velocity_mae``, ``velocity_mae_mps``, ``edges_f1``:
    the keys ``evaluate_arrays`` returns.

    Args:
        output_names: the model's outputs (``model.output_names``).
        normalization: the training dataset's ``NormalizationStats`` (or ``VelocityNormalization``, or
            their dicts); required so that a caller cannot silently use another dataset's range. ``None``
            means OpenFWI's minmax over 1500–4500 m/s.
        edge_threshold: probability at or above which a cell counts as an edge.
    """
    normalization = VelocityNormalization.coerce(normalization)
    metrics = {
        VELOCITY: [
            VelocityMAE("normalized", normalization, name="mae"),
            VelocityRMSE("normalized", normalization, name="rmse"),
            VelocitySSIM(normalization=normalization, name="ssim"),
            VelocityMAE("physical", normalization, name="mae_mps"),
            VelocityRMSE("physical", normalization, name="rmse_mps"),
        ]
    }
    if EDGES in output_names:
        metrics[EDGES] = [
            EdgeConfusion(statistic, edge_threshold, name=statistic) for statistic in EdgeConfusion.STATISTICS
        ]
    return metrics


__all__ = [
    "EdgeConfusion",
    "SSIM_BORDERS",
    "VelocityMAE",
    "VelocityRMSE",
    "VelocitySSIM",
    "build_metrics",
    "edge_precision_recall_f1",
    "error_total_variation",
    "evaluate_arrays",
    "interface_mae",
    "gaussian_filter_matrix",
    "gaussian_window",
    "mae",
    "physical_mae",
    "physical_rmse",
    "rmse",
    "smoothness_metrics",
    "ssim_per_sample",
    "ssim_tensor",
    "velocity_ssim",
]
