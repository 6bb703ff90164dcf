"""Synthetic surveys: velocity models from a family, acoustic modelling, SEG-Y files and a manifest.

First stage of the pipeline. ``synthesize(config, out_dir)`` draws velocity models from one of the
families in :mod:`data_prep.velocity_models`, simulates shot gathers with :mod:`data_prep.forward`
and writes, per chunk of models, a pair of real SEG-Y files (IEEE float, big-endian) through
:mod:`data_prep.segy_io`:

    DIR/{family}_shots_{first:06d}-{last:06d}.segy      shot gathers, traces ordered model, shot, receiver
    DIR/{family}_velocity_{first:06d}-{last:06d}.segy   the matching velocity models, one trace per x
    DIR/manifest.json                                   geometry, family, seed, engine settings, files

The manifest records every engine setting that determines the traces (``engine_settings``: wavelet, peak
frequency, Ricker delay, amplitude convention, stencil order, free surface, absorbing width, time step, ...,
from ``data_prep.forward.engine_settings``); ``data_prep.ingest`` copies it into the dataset's provenance.
The SEG-Y files carry the project's header signature (``data_prep.segy_io.SIGNATURE_LINE``), so ingest
trusts their model ids (byte 233); their textual header repeats the main engine settings for people.

``first``/``last`` are 0-based global model indices (inclusive). Model ``i`` depends only on
``(seed, i)``, chunk boundaries only on ``chunk_size``, and each chunk is simulated in the same batches
whoever computes it, so:

* the same seed gives the same bytes;
* ``--shard K/N`` writes chunks ``K-1, K-1+N, ...``: N machines of a job array generate one dataset
  together, and the union of their outputs equals the unsharded output file for file;
* memory is bounded by one chunk, whatever ``--count`` is;
* every file is written under a temporary name and renamed when complete, so a crash leaves nothing
  that looks finished, and a re-run skips the chunks that are already complete;
* ``--scheduler ADDRESS`` (or ``local:N``) simulates the chunks on a Dask cluster, a chunk per task, and
  writes them here in model order as they come back: the same bytes as without it (``core.distributed``,
  docs/scaling.md);
* ``manifest.json`` is written before the first chunk, so the folder always records the configuration its
  chunks were made with: a re-run with another seed, family, count, geometry or engine setting is refused
  (naming each difference) instead of mixing two datasets, and a folder holding chunk files but no
  manifest (a run of an earlier version that died) is refused unless ``--overwrite`` regenerates them.

Command line::

    python -m data_prep.synthesize --family flatvel-a --count 1000 --out data/flatvel-a --seed 7
    python -m data_prep.synthesize --family salt --count 30000 --out data/salt --shard 3/16
    python -m data_prep.synthesize --config configs/data/openfwi.yaml --set engine.spatial_order=8 ...
    python -m data_prep.synthesize --family flatvel-a --count 100000 --out data/fa --scheduler local:8
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import re
import signal
import sys
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from core import __version__
from core.atomic import Terminated, terminate_as_interrupt, write_text_atomic
from core.cli import add_common_arguments, make_parser, run_main
from core.config import add_config_arguments, load_config, to_dict
from core.distributed import add_scheduler_argument, connect, ordered_results
from core.errors import EXPECTED_ERRORS, UserError
from core.progress import Progress
from data_prep.forward import EngineConfig, engine_settings, resolved_concurrent_calls, simulate
from data_prep.geometry import AcquisitionGeometry
from data_prep.segy_io import HEADER_CONVENTION, write_shot_gathers, write_velocity_models
from data_prep.velocity_models import (
    FAMILY_NAMES,
    PRIOR_FAMILY,
    SECTION_FAMILY,
    family_parameters,
    generate_model,
)
from data_prep.velocity_models.trend_variation import TrendVariationConfig, tilt_trend
from data_prep.velocity_models.water_layer import WaterLayerConfig, add_water
from data_prep.wavelets import openfwi_ricker_delay_s, reshape_source

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "seisinvert-synthetic-survey"
MANIFEST_FORMAT_VERSION = 1


@dataclass(frozen=True)
class SourceVariationConfig:
    """Per-model source variety, so that a network trained on the data does not learn one wavelet.

    Each model draws its own Ricker peak frequency, extra delay (relative to OpenFWI's delay for that
    frequency), constant phase rotation and free-surface flag from ``(seed, model index)``. The engine runs
    once per batch with a reference Ricker at the highest frequency of the range, and each model's traces
    are reshaped to its own wavelet in the frequency domain (``data_prep.wavelets.reshape_source``: exact,
    since the wave equation is linear in its source). Models with a free surface are simulated in their own
    engine call. The draws are written next to each chunk (``{family}_sources_{first}-{last}.json``).

    Attributes:
        peak_frequency_hz: ``(low, high)`` Ricker peak frequency, Hz; ``None`` = the geometry's (no variety).
        delay_s: ``(low, high)`` extra delay of the wavelet peak, s (negative = earlier).
        phase_deg: ``(low, high)`` constant phase rotation, degrees (180 = reversed polarity).
        free_surface_probability: chance that a model is simulated with a free surface.
    """

    peak_frequency_hz: tuple[float, float] | None = None
    delay_s: tuple[float, float] = (0.0, 0.0)
    phase_deg: tuple[float, float] = (0.0, 0.0)
    free_surface_probability: float = 0.0

    def __post_init__(self) -> None:
        for name in ("peak_frequency_hz", "delay_s", "phase_deg"):
            value = getattr(self, name)
            if value is not None and (len(value) != 2 or not value[0] <= value[1]):
                raise ValueError(
                    f"source.{name} must be a [low, high] pair with low <= high. Received: {value!r}"
                )
        if self.peak_frequency_hz is not None and not self.peak_frequency_hz[0] > 0:
            raise ValueError(
                f"source.peak_frequency_hz must be positive. Received: {self.peak_frequency_hz!r}"
            )
        if not 0 <= self.free_surface_probability <= 1:
            raise ValueError(
                f"source.free_surface_probability must lie in [0, 1]. Received: {self.free_surface_probability!r}"
            )

    @property
    def enabled(self) -> bool:
        return (
            self.peak_frequency_hz is not None
            or self.delay_s != (0.0, 0.0)
            or self.phase_deg != (0.0, 0.0)
            or self.free_surface_probability > 0
        )

    def draw(self, geometry: AcquisitionGeometry, seed: int, index: int) -> dict[str, float | bool]:
        """Model ``index``'s source: ``peak_frequency_hz``, ``delay_s`` (of the peak), ``phase_deg``,
        ``free_surface``; depends only on ``(seed, index)``."""
        rng = np.random.default_rng(np.random.SeedSequence([seed, index, zlib.crc32(b"source")]))
        low, high = self.peak_frequency_hz or (geometry.peak_frequency_hz, geometry.peak_frequency_hz)
        frequency = float(rng.uniform(low, high))
        delay = openfwi_ricker_delay_s(frequency, geometry.sample_interval_s) + float(
            rng.uniform(*self.delay_s)
        )
        return {
            "peak_frequency_hz": frequency,
            "delay_s": delay,
            "phase_deg": float(rng.uniform(*self.phase_deg)),
            "free_surface": bool(rng.uniform() < self.free_surface_probability),
        }


@dataclass(frozen=True)
class SynthesizeConfig:
    """Settings of ``python -m data_prep.synthesize``.

    Attributes:
        family: velocity-model family, one of ``data_prep.velocity_models.FAMILY_NAMES``.
        count: number of velocity models (samples) in the whole dataset.
        seed: base seed; model ``i`` is drawn from ``(seed, i)``.
        chunk_size: models per SEG-Y file pair; bounds memory (about 1.4 MB of traces per OpenFWI model).
        batch_size: models simulated per engine call (larger is faster up to memory limits).
        geometry: acquisition geometry (default: OpenFWI's).
        engine: forward-modelling settings.
        family_overrides: field overrides of the family recipe, e.g. ``{"num_layers": [3, 5]}``.
        source: per-model source variety (off by default: every model gets the geometry's Ricker).
        trend: per-model tilt of the depth trend (``data_prep.velocity_models.trend_variation``; off by
            default).
        water: per-model water column on top (``data_prep.velocity_models.water_layer``; off by default).
    """

    family: str = "flatvel-a"
    count: int = 100
    seed: int = 0
    chunk_size: int = 50
    batch_size: int = 8
    geometry: AcquisitionGeometry = AcquisitionGeometry()
    engine: EngineConfig = EngineConfig()
    family_overrides: dict[str, Any] = field(default_factory=dict)
    source: SourceVariationConfig = SourceVariationConfig()
    trend: TrendVariationConfig = TrendVariationConfig()
    water: WaterLayerConfig = WaterLayerConfig()

    def __post_init__(self) -> None:
        if self.family not in (*FAMILY_NAMES, PRIOR_FAMILY, SECTION_FAMILY):
            raise ValueError(
                f"Unknown family {self.family!r}. Choose one of: {', '.join(FAMILY_NAMES)}, or {PRIOR_FAMILY} / "
                f"{SECTION_FAMILY} with family_overrides.prior_path."
            )
        for name in ("count", "chunk_size", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1. Received: {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer. Received: {self.seed}")


@dataclass(frozen=True)
class Chunk:
    """One pair of SEG-Y files: models ``first .. first + num_models - 1``."""

    index: int
    first_model: int
    num_models: int
    family: str

    @property
    def last_model(self) -> int:
        return self.first_model + self.num_models - 1

    @property
    def shots_name(self) -> str:
        return f"{self.family}_shots_{self.first_model:06d}-{self.last_model:06d}.segy"

    @property
    def velocity_name(self) -> str:
        return f"{self.family}_velocity_{self.first_model:06d}-{self.last_model:06d}.segy"

    @property
    def sources_name(self) -> str:
        return f"{self.family}_sources_{self.first_model:06d}-{self.last_model:06d}.json"


def plan_chunks(count: int, chunk_size: int, family: str) -> list[Chunk]:
    """Splits ``count`` models into consecutive chunks of ``chunk_size`` (the last may be shorter)."""
    return [
        Chunk(index=i, first_model=first, num_models=min(chunk_size, count - first), family=family)
        for i, first in enumerate(range(0, count, chunk_size))
    ]


def parse_shard(text: str) -> tuple[int, int]:
    """Parses ``"K/N"`` (1 <= K <= N) into ``(K, N)``."""
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise UserError(f"--shard takes K/N with whole numbers, e.g. 3/16. Received: {text!r}") from None
    if not 1 <= k <= n:
        raise UserError(f"--shard K/N needs 1 <= K <= N (K counts from 1). Received: {text!r}")
    return k, n


def shard_chunks(chunks: Sequence[Chunk], shard: tuple[int, int]) -> list[Chunk]:
    """The chunks of shard ``K`` of ``N``: every N-th chunk starting at ``K - 1`` (disjoint, covering)."""
    k, n = shard
    return [chunk for chunk in chunks if chunk.index % n == k - 1]


def build_manifest(config: SynthesizeConfig, chunks: Sequence[Chunk]) -> dict[str, Any]:
    """The manifest describing the whole dataset (identical for every shard, so shards may share a folder)."""
    geometry = config.geometry
    return {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_FORMAT_VERSION,
        "package_version": __version__,
        "family": config.family,
        "family_parameters": to_dict(family_parameters(config.family, **config.family_overrides)),
        "count": config.count,
        "seed": config.seed,
        "chunk_size": config.chunk_size,
        "batch_size": config.batch_size,
        "geometry": to_dict(geometry),
        "geometry_m": {
            "source_positions_m": geometry.source_positions_m().tolist(),
            "receiver_positions_m": geometry.receiver_positions_m().tolist(),
            "grid_spacing_m": geometry.grid_spacing_m,
            "sample_interval_s": geometry.sample_interval_s,
            "num_samples": geometry.num_samples,
        },
        "engine": to_dict(config.engine),
        "engine_settings": engine_settings(geometry, config.engine),
        **({"source_variation": to_dict(config.source)} if config.source.enabled else {}),
        **({"trend_variation": to_dict(config.trend)} if config.trend.enabled else {}),
        **({"water_layer": to_dict(config.water)} if config.water.enabled else {}),
        **_prior_record(config),
        "segy": {
            "sample_format": "IEEE float32 (format 5), big-endian",
            "header_convention": HEADER_CONVENTION,
            "model_id_header": (
                "UnassignedInt1 (bytes 233-236), 1-based global model index; trusted by readers because the "
                "textual header carries the seisinvert signature"
            ),
            "shot_header": "FieldRecord (byte 9) global shot number; EnergySourcePoint (byte 17) shot within model",
            "receiver_header": "TraceNumber (byte 13), receiver within shot",
            "offset_header": "offset (byte 37) = GroupX - SourceX in whole metres, unscaled (SEG-Y rev 1)",
            "start_time": "DelayRecordingTime (byte 109) = 0: sample 0 is the state at rest when the source starts",
            "velocity_sample_interval": "depth spacing in millimetres",
        },
        "files": [
            {
                "shots": chunk.shots_name,
                "velocity": chunk.velocity_name,
                "first_model": chunk.first_model,
                "num_models": chunk.num_models,
            }
            for chunk in chunks
        ],
    }


def _prior_record(config: SynthesizeConfig) -> dict[str, Any]:
    """For the ``prior`` and ``section`` families: the user's model file's SHA-256, so the manifest pins the
    data, not only its path."""
    path = config.family_overrides.get("prior_path")
    if config.family not in (PRIOR_FAMILY, SECTION_FAMILY) or not path:
        return {}
    import hashlib

    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).is_file() else None
    return {"prior": {"path": str(Path(path).resolve()), "sha256": digest}}


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """Reads ``DIR/manifest.json``; raises ``UserError`` if it is missing or not a synthesize manifest."""
    path = Path(out_dir) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(
            f"{path} does not exist: {out_dir} was not written by data_prep.synthesize."
        ) from None
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON ({error}); regenerate the dataset.") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise UserError(f"{path} is not a {MANIFEST_FORMAT} manifest (format={manifest.get('format')!r}).")
    return manifest


def synthesize(
    config: SynthesizeConfig,
    out_dir: str | Path,
    shard: tuple[int, int] = (1, 1),
    overwrite: bool = False,
    progress: bool = True,
    client: Any = None,
) -> Path:
    """Generates the dataset described by ``config`` (or one shard of it) into ``out_dir``.

    With a Dask ``client`` (``core.distributed.connect``) the chunks are simulated on its workers, a chunk per
    task, and written here in model order as they come back: the same files, byte for byte, as without one.

    Args:
        config: what to generate.
        out_dir: output folder; created if needed.
        shard: ``(K, N)``: write only the K-th of N disjoint parts (1-based K).
        overwrite: regenerate chunks whose files already exist (default: skip them, which resumes an
            interrupted run).
        progress: show a progress bar.
        client: a ``distributed.Client`` to simulate on, or None to simulate in this process.

    Returns:
        The path of ``manifest.json``.

    Raises:
        UserError: ``out_dir`` holds a dataset with a different configuration (each difference named, and
            how to resume that run instead), or chunk files without a manifest (unless ``overwrite``).
        ValueError: unstable engine settings (CFL) or an invalid configuration.
    """
    out_dir = Path(out_dir)
    chunks = plan_chunks(config.count, config.chunk_size, config.family)
    manifest = build_manifest(config, chunks)
    manifest_path = out_dir / MANIFEST_NAME
    manifest_text = json.dumps(manifest, indent=2) + "\n"
    if manifest_path.exists():
        existing = read_manifest(out_dir)
        differences = _describe_differences(existing, manifest)
        if differences:
            raise UserError(_mismatch_message(out_dir, existing, differences))
    else:
        unrecorded = _chunk_files(out_dir)
        if unrecorded and not overwrite:
            raise UserError(
                f"{out_dir} holds {len(unrecorded)} chunk file(s) (first: {unrecorded[0].name}) but no manifest.json "
                "(left by a run of an earlier version that died, or copied in), so whether they were made with "
                "this configuration cannot be checked. Choose another --out folder, delete those files, or pass "
                "--overwrite to regenerate every chunk of this configuration."
            )
    out_dir.mkdir(parents=True, exist_ok=True)

    def record_configuration() -> None:
        # Before the first chunk file: a folder never holds chunks its manifest does not describe, so a
        # re-run with other settings is refused above instead of mixing two datasets.
        if not manifest_path.exists() or manifest_path.read_text() != manifest_text:
            write_text_atomic(manifest_path, manifest_text)

    family_parameters(config.family, **config.family_overrides)  # a bad override fails before any work

    mine = shard_chunks(chunks, shard)
    todo = [chunk for chunk in mine if overwrite or not _chunk_complete(out_dir, chunk)]
    if len(todo) < len(mine):
        logger.info(
            "%d chunk(s) already complete in %s: skipped (pass --overwrite to regenerate)",
            len(mine) - len(todo),
            out_dir,
        )

    total_models = sum(chunk.num_models for chunk in todo)
    with Progress(total=total_models, unit="model", desc=f"{config.family}", disable=not progress) as bar:
        if client is None:
            computed = (simulate_chunk(config, chunk, on_batch=bar.update) for chunk in todo)
        else:
            # The engine runs on the workers, a chunk per task; this process writes, in model order.
            # The cut of each batch into engine calls is this machine's (see simulate_chunk).
            calls = resolved_concurrent_calls(config.engine)
            remote = dataclasses.replace(
                config, engine=dataclasses.replace(config.engine, max_concurrent_calls=calls)
            )
            computed = ordered_results(
                client,
                _simulate_chunk_task,
                [(remote, chunk) for chunk in todo],
                name="synthesize-chunk",
                expected=(ValueError, *EXPECTED_ERRORS),
                on_result=lambda item, _: bar.update(item[1].num_models),
            )
        for chunk, (velocity, seismic, sources) in zip(todo, computed, strict=True):
            header = _textual_header(config, chunk)
            record_configuration()
            if sources is not None:
                record = [
                    {"model": chunk.first_model + 1 + number, **draw} for number, draw in enumerate(sources)
                ]
                write_text_atomic(out_dir / chunk.sources_name, json.dumps(record, indent=1) + "\n")
            # Velocity first: a chunk counts as complete only when its shots file exists too.
            write_velocity_models(
                out_dir / chunk.velocity_name,
                velocity,
                config.geometry.grid_spacing_m,
                chunk.first_model,
                textual_header=header,
            )
            write_shot_gathers(
                out_dir / chunk.shots_name, seismic, config.geometry, chunk.first_model, textual_header=header
            )
    record_configuration()  # also when this shard had nothing (left) to write
    return manifest_path


def simulate_chunk(
    config: SynthesizeConfig,
    chunk: Chunk,
    on_batch: Callable[[int], Any] | None = None,
    max_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]] | None]:
    """One chunk's arrays: ``(velocity (models, depth, x) m/s, seismic (models, shots, time, receivers),
    source draws or None)``, float32.

    The last bits of the traces depend on how each batch is cut into engine calls
    (``config.engine.max_concurrent_calls``; ``None`` = this machine's cores), so a Dask worker is given the
    client's resolved count in ``config`` and runs those calls on ``max_threads`` threads: the same bytes
    as the client's in-process run.

    Args:
        config: the dataset's settings.
        chunk: which models.
        on_batch: called with the number of models of each finished engine call (progress).
        max_threads: threads the engine's concurrent calls run on (None: one each).

    Raises:
        ValueError: unstable engine settings, or NaN/Inf in the traces.
    """
    parameters = family_parameters(config.family, **config.family_overrides)
    velocity = np.stack(
        [
            _model(parameters, config, index)
            for index in range(chunk.first_model, chunk.first_model + chunk.num_models)
        ]
    ).astype(np.float32)
    seismic = np.empty(
        (
            chunk.num_models,
            config.geometry.num_sources,
            config.geometry.num_samples,
            config.geometry.num_receivers,
        ),
        dtype=np.float32,
    )
    sources = (
        [
            config.source.draw(config.geometry, config.seed, index)
            for index in range(chunk.first_model, chunk.last_model + 1)
        ]
        if config.source.enabled
        else None
    )
    # Batches start at the chunk's first model, so a chunk is simulated identically by any shard or worker.
    for start in range(0, chunk.num_models, config.batch_size):
        stop = min(start + config.batch_size, chunk.num_models)
        if sources is None:
            seismic[start:stop] = _to_numpy(
                simulate(velocity[start:stop], config.geometry, config.engine, **_threads(max_threads))
            )
        else:
            seismic[start:stop] = _simulate_varied(
                velocity[start:stop], sources[start:stop], config, max_threads
            )
        if on_batch is not None:
            on_batch(stop - start)
    if not np.all(np.isfinite(seismic)):
        raise ValueError(
            f"The simulation of models {chunk.first_model}-{chunk.last_model} produced NaN/Inf values: "
            "the engine settings are unstable for these velocities. Reduce engine.time_step_s."
        )
    return velocity, seismic, sources


def _model(parameters, config: SynthesizeConfig, index: int) -> np.ndarray:
    """Model ``index`` of the family, its depth trend tilted when ``config.trend`` chooses it, then under water
    when ``config.water`` does."""
    velocity = generate_model(parameters, config.seed, index, config.geometry.grid_shape).velocity_mps
    if config.trend.enabled:
        velocity = tilt_trend(velocity, config.trend.draw(velocity, config.seed, index))
    if config.water.enabled:
        water = config.water.draw(config.seed, index, velocity.shape, config.geometry.grid_spacing_m)
        if water is not None:
            velocity = add_water(velocity, water, config.water.velocity_mps)
    return velocity


def _threads(max_threads: int | None) -> dict[str, int]:
    """``simulate``'s ``max_threads`` keyword, only when set (the in-process call stays as it was)."""
    return {} if max_threads is None else {"max_threads": max_threads}


def _simulate_chunk_task(
    work: tuple[SynthesizeConfig, Chunk],
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]] | None]:
    """``simulate_chunk`` on a Dask worker, on one core: a cluster's parallelism is its workers' threads, so
    an engine that took every core of the node would oversubscribe it. ``config.engine`` carries the
    client's resolved ``max_concurrent_calls`` (see ``simulate_chunk``)."""
    config, chunk = work
    return simulate_chunk(config, chunk, max_threads=1)


