"""Losses and metrics against hand-computed values; SSIM against scikit-image.

Tolerances: 1e-6 for float32 arithmetic on a handful of numbers; 1e-4 for SSIM against scikit-image (the
brief's bound; observed agreement is ~1e-7 in float32 and exact in float64); 1e-5 relative between the
float32 Keras metrics and the float64 NumPy functions on 70×70 maps (float32 accumulation of ~15k cells).
"""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest

from data_prep.normalization import (
    NormalizationConfig,
    StatisticsAccumulator,
    VelocityNormalization,
    denormalize_velocity,
    normalize_velocity,
)
from models import losses, metrics

#: A non-OpenFWI range, and standard normalisation with round numbers, for hand-computed values.
WIDE_MINMAX = VelocityNormalization("minmax", 1000.0, 6000.0)
WIDE_STANDARD = VelocityNormalization("standard", 1000.0, 6000.0, mean_mps=3200.0, std_mps=800.0)


def test_velocity_loss_l1_l2_mix_by_hand():
    y_true = np.array([[[0.0, 1.0], [-1.0, 0.5]]], "float32")
    y_pred = np.array([[[0.5, 1.0], [-0.5, -0.5]]], "float32")
    # errors: 0.5, 0, 0.5, 1.0 → L1 = 2.0 / 4 = 0.5; L2 = (0.25 + 0 + 0.25 + 1) / 4 = 0.375
    assert float(losses.VelocityLoss("l1")(y_true, y_pred)) == pytest.approx(0.5, abs=1e-6)
    assert float(losses.VelocityLoss("l2")(y_true, y_pred)) == pytest.approx(0.375, abs=1e-6)
    assert float(losses.VelocityLoss("mix", 0.25)(y_true, y_pred)) == pytest.approx(0.75 * 0.5 + 0.25 * 0.375)


def test_velocity_loss_ssim_term_is_one_minus_openfwis_ssim():
    rng = np.random.default_rng(3)
    y_true = rng.uniform(-1, 1, (3, 70, 70)).astype("float32")
    y_pred = np.clip(y_true + 0.3 * rng.normal(size=y_true.shape), -1, 1).astype("float32")
    l1 = np.abs(y_pred - y_true).mean(axis=(1, 2))
    ssim = metrics.ssim_per_sample(y_true * 0.5 + 0.5, y_pred * 0.5 + 0.5)  # OpenFWI: [-1, 1] -> [0, 1]
    assert 0.5 < ssim.min() and ssim.max() < 0.95  # a term that matters, not saturated
    per_sample = np.asarray(losses.VelocityLoss("l1", ssim_weight=0.7).call(y_true, y_pred))
    np.testing.assert_allclose(per_sample, l1 + 0.7 * (1 - ssim), rtol=1e-5)
    perfect = losses.VelocityLoss("l1", ssim_weight=0.7)(y_true, y_true)
    assert float(perfect) == pytest.approx(0.0, abs=1e-5)
    restored = keras.losses.deserialize(keras.losses.serialize(losses.VelocityLoss("mix", 0.3, 0.7)))
    assert restored.ssim_weight == 0.7 and restored.l2_fraction == 0.3
    assert losses.build_losses(losses.LossConfig(velocity_ssim_weight=0.4))[0]["velocity"].ssim_weight == 0.4
    with pytest.raises(ValueError, match="ssim_weight"):
        losses.VelocityLoss("l1", ssim_weight=-1)


def test_edge_loss_weighted_bce_and_dice_by_hand():
    y_true = np.array([[[1.0, 0.0], [0.0, 0.0]]], "float32")
    y_pred = np.array([[[0.8, 0.2], [0.1, 0.1]]], "float32")
    weight = 4.0
    bce = -(weight * math.log(0.8) + math.log(0.8) + 2 * math.log(0.9)) / 4
    dice = (2 * 0.8 + 1.0) / ((0.8 + 0.2 + 0.1 + 0.1) + 1.0 + 1.0)
    only_bce = losses.EdgeLoss(bce_weight=1.0, dice_weight=0.0, positive_weight=weight)
    only_dice = losses.EdgeLoss(bce_weight=0.0, dice_weight=1.0)
    both = losses.EdgeLoss(bce_weight=0.5, dice_weight=2.0, positive_weight=weight)
    assert float(only_bce(y_true, y_pred)) == pytest.approx(bce, abs=1e-6)
    assert float(only_dice(y_true, y_pred)) == pytest.approx(1 - dice, abs=1e-6)
    assert float(both(y_true, y_pred)) == pytest.approx(0.5 * bce + 2.0 * (1 - dice), abs=1e-6)


