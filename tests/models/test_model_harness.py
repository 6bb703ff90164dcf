"""Shared harness run for every model family (KerasHub style): shapes, config, save/load, fit, overfit."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import models
from data_prep.normalization import VelocityNormalization
from models.losses import LossConfig, build_losses
from models.metrics import build_metrics
from tests.models.harness import (
    EXPECTED_OUTPUTS,
    SMALL_GRID_SHAPE,
    SMALL_SEISMIC_SHAPE,
    random_batch,
    small_config,
)

FAMILIES = ["unet", "inversionnet", "lstm", "transformer"]


def _compile(model, learning_rate=1e-3):
    losses, weights = build_losses(LossConfig(), model.output_names)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=losses,
        loss_weights=weights,
        # A non-OpenFWI normalisation, so saving and loading a compiled model exercises its metrics' configs.
        metrics=build_metrics(
            model.output_names,
            normalization=VelocityNormalization("standard", 1000.0, 6000.0, mean_mps=3200.0, std_mps=800.0),
        ),
    )
    return model


def _targets(model, targets):
    return {name: targets[name] for name in model.output_names}


@pytest.mark.parametrize("name", FAMILIES)
def test_openfwi_default_output_names_and_shapes(name):
    keras.utils.set_random_seed(0)
    model = models.build(name)
    seismic = np.random.default_rng(0).uniform(-1, 1, (2, 5, 1000, 70)).astype("float32")
    outputs = model(seismic, training=False)
    assert set(outputs) == EXPECTED_OUTPUTS[name], f"{name}: expected outputs {EXPECTED_OUTPUTS[name]}"
    for key, value in outputs.items():
        assert tuple(value.shape) == (2, 70, 70), f"{name}.{key}: expected (2, 70, 70), got {value.shape}"
        assert keras.backend.standardize_dtype(value.dtype) == "float32", f"{name}.{key} must be float32"
    velocity = keras.ops.convert_to_numpy(outputs["velocity"])
    assert np.all(np.abs(velocity) <= 1.0), f"{name}: tanh velocity must lie in [-1, 1]"
    if "edges" in outputs:
        edges = keras.ops.convert_to_numpy(outputs["edges"])
        assert edges.min() >= 0.0 and edges.max() <= 1.0, f"{name}: edge probabilities must lie in [0, 1]"


@pytest.mark.parametrize("name", FAMILIES)
def test_non_square_grid(name):
    # The brief's example geometry: 3 shots, 500 samples, 48 receivers onto a 40 x 64 grid.
    keras.utils.set_random_seed(0)
    model = models.build(name, small_config(name, seismic_shape=(3, 500, 48), grid_shape=(40, 64)))
    seismic = np.random.default_rng(1).uniform(-1, 1, (2, 3, 500, 48)).astype("float32")
    outputs = model(seismic, training=False)
    # The small configs switch every optional edge head on (InversionNet's included).
    assert set(outputs) == {"velocity", "edges"}, f"{name}: expected velocity and edges, got {set(outputs)}"
    for key, value in outputs.items():
        assert tuple(value.shape) == (2, 40, 64), f"{name}.{key}: expected (2, 40, 64), got {value.shape}"
    velocity = keras.ops.convert_to_numpy(outputs["velocity"])
    assert np.all(np.isfinite(velocity)) and np.all(np.abs(velocity) <= 1.0), (
        f"{name}: velocity outside [-1, 1]"
    )
    assert np.abs(velocity[0] - velocity[1]).max() > 1e-6, f"{name}: two different surveys gave the same map"
    if "edges" in outputs:
        edges = keras.ops.convert_to_numpy(outputs["edges"])
        assert edges.min() >= 0.0 and edges.max() <= 1.0, f"{name}: edge probabilities must lie in [0, 1]"


@pytest.mark.parametrize("name", FAMILIES)
def test_config_round_trip(name):
    model = models.build(name, small_config(name))
    config = model.get_config()
    rebuilt = type(model).from_config(config)
    assert rebuilt.get_config() == config, f"{name}: get_config does not round-trip"
    assert rebuilt.count_params() == model.count_params()
    # The registry's dataclass carries exactly the constructor arguments.
    dataclass_config = models.load_model_config(small_config(name))
    arguments = {k: v for k, v in config.items() if k not in ("name", "trainable")}
    assert set(arguments) == {f for f in dataclass_config.__dataclass_fields__ if f != "family"}


@pytest.mark.parametrize("name", FAMILIES)
def test_save_load_safe_mode_gives_identical_outputs(name, tmp_path):
    keras.utils.set_random_seed(1)
    model = models.build(name, small_config(name))
    seismic, targets = random_batch(SMALL_SEISMIC_SHAPE, SMALL_GRID_SHAPE)
    # One training step so batch-norm statistics and optimizer state are non-trivial.
    _compile(model).train_on_batch(seismic, _targets(model, targets))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is type(model)
    before, after = model.predict_on_batch(seismic), loaded.predict_on_batch(seismic)
    assert set(before) == set(after)
    for key in before:
        np.testing.assert_array_equal(
            after[key], before[key], err_msg=f"{name}.{key} changed after save/load"
        )


@pytest.mark.parametrize("name", FAMILIES)
def test_one_fit_step_has_finite_loss(name):
    keras.utils.set_random_seed(2)
    model = _compile(models.build(name, small_config(name)))
    seismic, targets = random_batch(SMALL_SEISMIC_SHAPE, SMALL_GRID_SHAPE, batch_size=4)
    history = model.fit(seismic, _targets(model, targets), batch_size=4, epochs=1, verbose=0)
    for key, values in history.history.items():
        assert np.all(np.isfinite(values)), f"{name}: {key} is not finite: {values}"
    assert "velocity_ssim" in history.history and "velocity_mae_mps" in history.history


@pytest.mark.parametrize("name", ["unet", "lstm"])
def test_outputs_are_float32_under_mixed_bfloat16(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = models.build(name, small_config(name))
        outputs = model(np.zeros((1, *SMALL_SEISMIC_SHAPE), "float32"))
    finally:
        keras.config.set_dtype_policy(previous)
    for key, value in outputs.items():
        assert keras.backend.standardize_dtype(value.dtype) == "float32", f"{name}.{key} must stay float32"


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_overfits_eight_samples(name):
    keras.utils.set_random_seed(3)
    model = models.build(name, small_config(name))
    losses, weights = build_losses(LossConfig(edges_weight=0.0), model.output_names)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=losses, loss_weights=weights)
    seismic, targets = random_batch(SMALL_SEISMIC_SHAPE, SMALL_GRID_SHAPE, batch_size=8, seed=3)
    # Smooth targets: 8 random-noise maps are memorisable too, but smooth ones make the check quick.
    rows = np.linspace(-0.9, 0.9, SMALL_GRID_SHAPE[0])[None, :, None]
    velocity = (rows + 0.1 * np.arange(8)[:, None, None] - 0.35).clip(-1, 1)
    targets["velocity"] = np.broadcast_to(velocity, (8, *SMALL_GRID_SHAPE)).astype("float32")
    targets = _targets(model, targets)
    first = model.evaluate(seismic, targets, verbose=0, return_dict=True)["velocity_loss"]
    model.fit(seismic, targets, batch_size=8, epochs=300, verbose=0)
    last = model.evaluate(seismic, targets, verbose=0, return_dict=True)["velocity_loss"]
    assert last < 0.25 * first, f"{name}: velocity L1 went from {first:.4f} to {last:.4f}, expected < 25 %"


def test_shared_decoder_puts_both_heads_on_one_decoder():
    """decoder_mode="shared": one decoder, two 1×1 output convolutions; far fewer weights than two decoders."""
    independent = models.build(config=small_config("unet"))
    shared = models.build(config={**small_config("unet"), "decoder_mode": "shared"})
    assert set(shared.output_names) == {"velocity", "edges"}
    assert not any(layer.name.startswith("edges_up") or "edges_up" in layer.name for layer in shared.layers)
    edge_layers = [layer for layer in shared.layers if layer.name.startswith("edges") and layer.weights]
    assert [layer.name for layer in edge_layers] == ["edges_logits"], (
        "the edge head is only its 1×1 convolution"
    )
    decoder = sum(
        int(np.prod(w.shape))
        for layer in independent.layers
        if layer.name.startswith("edges")
        for w in layer.weights
    )
    assert shared.count_params() < independent.count_params() - decoder + 100
    seismic, _ = random_batch(SMALL_SEISMIC_SHAPE, SMALL_GRID_SHAPE)
    outputs = shared(seismic)
    assert outputs["edges"].shape == outputs["velocity"].shape
    assert 0.0 <= float(keras.ops.min(outputs["edges"])) and float(keras.ops.max(outputs["edges"])) <= 1.0
    # The config round-trips with the mode.
    assert type(shared).from_config(shared.get_config()).decoder_mode == "shared"
