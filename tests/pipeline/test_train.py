"""``pipeline.train`` end to end on a tiny dataset into a temporary sqlite MLflow store, and its pieces.

One module-scoped training run (tiny U-Net, 2 epochs, no XLA: tracing dominates at this size) is checked
from several sides: history, the MLflow run (params, per-epoch metrics in both conventions, learning rate,
system metrics, images, dataset lineage, tags), the registered pyfunc model, the champion alias and
``pipeline.evaluate`` on the same model.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from core.config import from_dict, load_config
from core.errors import ConfigError, UserError
from models.presets import build_model, resolve_model_config
from pipeline.lineage import dataset_info
from pipeline.train import CurriculumStage, TrainConfig, main, train
from pipeline.training.budget import epochs_within_budget
from pipeline.training.config import stage_for
from pipeline.training.optimization import learning_rate_schedule
from tests.pipeline.datasets import GRID_SHAPE, SEISMIC_SHAPE, TINY_UNET, write_dataset

TINY_OPTIONS = {k: v for k, v in TINY_UNET.items() if k not in ("family", "seismic_shape", "grid_shape")}


def tiny_config(root: Path, data: Path, **changes) -> TrainConfig:
    values = {
        "model": "unet",
        "model_options": TINY_OPTIONS,
        "batch_size": 4,
        "epochs": 2,
        "optimizer": {"learning_rate": 3e-3, "warmup_epochs": 0.5},
        "data": {"path": str(data)},
        "tracking": {
            "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
            "experiment": "tests",
            "system_metrics_interval_s": 0.2,
            "image_samples": 2,
        },
        "runtime": {
            "jit_compile": False,
            "checkpoint_dir": str(root / "checkpoints"),
            "output_dir": str(root / "outputs"),
            "progress_interval_s": 0.0,
            "deterministic": True,
        },
    }
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            values.setdefault(section, {})[name] = value
        else:
            values[key] = value
    return from_dict(TrainConfig, values)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = write_dataset(root / "small.h5", num_samples=40, families=("flatvel-a", "curvevel-a"))
    lines: list[str] = []
    config = tiny_config(root, data)
    result = train(config, echo=lines.append)
    return root, data, config, result, lines


@pytest.fixture(scope="module")
def client(trained):
    import mlflow

    root = trained[0]
    return mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")


def test_history_and_printed_lines(trained):
    _, _, _, result, lines = trained
    assert len(result.history) == 2
    expected = {
        "loss",
        "val_loss",
        "velocity_mae",
        "val_velocity_ssim",
        "val_velocity_mae_mps",
        "val_edges_f1",
        "learning_rate",
        "epoch_time_s",
    }
    assert expected <= set(result.history[0]), sorted(result.history[0])
    # m/s and [-1, 1] conventions agree: the dataset maps 1500-4500 m/s to [-1, 1], so m/s = 1500 x normalised.
    for logs in result.history:
        assert logs["val_velocity_mae_mps"] == pytest.approx(1500 * logs["val_velocity_mae"], rel=1e-4)
    assert all("\r" not in line for line in lines)
    assert any(line.startswith("epoch 2/2") and "val_SSIM" in line for line in lines)
    assert result.test_metrics and 0 < result.test_metrics["velocity_ssim"] <= 1
    assert set(result.test_per_family) == {"flatvel-a", "curvevel-a"}
    assert any("test · curvevel-a" in line for line in lines), "the per-family rows of the metrics table"
    assert result.model_version == "1" and result.champion


def test_training_metrics_are_the_kept_model_on_the_first_training_samples(trained):
    # The train step computes the losses only; the training metrics are measured after each epoch in
    # inference mode on the first `train_metric_samples` training samples. The kept (best) epoch's logged
    # values must therefore equal an independent evaluation of the returned model on those samples.
    from pipeline.evaluate import evaluate_model
    from pipeline.feeding import SeismicDataset

    _, data, config, result, _ = trained
    subset = SeismicDataset(
        data,
        "train",
        batch_size=4,
        outputs=("velocity", "edges"),
        max_samples=config.data.train_metric_samples,
    )
    assert 0 < subset.num_samples <= config.data.train_metric_samples
    measured = evaluate_model(result.model, subset).metrics
    logged = result.history[result.best_epoch]
    for key in ("velocity_mae", "velocity_rmse_mps", "velocity_ssim"):
        assert logged[key] == pytest.approx(measured[key], rel=1e-4), key
    assert "velocity_loss" in logged and "val_velocity_loss" in logged
    # Running training loss and inference-mode metrics are different quantities.
    assert logged["velocity_loss"] != pytest.approx(logged["velocity_mae"], rel=1e-6)


def test_mlflow_run_holds_config_metrics_images_and_lineage(trained, client):
    root, data, config, result, _ = trained
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["batch_size"] == "4" and run.data.params["model"] == "unet"
    assert run.data.params["optimizer.learning_rate"] == "0.003"
    assert run.data.params["dataset.digest"] == dataset_info(data)["digest"]
    assert run.data.tags["seisinvert.keras_backend"] == "tensorflow"
    assert run.data.tags["seisinvert.git_commit"]
    for key in (
        "loss",
        "val_loss",
        "velocity_ssim",
        "val_velocity_ssim",
        "val_velocity_mae",
        "val_velocity_mae_mps",
        "val_edges_f1",
        "learning_rate",
    ):
        steps = sorted(metric.step for metric in client.get_metric_history(result.run_id, key))
        assert steps == [0, 1], f"{key} must be logged once per epoch, got steps {steps}"
    assert run.data.metrics["test_velocity_ssim"] == pytest.approx(result.test_metrics["velocity_ssim"])
    for family in ("flatvel-a", "curvevel-a"):
        assert run.data.metrics[f"test_{family}_velocity_ssim"] == pytest.approx(
            result.test_per_family[family]["velocity_ssim"]
        )
    assert any(key.startswith("system/cpu") for key in run.data.metrics), "system metrics missing"
    # Warm-up then cosine: the logged learning rate is the schedule's value after each epoch's last step.
    steps_per_epoch = int(run.data.params["data.steps_per_epoch"])
    schedule = learning_rate_schedule(config.optimizer, steps_per_epoch, config.epochs)
    lrs = [
        m.value
        for m in sorted(client.get_metric_history(result.run_id, "learning_rate"), key=lambda m: m.step)
    ]
    expected = [float(schedule(steps_per_epoch * (epoch + 1))) for epoch in range(2)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-5)
    assert lrs[1] < lrs[0]
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config.yaml", "images", "evaluation"} <= artifacts
    images = [a.path for a in client.list_artifacts(result.run_id, "images") if a.path.endswith(".png")]
    assert sorted(path.split("+step+")[1].split("+")[0] for path in images) == ["0", "1"]
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == dataset_info(data)["digest"]
    assert dataset_input.dataset.name == data.name
    assert {tag.key: tag.value for tag in dataset_input.tags}["families"] == "curvevel-a,flatvel-a"


def test_registered_pyfunc_returns_velocity_in_mps(trained):
    import mlflow

    from pipeline.bundle import load_bundle
    from pipeline.feeding import SeismicDataset

    root, data, _, result, _ = trained
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    pyfunc = mlflow.pyfunc.load_model("models:/seisinvert-unet@champion")
    test = SeismicDataset(data, "test", batch_size=4)
    raw, velocity_mps, _ = test.read(test.indices)
    outputs = pyfunc.predict(raw)
    assert set(outputs) == {"velocity_mps", "edges"}
    assert (
        outputs["velocity_mps"].shape == (len(raw), *GRID_SHAPE)
        and outputs["velocity_mps"].dtype == np.float32
    )
    assert 1500 <= outputs["velocity_mps"].min() and outputs["velocity_mps"].max() <= 4500
    assert 0 <= outputs["edges"].min() and outputs["edges"].max() <= 1
    local = load_bundle(result.bundle_dir).predict(raw)
    np.testing.assert_allclose(outputs["velocity_mps"], local["velocity_mps"], rtol=1e-5)
    # The inference parameters of the signature reach the bundle.
    mirrored = pyfunc.predict(raw, params={"mirror_average": True, "batch_size": 3})
    local_mirrored = load_bundle(result.bundle_dir).predict(raw, mirror_average=True)
    np.testing.assert_allclose(mirrored["velocity_mps"], local_mirrored["velocity_mps"], rtol=1e-5)
    assert np.abs(mirrored["velocity_mps"] - outputs["velocity_mps"]).max() > 0
    # Closer to the truth than the middle of the range would be (it learned something in 2 epochs).
    assert (
        np.mean(np.abs(outputs["velocity_mps"] - velocity_mps)) < np.mean(np.abs(3000 - velocity_mps)) * 1.5
    )
    with pytest.raises(
        Exception, match=r"Shape of input \(2, 2, 32, 16\) does not match expected shape \(-1, 2, 64, 16\)"
    ):
        pyfunc.predict(np.zeros((2, SEISMIC_SHAPE[0], 32, SEISMIC_SHAPE[2]), np.float32))
    # The registry states the training geometry: input (-1, shots, time, receivers), outputs by name and shape.
    signature = mlflow.models.get_model_info("models:/seisinvert-unet@champion").signature
    (seismic_spec,) = signature.inputs.inputs
    assert seismic_spec.shape == (-1, *SEISMIC_SHAPE) and seismic_spec.type == np.dtype(np.float32), (
        seismic_spec
    )
    assert {spec.name: spec.shape for spec in signature.outputs.inputs} == {
        "velocity_mps": (-1, *GRID_SHAPE),
        "edges": (-1, *GRID_SHAPE),
    }, signature.outputs
    from pipeline import tracking

    bundle = tracking.load_bundle("models:/seisinvert-unet/1")
    assert bundle.info["mlflow_run_id"] == result.run_id and bundle.family == "unet"


def test_champion_alias_moves_only_to_a_better_version(trained, client):
    from pipeline.tracking import register_model

    root, _, _, result, _ = trained
    uri = f"sqlite:///{root / 'mlflow.db'}"
    logged = client.get_model_version("seisinvert-unet", "1").source
    current = float(client.get_model_version("seisinvert-unet", "1").tags["val_velocity_ssim"])
    worse, champion = register_model(uri, logged, "seisinvert-unet", current - 0.1, result.run_id)
    assert (
        not champion and str(client.get_model_version_by_alias("seisinvert-unet", "champion").version) == "1"
    )
    better, champion = register_model(uri, logged, "seisinvert-unet", current + 0.1, result.run_id)
    assert (
        champion and str(client.get_model_version_by_alias("seisinvert-unet", "champion").version) == better
    )


def test_evaluate_cli_logs_an_evaluation_run(trained, client, tmp_path, capsys):
    import csv

    from pipeline.evaluate import main as evaluate_main

    root, data, _, result, _ = trained
    status = evaluate_main(
        [
            "--model",
            str(result.bundle_dir),
            "--data",
            str(data),
            "--tracking-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--experiment",
            "tests",
            "--out",
            str(tmp_path),
        ]
    )
    assert status == 0
    rows = list(csv.DictReader((tmp_path / "per_sample_test.csv").open()))
    assert len(rows) == dataset_info(data)["split_sizes"]["test"]
    assert {row["family"] for row in rows} == {"flatvel-a", "curvevel-a"}
    assert len({(row["origin"], row["sample_id"]) for row in rows}) == len(rows), (
        "(origin, id) identifies a sample"
    )
    mean_ssim = np.mean([float(row["ssim"]) for row in rows])
    assert mean_ssim == pytest.approx(result.test_metrics["velocity_ssim"], abs=1e-5)
    assert (tmp_path / "worst_test.png").stat().st_size > 1000
    runs = client.search_runs(
        [client.get_experiment_by_name("tests").experiment_id], "tags.`seisinvert.run_type` = 'evaluation'"
    )
    assert len(runs) == 1
    assert runs[0].data.tags["seisinvert.evaluated_run_id"] == result.run_id
    assert runs[0].data.metrics["test_velocity_ssim"] == pytest.approx(
        result.test_metrics["velocity_ssim"], abs=1e-5
    )
    assert "SSIM" in capsys.readouterr().out


def test_evaluate_mirror_average_scores_the_bundle_s_mirror_averaged_prediction(trained, tmp_path):
    from pipeline.bundle import load_bundle
    from pipeline.evaluate import main as evaluate_main
    from pipeline.feeding import SeismicDataset

    root, data, _, result, _ = trained
    argv = ["--model", str(result.bundle_dir), "--data", str(data), "--no-tracking"]
    assert evaluate_main([*argv, "--out", str(tmp_path / "mirror"), "--mirror-average"]) == 0
    rows = list(csv.DictReader((tmp_path / "mirror" / "per_sample_test.csv").open()))
    test = SeismicDataset(data, "test", batch_size=4)
    raw, velocity_mps, _ = test.read([int(row["index"]) for row in rows])
    expected = np.abs(
        load_bundle(result.bundle_dir).predict(raw, mirror_average=True)["velocity_mps"] - velocity_mps
    ).mean(axis=(1, 2))
    np.testing.assert_allclose([float(row["mae_mps"]) for row in rows], expected, rtol=1e-4)
    assert evaluate_main([*argv, "--out", str(tmp_path / "plain")]) == 0
    plain = list(csv.DictReader((tmp_path / "plain" / "per_sample_test.csv").open()))
    assert [row["mae_mps"] for row in plain] != [row["mae_mps"] for row in rows]


def test_evaluate_warns_when_the_truth_reaches_beyond_the_model_s_output_range(trained, tmp_path, caplog):
    """A 5150 m/s basement scored by a model whose tanh output stops at 4500 m/s: the warning says how far the
    data reach and that this part of the error is the range's, not the training's."""
    import logging

    from pipeline.evaluate import main as evaluate_main

    _, _, _, result, _ = trained
    data = write_dataset(tmp_path / "basement.h5", num_samples=20, seed=3, basement_mps=5150.0)
    argv = [
        "--model",
        str(result.bundle_dir),
        "--data",
        str(data),
        "--no-tracking",
        "--out",
        str(tmp_path / "e"),
    ]
    with caplog.at_level(logging.WARNING, logger="pipeline.evaluate"):
        assert evaluate_main(argv) == 0
    (message,) = [r.getMessage() for r in caplog.records if r.name == "pipeline.evaluate"]
    reach = (
        "basement.h5: its velocities (training split) reach up to 5150 m/s, beyond the range 1500-4500 m/s"
    )
    assert reach in message and f"the output range of {result.bundle_dir}" in message


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` on loopback (the command ``pipeline.dashboard`` runs), on a free port."""
    import socket
    import subprocess
    import time
    import urllib.request

    from pipeline.dashboard import server_command, server_environment

    root = tmp_path_factory.mktemp("server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = server_command(root / "server.db", port=port, artifacts_destination=root / "artifacts")
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        command,
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=server_environment(),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield url
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def _rest(url: str, endpoint: str, **query) -> dict:
    import json
    import urllib.parse
    import urllib.request

    with urllib.request.urlopen(
        f"{url}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}", timeout=30
    ) as r:
        return json.loads(r.read())


# A second training of the fixture's run against a server (~30 s on 2 idle cores, 90 s at load 10): the suite
# already trains three models (this module's, the shared trained_flatvel, the quick config's main job).
@pytest.mark.slow
def test_server_run_with_the_same_seed_has_the_same_metrics(trained, mlflow_server):
    """The same training against a real ``mlflow server``: identical metrics (seeded), and the run's metrics,
    images and registered model version are visible through the server's REST API."""
    root, data, config, result, _ = trained
    again = train(
        tiny_config(
            root / "again", data, tracking__tracking_uri=mlflow_server, tracking__experiment="server"
        ),
        echo=lambda *_: None,
    )
    for first, second in zip(result.history, again.history, strict=True):
        for key in ("loss", "val_loss", "val_velocity_ssim"):
            assert second[key] == pytest.approx(first[key], rel=1e-5, abs=1e-7), (
                f"{key}: same seed, same metrics"
            )

    run = _rest(mlflow_server, "runs/get", run_id=again.run_id)["run"]
    assert run["info"]["status"] == "FINISHED"
    metrics = {metric["key"]: metric["value"] for metric in run["data"]["metrics"]}
    assert metrics["test_velocity_ssim"] == pytest.approx(again.test_metrics["velocity_ssim"])
    history = _rest(mlflow_server, "metrics/get-history", run_id=again.run_id, metric_key="val_velocity_ssim")
    assert sorted(point["step"] for point in history["metrics"]) == [0, 1]
    images = _rest(mlflow_server, "artifacts/list", run_id=again.run_id, path="images")["files"]
    assert len([f for f in images if f["path"].endswith(".png")]) == 2 and all(
        f["file_size"] > 1000 for f in images if f["path"].endswith(".png")
    )
    version = _rest(mlflow_server, "registered-models/alias", name="seisinvert-unet", alias="champion")
    assert version["model_version"]["run_id"] == again.run_id
    assert version["model_version"]["status"] == "READY"


def test_bad_input_is_refused_with_a_message(tmp_path, capsys):
    with pytest.raises(UserError, match="does not exist"):
        train(tiny_config(tmp_path, tmp_path / "missing.h5"), echo=lambda *_: None)
    assert main(["--data", str(tmp_path / "missing.h5"), "--set", "tracking.enabled=false"]) == 2
    assert "missing.h5 does not exist" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="Unknown model 'resnet'"):
        resolve_model_config("resnet", {}, SEISMIC_SHAPE, GRID_SHAPE)
    with pytest.raises(ConfigError, match="Unknown configuration key"):
        load_config(TrainConfig, overrides=["optimizer.lr=1"])
    with pytest.raises(ConfigError, match="curriculum"):
        from_dict(TrainConfig, {"epochs": 2, "curriculum": [{"epochs": 3}]})