def test_build_losses_keys_follow_the_outputs():
    config = losses.LossConfig(velocity_loss="l2", velocity_weight=2.0, edges_weight=0.3)
    loss_dict, weights = losses.build_losses(config, ["velocity", "edges"])
    assert set(loss_dict) == set(weights) == {"velocity", "edges"}
    assert loss_dict["velocity"].kind == "l2" and weights == {"velocity": 2.0, "edges": 0.3}
    loss_dict, weights = losses.build_losses(config, ["velocity"])
    assert set(loss_dict) == {"velocity"}
    with pytest.raises(ValueError, match="Received output names"):
        losses.build_losses(config, ["speed"])


def test_loss_serialization_round_trip():
    loss = losses.EdgeLoss(0.5, 2.0, 7.0)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert restored.get_config() == loss.get_config()


def test_mae_rmse_normalized_and_physical_by_hand():
    y_true = np.array([[[0.0, 0.5]], [[-1.0, 1.0]]])
    y_pred = np.array([[[0.1, 0.5]], [[-0.8, 0.6]]])
    # errors 0.1, 0, 0.2, 0.4 → MAE 0.175, RMSE sqrt((0.01 + 0.04 + 0.16) / 4); 1 unit = 1500 m/s
    assert metrics.mae(y_true, y_pred) == pytest.approx(0.175)
    assert metrics.rmse(y_true, y_pred) == pytest.approx(math.sqrt(0.21 / 4))
    assert metrics.physical_mae(y_true, y_pred) == pytest.approx(0.175 * 1500)
    narrow = VelocityNormalization(min_mps=2000.0, max_mps=3000.0)
    assert metrics.physical_rmse(y_true, y_pred, narrow) == pytest.approx(math.sqrt(0.21 / 4) * 500)
    assert denormalize_velocity(np.array([-1.0, 0.0, 1.0]), VelocityNormalization()).tolist() == [
        1500,
        3000,
        4500,
    ]
    # Keras metrics accumulate over batches to the same numbers.
    for metric, expected in (
        (metrics.VelocityMAE(), 0.175),
        (metrics.VelocityRMSE("physical"), math.sqrt(0.21 / 4) * 1500),
    ):
        metric.update_state(y_true[:1], y_pred[:1])
        metric.update_state(y_true[1:], y_pred[1:])
        assert float(metric.result()) == pytest.approx(expected, rel=1e-6)


def test_edge_precision_recall_f1_by_hand():
    y_true = np.array([[[1, 1, 0, 0, 1]]], "float32")
    y_pred = np.array([[[0.9, 0.2, 0.7, 0.1, 0.5]]], "float32")
    # threshold 0.5: predicted 1, 0, 1, 0, 1 → TP 2, FP 1, FN 1
    precision, recall, f1 = metrics.edge_precision_recall_f1(y_true, y_pred, 0.5)
    assert (precision, recall, f1) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    precision, recall, f1 = metrics.edge_precision_recall_f1(y_true, y_pred, 0.8)
    assert (precision, recall, f1) == pytest.approx((1.0, 1 / 3, 0.5))
    for statistic, expected in (("precision", 1.0), ("recall", 1 / 3), ("f1", 0.5)):
        metric = metrics.EdgeConfusion(statistic, threshold=0.8)
        metric.update_state(y_true, y_pred)
        assert float(metric.result()) == pytest.approx(expected, rel=1e-6)


@pytest.fixture
def velocity_pair():
    rng = np.random.default_rng(7)
    # Smooth-ish layered maps plus noise: SSIM well away from 0 and 1.
    rows = np.linspace(-0.8, 0.8, 70)[None, :, None]
    truth = np.clip(rows + rng.normal(0, 0.1, (3, 70, 70)), -1, 1)
    prediction = np.clip(truth + rng.normal(0, 0.2, truth.shape), -1, 1)
    return truth, prediction


