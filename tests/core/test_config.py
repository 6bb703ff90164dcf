"""The typed configuration system (``core.config``): YAML files, dotted overrides, type checking (pydantic's
``TypeAdapter`` over the dataclasses) and error messages."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import pytest

from core.config import (
    CONFIG_DIR,
    config_file,
    config_hash,
    from_dict,
    load_config,
    parse_override,
    to_dict,
    to_yaml,
)
from core.errors import ConfigError
from data_prep.geometry import AcquisitionGeometry


@dataclass(frozen=True)
class Inner:
    rate: float = 0.5
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    count: int = 3
    sizes: tuple[int, ...] = (1, 2)
    optional: int | None = None
    inner: Inner = Inner()
    extra: dict = field(default_factory=dict)
    geometry: AcquisitionGeometry = AcquisitionGeometry()
    pair: tuple[int, int] = (0, 1)
    switch: bool | Literal["auto"] = "auto"
    folder: Path = Path("runs")


def test_defaults_files_values_and_overrides_apply_in_order(tmp_path: Path):
    first = tmp_path / "first.yaml"
    first.write_text("count: 5\ninner:\n  rate: 0.1\n")
    second = tmp_path / "second.yaml"
    second.write_text("inner:\n  mode: b\n")
    config = load_config(
        Outer,
        files=[first, second],
        values={"name": "flag", "count": None},
        overrides=["inner.rate=2e-3", "sizes=[4, 5, 6]", "optional=7"],
    )
    assert config == Outer(
        name="flag", count=5, sizes=(4, 5, 6), optional=7, inner=Inner(rate=0.002, mode="b")
    )


def test_nested_geometry_override_is_validated():
    config = load_config(
        Outer, overrides=["geometry.num_samples=500", "geometry.source_cells=[[0, 3], [1, 9]]"]
    )
    assert config.geometry.num_samples == 500
    assert config.geometry.source_cells == ((0, 3), (1, 9))
    with pytest.raises(ConfigError, match=r"outside the 70 x 70 grid"):
        load_config(Outer, overrides=["geometry.receiver_cells=[[0, 70]]"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("inner.rat=1", r"Unknown configuration key\(s\) inner.rat .*Valid keys: mode, rate"),
        ("count=three", r"count must be an integer. Received: 'three'"),
        ("count=true", r"count must be an integer"),
        ("inner.mode=c", r"inner.mode must be one of 'a', 'b'. Received: 'c'"),
        ("sizes=5", r"sizes must be a list"),
        ("sizes=[1, 2.5]", r"sizes\[1\] must be an integer. Received: 2.5"),
        ("pair=[1, 2, 3]", r"pair must have 2 entries. Received: \[1, 2, 3\]"),
        ("pair=[1]", r"pair must have 2 entries. Received: \[1\]"),
        ("inner=5", r"inner must be a mapping of fields. Received: 5"),
        ("inner.rate=fast", r"inner.rate must be a number. Received: 'fast'"),
        ("name=7", r"name must be a string. Received: 7"),
        ("optional=[1]", r"optional must be an integer. Received: \[1\]"),
        ("switch=maybe", r"switch must be true or false or one of 'auto'. Received: 'maybe'"),
        ("novalue", r"key.subkey=value"),
    ],
)
def test_bad_overrides_name_the_key(override: str, message: str):
    with pytest.raises(ConfigError, match=message):
        load_config(Outer, overrides=[override])


def test_values_are_converted_as_the_types_say():
    config = load_config(Outer, overrides=["pair=[3, 4]", "switch=true", "folder=out/a", "inner.rate=1"])
    assert config.pair == (3, 4) and config.switch is True and config.folder == Path("out/a")
    assert config.inner.rate == 1.0 and isinstance(config.inner.rate, float)
    assert from_dict(Outer, {"inner": Inner(rate=0.2), "sizes": (7,)}) == Outer(
        inner=Inner(rate=0.2), sizes=(7,)
    )


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as error:
        load_config(Outer, overrides=["inner.rat=1", "count=x", "inner.mode=c"])
    message = str(error.value)
    assert message.startswith("Unknown configuration key(s) inner.rat in inner. Valid keys: mode, rate;"), (
        message
    )
    assert "count must be an integer. Received: 'x'" in message and "inner.mode must be one of" in message
    assert "\n" not in message, "one line (the CLI prints it as `error: ...`)"


def test_a_check_of_the_dataclass_names_where_it_failed():
    with pytest.raises(ConfigError, match=r"^Invalid configuration for geometry: .*outside the 70 x 70 grid"):
        load_config(Outer, overrides=["geometry.receiver_cells=[[0, 70]]"])


def test_shipped_configs_are_found_from_any_folder(tmp_path: Path, monkeypatch):
    # `--config configs/train/quick.yaml` as the docs write it, run from a folder without configs/ (an
    # installed package): the shipped file is read.
    monkeypatch.chdir(tmp_path)
    assert config_file("configs/train/quick.yaml") == CONFIG_DIR / "train" / "quick.yaml"
    (tmp_path / "configs" / "train").mkdir(parents=True)
    (tmp_path / "configs" / "train" / "quick.yaml").write_text("epochs: 1\n")
    assert config_file("configs/train/quick.yaml") == Path("configs/train/quick.yaml"), "a local file wins"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, files=["configs/train/nothing.yaml"])


def test_missing_and_malformed_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, files=[tmp_path / "missing.yaml"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("count: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Outer, files=[broken])
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping at top level"):
        load_config(Outer, files=[listed])


def test_round_trip_through_yaml_and_hash_is_stable():
    config = load_config(Outer, overrides=["inner.mode=b", "extra={k: 1}"])
    again = from_dict(Outer, __import__("yaml").safe_load(to_yaml(config)))
    assert again == config
    assert config_hash(config) == config_hash(again)
    assert config_hash(config) != config_hash(Outer())
    assert to_dict(config)["geometry"]["source_cells"][1] == [1, 17], (
        "OpenFWI preset: second source 10 m deep (row 1) at x cell 17"
    )


def test_parse_override_parses_yaml_scalars():
    assert parse_override("a.b=1e-3") == ("a.b", 0.001)
    assert parse_override("flag=false") == ("flag", False)
    assert parse_override("name=salt") == ("name", "salt")
    assert parse_override("empty=") == ("empty", "")


def test_config_dir_points_at_repository_configs():
    assert CONFIG_DIR.name == "configs" and CONFIG_DIR.is_dir()


# --- Moved keys (MOVED_KEYS): an old key or section is read at its new place, with a FutureWarning ---


@dataclass(frozen=True)
class Logging:
    enabled: bool = False
    experiment: str = "runs"


@dataclass(frozen=True)
class Stage:
    """A stage whose ``report`` section became ``logging`` and whose flat ``experiment`` moved into it."""

    MOVED_KEYS: ClassVar[dict[str, str]] = {"report": "logging", "experiment": "logging.experiment"}

    count: int = 1
    logging: Logging = Logging()


def test_a_moved_section_is_read_at_its_new_place_with_a_warning_naming_it(tmp_path: Path):
    old = tmp_path / "old.yaml"
    old.write_text("count: 2\nreport:\n  enabled: true\n  experiment: mine\n")
    new = tmp_path / "new.yaml"
    new.write_text("count: 2\nlogging:\n  enabled: true\n  experiment: mine\n")
    with pytest.warns(FutureWarning, match=r"old.yaml: `report` is now `logging` in Stage \(write logging: "):
        from_old = load_config(Stage, files=[old])
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        from_new = load_config(Stage, files=[new])
    assert from_old == from_new == Stage(count=2, logging=Logging(enabled=True, experiment="mine"))
    with pytest.warns(FutureWarning, match=r"`report` is now `logging`"):
        assert from_dict(Stage, {"report": {"enabled": True}}) == Stage(logging=Logging(enabled=True))


def test_moved_keys_are_moved_in_each_layer_before_the_layers_merge(tmp_path: Path):
    """Later layers win whatever shape each one uses: a file, the flags' values, then each --set in order."""
    new = tmp_path / "new.yaml"
    new.write_text("logging:\n  enabled: false\n  experiment: file\n")
    with pytest.warns(FutureWarning, match=r"--set report.enabled=true: `report` is now `logging`"):
        config = load_config(Stage, files=[new], overrides=["report.enabled=true"])
    assert config.logging == Logging(enabled=True, experiment="file")
    with pytest.warns(FutureWarning, match=r"command-line flags: `report` is now `logging`"):
        config = load_config(
            Stage, values={"report": {"experiment": "flag"}}, overrides=["logging.experiment=set"]
        )
    assert config.logging.experiment == "set", "a --set of the new key wins over the flags' old section"
    with pytest.warns(FutureWarning, match=r"`experiment` is now `logging.experiment`"):
        config = load_config(Stage, overrides=["logging.experiment=first", "experiment=second"])
    assert config.logging.experiment == "second"