def _simulate_varied(
    velocity: np.ndarray,
    sources: Sequence[dict[str, Any]],
    config: SynthesizeConfig,
    max_threads: int | None = None,
) -> np.ndarray:
    """``(batch, shots, time, receivers)`` traces, each model with its own drawn source (see
    ``SourceVariationConfig``): one engine call per free-surface setting with the reference Ricker at the
    range's highest frequency, then an exact per-model reshaping to its own wavelet."""
    geometry = config.geometry
    reference_frequency = max(
        config.source.peak_frequency_hz[1] if config.source.peak_frequency_hz else geometry.peak_frequency_hz,
        max(float(source["peak_frequency_hz"]) for source in sources),
    )
    reference_geometry = geometry.replace(peak_frequency_hz=reference_frequency)
    reference_delay = openfwi_ricker_delay_s(reference_frequency, geometry.sample_interval_s)
    engine = dataclasses.replace(config.engine, ricker_delay_s=reference_delay)
    out = np.empty(
        (len(sources), geometry.num_sources, geometry.num_samples, geometry.num_receivers), dtype=np.float32
    )
    flags = np.array([bool(source["free_surface"]) for source in sources])
    for free_surface in (False, True):
        chosen = np.flatnonzero(flags == free_surface)
        if not len(chosen):
            continue
        with warnings.catch_warnings():
            # The reference's highest frequencies may be dispersive; the reshaping filters them away.
            warnings.filterwarnings("ignore", message=".*cells per wavelength.*", category=RuntimeWarning)
            traces = _to_numpy(
                simulate(
                    velocity[chosen],
                    reference_geometry,
                    dataclasses.replace(engine, free_surface=free_surface),
                    **_threads(max_threads),
                )
            )
        for row, number in enumerate(chosen):
            source = sources[number]
            out[number] = reshape_source(
                traces[row],
                geometry.sample_interval_s,
                (reference_frequency, reference_delay),
                (float(source["peak_frequency_hz"]), float(source["delay_s"]), float(source["phase_deg"])),
                axis=1,
            )
    return out


