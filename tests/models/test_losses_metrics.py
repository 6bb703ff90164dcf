"""Losses and metrics against hand-computed values; SSIM against scikit-image.

Tolerances: 1e-6 for float32 arithmetic on a handful of numbers; 1e-4 for SSIM against scikit-image (the
brief's bound; observed agreement is ~1e-7 in float32 and exact in float64).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from models import losses, metrics


def test_velocity_loss_l1_l2_mix_by_hand():
    y_true = np.array([[[0.0, 1.0], [-1.0, 0.5]]], "float32")
    y_pred = np.array([[[0.5, 1.0], [-0.5, -0.5]]], "float32")
    # errors: 0.5, 0, 0.5, 1.0 → L1 = 2.0 / 4 = 0.5; L2 = (0.25 + 0 + 0.25 + 1) / 4 = 0.375
    assert float(losses.VelocityLoss("l1")(y_true, y_pred)) == pytest.approx(0.5, abs=1e-6)
    assert float(losses.VelocityLoss("l2")(y_true, y_pred)) == pytest.approx(0.375, abs=1e-6)
    assert float(losses.VelocityLoss("mix", 0.25)(y_true, y_pred)) == pytest.approx(0.75 * 0.5 + 0.25 * 0.375)


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
    assert metrics.physical_rmse(y_true, y_pred, (2000.0, 3000.0)) == pytest.approx(math.sqrt(0.21 / 4) * 500)
    assert metrics.denormalize_velocity(np.array([-1.0, 0.0, 1.0])).tolist() == [1500.0, 3000.0, 4500.0]
    # Keras metrics accumulate over batches to the same numbers.
    for metric, expected in ((metrics.VelocityMAE(), 0.175),
                             (metrics.VelocityRMSE("physical"), math.sqrt(0.21 / 4) * 1500)):
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
    reference = np.mean([
        structural_similarity(t / 2 + 0.5, p / 2 + 0.5, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False, data_range=1.0)
        for t, p in zip(truth, prediction, strict=True)
    ])
    assert metrics.velocity_ssim(truth, prediction, border="valid") == pytest.approx(reference, abs=1e-4)
    metric = metrics.VelocitySSIM(border="valid")
    metric.update_state(truth.astype("float32"), prediction.astype("float32"))
    assert float(metric.result()) == pytest.approx(reference, abs=1e-4)


def test_ssim_openfwi_border_zero_pads_and_averages_the_full_map(velocity_pair):
    truth, prediction = velocity_pair
    # Independent computation of pytorch_ssim's recipe: explicit zero padding, then sliding windows.
    window = metrics.gaussian_window()
    true01, pred01 = np.pad(truth / 2 + 0.5, ((0, 0), (5, 5), (5, 5))), np.pad(prediction / 2 + 0.5, ((0, 0), (5, 5), (5, 5)))

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


def test_evaluate_arrays_matches_keras_metrics(velocity_pair):
    truth, prediction = velocity_pair
    edges_true = (np.abs(np.diff(truth, axis=1, prepend=truth[:, :1])) > 0.15).astype("float32")
    edges_pred = np.clip(edges_true * 0.7 + 0.2, 0, 1)
    results = metrics.evaluate_arrays({"velocity": truth, "edges": edges_true},
                                      {"velocity": prediction, "edges": edges_pred})
    keras_metrics = metrics.build_metrics(["velocity", "edges"])
    for output, y_true, y_pred in (("velocity", truth, prediction), ("edges", edges_true, edges_pred)):
        for metric in keras_metrics[output]:
            metric.update_state(y_true.astype("float32"), y_pred.astype("float32"))
            key = f"{output}_{metric.name}"
            assert float(metric.result()) == pytest.approx(results[key], rel=1e-4), key


def test_metric_arguments_are_validated():
    with pytest.raises(ValueError, match="velocity_range_mps"):
        metrics.VelocityMAE("physical", (4500.0, 1500.0))
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
        keras.ops.image.resize(images, grid, interpolation="bilinear", antialias=False))
    # float32 rounding of the backends' sampling positions: differences ~2e-5 on unit-variance data.
    np.testing.assert_allclose(resized, reference, atol=1e-4)
