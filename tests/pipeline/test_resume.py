"""Resuming after ``kill -9``: a real training process is killed mid-run; ``--resume`` continues the same
MLflow run from the last checkpoint, and no metric step is logged twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.pipeline.datasets import TINY_UNET, write_dataset

EPOCHS = 5


def _options() -> str:
    options = {k: v for k, v in TINY_UNET.items() if k not in ("family", "seismic_shape", "grid_shape")}
    return json.dumps(options).replace('"', "")  # YAML flow mapping


@pytest.mark.slow
def test_killed_training_resumes_into_the_same_run(tmp_path: Path, capsys):
    import mlflow

    from pipeline.train import main

    data = write_dataset(tmp_path / "small.h5", num_samples=40)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    checkpoints = tmp_path / "checkpoints"
    arguments = [
        "--data",
        str(data),
        "--tracking-uri",
        store,
        "--experiment",
        "resume",
        "--set",
        f"model_options={_options()}",
        "--set",
        f"epochs={EPOCHS}",
        "--set",
        "batch_size=4",
        "--set",
        "runtime.jit_compile=false",
        "--set",
        f"runtime.checkpoint_dir={checkpoints}",
        "--set",
        f"runtime.output_dir={tmp_path / 'outputs'}",
        "--set",
        "tracking.system_metrics_interval_s=0.2",
        "--set",
        "tracking.image_samples=1",
    ]
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT), KERAS_BACKEND="tensorflow")
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.train", *arguments],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    killed_after = None
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and process.poll() is None:
            states = list(checkpoints.glob("*/state.json"))
            if states:
                try:
                    epoch = json.loads(states[0].read_text())["epoch"]
                except (json.JSONDecodeError, KeyError):
                    epoch = (
                        -1
                    )  # being replaced right now (atomic rename: never half-written, but racy to read)
                if epoch >= 1:
                    process.send_signal(signal.SIGKILL)
                    killed_after = epoch
                    break
            time.sleep(0.05)
    finally:
        if process.poll() is None and killed_after is None:
            process.kill()
        output = process.communicate(timeout=60)[0]
    assert killed_after is not None, f"the training never reached its second checkpoint:\n{output[-3000:]}"
    assert process.returncode == -signal.SIGKILL
    (run_directory,) = checkpoints.iterdir()
    run_id = run_directory.name
    client = mlflow.MlflowClient(store)
    assert client.get_run(run_id).info.status == "RUNNING"  # killed: nobody ended it

    assert (
        main(
            [
                "--resume",
                run_id,
                "--set",
                f"runtime.checkpoint_dir={checkpoints}",
                "--set",
                f"runtime.output_dir={tmp_path / 'outputs'}",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"resuming run {run_id}" in printed

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert len(client.search_runs([run.info.experiment_id])) == 1, "resuming must not create a second run"
    for key in ("loss", "val_loss", "val_velocity_ssim", "learning_rate"):
        steps = [metric.step for metric in client.get_metric_history(run_id, key)]
        assert sorted(steps) == list(range(EPOCHS)), f"{key}: steps {sorted(steps)} (each epoch exactly once)"
    system_steps = [m.step for m in client.get_metric_history(run_id, "system/cpu_utilization_percentage")]
    assert len(system_steps) == len(set(system_steps)), "system metrics continued without repeating steps"
    state = json.loads((run_directory / "state.json").read_text())
    assert state["finished"] and len(state["history"]) == EPOCHS
    version = client.get_model_version_by_alias("seisinvert-unet", "champion")
    assert version.run_id == run_id
    assert main(["--resume", "--set", f"runtime.checkpoint_dir={checkpoints}"]) == 2  # nothing left to resume
