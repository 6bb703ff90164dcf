"""``python -m pipeline.train``: train a model on an HDF5 dataset, evaluate it, log and register it in MLflow.

Pipeline position: after ``data_prep.ingest`` (or ``data_prep.openfwi``); its outputs are an MLflow run
(config, per-epoch metrics, images, system metrics, dataset lineage), a model bundle
(``outputs/<run_id>/bundle``, see ``pipeline.bundle``) and a registered pyfunc model version (alias
``champion`` for the best by validation SSIM), which ``pipeline.evaluate`` and ``pipeline.infer`` use.

With no arguments it runs the embedded default: if the default dataset is absent it synthesizes and ingests
it (cached under ``data/``), trains the dual U-Net, evaluates it on the test split, logs to ``./mlflow.db``,
registers the model and prints the metrics table and the line that opens the dashboard::

    python -m pipeline.train
    python -m pipeline.train --data data/cfb.h5 --model inversionnet --set epochs=50 --set max_total_time_s=null
    python -m pipeline.train --config configs/train/openfwi.yaml --tracking-uri http://127.0.0.1:5000
    python -m pipeline.train --resume              # continue the latest interrupted run (same MLflow run)
    python -m pipeline.train --compare             # every model on the same data: see pipeline.compare

Training runs one ``fit`` call per epoch after fixing the epoch's sample order (``SeismicDataset.set_epoch``),
so the data order depends on the seed and the epoch only. Every epoch ends with a checkpoint (weights,
optimizer state, epoch, early-stopping state, RNG state, metric history, MLflow run id) written atomically;
``--resume`` restores it, continues the same MLflow run and logs only the epochs MLflow does not have yet.

Scaling: ``tf.distribute.MirroredStrategy`` when several GPUs are visible to TensorFlow,
``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names several workers, and ``keras.distribution.
DataParallel`` (after ``jax.distributed.initialize`` for several processes) under ``KERAS_BACKEND=jax``.
``batch_size`` is the global batch. Mixed precision (``mixed_bfloat16``) is used on GPUs.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.atomic import write_text_atomic
from core.cli import add_common_arguments, make_parser, run_main
from core.config import (
    CONFIG_DIR,
    add_config_arguments,
    config_hash,
    from_dict,
    load_config,
    to_dict,
    to_yaml,
)
from core.errors import ConfigError, UserError
from data_prep.synthesize import SourceVariationConfig
from models.losses import LossConfig
from pipeline.feeding import AugmentationConfig
from pipeline.lineage import dataset_info

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
CHECKPOINT_FORMAT = "seisinvert-checkpoint"


# ----------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DefaultDatasetConfig:
    """The dataset synthesized and ingested when no ``data.path`` is given (cached, reused next time).

    Attributes:
        family: velocity-model family (``data_prep.velocity_models``).
        families: a mix instead of one family: ``count`` samples of each of these families (``family`` is
            then ignored); the splits are drawn per family, so every family is in every split.
        count: number of samples (split 80/10/10), per family for a mix.
        seed: synthesis seed.
        directory: cache folder; the dataset is ``<directory>/default-<family>-<count>-seed<seed>.h5``
            (a mix or source variety: ``default-mix<N>-<hash>-<count>-seed<seed>.h5``, the hash naming the
            families and source settings).
        keep_segy: keep the intermediate SEG-Y files (deleted after ingest by default).
        source: per-sample source variety of the synthesis (``data_prep.synthesize.SourceVariationConfig``:
            peak frequency, delay, phase, free surface); off by default.
    """

    family: str = "flatvel-a"
    families: tuple[str, ...] = ()
    count: int = 1000
    seed: int = 0
    directory: str = "data"
    keep_segy: bool = False
    source: SourceVariationConfig = SourceVariationConfig()

    @property
    def family_list(self) -> tuple[str, ...]:
        return tuple(self.families) or (self.family,)


@dataclass(frozen=True)
class DataConfig:
    """What to train on and how to feed it (YAML: ``data``).

    Attributes:
        path: the dataset (``data_prep.ingest`` output); None uses the default dataset.
        default: recipe of the default dataset.
        families: train, validate and test on these families only (empty: all).
        max_train_samples, max_val_samples, max_test_samples: use only the first N samples of a split.
        train_metric_samples: after every epoch the training metrics (MAE, SSIM, edge F1...) are measured
            on the first N training samples in inference mode, as the validation metrics are (0: only the
            training losses, which are running means over the epoch's batches).
        workers, use_multiprocessing, max_queue_size: ``keras.utils.PyDataset`` parallelism.
        cache: hold each split in memory after its first pass (true/false); ``auto`` does when the split takes
            at most a quarter of the available memory and the workers are threads, otherwise batches stream
            from the file.
        augmentation: training-time augmentation of raw seismic.
    """

    path: str | None = None
    default: DefaultDatasetConfig = DefaultDatasetConfig()
    families: tuple[str, ...] = ()
    max_train_samples: int | None = None
    max_val_samples: int | None = None
    max_test_samples: int | None = None
    train_metric_samples: int = 64
    workers: int = 1
    use_multiprocessing: bool = False
    max_queue_size: int = 8
    cache: bool | Literal["auto"] = "auto"
    augmentation: AugmentationConfig = AugmentationConfig()


@dataclass(frozen=True)
class OptimizerConfig:
    """Optimizer and learning-rate schedule: linear warm-up, then cosine decay to a floor.

    Attributes:
        name: ``adamw`` or ``adam``.
        learning_rate: peak learning rate.
        weight_decay: AdamW's decoupled weight decay.
        warmup_epochs: length of the linear warm-up from 0, in epochs (fractions allowed).
        final_learning_rate_fraction: the cosine ends at ``learning_rate * final_learning_rate_fraction``.
        clipnorm: gradient-norm clipping (None: off).
    """

    name: Literal["adamw", "adam"] = "adamw"
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    final_learning_rate_fraction: float = 0.02
    clipnorm: float | None = None


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Stop when ``val_loss`` has not improved by ``min_delta`` for ``patience`` epochs (0: off).

    The weights of the best epoch are restored at the end either way.
    """

    patience: int = 0
    min_delta: float = 0.0


@dataclass(frozen=True)
class CurriculumStage:
    """One stage of a DD-Net-style curriculum (easy to hard).

    Attributes:
        epochs: length of the stage.
        families: train on these families only (empty: all).
        active_shots: keep this many evenly spread shots, zero the others (None: all).
    """

    epochs: int
    families: tuple[str, ...] = ()
    active_shots: int | None = None


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow settings (YAML: ``tracking``).

    Attributes:
        enabled: log to MLflow at all.
        tracking_uri: store; None uses ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db`` in the working dir.
        experiment: experiment name.
        run_name: display name of the run (default: model and dataset).
        register: register the final model in the model registry.
        registered_model_name: registry name (default ``seisinvert-<family>``, e.g. ``seisinvert-unet``).
        system_metrics: log CPU/memory (and GPU) usage.
        system_metrics_interval_s: sampling interval of the system metrics.
        image_samples: fixed validation samples drawn every ``image_every_epochs`` epochs.
        image_every_epochs: interval of the image series (0: no images).
    """

    enabled: bool = True
    tracking_uri: str | None = None
    experiment: str = "seisinvert"
    run_name: str | None = None
    register: bool = True
    registered_model_name: str | None = None
    system_metrics: bool = True
    system_metrics_interval_s: float = 2.0
    image_samples: int = 3
    image_every_epochs: int = 1


@dataclass(frozen=True)
class RuntimeConfig:
    """How training runs (YAML: ``runtime``).

    Attributes:
        seed: seeds the model initialisation, the data order and the augmentation.
        jit_compile: XLA-compile the train step (Keras' ``auto`` disables XLA on CPU TensorFlow; XLA is much
            faster here).
        mixed_precision: ``auto`` (``mixed_bfloat16`` on GPUs, off on CPUs), ``off``, ``mixed_bfloat16``,
            ``mixed_float16``.
        distribution: ``auto`` (several GPUs or TF_CONFIG / JAX processes: data parallel), ``off``,
            ``mirrored`` (TensorFlow, every local GPU or else every logical CPU), ``multi_worker`` (TensorFlow,
            TF_CONFIG), ``data_parallel`` (JAX, every device).
        deterministic: TensorFlow op determinism (bitwise-repeatable runs on CPU, a little slower).
        checkpoint_dir: checkpoints go to ``<checkpoint_dir>/<run_id>/``.
        output_dir: the bundle and reports go to ``<output_dir>/<run_id>/``.
        progress_interval_s: a progress line every this many seconds within an epoch (0: epoch lines only).
    """

    seed: int = 0
    jit_compile: bool = True
    mixed_precision: Literal["auto", "off", "mixed_bfloat16", "mixed_float16"] = "auto"
    distribution: Literal["auto", "off", "mirrored", "multi_worker", "data_parallel"] = "auto"
    deterministic: bool = False
    checkpoint_dir: str = "checkpoints"
    output_dir: str = "outputs"
    progress_interval_s: float = 30.0


@dataclass(frozen=True)
class TrainConfig:
    """Settings of ``python -m pipeline.train`` (YAML files under ``configs/train/``).

    The defaults are the embedded default run (``configs/train/default.yaml`` writes them out): the dual
    U-Net at half width with time pooled by 4 (``unet-small``) on 1000 synthesized FlatVel-A samples, L1 +
    0.5 (1 - SSIM) on velocity, batches of 8, AdamW at 1e-3 with one epoch of warm-up and a cosine decay, at
    most 40 epochs, and the whole run (data included) kept within 14 minutes by ``max_total_time_s``.

    Attributes:
        model: family name (``unet``, ``inversionnet``, ``lstm``, ``transformer``), a preset of
            ``MODEL_PRESETS`` (``unet-small``), the name of a file in ``configs/model/`` (``gru``,
            ``unet_shared_decoder``...) or a YAML path.
        model_options: overrides of the model config's keys (``encoder_filters``...); ``edge_head: false``
            drops the U-Net's edge decoder. ``seismic_shape`` and ``grid_shape`` always come from the data.
        loss: losses and their weights (``models.losses.LossConfig``).
        batch_size: global batch size.
        epochs: number of epochs (the cosine schedule spans them).
        max_train_time_s: wall-clock budget of the training loop (None: no limit); the cosine schedule is
            fitted to the number of epochs the budget allows, measured on the second epoch.
        max_total_time_s: wall-clock budget of the whole run, data preparation and the final evaluation
            included (None: no limit); what is left after the data goes to training, less a reserve for the
            evaluation.
        optimizer, early_stopping, curriculum: see their classes; ``curriculum`` stages run first, in order,
            and the remaining epochs use every family and shot.
        evaluate_test: evaluate the final model on the test split.
        init_from: fine-tune: start from this model (``models:/name@alias``, ``models:/name/version``,
            ``runs:/...`` or a bundle folder) instead of random weights. Its architecture, weights,
            normalisation statistics and geometry are used (``model`` and ``model_options`` then do not
            apply); the data must have its geometry (``pipeline.fine_tuning``).
        freeze: with ``init_from``: a part of the parent kept fixed (``encoder``: the shared encoder, so only
            the decoders are trained).
        data, tracking, runtime: see their classes.
    """

    model: str = "unet-small"
    model_options: dict[str, Any] = field(default_factory=dict)
    loss: LossConfig = LossConfig(velocity_ssim_weight=0.5)
    batch_size: int = 8
    epochs: int = 40
    max_train_time_s: float | None = None
    max_total_time_s: float | None = 840.0
    optimizer: OptimizerConfig = OptimizerConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    curriculum: tuple[CurriculumStage, ...] = ()
    evaluate_test: bool = True
    init_from: str | None = None
    freeze: Literal["encoder"] | None = None
    data: DataConfig = DataConfig()
    tracking: TrackingConfig = TrackingConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    def __post_init__(self) -> None:
        if self.freeze and not self.init_from:
            raise ValueError(
                f"freeze={self.freeze!r} needs a parent model to freeze: add --init-from MODEL (or drop --freeze)."
            )
        if self.batch_size < 1 or self.epochs < 1:
            raise ValueError(
                f"batch_size and epochs must be at least 1. Received: {self.batch_size}, {self.epochs}"
            )
        if sum(stage.epochs for stage in self.curriculum) > self.epochs:
            raise ValueError(
                "The curriculum stages hold more epochs than `epochs`: raise epochs or shorten them."
            )


@dataclass
class TrainResult:
    """What ``train`` returns.

    Attributes:
        run_id: the MLflow run (None without tracking).
        history: one dict of logs per completed epoch.
        best_epoch: epoch whose weights were kept (lowest ``val_loss``).
        test_metrics: metrics on the test split (empty when not evaluated).
        test_per_family: per-family test metrics (datasets with several families).
        bundle_dir: the saved bundle.
        model_uri: ``runs:/<run_id>/model`` (None without tracking).
        registered_model, model_version, champion: registry outcome.
        wall_time_s: duration of ``train`` (data preparation included).
        dataset_path: the dataset used.
        stopped_early: early stopping or the time budget ended training.
        summary_path: ``<output_dir>/<run_id>/run_summary.json`` (``run_summary``), also an MLflow artifact.
    """

    run_id: str | None
    history: list[dict[str, float]]
    best_epoch: int
    test_metrics: dict[str, float]
    test_per_family: dict[str, dict[str, float]]
    bundle_dir: Path | None
    model_uri: str | None
    registered_model: str | None
    model_version: str | None
    champion: bool
    wall_time_s: float
    dataset_path: Path
    stopped_early: bool = False
    model: Any = None
    distribution: str = "none"
    replicas: int = 1
    summary_path: Path | None = None


# ----------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------


def default_dataset_path(config: DefaultDatasetConfig) -> Path:
    if not config.families and not config.source.enabled:
        return Path(config.directory) / f"default-{config.family}-{config.count}-seed{config.seed}.h5"
    import hashlib

    recipe = json.dumps(
        {"families": list(config.family_list), "source": to_dict(config.source)}, sort_keys=True
    )
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:8]
    name = f"mix{len(config.family_list)}" if len(config.family_list) > 1 else config.family_list[0]
    return Path(config.directory) / f"default-{name}-{digest}-{config.count}-seed{config.seed}.h5"


def ensure_default_dataset(config: DefaultDatasetConfig, echo=print) -> Path:
    """The default dataset's path; synthesizes and ingests it first when it does not exist yet."""
    path = default_dataset_path(config)
    if path.is_file():
        echo(f"data: using the cached default dataset {path}")
        return path
    from data_prep.ingest import IngestConfig, ingest
    from data_prep.synthesize import SynthesizeConfig, synthesize

    interactive = sys.stderr.isatty()
    segy_dir = path.with_name(path.stem + "-segy")
    started = time.monotonic()
    families = config.family_list
    what = (
        f"{config.count} {families[0]}"
        if len(families) == 1
        else f"{config.count} x {len(families)} families'"
    )
    echo(f"data: synthesizing {what} models (OpenFWI geometry) into {segy_dir} ...")
    # The data stage logs a line per input file at INFO: the default run prints its own summary instead.
    data_logger = logging.getLogger("data_prep")
    level = data_logger.level
    data_logger.setLevel(logging.WARNING)
    try:
        # One engine call per 50-model chunk: ~10-20 % faster than the data stage's default of 8 models.
        folders = [segy_dir / family for family in families] if len(families) > 1 else [segy_dir]
        for family, folder in zip(families, folders, strict=True):
            synthesize(
                SynthesizeConfig(
                    family=family, count=config.count, seed=config.seed, batch_size=50, source=config.source
                ),
                folder,
                progress=interactive,
            )
        echo(f"data: synthesized in {time.monotonic() - started:.0f} s; ingesting into {path} ...")
        ingest(folders, path, IngestConfig(progress=interactive), overwrite=True)
    finally:
        data_logger.setLevel(level)
    if not config.keep_segy:
        shutil.rmtree(segy_dir, ignore_errors=True)
    echo(f"data: default dataset ready in {time.monotonic() - started:.0f} s: {path}")
    return path


def _engine_settings(path: Path) -> dict[str, Any]:
    from data_prep import schema

    with schema.open_dataset(path) as h5:
        return schema.read_engine_settings(h5)


def _training_amplitudes(dataset, max_samples: int = 128) -> dict[str, float]:
    from pipeline.bundle import amplitude_statistics

    rng = np.random.default_rng(0)
    chosen = np.sort(rng.choice(dataset.indices, size=min(max_samples, len(dataset.indices)), replace=False))
    seismic, _, _ = dataset.read(chosen)
    return amplitude_statistics(seismic)


# ----------------------------------------------------------------------------------------------------------
# Model, optimizer, schedule
# ----------------------------------------------------------------------------------------------------------


#: Named model presets of this module: ``name -> (family, options)``. ``unet-small`` is the default run's
#: model: the dual U-Net with half the channels of ``configs/model/unet.yaml`` at every level, time averaged
#: over 4 samples (4 ms: OpenFWI's 15 Hz data keeps its whole band) and one front-end stage instead of
#: three. On 2 CPU cores a train step of 8 samples takes 0.25 s against 0.38 s with the full front end at
#: the same width (measured in one run), and seeing more samples matters more than width for a CPU budget of
#: minutes.
MODEL_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "unet-small": (
        "unet",
        {
            "time_pooling": 4,
            "front_end_filters": [16],
            "front_end_kernel_sizes": [7],
            "encoder_filters": [8, 16, 32, 64, 128],
        },
    ),
    # unet-small with one decoder for both tasks: the edge head is a 1×1 convolution on the velocity decoder's
    # last features (decoder_mode "shared"), so the edge task costs almost no compute; see docs/models.md.
    "unet-small-shared": (
        "unet",
        {
            "time_pooling": 4,
            "front_end_filters": [16],
            "front_end_kernel_sizes": [7],
            "encoder_filters": [8, 16, 32, 64, 128],
            "decoder_mode": "shared",
        },
    ),
}