def test_model_variants_schedule_and_curriculum_stages():
    config = from_dict(TrainConfig, {"model": "gru", "model_options": {"recurrent_units": [8]}})
    family, edge_head = resolve_model_config(config.model, config.model_options, SEISMIC_SHAPE, GRID_SHAPE)
    assert family.family == "lstm" and family.cell == "gru" and family.recurrent_units == (8,) and edge_head
    assert tuple(family.seismic_shape) == SEISMIC_SHAPE and tuple(family.grid_shape) == GRID_SHAPE
    config = from_dict(TrainConfig, {"model": "unet", "model_options": {**TINY_OPTIONS, "edge_head": False}})
    family, edge_head = resolve_model_config(config.model, config.model_options, SEISMIC_SHAPE, GRID_SHAPE)
    model = build_model(family, edge_head)
    assert model.output_names == ["velocity"]
    assert not any("edges" in layer.name for layer in model.layers), "the edge decoder must not be computed"

    schedule = learning_rate_schedule(
        from_dict(TrainConfig, {}).optimizer.__class__(
            learning_rate=1e-3, warmup_epochs=1, final_learning_rate_fraction=0.1
        ),
        10,
        5,
    )
    values = [float(schedule(step)) for step in (0, 5, 10, 30, 50)]
    assert values[0] < values[1] < values[2] == pytest.approx(1e-3)
    assert values[2] > values[3] > values[4] == pytest.approx(1e-4, rel=1e-3)
    assert values[3] == pytest.approx(
        1e-4 + 0.5 * (1e-3 - 1e-4) * (1 + math.cos(math.pi * 20 / 40)), rel=1e-4
    )

    config = from_dict(
        TrainConfig,
        {
            "epochs": 6,
            "curriculum": [{"epochs": 2, "families": ["flatvel-a"]}, {"epochs": 1, "active_shots": 3}],
        },
    )
    stages = [stage_for(config, epoch) for epoch in range(6)]
    assert stages[:3] == [
        CurriculumStage(2, ("flatvel-a",)),
        CurriculumStage(2, ("flatvel-a",)),
        CurriculumStage(1, (), 3),
    ]
    assert stages[3:] == [None, None, None]


