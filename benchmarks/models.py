"""Benchmark of every model family at the OpenFWI input: parameters, FLOPs, training and inference speed.

Usage (from the repository root)::

    python -m benchmarks.models                    # CPU, default Keras backend, writes docs/benchmarks.md
    python -m benchmarks.models --no-write --repeats 3
    KERAS_BACKEND=jax python -m benchmarks.models  # + GPU rows (mixed_bfloat16) when JAX sees a GPU

For each model built with its default configuration (``models.build(name)``, plus the U-Net's
shared-upsampling ablation) the script reports:

* parameters: ``model.count_params()``;
* FLOPs per sample: XLA's cost analysis (``jax.jit(...).lower(...).compile().cost_analysis()["flops"]``) of
  one inference forward pass at batch 1, run in a ``KERAS_BACKEND=jax`` subprocess when the current backend
  is not JAX. XLA counts a multiply-add as 2 FLOPs and also counts element-wise work (normalisation,
  activations). It counts the body of a ``while`` loop once, so for recurrent layers (a ``lax.scan`` over
  steps) the missing ``steps - 1`` steps are added analytically: ``2 · gates · (input_dim + units) · units``
  per step and direction (gates: LSTM 4, GRU 3, SimpleRNN 1). A training step costs about 3× the forward
  FLOPs;
* training samples/s: ``train_on_batch`` at batch 16 (Adam, the project's losses), median over repeats after
  warm-up steps that include compilation;
* inference samples/s: ``predict_on_batch`` at batch 16, median over repeats.

Both speeds are measured with ``compile(jit_compile=True)`` (``--no-jit`` for Keras' default ``"auto"``,
which switches XLA off on CPU-only TensorFlow machines; XLA is clearly faster on this CPU). On a machine
with a GPU and ``KERAS_BACKEND=jax`` a second table gives samples/s under ``mixed_bfloat16``; without one
its cells read "not measured".

Targets (dual U-Net at default width, 2-core CPU, batch 16): ≤ 8 M parameters, ≥ 17 samples/s training,
≥ 60 samples/s inference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
OPENFWI_SEISMIC_SHAPE = (5, 1000, 70)
OPENFWI_GRID_SHAPE = (70, 70)
#: (row label, registry name, config overrides)
MODELS = (
    ("unet", "unet", None),
    ("unet (shared upsampling)", "unet", {"decoder_mode": "shared_upsampling"}),
    ("inversionnet", "inversionnet", None),
    ("lstm", "lstm", None),
    ("transformer", "transformer", None),
)
TARGETS = {"parameters": 8_000_000, "train_samples_per_s": 17.0, "inference_samples_per_s": 60.0}
_GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}


def _build(name: str, overrides: dict | None):
    import models

    return models.build(name, overrides)


def recurrent_flops_correction(model) -> float:
    """FLOPs of the ``steps - 1`` recurrent steps XLA's cost analysis leaves out, per sample."""
    import keras

    extra = 0.0
    for layer in model.layers:
        directions = 1
        inner = layer
        if isinstance(layer, keras.layers.Bidirectional):
            directions, inner = 2, layer.forward_layer
        kind = type(inner).__name__
        if kind not in _GATES:
            continue
        steps, input_dim = (int(v) for v in layer.input.shape[1:3])
        units = int(inner.units)
        extra += directions * (steps - 1) * 2 * _GATES[kind] * (input_dim + units) * units
    return extra


def jax_flops_per_sample() -> dict[str, float]:
    """Forward FLOPs per sample of every benchmarked model (must run under KERAS_BACKEND=jax)."""
    import jax
    import jax.numpy as jnp

    results = {}
    for label, name, overrides in MODELS:
        model = _build(name, overrides)
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        def forward(trainable, non_trainable, seismic, model=model):
            return model.stateless_call(trainable, non_trainable, seismic, training=False)[0]

        compiled = (
            jax.jit(forward).lower(trainable, non_trainable, jnp.zeros((1, *OPENFWI_SEISMIC_SHAPE))).compile()
        )
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list | tuple) else cost
        results[label] = float(cost["flops"]) + recurrent_flops_correction(model)
    return results


def flops_per_sample() -> dict[str, float] | None:
    """FLOPs per sample, computed under JAX (in a subprocess when the current backend is another one)."""
    import keras

    if keras.backend.backend() == "jax":
        return jax_flops_per_sample()
    environment = dict(
        os.environ,
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=str(REPO_ROOT),
    )
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.models", "--flops-only"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if completed.returncode != 0:
        print(f"FLOPs not computed (JAX subprocess failed):\n{completed.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measure_speed(
    model,
    batch_size: int,
    repeats: int,
    warmup: int = 2,
    jit_compile: bool | str = True,
    problems: list[str] | None = None,
) -> tuple[float, float]:
    """Median training and inference samples/s of ``model`` at ``batch_size``; with ``problems``, appends where
    the repeats spread too far to be trusted (``benchmarks.references``).

    ``jit_compile=True`` is passed explicitly: Keras' default ``"auto"`` turns XLA off on CPU-only machines
    with the TensorFlow backend, and XLA is markedly faster here (U-Net inference ~1.5×).
    """
    import keras

    from benchmarks.report import median, time_repeats
    from models.losses import build_losses

    rng = np.random.default_rng(0)
    seismic = rng.uniform(-1, 1, (batch_size, *model.input_shape[1:])).astype("float32")
    grid = tuple(model.output["velocity"].shape[1:])
    targets = {
        "velocity": rng.uniform(-1, 1, (batch_size, *grid)).astype("float32"),
        "edges": (rng.uniform(size=(batch_size, *grid)) > 0.9).astype("float32"),
    }
    targets = {name: targets[name] for name in model.output_names}
    losses, weights = build_losses(output_names=model.output_names)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss=losses, loss_weights=weights, jit_compile=jit_compile
    )
    inference = time_repeats(lambda: model.predict_on_batch(seismic), repeats, warmup)
    training = time_repeats(lambda: model.train_on_batch(seismic, targets), repeats, warmup)
    if (
        problems is not None
    ):  # repeats that disagree make the speed verdict invalid (benchmarks/references.py)
        from benchmarks.references import spread_problem

        name = getattr(model, "name", "model")
        problems.extend(
            p
            for p in (
                spread_problem(f"{name} training step", training),
                spread_problem(f"{name} inference", inference),
            )
            if p
        )
    return batch_size / median(training), batch_size / median(inference)