def resolve_model_config(config: TrainConfig, seismic_shape: Sequence[int], grid_shape: Sequence[int]):
    """The family config dataclass for ``config.model`` + ``model_options`` on the dataset's shapes.

    Returns:
        ``(family config dataclass, edge_head)``; ``edge_head`` is False when the options drop it.
    """
    import models
    from models.registry import load_model_config

    spec = config.model
    options = dict(config.model_options)
    edge_head = options.pop("edge_head", None)
    if spec in models.MODELS:
        data: dict[str, Any] = {"family": spec}
    elif spec in MODEL_PRESETS:
        family, preset = MODEL_PRESETS[spec]
        data = {"family": family, **preset}
    else:
        candidate = CONFIG_DIR / "model" / f"{spec}.yaml"
        path = candidate if candidate.is_file() else Path(spec)
        if not path.is_file():
            raise ConfigError(
                f"Unknown model {spec!r}: use a family ({', '.join(models.MODELS)}), a preset "
                f"({', '.join(MODEL_PRESETS)}), a file name in "
                f"{CONFIG_DIR / 'model'} ({', '.join(sorted(p.stem for p in (CONFIG_DIR / 'model').glob('*.yaml')))}) "
                "or a YAML path."
            )
        data = to_dict(load_model_config(path))
    data.update(options)
    data["seismic_shape"] = list(seismic_shape)
    data["grid_shape"] = list(grid_shape)
    family_config = load_model_config(data)
    fields = {f.name for f in dataclasses.fields(family_config)}
    if edge_head is not None and "edge_head" in fields:
        family_config = dataclasses.replace(family_config, edge_head=bool(edge_head))
        edge_head = None
    return family_config, (True if edge_head is None else bool(edge_head))