def test_shipped_training_configs_load_and_default_yaml_is_the_default():
    from core.config import CONFIG_DIR

    files = sorted((CONFIG_DIR / "train").glob("*.yaml"))
    assert {path.stem for path in files} >= {"default", "openfwi", "quick"}
    for path in files:
        config = load_config(TrainConfig, files=[path])
        resolve_model_config(
            config.model, config.model_options, (5, 1000, 70), (70, 70)
        )  # the model part resolves too
    assert load_config(TrainConfig, files=[CONFIG_DIR / "train" / "default.yaml"]) == TrainConfig()


def test_one_tracking_shape_and_the_old_flat_evaluation_keys():
    """Training and evaluation share ``pipeline.tracking.TrackingSettings`` under ``tracking:``; evaluation's
    flat keys of earlier versions are still read, with a warning that names the new key."""
    import dataclasses

    from pipeline.evaluate import EvaluateConfig
    from pipeline.tracking import TrackingSettings

    shared = [field.name for field in dataclasses.fields(TrackingSettings)]
    assert shared == ["enabled", "tracking_uri", "experiment", "run_name"]
    assert isinstance(TrainConfig().tracking, TrackingSettings)
    assert isinstance(EvaluateConfig().tracking, TrackingSettings)
    with pytest.warns(FutureWarning, match=r"is now `tracking\.") as caught:
        old = load_config(
            EvaluateConfig, overrides=["tracking_uri=sqlite:///x.db", "tracking=false", "experiment=mine"]
        )
    assert [str(w.message).split(" in ")[0] for w in caught] == [
        "--set tracking_uri=sqlite:///x.db: `tracking_uri` is now `tracking.tracking_uri`",
        "--set tracking=false: `tracking` is now `tracking.enabled`",
        "--set experiment=mine: `experiment` is now `tracking.experiment`",
    ], "one warning per old key, naming the new one"
    assert old.tracking == TrackingSettings(enabled=False, tracking_uri="sqlite:///x.db", experiment="mine")
    new = load_config(EvaluateConfig, overrides=["tracking.enabled=false", "tracking.experiment=mine"])
    assert new.tracking == TrackingSettings(enabled=False, experiment="mine")


