"""``python -m pipeline.train --compare``: child runs under one parent with the table, charts and figure."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from core.config import load_config
from core.errors import ConfigError
from pipeline.compare import CompareConfig
from pipeline.train import main
from tests.models.harness import SMALL_CONFIGS
from tests.pipeline.datasets import write_dataset

MODELS = [
    {"name": "unet", "model": "unet", "model_options": SMALL_CONFIGS["unet"]},
    {
        "name": "unet-no-edges",
        "model": "unet",
        "model_options": {**SMALL_CONFIGS["unet"], "edge_head": False},
    },
    {"name": "inversionnet", "model": "inversionnet", "model_options": SMALL_CONFIGS["inversionnet"]},
    {"name": "gru", "model": "gru", "model_options": SMALL_CONFIGS["lstm"]},
    {"name": "transformer", "model": "transformer", "model_options": SMALL_CONFIGS["transformer"]},
]


def test_shipped_compare_config_loads():
    config = load_config(CompareConfig, files=[Path(__file__).parents[2] / "configs/experiment/compare.yaml"])
    assert [entry.name for entry in config.models] == [
        "unet",
        "unet-no-edges",
        "inversionnet",
        "lstm",
        "transformer",
    ]
    assert config.train.max_train_time_s and not config.train.tracking.register
    with pytest.raises(ConfigError, match="unique"):
        load_config(CompareConfig, values={"models": [{"name": "a", "model": "unet"}] * 2})


@pytest.mark.slow
def test_compare_trains_every_model_as_child_runs(tmp_path: Path, capsys):
    import mlflow

    data = write_dataset(tmp_path / "small.h5", num_samples=30)
    config = tmp_path / "compare.yaml"
    config.write_text(
        json.dumps(
            {
                "train": {
                    "batch_size": 4,
                    "epochs": 1,
                    "tracking": {"register": False, "system_metrics": False, "image_samples": 1},
                    "runtime": {
                        "jit_compile": False,
                        "checkpoint_dir": str(tmp_path / "ck"),
                        "output_dir": str(tmp_path / "out"),
                    },
                },
                "models": MODELS,
                "comparison_samples": 2,
            }
        )
    )
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert (
        main(
            [
                "--compare",
                "--config",
                str(config),
                "--data",
                str(data),
                "--tracking-uri",
                store,
                "--experiment",
                "cmp",
            ]
        )
        == 0
    )
    assert "| unet-no-edges |" in capsys.readouterr().out

    client = mlflow.MlflowClient(store)
    experiment = client.get_experiment_by_name("cmp").experiment_id
    (parent,) = client.search_runs([experiment], "tags.`seisinvert.run_type` = 'comparison'")
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(run.data.tags["seisinvert.compare_name"] for run in children) == sorted(
        m["name"] for m in MODELS
    )
    assert all(run.info.status == "FINISHED" for run in [parent, *children])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"comparison.csv", "comparison.md", "predictions.png", "charts"} <= artifacts
    charts = {a.path for a in client.list_artifacts(parent.info.run_id, "charts")}
    assert {"charts/velocity_ssim.png", "charts/velocity_mae.png", "charts/edges_f1.png"} <= charts
    table_path = mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id,
        artifact_path="comparison.csv",
        tracking_uri=store,
        dst_path=str(tmp_path / "dl"),
    )
    rows = list(csv.DictReader(io.StringIO(Path(table_path).read_text())))
    assert [row["model"] for row in rows] == [m["name"] for m in MODELS]
    by_name = {row["model"]: row for row in rows}
    assert by_name["unet-no-edges"]["edges_f1"] == "" and by_name["unet"]["edges_f1"] != ""
    assert int(by_name["unet-no-edges"]["parameters"]) < int(by_name["unet"]["parameters"])
    for row in rows:
        child = next(run for run in children if run.info.run_id == row["run_id"])
        assert float(row["velocity_ssim"]) == pytest.approx(
            child.data.metrics["test_velocity_ssim"], rel=1e-5
        )
        assert parent.data.metrics[f"{row['model']}_test_velocity_ssim"] == pytest.approx(
            float(row["velocity_ssim"]), rel=1e-5
        )
