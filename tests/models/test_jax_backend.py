"""Every model family (and the SSIM metric) under KERAS_BACKEND=jax, in one subprocess to save start-up time."""

from __future__ import annotations

import pytest

CODE = """
import json
import numpy as np
import keras
import models
from models.losses import build_losses
from models.metrics import VelocitySSIM, velocity_ssim
from tests.models.harness import SMALL_GRID_SHAPE, SMALL_SEISMIC_SHAPE, random_batch, small_config

assert keras.backend.backend() == "jax"
results = {}
seismic, targets = random_batch(SMALL_SEISMIC_SHAPE, SMALL_GRID_SHAPE, batch_size=2)
for name in ("unet", "inversionnet", "lstm", "transformer"):
    keras.utils.set_random_seed(0)
    model = models.build(name, small_config(name))
    outputs = model.predict_on_batch(seismic)
    losses, weights = build_losses(output_names=model.output_names)
    model.compile(optimizer="adam", loss=losses, loss_weights=weights)
    logs = model.train_on_batch(seismic, {k: targets[k] for k in model.output_names}, return_dict=True)
    results[name] = {
        "shapes": {k: list(v.shape) for k, v in outputs.items()},
        "dtypes": sorted({str(v.dtype) for v in outputs.values()}),
        "loss": float(logs["loss"]),
    }
metric = VelocitySSIM()
metric.update_state(targets["velocity"], np.clip(targets["velocity"] * 0.8, -1, 1))
results["ssim"] = [float(metric.result()), velocity_ssim(targets["velocity"], np.clip(targets["velocity"] * 0.8, -1, 1))]
print(json.dumps(results))
"""


@pytest.mark.jax
def test_all_models_run_under_jax(jax_runner):
    from tests.models.harness import EXPECTED_OUTPUTS, SMALL_CONFIGS, SMALL_GRID_SHAPE

    results = jax_runner(CODE)
    for name in SMALL_CONFIGS:
        expected = set(EXPECTED_OUTPUTS[name]) | ({"edges"} if name == "inversionnet" else set())
        assert set(results[name]["shapes"]) == expected, f"{name} under JAX: outputs {results[name]['shapes']}"
        for shape in results[name]["shapes"].values():
            assert shape == [2, *SMALL_GRID_SHAPE], f"{name} under JAX: expected [2, 20, 28], got {shape}"
        assert results[name]["dtypes"] == ["float32"]
        assert results[name]["loss"] == pytest.approx(results[name]["loss"]) and results[name]["loss"] < 1e6
    keras_value, numpy_value = results["ssim"]
    assert keras_value == pytest.approx(numpy_value, abs=1e-5), "SSIM differs between JAX metric and NumPy"
