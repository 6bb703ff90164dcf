"""Inference's MLflow settings: the ``tracking:`` section of training and evaluation
(``pipeline.tracking.TrackingSettings``), and the ``mlflow:`` section of earlier versions, still read with a
FutureWarning that names the new key (``InferConfig.MOVED_KEYS``, applied by ``core.config``).

The configurations are written by the tests; the command line is checked through ``--merge`` with the merge
replaced by a recorder, so no model or survey is needed.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import pipeline.infer.stage as stage
from pipeline.infer import InferConfig, InferResult, load_infer_config, main
from pipeline.tracking import TrackingSettings

OLD_SECTION = """\
mlflow:
  enabled: true
  experiment: surveys
  tracking_uri: sqlite:///elsewhere.db
  run_name: line-7
"""
NEW_SECTION = OLD_SECTION.replace("mlflow:", "tracking:")
EXPECTED = TrackingSettings(
    enabled=True, tracking_uri="sqlite:///elsewhere.db", experiment="surveys", run_name="line-7"
)


def test_inference_uses_the_shared_tracking_settings_off_by_default():
    config = InferConfig()
    assert type(config.tracking) is TrackingSettings, "the same dataclass as training and evaluation"
    assert config.tracking == TrackingSettings(enabled=False, experiment="inference"), (
        "inference logs only when asked, to its own experiment"
    )
    assert not hasattr(config, "mlflow"), "one shape: the settings live under tracking only"


def test_the_tracking_section_loads_without_a_warning(tmp_path: Path):
    new = tmp_path / "new.yaml"
    new.write_text(NEW_SECTION)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        assert load_infer_config([new]).tracking == EXPECTED
        assert load_infer_config(
            overrides=["tracking.enabled=true", "tracking.run_name=line-7"]
        ).tracking == TrackingSettings(enabled=True, experiment="inference", run_name="line-7")


def test_the_old_mlflow_section_is_read_as_tracking_with_a_warning(tmp_path: Path):
    old = tmp_path / "old.yaml"
    old.write_text(OLD_SECTION)
    new = tmp_path / "new.yaml"
    new.write_text(NEW_SECTION)
    with pytest.warns(FutureWarning, match=r"old.yaml: `mlflow` is now `tracking` in InferConfig") as caught:
        from_old = load_infer_config([old])
    assert len(caught) == 1, [str(w.message) for w in caught]
    assert "write tracking: " in str(caught[0].message), "the warning shows what to write instead"
    assert from_old == load_infer_config([new]), "old and new shapes give the same configuration"
    assert from_old.tracking == EXPECTED


def test_set_of_an_old_key_warns_and_applies_in_its_place_in_the_order(tmp_path: Path):
    with pytest.warns(FutureWarning, match=r"`mlflow` is now `tracking`") as caught:
        old = load_infer_config(overrides=["mlflow.enabled=true", "mlflow.experiment=old"])
    assert [str(w.message).split(":")[0] for w in caught] == [
        "--set mlflow.enabled=true",
        "--set mlflow.experiment=old",
    ], "one warning per --set, naming it"
    assert old == load_infer_config(overrides=["tracking.enabled=true", "tracking.experiment=old"])
    # Each layer is moved before the layers merge: a later --set wins whatever shape either one uses.
    file = tmp_path / "new.yaml"
    file.write_text(NEW_SECTION)
    with pytest.warns(FutureWarning, match=r"`mlflow` is now `tracking`"):
        config = load_infer_config([file], overrides=["mlflow.enabled=false", "tracking.run_name=last"])
    assert config.tracking == TrackingSettings(
        enabled=False, tracking_uri="sqlite:///elsewhere.db", experiment="surveys", run_name="last"
    )
    with pytest.warns(FutureWarning, match=r"`mlflow` is now `tracking`"):
        config = load_infer_config(overrides=["tracking.experiment=new", "mlflow.experiment=later"])
    assert config.tracking.experiment == "later"


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """Runs ``python -m pipeline.infer --merge`` with the merge replaced: returns the configurations it got."""
    configs: list[InferConfig] = []

    def record(out, config, force=False):
        configs.append(config)
        return InferResult(out_dir=Path(out), num_windows=0, processed=0, skipped=0, merged=False)

    monkeypatch.setattr(stage, "merge", record)

    def run(*arguments: str) -> InferConfig:
        assert main(["--out", str(tmp_path / "run"), "--merge", "--quiet", *arguments]) == 0
        return configs[-1]

    return run


def test_cli_mlflow_flag_and_set_of_tracking_keys(recorded):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        assert recorded().tracking == TrackingSettings(enabled=False, experiment="inference")
        assert recorded("--mlflow", "--set", "tracking.tracking_uri=sqlite:///x.db").tracking == (
            TrackingSettings(enabled=True, tracking_uri="sqlite:///x.db", experiment="inference")
        ), "--mlflow switches tracking.enabled on"
        assert recorded("--mlflow", "--set", "tracking.enabled=false").tracking.enabled is False, (
            "--set comes after the flags"
        )
    with pytest.warns(
        FutureWarning, match=r"--set mlflow.tracking_uri=sqlite:///x.db: `mlflow` is now `tracking`"
    ):
        old = recorded("--mlflow", "--set", "mlflow.tracking_uri=sqlite:///x.db")
    assert old.tracking == TrackingSettings(
        enabled=True, tracking_uri="sqlite:///x.db", experiment="inference"
    )
