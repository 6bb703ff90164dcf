"""The settings of ``python -m pipeline.infer`` and what a run returns.

``InferConfig`` (YAML: ``configs/infer/*.yaml``; ``--set key=value``) gathers the settings of every step of
an inference run (``pipeline.windows``, ``pipeline.input_correction``, ``pipeline.calibration``,
``pipeline.stitching``, ``pipeline.qc``, ``pipeline.refine``) with the outputs and the optional MLflow
logging (``tracking:``, the ``pipeline.tracking.TrackingSettings`` of training and evaluation too);
``InferResult`` is what ``pipeline.infer.infer`` and ``merge`` return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from core.config import load_config
from pipeline.calibration import CalibrationConfig
from pipeline.input_correction import InputCorrectionConfig
from pipeline.qc import QCConfig
from pipeline.refine import RefineConfig
from pipeline.refine.config import (
    INFER_PRIOR_WEIGHT,
    INFER_REGION_FRACTION,
    INFER_REGION_PRIOR_WEIGHT,
)
from pipeline.stitching import StitchingConfig
from pipeline.tracking import TrackingSettings
from pipeline.windows import LineConfig, RegridConfig, WindowConfig


@dataclass(frozen=True)
class OutputConfig:
    """Which files are written besides ``section.h5``.

    Attributes:
        segy: the SEG-Y velocity section (and the edge section when the model has an edge head).
        png: PNG previews of the sections and the QC plot.
        keep_window_files: keep ``OUT/.work`` (per-window predictions and QC) after the merge.
        preview_max_columns: previews show at most this many columns (decimated).
    """

    segy: bool = True
    png: bool = True
    keep_window_files: bool = False
    preview_max_columns: int = 2000


@dataclass(frozen=True)
class InferConfig:
    """Settings of ``python -m pipeline.infer`` (YAML: ``configs/infer/*.yaml``; ``--set key=value``).

    Attributes:
        batch_size: windows read, calibrated and predicted together (bounds memory).
        mirror_average: predict every window also mirrored left to right and average the two sections
            (``ModelBundle.predict``; twice the network's time, which is small beside QC and refinement): 1.5-2.6 %
            lower MAE for the general models in the leave-family-out benchmark, on the families they were trained
            on as on held-out ones (docs/training.md, "Mirror averaging"); on lines from elsewhere (`benchmarks.inference
            --foreign --mirror-average`) 4.1 % and 1.5 % lower for the general models (OpenFWI and wide window)
            on families they never saw, no change for the FlatVel-A model. ``auto`` (the default): on when the
            model's geometry mirrors onto itself, else off with a log line; ``true`` refuses a model whose
            geometry does not; ``false`` predicts each window once (the recorded inference benchmarks set it).
        truth: a true velocity section for velocity errors: SEG-Y (one trace per lateral position) or
            ``.npy``/``.npz``/HDF5 ``(depth, x)`` m/s (``pipeline.section.ArrayTruth``).
        progress_interval_s: seconds between progress lines when stderr is not a terminal.
        input_correction: polarity, delay and phase of the survey's wavelet estimated from the data and
            undone before prediction (``pipeline.input_correction``).
        refine: physics refinement of each window's prediction (``--refine N``; ``pipeline.refine``), with
            its region stage on (``region_fraction`` 0.95, ``prior_weight`` 2, ``region_prior_weight`` 0.05:
            the start is the network's prediction).
        tracking: the optional MLflow run of the inference (``pipeline.tracking.TrackingSettings``, as in
            training and evaluation: ``enabled`` (``--mlflow``), ``tracking_uri``, ``experiment``,
            ``run_name``; default off, experiment ``inference``, run ``infer-<output folder>``). The
            ``mlflow:`` section of earlier versions is read with a warning.
        line, regrid, windows, calibration, stitching, qc, outputs: see each dataclass.
    """

    MOVED_KEYS: ClassVar[dict[str, str]] = {"mlflow": "tracking"}

    batch_size: int = 8
    mirror_average: bool | Literal["auto"] = "auto"
    truth: Path | None = None
    progress_interval_s: float = 10.0
    line: LineConfig = LineConfig()
    regrid: RegridConfig = RegridConfig()
    windows: WindowConfig = WindowConfig()
    input_correction: InputCorrectionConfig = InputCorrectionConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    stitching: StitchingConfig = StitchingConfig()
    qc: QCConfig = QCConfig()
    refine: RefineConfig = RefineConfig(
        region_fraction=INFER_REGION_FRACTION,
        prior_weight=INFER_PRIOR_WEIGHT,
        region_prior_weight=INFER_REGION_PRIOR_WEIGHT,
    )
    outputs: OutputConfig = OutputConfig()
    # Inference logs only when asked (--mlflow), to an experiment of its own.
    tracking: TrackingSettings = TrackingSettings(enabled=False, experiment="inference")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1. Received: {self.batch_size}")


@dataclass
class InferResult:
    """What ``infer`` did and where the outputs are."""

    out_dir: Path
    num_windows: int
    processed: int
    skipped: int
    merged: bool
    section_path: Path | None = None
    files: list[Path] = field(default_factory=list)
    qc_summary: dict[str, float] = field(default_factory=dict)
    section_errors: dict[str, float] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    mlflow_run_id: str | None = None


def load_infer_config(
    files: Sequence[str | Path] = (), overrides: Sequence[str] = (), values: dict[str, Any] | None = None
) -> InferConfig:
    """``InferConfig`` from the defaults, YAML ``files`` and ``--set`` ``overrides`` (``core.config``)."""
    return load_config(InferConfig, files=files, overrides=overrides, values=values)


__all__ = ["InferConfig", "InferResult", "OutputConfig", "load_infer_config"]
