"""Where training runs: the data-parallel strategy, the dtype policy and the seeds.

Pipeline position: ``pipeline.training.trainer`` calls ``setup_distribution``, ``setup_precision`` and
``seed_everything`` before it builds the model, builds and compiles inside ``Distribution.scope()``, and
evaluates and saves a plain copy (``inference_model``) outside the strategy.

Scaling: ``tf.distribute.MirroredStrategy`` when several GPUs are visible to TensorFlow,
``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names several workers, and ``keras.distribution.
DataParallel`` (after ``jax.distributed.initialize`` for several processes) under ``KERAS_BACKEND=jax``.
``batch_size`` is the global batch. Mixed precision (``mixed_bfloat16``) is used on GPUs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from core.errors import UserError


@dataclass
class Distribution:
    """The data-parallel setup: a scope to build the model in, the replica count and whether this process
    is the chief (the one that logs and writes)."""

    name: str
    strategy: Any = None
    replicas: int = 1
    is_chief: bool = True
    worker_index: int = 0
    workers: int = 1

    def scope(self):
        """The strategy's scope (a new context manager on every call), or a no-op one."""
        import contextlib

        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()


def setup_distribution(mode: str) -> Distribution:
    """Picks and creates the distribution strategy (see ``RuntimeConfig.distribution``)."""
    import keras

    backend = keras.backend.backend()
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    workers = len(tf_config.get("cluster", {}).get("worker", [])) + len(
        tf_config.get("cluster", {}).get("chief", [])
    )
    if mode == "off":
        return Distribution("none")
    if backend == "tensorflow":
        import tensorflow as tf

        if mode in ("multi_worker",) or (mode == "auto" and workers > 1):
            if workers < 1:
                raise UserError("distribution=multi_worker needs TF_CONFIG with a cluster of workers.")
            strategy = _multi_worker_strategy()
            task = tf_config.get("task", {})
            chief = task.get("type") == "chief" or (
                task.get("type") == "worker"
                and int(task.get("index", 0)) == 0
                and "chief" not in tf_config.get("cluster", {})
            )
            # Worker order: the chief (if any) first, then the workers.
            has_chief = "chief" in tf_config.get("cluster", {})
            index = 0 if task.get("type") == "chief" else int(task.get("index", 0)) + (1 if has_chief else 0)
            return Distribution(
                "multi_worker_mirrored", strategy, strategy.num_replicas_in_sync, chief, index, workers
            )
        gpus = tf.config.list_logical_devices("GPU")
        if mode == "mirrored" or (mode == "auto" and len(gpus) > 1):
            devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
            strategy = tf.distribute.MirroredStrategy(devices=devices)
            return Distribution("mirrored", strategy, strategy.num_replicas_in_sync)
        if mode == "data_parallel":
            raise UserError("distribution=data_parallel is the JAX backend's: use mirrored on TensorFlow.")
        return Distribution("none")
    if backend == "jax":
        import jax

        if os.environ.get("JAX_COORDINATOR_ADDRESS") and int(os.environ.get("JAX_NUM_PROCESSES", "1")) > 1:
            if not jax.distributed.is_initialized():
                jax.distributed.initialize(
                    coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
                    num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                    process_id=int(os.environ.get("JAX_PROCESS_ID", "0")),
                )
        devices = jax.devices()
        if mode == "data_parallel" or (mode == "auto" and len(devices) > 1):
            distribution = keras.distribution.DataParallel(devices=devices)
            keras.distribution.set_distribution(distribution)
            return Distribution(
                "data_parallel",
                None,
                len(devices),
                jax.process_index() == 0,
                jax.process_index(),
                jax.process_count(),
            )
        if mode in ("mirrored", "multi_worker"):
            raise UserError(f"distribution={mode} is TensorFlow's: use data_parallel under JAX.")
        return Distribution("none")
    if mode not in ("auto",):
        raise UserError(f"distribution={mode} is not supported on the {backend} backend.")
    return Distribution("none")


def _multi_worker_strategy():
    """``tf.distribute.MultiWorkerMirroredStrategy`` with a ``reduce`` that Keras 3's trainer can call.

    Keras 3's TensorFlow trainer calls ``Strategy.reduce`` in two ways the collective strategy does not
    support, both failing at the first step (the Keras 3 + ``MultiWorkerMirroredStrategy`` breakage of
    keras-team/keras#20585):

    - before building, ``fit`` and ``evaluate`` average the first distributed ``(x, y)`` batch with one call on
      the whole nest; ``Strategy.reduce`` takes a single value ("support `value` being a nest" is a TODO in
      TensorFlow), so it fails with "Attempt to convert a value (PerReplica...)";
    - after every step, the per-replica logs (scalar losses and metrics) are averaged with ``axis=0``, which
      a scalar does not have ("Invalid reduction dimension 0 for input with 0 dimensions").

    This reduces a nest leaf by leaf, and a scalar across replicas only (every replica holds an equal share of
    the global batch, so the mean of the replicas' means is the batch mean). Every worker makes the same calls
    in the same order, so the collectives stay matched.
    """
    import tensorflow as tf

    base = tf.distribute.MultiWorkerMirroredStrategy

    class KerasMultiWorkerMirroredStrategy(base):
        def reduce(self, reduce_op, value, axis=None):
            def reduce_leaf(leaf):
                scalar = len(self.experimental_local_results(leaf)[0].shape) == 0
                return base.reduce(self, reduce_op, leaf, None if scalar else axis)

            return tf.nest.map_structure(reduce_leaf, value)

    return KerasMultiWorkerMirroredStrategy()


def _has_gpu() -> bool:
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    if keras.backend.backend() == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    return False


def setup_precision(mode: str) -> str:
    import keras

    policy = ("mixed_bfloat16" if _has_gpu() else "float32") if mode == "auto" else mode
    policy = "float32" if policy == "off" else policy
    keras.config.set_dtype_policy(policy)
    return policy


def seed_everything(seed: int, deterministic: bool = False) -> None:
    import keras

    keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def inference_model(model, family_config, distribution: Distribution):
    """The trained model itself, or under a TensorFlow strategy a copy built outside it with its weights.

    Evaluation, images and the bundle use it: no collective operations, so the chief can do them alone.
    """
    if distribution.name in ("none", "data_parallel"):
        return model
    from models.presets import build_model

    copy = build_model(family_config, "edges" in model.output_names)
    copy.set_weights(model.get_weights())
    return copy