@dataclass(frozen=True)
class Quiet:
    """A section whose field default is not its class's defaults (inference's ``tracking``)."""

    logging: Logging = Logging(enabled=False, experiment="quiet")
    nested: Outer = Outer(inner=Inner(rate=0.9))
    maybe: Inner | None = None


def test_a_partial_section_keeps_the_rest_of_the_field_s_default(tmp_path: Path):
    assert load_config(Quiet, overrides=["logging.enabled=true"]).logging == Logging(True, "quiet"), (
        "the experiment of the field's default, not the class's 'runs'"
    )
    config = load_config(Quiet, overrides=["nested.inner.mode=b", "nested.count=4"])
    assert config.nested == Outer(count=4, inner=Inner(rate=0.9, mode="b")), "also one level further down"
    assert load_config(Quiet, overrides=["maybe.mode=b"]).maybe == Inner(mode="b"), "no default: the class's"
    file = tmp_path / "partial.yaml"
    file.write_text("logging:\n  experiment: file\n")
    assert from_dict(Quiet, {"logging": {"enabled": True}}).logging == Logging(True, "quiet")
    assert load_config(Quiet, files=[file], overrides=["logging.enabled=true"]).logging == Logging(
        True, "file"
    )
    with pytest.raises(ConfigError, match=r"Unknown configuration key\(s\) logging.enabeld"):
        load_config(Quiet, overrides=["logging.enabeld=true"])
