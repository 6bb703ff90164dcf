"""Typed configuration shared by every command-line tool of the project.

Each stage describes its settings as a frozen dataclass (``SynthesizeConfig``, ``IngestConfig``,
``ModelConfig``, ...). A configuration is built in three layers, later ones winning:

1. the dataclass defaults,
2. YAML files under ``configs/`` (partial files, merged in the order given),
3. dotted overrides from the command line: ``--set geometry.num_samples=500``.

Values from YAML and ``--set`` are checked against the dataclass field types, so a typo in a key or a
string where a number belongs fails at start-up with a message naming the key, not hours later.

Example:
    >>> config = load_config(SynthesizeConfig, files=["configs/data/openfwi.yaml"],
    ...                      overrides=["engine.spatial_order=8"])
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from core.errors import ConfigError

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` (no dot) as a float, as YAML 1.2 and every user expects."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


#: Name under which ``configs/`` is installed (``pyproject.toml``: ``package-dir``), so an installed wheel finds it.
CONFIG_PACKAGE = "seisinvert_configs"


def _config_dir() -> Path:
    """``configs/`` of the source tree (a checkout or an editable install), else the installed package data."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "configs").is_dir():
        return root / "configs"
    import importlib.util

    spec = importlib.util.find_spec(CONFIG_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return root / "configs"  # not found: messages name the place where it was looked for


#: Folder holding the YAML configuration files shipped with the project.
CONFIG_DIR = _config_dir()


def load_config(
    cls: type[T],
    files: Sequence[str | Path] = (),
    overrides: Sequence[str] = (),
    values: Mapping[str, Any] | None = None,
) -> T:
    """Builds a ``cls`` instance from defaults, YAML files, explicit values and dotted overrides.

    Args:
        cls: a (frozen) dataclass type, possibly with nested dataclass fields.
        files: YAML files merged in order; each may set any subset of the fields.
        overrides: ``"a.b=value"`` strings; ``value`` is parsed as YAML (``1e-3``, ``[1, 2]``, ``true``).
        values: a nested mapping applied after the files and before the overrides (used by CLIs for
            their dedicated flags such as ``--family``).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: unknown keys, wrong types or unreadable files, with the offending key named.
    """
    merged: dict[str, Any] = {}
    for file in files:
        merged = _deep_merge(merged, _read_yaml(Path(file)), source=str(file))
    if values:
        merged = _deep_merge(merged, _drop_none(dict(values)), source="command-line flags")
    for override in overrides:
        key, value = parse_override(override)
        merged = _deep_merge(merged, _nest(key, value), source=f"--set {override}")
    return from_dict(cls, merged)


def parse_override(text: str) -> tuple[str, Any]:
    """Splits ``"a.b=value"`` into ``("a.b", parsed_value)``; the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"Overrides take the form key.subkey=value. Received: {text!r}")
    try:
        value = _load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"Could not parse the value of override {text!r}: {error}") from None
    return key, value


def from_dict(cls: type[T], data: Mapping[str, Any], path: str = "") -> T:
    """Converts a nested mapping into the dataclass ``cls``, checking keys and types."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or cls.__name__} must be a mapping of fields. Received: {data!r}")
    hints = get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = path or cls.__name__
        raise ConfigError(
            f"Unknown configuration key(s) {', '.join(_join(path, k) for k in unknown)} in {where}. "
            f"Valid keys: {', '.join(sorted(fields))}."
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(value, hints[name], _join(path, name))
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"Invalid configuration for {path or cls.__name__}: {error}") from None


def to_dict(config: Any) -> Any:
    """Converts a dataclass configuration (recursively) into plain YAML/JSON-compatible values."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, tuple | list):
        return [to_dict(item) for item in config]
    if isinstance(config, Mapping):
        return {str(key): to_dict(value) for key, value in config.items()}
    if isinstance(config, Path):
        return str(config)
    return config


def to_yaml(config: Any) -> str:
    """Serialises a configuration to YAML text (the form that is logged with every run)."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def config_hash(config: Any) -> str:
    """A short, stable SHA-256 digest of a configuration, for provenance records."""
    text = json.dumps(to_dict(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``--config FILE`` and ``--set KEY=VALUE`` options shared by every CLI."""
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="YAML configuration file; may be given several times (later files win).",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Override one configuration value, e.g. --set geometry.num_samples=500 (repeatable).",
    )


# ----------------------------------------------------------------------------------------------------------
# Internals
# ----------------------------------------------------------------------------------------------------------


def config_file(path: str | Path) -> Path:
    """``path`` as given, or, when it does not exist and starts with ``configs/``, the shipped file of that name.

    So ``--config configs/train/quick.yaml`` works from the repository root (the file in the checkout) and from
    any other folder once the package is installed (the copy installed with it).
    """
    path = Path(path)
    if not path.is_file() and not path.is_absolute() and path.parts[:1] == ("configs",):
        shipped = CONFIG_DIR.joinpath(*path.parts[1:])
        if shipped.is_file():
            return shipped
    return path


def _read_yaml(path: Path) -> dict[str, Any]:
    path = config_file(path)
    if not path.is_file():
        raise ConfigError(f"Configuration file {path} does not exist. Check the path passed to --config.")
    try:
        data = _load_yaml(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"Configuration file {path} is not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"Configuration file {path} must hold a mapping at top level. Received: {type(data)}"
        )
    return data


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any], source: str) -> dict[str, Any]:
    result = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = _deep_merge(dict(result[key]), value, source)
        else:
            result[key] = value
    return result


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (_drop_none(v) if isinstance(v, dict) else v) for k, v in data.items() if v is not None}


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    result: Any = value
    for part in reversed(dotted.split(".")):
        result = {part: result}
    return result


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(value: Any, hint: Any, path: str) -> Any:  # noqa: C901 - one branch per supported type
    origin = get_origin(hint)
    args = get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option, path)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(f"{path}: value {value!r} matches none of {hint}. " + " / ".join(errors))
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path} must be one of {', '.join(map(repr, args))}. Received: {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        return from_dict(hint, value, path)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path} must be a list. Received: {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(item, args[0], f"{path}[{i}]") for i, item in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{path} must have {len(args)} entries. Received: {value!r}")
        return tuple(
            _convert(item, a, f"{path}[{i}]") for i, (a, item) in enumerate(zip(args, value, strict=True))
        )
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path} must be a list. Received: {value!r}")
        return (
            [_convert(item, args[0], f"{path}[{i}]") for i, item in enumerate(value)] if args else list(value)
        )
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a mapping. Received: {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false. Received: {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer. Received: {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path} must be a number. Received: {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a string. Received: {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{path} must be a path. Received: {value!r}")
        return Path(value)
    if isinstance(hint, type):
        if not isinstance(value, hint):
            raise ConfigError(f"{path} must be of type {hint.__name__}. Received: {value!r}")
        return value
    raise TypeError(f"Unsupported configuration type {hint!r} at {path}")


def json_ready(value: Any) -> Any:
    """``value`` as plain JSON values: mappings and sequences recursively, NumPy arrays and scalars as lists
    and numbers, paths as strings, NaN and infinities as ``None`` (strict JSON)."""
    import math

    import numpy as np

    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


__all__ = [
    "CONFIG_DIR",
    "ConfigError",
    "add_config_arguments",
    "config_file",
    "config_hash",
    "from_dict",
    "json_ready",
    "load_config",
    "parse_override",
    "to_dict",
    "to_yaml",
]
