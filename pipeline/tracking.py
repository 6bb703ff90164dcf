"""All MLflow code of the project: runs, parameters, metrics, images, dataset lineage, the pyfunc model,
the registry and the resolution of ``runs:/`` and ``models:/`` URIs, and the MLflow settings every stage shares
(``TrackingSettings``, the ``tracking:`` section of the training, evaluation and inference configurations).

Pipeline position: ``pipeline.train``, ``pipeline.evaluate`` and ``pipeline.compare`` log through
``RunTracker``; ``pipeline.infer`` logs its runs through ``log_inference_to_mlflow`` and records the model's
lineage with ``model_lineage``; ``load_bundle`` loads a bundle from a folder or an MLflow URI (resolved
through ``download_bundle``; ``pipeline.bundle`` reads folders only); the registered model is a
``SeisinvertModel`` pyfunc wrapping a model bundle (``pipeline.bundle``).

Conventions (MLflow 3.17 facts that shaped them):

* Default store: ``sqlite:///mlflow.db`` in the working directory (artifacts under ``./mlruns``); any other
  tracking URI (``http://127.0.0.1:PORT`` of an ``mlflow server``) works the same way.
* Metric names are Keras' log names: ``loss``, ``velocity_mae`` (OpenFWI [-1, 1] scale), ``velocity_ssim``,
  ``velocity_mae_mps`` (m/s), ``edges_f1``... and ``val_…`` for validation, ``test_…`` for the test split;
  the step is the epoch (0-based).
* System metrics (CPU, memory; GPU when ``nvidia-ml-py`` is installed) need ``psutil`` and are sampled
  every ``system_metrics_interval_s`` seconds, so they appear in runs of a few minutes.
* ``mlflow.autolog()`` is never called (it crashes ``fit`` on TF 2.21).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import logging
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.config import json_ready
from core.errors import UserError
from pipeline.bundle import EDGES, INFO_FILE, MLFLOW_SCHEMES, MODEL_FILE, VELOCITY_MPS, ModelBundle
from pipeline.bundle import load_bundle as load_local_bundle

logger = logging.getLogger(__name__)

DEFAULT_STORE_FILE = "mlflow.db"
#: Alias of the best registered version by validation SSIM.
CHAMPION_ALIAS = "champion"
#: Metric ranking registered versions for the champion alias.
CHAMPION_METRIC = "val_velocity_ssim"
#: Artifact name of the logged pyfunc model and of the bundle inside it.
MODEL_ARTIFACT = "model"
BUNDLE_ARTIFACT = "bundle"

TAG_PREFIX = "seisinvert."


@dataclass(frozen=True)
class TrackingSettings:
    """MLflow settings of a stage (YAML: ``tracking``), the same keys in every stage that logs.

    Training adds its own keys (``pipeline.training.config.TrackingConfig``); a stage sets its defaults where it
    holds the section (inference: off, experiment ``inference``).

    Attributes:
        enabled: log to MLflow at all.
        tracking_uri: store; None uses ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db`` in the working dir.
        experiment: experiment name.
        run_name: display name of the run (None: the stage names it after its inputs).
    """

    enabled: bool = True
    tracking_uri: str | None = None
    experiment: str = "seisinvert"
    run_name: str | None = None


def _mlflow():
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # tqdm bars print a carriage-return line per refresh into logs; the downloads here are small.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    global _MLFLOW_LOGGING_SET
    if not _MLFLOW_LOGGING_SET and "MLFLOW_LOGGING_LEVEL" not in os.environ:
        # MLflow logs database migrations and run links at INFO through its own handler (set up when it is
        # imported): keep training output to its own lines.
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        _MLFLOW_LOGGING_SET = True
    return mlflow


_MLFLOW_LOGGING_SET = False


# ----------------------------------------------------------------------------------------------------------
# Store and dashboard
# ----------------------------------------------------------------------------------------------------------


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI to use: ``uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``."""
    if uri:
        if "://" not in uri and not uri.startswith(("sqlite:", "databricks")):
            # A bare path: a sqlite file there.
            return f"sqlite:///{Path(uri).resolve()}"
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path.cwd() / DEFAULT_STORE_FILE}"


