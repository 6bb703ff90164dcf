"""Feeding the HDF5 dataset to Keras: a ``keras.utils.PyDataset`` with normalisation and augmentation.

Pipeline position: ``pipeline.train`` builds one ``SeismicDataset`` per split (``train``, ``val``) from the
file written by ``data_prep.ingest``; ``pipeline.evaluate`` reads the test split through the same class.

Design (facts about Keras 3 and HDF5 that shaped it):

* h5py objects cannot be pickled and must not be shared across a fork, so the dataset stores the file
  *path* and opens it lazily once per process (``os.getpid()`` is checked on every access). The object is
  picklable and works with ``workers`` threads or processes (``use_multiprocessing=True``).
* Sample order: a permutation drawn from ``(seed, epoch)``, so the same seed gives the same order on every
  run and a resumed run continues with the order the interrupted one would have used. The epoch is set
  explicitly with ``set_epoch``, by a training callback's ``on_epoch_begin`` (``pipeline.training.callbacks.
  EpochData``), which ``fit`` calls before it asks for the epoch's first batch (checked with worker threads
  and with TensorFlow's input pipeline); not in the PyDataset's own ``on_epoch_begin``/``on_epoch_end``
  hooks: Keras starts the worker pool before the dataset's ``on_epoch_begin`` and calls its
  ``on_epoch_end`` once more than there are epochs, so an order changed in those hooks would depend on
  timing.
* Normalisation uses the dataset's training-split statistics (``data_prep.normalization``): seismic
  ``sign(x)·log1p(|x|)`` then min-max to [-1, 1] (OpenFWI), velocity to [-1, 1]; edges stay 0/1.
* Augmentation (training only, on raw amplitudes before normalisation): additive noise relative to the
  sample's RMS, amplitude scaling, dropped (zeroed) traces and polarity reversal; and a scaling of the whole
  velocity model with the traces' time axis compressed to match (``scale_velocity``: exact for the acoustic
  wave equation, so a family's velocity level stops being something the network can learn by heart). Each
  batch's random numbers come from ``(seed, epoch, batch)``, so results do not depend on which worker made
  the batch.
* Curriculum helpers: restrict the samples to some families, or keep only some shots (the others zeroed),
  when the dataset is made or between epochs (``set_stage``: the number of batches stays the same).
* ``cache=True`` reads the split once into memory (normalised, unless augmentation needs the raw amplitudes)
  and serves batches from there: the per-batch HDF5 reads and the log normalisation (~70 ms a batch of 8 at
  OpenFWI's geometry) otherwise share the CPU with the training step. ``fits_in_memory`` says whether a
  split is small enough for it; larger sets stream from disk.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np

from core.errors import UserError
from data_prep import schema
from data_prep.normalization import (
    NormalizationStats,
    VelocityNormalization,
    denormalize_velocity,
    normalize_seismic,
    normalize_velocity,
)

VELOCITY = "velocity"
EDGES = "edges"


@dataclass(frozen=True)
class AugmentationConfig:
    """Training-time augmentation of raw seismic (YAML: ``data.augmentation``); all off by default.

    Attributes:
        noise_probability: chance that a sample gets additive Gaussian noise.
        noise_level: noise standard deviation as a fraction of the sample's RMS amplitude.
        amplitude_probability: chance that a sample's amplitudes are scaled.
        amplitude_scale_range: ``(low, high)`` factor, drawn log-uniformly.
        drop_trace_probability: chance that a sample loses some traces (set to zero, as dead channels).
        drop_trace_fraction: fraction of the sample's traces (shot × receiver) zeroed when it does.
        polarity_probability: chance that a sample's polarity is reversed.
        velocity_scale_probability: chance that a sample's velocity model is multiplied by a factor ``s``
            and its traces resampled to ``d(s·t)`` (``scale_velocity``).
        velocity_scale_range: ``(low, high)`` range of ``s``, drawn uniformly within what keeps the sample
            inside the dataset's velocity range (the network's output is bounded to it).
        mirror_probability: chance that a sample is mirrored left to right (``mirror``): the velocity model
            and edges reversed along x, the receivers reversed, the shots reordered.
        mirror_max_shift_cells: how far (cells) a mirrored source may land from the nearest source of the
            geometry; a layout that is not symmetric within it is refused. OpenFWI's (sources at x cells 0,
            17, 34, 52, 69) needs 1: its middle shot mirrors to cell 35.
    """

    noise_probability: float = 0.0
    noise_level: float = 0.05
    amplitude_probability: float = 0.0
    amplitude_scale_range: tuple[float, float] = (0.5, 2.0)
    drop_trace_probability: float = 0.0
    drop_trace_fraction: float = 0.05
    polarity_probability: float = 0.0
    velocity_scale_probability: float = 0.0
    velocity_scale_range: tuple[float, float] = (0.85, 1.15)
    mirror_probability: float = 0.0
    mirror_max_shift_cells: int = 1

    def __post_init__(self) -> None:
        for name in (
            "noise_probability",
            "amplitude_probability",
            "drop_trace_probability",
            "polarity_probability",
            "drop_trace_fraction",
            "velocity_scale_probability",
            "mirror_probability",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augmentation.{name} must be in [0, 1]. Received: {getattr(self, name)}")
        if not (isinstance(self.mirror_max_shift_cells, int) and self.mirror_max_shift_cells >= 0):
            raise ValueError(
                "augmentation.mirror_max_shift_cells must be a whole number of cells >= 0. "
                f"Received: {self.mirror_max_shift_cells!r}"
            )
        if self.noise_level < 0:
            raise ValueError(f"augmentation.noise_level must be >= 0. Received: {self.noise_level}")
        low, high = self.amplitude_scale_range
        if not 0 < low <= high:
            raise ValueError(
                f"augmentation.amplitude_scale_range must be (low, high) with 0 < low <= high. "
                f"Received: {self.amplitude_scale_range}"
            )
        low, high = self.velocity_scale_range
        if not 0.5 <= low <= high <= 2.0:
            raise ValueError(
                "augmentation.velocity_scale_range must be (low, high) with 0.5 <= low <= high <= 2 "
                f"(a factor on the whole velocity model). Received: {self.velocity_scale_range}"
            )

    @property
    def enabled(self) -> bool:
        return any(
            p > 0
            for p in (
                self.noise_probability,
                self.amplitude_probability,
                self.drop_trace_probability,
                self.polarity_probability,
                self.velocity_scale_probability,
                self.mirror_probability,
            )
        )


def augment(seismic: np.ndarray, config: AugmentationConfig, rng: np.random.Generator) -> np.ndarray:
    """Applies ``config``'s augmentations to raw seismic ``(batch, shots, time, receivers)`` (a new array)."""
    seismic = np.array(seismic, dtype=np.float32, copy=True)
    batch, shots, _, receivers = seismic.shape
    for sample in range(batch):
        if rng.random() < config.amplitude_probability:
            low, high = config.amplitude_scale_range
            seismic[sample] *= np.float32(math.exp(rng.uniform(math.log(low), math.log(high))))
        if rng.random() < config.polarity_probability:
            seismic[sample] *= np.float32(-1.0)
        if rng.random() < config.noise_probability and config.noise_level > 0:
            rms = float(np.sqrt(np.mean(np.square(seismic[sample], dtype=np.float64))))
            noise = rng.standard_normal(seismic[sample].shape, dtype=np.float32)
            seismic[sample] += noise * np.float32(config.noise_level * rms)
        if rng.random() < config.drop_trace_probability:
            count = max(1, int(round(config.drop_trace_fraction * shots * receivers)))
            dropped = rng.choice(shots * receivers, size=min(count, shots * receivers), replace=False)
            shot_index, receiver_index = np.divmod(dropped, receivers)
            seismic[sample, shot_index, :, receiver_index] = 0.0
    return seismic