def build_model(family_config, edge_head: bool = True):
    """Builds the model; ``edge_head=False`` keeps only the velocity output of a model that has both."""
    import keras

    import models

    model = models.build(config=family_config)
    if not edge_head and "edges" in model.output_names:
        # The same functional graph up to the velocity output: the edge decoder is not part of it at all.
        velocity = model.get_layer("velocity").output
        model = keras.Model(model.inputs[0], {"velocity": velocity}, name=f"{model.name}_no_edges")
    return model


@functools.cache
def _warmup_cosine_class():
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="seisinvert")
    class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
        """Linear warm-up from ``peak * initial_fraction`` to ``peak`` over ``warmup_steps``, then cosine decay
        to ``peak * final_fraction`` over ``decay_steps``.

        ``decay_steps`` lives in a variable, so a time budget can shorten the schedule after training started
        (``set_decay_steps``) without re-tracing the TensorFlow train step (JAX steps are re-traced).
        """

        def __init__(
            self,
            peak,
            warmup_steps,
            decay_steps,
            final_fraction=0.02,
            initial_fraction=1e-3,
            name="warmup_cosine",
        ):
            self.peak = float(peak)
            self.warmup_steps = int(warmup_steps)
            self.final_fraction = float(final_fraction)
            self.initial_fraction = float(initial_fraction)
            self.name = name
            self._decay_steps = keras.Variable(
                float(max(1, decay_steps)), trainable=False, dtype="float32", name="learning_rate_decay_steps"
            )

        @property
        def decay_steps(self) -> int:
            return int(round(float(ops.convert_to_numpy(self._decay_steps.value))))

        def set_decay_steps(self, steps: int) -> None:
            self._decay_steps.assign(float(max(1, steps)))

        def __call__(self, step):
            step = ops.cast(step, "float32")
            warmup = float(max(1, self.warmup_steps))
            warm = self.peak * (self.initial_fraction + (1.0 - self.initial_fraction) * step / warmup)
            progress = ops.clip((step - float(self.warmup_steps)) / self._decay_steps, 0.0, 1.0)
            cosine = self.final_fraction + (1.0 - self.final_fraction) * 0.5 * (
                1.0 + ops.cos(math.pi * progress)
            )
            decayed = self.peak * cosine
            if self.warmup_steps == 0:
                return decayed
            return ops.where(step < float(self.warmup_steps), warm, decayed)

        def get_config(self):
            return {
                "peak": self.peak,
                "warmup_steps": self.warmup_steps,
                "decay_steps": self.decay_steps,
                "final_fraction": self.final_fraction,
                "initial_fraction": self.initial_fraction,
                "name": self.name,
            }

    return WarmupCosineDecay


def learning_rate_schedule(config: OptimizerConfig, steps_per_epoch: int, epochs: int):
    """Linear warm-up over ``warmup_epochs`` then cosine decay to ``final_learning_rate_fraction`` at the end
    of ``epochs`` (a ``WarmupCosineDecay``)."""
    total = max(1, steps_per_epoch * epochs)
    warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), total - 1)
    return _warmup_cosine_class()(
        config.learning_rate, warmup, total - warmup, config.final_learning_rate_fraction
    )


def build_optimizer(config: OptimizerConfig, schedule):
    import keras

    kwargs = {"learning_rate": schedule}
    if config.clipnorm is not None:
        kwargs["clipnorm"] = config.clipnorm
    if config.name == "adamw":
        return keras.optimizers.AdamW(weight_decay=config.weight_decay, **kwargs)
    return keras.optimizers.Adam(**kwargs)


def current_learning_rate(optimizer) -> float:
    """The learning rate the optimizer uses at its current iteration."""
    import keras

    value = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(value))


# ----------------------------------------------------------------------------------------------------------
# Distribution and precision
# ----------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------------------


def _rng_state() -> dict[str, Any]:
    numpy_state = np.random.get_state()  # noqa: NPY002 - the global state is what gets restored
    python_state = random.getstate()
    return {
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *map(_plain, numpy_state[2:])],
        "python": [python_state[0], list(python_state[1]), python_state[2]],
    }


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _restore_rng_state(state: Mapping[str, Any]) -> None:
    if "numpy" in state:
        name, keys, position, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))  # noqa: NPY002
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))