def set_tracking_uri(tracking_uri: str) -> None:
    """Makes ``tracking_uri`` the store that ``runs:/`` and ``models:/`` URIs are resolved against."""
    _mlflow().set_tracking_uri(tracking_uri)


def dashboard_command(tracking_uri: str) -> str:
    """The one line that shows a store in the browser (a server URI is opened directly)."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri} in a browser"
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri[len("sqlite:///") :])
        try:
            shown = path.relative_to(Path.cwd())
        except ValueError:
            shown = path
        if shown == Path(DEFAULT_STORE_FILE):
            return "python -m pipeline.dashboard   # then open http://127.0.0.1:5000"
        return f"python -m pipeline.dashboard --store {shown}   # then open http://127.0.0.1:5000"
    return f"mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1"


def _artifact_location_for(tracking_uri: str) -> str | None:
    """Artifacts of a sqlite store go to ``mlruns/`` next to the database file (MLflow's default is the cwd)."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri[len("sqlite:///") :]).parent / "mlruns").resolve().as_uri()
    return None


def ensure_experiment(tracking_uri: str, name: str) -> str:
    """The id of experiment ``name`` in the store, created if needed."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=_artifact_location_for(tracking_uri))
    except mlflow.exceptions.MlflowException:
        # Another process created it first.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def git_commit() -> str:
    """The checkout's commit (with ``-dirty`` when files are modified), or ``unknown``."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def environment_tags() -> dict[str, str]:
    """Git commit, Keras backend and version, device, package version."""
    import keras

    from core import __version__

    devices = "cpu"
    try:
        if keras.backend.backend() == "jax":
            import jax

            devices = ",".join(
                sorted({f"{d.platform}:{len(jax.devices(d.platform))}" for d in jax.devices()})
            )
        elif keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_logical_devices("GPU")
            devices = f"gpu:{len(gpus)}" if gpus else f"cpu:{len(tf.config.list_logical_devices('CPU'))}"
    except Exception:  # noqa: BLE001 - a tag is not worth failing a run
        pass
    return {
        "mlflow.source.git.commit": git_commit(),
        f"{TAG_PREFIX}git_commit": git_commit(),
        f"{TAG_PREFIX}keras_backend": keras.backend.backend(),
        f"{TAG_PREFIX}keras_version": keras.__version__,
        f"{TAG_PREFIX}device": devices,
        f"{TAG_PREFIX}package_version": __version__,
        f"{TAG_PREFIX}cpu_count": str(
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        ),
    }


# ----------------------------------------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------------------------------------


def flatten_params(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config dict -> ``{"a.b.c": "value"}`` strings within MLflow's length limits."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, f"{name}."))
        else:
            text = json.dumps(value) if isinstance(value, list | tuple | Mapping) else str(value)
            flat[name[:250]] = text if len(text) <= 6000 else text[:5997] + "..."
    return flat


class RunTracker:
    """One MLflow run: start or resume it, log to it, end it. A disabled tracker does nothing.

    Args:
        tracking_uri: store URI (``resolve_tracking_uri``).
        experiment: experiment name.
        run_name: display name of a new run.
        run_id: resume this run instead of creating one (its metrics continue; no step is logged twice
            by ``log_metrics(..., skip_logged=True)``).
        parent_run_id: make the new run a child of this one (model comparison).
        system_metrics: sample CPU/memory (and GPU) every ``system_metrics_interval_s`` seconds.
        enabled: False on non-chief workers of a multi-worker job.
        tags: extra tags of a new run.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        run_name: str | None = None,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        system_metrics: bool = True,
        system_metrics_interval_s: float = 2.0,
        enabled: bool = True,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.run_id = run_id
        self.parent_run_id = parent_run_id
        self.system_metrics = system_metrics
        self.system_metrics_interval_s = system_metrics_interval_s
        self.enabled = enabled
        self.tags = dict(tags or {})
        self.resumed = run_id is not None
        self.experiment_id: str | None = None
        self._active = None
        self._client = None

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> RunTracker:
        if not self.enabled:
            return self
        mlflow = _mlflow()
        mlflow.set_tracking_uri(self.tracking_uri)
        self._client = mlflow.MlflowClient(self.tracking_uri)
        if self.run_id is not None:
            try:
                run = self._client.get_run(self.run_id)
            except mlflow.exceptions.MlflowException:
                raise UserError(
                    f"MLflow run {self.run_id} does not exist in {self.tracking_uri}: pass the tracking URI the "
                    "run was logged to (--tracking-uri)."
                ) from None
            self.experiment_id = run.info.experiment_id
        else:
            self.experiment_id = ensure_experiment(self.tracking_uri, self.experiment)
        system_metrics = self.system_metrics and _has_psutil()
        if system_metrics:
            mlflow.set_system_metrics_sampling_interval(self.system_metrics_interval_s)
            mlflow.set_system_metrics_samples_before_logging(1)
        tags = {**environment_tags(), **self.tags} if self.run_id is None else None
        with _quiet_mlflow():
            self._active = mlflow.start_run(
                run_id=self.run_id,
                experiment_id=None if self.run_id else self.experiment_id,
                run_name=None if self.run_id else self.run_name,
                parent_run_id=self.parent_run_id,
                nested=self.parent_run_id is not None,
                tags=tags,
                log_system_metrics=system_metrics,
            )
        self.run_id = self._active.info.run_id
        return self

    def end(self, status: str = "FINISHED") -> None:
        if not self.enabled or self._active is None:
            return
        mlflow = _mlflow()
        with _quiet_mlflow():
            mlflow.end_run(status=status)
        self._active = None

    def __enter__(self) -> RunTracker:
        return self.start()

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.end("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end("KILLED")
        else:
            self.end("FAILED")

    @property
    def client(self):
        if self._client is None:
            self._client = _mlflow().MlflowClient(self.tracking_uri)
        return self._client

    # --- logging ------------------------------------------------------------------------------------------

    def log_config(self, config_dict: Mapping[str, Any], yaml_text: str) -> None:
        """The resolved configuration as params (once per run) and as ``config.yaml``."""
        if not self.enabled:
            return
        mlflow = _mlflow()
        params = flatten_params(config_dict)
        existing = self.client.get_run(self.run_id).data.params
        new = {key: value for key, value in params.items() if key not in existing}
        items = list(new.items())
        for start in range(0, len(items), 100):  # MLflow's batch limit
            mlflow.log_params(dict(items[start : start + 100]))
        mlflow.log_text(yaml_text, "config.yaml")

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self.enabled:
            _mlflow().set_tags({key: str(value) for key, value in tags.items()})

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        existing = self.client.get_run(self.run_id).data.params
        new = {key: str(value) for key, value in params.items() if key not in existing}
        if new:
            _mlflow().log_params(new)

    def logged_steps(self, key: str) -> set[int]:
        """Steps already logged for metric ``key`` in this run."""
        if not self.enabled:
            return set()
        return {metric.step for metric in self.client.get_metric_history(self.run_id, key)}

    def log_metrics(
        self, metrics: Mapping[str, float], step: int | None = None, skip_logged: bool = False
    ) -> None:
        """Logs finite numbers; with ``skip_logged``, keys already logged at ``step`` are left out."""
        if not self.enabled:
            return
        values = {
            key: float(value)
            for key, value in metrics.items()
            if value is not None and np.isfinite(float(value))
        }
        if skip_logged and step is not None:
            values = {key: value for key, value in values.items() if step not in self.logged_steps(key)}
        if values:
            _mlflow().log_metrics(values, step=step)

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        """An RGB uint8 image as step ``step`` of the image series ``key``."""
        if self.enabled:
            _mlflow().log_image(np.asarray(image, dtype=np.uint8), key=key, step=int(step))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.enabled:
            _mlflow().log_artifact(str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        if self.enabled:
            _mlflow().log_text(text, artifact_file)

    def log_image_file(self, image: np.ndarray, artifact_file: str) -> None:
        """A single image artifact (PNG) at ``artifact_file``."""
        if self.enabled:
            _mlflow().log_image(np.asarray(image, dtype=np.uint8), artifact_file=artifact_file)

    def log_dataset(self, info: Mapping[str, Any], context: str = "training") -> None:
        """Dataset lineage: an ``mlflow.data`` dataset (path, digest, schema) + ``log_input`` + params.

        Args:
            info: ``dataset_info`` of ``pipeline.lineage`` (path, digest, schema_version, families, split
                sizes, seismic and grid shapes).
            context: ``training`` or ``evaluation``.
        """
        if not self.enabled:
            return
        mlflow = _mlflow()
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.types import Schema, TensorSpec

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source = resolve_dataset_source(Path(info["path"]).resolve().as_uri())
        seismic_shape = tuple(info.get("seismic_shape", ()))
        grid_shape = tuple(info.get("grid_shape", ()))
        schema = Schema(
            [
                TensorSpec(np.dtype(np.float32), (-1, *seismic_shape), "seismic"),
                TensorSpec(np.dtype(np.float32), (-1, *grid_shape), "velocity"),
                TensorSpec(np.dtype(np.uint8), (-1, *grid_shape), "edges"),
            ]
        )
        dataset = MetaDataset(
            source, name=Path(info["path"]).name, digest=str(info["digest"])[:32], schema=schema
        )
        tags = {
            "schema_version": str(info.get("schema_version")),
            "families": ",".join(info.get("families", [])),
            **{f"{split}_samples": str(size) for split, size in info.get("split_sizes", {}).items()},
        }
        mlflow.log_input(dataset, context=context, tags=tags)
        self.log_params(
            {
                "dataset.path": str(info["path"]),
                "dataset.digest": str(info["digest"]),
                "dataset.schema_version": info.get("schema_version"),
                "dataset.families": ",".join(info.get("families", [])),
                **{f"dataset.{split}_samples": size for split, size in info.get("split_sizes", {}).items()},
            }
        )

    def log_bundle_model(
        self,
        bundle_dir: str | Path,
        registered_model_name: str | None = None,
        champion_metric_value: float | None = None,
    ) -> dict[str, Any]:
        """Logs a bundle as the run's pyfunc model (explicit signature), registers it and sets ``champion``.

        Returns:
            ``{"model_uri": "runs:/…/model", "registered_model": name or None, "version": str or None,
            "champion": bool}``.
        """
        if not self.enabled:
            return {"model_uri": None, "registered_model": None, "version": None, "champion": False}
        mlflow = _mlflow()
        bundle = json.loads((Path(bundle_dir) / INFO_FILE).read_text())
        signature = model_signature(
            tuple(bundle["seismic_shape"]), tuple(bundle["grid_shape"]), EDGES in bundle["prediction_outputs"]
        )
        with _quiet_mlflow():
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=SeisinvertModel(),
                artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
                signature=signature,
                pip_requirements=_pip_requirements(),
                metadata={
                    "seisinvert_bundle": {k: bundle[k] for k in ("family", "seismic_shape", "grid_shape")}
                },
            )
        model_uri = f"runs:/{self.run_id}/{MODEL_ARTIFACT}"
        result = {
            "model_uri": model_uri,
            "logged_model_uri": info.model_uri,
            "registered_model": None,
            "version": None,
            "champion": False,
        }
        if registered_model_name:
            version, champion = register_model(
                self.tracking_uri, info.model_uri, registered_model_name, champion_metric_value, self.run_id
            )
            result.update(
                {"registered_model": registered_model_name, "version": version, "champion": champion}
            )
        return result


def _has_psutil() -> bool:
    try:
        import psutil  # noqa: F401
    except ImportError:
        logger.warning("psutil is not installed: system metrics are not logged (pip install psutil).")
        return False
    return True


def _pip_requirements() -> list[str]:
    requirements = []
    for package in ("keras", "numpy", "h5py", "scipy", "tensorflow", "jax", "jaxlib", "mlflow"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            requirements.append(f"{package}=={importlib.metadata.version(package)}")
    return requirements


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow prints run links and deprecation notes on every start/log; keep training output readable."""
    mlflow_logger = logging.getLogger("mlflow")
    level = mlflow_logger.level
    mlflow_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=FutureWarning)
            warnings.simplefilter("ignore", category=UserWarning)
            yield
    finally:
        mlflow_logger.setLevel(level)


# ----------------------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------------------


def register_model(
    tracking_uri: str,
    model_uri: str,
    name: str,
    metric_value: float | None,
    run_id: str,
    alias: str = CHAMPION_ALIAS,
) -> tuple[str, bool]:
    """Registers ``model_uri`` as a new version of ``name`` and moves ``alias`` to it if it is the best.

    The best version is the one with the highest ``val_velocity_ssim`` (stored as a version tag); a version
    without the metric never takes the alias from one that has it.

    Returns:
        ``(version, is_champion)``.
    """
    mlflow = _mlflow()
    client = mlflow.MlflowClient(tracking_uri)
    # MLflow prints "Successfully registered model ..." and "Created version ..." to stderr; the caller prints
    # the registered version itself.
    with _quiet_mlflow(), contextlib.redirect_stderr(io.StringIO()) as printed:
        version = mlflow.register_model(model_uri, name, tags={"run_id": run_id})
    logger.debug("mlflow.register_model: %s", " ".join(printed.getvalue().split()))
    number = str(version.version)
    if metric_value is not None and np.isfinite(metric_value):
        client.set_model_version_tag(name, number, CHAMPION_METRIC, f"{float(metric_value):.6f}")
    try:
        current = client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        current = None
    champion = False
    if current is None:
        champion = True
    elif metric_value is not None and np.isfinite(metric_value):
        best = current.tags.get(CHAMPION_METRIC)
        champion = best is None or float(metric_value) > float(best)
    if champion:
        client.set_registered_model_alias(name, alias, number)
    return number, champion


# ----------------------------------------------------------------------------------------------------------
# The pyfunc model
# ----------------------------------------------------------------------------------------------------------


def model_signature(seismic_shape: tuple[int, int, int], grid_shape: tuple[int, int], has_edges: bool):
    """Input: raw seismic ``(batch, shots, time, receivers)`` float32 of the training geometry; outputs: named
    ``(batch, depth, x)`` arrays.

    The input is declared with its training geometry, ``(-1, shots, time, receivers)``, so the registry shows
    what the model takes; MLflow then refuses another shape itself ("Shape of input (…) does not match expected
    shape (-1, …)") before the model's own check would. The input stays unnamed: a named input would make
    MLflow require a dict. The outputs are named (``velocity_mps``, ``edges``) with their ``(-1, depth, x)``
    shapes. Two inference parameters (``model.predict(seismic, params={...})``): ``batch_size`` (16) and
    ``mirror_average`` (false; ``ModelBundle.predict``).
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

    outputs = [TensorSpec(np.dtype(np.float32), (-1, *grid_shape), VELOCITY_MPS)]
    if has_edges:
        outputs.append(TensorSpec(np.dtype(np.float32), (-1, *grid_shape), EDGES))
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *(int(n) for n in seismic_shape)))]),
        outputs=Schema(outputs),
        params=ParamSchema(
            [ParamSpec("batch_size", "long", 16), ParamSpec("mirror_average", "boolean", False)]
        ),
    )


def _python_model_base():
    return _mlflow().pyfunc.PythonModel


class SeisinvertModel(_python_model_base()):
    """MLflow pyfunc: raw seismic ``(batch, shots, time, receivers)`` float32 → ``{"velocity_mps", "edges"}``.

    The bundle (model, normalisation statistics, training geometry) is the model's artifact ``bundle``;
    inputs are normalised with the bundled statistics and velocities returned in m/s. A wrong input shape is
    refused with a message naming the received and the expected shape.
    """

    # MLflow would wrap ``predict`` for type-hint validation; the explicit signature and the bundle's shape
    # check do that job here.
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        self.bundle = load_bundle(context.artifacts[BUNDLE_ARTIFACT])

    def predict(self, context, model_input, params: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
        if isinstance(model_input, Mapping):
            if len(model_input) != 1:
                raise UserError(
                    f"Pass one array of raw seismic (batch, shots, time, receivers). Received keys {list(model_input)}."
                )
            model_input = next(iter(model_input.values()))
        if hasattr(model_input, "to_numpy") and not isinstance(model_input, np.ndarray):
            raise UserError(
                "This model takes a float32 numpy array (batch, shots, time, receivers), not a table. "
                f"Received {type(model_input).__name__}."
            )
        params = params or {}
        outputs = self.bundle.predict(
            model_input,
            batch_size=int(params.get("batch_size", 16)),
            mirror_average=bool(params.get("mirror_average", False)),
        )
        return {key: value for key, value in outputs.items() if value is not None}


# ----------------------------------------------------------------------------------------------------------
# Inference runs
# ----------------------------------------------------------------------------------------------------------


class InferenceOutcome(Protocol):
    """What ``log_inference_to_mlflow`` reads of a finished inference run (``pipeline.infer.InferResult``).

    Declared here rather than imported: ``pipeline.infer`` imports this module to log its runs.
    """

    out_dir: Path
    num_windows: int
    qc_summary: Mapping[str, float]
    section_errors: Mapping[str, float]
    timings_s: Mapping[str, float]
    files: list[Path]


def log_inference_to_mlflow(result: InferenceOutcome, run: dict, config: Any) -> str:
    """Logs an inference run (``pipeline.infer``) to MLflow: inputs and model as params and tags, QC and
    section errors as metrics, the PNG/CSV/JSON outputs, the provenance and the configuration as artifacts.

    Args:
        result: the finished run's ``pipeline.infer.InferResult`` (out_dir, num_windows, qc_summary,
            section_errors, timings_s, files).
        run: the run record (``run.json``: model, inputs, regridded, config_hash, configuration YAML).
        config: the ``pipeline.infer.InferConfig`` (its ``tracking`` section names the store, experiment and run).

    Returns:
        The id of the new MLflow run (status FINISHED, or FAILED if logging raised).
    """
    from core import __version__
    from core.config import to_dict

    mlflow = _mlflow()
    tracking_uri = resolve_tracking_uri(config.tracking.tracking_uri)
    experiment_id = ensure_experiment(tracking_uri, config.tracking.experiment)
    client = mlflow.MlflowClient(tracking_uri)
    model = run["model"]
    active = client.create_run(
        experiment_id,
        run_name=config.tracking.run_name or f"infer-{result.out_dir.name}",
        tags={
            f"{TAG_PREFIX}stage": "inference",
            f"{TAG_PREFIX}model_uri": str(model["uri"]),
            f"{TAG_PREFIX}package_version": __version__,
            **(
                {f"{TAG_PREFIX}model_run_id": model["training_run_id"]}
                if model.get("training_run_id")
                else {}
            ),
        },
    )
    run_id = active.info.run_id
    try:
        params = {
            "model_uri": str(model["uri"]),
            "model_family": str(model.get("family")),
            "model_version": str(model.get("registered_version")),
            "num_inputs": len(run["inputs"]),
            "inputs": ",".join(Path(i["path"]).name for i in run["inputs"]),
            "num_windows": result.num_windows,
            "regridded": len(run["regridded"]) > 0,
            "config_hash": run["config_hash"],
        }
        params.update(flatten_params(json_ready(to_dict(config)), prefix="infer."))
        for key, value in params.items():
            client.log_param(run_id, key, str(value)[:6000])
        metrics = {f"qc_{k}": float(v) for k, v in result.qc_summary.items() if np.isfinite(v)}
        metrics.update({f"section_{k}": float(v) for k, v in result.section_errors.items() if np.isfinite(v)})
        metrics.update({f"time_{k}_s": float(v) for k, v in result.timings_s.items()})
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        client.log_dict(
            run_id,
            {"inputs": run["inputs"], "regridded": run["regridded"], "model": model},
            "inference/provenance.json",
        )
        client.log_text(run_id, run["configuration"], "inference/config.yaml")
        for path in result.files:
            if path.suffix in (".png", ".csv", ".json"):
                client.log_artifact(run_id, str(path), artifact_path="inference")
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return run_id


def model_lineage(model_uri: str) -> dict[str, Any]:
    """The training run and registered version behind a ``runs:/`` or ``models:/`` URI ({} for paths)."""
    if not model_uri.startswith(("runs:/", "models:/")):
        return {}
    lineage: dict[str, Any] = {"training_run_id": run_id_of(model_uri)}
    if model_uri.startswith("models:/"):
        mlflow = _mlflow()
        client = mlflow.MlflowClient(resolve_tracking_uri(None))
        spec = model_uri[len("models:/") :]
        with contextlib.suppress(Exception):
            if "@" in spec:
                name, alias = spec.split("@", 1)
                lineage["registered_version"] = client.get_model_version_by_alias(name, alias).version
            else:
                lineage["registered_version"] = spec.rsplit("/", 1)[1]
    return lineage


# ----------------------------------------------------------------------------------------------------------
# Resolving runs:/ and models:/ URIs
# ----------------------------------------------------------------------------------------------------------


def load_bundle(uri_or_path: str | Path, compile: bool = False) -> ModelBundle:  # noqa: A002 - Keras' name
    """Loads a model bundle from a folder, a ``.keras`` file beside a ``bundle.json``, or an MLflow URI.

    Args:
        uri_or_path: a bundle folder; its ``model.keras`` or ``bundle.json``; ``runs:/<run_id>/<path>``;
            ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` (resolved against the current MLflow
            tracking URI, see ``download_bundle``).
        compile: restore the training configuration (losses, metrics) too.

    Raises:
        UserError: nothing loadable at that location, or a bundle of an unknown schema version.
    """
    if str(uri_or_path).startswith(MLFLOW_SCHEMES):
        uri_or_path = download_bundle(str(uri_or_path))
    return load_local_bundle(uri_or_path, compile=compile)


def download_bundle(uri: str, tracking_uri: str | None = None, destination: str | Path | None = None) -> Path:
    """Downloads the bundle behind ``runs:/<run_id>/<path>`` or ``models:/<name>@<alias>|/<version>``.

    The pyfunc model's folder holds the bundle under ``artifacts/bundle``; a ``runs:/`` URI may also point
    straight at a bundle folder.

    Returns:
        The local bundle folder (in ``destination`` or a new temporary folder).
    """
    mlflow = _mlflow()
    tracking_uri = (
        resolve_tracking_uri(tracking_uri)
        if tracking_uri
        else resolve_tracking_uri(mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None)
    )
    mlflow.set_tracking_uri(tracking_uri)
    destination = Path(destination) if destination else Path(tempfile.mkdtemp(prefix="seisinvert-bundle-"))
    try:
        with _quiet_mlflow():
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(destination)))
    except mlflow.exceptions.MlflowException as error:
        shutil.rmtree(destination, ignore_errors=True)
        raise UserError(
            f"Could not resolve model {uri} in {tracking_uri}: {str(error).splitlines()[0]}"
        ) from None
    local_dir = local if local.is_dir() else local.parent
    candidates = sorted(p.parent for p in local_dir.rglob(INFO_FILE) if (p.parent / MODEL_FILE).is_file())
    if not candidates:
        raise UserError(f"{uri} holds no seisinvert model bundle (no {INFO_FILE} next to {MODEL_FILE}).")
    return candidates[0]


def run_id_of(uri: str, tracking_uri: str | None = None) -> str | None:
    """The run that produced a ``runs:/`` or ``models:/`` model (None for local paths)."""
    if uri.startswith("runs:/"):
        return uri[len("runs:/") :].split("/")[0]
    if not uri.startswith("models:/"):
        return None
    mlflow = _mlflow()
    client = mlflow.MlflowClient(resolve_tracking_uri(tracking_uri))
    spec = uri[len("models:/") :]
    try:
        if "@" in spec:
            name, alias = spec.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, number = spec.rsplit("/", 1)
            version = client.get_model_version(name, number)
    except mlflow.exceptions.MlflowException:
        return None
    return version.run_id


__all__ = [
    "CHAMPION_ALIAS",
    "CHAMPION_METRIC",
    "RunTracker",
    "SeisinvertModel",
    "dashboard_command",
    "download_bundle",
    "ensure_experiment",
    "environment_tags",
    "flatten_params",
    "git_commit",
    "load_bundle",
    "log_inference_to_mlflow",
    "model_lineage",
    "model_signature",
    "register_model",
    "resolve_tracking_uri",
    "run_id_of",
]
