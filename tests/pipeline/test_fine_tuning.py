"""``pipeline.train --init-from``: fine-tuning starts from the parent's weights, statistics and geometry.

A tiny parent is trained once (module fixture, no XLA); children are fine-tuned from its bundle folder and from
its ``runs:/`` address. Datasets are the stand-in physics of ``tests.pipeline.datasets``; a child dataset is
written with another seed, so its normalisation statistics differ from the parent's.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.errors import ConfigError, UserError
from pipeline.fine_tuning import copy_weights, freeze, geometry_differences, load_parent
from pipeline.train import main, train
from tests.pipeline.datasets import write_dataset
from tests.pipeline.test_train import tiny_config


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    root = tmp_path_factory.mktemp("parent")
    data = write_dataset(root / "parent.h5", num_samples=24, seed=0, families=("flatvel-a",))
    result = train(tiny_config(root, data, epochs=1), echo=lambda _: None)
    return root, result


@pytest.fixture(scope="module")
def child_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("child")
    return write_dataset(root / "child.h5", num_samples=24, seed=5, families=("salt",))


def _weights(model) -> dict[str, list[np.ndarray]]:
    return {
        layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in model.layers if layer.weights
    }


def test_copy_weights_reproduces_the_parent_exactly(parent):
    _, result = parent
    loaded = load_parent(str(result.bundle_dir))
    from models.presets import build_model
    from pipeline.fine_tuning import parent_architecture

    family_config, edge_head = parent_architecture(loaded)
    child = build_model(family_config, edge_head)
    before = _weights(child)
    copy_weights(loaded.bundle.model, child)
    after, expected = _weights(child), _weights(loaded.bundle.model)
    assert after.keys() == expected.keys()
    for name in expected:
        for got, want in zip(after[name], expected[name], strict=True):
            np.testing.assert_array_equal(got, want, err_msg=f"layer {name} not copied")
    changed = [
        name
        for name in before
        if any(not np.array_equal(a, b) for a, b in zip(before[name], after[name], strict=True))
    ]
    assert changed, "a freshly built model should differ from the trained parent before the copy"


def test_fine_tuned_child_keeps_the_parent_scale_lineage_and_frozen_encoder(parent, child_data, tmp_path):
    root, result = parent
    config = tiny_config(tmp_path, child_data, epochs=1, init_from=str(result.bundle_dir), freeze="encoder")
    lines: list[str] = []
    child = train(config, echo=lines.append)
    parent_info = json.loads((result.bundle_dir / "bundle.json").read_text())
    child_info = json.loads((child.bundle_dir / "bundle.json").read_text())
    assert child_info["normalization"] == parent_info["normalization"], (
        "the child must keep the parent's scale"
    )
    from data_prep import schema

    with schema.open_dataset(child_data) as h5:
        assert schema.read_normalization(h5).to_dict() != parent_info["normalization"], (
            "the child data's own statistics differ, so the check above means something"
        )
    assert child_info["model_config"] == parent_info["model_config"]
    assert any("fine-tuning" in line and "frozen" in line for line in lines), lines

    import mlflow

    run = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(child.run_id)
    assert run.data.tags["seisinvert.parent_model"] == str(result.bundle_dir)
    assert run.data.tags["seisinvert.parent_run_id"] == result.run_id
    assert run.data.tags["seisinvert.frozen"] == "encoder"
    assert run.data.tags["seisinvert.parent_families"] == "flatvel-a"
    assert run.data.params["init_from"] == str(result.bundle_dir)

    # The frozen encoder is exactly the parent's after training; the decoders moved.
    from pipeline.bundle import load_bundle

    tuned, original = load_bundle(child.bundle_dir).model, load_bundle(result.bundle_dir).model
    moved = []
    for layer in original.layers:
        if not layer.weights:
            continue
        same = all(
            np.array_equal(a, b)
            for a, b in zip(tuned.get_layer(layer.name).get_weights(), layer.get_weights(), strict=True)
        )
        if layer.name.startswith(("front_end", "encoder_")):
            assert same, f"frozen layer {layer.name} moved"
        elif not same:
            moved.append(layer.name)
    assert any(name.startswith("velocity") for name in moved), moved


def test_a_runs_address_loads_the_parent_and_freeze_names_the_encoder(parent):
    root, result = parent
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    loaded = load_parent(result.model_uri)
    assert loaded.bundle.info["mlflow_run_id"] == result.run_id
    from models.presets import build_model
    from pipeline.fine_tuning import parent_architecture

    child = build_model(*parent_architecture(loaded))
    copy_weights(loaded.bundle.model, child)
    frozen = freeze(child, "encoder")
    assert frozen and all(name.startswith(("front_end", "encoder_")) for name in frozen), frozen
    trainable = {v.path for v in child.trainable_variables}
    assert not any(path.startswith(tuple(frozen)) for path in trainable)
    assert any(path.startswith("velocity") for path in trainable), "the decoders stay trainable"


def test_geometry_mismatch_is_refused_naming_the_differences(parent, tmp_path):
    _, result = parent
    from tests.pipeline import datasets

    other = datasets.small_geometry().replace(sample_interval_s=0.004)
    original = datasets.small_geometry
    datasets.small_geometry = lambda: other
    try:
        data = write_dataset(tmp_path / "other.h5", num_samples=12, seed=1)
    finally:
        datasets.small_geometry = original
    config = tiny_config(tmp_path, data, epochs=1, init_from=str(result.bundle_dir))
    with pytest.raises(UserError, match=r"sample_interval_s: parent 0.002, data 0.004.*without --init-from"):
        train(config, echo=lambda _: None)


def test_geometry_differences_lists_each_one(parent):
    _, result = parent
    geometry = load_parent(str(result.bundle_dir)).bundle.geometry
    assert geometry_differences(geometry, geometry) == []
    import dataclasses

    moved = dataclasses.replace(geometry, receiver_positions_m=geometry.receiver_positions_m + [0.0, 5.0])
    assert geometry_differences(geometry, moved) == ["receiver_positions_m: up to 5 m apart"]


def test_bad_parent_and_bad_freeze(parent, child_data, tmp_path):
    with pytest.raises(UserError, match="does not exist|no seisinvert|not"):
        load_parent(str(tmp_path / "nothing-here"))
    with pytest.raises(ConfigError, match="freeze='encoder' needs a parent model.*--init-from"):
        tiny_config(tmp_path, child_data, freeze="encoder")
    _, result = parent
    loaded = load_parent(str(result.bundle_dir))
    with pytest.raises(UserError, match="Unknown part to freeze 'decoder'"):
        freeze(loaded.bundle.model, "decoder")
    # The CLI refuses an unknown part before doing anything.
    with pytest.raises(SystemExit):
        main(["--init-from", str(result.bundle_dir), "--freeze", "decoder", "--data", str(child_data)])


def test_the_lineage_names_the_families_the_parent_trained_on_not_every_family_of_its_file():
    from pipeline.fine_tuning import trained_families

    mixed = {"dataset": {"families": ["flatvel-a", "salt"], "trained_families": ["flatvel-a"]}}
    assert trained_families(mixed) == ["flatvel-a"]
    # A bundle written before the filter was recorded: the dataset's families are all there is.
    assert trained_families({"dataset": {"families": ["flatvel-a", "salt"]}}) == ["flatvel-a", "salt"]
    assert trained_families({}) == []


def test_training_velocities_beyond_the_model_s_range_are_warned_about_with_the_remedy(parent, tmp_path):
    """A tanh output stops at its range's edge: training (from scratch, or fine-tuning a parent whose range it
    keeps) on velocities beyond it says so, how far they reach, and the range to ingest with instead."""
    root, result = parent
    data = write_dataset(tmp_path / "fast.h5", seed=7, families=("salt",), basement_mps=5150.0)
    for init_from, remedy in (
        (None, "Ingest the data again with --set 'normalization.velocity_range_mps=[1500, 5200]'"),
        (str(result.bundle_dir), "A fine-tuned model keeps its parent's range"),
    ):
        lines: list[str] = []
        train(
            tiny_config(tmp_path / str(bool(init_from)), data, epochs=1, init_from=init_from),
            echo=lines.append,
        )
        warnings = [line for line in lines if line.startswith("warning:")]
        assert len(warnings) == 1, lines
        assert "the training velocities reach up to 5150 m/s, beyond the range 1500-4500 m/s" in warnings[0]
        assert remedy in warnings[0]
    quiet: list[str] = []
    train(tiny_config(tmp_path / "parent-data", root / "parent.h5", epochs=1), echo=quiet.append)
    assert not [line for line in quiet if line.startswith("warning:")]