def test_ssim_valid_border_matches_scikit_image(velocity_pair):
    structural_similarity = pytest.importorskip("skimage.metrics").structural_similarity
    truth, prediction = velocity_pair
    reference = np.mean(
        [
            structural_similarity(
                t / 2 + 0.5,
                p / 2 + 0.5,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
            )
            for t, p in zip(truth, prediction, strict=True)
        ]
    )
    assert metrics.velocity_ssim(truth, prediction, border="valid") == pytest.approx(reference, abs=1e-4)
    metric = metrics.VelocitySSIM(border="valid")
    metric.update_state(truth.astype("float32"), prediction.astype("float32"))
    assert float(metric.result()) == pytest.approx(reference, abs=1e-4)


def test_ssim_openfwi_border_zero_pads_and_averages_the_full_map(velocity_pair):
    truth, prediction = velocity_pair
    # Independent computation of pytorch_ssim's recipe: explicit zero padding, then sliding windows.
    window = metrics.gaussian_window()
    true01, pred01 = (
        np.pad(truth / 2 + 0.5, ((0, 0), (5, 5), (5, 5))),
        np.pad(prediction / 2 + 0.5, ((0, 0), (5, 5), (5, 5))),
    )

    def filtered(values):
        windows = np.lib.stride_tricks.sliding_window_view(values, (11, 11), axis=(1, 2))
        return np.einsum("bijkl,kl->bij", windows, window)

    mu_t, mu_p = filtered(true01), filtered(pred01)
    var_t, var_p = filtered(true01**2) - mu_t**2, filtered(pred01**2) - mu_p**2
    cov = filtered(true01 * pred01) - mu_t * mu_p
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = (2 * mu_t * mu_p + c1) * (2 * cov + c2) / ((mu_t**2 + mu_p**2 + c1) * (var_t + var_p + c2))
    assert ssim_map.shape == (3, 70, 70)
    expected = ssim_map.mean()
    assert metrics.velocity_ssim(truth, prediction) == pytest.approx(expected, abs=1e-10)
    metric = metrics.VelocitySSIM()
    metric.update_state(truth[:2], prediction[:2])
    metric.update_state(truth[2:], prediction[2:])
    assert float(metric.result()) == pytest.approx(expected, abs=1e-5)
    assert metrics.velocity_ssim(truth, truth) == pytest.approx(1.0)


def test_the_two_ssim_borders_give_the_values_docs_models_md_quotes(velocity_pair):
    """docs/models.md quotes this pair: the zero-padded border (OpenFWI's) scores higher than valid windows only."""
    truth, prediction = velocity_pair
    openfwi = metrics.velocity_ssim(truth, prediction, border="openfwi")
    valid = metrics.velocity_ssim(truth, prediction, border="valid")
    assert (round(openfwi, 3), round(valid, 3)) == (0.474, 0.398), (
        f"docs/models.md quotes 0.474 (openfwi) vs 0.398 (valid) for this fixture; got {openfwi:.4f} vs {valid:.4f}"
    )


@pytest.mark.parametrize(
    "normalization", [None, WIDE_MINMAX, WIDE_STANDARD], ids=["openfwi", "minmax", "standard"]
)
def test_evaluate_arrays_matches_keras_metrics(velocity_pair, normalization):
    truth, prediction = velocity_pair
    edges_true = (np.abs(np.diff(truth, axis=1, prepend=truth[:, :1])) > 0.15).astype("float32")
    edges_pred = np.clip(edges_true * 0.7 + 0.2, 0, 1)
    results = metrics.evaluate_arrays(
        {"velocity": truth, "edges": edges_true},
        {"velocity": prediction, "edges": edges_pred},
        normalization=normalization,
    )
    keras_metrics = metrics.build_metrics(["velocity", "edges"], normalization=normalization)
    for output, y_true, y_pred in (("velocity", truth, prediction), ("edges", edges_true, edges_pred)):
        for metric in keras_metrics[output]:
            metric.update_state(y_true.astype("float32"), y_pred.astype("float32"))
            key = f"{output}_{metric.name}"
            assert float(metric.result()) == pytest.approx(results[key], rel=1e-5), key


