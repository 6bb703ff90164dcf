"""The settings of a training run (``python -m pipeline.train``; YAML files under ``configs/train/``) and what
``train`` returns.

Pipeline position: ``pipeline.train`` loads a ``TrainConfig`` (``core.config.load_config``: dataclass defaults,
YAML files, ``--set`` overrides); ``pipeline.training.trainer.train`` runs it and returns a ``TrainResult``;
``pipeline.compare`` shares one ``TrainConfig`` between the models it compares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from data_prep.normalization import OPENFWI_VELOCITY_RANGE_MPS
from data_prep.synthesize import SourceVariationConfig
from data_prep.velocity_models.trend_variation import TrendVariationConfig
from data_prep.velocity_models.water_layer import WaterLayerConfig
from models.losses import LossConfig
from pipeline.feeding import AugmentationConfig
from pipeline.tracking import TrackingSettings


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
            (a mix, source, trend or water variety, or a window other than OpenFWI's:
            ``default-<mix<N> or family>-<hash>-<count>-seed<seed>.h5``, the hash naming the families and those
            settings).
        keep_segy: keep the intermediate SEG-Y files (deleted after ingest by default).
        source: per-sample source variety of the synthesis (``data_prep.synthesize.SourceVariationConfig``:
            peak frequency, delay, phase, free surface); off by default.
        trend: per-sample tilt of the depth trend in the synthesis
            (``data_prep.velocity_models.trend_variation.TrendVariationConfig``); off by default.
        water: per-sample water column on top of the models in the synthesis, for marine surveys
            (``data_prep.velocity_models.water_layer.WaterLayerConfig``); off by default.
        width_cells: x cells of the grid (10 m each; depth stays OpenFWI's 70 rows, 1 s of record). 70 is
            OpenFWI's window (offsets up to 690 m); wider windows record longer offsets, which is what the
            deep part of a section needs (docs/training.md, "Longer offsets").
        num_sources: shots, evenly spread over the width (OpenFWI's 5 on 70 cells: x cells 0, 17, 34, 52, 69).
        velocity_range_mps: the velocities the ingest maps to [-1, 1] (``data_prep.normalization``): the range
            the model's bounded output can predict, and that ``velocity_scale`` augmentation keeps models in.
            OpenFWI's 1500-4500 m/s by default; a wider one (e.g. ``[1400, 5500]``) lets velocity scaling reach
            the rock velocities of salt and carbonates.
    """

    family: str = "flatvel-a"
    families: tuple[str, ...] = ()
    count: int = 1000
    seed: int = 0
    directory: str = "data"
    keep_segy: bool = False
    source: SourceVariationConfig = SourceVariationConfig()
    trend: TrendVariationConfig = TrendVariationConfig()
    water: WaterLayerConfig = WaterLayerConfig()
    width_cells: int = 70
    num_sources: int = 5
    velocity_range_mps: tuple[float, float] = OPENFWI_VELOCITY_RANGE_MPS

    def __post_init__(self) -> None:
        try:
            low, high = (float(value) for value in self.velocity_range_mps)
        except (TypeError, ValueError):  # not two numbers
            low = high = float("nan")
        if not 0 < low < high:
            raise ValueError(
                "data.default.velocity_range_mps must be [min, max] in m/s with 0 < min < max. "
                f"Received: {self.velocity_range_mps!r}"
            )
        object.__setattr__(self, "velocity_range_mps", (low, high))
        if not (isinstance(self.width_cells, int) and self.width_cells >= 8):
            raise ValueError(
                f"data.default.width_cells must be a whole number of cells >= 8. Received: {self.width_cells!r}"
            )
        if not (isinstance(self.num_sources, int) and 1 <= self.num_sources <= self.width_cells):
            raise ValueError(
                f"data.default.num_sources must be 1..width_cells ({self.width_cells}). "
                f"Received: {self.num_sources!r}"
            )

    @property
    def family_list(self) -> tuple[str, ...]:
        return tuple(self.families) or (self.family,)

    @property
    def openfwi_layout(self) -> bool:
        """Whether the geometry is OpenFWI's (70 x 70 cells, 5 shots)."""
        from data_prep.geometry import AcquisitionGeometry

        return self.geometry() == AcquisitionGeometry.openfwi()

    def geometry(self):
        """The acquisition geometry of the synthesis: OpenFWI's survey (depth rows 1, 10 m cells, 1 s at
        1 ms, 15 Hz) on ``width_cells`` columns with ``num_sources`` shots and a receiver on every column."""
        from data_prep.geometry import OPENFWI_DEPTH_CELL, AcquisitionGeometry

        return AcquisitionGeometry.surface_line(
            grid_shape=(70, self.width_cells),
            num_sources=self.num_sources,
            source_depth_cell=OPENFWI_DEPTH_CELL,
            receiver_depth_cell=OPENFWI_DEPTH_CELL,
        )


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
class TrackingConfig(TrackingSettings):
    """MLflow settings of training (YAML: ``tracking``): the keys every stage has (``enabled``,
    ``tracking_uri``, ``experiment``, ``run_name``: ``pipeline.tracking.TrackingSettings``; the run name
    defaults to model and dataset) and training's own.

    Attributes:
        register: register the final model in the model registry.
        registered_model_name: registry name (default ``seisinvert-<family>``, e.g. ``seisinvert-unet``).
        system_metrics: log CPU/memory (and GPU) usage.
        system_metrics_interval_s: sampling interval of the system metrics.
        image_samples: fixed validation samples drawn every ``image_every_epochs`` epochs.
        image_every_epochs: interval of the image series (0: no images).
    """

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
            ``models.presets.MODEL_PRESETS`` (``unet-small``), the name of a file in ``configs/model/`` (``gru``,
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


def stage_for(config: TrainConfig, epoch: int) -> CurriculumStage | None:
    """The curriculum stage of 0-based ``epoch`` (None once the stages are over)."""
    start = 0
    for stage in config.curriculum:
        if epoch < start + stage.epochs:
            return stage
        start += stage.epochs
    return None