def test_time_budget_arithmetic():
    from pipeline.training.budget import evaluation_reserve_s, training_budget

    config = from_dict(TrainConfig, {"max_total_time_s": 840, "max_train_time_s": None})
    assert training_budget(config, started=0.0, loop_started=200.0) == 640.0
    config = from_dict(TrainConfig, {"max_total_time_s": 840, "max_train_time_s": 300})
    assert training_budget(config, started=0.0, loop_started=200.0) == 300.0
    assert training_budget(from_dict(TrainConfig, {"max_total_time_s": None}), 0.0, 10.0) is None
    assert evaluation_reserve_s(epoch_s=96.0, train_samples=960, test_samples=120) == pytest.approx(42.0)


def test_the_epoch_plan_shrinks_to_what_the_budget_holds_and_never_grows():
    # 12 planned; after epoch index 5 (6 done), 250 s left at 50 s an epoch: 5 more, 11 in all.
    assert epochs_within_budget(12, 5, 250.0, 50.0) == 11
    assert epochs_within_budget(12, 5, 249.0, 50.0) == 10
    # More time than needed never raises the plan (that would raise the cosine's learning rate again).
    assert epochs_within_budget(12, 5, 10_000.0, 50.0) == 12
    # Out of time: the plan ends with the epoch just finished, never before it.
    assert epochs_within_budget(12, 5, -30.0, 50.0) == 6


