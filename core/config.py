"""Typed configuration shared by every command-line tool of the project.

Each stage describes its settings as a frozen dataclass (``SynthesizeConfig``, ``IngestConfig``,
``ModelConfig``, ...). A configuration is built in three layers, later ones winning:

1. the dataclass defaults,
2. YAML files under ``configs/`` (partial files, merged in the order given),
3. dotted overrides from the command line: ``--set geometry.num_samples=500``.

Values from YAML and ``--set`` are checked against the dataclass field types, so a typo in a key or a
string where a number belongs fails at start-up with a message naming the key, not hours later. The checking
is pydantic's ``TypeAdapter`` over the dataclasses (strict JSON rules: ``true`` is not a number, ``"5"`` is
not an integer, lists become tuples); the messages are written here in the form users know
(``count must be an integer. Received: 'three'``), every problem of a configuration in one line.

The YAML files ship with the package (``pyproject.toml``: ``configs/`` is installed as
``seisinvert_configs``): ``CONFIG_DIR`` is the checkout's ``configs/`` or the installed copy, and
``--config configs/train/quick.yaml`` finds the shipped file from any folder (``config_file``).

Example:
    >>> config = load_config(SynthesizeConfig, files=["configs/data/openfwi.yaml"],
    ...                      overrides=["engine.spatial_order=8"])
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import re
import types
import warnings
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
        merged = _deep_merge(merged, moved_keys(cls, _read_yaml(Path(file)), str(file)), source=str(file))
    if values:
        layer = moved_keys(cls, _drop_none(dict(values)), "command-line flags")
        merged = _deep_merge(merged, layer, source="command-line flags")
    for override in overrides:
        key, value = parse_override(override)
        layer = moved_keys(cls, _nest(key, value), f"--set {override}")
        merged = _deep_merge(merged, layer, source=f"--set {override}")
    return from_dict(cls, merged)


def moved_keys(cls: type, data: Mapping[str, Any], source: str = "") -> dict[str, Any]:
    """``data`` with the top-level keys that ``cls`` moved put at their new place, with a warning per key.

    A configuration dataclass lists them as ``MOVED_KEYS = {"old": "new.dotted.key"}`` (a ``ClassVar``); a
    key that became a section of the same name (``tracking: false`` → ``tracking.enabled: false``) counts as
    moved only when its value is not a mapping. A whole section moves the same way (inference's
    ``"mlflow": "tracking"``: ``mlflow: {enabled: true}`` → ``tracking: {enabled: true}``).

    ``load_config`` applies it to every layer (each file, the command-line flags, each ``--set``) before the
    layers are merged, so an old key in a later layer still wins over the new key in an earlier one
    (``--set mlflow.enabled=true`` over a file's ``tracking.enabled: false``).
    """
    result = dict(data)
    for old, new in getattr(cls, "MOVED_KEYS", {}).items():
        section = isinstance(result.get(old), Mapping) or dataclasses.is_dataclass(result.get(old))
        if old not in result or (old == new.split(".")[0] and section):
            continue
        value = result.pop(old)
        warnings.warn(
            f"{source + ': ' if source else ''}`{old}` is now `{new}` in {cls.__name__} (write {new}: "
            f"{json.dumps(value)}); the old key is still read but will be refused in a later version.",
            FutureWarning,
            stacklevel=3,
        )
        result = _deep_merge(result, _nest(new, value), source=source)
    return result


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
    """Converts a nested mapping into the dataclass ``cls``, checking keys and types.

    Validation is pydantic's (``TypeAdapter`` over the dataclass, strict JSON rules: ``true`` is not an integer,
    ``"5"`` is not a number, lists become tuples, strings become paths); the messages are this project's
    (``_describe``). The dataclass's own checks (``__post_init__``) run as usual.

    Args:
        cls: a dataclass type, possibly with nested dataclass fields.
        data: YAML/JSON-like values (mappings, lists, strings, numbers, booleans, None); dataclass instances,
            tuples and paths are accepted too (converted with ``to_dict`` first).
        path: where ``data`` sits in a larger configuration, for messages (``"family salt"``, ``"model"``).

    Raises:
        ConfigError: unknown keys, wrong types, or a value the dataclass refuses, with the key named.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or cls.__name__} must be a mapping of fields. Received: {data!r}")
    data = _with_section_defaults(cls, moved_keys(cls, data, path))
    try:
        text = json.dumps(to_dict(dict(data)))
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"{path or cls.__name__} holds a value that is not configuration data (YAML/JSON values): {error}"
        ) from None
    from pydantic import PydanticSchemaGenerationError, ValidationError

    try:
        adapter = _adapter(cls)
    except PydanticSchemaGenerationError as error:
        raise TypeError(
            f"{cls.__name__} is not a configuration dataclass: {str(error).splitlines()[0]}"
        ) from None
    try:
        return adapter.validate_json(text, strict=True)
    except ValidationError as error:
        raise ConfigError(_describe(cls, error, path)) from None


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


