"""The trained-model bundle: a Keras model plus everything needed to apply it to raw seismic data.

Pipeline position: ``pipeline.train`` writes a bundle at the end of training (and logs it to MLflow inside
the pyfunc model, see ``pipeline.tracking``); ``load_bundle`` reads it from a folder or a ``.keras`` file.
MLflow addresses (``runs:/…``, ``models:/…``) are resolved by ``pipeline.tracking.load_bundle``, which
downloads the bundle and then calls this one: this module knows nothing of MLflow (``pipeline.tracking``
imports it, not the other way round).

A bundle is a directory::

    model.keras    the Keras model (custom objects registered by ``import models``; loads with safe_mode)
    bundle.json    schema_version, model family, output names, the dataset's NormalizationStats, the
                   training geometry (metres), the engine settings of the training data, dataset lineage,
                   training seismic amplitude statistics (for survey calibration), versions

``ModelBundle.predict`` takes **raw** seismic ``(batch, shots, time, receivers)`` float32 in the training
data's units, normalises it with the bundled statistics and returns velocity in m/s (denormalised with
``data_prep.normalization.denormalize_velocity``, the one denormaliser) and edge probabilities.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import __version__
from core.config import json_ready
from core.errors import UserError
from data_prep.normalization import NormalizationStats, denormalize_velocity, normalize_seismic
from data_prep.schema import DatasetGeometry
from pipeline.feeding import average_with_mirror, mirror_shot_order, mirrored_seismic

BUNDLE_FORMAT = "seisinvert-model-bundle"
BUNDLE_SCHEMA_VERSION = 1
MODEL_FILE = "model.keras"
INFO_FILE = "bundle.json"

#: Output keys of ``ModelBundle.predict`` (the pyfunc returns the same names).
VELOCITY_MPS = "velocity_mps"
EDGES = "edges"

#: URI schemes resolved through MLflow (``pipeline.tracking.load_bundle``), refused by ``load_bundle`` here.
MLFLOW_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/")


# ----------------------------------------------------------------------------------------------------------
# Amplitude statistics (survey calibration)
# ----------------------------------------------------------------------------------------------------------


def amplitude_statistics(seismic: np.ndarray) -> dict[str, float]:
    """Robust amplitude statistics of raw seismic windows, for calibrating survey data to training units.

    Args:
        seismic: ``(windows, shots, time, receivers)`` float32, raw units (pressure as recorded).

    Returns:
        ``rms_median``: median over windows of each window's RMS; ``rms_p90``: its 90th percentile;
        ``abs_p99``: 99th percentile of ``|x|`` over every value; ``abs_max``: largest ``|x|``;
        ``num_windows``. A survey window whose RMS is ``r`` matches the training data's level after
        multiplication by ``rms_median / r``.
    """
    seismic = np.asarray(seismic, dtype=np.float32)
    if seismic.ndim != 4 or seismic.shape[0] == 0:
        raise ValueError(
            f"amplitude_statistics takes (windows, shots, time, receivers) with at least one window. "
            f"Received shape {seismic.shape}"
        )
    flat = seismic.reshape(seismic.shape[0], -1).astype(np.float64)
    rms = np.sqrt(np.mean(np.square(flat), axis=1))
    magnitude = np.abs(flat).ravel()
    return {
        "rms_median": float(np.median(rms)),
        "rms_p90": float(np.percentile(rms, 90)),
        "abs_p99": float(np.percentile(magnitude, 99)),
        "abs_max": float(magnitude.max()),
        "num_windows": int(seismic.shape[0]),
    }


# ----------------------------------------------------------------------------------------------------------
# The bundle
# ----------------------------------------------------------------------------------------------------------


@dataclass
class ModelBundle:
    """A loaded bundle: the model and the numbers that connect it to raw data.

    Attributes:
        model: the Keras model (normalised seismic in, normalised velocity and edge probabilities out).
        stats: the training dataset's normalisation statistics.
        geometry: the acquisition geometry the model was trained for (positions in metres).
        engine_settings: forward-modelling settings of the training data (empty when unknown).
        info: the whole ``bundle.json`` content.
        path: the bundle directory on disk (None for a bundle built in memory).
    """

    model: Any
    stats: NormalizationStats
    geometry: DatasetGeometry
    engine_settings: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def family(self) -> str:
        return str(self.info.get("family", "unknown"))

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(self.model.output_names)

    @property
    def has_edges(self) -> bool:
        return "edges" in self.output_names

    @property
    def seismic_shape(self) -> tuple[int, int, int]:
        """``(shots, time, receivers)`` of one input sample."""
        return (self.geometry.num_shots, self.geometry.num_samples, self.geometry.num_receivers)

    @property
    def grid_shape(self) -> tuple[int, int]:
        return tuple(int(n) for n in self.geometry.grid_shape)

    def check_input(self, seismic: Any) -> np.ndarray:
        """Returns ``seismic`` as float32 ``(batch, shots, time, receivers)`` or raises ``UserError``."""
        try:
            array = np.asarray(seismic, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise UserError(f"Seismic input must be a numeric array ({error}).") from None
        expected = self.seismic_shape
        if array.ndim != 4 or tuple(array.shape[1:]) != expected:
            hint = " (add a leading batch axis for a single sample)" if array.shape == expected else ""
            raise UserError(
                f"This model takes seismic of shape (batch, shots, time, receivers) = (batch, {expected[0]}, "
                f"{expected[1]}, {expected[2]}), the geometry it was trained for{hint}. "
                f"Received shape {tuple(array.shape)}. Resample or window the data to that geometry "
                "(pipeline.infer does this for survey lines)."
            )
        if array.shape[0] and not np.all(np.isfinite(array)):
            raise UserError("Seismic input holds NaN or Inf values: remove or zero them before prediction.")
        return array

    def predict(
        self, seismic: Any, batch_size: int = 16, mirror_average: bool = False
    ) -> dict[str, np.ndarray | None]:
        """Velocity in m/s and edge probabilities for raw seismic.

        Args:
            seismic: ``(batch, shots, time, receivers)`` float32, raw (the training data's units).
            batch_size: samples per forward pass.
            mirror_average: also predict each sample mirrored left to right (receivers reversed, each shot
                played by the shot at its mirrored position) and average the two sections, the second
                mirrored back: a test-time augmentation that costs a second forward pass. Needs a geometry
                that mirrors onto itself within one cell (OpenFWI's does, its middle shot moving 10 m).

        Returns:
            ``{"velocity_mps": (batch, depth, x) float32 m/s, "edges": (batch, depth, x) float32 in [0, 1]
            or None when the model has no edge head}``.

        Raises:
            UserError: the input's shape does not match the training geometry, or it holds NaN/Inf, or
                ``mirror_average`` is asked of a geometry that does not mirror onto itself.
        """
        array = self.check_input(seismic)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1. Received: {batch_size}")
        outputs = self._predict(array, batch_size)
        if mirror_average:
            mirrored = self._predict(mirrored_seismic(array, self.mirror_order()), batch_size)
            outputs = {
                name: None if values is None else average_with_mirror(values, mirrored[name])
                for name, values in outputs.items()
            }
        return outputs

    def mirror_order(self) -> np.ndarray:
        """The shot order of a sample of this model's geometry mirrored left to right (``mirror_average``; a
        mirrored shot may land up to one cell from the shot that plays it).

        Raises:
            UserError: the geometry does not mirror onto itself (names the shot or receivers that do not).
        """
        return mirror_shot_order(
            self.geometry, 1, option="mirror_average", turn_off="mirror_average=false", shift_option=None
        )

    def _predict(self, array: np.ndarray, batch_size: int) -> dict[str, np.ndarray | None]:
        depth, width = self.grid_shape
        velocity = np.empty((len(array), depth, width), dtype=np.float32)
        edges = np.empty((len(array), depth, width), dtype=np.float32) if self.has_edges else None
        for start in range(0, len(array), batch_size):
            stop = min(start + batch_size, len(array))
            outputs = self.model(normalize_seismic(array[start:stop], self.stats), training=False)
            velocity[start:stop] = denormalize_velocity(np.asarray(outputs["velocity"]), self.stats)
            if edges is not None:
                edges[start:stop] = np.asarray(outputs["edges"], dtype=np.float32)
        return {VELOCITY_MPS: velocity, EDGES: edges}


def save_bundle(
    directory: str | Path,
    model: Any,
    *,
    stats: NormalizationStats,
    geometry: DatasetGeometry,
    engine_settings: Mapping[str, Any] | None = None,
    dataset_info: Mapping[str, Any] | None = None,
    amplitude_stats: Mapping[str, Any] | None = None,
    family: str | None = None,
    extra: Mapping[str, Any] | None = None,
    overwrite: bool = True,
) -> Path:
    """Writes a bundle directory atomically (a temporary sibling folder, renamed when complete).

    Args:
        directory: the bundle folder to create.
        model: the trained Keras model.
        stats: the training dataset's normalisation statistics.
        geometry: the training geometry (``DatasetGeometry``, metres).
        engine_settings: forward-modelling settings from the dataset provenance (may be empty).
        dataset_info: lineage (path, digest, schema version, families, split sizes, ...).
        amplitude_stats: ``amplitude_statistics`` of the training split, raw units.
        family: the model family name; taken from the model's class when omitted.
        extra: further JSON-serialisable entries (e.g. the MLflow run id, the training config).
        overwrite: replace an existing bundle (otherwise ``FileExistsError``).

    Returns:
        The bundle directory.
    """
    import keras

    directory = Path(directory)
    if directory.exists() and not overwrite:
        raise FileExistsError(f"{directory} already exists; remove it or choose another bundle folder.")
    info = {
        "format": BUNDLE_FORMAT,
        "schema_version": BUNDLE_SCHEMA_VERSION,
        "family": family or model_family(model),
        "output_names": list(model.output_names),
        "prediction_outputs": [VELOCITY_MPS] + ([EDGES] if "edges" in model.output_names else []),
        "seismic_axes": "batch,shot,time,receiver",
        "seismic_shape": [geometry.num_shots, geometry.num_samples, geometry.num_receivers],
        "grid_shape": [int(n) for n in geometry.grid_shape],
        "normalization": stats.to_dict(),
        "geometry": geometry.to_json(),
        "engine_settings": dict(engine_settings or {}),
        "dataset": dict(dataset_info or {}),
        "amplitude_statistics": dict(amplitude_stats or {}),
        "package_version": __version__,
        "keras_version": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **dict(extra or {}),
    }
    text = json.dumps(json_ready(info), indent=2, sort_keys=False, allow_nan=False) + "\n"
    directory.parent.mkdir(parents=True, exist_ok=True)
    temporary = directory.with_name(f".{directory.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
    try:
        temporary.mkdir()
        model.save(temporary / MODEL_FILE)
        (temporary / INFO_FILE).write_text(text)
        _replace_directory(temporary, directory)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return directory


def load_bundle(uri_or_path: str | Path, compile: bool = False) -> ModelBundle:  # noqa: A002 - Keras' name
    """Loads a bundle from a folder or a ``.keras`` file beside a ``bundle.json``.

    Args:
        uri_or_path: a bundle folder, or its ``model.keras`` or ``bundle.json``. For ``runs:/<run_id>/<path>``,
            ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` use ``pipeline.tracking.load_bundle``
            (it downloads the bundle from the MLflow store, then calls this function).
        compile: restore the training configuration (losses, metrics) too.

    Raises:
        UserError: nothing loadable at that location, an MLflow address, or a bundle of an unknown schema
            version.
    """
    text = str(uri_or_path)
    if text.startswith(MLFLOW_SCHEMES):
        raise UserError(
            f"{text} is an MLflow address: load it with pipeline.tracking.load_bundle, which resolves it "
            "against the tracking store (pipeline.bundle.load_bundle reads bundle folders)."
        )
    directory = _bundle_directory(Path(uri_or_path))
    info_path = directory / INFO_FILE
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{info_path} is not valid JSON ({error}): re-export the model.") from None
    if info.get("format") != BUNDLE_FORMAT:
        raise UserError(f"{info_path} is not a {BUNDLE_FORMAT} description (format={info.get('format')!r}).")
    if int(info.get("schema_version", -1)) > BUNDLE_SCHEMA_VERSION:
        raise UserError(
            f"{info_path} has bundle schema version {info.get('schema_version')}; this code reads up to "
            f"{BUNDLE_SCHEMA_VERSION}. Upgrade seisinvert."
        )
    import keras

    import models  # noqa: F401 - registers the custom layers, losses and metrics

    model = keras.saving.load_model(directory / MODEL_FILE, compile=compile, safe_mode=True)
    return ModelBundle(
        model=model,
        stats=NormalizationStats.from_dict(info["normalization"]),
        geometry=geometry_from_json(info["geometry"]),
        engine_settings=dict(info.get("engine_settings") or {}),
        info=info,
        path=directory,
    )


def geometry_from_json(values: Mapping[str, Any]) -> DatasetGeometry:
    """Inverse of ``DatasetGeometry.to_json`` (unknown keys are ignored, so newer bundles still load)."""
    return DatasetGeometry.from_json(dict(values))


def model_family(model: Any) -> str:
    """The registry name of a model's class (``unet``, ``inversionnet``, ...), or its class name."""
    import models

    for name, (model_class, _) in models.MODELS.items():
        if isinstance(model, model_class):
            return name
    return type(model).__name__


def engine_settings_from_provenance(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """The forward-modelling settings recorded in a dataset's provenance, or ``{}`` for older datasets.

    Looks for an ``engine`` / ``engine_settings`` provenance attribute (JSON or a mapping), then for an
    ``engine`` entry in the recorded sources (synthesize manifests).
    """
    for key in ("engine_settings", "engine"):
        value = provenance.get(key)
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                continue
        if isinstance(value, Mapping) and value:
            return dict(value)
    sources = provenance.get("sources") or []
    for source in sources if isinstance(sources, list) else []:
        if isinstance(source, Mapping):
            for key in ("engine_settings", "engine"):
                if isinstance(source.get(key), Mapping):
                    return dict(source[key])
    return {}


# ----------------------------------------------------------------------------------------------------------
# Internals
# ----------------------------------------------------------------------------------------------------------


def _bundle_directory(path: Path) -> Path:
    if path.is_dir():
        if (path / INFO_FILE).is_file() and (path / MODEL_FILE).is_file():
            return path
        found = sorted(p.parent for p in path.rglob(INFO_FILE) if (p.parent / MODEL_FILE).is_file())
        if len(found) == 1:
            return found[0]
        raise UserError(
            f"{path} is not a model bundle (it needs {MODEL_FILE} and {INFO_FILE}"
            + (f"; found {len(found)} bundles below it" if found else "")
            + "). Pass the folder written by pipeline.train, or an MLflow models:/ or runs:/ URI."
        )
    if path.is_file() and (path.name in (MODEL_FILE, INFO_FILE) or path.suffix == ".keras"):
        if (path.parent / INFO_FILE).is_file():
            if path.suffix == ".keras" and path.name != MODEL_FILE:
                raise UserError(
                    f"{path}: a bundle's model file must be named {MODEL_FILE} beside {INFO_FILE}."
                )
            return path.parent
        raise UserError(
            f"{path} has no {INFO_FILE} beside it, so its normalisation statistics and geometry are unknown. "
            "Use the bundle folder written by pipeline.train (or an MLflow URI)."
        )
    raise UserError(f"Model {path} does not exist. Pass a bundle folder, a models:/ or a runs:/ URI.")


def _replace_directory(temporary: Path, destination: Path) -> None:
    """Renames ``temporary`` to ``destination``, replacing an existing folder with one rename in place."""
    if not destination.exists():
        os.replace(temporary, destination)
        return
    old = destination.with_name(f".{destination.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.old")
    os.replace(destination, old)
    try:
        os.replace(temporary, destination)
    except BaseException:
        os.replace(old, destination)
        raise
    shutil.rmtree(old, ignore_errors=True)


__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_SCHEMA_VERSION",
    "EDGES",
    "INFO_FILE",
    "MODEL_FILE",
    "ModelBundle",
    "VELOCITY_MPS",
    "amplitude_statistics",
    "engine_settings_from_provenance",
    "geometry_from_json",
    "load_bundle",
    "model_family",
    "save_bundle",
]