def test_the_budget_cut_line_names_the_setting_and_the_way_to_the_full_schedule():
    from pipeline.training.budget import budget_cut_line

    config = from_dict(TrainConfig, {"epochs": 50})
    assert budget_cut_line(config, 12) == (
        "time budget: max_total_time_s=840 s cuts training to 12 of the 50 configured epochs; for the full "
        "schedule: --set max_total_time_s=null"
    )
    both = from_dict(TrainConfig, {"epochs": 50, "max_train_time_s": 300})
    assert "max_total_time_s=840 s and max_train_time_s=300 s cut training" in budget_cut_line(both, 5)
    assert budget_cut_line(both, 5).endswith("--set max_total_time_s=null --set max_train_time_s=null")


def test_a_run_cut_by_the_budget_says_so_in_one_line(tmp_path):
    """A budget spent after the first epoch stops a 3-epoch run there; one line says the budget did it."""
    data = write_dataset(tmp_path / "small.h5", num_samples=24)
    lines: list[str] = []
    config = tiny_config(tmp_path, data, epochs=3, max_train_time_s=1e-3, tracking__enabled=False)
    result = train(config, echo=lines.append)
    assert len(result.history) == 1 and result.stopped_early
    cut = [line for line in lines if "configured epochs" in line]
    assert cut == [
        "time budget: max_total_time_s=840 s and max_train_time_s=0.001 s cut training to 1 of the 3 configured "
        "epochs; for the full schedule: --set max_total_time_s=null --set max_train_time_s=null"
    ], lines