_CHUNK_FILE = re.compile(r"^.+_(shots|velocity)_\d{6}-\d{6}\.segy$")


def _chunk_files(out_dir: Path) -> list[Path]:
    """SEG-Y files named as synthesize names its chunks."""
    if not out_dir.is_dir():
        return []
    return sorted(path for path in out_dir.iterdir() if _CHUNK_FILE.match(path.name))


def _mismatch_message(out_dir: Path, existing: dict[str, Any], differences: list[str]) -> str:
    """What differs from the run recorded in ``out_dir`` and the two ways on: resume it, or a new folder."""
    command = (
        f"--family {existing.get('family')} --count {existing.get('count')} --seed {existing.get('seed')}"
    )
    others = [text.split(":")[0].split(".")[0] for text in differences]
    others = sorted({key for key in others if key not in ("family", "count", "seed")})
    recorded = f" with the {', '.join(others)} settings recorded in its manifest.json" if others else ""
    version = existing.get("package_version")
    return (
        f"{out_dir} already holds a different synthetic dataset ({'; '.join(differences)}): its manifest.json, "
        f"written before its first chunk{f' by seisinvert {version}' if version else ''}, records the settings its "
        f"chunks were made with. To resume that run, repeat its settings ({command}{recorded}); for a new dataset, "
        f"choose another --out folder or delete {out_dir}."
    )