def test_physical_errors_use_the_datasets_range_and_method():
    y_true = np.array([[[0.0, 0.5]], [[-1.0, 1.0]]])
    y_pred = np.array([[[0.1, 0.5]], [[-0.8, 0.6]]])
    # Normalised errors 0.1, 0, 0.2, 0.4 (MAE 0.175). One normalised unit is (6000 - 1000) / 2 = 2500 m/s
    # under minmax over 1000-6000 m/s, and std = 800 m/s under standard.
    for normalization, metres_per_unit in ((WIDE_MINMAX, 2500.0), (WIDE_STANDARD, 800.0)):
        expected_mae, expected_rmse = 0.175 * metres_per_unit, math.sqrt(0.21 / 4) * metres_per_unit
        assert metrics.physical_mae(y_true, y_pred, normalization) == pytest.approx(expected_mae, rel=1e-12)
        assert metrics.physical_rmse(y_true, y_pred, normalization) == pytest.approx(expected_rmse, rel=1e-12)
        for metric, expected in (
            (metrics.VelocityMAE("physical", normalization), expected_mae),
            (metrics.VelocityRMSE("physical", normalization), expected_rmse),
        ):
            metric.update_state(y_true.astype("float32"), y_pred.astype("float32"))
            assert float(metric.result()) == pytest.approx(expected, rel=1e-6), (normalization, metric.name)
    # The denormaliser itself, by hand: 0 -> the range's centre (minmax) or the mean (standard).
    assert denormalize_velocity(np.array([-1.0, 0.0, 1.0]), WIDE_MINMAX).tolist() == [1000.0, 3500.0, 6000.0]
    assert denormalize_velocity(np.array([-1.0, 0.0, 2.0]), WIDE_STANDARD).tolist() == [
        2400.0,
        3200.0,
        4800.0,
    ]


def test_metrics_from_real_statistics_equal_errors_in_mps():
    # Statistics computed by the ingest code (standard, 1000-6000 m/s), targets normalised with them: the
    # metrics in m/s must equal errors measured directly on the m/s maps, and SSIM must equal SSIM of the
    # maps mapped to [0, 1] with the dataset's range.
    rng = np.random.default_rng(3)
    velocity_mps = np.repeat(np.linspace(1200.0, 5800.0, 24)[None, :, None], 2, axis=0) * np.ones((2, 24, 24))
    predicted_mps = velocity_mps + rng.normal(0.0, 150.0, velocity_mps.shape)
    seismic = rng.normal(size=(2, 2, 16, 24)).astype("float32")
    for method in ("minmax", "standard"):
        accumulator = StatisticsAccumulator(
            NormalizationConfig(method=method, velocity_range_mps=(1000.0, 6000.0))
        )
        accumulator.update(seismic, velocity_mps)
        stats = accumulator.result()
        truth = normalize_velocity(velocity_mps, stats, np.float64)
        prediction = normalize_velocity(predicted_mps, stats, np.float64)
        results = metrics.evaluate_arrays({"velocity": truth}, {"velocity": prediction}, normalization=stats)
        errors = predicted_mps - velocity_mps
        assert results["velocity_mae_mps"] == pytest.approx(np.abs(errors).mean(), rel=1e-9), method
        assert results["velocity_rmse_mps"] == pytest.approx(np.sqrt(np.square(errors).mean()), rel=1e-9), (
            method
        )
        expected_ssim = metrics.ssim_per_sample(
            (velocity_mps - 1000) / 5000, (predicted_mps - 1000) / 5000
        ).mean()
        assert results["velocity_ssim"] == pytest.approx(expected_ssim, abs=1e-10), method
        metric = metrics.VelocitySSIM(normalization=stats)
        metric.update_state(truth.astype("float32"), prediction.astype("float32"))
        assert float(metric.result()) == pytest.approx(expected_ssim, abs=1e-5), method
    # The check can fail: OpenFWI's fixed v / 2 + 0.5 on the standardised values is a different number.
    wrong = metrics.ssim_per_sample(truth / 2 + 0.5, prediction / 2 + 0.5).mean()
    assert abs(wrong - expected_ssim) > 1e-3


