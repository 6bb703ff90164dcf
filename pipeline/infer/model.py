"""The model of an inference run: resolving ``--model``, its identity for the run record, its checks.

A bundle location (a folder written by ``pipeline.train``, ``runs:/…``, ``models:/…``) is loaded through
``pipeline.tracking.load_bundle``; an object with a bundle's interface (``geometry``, ``stats``,
``predict``) is used as it is. ``model_identity`` digests the model's files, so a run folder knows which
model its windows came from (``--resume`` refuses another).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from core.config import json_ready
from core.errors import UserError
from pipeline.infer.config import InferConfig
from pipeline.qc import engine_setup
from pipeline.windows import ModelLayout

logger = logging.getLogger(__name__)


def check_refinement(bundle: Any, layout: ModelLayout, config: InferConfig) -> None:
    """Refuses ``--refine`` up front when it cannot run: no velocity bounds, or an engine-less geometry."""
    stats = bundle.stats
    if config.refine.bounds_mps is None and getattr(stats, "velocity_min_mps", None) is None:
        raise UserError(
            "--refine needs velocity bounds and the model records no training velocity range: set "
            "--set refine.bounds_mps=[MIN,MAX] (m/s)."
        )
    try:
        engine_setup(layout, bundle.engine_settings)
    except ValueError as error:
        raise UserError(f"--refine cannot simulate this model's geometry: {error}") from None


def resolve_mirror_average(config: InferConfig, bundle: Any) -> InferConfig:
    """``config`` with ``mirror_average: auto`` decided for this model: on when its geometry mirrors onto
    itself (``ModelBundle.mirror_order``), off (logged, with the reason) when it does not or when the model
    cannot be mirror-averaged (a stand-in told where each window lies); ``true``/``false`` are kept."""
    if config.mirror_average != "auto":
        return config
    mirror_order = getattr(bundle, "mirror_order", None)
    if mirror_order is None or getattr(bundle, "predict_windows", None) is not None:
        reason = "this model predicts each window from where it lies, not mirrored"
    else:
        try:
            mirror_order()
            reason = None
        except UserError as error:
            reason = str(error)
    if reason is None:
        logger.info("mirror_average=auto: on (the model's geometry mirrors onto itself)")
    else:
        logger.info("mirror_average=auto: off: %s", reason)
    return dataclasses.replace(config, mirror_average=reason is None)


def resolve_model(model: Any, model_uri: str | None) -> tuple[Any, str]:
    """``(bundle, uri)``: a bundle location (folder, ``runs:/…``, ``models:/…``) loaded, or a bundle object checked."""
    if isinstance(model, str | Path):
        from pipeline.tracking import load_bundle

        return load_bundle(model), model_uri or str(model)
    for attribute in ("geometry", "stats", "predict"):
        if not hasattr(model, attribute):
            raise TypeError(
                f"model must be a ModelBundle or a bundle location; {type(model).__name__} has no "
                f"{attribute!r}."
            )
    path = getattr(model, "path", None)
    return model, model_uri or (str(path) if path else f"<in-memory {type(model).__name__}>")


def model_identity(bundle: Any, model_uri: str) -> str:
    """A digest of the model's files (or of its description for an in-memory bundle)."""
    path = getattr(bundle, "path", None)
    digest = hashlib.sha256()
    if path is not None and Path(path).is_dir():
        for name in ("model.keras", "bundle.json"):
            file = Path(path) / name
            if file.is_file():
                with open(file, "rb") as handle:
                    digest.update(hashlib.file_digest(handle, "sha256").digest())
        return digest.hexdigest()[:20]
    info = dict(getattr(bundle, "info", {}) or {})
    digest.update(json.dumps(json_ready(info), sort_keys=True).encode())
    digest.update(type(bundle).__name__.encode())
    return digest.hexdigest()[:20]


def model_lineage(model_uri: str) -> dict[str, Any]:
    """``pipeline.tracking.model_lineage`` for MLflow URIs; {} for bundle folders (no MLflow import)."""
    if not model_uri.startswith(("runs:/", "models:/")):
        return {}
    from pipeline.tracking import model_lineage

    return model_lineage(model_uri)


def velocity_bounds(bundle: Any) -> tuple[float, float] | None:
    """The training velocity range ``(min, max)`` m/s the bundle records, or None."""
    if getattr(bundle.stats, "velocity_min_mps", None) is None:
        return None
    return float(bundle.stats.velocity_min_mps), float(bundle.stats.velocity_max_mps)


__all__ = ["check_refinement", "model_identity", "model_lineage", "resolve_model", "velocity_bounds"]
