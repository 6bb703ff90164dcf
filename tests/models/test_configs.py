"""Every YAML in configs/model/ loads into its dataclass and builds; the registry rejects bad input clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

import models
from core.config import load_config
from core.errors import ConfigError
from tests.models.harness import EXPECTED_OUTPUTS

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "model"
YAML_FILES = sorted(CONFIG_DIR.glob("*.yaml"))


def test_every_family_has_a_config():
    names = {path.stem for path in YAML_FILES}
    assert {"unet", "unet_shared_decoder", "inversionnet", "lstm", "gru", "rnn", "transformer"} <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.stem)
def test_yaml_loads_and_builds(path):
    config = models.load_model_config(path)
    # Also loadable through the shared config loader, as pipeline CLIs do.
    assert load_config(type(config), files=[path]) == config
    model = models.build(config=path)
    assert set(model.output_names) == EXPECTED_OUTPUTS[config.family]
    assert tuple(model.output["velocity"].shape) == (None, 70, 70)
    if path.stem in ("gru", "rnn"):
        assert config.cell == path.stem


def test_defaults_equal_the_default_yaml():
    for name in models.available_models():
        assert models.load_model_config(CONFIG_DIR / f"{name}.yaml") == models.config_class(name)()


def test_registry_errors_name_the_problem():
    with pytest.raises(ConfigError, match="Unknown model 'resnet'"):
        models.build("resnet")
    with pytest.raises(ConfigError, match="encoder_fliters"):
        models.build("unet", {"encoder_fliters": [8, 16]})
    with pytest.raises(ConfigError, match="family 'lstm'"):
        models.build("unet", CONFIG_DIR / "lstm.yaml")
    with pytest.raises(ConfigError, match="seismic_shape"):
        models.build("unet", {"seismic_shape": [5, 1000]})
    with pytest.raises(ValueError, match="Received: decoder_mode='both'"):
        models.DualDecoderUNet(decoder_mode="both")
    with pytest.raises(ValueError, match="encoder_filters"):
        models.DualDecoderUNet(grid_shape=(8, 8), encoder_filters=(8, 16, 32, 64, 128))
    with pytest.raises(ValueError, match="Received: seismic_shape=.*time_pooling=200"):
        models.DualDecoderUNet(time_pooling=200)
    with pytest.raises(ValueError, match="time_pooling"):
        models.DualDecoderUNet(time_pooling=0)


def test_time_pooling_averages_time_before_the_front_end():
    import numpy as np

    model = models.DualDecoderUNet(
        time_pooling=4, front_end_filters=(4,), front_end_kernel_sizes=(3,), encoder_filters=(4, 8)
    )
    pooling = model.get_layer("time_pooling")
    seismic = np.random.default_rng(0).normal(size=(2, 5, 1000, 70)).astype("float32")
    pooled = np.asarray(pooling(np.transpose(seismic, (0, 2, 3, 1))))
    expected = np.transpose(seismic, (0, 2, 3, 1)).reshape(2, 250, 4, 70, 5).mean(axis=2)
    np.testing.assert_allclose(pooled, expected, rtol=1e-5, atol=1e-6)
    assert model.get_config()["time_pooling"] == 4
    assert models.DualDecoderUNet.from_config(model.get_config()).count_params() == model.count_params()


def test_time_gain_appends_a_balanced_gained_copy():
    import numpy as np

    from models.layers import TimeGain

    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 100, 7, 3)).astype("float32")
    images[1] *= 40.0  # another amplitude scale: the gained copy follows it
    result = np.asarray(TimeGain(2.0)(images))
    assert result.shape == (2, 100, 7, 6)
    np.testing.assert_array_equal(result[..., :3], images)
    gain = ((np.arange(100) + 0.5) / 100) ** 2
    gained = images * gain[None, :, None, None]
    rms = np.sqrt((images**2).mean(axis=(1, 2), keepdims=True))
    expected = gained * rms / np.sqrt((gained**2).mean(axis=(1, 2), keepdims=True))
    np.testing.assert_allclose(result[..., 3:], expected, rtol=1e-4)
    # The late samples are lifted against the early ones, by the ratio of the gain.
    late_to_early = np.abs(result[..., -10:, :, 3:]).mean() / np.abs(result[..., :10, :, 3:]).mean()
    assert late_to_early > 100 * np.abs(images[:, -10:]).mean() / np.abs(images[:, :10]).mean()
    with pytest.raises(ValueError, match="power=0"):
        TimeGain(0.0)
    with pytest.raises(ValueError, match="time_gain_power=-1"):
        models.DualDecoderUNet(time_gain_power=-1)

    model = models.DualDecoderUNet(
        time_pooling=4,
        time_gain_power=2.0,
        front_end_filters=(4,),
        front_end_kernel_sizes=(3,),
        encoder_filters=(4, 8),
    )
    assert model.get_layer("time_gain").output.shape[-1] == 10  # 5 shots, then their gained copies
    assert model.get_config()["time_gain_power"] == 2.0
    assert models.DualDecoderUNet.from_config(model.get_config()).count_params() == model.count_params()


def test_overrides_and_dataclass_inputs():
    config = models.load_model_config(CONFIG_DIR / "lstm.yaml", overrides=["cell=gru", "recurrent_units=[8]"])
    assert config.cell == "gru" and config.recurrent_units == (8,)
    model = models.build("transformer", models.TransformerConfig(num_layers=1, hidden_dim=32, num_heads=2))
    assert model.num_layers == 1


def test_every_constructor_default_is_its_dataclass_default():
    """One source of truth per hyper-parameter (issue 23 item 5): a model's ``__init__`` takes exactly its
    dataclass's fields, with the same defaults (lists and tuples compare by their items)."""
    import dataclasses
    import inspect

    from models import registry

    for name in models.available_models():
        model_class, config_class = registry.MODELS[name]
        parameters = inspect.signature(model_class.__init__).parameters
        for field in dataclasses.fields(config_class):
            if field.name == "family":
                continue
            assert field.name in parameters, f"{name}: {field.name} is not a constructor argument"
            default = field.default_factory() if field.default is dataclasses.MISSING else field.default
            given = parameters[field.name].default
            if isinstance(default, list | tuple):
                default, given = tuple(default), tuple(given)
            assert given == default, (
                f"{name}.{field.name}: __init__ says {given!r}, the dataclass {default!r}"
            )