def test_a_run_within_its_budget_prints_no_cut_line(trained):
    *_, lines = trained
    assert not [line for line in lines if "configured epochs" in line], lines


def test_the_run_summary_records_phases_epochs_and_test_metrics(trained, client):
    """``run_summary.json`` (what benchmarks/default_run.py reads): beside the bundle and as an MLflow artifact."""
    import json

    root, _, config, result, lines = trained
    assert result.summary_path == Path(config.runtime.output_dir) / result.run_id / "run_summary.json"
    summary = json.loads(result.summary_path.read_text())
    assert f"run summary: {result.summary_path}" in lines
    assert summary["run_id"] == result.run_id and summary["model"] == "unet"
    assert summary["epochs"] == {
        "configured": 2,
        "planned": 2,
        "run": 2,
        "best": result.best_epoch + 1,
        "stopped_early": False,
        "budget_cut": False,
    }
    phases = summary["phases_s"]
    for name in ("data", "setup", "first_epoch", "steady_epoch_median", "epochs", "evaluation", "total"):
        assert phases[name] is not None and phases[name] >= 0, (name, phases)
    parts = (
        phases["data"]
        + phases["setup"]
        + phases["epochs"]
        + phases["evaluation"]
        + phases["bundle_and_registry"]
    )
    assert parts == pytest.approx(phases["total"], abs=0.5), phases
    assert summary["test_metrics"] == pytest.approx(result.test_metrics)
    per_family = summary["test_metrics_per_family"]
    assert per_family.keys() == result.test_per_family.keys()
    for family, metrics in result.test_per_family.items():
        assert per_family[family] == pytest.approx(metrics)
    assert summary["registered_model"] == "seisinvert-unet" and summary["champion"] is True
    logged = client.download_artifacts(result.run_id, "run_summary.json", str(root / "downloaded"))
    assert json.loads(Path(logged).read_text()) == summary


