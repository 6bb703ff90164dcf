"""Settings of ``data_prep.ingest`` (YAML: ``configs/data/ingest.yaml``; CLI: ``--set key=value``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from data_prep.dataset_writer import SplitConfig
from data_prep.edges import EdgeConfig
from data_prep.geometry import AcquisitionGeometry
from data_prep.normalization import NormalizationConfig


@dataclass(frozen=True)
class GroupingConfig:
    """How traces are grouped into samples (one velocity model each), shots and receivers.

    A sample's identity is its origin (the synthesize folder, or the file) and its id, so files that each
    number their samples (or shots) from 1 ingest together.

    Attributes:
        sample_key: how traces are grouped into samples:

            * ``"auto"`` (default): the model id in UnassignedInt1 (byte 233) when the file says it was
              written by this project (the textual-header signature, ``data_prep.segy_io.header_convention``,
              or a synthesize ``manifest.json`` that lists it) and the id is non-zero in every trace; else
              ``shots_per_sample`` when it is set; else the file is refused with the choices below. Bytes
              233-240 of other files are not trusted: SEG-Y rev 2 keeps a header name there.
            * ``"shots"``: every ``shots_per_sample`` consecutive shots form a sample (id = first shot number).
            * ``"file"``: each file is one sample (id 1), whatever its shot numbers.
            * a trace-header field name (e.g. ``"UnassignedInt1"``, ``"CDP"``): its value is the sample id.

            Which rule was used for each file is logged and recorded in the provenance origins.
        shots_per_sample: when > 0 and there is no trusted model id, every this many consecutive shots form
            a sample.
        shot_key: header field numbering the shots (sorted ascending within a sample).
        receiver_key: header field numbering the receivers within a shot (sorted ascending).
    """

    sample_key: str = "auto"
    shots_per_sample: int = 0
    shot_key: str = "FieldRecord"
    receiver_key: str = "TraceNumber"


@dataclass(frozen=True)
class RegularizationConfig:
    """Resampling inputs onto a target geometry (see ``data_prep.regularization``).

    Attributes:
        enabled: regularise inputs whose time axis or receivers differ; when False they are refused.
        sample_interval_s: target sample interval; None keeps the dataset's (or first input's).
        num_samples: target sample count; None keeps the dataset's (or first input's).
        receiver_x_m: target receiver x positions in metres; None keeps the dataset's (or first input's).
        start_time_s: when set (e.g. ``0.0``), every trace is shifted onto a time axis that starts this long
            after the shot, by whole samples of the target interval, zero-filling what was not recorded
            (a trace recorded from 50 ms gets 50 ms of zeros in front; one recorded from -100 ms loses its
            first 100 ms) and cutting at the target length. It applies whether or not ``enabled`` is set
            (it moves nothing but the time origin). None (default) keeps the recorded start time
            (DelayRecordingTime, byte 109), which must then be the same for every trace of the dataset.
    """

    enabled: bool = False
    sample_interval_s: float | None = None
    num_samples: int | None = None
    receiver_x_m: tuple[float, ...] | None = None
    start_time_s: float | None = None


@dataclass(frozen=True)
class IngestConfig:
    """Settings of ``ingest`` (YAML: ``configs/data/ingest.yaml``; CLI: ``--set key=value``).

    Attributes:
        require_velocity: every sample needs a velocity model (a training dataset); False builds an
            unlabelled dataset and ignores velocity inputs.
        grouping: how traces map to samples, shots and receivers.
        splits: split fractions and seed.
        normalization: statistics convention (OpenFWI by default).
        edges: how edge labels are computed from the velocity models.
        regularization: resampling onto a target geometry.
        nonfinite: ``"error"`` refuses NaN/Inf samples; ``"zero"`` replaces them with 0 and warns.
        sample_interval_us: sample interval to assume when no header gives one (µs).
        grid_spacing_m: velocity grid spacing for ``.npy`` velocity models (SEG-Y velocity files carry it).
        fallback_geometry: positions to assume when the SEG-Y headers carry no coordinates (repair, warned).
        family: velocity-model family recorded for inputs that do not name one (files outside a synthesize
            folder); None records "unknown". Synthesize folders record the family of their manifest.
        max_position_deviation_m: refuse a sample whose shots or receivers lie farther than this from the
            dataset's nominal positions (metres). None (default) accepts any positions inside the velocity
            grid: each sample's are stored with it and the largest deviation is logged.
        block_bytes: velocity models and edges are written, and input files closed, every this many bytes of
            samples (the memory bound; seismic itself is streamed one sample at a time).
        compression: HDF5 compression of seismic/velocity ("none" is the fast default; see NOTES).
        progress: show progress bars.
    """

    require_velocity: bool = True
    grouping: GroupingConfig = GroupingConfig()
    splits: SplitConfig = SplitConfig()
    normalization: NormalizationConfig = NormalizationConfig()
    edges: EdgeConfig = EdgeConfig()
    regularization: RegularizationConfig = RegularizationConfig()
    nonfinite: Literal["error", "zero"] = "error"
    sample_interval_us: float | None = None
    grid_spacing_m: float | None = None
    fallback_geometry: AcquisitionGeometry | None = None
    family: str | None = None
    max_position_deviation_m: float | None = None
    block_bytes: int = 64 * 2**20
    compression: Literal["none", "gzip", "lzf"] = "none"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.block_bytes < 1:
            raise ValueError(f"block_bytes must be positive. Received: {self.block_bytes}")
        if self.max_position_deviation_m is not None and not self.max_position_deviation_m >= 0:
            raise ValueError(
                f"max_position_deviation_m must be >= 0 metres or null. Received: {self.max_position_deviation_m}"
            )
