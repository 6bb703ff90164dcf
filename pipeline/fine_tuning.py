"""Fine-tuning: start training from a parent model instead of random weights (``pipeline.train --init-from``).

The parent is a model bundle: a ``models:/name@alias`` or ``models:/name/version`` address, a ``runs:/``
address or a bundle folder (``pipeline.tracking.load_bundle`` resolves all three). Its architecture (the model
config stored in the bundle), weights, normalisation statistics and training geometry all come with it:

* the child is built from the parent's model config, so ``--model`` and ``model_options`` do not apply;
* the datasets are normalised with the parent's statistics, so the network sees inputs on the scale it
  learned, and the child's bundle carries the same numbers to inference;
* the new data must have the parent's geometry (shots, receivers, time axis, grid): a network trained on
  one acquisition cannot be fine-tuned on another, and the refusal names every difference.

``freeze="encoder"`` keeps the shared encoder (front end and encoder levels) fixed and trains the decoders
only: fewer parameters to fit from a few hundred samples.

This module sits between ``pipeline.bundle`` (loading) and ``pipeline.train`` (which calls ``load_parent``,
``check_geometry``, ``parent_architecture``, ``copy_weights``, ``freeze`` and records ``lineage_tags``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import UserError

#: What ``freeze`` can name, and the layer-name prefixes that make it up in the project's models.
FREEZABLE_PARTS: dict[str, tuple[str, ...]] = {
    "encoder": ("seismic_to_image", "time_pooling", "front_end", "resize_to_grid", "encoder_"),
}


@dataclass(frozen=True)
class Parent:
    """A loaded parent model and where it came from.

    Attributes:
        address: what the user gave (``models:/...``, ``runs:/...`` or a folder).
        bundle: the loaded ``pipeline.bundle.ModelBundle``.
    """

    address: str
    bundle: Any

    @property
    def model_config(self) -> dict[str, Any]:
        config = self.bundle.info.get("model_config")
        if not isinstance(config, Mapping) or "family" not in config:
            raise UserError(
                f"The parent model {self.address} records no model config (bundle.json 'model_config'): it was "
                "not saved by pipeline.train, so its architecture cannot be rebuilt. Re-train it, or fine-tune "
                "a model registered by pipeline.train."
            )
        return dict(config)

    @property
    def edge_head(self) -> bool:
        return bool(self.bundle.info.get("edge_head", self.bundle.has_edges))


def load_parent(address: str) -> Parent:
    """Loads the parent bundle behind ``address`` (``UserError`` when there is none)."""
    from pipeline.tracking import load_bundle

    return Parent(address=str(address), bundle=load_bundle(address))


def geometry_differences(parent_geometry, dataset_geometry, tolerance_m: float = 1e-3) -> list[str]:
    """What differs between the parent's training geometry and a dataset's (``DatasetGeometry`` both)."""
    differences = []
    for name in ("num_shots", "num_receivers", "num_samples"):
        there, here = getattr(parent_geometry, name), getattr(dataset_geometry, name)
        if there != here:
            differences.append(f"{name}: parent {there}, data {here}")
    if tuple(parent_geometry.grid_shape) != tuple(dataset_geometry.grid_shape):
        differences.append(
            f"grid_shape: parent {tuple(parent_geometry.grid_shape)}, data {tuple(dataset_geometry.grid_shape)}"
        )
    for name in ("sample_interval_s", "grid_spacing_m"):
        there, here = float(getattr(parent_geometry, name)), float(getattr(dataset_geometry, name))
        if not np.isclose(there, here, rtol=1e-6, equal_nan=True):
            differences.append(f"{name}: parent {there:g}, data {here:g}")
    for name in ("source_positions_m", "receiver_positions_m"):
        there, here = np.asarray(getattr(parent_geometry, name)), np.asarray(getattr(dataset_geometry, name))
        if there.shape == here.shape and there.size:
            worst = float(np.abs(there - here).max())
            if worst > tolerance_m:
                differences.append(f"{name}: up to {worst:g} m apart")
    return differences


def trained_families(bundle_info: dict) -> list[str]:
    """The families a bundle's model was trained on: the run's ``data.families`` where it filtered the dataset,
    else every family of the dataset (bundles written before the filter was recorded)."""
    dataset = bundle_info.get("dataset") or {}
    return list(dataset.get("trained_families") or dataset.get("families") or [])


def check_geometry(parent: Parent, dataset_geometry, dataset_path) -> None:
    """Refuses data whose geometry is not the parent's, naming every difference."""
    differences = geometry_differences(parent.bundle.geometry, dataset_geometry)
    if differences:
        raise UserError(
            f"Cannot fine-tune {parent.address} on {dataset_path}: the data's acquisition geometry is not the one "
            f"the parent was trained for ({'; '.join(differences)}). Fine-tune on data of the parent's geometry "
            "(resample or window it, e.g. with pipeline.infer's --regrid logic), or train a new model on this "
            "geometry without --init-from."
        )