def test_the_moveout_scan_reads_its_geometry_from_the_data(tmp_path):
    """``model_options.moveout_scan: true`` trains a U-Net whose velocity spectra use the dataset's shots,
    sample interval and receiver spacing; the saved bundle keeps them."""
    from data_prep.wavelets import openfwi_ricker_delay_s
    from pipeline.bundle import load_bundle

    data = write_dataset(tmp_path / "small.h5", num_samples=24)
    options = {**TINY_OPTIONS, "moveout_scan": True}
    config = tiny_config(tmp_path, data, epochs=1, model_options=options, tracking__enabled=False)
    result = train(config, echo=lambda *_: None)
    layer = load_bundle(result.bundle_dir).model.get_layer("moveout_semblance")
    assert layer.source_receivers == [0.0, 15.0]
    assert layer.time_step_s == 0.002 and layer.receiver_spacing_m == 10.0
    assert layer.wavelet_delay_s == pytest.approx(openfwi_ricker_delay_s(15.0, 0.002))
    assert np.isfinite(result.history[0]["val_loss"])

    wrong = {**TINY_OPTIONS, "moveout_scan": {"time_step_s": 0.001}}
    config = tiny_config(tmp_path, data, model_options=wrong, tracking__enabled=False)
    with pytest.raises(
        ConfigError, match=r"small.h5: model_options.moveout_scan.time_step_s=0.001 does not match"
    ):
        train(config, echo=lambda *_: None)