def mirror_shot_order(
    geometry: schema.DatasetGeometry,
    max_shift_cells: int = 1,
    *,
    option: str = "augmentation.mirror_probability",
    turn_off: str = "augmentation.mirror_probability=0",
    shift_option: str | None = "augmentation.mirror_max_shift_cells",
) -> np.ndarray:
    """The shot order of a left-right mirrored sample: entry ``i`` is the recorded shot that plays shot ``i``.

    Mirroring about the grid's centre sends a source at ``x`` to ``width - x`` (``width`` = (x cells − 1) ×
    cell size) and reverses the receivers. That is a sample of the same geometry when every mirrored source
    lands on a source of the geometry at its depth (within ``max_shift_cells``; OpenFWI's middle shot, at
    340 m of 0..690 m, lands 10 m from it) and the receivers mirror onto themselves.

    Args:
        geometry: the dataset's (or the model's) geometry.
        max_shift_cells: how far a mirrored source may land from the source that plays it.
        option, turn_off, shift_option: the setting that needs the mirror, how to turn it off and the setting
            of ``max_shift_cells`` (None: not a setting), named in the messages.

    Raises:
        UserError: the layout is not symmetric within the tolerance (says which shot or receiver is not).
    """
    spacing = float(geometry.grid_spacing_m)
    width = (geometry.grid_shape[1] - 1) * spacing
    receivers = np.asarray(geometry.receiver_positions_m, dtype=np.float64)
    mirrored = np.stack([receivers[:, 0], width - receivers[:, 1]], axis=1)

    def rows(points):  # the points sorted by (x, depth), to compare as sets
        return points[np.lexsort((points[:, 0], np.round(points[:, 1], 6)))]

    if not np.allclose(rows(receivers), rows(mirrored)):
        raise UserError(
            f"{option} needs receivers placed symmetrically about the grid's centre; "
            f"this geometry's {len(receivers)} receivers span x {receivers[:, 1].min():g}..{receivers[:, 1].max():g} m "
            f"of 0..{width:g} m. Set {turn_off} for this geometry."
        )
    shift = f"{shift_option}={max_shift_cells}" if shift_option else f"{max_shift_cells}"
    sources = np.asarray(geometry.source_positions_m, dtype=np.float64)
    order = []
    for depth, x in sources:
        same_depth = np.isclose(sources[:, 0], depth)
        distance = np.where(same_depth, np.abs(sources[:, 1] - (width - x)), np.inf)
        nearest = int(np.argmin(distance))
        if distance[nearest] > max_shift_cells * spacing + 1e-6:
            remedy = (
                f"Raise {shift_option} to accept the shift (the mirrored shot is then labelled as fired where it "
                f"was not) or set {turn_off}."
                if shift_option
                else f"Set {turn_off} for this geometry."
            )
            raise UserError(
                f"{option}: the source at x {x:g} m mirrors to {width - x:g} m, "
                f"{distance[nearest]:g} m from the nearest source at its depth (at most "
                f"{shift} cells of {spacing:g} m). {remedy}"
            )
        order.append(nearest)
    if len(set(order)) != len(order):
        raise UserError(
            f"{option}: two sources mirror onto the same one within {shift} cells; set {turn_off}"
            + (f" or lower {shift_option}." if shift_option else ".")
        )
    playing = np.empty(len(order), dtype=np.int64)
    playing[np.asarray(order)] = np.arange(len(order))  # shot order[i] of the mirror is recorded shot i
    return playing