def _with_section_defaults(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with each section it gives (a mapping for a dataclass field) completed from that field's default.

    A partial section overrides the keys it names and keeps the rest of the field's default, as the layers
    promise, also where the default is not the section class's own (inference's
    ``tracking: TrackingSettings = TrackingSettings(enabled=False, experiment="inference")``:
    ``--set tracking.enabled=true`` keeps the experiment ``inference``); pydantic alone would fill the other keys
    from the class.
    """
    result = dict(data)
    hints = get_type_hints(cls)
    for field in dataclasses.fields(cls):
        value, hint = result.get(field.name), _without_none(hints.get(field.name))
        if not (isinstance(value, Mapping) and isinstance(hint, type) and dataclasses.is_dataclass(hint)):
            continue
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None
        base = to_dict(default) if dataclasses.is_dataclass(default) else {}
        result[field.name] = _with_section_defaults(hint, _deep_merge(base, value, source=field.name))
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


@functools.cache
def _adapter(cls: type) -> Any:
    """pydantic's validator of ``cls``, built once per class (about 0.1 s for a nested configuration).

    Unknown keys must fail (pydantic ignores them by default, and a misspelt key would silently do nothing):
    every dataclass reachable from ``cls`` gets ``extra="forbid"`` as its pydantic configuration.
    """
    from pydantic import ConfigDict, TypeAdapter

    for dataclass_type in _dataclasses_within(cls):
        if "__pydantic_config__" not in vars(dataclass_type):
            dataclass_type.__pydantic_config__ = ConfigDict(extra="forbid")
    return TypeAdapter(cls)


def _dataclasses_within(hint: Any, seen: set[type] | None = None) -> set[type]:
    seen = set() if seen is None else seen
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if hint in seen:
            return seen
        seen.add(hint)
        for field_hint in get_type_hints(hint).values():
            _dataclasses_within(field_hint, seen)
    for argument in get_args(hint):
        _dataclasses_within(argument, seen)
    return seen


#: pydantic error types → what the value must be, in this project's words.
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "path_type": "a path",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a mapping",
    "dataclass_type": "a mapping of fields",
    "model_type": "a mapping of fields",
}


def _describe(cls: type, error: Any, prefix: str) -> str:
    """One message for all problems of a pydantic ``ValidationError``, in the words users know:
    ``count must be an integer. Received: 'three'``, ``Unknown configuration key(s) inner.rat in inner.
    Valid keys: mode, rate.``, ``inner.mode must be one of 'a', 'b'. Received: 'c'``."""
    messages: list[str] = []
    unknown: dict[tuple[str, Any], list[str]] = {}
    unions: dict[str, tuple[Any, Any]] = {}
    problems = error.errors(include_url=False)
    # A fixed-length list with entries missing: one message for the list, not one per position.
    lengths: dict[str, str] = {}
    for problem in problems:
        loc = tuple(problem["loc"])
        if problem["type"] == "missing" and loc and isinstance(loc[-1], int):
            name, hint, _ = _locate(cls, loc[:-1], prefix)
            if get_origin(hint) is tuple:
                lengths.setdefault(
                    name, f"{name} must have {len(get_args(hint))} entries. Received: {problem['input']!r}"
                )
    messages += lengths.values()
    for problem in problems:
        kind, loc, received = problem["type"], tuple(problem["loc"]), problem.get("input")
        if any(_locate(cls, loc[:end], prefix)[0] in lengths for end in range(len(loc) + 1)):
            continue
        if kind in ("unexpected_keyword_argument", "extra_forbidden"):
            where, owner, _ = _locate(cls, loc[:-1], prefix)
            unknown.setdefault((where, owner), []).append(_join(where, str(loc[-1])))
            continue
        where, hint, in_union = _locate(cls, loc, prefix)
        name = where or cls.__name__
        if in_union:
            unions.setdefault(name, (hint, received))
        elif kind in ("value_error", "assertion_error"):
            reason = (problem.get("ctx") or {}).get("error") or problem["msg"]
            messages.append(f"Invalid configuration for {name}: {reason}")
        elif kind == "literal_error":
            options = ", ".join(map(repr, get_args(hint))) or problem["ctx"]["expected"]
            messages.append(f"{name} must be one of {options}. Received: {received!r}")
        elif kind in ("too_long", "too_short") and get_origin(hint) is tuple:
            messages.append(f"{name} must have {len(get_args(hint))} entries. Received: {received!r}")
        elif kind == "missing":
            messages.append(f"{name} is missing: it has no default, so the configuration must set it.")
        elif kind in _EXPECTED:
            messages.append(f"{name} must be {_EXPECTED[kind]}. Received: {received!r}")
        else:
            messages.append(f"{name}: {problem['msg']}. Received: {received!r}")
    for name, (hint, received) in unions.items():
        choices = " or ".join(_choice(option) for option in get_args(hint) if option is not type(None))
        messages.append(f"{name} must be {choices}. Received: {received!r}")
    for (where, owner), keys in unknown.items():
        valid = sorted(field.name for field in dataclasses.fields(owner) if field.init)
        messages.insert(
            0,
            f"Unknown configuration key(s) {', '.join(sorted(keys))} in {where or owner.__name__}. "
            f"Valid keys: {', '.join(valid)}.",
        )
    if len(messages) == 1:
        return messages[0]
    return "; ".join(message.removesuffix(".") for message in messages) + "."


def _locate(cls: type, loc: tuple[Any, ...], prefix: str) -> tuple[str, Any, bool]:
    """The dotted name (``inner.sizes[1]``) and the type hint at a pydantic error location; whether the
    location runs through a union of several types (whose arms pydantic names in the location)."""
    name, hint = prefix, cls
    for key in loc:
        hint = _without_none(hint)
        origin, arguments = get_origin(hint), get_args(hint)
        if origin in (Union, types.UnionType):
            return name, hint, True
        if dataclasses.is_dataclass(hint):
            name, hint = _join(name, str(key)), get_type_hints(hint).get(str(key), Any)
        elif origin is tuple and isinstance(key, int):
            name = f"{name}[{key}]"
            if len(arguments) == 2 and arguments[1] is Ellipsis:
                hint = arguments[0]
            else:
                hint = arguments[key] if key < len(arguments) else Any
        elif origin is list and isinstance(key, int):
            name, hint = f"{name}[{key}]", arguments[0] if arguments else Any
        else:
            name, hint = _join(name, str(key)), arguments[-1] if origin is dict and arguments else Any
    hint = _without_none(hint)
    return name, hint, get_origin(hint) in (Union, types.UnionType) and len(loc) > 0


def _without_none(hint: Any) -> Any:
    """``X | None`` → ``X`` (pydantic validates ``None`` first and reports ``X``'s error alone)."""
    if get_origin(hint) in (Union, types.UnionType):
        arguments = [argument for argument in get_args(hint) if argument is not type(None)]
        if len(arguments) == 1:
            return arguments[0]
    return hint


def _choice(hint: Any) -> str:
    if get_origin(hint) is Literal:
        return "one of " + ", ".join(map(repr, get_args(hint)))
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if get_origin(hint) in (tuple, list):
        return "a list"
    return getattr(hint, "__name__", str(hint))


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