class Checkpointer:
    """Writes and reads ``<root>/<run_id>/``: ``state.json`` plus the weight/optimizer files it names.

    Each epoch writes ``epoch-NNNN.weights.h5`` and ``epoch-NNNN.optimizer.npz``, then replaces
    ``state.json`` atomically, then deletes the previous epoch's files: a kill at any moment leaves a
    ``state.json`` that names complete files. ``best.weights.h5`` holds the lowest-``val_loss`` weights.
    """

    def __init__(self, directory: str | Path, enabled: bool = True) -> None:
        self.directory = Path(directory)
        self.enabled = enabled

    def save(self, model, epoch: int, state: dict[str, Any], best: bool) -> None:
        if not self.enabled:
            return
        from core.atomic import atomic_output

        self.directory.mkdir(parents=True, exist_ok=True)
        weights = self.directory / f"epoch-{epoch:04d}.weights.h5"
        optimizer = self.directory / f"epoch-{epoch:04d}.optimizer.npz"
        with atomic_output(weights) as temporary:
            model.save_weights(_with_suffix(temporary, ".weights.h5"))
            _with_suffix(temporary, ".weights.h5").rename(temporary)
        with atomic_output(optimizer) as temporary:
            values = {f"v{i:05d}": np.asarray(v) for i, v in enumerate(model.optimizer.variables)}
            with open(temporary, "wb") as handle:
                np.savez(handle, **values)
        if best:
            with atomic_output(self.directory / "best.weights.h5") as temporary:
                model.save_weights(_with_suffix(temporary, ".weights.h5"))
                _with_suffix(temporary, ".weights.h5").rename(temporary)
        state = {**state, "weights": weights.name, "optimizer": optimizer.name, "epoch": epoch}
        write_text_atomic(self.directory / STATE_FILE, json.dumps(state, indent=1, default=_plain) + "\n")
        for old in self.directory.glob("epoch-*"):
            if not old.name.startswith(f"epoch-{epoch:04d}."):
                old.unlink(missing_ok=True)

    def load_state(self) -> dict[str, Any]:
        path = self.directory / STATE_FILE
        if not path.is_file():
            raise UserError(f"No checkpoint in {self.directory}: nothing to resume.")
        state = json.loads(path.read_text())
        if state.get("format") != CHECKPOINT_FORMAT:
            raise UserError(f"{path} is not a seisinvert training checkpoint.")
        return state

    def restore(self, model, state: Mapping[str, Any]) -> None:
        """Loads the checkpoint's weights and optimizer variables into a compiled model."""
        optimizer = model.optimizer
        optimizer.build(model.trainable_variables)  # before load_weights, which then restores it too
        model.load_weights(self.directory / state["weights"])
        with np.load(self.directory / state["optimizer"]) as values:
            stored = [values[key] for key in sorted(values.files)]
        variables = optimizer.variables
        if len(stored) != len(variables):
            raise UserError(
                f"The checkpoint's optimizer state has {len(stored)} variables but the model's optimizer "
                f"{len(variables)}: the configuration changed since the checkpoint."
            )
        for variable, value in zip(variables, stored, strict=True):
            variable.assign(value)

    def restore_best(self, model) -> bool:
        path = self.directory / "best.weights.h5"
        if path.is_file():
            model.load_weights(path)
            return True
        return False

    def mark_finished(self, state: dict[str, Any]) -> None:
        if self.enabled and (self.directory / STATE_FILE).is_file():
            write_text_atomic(
                self.directory / STATE_FILE,
                json.dumps({**state, "finished": True}, indent=1, default=_plain) + "\n",
            )


def _with_suffix(path: Path, suffix: str) -> Path:
    # Keras insists on the .weights.h5 suffix; write to a sibling with it, then rename.
    return path.with_name(path.name + suffix)