def test_ssim_of_minmax_velocities_is_openfwis_for_any_range(velocity_pair):
    # For minmax, (v_mps - min) / (max - min) = v / 2 + 0.5 whatever the range: OpenFWI's SSIM.
    truth, prediction = velocity_pair
    openfwi = metrics.ssim_per_sample(truth / 2 + 0.5, prediction / 2 + 0.5).mean()
    assert metrics.velocity_ssim(truth, prediction, normalization=WIDE_MINMAX) == pytest.approx(
        openfwi, abs=1e-12
    )
    assert WIDE_MINMAX.unit_interval_affine() == (0.5, 0.5)
    # Standard: u = (800 v + 3200 - 1000) / 5000 = 0.16 v + 0.44.
    scale, offset = WIDE_STANDARD.unit_interval_affine()
    assert (scale, offset) == pytest.approx((0.16, 0.44), rel=1e-12)
    expected = metrics.ssim_per_sample(0.16 * truth + 0.44, 0.16 * prediction + 0.44).mean()
    assert metrics.velocity_ssim(truth, prediction, normalization=WIDE_STANDARD) == pytest.approx(
        expected, abs=1e-12
    )
    assert abs(expected - openfwi) > 1e-3, "the test needs a case where the two conventions differ"


@pytest.mark.parametrize("normalization", [None, WIDE_STANDARD], ids=["openfwi", "standard"])
def test_metric_configs_round_trip_with_their_normalization(normalization, velocity_pair):
    truth, prediction = (array[:1].astype("float32") for array in velocity_pair)
    for metric in metrics.build_metrics(["velocity"], normalization=normalization)["velocity"]:
        config = metric.get_config()
        json.dumps(config, allow_nan=False)  # strict JSON: it goes into .keras files and MLflow
        restored = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(metric), safe_mode=True
        )
        assert type(restored) is type(metric) and restored.get_config() == config, metric.name
        assert restored.normalization == VelocityNormalization.coerce(normalization), metric.name
        metric.update_state(truth, prediction)
        restored.update_state(truth, prediction)
        assert float(restored.result()) == float(metric.result()), metric.name


def test_metrics_require_a_normalization_argument():
    with pytest.raises(TypeError, match="normalization"):
        metrics.build_metrics(["velocity"])
    with pytest.raises(TypeError, match="normalization"):
        metrics.evaluate_arrays({"velocity": np.zeros((1, 2, 2))}, {"velocity": np.zeros((1, 2, 2))})


def test_metric_arguments_are_validated():
    with pytest.raises(ValueError, match="min < max"):
        metrics.VelocityMAE("physical", {"min_mps": 4500.0, "max_mps": 1500.0})
    with pytest.raises(ValueError, match="std_mps"):
        metrics.VelocitySSIM(normalization={"method": "standard", "mean_mps": 3000.0})
    with pytest.raises(ValueError, match="Unknown velocity normalisation keys"):
        metrics.VelocityMAE("physical", {"velocity_range_mps": [1500, 4500]})
    with pytest.raises(ValueError, match="border"):
        metrics.VelocitySSIM(border="reflect")
    with pytest.raises(ValueError, match="same shape"):
        metrics.mae(np.zeros((2, 3)), np.zeros((3, 2)))


@pytest.mark.parametrize("grid", [(70, 70), (40, 64), (200, 90)])
def test_resize_to_grid_matches_keras_image_resize(grid):
    from models.layers import ResizeToGrid

    images = np.random.default_rng(0).normal(size=(2, 125, 70, 3)).astype("float32")
    resized = keras.ops.convert_to_numpy(ResizeToGrid(*grid)(images))
    reference = keras.ops.convert_to_numpy(
        keras.ops.image.resize(images, grid, interpolation="bilinear", antialias=False)
    )
    # float32 rounding of the backends' sampling positions: differences ~2e-5 on unit-variance data.
    np.testing.assert_allclose(resized, reference, atol=1e-4)