def gpu_rows(batch_size: int, repeats: int) -> list[list[object]]:
    """Samples/s under JAX + mixed_bfloat16 on a GPU, or "not measured" rows when there is none."""
    import keras

    available = False
    if keras.backend.backend() == "jax":
        import jax

        available = any(device.platform == "gpu" for device in jax.devices())
    if not available:
        return [[label, "not measured", "not measured"] for label, _, _ in MODELS]
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    rows = []
    try:
        for label, name, overrides in MODELS:
            train, infer = measure_speed(_build(name, overrides), batch_size, repeats, warmup=3)
            rows.append([label, train, infer])
    finally:
        keras.config.set_dtype_policy(previous)
    return rows


def run(batch_size: int = 16, repeats: int = 5, write: bool = True, jit_compile: bool = True) -> str:
    """Measures every model and returns (and optionally writes) the markdown section."""
    import keras

    from benchmarks.report import machine_description, markdown_table, update_section

    load_before = os.getloadavg()[0]
    flops = flops_per_sample()
    rows, unet = [], {}
    for label, name, overrides in MODELS:
        keras.utils.set_random_seed(0)
        model = _build(name, overrides)
        parameters = model.count_params()
        speed_problems: list[str] = []
        train, infer = measure_speed(
            model, batch_size, repeats, jit_compile=jit_compile, problems=speed_problems
        )
        gflops = f"{flops[label] / 1e9:.3g}" if flops else "not computed"
        rows.append([label, f"{parameters / 1e6:.2f} M", gflops, train, infer])
        print(
            f"{label:26s} {parameters / 1e6:6.2f} M params  {gflops:>6s} GFLOPs/sample  "
            f"train {train:6.1f} samples/s  inference {infer:6.1f} samples/s",
            flush=True,
        )
        if label == "unet":
            unet = {
                "parameters": parameters,
                "train_samples_per_s": train,
                "inference_samples_per_s": infer,
                "problems": speed_problems,
            }
        del model
        keras.backend.clear_session()

    from benchmarks.references import verdict

    load_after = os.getloadavg()[0]
    checks = [
        ["parameters", f"{unet['parameters'] / 1e6:.2f} M", "≤ 8 M",
         "pass" if unet["parameters"] <= TARGETS["parameters"] else "FAIL"],
        ["training samples/s", unet["train_samples_per_s"], "≥ 17",
         verdict(unet["train_samples_per_s"] >= TARGETS["train_samples_per_s"], unet["problems"], load_after)],
        ["inference samples/s", unet["inference_samples_per_s"], "≥ 60",
         verdict(unet["inference_samples_per_s"] >= TARGETS["inference_samples_per_s"], unet["problems"], load_after)],
    ]  # fmt: skip
    gpu = gpu_rows(batch_size, repeats)
    markdown = "\n\n".join(
        [
            "## Models",
            f"`python -m benchmarks.models` — OpenFWI input {OPENFWI_SEISMIC_SHAPE} → grid {OPENFWI_GRID_SHAPE}, "
            f"batch {batch_size}, median of {repeats} repeats after warm-up, `jit_compile={jit_compile}` (Keras' "
            f"default `auto` disables XLA on CPU-only TensorFlow; XLA is faster here). "
            f"Machine: {machine_description()}; 1-minute load average {load_before:.1f} before and "
            f"{load_after:.1f} after the CPU measurements (other jobs on the machine lower the speeds).",
            "FLOPs: forward pass per sample from XLA's cost analysis under JAX (multiply-add = 2 FLOPs, "
            "element-wise work included; recurrent steps beyond the first added analytically); a training step "
            "is about 3× that.",
            markdown_table(
                ["model", "parameters", "GFLOPs/sample", "training samples/s", "inference samples/s"], rows
            ),
            "Dual U-Net targets (default width, this CPU, batch 16):",
            markdown_table(["quantity", "measured", "target", "status"], checks),
            'GPU (KERAS_BACKEND=jax, mixed_bfloat16, batch 16; "not measured" when JAX sees no GPU — re-run '
            "with `KERAS_BACKEND=jax` on a GPU machine):",
            markdown_table(["model", "training samples/s", "inference samples/s"], gpu),
        ]
    )
    print(markdown)
    if write:
        print(f"written to {update_section('models', markdown)}")
    return markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement (median)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument(
        "--no-jit", action="store_true", help="compile with jit_compile='auto' instead of True"
    )
    parser.add_argument("--flops-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.flops_only:
        print(json.dumps(jax_flops_per_sample()))
        return 0
    run(args.batch_size, args.repeats, write=not args.no_write, jit_compile="auto" if args.no_jit else True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