def _chunk_complete(out_dir: Path, chunk: Chunk) -> bool:
    # Files appear only when fully written (atomic rename), velocity first: both present = complete.
    return (out_dir / chunk.shots_name).exists() and (out_dir / chunk.velocity_name).exists()


def _to_numpy(tensor) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype=np.float32)


def _textual_header(config: SynthesizeConfig, chunk: Chunk) -> str:
    geometry = config.geometry
    settings = engine_settings(geometry, config.engine)
    return "\n".join(
        [
            f"SEISINVERT {__version__} SYNTHETIC SURVEY, FAMILY {config.family.upper()}, SEED {config.seed}",
            f"MODELS {chunk.first_model}-{chunk.last_model} OF {config.count} (0-BASED GLOBAL INDICES)",
            f"GRID {geometry.grid_shape[0]}X{geometry.grid_shape[1]} CELLS OF {geometry.grid_spacing_m:g} M",
            f"{geometry.num_sources} SOURCES, {geometry.num_receivers} RECEIVERS, "
            f"{geometry.num_samples} SAMPLES OF {geometry.sample_interval_s * 1000:g} MS",
            f"RICKER {geometry.peak_frequency_hz:g} HZ PEAK AT {settings['ricker_delay_s'] * 1000:g} MS, "
            f"AMPLITUDE CONVENTION {str(settings['amplitude_convention']).upper()}",
            f"{config.engine.spatial_order}TH ORDER ACOUSTIC FD, TIME STEP {settings['time_step_s'] * 1000:g} MS, "
            f"ABSORBING {config.engine.absorbing_width_cells} CELLS, "
            f"FREE SURFACE {'ON' if config.engine.free_surface else 'OFF'}",
            "FULL ENGINE SETTINGS: MANIFEST.JSON (ENGINE_SETTINGS)",
        ]
    )