@pytest.mark.parametrize("border", metrics.SSIM_BORDERS)
def test_keras_ssim_equals_the_numpy_correlation_on_a_non_square_grid(border):
    # The Keras metric filters with banded matrices (rows and columns separately), the NumPy function with
    # a 2-D correlation: a non-square grid checks that each axis gets its own matrix.
    rng = np.random.default_rng(11)
    truth = np.cumsum(rng.normal(0.0, 0.1, (3, 23, 41)), axis=1).clip(-1, 1)
    prediction = (truth + rng.normal(0.0, 0.2, truth.shape)).clip(-1, 1)
    expected = metrics.ssim_per_sample(truth / 2 + 0.5, prediction / 2 + 0.5, border=border)
    values = metrics.ssim_tensor(truth.astype("float32"), prediction.astype("float32"), border=border)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(values), expected, atol=2e-6)
    assert expected.std() > 1e-3, "the samples differ, so a mix-up of samples would show"


def test_gaussian_filter_matrix_is_the_zero_padded_and_the_valid_correlation():
    from scipy import ndimage

    profile = metrics.gaussian_window().sum(axis=0)
    signal = np.random.default_rng(5).normal(size=17)
    same = ndimage.correlate1d(signal, profile, mode="constant", cval=0.0)
    np.testing.assert_allclose(metrics.gaussian_filter_matrix(17) @ signal, same, atol=1e-12)
    valid = metrics.gaussian_filter_matrix(17, "valid")
    assert valid.shape == (7, 17)
    np.testing.assert_allclose(valid @ signal, same[5:-5], atol=1e-12)
    with pytest.raises(ValueError, match="at least 11 cells"):
        metrics.gaussian_filter_matrix(10, "valid")


def test_error_total_variation_is_zero_for_a_constant_error_and_counts_jumps():
    truth = np.zeros((2, 4, 4))
    assert metrics.error_total_variation(truth, truth + 50.0) == 0.0
    # A checkerboard error of ±30: every neighbour differs by 60 in both directions.
    checker = np.where((np.arange(4)[:, None] + np.arange(4)[None, :]) % 2 == 0, 30.0, -30.0)
    assert metrics.error_total_variation(truth, truth + checker) == pytest.approx(60.0)
    # Jumps only across depth (one step of 100 between rows 1 and 2): 100 / 3 depth pairs, none laterally.
    step = np.zeros((1, 4, 4))
    step[:, 2:] = 100.0
    assert metrics.error_total_variation(np.zeros((1, 4, 4)), step) == pytest.approx(100.0 / 3 / 2)


def test_interface_mae_scores_only_the_cells_near_true_interfaces():
    truth = np.zeros((1, 7, 5))
    edges = np.zeros((1, 7, 5))
    edges[0, 3] = 1.0  # one horizontal interface at row 3
    error = np.full((1, 7, 5), 1000.0)
    error[0, 2:5] = 10.0  # rows 2-4: within one cell of it
    assert metrics.interface_mae(truth, truth + error, edges, width=1) == pytest.approx(10.0)
    # Two cells: rows 1-5, of which rows 1 and 5 err by 1000.
    assert metrics.interface_mae(truth, truth + error, edges, width=2) == pytest.approx(
        (3 * 10 + 2 * 1000) / 5
    )
    assert np.isnan(metrics.interface_mae(truth, truth + error, np.zeros_like(edges)))
    with pytest.raises(ValueError, match="true_edges must have the velocity's shape"):
        metrics.interface_mae(truth, truth, edges[:, :5])


def test_smoothness_metrics_are_in_mps_of_the_datasets_range():
    # OpenFWI's minmax over 1500-4500 m/s: one normalised unit is 1500 m/s.
    truth = np.zeros((1, 7, 5))
    edges = np.zeros((1, 7, 5))
    edges[0, 3] = 1.0
    prediction = truth + 0.1
    prediction[0, 0] += 0.2  # a jump of 0.2 between rows 0 and 1, far from the interface
    results = metrics.smoothness_metrics(
        {"velocity": truth, "edges": edges}, {"velocity": prediction}, normalization=None
    )
    assert results["velocity_interface_mae_mps"] == pytest.approx(150.0)
    assert results["velocity_error_tv_mps"] == pytest.approx(0.2 * 1500 * 5 / (6 * 5) / 2)
    assert set(metrics.smoothness_metrics({"velocity": truth}, {"velocity": truth}, normalization=None)) == {
        "velocity_error_tv_mps"
    }