def parent_architecture(parent: Parent):
    """``(family config dataclass, edge_head)`` of the parent, to build the child with."""
    from models.registry import load_model_config

    return load_model_config(parent.model_config), parent.edge_head


def freeze(model, part: str) -> list[str]:
    """Makes the layers of ``part`` (a key of ``FREEZABLE_PARTS``) not trainable; returns their names.

    Raises:
        UserError: an unknown part, or one this architecture does not have.
    """
    if part not in FREEZABLE_PARTS:
        raise UserError(f"Unknown part to freeze {part!r}: choose one of {', '.join(FREEZABLE_PARTS)}.")
    prefixes = FREEZABLE_PARTS[part]
    frozen = [layer for layer in model.layers if layer.name.startswith(prefixes) and layer.weights]
    if not frozen:
        raise UserError(
            f"This architecture ({model.name}) has no {part} layers (names starting with {', '.join(prefixes)}): "
            "fine-tune it without --freeze."
        )
    for layer in frozen:
        layer.trainable = False
    return [layer.name for layer in frozen]


def copy_weights(source, destination, address: str = "the parent") -> None:
    """Copies every layer's weights by layer name; refuses when the two architectures differ."""
    source_layers = {layer.name: layer for layer in source.layers}
    problems = []
    for layer in destination.layers:
        if not layer.weights:
            continue
        twin = source_layers.get(layer.name)
        if twin is None:
            problems.append(f"layer {layer.name!r} is missing from the parent")
            continue
        shapes = [tuple(w.shape) for w in layer.weights]
        twin_shapes = [tuple(w.shape) for w in twin.weights]
        if shapes != twin_shapes:
            problems.append(f"layer {layer.name!r}: parent weights {twin_shapes}, child {shapes}")
            continue
        layer.set_weights(twin.get_weights())
    if problems:
        listed = "; ".join(problems[:5]) + (f"; ... {len(problems) - 5} more" if len(problems) > 5 else "")
        raise UserError(
            f"The architecture of {address} does not match the model being built ({listed}). Fine-tuning keeps "
            "the parent's architecture: leave --model and model_options out."
        )


def lineage_tags(parent: Parent, freeze: str | None) -> dict[str, str]:
    """MLflow tags recording the parent (its address, run and registered version where known)."""
    info = parent.bundle.info
    tags = {
        "seisinvert.parent_model": parent.address,
        "seisinvert.fine_tuned": "true",
        "seisinvert.frozen": freeze or "none",
    }
    run_id = info.get("mlflow_run_id")
    if run_id:
        tags["seisinvert.parent_run_id"] = str(run_id)
    families = trained_families(info)
    if families:
        tags["seisinvert.parent_families"] = ",".join(str(f) for f in families)
    return tags


__all__ = [
    "FREEZABLE_PARTS",
    "Parent",
    "check_geometry",
    "copy_weights",
    "freeze",
    "geometry_differences",
    "lineage_tags",
    "load_parent",
    "parent_architecture",
]