def _describe_differences(existing: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The recorded settings that differ, as ``key.subkey: X there, Y now`` (at most 8, dicts compared by key)."""
    keys = (
        "family",
        "count",
        "seed",
        "chunk_size",
        "batch_size",
        "geometry",
        "engine",
        "engine_settings",
        "family_parameters",
        "source_variation",
        "trend_variation",
        "water_layer",
        "prior",
    )
    differences: list[str] = []

    def compare(name: str, there: Any, now: Any) -> None:
        if isinstance(there, dict) and isinstance(now, dict):
            for key in sorted(set(there) | set(now), key=str):
                compare(f"{name}.{key}", there.get(key, "(not recorded)"), now.get(key, "(not recorded)"))
        elif there != now:
            differences.append(f"{name}: {there!r} there, {now!r} now")

    for key in keys:
        compare(key, existing.get(key, "(not recorded)"), new.get(key, "(not recorded)"))
    if len(differences) > 8:
        differences = [*differences[:8], f"... {len(differences) - 8} more"]
    return differences


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "python -m data_prep.synthesize",
        "Generate a synthetic survey (velocity models + acoustic shot gathers) as SEG-Y files, with a manifest "
        "that data_prep.ingest reads. The same seed gives the same bytes; an interrupted run resumes where it "
        "stopped when run again.",
        examples=[
            "python -m data_prep.synthesize --family curvefault-b --count 1000 --seed 1 --out data/cfb",
            "python -m data_prep.synthesize --family salt --count 30000 --out data/salt --shard 3/16"
            "   # job-array part 3 of 16",
            "python -m data_prep.synthesize --config configs/data/small.yaml --set engine.spatial_order=8 "
            "--count 10 --out data/s",
            "python -m data_prep.synthesize --family flatvel-a --count 100000 --out data/fa --scheduler local:8"
            "   # 8 worker processes",
            "python -m data_prep.synthesize --family flatvel-a --count 400000 --out data/fa "
            "--scheduler tcp://head:8786   # a Dask cluster (docs/scaling.md)",
            "python -m data_prep.synthesize --family section --count 200 --out data/marmousi --set "
            "family_overrides.prior_path=marmousi.segy --set family_overrides.prior_spacing_m=4"
            "   # windows of your own section",
        ],
    )
    parser.add_argument(
        "--family",
        choices=(*FAMILY_NAMES, PRIOR_FAMILY, SECTION_FAMILY),
        metavar="FAMILY",
        help=(
            f"Velocity-model family: {', '.join(FAMILY_NAMES)} (default: flatvel-a), {PRIOR_FAMILY} around your "
            f"own model, or {SECTION_FAMILY}: windows of your own 2-D model as it is (both: --set "
            "family_overrides.prior_path=FILE --set family_overrides.prior_spacing_m=M; docs/velocity_models.md)."
        ),
    )
    parser.add_argument("--count", type=int, help="Number of velocity models to generate.")
    parser.add_argument("--out", required=True, type=Path, help="Output folder.")
    parser.add_argument("--seed", type=int, help="Base random seed (default 0).")
    parser.add_argument("--shard", default="1/1", help="Write only part K of N (K counts from 1), e.g. 3/16.")
    parser.add_argument("--overwrite", action="store_true", help="Regenerate chunks that already exist.")
    add_scheduler_argument(parser)
    add_config_arguments(parser)
    add_common_arguments(parser)
    return parser


def _main(args: argparse.Namespace) -> int:
    config = load_config(
        SynthesizeConfig,
        files=args.config,
        overrides=args.overrides,
        values={"family": args.family, "count": args.count, "seed": args.seed},
    )
    shard = parse_shard(args.shard)
    try:
        # SIGTERM (timeout, job schedulers) unwinds like Ctrl-C: the chunk in progress is discarded.
        with terminate_as_interrupt(), contextlib.ExitStack() as stack:
            client = (
                stack.enter_context(connect(args.scheduler, announce=not args.quiet))
                if args.scheduler
                else None
            )
            manifest = synthesize(
                config,
                args.out,
                shard=shard,
                overwrite=args.overwrite,
                progress=not args.quiet,
                client=client,
            )
    except Terminated as stop:
        print(
            f"error: stopped by {signal.Signals(stop.signal_number).name}: the complete chunks are kept, the one "
            "in progress was discarded; run the same command again to resume.",
            file=sys.stderr,
        )
        return 128 + stop.signal_number
    # Unstable (CFL) or inconsistent physics settings: the engine's message says what to do.
    except ValueError as error:
        if args.debug:
            raise
        raise UserError(str(error)) from None
    print(_summary(config, shard, args.out, manifest))
    return 0


def _summary(config: SynthesizeConfig, shard: tuple[int, int], out_dir: Path, manifest: Path) -> str:
    """What this run (or shard) wrote, in one line."""
    chunks = plan_chunks(config.count, config.chunk_size, config.family)
    mine = shard_chunks(chunks, shard)
    if shard == (1, 1):
        return f"wrote {config.count} {config.family} model(s) to {out_dir} (manifest: {manifest})"
    if not mine:
        return (
            f"shard {shard[0]}/{shard[1]} has no chunk to write: {config.count} model(s) make {len(chunks)} "
            f"chunk(s) of up to {config.chunk_size} (chunk_size), so shards {len(chunks) + 1}-{shard[1]} have none; "
            f"wrote only the manifest ({manifest}). Use at most {len(chunks)} shard(s), or a smaller chunk_size."
        )
    models = sum(chunk.num_models for chunk in mine)
    return (
        f"wrote shard {shard[0]}/{shard[1]}: {len(mine)} chunk(s), {models} of the {config.count} {config.family} "
        f"models, to {out_dir} (manifest: {manifest})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "Chunk",
    "SynthesizeConfig",
    "build_manifest",
    "parse_shard",
    "plan_chunks",
    "read_manifest",
    "shard_chunks",
    "simulate_chunk",
    "synthesize",
]