def find_checkpoint(checkpoint_dir: str | Path, run_id: str | None) -> Path:
    """The checkpoint folder of ``run_id``, or of the latest unfinished run when ``run_id`` is None."""
    root = Path(checkpoint_dir)
    if run_id:
        directory = root / run_id
        if not (directory / STATE_FILE).is_file():
            raise UserError(
                f"No checkpoint for run {run_id} under {root}/: pass --set runtime.checkpoint_dir=... if the "
                "run wrote its checkpoints elsewhere."
            )
        return directory
    candidates = []
    for state_path in root.glob(f"*/{STATE_FILE}"):
        try:
            state = json.loads(state_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if state.get("format") == CHECKPOINT_FORMAT and not state.get("finished"):
            candidates.append((state_path.stat().st_mtime, state_path.parent))
    if not candidates:
        raise UserError(
            f"No unfinished training run to resume under {root}/. Start one with python -m pipeline.train."
        )
    return max(candidates)[1]


# ----------------------------------------------------------------------------------------------------------
# Progress output
# ----------------------------------------------------------------------------------------------------------


def _progress_callback(interval_s: float, epoch: int, epochs: int, steps: int, batch_size: int, echo):
    import keras

    class ProgressLines(keras.callbacks.Callback):
        """Plain periodic lines within an epoch (readable in logs; no carriage returns)."""

        def on_epoch_begin(self, epoch_index, logs=None):
            self.started = time.monotonic()
            self.last = self.started
            self.first_step_s = None

        def on_train_batch_end(self, batch, logs=None):
            now = time.monotonic()
            if self.first_step_s is None:
                # The first step of a fit call includes tracing/compilation: not a speed.
                self.first_step_s = now - self.started
                self.last = now
                return
            if interval_s > 0 and now - self.last >= interval_s and batch + 1 < steps:
                self.last = now
                done = batch + 1
                rate = batch * batch_size / max(1e-9, now - self.started - self.first_step_s)
                remaining = (steps - done) * batch_size / rate if rate > 0 else float("nan")
                loss = (logs or {}).get("loss")
                echo(
                    f"  epoch {epoch + 1}/{epochs}  step {done}/{steps}  loss {float(loss):.4f}  "
                    f"{rate:.1f} samples/s  epoch ends in ~{remaining:.0f} s"
                )

    return ProgressLines()


def _epoch_line(epoch: int, epochs: int, logs: Mapping[str, float], seconds: float) -> str:
    parts = [f"epoch {epoch + 1}/{epochs}"]
    for key, label in (
        ("loss", "loss"),
        ("val_loss", "val_loss"),
        ("val_velocity_mae", "val_MAE"),
        ("val_velocity_ssim", "val_SSIM"),
        ("val_velocity_mae_mps", "val_MAE_m/s"),
        ("val_edges_f1", "val_edgeF1"),
        ("learning_rate", "lr"),
    ):
        if key in logs:
            value = logs[key]
            parts.append(
                f"{label} {value:.3g}"
                if key == "learning_rate"
                else f"{label} {value:.1f}"
                if key.endswith("_mps")
                else f"{label} {value:.4f}"
            )
    parts.append(f"{seconds:.0f} s")
    return "  ".join(parts)


# ----------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------


def _stage_for(config: TrainConfig, epoch: int) -> CurriculumStage | None:
    start = 0
    for stage in config.curriculum:
        if epoch < start + stage.epochs:
            return stage
        start += stage.epochs
    return None


def train(
    config: TrainConfig,
    resume: str | bool | None = None,
    echo=print,
    parent_run_id: str | None = None,
    extra_tags: Mapping[str, str] | None = None,
) -> TrainResult:
    """Trains ``config.model`` on the dataset, evaluates, logs to MLflow and registers the model.

    Args:
        config: the resolved configuration.
        resume: a run id (or True for the latest unfinished run) to continue from its checkpoint; the
            configuration is then the checkpoint's (``config`` only supplies the checkpoint folder).
        echo: where progress lines go (``print`` by default; a no-op silences training).
        parent_run_id: log as a child run of this MLflow run (model comparison).
        extra_tags: tags of a new run.

    Returns:
        A ``TrainResult``.
    """
    started = time.monotonic()
    state: dict[str, Any] | None = None
    checkpoint_root = Path(config.runtime.checkpoint_dir)
    if resume:
        directory = find_checkpoint(checkpoint_root, resume if isinstance(resume, str) else None)
        state = Checkpointer(directory).load_state()
        config = from_dict(TrainConfig, state["config"])
        echo(f"resuming run {state['run_id']} after epoch {state['epoch'] + 1} from {directory}")

    import models  # noqa: F401 - registers custom objects
    from models.losses import build_losses
    from models.metrics import build_metrics
    from pipeline import tracking
    from pipeline.feeding import SeismicDataset

    distribution = setup_distribution(config.runtime.distribution)
    policy = setup_precision(config.runtime.mixed_precision)
    seed_everything(config.runtime.seed, config.runtime.deterministic)

    # --- data ---------------------------------------------------------------------------------------------
    if state is not None:
        dataset_path = Path(state["dataset_path"])
    elif config.data.path:
        dataset_path = Path(config.data.path)
        if not dataset_path.is_file():
            raise UserError(
                f"Dataset {dataset_path} does not exist: build it with data_prep.ingest, or leave "
                "--data out to use the default dataset."
            )
    else:
        dataset_path = ensure_default_dataset(config.data.default, echo)
    info = dataset_info(dataset_path)
    seismic_shape, grid_shape = info["seismic_shape"], info["grid_shape"]
    if not grid_shape:
        raise UserError(f"{dataset_path} holds no velocity models: training needs a labelled dataset.")

    parent = None
    if config.init_from:
        from data_prep import schema
        from pipeline import fine_tuning

        parent = fine_tuning.load_parent(config.init_from)
        with schema.open_dataset(dataset_path) as h5:
            fine_tuning.check_geometry(parent, schema.read_geometry(h5), dataset_path)
        family_config, edge_head = fine_tuning.parent_architecture(parent)
    else:
        family_config, edge_head = resolve_model_config(config, seismic_shape, grid_shape)
    with distribution.scope():
        model = build_model(family_config, edge_head)
        if parent is not None:
            fine_tuning.copy_weights(parent.bundle.model, model, parent.address)
            if config.freeze:
                frozen = fine_tuning.freeze(model, config.freeze)
                echo(f"fine-tuning: {len(frozen)} {config.freeze} layers of {config.init_from} frozen")
    if parent is not None:
        echo(
            f"fine-tuning {config.init_from} ({family_config.family}, trained on "
            f"{', '.join((parent.bundle.info.get('dataset') or {}).get('families') or ['?'])}): its architecture, "
            "weights and normalisation statistics"
        )
    outputs = tuple(name for name in ("velocity", "edges") if name in model.output_names)

    multi_worker = distribution.name == "multi_worker_mirrored"
    if multi_worker and config.batch_size % distribution.workers:
        raise UserError(
            f"batch_size {config.batch_size} is not a multiple of the {distribution.workers} workers: every worker "
            "reads an equal part of each global batch."
        )
    shard = (distribution.worker_index, distribution.workers) if multi_worker else (0, 1)
    common = {
        "batch_size": config.batch_size,
        "outputs": outputs,
        "families": config.data.families or None,
        "workers": config.data.workers,
        "use_multiprocessing": config.data.use_multiprocessing,
        "max_queue_size": config.data.max_queue_size,
        "cache": config.data.cache,
        # A fine-tuned model keeps seeing inputs on its parent's scale, and carries those numbers onwards.
        "stats": parent.bundle.stats if parent is not None else None,
    }

    def training_data(stage: CurriculumStage | None) -> SeismicDataset:
        families = (stage.families if stage and stage.families else None) or common["families"]
        return SeismicDataset(
            dataset_path,
            "train",
            shuffle=True,
            seed=config.runtime.seed,
            drop_remainder=True,
            max_samples=config.data.max_train_samples,
            augmentation=config.data.augmentation,
            active_shots=stage.active_shots if stage else None,
            shard=shard,
            **{**common, "families": families},
        )

    stage = _stage_for(config, state["epoch"] + 1 if state else 0)
    train_data = training_data(stage)
    # Data parallel: every replica needs an equal part of every batch (and every worker the same number of
    # steps), so a last partial validation batch is left out there.
    val_data = SeismicDataset(
        dataset_path,
        "val",
        max_samples=config.data.max_val_samples,
        shard=shard,
        drop_remainder=distribution.replicas > 1,
        **common,
    )
    stats = val_data.stats
    steps_per_epoch = len(training_data(None)) if config.curriculum else len(train_data)
    marks = {"data_ready": time.monotonic()}  # the run summary's phases (run_summary.json)

    # --- compile ------------------------------------------------------------------------------------------
    planned_epochs = int(state.get("planned_epochs", config.epochs)) if state else config.epochs
    schedule = learning_rate_schedule(config.optimizer, steps_per_epoch, planned_epochs)
    losses, loss_weights = build_losses(config.loss, outputs)
    with distribution.scope():
        # The train step computes the losses only; the metrics are measured after each epoch by a model that
        # shares every weight (``validation_model``), on the validation split and on a fixed training subset.
        model.compile(
            optimizer=build_optimizer(config.optimizer, schedule),
            loss=losses,
            loss_weights=loss_weights,
            jit_compile=config.runtime.jit_compile,
        )
        evaluator = validation_model(
            model,
            losses,
            loss_weights,
            build_metrics(outputs, normalization=stats),
            config.runtime.jit_compile,
        )
    metric_data = None
    if config.data.train_metric_samples > 0:
        metric_data = SeismicDataset(
            dataset_path,
            "train",
            max_samples=min(config.data.train_metric_samples, train_data.num_samples),
            shard=shard,
            drop_remainder=distribution.replicas > 1,
            **common,
        )

    # --- tracking -----------------------------------------------------------------------------------------
    tracking_uri = (
        state["tracking_uri"] if state else tracking.resolve_tracking_uri(config.tracking.tracking_uri)
    )
    run_name = config.tracking.run_name or f"{config.model} on {dataset_path.stem}"
    tracker = tracking.RunTracker(
        tracking_uri,
        config.tracking.experiment,
        run_name=run_name,
        run_id=state["run_id"] if state else None,
        parent_run_id=parent_run_id,
        system_metrics=config.tracking.system_metrics,
        system_metrics_interval_s=config.tracking.system_metrics_interval_s,
        enabled=config.tracking.enabled and distribution.is_chief,
        tags={
            **(extra_tags or {}),
            "seisinvert.run_type": "training",
            "seisinvert.model": family_config.family if parent is not None else config.model,
            **(fine_tuning.lineage_tags(parent, config.freeze) if parent is not None else {}),
        },
    )
    tracker.start()
    run_id = (
        tracker.run_id if tracker.enabled else (state["run_id"] if state else f"local-{int(time.time())}")
    )
    checkpointer = Checkpointer(checkpoint_root / str(run_id), enabled=distribution.is_chief)
    try:
        result = _train_loop(
            config,
            state,
            model,
            evaluator,
            train_data,
            val_data,
            metric_data,
            training_data,
            stats,
            info,
            dataset_path,
            family_config,
            tracker,
            checkpointer,
            run_id,
            tracking_uri,
            distribution,
            policy,
            steps_per_epoch,
            planned_epochs,
            schedule,
            started,
            echo,
            marks,
        )
    except KeyboardInterrupt:
        tracker.end("KILLED")
        raise
    except BaseException:
        tracker.end("FAILED")
        raise
    tracker.end("FINISHED")
    if tracker.enabled and config.tracking.enabled:
        echo(f"MLflow run {run_id} in {tracking_uri}")
        echo(f"dashboard: {tracking.dashboard_command(tracking_uri)}")
    return result


def _train_loop(
    config: TrainConfig,
    state,
    model,
    evaluator,
    train_data,
    val_data,
    metric_data,
    training_data,
    stats,
    info,
    dataset_path: Path,
    family_config,
    tracker,
    checkpointer: Checkpointer,
    run_id: str,
    tracking_uri: str,
    distribution,
    policy: str,
    steps_per_epoch: int,
    planned_epochs: int,
    schedule,
    started: float,
    echo,
    marks: dict[str, float] | None = None,
) -> TrainResult:
    import keras

    from pipeline import tracking
    from pipeline.evaluate import evaluate_model, metrics_table

    history: list[dict[str, float]] = list(state["history"]) if state else []
    best = dict(state["best"]) if state else {"epoch": -1, "val_loss": math.inf}
    wait = int(state.get("wait", 0)) if state else 0
    start_epoch = int(state["epoch"]) + 1 if state else 0
    config_dict = to_dict(config)

    if state is None:
        tracker.log_config(config_dict, to_yaml(config))
        tracker.log_params(
            {
                "model.family": family_config.family,
                "model.parameters": int(model.count_params()),
                "runtime.dtype_policy": policy,
                # What runtime.distribution (a config param, "auto" by default) resolved to on this machine.
                "runtime.strategy": distribution.name,
                "runtime.replicas": distribution.replicas,
                "data.steps_per_epoch": steps_per_epoch,
            }
        )
        tracker.log_text(json.dumps(to_dict(family_config), indent=2), "model_config.json")
        tracker.log_dataset(info)
        tracker.set_tags(
            {
                "seisinvert.checkpoint_dir": str(checkpointer.directory.resolve()),
                "seisinvert.dataset": info["path"],
            }
        )
        echo(
            f"model {config.model}: {model.count_params():,} parameters; data {dataset_path} "
            f"({info['split_sizes']['train']} train / {info['split_sizes']['val']} val / "
            f"{info['split_sizes']['test']} test samples; {steps_per_epoch} steps of {config.batch_size} per epoch)"
        )
    else:
        checkpointer.restore(model, state)
        _restore_rng_state(state.get("rng", {}))
        # Epochs the checkpoint has but MLflow does not (killed between the two writes).
        logged = tracker.logged_steps("loss")
        for epoch, logs in enumerate(history):
            if epoch not in logged:
                tracker.log_metrics(logs, step=epoch)

    image_indices = val_data.indices[: max(0, config.tracking.image_samples)]
    stopped_early = False
    epoch = start_epoch
    current_stage = _stage_for(config, start_epoch)
    loop_started = time.monotonic()
    budget = _training_budget(config, started, loop_started) if state is None else None
    epoch_durations: list[float] = []
    epoch_started = loop_started
    budget_cut_announced = False  # the one line that says the budget cut the configured epochs
    if budget is not None:
        echo(f"time budget: {budget:.0f} s for training and evaluation")
    while epoch < planned_epochs:
        stage = _stage_for(config, epoch)
        if stage != current_stage:
            train_data = training_data(stage)
            current_stage = stage
            if stage is None:
                echo(f"curriculum: every family and shot from epoch {epoch + 1}")
        if stage is not None and (epoch == start_epoch or stage != _stage_for(config, epoch - 1)):
            echo(
                f"curriculum stage: epochs {epoch + 1}.. families {list(stage.families) or 'all'}, "
                f"shots {stage.active_shots or 'all'}"
            )
        keras.utils.set_random_seed(config.runtime.seed * 100_003 + epoch)
        train_data.set_epoch(epoch)
        if epoch > start_epoch + 1:  # the previous epoch, complete, without compilation
            epoch_durations.append(time.monotonic() - epoch_started)
        epoch_started = time.monotonic()
        progress = _progress_callback(
            config.runtime.progress_interval_s,
            epoch,
            planned_epochs,
            len(train_data),
            config.batch_size,
            echo,
        )
        multi_worker = distribution.name == "multi_worker_mirrored"
        fit = model.fit(
            train_data.as_tf_dataset() if multi_worker else train_data,
            initial_epoch=epoch,
            epochs=epoch + 1,
            verbose=0,
            callbacks=[progress],
        )
        logs = {key: float(values[-1]) for key, values in fit.history.items()}
        if metric_data is not None:
            measured = evaluator.evaluate(
                metric_data.as_tf_dataset() if multi_worker else metric_data, verbose=0, return_dict=True
            )
            logs.update({key: float(value) for key, value in measured.items() if not key.endswith("loss")})
        measured = evaluator.evaluate(
            val_data.as_tf_dataset() if multi_worker else val_data, verbose=0, return_dict=True
        )
        logs.update({f"val_{key}": float(value) for key, value in measured.items()})
        seconds = time.monotonic() - epoch_started
        logs["learning_rate"] = current_learning_rate(model.optimizer)
        logs["epoch_time_s"] = seconds
        logs["train_samples_per_s"] = train_data.num_samples / seconds
        history.append(logs)

        improved = logs.get("val_loss", math.inf) < best["val_loss"] - config.early_stopping.min_delta
        if improved:
            best = {
                "epoch": epoch,
                "val_loss": logs["val_loss"],
                "val_velocity_ssim": logs.get("val_velocity_ssim"),
            }
            wait = 0
        else:
            wait += 1

        # Time budget: the second epoch (no compilation in it) gives the first estimate of an epoch's duration
        # and the schedule is fitted to the epochs the budget leaves room for. Every later epoch re-estimates
        # it from the last complete epochs (the median of three, logging and checkpoint included: one epoch
        # slowed by another job on the machine must not cut the plan) and, when fewer epochs fit than
        # planned, shortens the schedule, so that the cosine reaches its floor when the budget ends instead
        # of being cut off part-way. The plan only ever shrinks: growing it would raise the learning rate.
        if budget is not None and state is None and epoch > start_epoch:
            if epoch == start_epoch + 1:
                steady = time.monotonic() - epoch_started
                reserve = _evaluation_reserve_s(steady, train_data.num_samples, info["split_sizes"]["test"])
                budget = budget - reserve
            else:
                steady = float(np.median(epoch_durations[-3:]))
            fitting = epochs_within_budget(
                planned_epochs, epoch, budget - (time.monotonic() - loop_started), steady
            )
            if fitting < planned_epochs:
                if not budget_cut_announced:
                    echo(budget_cut_line(config, fitting))
                    budget_cut_announced = True
                planned_epochs = fitting
                schedule.set_decay_steps(steps_per_epoch * planned_epochs - schedule.warmup_steps)
                if keras.backend.backend() != "tensorflow":
                    model.make_train_function(force=True)  # JAX traces the schedule's variables as constants
                if epoch > start_epoch + 1:
                    echo(
                        f"time budget: epochs take ~{steady:.0f} s now; the schedule ends after epoch "
                        f"{planned_epochs}"
                    )
            if epoch == start_epoch + 1:
                echo(
                    f"time budget: {planned_epochs} epochs of ~{steady:.0f} s fit in {budget:.0f} s of training "
                    f"({reserve:.0f} s kept for evaluation)"
                )

        checkpoint_state = {
            "format": CHECKPOINT_FORMAT,
            "run_id": run_id,
            "tracking_uri": tracking_uri,
            "experiment": config.tracking.experiment,
            "dataset_path": str(dataset_path.resolve()),
            "config": config_dict,
            "history": history,
            "best": best,
            "wait": wait,
            "planned_epochs": planned_epochs,
            "rng": _rng_state(),
            "finished": False,
        }
        checkpointer.save(model, epoch, checkpoint_state, best=improved)
        tracker.log_metrics(logs, step=epoch)
        every = config.tracking.image_every_epochs
        if (
            tracker.enabled
            and every
            and len(image_indices)
            and ((epoch + 1) % every == 0 or epoch + 1 == planned_epochs)
        ):
            inference = _inference_model(model, family_config, distribution)
            tracker.log_image(
                _validation_image(inference, val_data, image_indices, stats, epoch), "validation", epoch
            )
        echo(_epoch_line(epoch, planned_epochs, logs, seconds))

        epoch += 1
        if config.early_stopping.patience and wait >= config.early_stopping.patience:
            echo(
                f"early stopping: val_loss has not improved for {wait} epochs (best: epoch {best['epoch'] + 1})"
            )
            stopped_early = True
            break
        if budget is not None and epoch < planned_epochs:
            # The first epoch's duration includes the compilation and says little about the next one (which
            # the second epoch measures): after it, stop only when the budget is already spent.
            last = 0.0 if epoch == start_epoch + 1 else time.monotonic() - epoch_started
            if time.monotonic() - loop_started + 0.9 * last > budget:
                echo(f"time budget reached after epoch {epoch}")
                if not budget_cut_announced:
                    echo(budget_cut_line(config, epoch))
                    budget_cut_announced = True
                stopped_early = True
                break

    marks = {**(marks or {}), "loop_started": loop_started, "loop_ended": time.monotonic()}
    if history and best["epoch"] >= 0 and best["epoch"] != len(history) - 1:
        if checkpointer.restore_best(model):
            echo(f"restored the weights of epoch {best['epoch'] + 1} (lowest val_loss)")
    best_epoch = best["epoch"] if best["epoch"] >= 0 else len(history) - 1
    # Evaluation, images and the bundle use a plain copy outside the distribution strategy: no collective
    # operations, so the chief can do them alone.
    inference = _inference_model(model, family_config, distribution)

    # --- test evaluation -------------------------------------------------------------------------------------
    test_metrics: dict[str, float] = {}
    per_family: dict[str, dict[str, float]] = {}
    from pipeline.feeding import SeismicDataset

    if config.evaluate_test and distribution.is_chief:
        test_data = SeismicDataset(
            dataset_path,
            "test",
            batch_size=config.batch_size,
            outputs=val_data.outputs,
            families=config.data.families or None,
            max_samples=config.data.max_test_samples,
            stats=stats,
        )
        evaluation = evaluate_model(inference, test_data, stats)
        test_metrics, per_family = evaluation.metrics, evaluation.per_family
        tracker.log_metrics({f"test_{key}": value for key, value in test_metrics.items()})
        for family, values in per_family.items():
            tracker.log_metrics({f"test_{family}_{key}": value for key, value in values.items()})
        from pipeline.evaluate import per_sample_csv, worst_samples_figure

        tracker.log_text(per_sample_csv(evaluation.per_sample), "evaluation/per_sample_test.csv")
        tracker.log_image_file(
            worst_samples_figure(evaluation, stats, 4, val_data.geometry.grid_spacing_m),
            "evaluation/worst_test.png",
        )
    marks["evaluated"] = time.monotonic()
    best_logs = history[best_epoch] if history else {}
    tracker.log_metrics(
        {"best_epoch": best_epoch, **{f"best_{k}": v for k, v in best_logs.items() if k.startswith("val_")}}
    )

    # --- bundle, pyfunc, registry ------------------------------------------------------------------------------
    bundle_dir = None
    outcome = {"model_uri": None, "registered_model": None, "version": None, "champion": False}
    if distribution.is_chief:
        from pipeline.bundle import save_bundle

        bundle_dir = save_bundle(
            Path(config.runtime.output_dir) / str(run_id) / "bundle",
            inference,
            stats=stats,
            geometry=val_data.geometry,
            engine_settings=_engine_settings(dataset_path),
            dataset_info=info,
            amplitude_stats=_training_amplitudes(train_data),
            family=family_config.family,
            extra={
                "mlflow_run_id": run_id if tracker.enabled else None,
                "model_config": to_dict(family_config),
                "edge_head": "edges" in model.output_names,
                "training": {
                    "best_epoch": best_epoch,
                    "epochs_run": len(history),
                    "val_metrics": {k: v for k, v in best_logs.items() if k.startswith("val_")},
                    "test_metrics": test_metrics,
                    "config_hash": config_hash(config),
                },
            },
        )
        registered_name = None
        if config.tracking.register:
            registered_name = config.tracking.registered_model_name or f"seisinvert-{family_config.family}"
        outcome = tracker.log_bundle_model(bundle_dir, registered_name, best_logs.get("val_velocity_ssim"))
        if test_metrics:
            echo(
                metrics_table(
                    {"test": test_metrics, **{f"test · {f}": m for f, m in per_family.items()}},
                    f"Test metrics ({len(evaluation.per_sample)} samples; MAE/RMSE on OpenFWI's [-1, 1] "
                    "scale, SSIM on [0, 1], m/s after denormalisation):",
                )
            )
        echo(f"bundle: {bundle_dir}")
        if outcome.get("registered_model"):
            echo(
                f"registered model: models:/{outcome['registered_model']}/{outcome['version']}"
                + (f" (alias {tracking.CHAMPION_ALIAS})" if outcome.get("champion") else "")
            )
    wall = time.monotonic() - started
    tracker.log_metrics({"wall_time_s": wall})
    summary_path = None
    if distribution.is_chief:
        summary = run_summary(
            config,
            run_id=run_id if tracker.enabled else None,
            dataset_path=dataset_path,
            history=history,
            best_epoch=best_epoch,
            planned_epochs=planned_epochs,
            stopped_early=stopped_early,
            budget_cut=budget_cut_announced,
            test_metrics=test_metrics,
            outcome=outcome,
            started=started,
            marks={**marks, "finished": started + wall},
        )
        summary_path = Path(config.runtime.output_dir) / str(run_id) / RUN_SUMMARY_FILE
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(summary_path, json.dumps(summary, indent=2) + "\n")
        tracker.log_text(json.dumps(summary, indent=2), RUN_SUMMARY_FILE)
        echo(f"run summary: {summary_path}")
    if history:
        checkpointer.mark_finished(
            {**checkpointer.load_state(), "finished": True} if checkpointer.enabled else {}
        )
    return TrainResult(
        run_id=run_id if tracker.enabled else None,
        history=history,
        best_epoch=best_epoch,
        test_metrics=test_metrics,
        test_per_family=per_family,
        bundle_dir=bundle_dir,
        model_uri=outcome.get("model_uri"),
        registered_model=outcome.get("registered_model"),
        model_version=outcome.get("version"),
        champion=bool(outcome.get("champion")),
        wall_time_s=wall,
        dataset_path=dataset_path,
        stopped_early=stopped_early,
        model=inference,
        distribution=distribution.name,
        replicas=distribution.replicas,
        summary_path=summary_path,
    )


#: The machine-readable summary of a run, written beside its bundle and logged as an MLflow artifact.
RUN_SUMMARY_FILE = "run_summary.json"


def run_summary(
    config: TrainConfig,
    *,
    run_id: str | None,
    dataset_path: Path,
    history: Sequence[Mapping[str, float]],
    best_epoch: int,
    planned_epochs: int,
    stopped_early: bool,
    budget_cut: bool,
    test_metrics: Mapping[str, float],
    outcome: Mapping[str, Any],
    started: float,
    marks: Mapping[str, float],
) -> dict[str, Any]:
    """What a run did, in seconds and metrics, for scripts (``benchmarks/default_run.py``) rather than eyes.

    Phases (seconds, wall clock): ``data`` (synthesis/ingest of the default dataset if needed, opening the
    splits), ``setup`` (model build, compile call, MLflow run start), ``first_epoch`` (XLA compilation and the
    training split's first read happen in it), ``epochs`` (the whole epoch loop: steps, per-epoch metrics,
    checkpoints, images), ``evaluation`` (best weights restored, the test split evaluated), ``bundle_and_registry``
    (bundle saved, model logged and registered), ``total``. ``compilation_estimate`` is the first epoch's
    duration less the median of the others (None with one epoch).
    """
    epoch_times = [float(logs.get("epoch_time_s", float("nan"))) for logs in history]
    steady = float(np.median(epoch_times[1:])) if len(epoch_times) > 1 else None

    def between(first: str, last: str) -> float | None:
        return float(marks[last] - marks[first]) if first in marks and last in marks else None

    return {
        "format": "seisinvert-run-summary",
        "format_version": 1,
        "run_id": run_id,
        "model": config.model,
        "dataset": str(dataset_path),
        "epochs": {
            "configured": config.epochs,
            "planned": planned_epochs,
            "run": len(history),
            "best": best_epoch + 1 if history else None,
            "stopped_early": stopped_early,
            "budget_cut": budget_cut,
        },
        "budget_s": {
            "max_total_time_s": config.max_total_time_s,
            "max_train_time_s": config.max_train_time_s,
        },
        "phases_s": {
            "data": float(marks["data_ready"] - started) if "data_ready" in marks else None,
            "setup": between("data_ready", "loop_started"),
            "first_epoch": epoch_times[0] if epoch_times else None,
            "steady_epoch_median": steady,
            "compilation_estimate": (epoch_times[0] - steady) if steady is not None else None,
            "epochs": between("loop_started", "loop_ended"),
            "evaluation": between("loop_ended", "evaluated"),
            "bundle_and_registry": between("evaluated", "finished"),
            "total": float(marks["finished"] - started) if "finished" in marks else None,
        },
        "epoch_times_s": epoch_times,
        "test_metrics": {key: float(value) for key, value in test_metrics.items()},
        "registered_model": outcome.get("registered_model"),
        "model_version": outcome.get("version"),
        "champion": bool(outcome.get("champion")),
        "model_uri": outcome.get("model_uri"),
    }


def validation_model(model, losses, loss_weights, metrics, jit_compile: bool):
    """A compiled model that shares every weight of ``model`` and computes its losses and metrics.

    The trained model is compiled with its losses only, so the train step spends nothing on metrics; this
    one measures the metrics (``evaluate``) on held-out data after each epoch. Build it in the scope that
    built ``model``.
    """
    import keras

    inputs = keras.Input(shape=tuple(model.inputs[0].shape[1:]), name="seismic")
    evaluator = keras.Model(inputs, model(inputs), name=f"{model.name}_validation")
    evaluator.compile(loss=losses, loss_weights=loss_weights, metrics=metrics, jit_compile=jit_compile)
    return evaluator


def _inference_model(model, family_config, distribution: Distribution):
    """The trained model itself, or under a TensorFlow strategy a copy built outside it with its weights."""
    if distribution.name in ("none", "data_parallel"):
        return model
    copy = build_model(family_config, "edges" in model.output_names)
    copy.set_weights(model.get_weights())
    return copy


def _training_budget(config: TrainConfig, started: float, loop_started: float) -> float | None:
    """Seconds the training loop may take (evaluation reserve included), or None without a budget."""
    limits = []
    if config.max_train_time_s:
        limits.append(float(config.max_train_time_s))
    if config.max_total_time_s:
        limits.append(float(config.max_total_time_s) - (loop_started - started))
    return max(0.0, min(limits)) if limits else None


def budget_cut_line(config: TrainConfig, epochs: int) -> str:
    """The one line a run prints when its time budget cuts the configured ``epochs`` to ``epochs``: which
    setting did it, and how to get the full schedule."""
    settings = [
        f"{name}={float(value):g} s"
        for name, value in (
            ("max_total_time_s", config.max_total_time_s),
            ("max_train_time_s", config.max_train_time_s),
        )
        if value
    ]
    nulls = " ".join(f"--set {setting.split('=')[0]}=null" for setting in settings)
    return (
        f"time budget: {' and '.join(settings)} cut{'s' if len(settings) == 1 else ''} training to {epochs} of the "
        f"{config.epochs} configured epochs; for the full schedule: {nulls}"
    )


def epochs_within_budget(planned: int, epoch: int, seconds_left: float, epoch_s: float) -> int:
    """How many epochs (0-based ``epoch`` just finished) the plan should hold: the finished ones plus as
    many as ``seconds_left`` holds at ``epoch_s`` each, never more than ``planned`` and never fewer than
    ``epoch + 1``."""
    affordable = epoch + 1 + int(max(0.0, seconds_left) // max(epoch_s, 1e-9))
    return max(epoch + 1, min(planned, affordable))


def _evaluation_reserve_s(epoch_s: float, train_samples: int, test_samples: int) -> float:
    """Time to keep for the test evaluation, the bundle and the model logging after the last epoch."""
    per_sample = epoch_s / max(1, train_samples)
    return 30.0 + test_samples * per_sample  # inference is ~1/3 of a training step; x3 for margin


def _validation_image(model, val_data, indices, stats, epoch: int) -> np.ndarray:
    from data_prep.normalization import VelocityNormalization, denormalize_velocity, normalize_seismic
    from pipeline.evaluate import per_sample_metrics
    from pipeline.figures import prediction_grid

    seismic, velocity_mps, edges = val_data.read(indices)
    outputs = model.predict_on_batch(normalize_seismic(seismic, stats))
    velocity = VelocityNormalization.coerce(stats)
    predicted_mps = denormalize_velocity(np.asarray(outputs["velocity"]), velocity)
    from data_prep.normalization import normalize_velocity

    scores = per_sample_metrics(
        {"velocity": normalize_velocity(velocity_mps, stats)},
        {"velocity": np.asarray(outputs["velocity"])},
        stats,
    )
    titles = [f"val #{int(i)}\nSSIM {s:.3f}" for i, s in zip(indices, scores["ssim"], strict=True)]
    return prediction_grid(
        velocity_mps,
        predicted_mps,
        edges if "edges" in outputs else None,
        np.asarray(outputs["edges"]) if "edges" in outputs else None,
        velocity_range_mps=(velocity.min_mps, velocity.max_mps),
        grid_spacing_m=val_data.geometry.grid_spacing_m,
        titles=titles,
        suptitle=f"epoch {epoch + 1}",
    )


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "python -m pipeline.train",
        "Train a velocity-inversion model, evaluate it on the test split, log it to MLflow and register it "
        "(alias champion for the best by validation SSIM). With no arguments: the embedded default (the "
        "default dataset synthesized and ingested under data/ if absent, the dual U-Net, ./mlflow.db).",
        examples=[
            "python -m pipeline.train",
            "python -m pipeline.train --config configs/train/quick.yaml   # a smoke run of a few minutes",
            "python -m pipeline.train --data data/cfb.h5 --model inversionnet --set epochs=50 --set max_total_time_s=null",
            "python -m pipeline.train --config configs/train/openfwi.yaml --tracking-uri http://127.0.0.1:5000",
            "python -m pipeline.train --resume   # continue the latest interrupted run (same MLflow run)",
            "python -m pipeline.train --init-from models:/seisinvert-general@champion --data mine.h5 --freeze encoder",
            "python -m pipeline.train --compare --data data/cfb.h5   # every model under one budget",
        ],
    )
    parser.add_argument(
        "--model", help="unet | inversionnet | lstm | transformer | a configs/model name | a YAML path"
    )
    parser.add_argument("--data", help="training dataset (.h5); default: the cached default dataset")
    parser.add_argument(
        "--tracking-uri", help="MLflow store (default: sqlite:///mlflow.db in the working directory)"
    )
    parser.add_argument("--experiment", help="MLflow experiment name")
    parser.add_argument("--epochs", type=int, help="number of epochs")
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="RUN_ID",
        help="continue an interrupted run (the latest unfinished one without RUN_ID) in the same MLflow run",
    )
    parser.add_argument(
        "--init-from",
        metavar="MODEL",
        help="fine-tune this model (models:/NAME@ALIAS, models:/NAME/VERSION, runs:/... or a bundle folder): its "
        "architecture, weights, normalisation and geometry",
    )
    parser.add_argument(
        "--freeze",
        choices=("encoder",),
        help="with --init-from: keep the parent's encoder fixed and train the decoders only",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="train every model family on the same data as child runs (configs/experiment/compare.yaml)",
    )
    add_config_arguments(parser)
    add_common_arguments(parser)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values: dict[str, Any] = {
        "model": args.model,
        "epochs": args.epochs,
        "init_from": args.init_from,
        "freeze": args.freeze,
        "data": {"path": args.data},
        "tracking": {"tracking_uri": args.tracking_uri, "experiment": args.experiment},
    }
    return load_config(TrainConfig, files=args.config, values=values, overrides=args.overrides)


def _main(args: argparse.Namespace) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    echo = (lambda *_: None) if args.quiet else (lambda text: print(text, flush=True))
    if args.compare:
        from pipeline.compare import compare_from_args

        compare_from_args(args, echo)
        return 0
    config = config_from_args(args)
    if args.resume:
        # The checkpoint holds the configuration; only the checkpoint folder comes from the command line.
        train(config, resume=args.resume, echo=echo)
        return 0
    train(config, echo=echo)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