def mirrored_seismic(seismic: np.ndarray, shot_order: np.ndarray) -> np.ndarray:
    """``(batch, shots, time, receivers)`` mirrored left to right: receivers reversed, shots reordered by
    ``shot_order`` (``mirror_shot_order``). The section predicted from it is mirrored back with ``[..., ::-1]``."""
    return np.ascontiguousarray(np.asarray(seismic)[:, shot_order, :, ::-1])


def average_with_mirror(section: np.ndarray, mirrored_section: np.ndarray) -> np.ndarray:
    """The mean of a ``(..., depth, x)`` prediction and the one made from ``mirrored_seismic``, mirrored back."""
    return 0.5 * (np.asarray(section) + np.asarray(mirrored_section)[..., ::-1])


def mirror(
    seismic: np.ndarray,
    targets: dict[str, np.ndarray],
    shot_order: np.ndarray,
    probability: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Mirrors each sample left to right with ``probability`` (new arrays).

    ``seismic`` ``(batch, shots, time, receivers)`` gets its receivers reversed and its shots reordered by
    ``shot_order`` (``mirror_shot_order``); every target ``(batch, depth, x)`` is reversed along x.
    """
    seismic = np.array(seismic, dtype=np.float32, copy=True)
    targets = {name: np.array(values, copy=True) for name, values in targets.items()}
    for sample in range(seismic.shape[0]):
        if rng.random() < probability:
            seismic[sample] = seismic[sample][shot_order][..., ::-1]
            for values in targets.values():
                values[sample] = values[sample][..., ::-1]
    return seismic, targets


#: Samples over which ``scale_velocity`` tapers a compressed record to zero where its data ran out.
_STRETCH_TAPER_SAMPLES = 40


def scale_velocity(
    seismic: np.ndarray,
    velocity_mps: np.ndarray,
    config: AugmentationConfig,
    rng: np.random.Generator,
    bounds_mps: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Scales whole velocity models by ``s`` and their raw seismic to match (new arrays).

    For the constant-density acoustic wave equation, ``p(x, s·t)`` is the field of the model ``s·v(x)``
    fired with the wavelet ``f(s·t)`` (a peak frequency ``s`` times higher, the delay ``s`` times shorter),
    in the same geometry; the finite-difference recurrence maps the same way (time step ``dt/s``). So each
    chosen sample's traces become ``d(s·t)`` on the original time axis (linear interpolation; the data at
    OpenFWI's 1 ms sampling are about eight times oversampled) and its velocity ``s·v``. For ``s > 1`` the
    last ``(1 - 1/s)`` of the record has no data: it is set to zero after a short cosine taper, as in a
    shorter recording. The amplitudes need no correction in this engine's source convention (the wavelet
    enters as ``(v·dt)² w``, which the scaling leaves unchanged): the test against a simulation of the
    scaled model fits a gain of 1.000.

    ``s`` is drawn uniformly from ``config.velocity_scale_range`` narrowed so that the scaled model stays
    within ``bounds_mps`` (the range the network's bounded output can represent): a sample that already
    spans the whole range is left as it is.

    Args:
        seismic: raw ``(batch, shots, time, receivers)``.
        velocity_mps: ``(batch, depth, x)`` in m/s.
        config: its ``velocity_scale_probability`` and ``velocity_scale_range`` are used.
        rng: the batch's generator.
        bounds_mps: ``(lowest, highest)`` velocity the scaled models may reach, m/s.

    Returns:
        ``(seismic, velocity_mps)``: float32 copies, the chosen samples scaled.
    """
    seismic = np.array(seismic, dtype=np.float32, copy=True)
    velocity_mps = np.array(velocity_mps, dtype=np.float32, copy=True)
    steps = seismic.shape[2]
    low, high = config.velocity_scale_range
    for sample in range(seismic.shape[0]):
        if not rng.random() < config.velocity_scale_probability:
            continue
        slowest, fastest = float(velocity_mps[sample].min()), float(velocity_mps[sample].max())
        factor_low = max(low, bounds_mps[0] / slowest)
        factor_high = min(high, bounds_mps[1] / fastest)
        if factor_low > factor_high:
            continue
        factor = rng.uniform(factor_low, factor_high)
        source = factor * np.arange(steps, dtype=np.float64)
        valid = int(np.searchsorted(source, steps - 1, side="right"))  # samples with data on both sides
        base = np.floor(source[:valid]).astype(np.int64)
        weight = (source[:valid] - base).astype(np.float32)[None, :, None]
        upper = np.minimum(base + 1, steps - 1)
        traces = seismic[sample]
        stretched = np.zeros_like(traces)
        stretched[:, :valid] = traces[:, base] * (1 - weight) + traces[:, upper] * weight
        if valid < steps:
            taper = min(_STRETCH_TAPER_SAMPLES, valid)
            ramp = 0.5 * (1 + np.cos(np.linspace(0.0, np.pi, taper, dtype=np.float32)))
            stretched[:, valid - taper : valid] *= ramp[None, :, None]
        seismic[sample] = stretched
        velocity_mps[sample] *= np.float32(factor)
    return seismic, velocity_mps


def normalize_seismic_inplace(seismic: np.ndarray, stats: NormalizationStats) -> np.ndarray:
    """``data_prep.normalization.normalize_seismic`` computed in place on a float32 array the caller owns.

    The feeding thread shares the CPU with the training step, and a batch is 22 MB at OpenFWI's geometry, so
    this path keeps one temporary and uses ``log(1 + |x|)``, which NumPy vectorises, instead of ``log1p``,
    which it does not (about 5x faster here). The two differ by at most ~1e-7 in absolute value (for
    ``|x|`` below float32's resolution of 1 + ``|x|``), far below the [-1, 1] scale's resolution that matters.
    Other methods fall back to ``normalize_seismic``.
    """
    if (
        seismic.dtype != np.float32
        or stats.method != "minmax"
        or stats.seismic_transform not in ("log1p", "none")
    ):
        return normalize_seismic(seismic, stats)
    low, high = float(stats.seismic["min"]), float(stats.seismic["max"])
    if not high > low:
        return normalize_seismic(seismic, stats)  # raises its own message
    if stats.seismic_transform == "log1p":
        magnitude = np.abs(seismic)
        magnitude += np.float32(1.0)
        np.log(magnitude, out=magnitude)
        np.copysign(magnitude, seismic, out=seismic)
    scale = 2.0 / (high - low)
    seismic *= np.float32(scale)
    seismic += np.float32(-low * scale - 1.0)
    return seismic


def shot_mask(num_shots: int, active_shots: int | None) -> np.ndarray | None:
    """Which shots a few-shot curriculum stage keeps: ``active_shots`` spread evenly; None keeps all."""
    if active_shots is None or active_shots >= num_shots:
        return None
    if active_shots < 1:
        raise ValueError(f"active_shots must be at least 1. Received: {active_shots}")
    keep = np.unique(np.round(np.linspace(0, num_shots - 1, active_shots)).astype(int))
    mask = np.zeros(num_shots, dtype=bool)
    mask[keep] = True
    return mask


def read_sample_families(h5: h5py.File) -> np.ndarray:
    """Family name of every sample (``"unknown"`` where the dataset does not say), as a str array."""
    return schema.read_sample_families(h5)


def _read_samples(dataset: h5py.Dataset, indices: np.ndarray) -> np.ndarray:
    """``dataset[indices]`` in the given order, one chunk (= one sample) at a time.

    h5py's fancy selection (``dataset[[3, 17, 42]]``) builds a point selection that is about 50x slower than
    reading the same samples one by one (measured: 2 s against 0.03 s for 16 OpenFWI samples); this is the
    difference between a data-bound and a compute-bound training epoch.
    """
    out = np.empty((len(indices), *dataset.shape[1:]), dtype=dataset.dtype)
    for position, index in enumerate(indices):
        out[position] = dataset[int(index)]
    return out


def _origin_names(h5: h5py.File) -> np.ndarray:
    names = np.asarray([entry.get("name", "") for entry in schema.read_origins(h5)] or [""], dtype=str)
    return names[schema.read_sample_origins(h5)]


class SeismicDataset(keras.utils.PyDataset):
    """Batches ``(normalised seismic, {"velocity": ..., "edges": ...})`` from one split of an HDF5 dataset.

    Args:
        path: the dataset file (``data_prep.ingest`` output).
        split: ``"train"``, ``"val"`` or ``"test"``.
        batch_size: samples per batch.
        shuffle: draw a new order every epoch from ``(seed, epoch)``; otherwise file order.
        seed: base seed of the order and of the augmentation.
        outputs: target names to return (``("velocity",)`` for models without an edge head).
        indices: explicit sample indices instead of the split's (kept in the given order when not shuffled).
        families: keep only samples of these families (curriculum); None keeps all.
        active_shots: keep this many evenly spread shots and zero the others (curriculum); None keeps all.
        max_samples: use only the first ``max_samples`` samples of the split (after the family filter).
        augmentation: augmentation settings (training only); None for none.
        drop_remainder: leave out the last incomplete batch (training: keeps every step's shape the same).
        stats: normalisation statistics; default: the dataset's own.
        shard: ``(index, count)``: serve rows ``index::count`` of every batch (multi-worker training: each
            worker reads its part of the same global batch; ``batch_size`` must be a multiple of ``count``).
        workers, use_multiprocessing, max_queue_size: Keras' ``PyDataset`` parallelism.
        cache: hold the split in memory after the first batch is asked for (float32: about 1.4 MB per OpenFWI
            sample; each worker process holds its own copy, threads share one). ``"auto"``: when it takes at
            most a quarter of the memory available and the workers are threads.

    Batches:
        ``x``: ``(batch, shots, time, receivers)`` float32 normalised seismic; ``y``: dict of
        ``(batch, depth, x)`` float32 (velocity normalised, edges 0/1).
    """

    def __init__(
        self,
        path: str | Path,
        split: str = "train",
        *,
        batch_size: int = 16,
        shuffle: bool = False,
        seed: int = 0,
        outputs: Sequence[str] = (VELOCITY, EDGES),
        indices: Sequence[int] | np.ndarray | None = None,
        families: Sequence[str] | None = None,
        active_shots: int | None = None,
        max_samples: int | None = None,
        augmentation: AugmentationConfig | None = None,
        drop_remainder: bool = False,
        stats: NormalizationStats | None = None,
        shard: tuple[int, int] = (0, 1),
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
        cache: bool | str = False,
    ) -> None:
        super().__init__(
            workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
        )
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1. Received: {batch_size}")
        unknown = sorted(set(outputs) - {VELOCITY, EDGES})
        if unknown or VELOCITY not in outputs:
            raise ValueError(
                f"outputs must contain 'velocity' and optionally 'edges'. Received: {list(outputs)}"
            )
        self.path = Path(path)
        self.split = split
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.outputs = tuple(outputs)
        self.augmentation = augmentation if augmentation is not None and augmentation.enabled else None
        self.drop_remainder = bool(drop_remainder)
        self.shard = (int(shard[0]), int(shard[1]))
        if not 0 <= self.shard[0] < self.shard[1] or self.batch_size % self.shard[1]:
            raise ValueError(
                f"shard must be (index, count) with 0 <= index < count and batch_size a multiple of count. "
                f"Received: shard={shard}, batch_size={batch_size}"
            )
        self._file: h5py.File | None = None
        self._file_pid: int | None = None
        if cache not in (True, False, "auto"):
            raise ValueError(f"cache must be true, false or 'auto'. Received: {cache!r}")
        self.cache = cache is True
        self._cached: tuple[np.ndarray, dict[str, np.ndarray]] | None = None
        self._cache_lock = threading.Lock()

        with schema.open_dataset(self.path) as h5:
            if not bool(h5.attrs["labelled"]):
                raise UserError(
                    f"{self.path} holds no velocity models (an unlabelled dataset): training and evaluation "
                    "need a labelled dataset from data_prep.ingest."
                )
            self.stats = stats if stats is not None else schema.read_normalization(h5)
            self.geometry = schema.read_geometry(h5)
            self.seismic_shape = tuple(int(n) for n in h5[schema.SEISMIC].shape[1:])
            self.grid_shape = tuple(int(n) for n in h5[schema.VELOCITY].shape[1:])
            if indices is None:
                splits = schema.read_splits(h5)
                if split not in splits:
                    raise UserError(f"Unknown split {split!r}: choose one of {', '.join(splits)}.")
                selected = np.asarray(splits[split], dtype=np.int64)
            else:
                selected = np.asarray(indices, dtype=np.int64)
                if selected.size and (selected.min() < 0 or selected.max() >= h5[schema.SEISMIC].shape[0]):
                    raise ValueError(f"indices must lie in 0..{h5[schema.SEISMIC].shape[0] - 1}.")
            all_families = read_sample_families(h5)
            self._sample_ids = schema.read_sample_ids(h5)
            self._origin_names = _origin_names(h5)
        if families:
            wanted = set(families)
            available = sorted(set(all_families[selected]))
            selected = selected[np.isin(all_families[selected], list(wanted))]
            if selected.size == 0:
                raise UserError(
                    f"No {split} sample of famil{'y' if len(wanted) == 1 else 'ies'} {', '.join(sorted(wanted))} "
                    f"in {self.path}; it holds {', '.join(available)}."
                )
        if max_samples is not None:
            selected = selected[: int(max_samples)]
        if selected.size == 0:
            raise UserError(
                f"The {split} split of {self.path} is empty: rebuild the dataset with more samples."
            )
        if drop_remainder and selected.size < self.batch_size:
            raise UserError(
                f"The {split} split of {self.path} holds {selected.size} samples, fewer than one batch of "
                f"{self.batch_size}: lower batch_size or use a larger dataset."
            )
        self.indices = selected
        self._mirror_order = (
            mirror_shot_order(self.geometry, self.augmentation.mirror_max_shift_cells)
            if self.augmentation is not None and self.augmentation.mirror_probability > 0
            else None
        )
        self._all_families = all_families
        self.families = all_families[selected]
        self.shot_mask = shot_mask(self.seismic_shape[0], active_shots)
        self.epoch = 0
        self._stage_positions: np.ndarray | None = None  # set_stage: positions in self.indices served
        self._order = self._order_for(0)
        if cache == "auto":
            self.cache = not use_multiprocessing and self.fits_in_memory()

    # --- Keras PyDataset interface ----------------------------------------------------------------------

    def __len__(self) -> int:
        if self.drop_remainder:
            return len(self.indices) // self.batch_size
        return math.ceil(len(self.indices) / self.batch_size)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch {index} out of range for {len(self)} batches.")
        positions = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        positions = positions[self.shard[0] :: self.shard[1]]
        if self.cache:
            cached_seismic, cached_targets = self._cached_split()
            seismic = cached_seismic[positions]
            targets = {name: values[positions] for name, values in cached_targets.items()}
            if self.augmentation is None:
                return seismic, targets  # cached already normalised
        else:
            seismic, velocity, edges = self.read(self.indices[positions])
            targets = self._targets(velocity, edges)
        if self.augmentation is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index, 17])
            if self.augmentation.velocity_scale_probability > 0:
                seismic, targets = self._scale_velocity(seismic, targets, index)
            if self.augmentation.mirror_probability > 0:
                seismic, targets = mirror(
                    seismic,
                    targets,
                    self._mirror_order,
                    self.augmentation.mirror_probability,
                    np.random.default_rng([self.seed, self.epoch, index, 31]),
                )
            seismic = augment(seismic, self.augmentation, rng)
        return normalize_seismic_inplace(seismic, self.stats), targets

    # --- Public helpers ---------------------------------------------------------------------------------

    def fits_in_memory(self, fraction: float = 0.25) -> bool:
        """Whether the split, as float32 arrays, takes at most ``fraction`` of the memory available now."""
        import psutil

        per_sample = 4 * (math.prod(self.seismic_shape) + len(self.outputs) * math.prod(self.grid_shape))
        return per_sample * len(self.indices) <= fraction * psutil.virtual_memory().available

    @property
    def num_samples(self) -> int:
        """Samples per epoch (after ``drop_remainder``)."""
        return len(self) * self.batch_size if self.drop_remainder else len(self.indices)

    def as_tf_dataset(self):
        """This dataset as a ``tf.data.Dataset`` whose elements are this worker's batches, with tf.data's
        auto-sharding off (multi-worker training: the ``shard`` argument already splits every batch)."""
        import tensorflow as tf

        x, y = self[0]
        signature = (
            tf.TensorSpec((None, *x.shape[1:]), tf.float32),
            {name: tf.TensorSpec((None, *values.shape[1:]), tf.float32) for name, values in y.items()},
        )
        dataset = tf.data.Dataset.from_generator(
            lambda: (self[index] for index in range(len(self))), output_signature=signature
        ).apply(tf.data.experimental.assert_cardinality(len(self)))  # Keras then knows an epoch's length
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return dataset.with_options(options).prefetch(2)

    def set_epoch(self, epoch: int) -> None:
        """Uses the order of ``epoch`` for the next pass (resuming starts at the interrupted epoch)."""
        self.epoch = int(epoch)
        self._order = self._order_for(self.epoch)

    def set_stage(self, families: Sequence[str] | None = None, active_shots: int | None = None) -> None:
        """Curriculum: from now on serve only samples of ``families`` (None: every sample of this dataset) and
        keep ``active_shots`` evenly spread shots (None: all; the others are zeroed).

        The number of batches stays that of the whole dataset, so that every epoch has the same number of
        steps (the learning-rate schedule counts them, and Keras fixes an epoch's length when ``fit`` starts):
        a stage with fewer samples serves them again, each pass in its own order drawn from
        ``(seed, epoch, pass)``.
        """
        positions = None
        if families:
            positions = np.flatnonzero(np.isin(self.families, list(families)))
            if positions.size == 0:
                raise UserError(
                    f"No {self.split} sample of famil{'y' if len(families) == 1 else 'ies'} "
                    f"{', '.join(sorted(families))} in {self.path}; it holds {', '.join(sorted(set(self.families)))}."
                )
        mask = shot_mask(self.seismic_shape[0], active_shots)
        if (mask is None) != (self.shot_mask is None) or (
            mask is not None and not np.array_equal(mask, self.shot_mask)
        ):
            with self._cache_lock:
                self._cached = None  # the cache holds the masked seismic
        self.shot_mask = mask
        self._stage_positions = positions
        self._order = self._order_for(self.epoch)

    def epoch_order(self, epoch: int | None = None) -> np.ndarray:
        """Dataset sample indices in the order they are served in ``epoch`` (default: the current one)."""
        order = self._order if epoch is None else self._order_for(epoch)
        served = order[: self.num_samples]
        return self.indices[served]

    def read(self, sample_indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw ``seismic`` (pressure), ``velocity`` (m/s) and ``edges`` (uint8) of the given samples, in order.

        The curriculum's shot mask is applied (masked shots are zero).
        """
        wanted = np.asarray(sample_indices, dtype=np.int64)
        h5 = self._h5()
        seismic = _read_samples(h5[schema.SEISMIC], wanted)
        velocity = _read_samples(h5[schema.VELOCITY], wanted)
        edges = _read_samples(h5[schema.EDGES], wanted)
        if self.shot_mask is not None:
            seismic[:, ~self.shot_mask] = 0.0
        return seismic, velocity, edges

    def read_labels(self, sample_indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``velocity`` (m/s) and ``edges`` (uint8) of the given samples, in order (no seismic is read)."""
        wanted = np.asarray(sample_indices, dtype=np.int64)
        h5 = self._h5()
        return _read_samples(h5[schema.VELOCITY], wanted), _read_samples(h5[schema.EDGES], wanted)

    def families_of(self, sample_indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Family names of the given dataset samples (``"unknown"`` where the dataset does not say)."""
        return self._all_families[np.asarray(sample_indices, dtype=np.int64)]

    def sample_ids_of(self, sample_indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """The ``sample_id`` values of the given dataset samples (unique together with the origin)."""
        return self._sample_ids[np.asarray(sample_indices, dtype=np.int64)]

    def origins_of(self, sample_indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """The origin name (synthesize folder, SEG-Y or OpenFWI file) of the given dataset samples."""
        return self._origin_names[np.asarray(sample_indices, dtype=np.int64)]

    def close(self) -> None:
        if self._file is not None and self._file_pid == os.getpid():
            self._file.close()
        self._file = None
        self._file_pid = None

    # --- Internals --------------------------------------------------------------------------------------

    def _cached_split(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The whole split in ``self.indices`` order: seismic (normalised unless augmentation needs it raw)
        and the targets, read once per process in batches."""
        with self._cache_lock:
            if self._cached is None:
                count = len(self.indices)
                seismic = np.empty((count, *self.seismic_shape), dtype=np.float32)
                targets = {
                    name: np.empty((count, *self.grid_shape), dtype=np.float32) for name in self.outputs
                }
                for start in range(0, count, self.batch_size):
                    part = slice(start, min(start + self.batch_size, count))
                    raw, velocity, edges = self.read(self.indices[part])
                    if self.augmentation is None:  # augmentation works on raw amplitudes
                        raw = normalize_seismic_inplace(raw.astype(np.float32, copy=False), self.stats)
                    seismic[part] = raw
                    for name, values in self._targets(velocity, edges).items():
                        targets[name][part] = values
                self._cached = (seismic, targets)
            return self._cached

    def _scale_velocity(self, seismic, targets, index: int):
        """``scale_velocity`` on a batch whose velocity targets are normalised (its own random stream)."""
        rng = np.random.default_rng([self.seed, self.epoch, index, 29])
        # min-max targets are bounded to the dataset's range by the network's tanh; standardised ones are not
        velocity = VelocityNormalization.from_stats(self.stats)
        bounds = (velocity.min_mps, velocity.max_mps) if velocity.method == "minmax" else (0.0, np.inf)
        velocity_mps = denormalize_velocity(targets[VELOCITY], self.stats)
        seismic, velocity_mps = scale_velocity(seismic, velocity_mps, self.augmentation, rng, bounds)
        return seismic, {**targets, VELOCITY: normalize_velocity(velocity_mps, self.stats)}

    def _targets(self, velocity: np.ndarray, edges: np.ndarray) -> dict[str, np.ndarray]:
        targets = {VELOCITY: normalize_velocity(velocity, self.stats)}
        if EDGES in self.outputs:
            targets[EDGES] = edges.astype(np.float32)
        return targets

    def _order_for(self, epoch: int) -> np.ndarray:
        if self._stage_positions is not None:
            positions, needed = self._stage_positions, len(self.indices)
            passes = [
                positions[np.random.default_rng([self.seed, int(epoch), number]).permutation(positions.size)]
                if self.shuffle
                else positions
                for number in range(math.ceil(needed / positions.size))
            ]
            return np.concatenate(passes)[:needed]
        if not self.shuffle:
            return np.arange(len(self.indices))
        return np.random.default_rng([self.seed, int(epoch)]).permutation(len(self.indices))

    def _h5(self) -> h5py.File:
        # Opened once per process: a handle inherited through fork() is never used.
        if self._file is None or self._file_pid != os.getpid():
            self._file = h5py.File(self.path, "r", rdcc_nbytes=schema.READ_CHUNK_CACHE_BYTES)
            self._file_pid = os.getpid()
        return self._file

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"] = None
        state["_file_pid"] = None
        state["_cached"] = None  # a worker process reads its own copy
        state["_cache_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cache_lock = threading.Lock()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


__all__ = [
    "AugmentationConfig",
    "SeismicDataset",
    "augment",
    "mirror",
    "mirror_shot_order",
    "scale_velocity",
    "read_sample_families",
    "shot_mask",
]
