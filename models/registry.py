"""Builds any model family by name: the single entry point the training, evaluation and inference CLIs use.

``build(name, config)`` accepts no config (the family's defaults: OpenFWI input ``(5, 1000, 70)`` → grid
``(70, 70)``), a family config dataclass, a plain mapping (checked against the dataclass, so a typo in a key
fails with the key named) or the path of a YAML file such as ``configs/model/unet.yaml``. Every family has
the same constructor contract: ``seismic_shape``, ``grid_shape``, ``velocity_activation`` and family-specific
keywords, and the same output contract: a dict of float32 ``(batch, depth, x)`` maps keyed by
``models.OUTPUT_NAMES``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from core.config import from_dict, load_config, to_dict
from core.errors import ConfigError
from models.inversionnet import InversionNet, InversionNetConfig
from models.lstm_inverter import LSTMConfig, LSTMInverter
from models.transformer_inverter import TransformerConfig, TransformerInverter
from models.unet import DualDecoderUNet, UNetConfig

#: name → (model class, config dataclass)
MODELS: dict[str, tuple[type[keras.Model], type]] = {
    "unet": (DualDecoderUNet, UNetConfig),
    "inversionnet": (InversionNet, InversionNetConfig),
    "lstm": (LSTMInverter, LSTMConfig),
    "transformer": (TransformerInverter, TransformerConfig),
}

ModelConfig = UNetConfig | InversionNetConfig | LSTMConfig | TransformerConfig


def available_models() -> tuple[str, ...]:
    """The registered family names."""
    return tuple(MODELS)


def config_class(name: str) -> type:
    """The config dataclass of family ``name``."""
    return MODELS[_check_name(name)][1]


def load_model_config(
    config: ModelConfig | Mapping[str, Any] | str | Path | None = None,
    name: str | None = None,
    overrides: tuple[str, ...] | list[str] = (),
) -> ModelConfig:
    """Resolves ``config`` into the family's frozen config dataclass.

    Args:
        config: ``None`` (defaults), a config dataclass, a mapping or a YAML path. The family is taken from
            ``name`` when given, else from the config's ``family`` key.
        name: family name; must agree with the config's ``family`` when both are given.
        overrides: dotted ``key=value`` overrides (``--set`` style, without the ``model.`` prefix).

    Returns:
        The validated config dataclass.

    Raises:
        ConfigError: unknown family, unknown keys, wrong types, or ``name`` disagreeing with ``family``.
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        data = to_dict(config)
    elif isinstance(config, str | Path):
        data = _read_family_yaml(Path(config))
    elif isinstance(config, Mapping):
        data = dict(config)
    elif config is None:
        data = {}
    else:
        raise ConfigError(
            f"A model config must be None, a config dataclass, a mapping or a YAML path. "
            f"Received: {type(config).__name__}"
        )
    family = data.get("family")
    if name is None and family is None:
        raise ConfigError(
            "The model family is unknown: pass `name` or set `family` in the config. "
            f"Valid families: {', '.join(MODELS)}."
        )
    name = _check_name(name if name is not None else family)
    if family is not None and family != name:
        raise ConfigError(
            f"The config is for family {family!r} but model {name!r} was requested: "
            "pick the matching configs/model/*.yaml file."
        )
    data["family"] = name
    cls = MODELS[name][1]
    if overrides:
        return load_config(cls, values=data, overrides=list(overrides))
    return from_dict(cls, data)


def build(
    name: str | None = None,
    config: ModelConfig | Mapping[str, Any] | str | Path | None = None,
    **kwargs: Any,
) -> keras.Model:
    """Builds the model ``name`` from ``config``.

    Args:
        name: ``"unet"``, ``"inversionnet"``, ``"lstm"`` or ``"transformer"``; may be omitted when the
            config names its ``family``.
        config: ``None``, a config dataclass, a mapping or a YAML path (see ``load_model_config``).
        **kwargs: ``keras.Model`` keywords such as ``name`` for the model itself.

    Returns:
        A built functional Keras model whose outputs are a dict of
        ``(batch, depth, x)`` maps.

    Example:
        >>> model = build("unet")
        >>> model.output_names
        ['edges', 'velocity']
    """
    resolved = load_model_config(config, name)
    arguments = {key: value for key, value in to_dict(resolved).items() if key != "family"}
    model_class = MODELS[resolved.family][0]
    return model_class(**arguments, **kwargs)


def load(path: str | Path, safe_mode: bool = True) -> keras.Model:
    """Loads a ``.keras`` model saved from any family (custom layers are registered on import)."""
    return keras.saving.load_model(path, safe_mode=safe_mode)


def _read_family_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise ConfigError(f"Model configuration file {path} does not exist. Check the path.")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"Model configuration file {path} must hold a mapping. Received: {type(data).__name__}"
        )
    return data


def _check_name(name: str) -> str:
    if name not in MODELS:
        raise ConfigError(f"Unknown model {name!r}. Valid names: {', '.join(MODELS)}.")
    return name


__all__ = ["MODELS", "ModelConfig", "available_models", "build", "config_class", "load", "load_model_config"]
