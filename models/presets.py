"""Named model presets and the resolution of a training run's model setting into a family config.

Pipeline position: ``pipeline.train`` (``model:`` and ``model_options:`` of a training config) and the
benchmarks resolve a model name here; ``models.registry`` then builds it. A preset lives beside the families
(as KerasHub's ``*_presets.py`` do), not in the trainer.

``model`` is a family name (``unet``, ``inversionnet``, ``lstm``, ``transformer``), a preset of
``MODEL_PRESETS`` (``unet-small``), the name of a file in ``configs/model/`` (``gru``,
``unet_shared_decoder``...) or a YAML path. ``model_options`` override the config's keys; ``edge_head: false``
drops the edge decoder (the switch of the U-Net's config, or for the other families a model cut at its
velocity output, ``build_model``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.config import CONFIG_DIR, to_dict
from core.errors import ConfigError

#: Named model presets: ``name -> (family, options)``. ``unet-small`` is the default run's model: the dual
#: U-Net with half the channels of ``configs/model/unet.yaml`` at every level, time averaged over 4 samples
#: (4 ms: OpenFWI's 15 Hz data keeps its whole band) and one front-end stage instead of three. On 2 CPU
#: cores a train step of 8 samples takes 0.25 s against 0.38 s with the full front end at the same width
#: (measured in one run), and seeing more samples matters more than width for a CPU budget of minutes.
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


def resolve_model_config(
    model: str,
    options: Mapping[str, Any],
    seismic_shape: Sequence[int],
    grid_shape: Sequence[int],
):
    """The family config dataclass for ``model`` + ``options`` on the dataset's shapes.

    Args:
        model: family, preset, ``configs/model`` file name or YAML path (see the module docstring).
        options: overrides of the config's keys; ``edge_head`` switches the edge decoder.
        seismic_shape: ``(shots, time, receivers)`` of the data.
        grid_shape: ``(depth, x)`` of the velocity models.

    Returns:
        ``(family config dataclass, edge_head)``; ``edge_head`` is False when the options drop it.
    """
    from models.registry import MODELS, load_model_config

    options = dict(options)
    edge_head = options.pop("edge_head", None)
    if model in MODELS:
        data: dict[str, Any] = {"family": model}
    elif model in MODEL_PRESETS:
        family, preset = MODEL_PRESETS[model]
        data = {"family": family, **preset}
    else:
        candidate = CONFIG_DIR / "model" / f"{model}.yaml"
        path = candidate if candidate.is_file() else Path(model)
        if not path.is_file():
            names = ", ".join(sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml")))
            raise ConfigError(
                f"Unknown model {model!r}: use a family ({', '.join(MODELS)}), a preset "
                f"({', '.join(MODEL_PRESETS)}), a file name in {CONFIG_DIR / 'model'} ({names}) or a YAML path."
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

    from models.registry import build

    model = build(config=family_config)
    if not edge_head and "edges" in model.output_names:
        # The same functional graph up to the velocity output: the edge decoder is not part of it at all.
        velocity = model.get_layer("velocity").output
        model = keras.Model(model.inputs[0], {"velocity": velocity}, name=f"{model.name}_no_edges")
    return model
