"""Data-parallel training through the real engines: ``MirroredStrategy`` on two logical CPU devices,
``MultiWorkerMirroredStrategy`` with two local worker processes (``TF_CONFIG`` on loopback), and training
under ``KERAS_BACKEND=jax`` with ``keras.distribution.DataParallel`` over two host devices."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, run_with_backend
from tests.pipeline.datasets import TINY_UNET, write_dataset

OPTIONS = {k: v for k, v in TINY_UNET.items() if k not in ("family", "seismic_shape", "grid_shape")}


def _config_values(root: Path, data: Path, tracking: bool = True, **runtime) -> dict:
    # One epoch and no images: tracing the steps is most of the cost at this size.
    return {
        "model": "unet",
        "model_options": OPTIONS,
        "batch_size": 4,
        "epochs": 1,
        "data": {"path": str(data)},
        "tracking": {
            "enabled": tracking,
            "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
            "experiment": "distributed",
            "system_metrics": False,
            "image_samples": 0,
        },
        "runtime": {
            "jit_compile": False,
            "checkpoint_dir": str(root / "ck"),
            "output_dir": str(root / "out"),
            **runtime,
        },
    }


def test_mirrored_strategy_on_two_logical_cpus(tmp_path: Path):
    data = write_dataset(tmp_path / "small.h5", num_samples=48)  # 5 validation samples: one full batch of 4
    values = _config_values(tmp_path, data, distribution="mirrored")
    result = run_with_backend(
        f"""
        import json
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
        from core.config import from_dict
        from pipeline.train import TrainConfig, train
        result = train(from_dict(TrainConfig, json.loads({json.dumps(json.dumps(values))})), echo=lambda *_: None)
        print(json.dumps({{"distribution": result.distribution, "replicas": result.replicas,
                          "losses": [h["loss"] for h in result.history], "ssim": result.test_metrics["velocity_ssim"],
                          "run_id": result.run_id, "bundle": str(result.bundle_dir)}}))
    """,
        backend="tensorflow",
    )
    assert result["distribution"] == "mirrored" and result["replicas"] == 2
    assert len(result["losses"]) == 1 and all(np.isfinite(result["losses"]))
    import mlflow

    run = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(result["run_id"])
    assert run.data.params["runtime.replicas"] == "2" and run.info.status == "FINISHED"
    assert run.data.params["runtime.strategy"] == "mirrored"
    from pipeline.bundle import load_bundle

    bundle = load_bundle(result["bundle"])  # the strategy-free copy was saved: loads anywhere
    assert bundle.model.count_params() > 0


@pytest.mark.jax
def test_training_under_jax_with_data_parallel_on_two_devices(tmp_path: Path):
    """JAX backend, two host devices: DataParallel; the saved bundle gives the same numbers under TensorFlow."""
    data = write_dataset(tmp_path / "small.h5", num_samples=48)
    values = _config_values(tmp_path, data, tracking=False)
    previous = os.environ.get("XLA_FLAGS")
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    try:
        result = run_with_backend(
            f"""
            import json
            import numpy as np
            import jax
            from core.config import from_dict
            from pipeline.train import TrainConfig, train
            from pipeline.bundle import load_bundle
            from pipeline.feeding import SeismicDataset
            assert len(jax.devices()) == 2, jax.devices()
            result = train(from_dict(TrainConfig, json.loads({json.dumps(json.dumps(values))})), echo=lambda *_: None)
            test = SeismicDataset({json.dumps(str(data))}, "test", batch_size=4)
            raw, _, _ = test.read(test.indices[:2])
            velocity = load_bundle(result.bundle_dir).predict(raw)["velocity_mps"]
            print(json.dumps({{"distribution": result.distribution, "replicas": result.replicas,
                              "losses": [h["loss"] for h in result.history], "bundle": str(result.bundle_dir),
                              "raw": raw.tolist(), "velocity": velocity.tolist()}}))
        """,
            backend="jax",
        )
    finally:
        if previous is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = previous
    assert result["distribution"] == "data_parallel" and result["replicas"] == 2
    assert all(np.isfinite(result["losses"]))
    from pipeline.bundle import load_bundle

    under_tensorflow = load_bundle(result["bundle"]).predict(np.asarray(result["raw"], np.float32))[
        "velocity_mps"
    ]
    np.testing.assert_allclose(under_tensorflow, np.asarray(result["velocity"]), rtol=1e-4, atol=0.05)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_multi_worker_mirrored_with_two_local_workers(tmp_path: Path):
    import mlflow

    data = write_dataset(tmp_path / "small.h5", num_samples=48)
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.MlflowClient(store).search_experiments()  # create the database once, before two processes open it
    processes = []
    for index in range(2):
        environment = dict(
            os.environ,
            PYTHONPATH=str(REPO_ROOT),
            KERAS_BACKEND="tensorflow",
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        arguments = [
            sys.executable,
            "-m",
            "pipeline.train",
            "--data",
            str(data),
            "--tracking-uri",
            store,
            "--experiment",
            "multi",
            "--set",
            f"model_options={json.dumps(OPTIONS)}",
            "--set",
            "epochs=2",
            "--set",
            "batch_size=4",
            "--set",
            "runtime.jit_compile=false",
            "--set",
            "runtime.distribution=multi_worker",
            "--set",
            f"runtime.checkpoint_dir={tmp_path / 'ck'}",
            "--set",
            f"runtime.output_dir={tmp_path / 'out'}",
            "--set",
            "tracking.system_metrics=false",
        ]
        log = (tmp_path / f"worker{index}.log").open("w")
        processes.append(
            (
                subprocess.Popen(
                    arguments, cwd=tmp_path, env=environment, stdout=log, stderr=subprocess.STDOUT
                ),
                log,
            )
        )
    for process, log in processes:
        try:
            process.wait(timeout=900)
        finally:
            if process.poll() is None:
                process.kill()
            log.close()
    logs = [(tmp_path / f"worker{index}.log").read_text() for index in range(2)]
    assert [process.returncode for process, _ in processes] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    client = mlflow.MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("multi").experiment_id])
    assert run.info.status == "FINISHED", "only the chief logs: one run"
    assert run.data.params["runtime.distribution"] == "multi_worker", "the setting, as given"
    assert run.data.params["runtime.strategy"] == "multi_worker_mirrored", "what it resolved to"
    assert run.data.params["runtime.replicas"] == "2"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_loss")) == [0, 1]
    assert "test_velocity_ssim" in run.data.metrics
