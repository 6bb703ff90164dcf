"""Training checkpoints: ``<checkpoint_dir>/<run_id>/state.json`` plus the weight and optimizer files it names.

Pipeline position: ``pipeline.training.callbacks.Checkpoint`` writes one after every epoch;
``python -m pipeline.train --resume [RUN_ID]`` finds it (``find_checkpoint``), and
``pipeline.training.trainer.train`` continues the same MLflow run from it.

A state holds what a resumed run needs besides the weights and the optimizer: the configuration, the
dataset, the MLflow run and store, the metric history, the early-stopping state (best epoch, epochs
without improvement), the planned number of epochs and the RNG state. Keras' ``BackupAndRestore`` keeps the
weights and the epoch only, for a rerun of the same ``fit`` call; a resume here starts from the checkpoint
alone (the configuration comes from it), so the format is ours.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import write_text_atomic
from core.errors import UserError

STATE_FILE = "state.json"
CHECKPOINT_FORMAT = "seisinvert-checkpoint"


def rng_state() -> dict[str, Any]:
    numpy_state = np.random.get_state()  # noqa: NPY002 - the global state is what gets restored
    python_state = random.getstate()
    return {
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *map(_plain, numpy_state[2:])],
        "python": [python_state[0], list(python_state[1]), python_state[2]],
    }


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def restore_rng_state(state: Mapping[str, Any]) -> None:
    if "numpy" in state:
        name, keys, position, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))  # noqa: NPY002
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))


class Checkpointer:
    """Writes and reads ``<root>/<run_id>/``: ``state.json`` plus the weight/optimizer files it names.

    Each epoch writes ``epoch-NNNN.weights.h5`` and ``epoch-NNNN.optimizer.npz``, then replaces
    ``state.json`` atomically, then deletes the previous epoch's files: a kill at any moment leaves a
    ``state.json`` that names complete files. ``best.weights.h5`` holds the lowest-``val_loss`` weights.
    """

    def __init__(self, directory: str | Path, enabled: bool = True) -> None:
        self.directory = Path(directory)
        self.enabled = enabled

    def save(self, model, epoch: int, state: dict[str, Any], best: bool) -> None:
        if not self.enabled:
            return
        from core.atomic import atomic_output

        self.directory.mkdir(parents=True, exist_ok=True)
        weights = self.directory / f"epoch-{epoch:04d}.weights.h5"
        optimizer = self.directory / f"epoch-{epoch:04d}.optimizer.npz"
        with atomic_output(weights) as temporary:
            model.save_weights(_with_suffix(temporary, ".weights.h5"))
            _with_suffix(temporary, ".weights.h5").rename(temporary)
        with atomic_output(optimizer) as temporary:
            values = {f"v{i:05d}": np.asarray(v) for i, v in enumerate(model.optimizer.variables)}
            with open(temporary, "wb") as handle:
                np.savez(handle, **values)
        if best:
            with atomic_output(self.directory / "best.weights.h5") as temporary:
                model.save_weights(_with_suffix(temporary, ".weights.h5"))
                _with_suffix(temporary, ".weights.h5").rename(temporary)
        state = {**state, "weights": weights.name, "optimizer": optimizer.name, "epoch": epoch}
        write_text_atomic(self.directory / STATE_FILE, json.dumps(state, indent=1, default=_plain) + "\n")
        for old in self.directory.glob("epoch-*"):
            if not old.name.startswith(f"epoch-{epoch:04d}."):
                old.unlink(missing_ok=True)

    def load_state(self) -> dict[str, Any]:
        path = self.directory / STATE_FILE
        if not path.is_file():
            raise UserError(f"No checkpoint in {self.directory}: nothing to resume.")
        state = json.loads(path.read_text())
        if state.get("format") != CHECKPOINT_FORMAT:
            raise UserError(f"{path} is not a seisinvert training checkpoint.")
        return state

    def restore(self, model, state: Mapping[str, Any]) -> None:
        """Loads the checkpoint's weights and optimizer variables into a compiled model."""
        optimizer = model.optimizer
        optimizer.build(model.trainable_variables)  # before load_weights, which then restores it too
        model.load_weights(self.directory / state["weights"])
        with np.load(self.directory / state["optimizer"]) as values:
            stored = [values[key] for key in sorted(values.files)]
        variables = optimizer.variables
        if len(stored) != len(variables):
            raise UserError(
                f"The checkpoint's optimizer state has {len(stored)} variables but the model's optimizer "
                f"{len(variables)}: the configuration changed since the checkpoint."
            )
        for variable, value in zip(variables, stored, strict=True):
            variable.assign(value)

    def restore_best(self, model) -> bool:
        path = self.directory / "best.weights.h5"
        if path.is_file():
            model.load_weights(path)
            return True
        return False

    def mark_finished(self, state: dict[str, Any]) -> None:
        if self.enabled and (self.directory / STATE_FILE).is_file():
            write_text_atomic(
                self.directory / STATE_FILE,
                json.dumps({**state, "finished": True}, indent=1, default=_plain) + "\n",
            )


def _with_suffix(path: Path, suffix: str) -> Path:
    # Keras insists on the .weights.h5 suffix; write to a sibling with it, then rename.
    return path.with_name(path.name + suffix)


def find_checkpoint(checkpoint_dir: str | Path, run_id: str | None) -> Path:
    """The checkpoint folder of ``run_id``, or of the latest unfinished run when ``run_id`` is None."""
    root = Path(checkpoint_dir)
    if run_id:
        directory = root / run_id
        if not (directory / STATE_FILE).is_file():
            raise UserError(
                f"No checkpoint for run {run_id} under {root}/: pass --set runtime.checkpoint_dir=... if the "
                "run wrote its checkpoints elsewhere."
            )
        return directory
    candidates = []
    for state_path in root.glob(f"*/{STATE_FILE}"):
        try:
            state = json.loads(state_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if state.get("format") == CHECKPOINT_FORMAT and not state.get("finished"):
            candidates.append((state_path.stat().st_mtime, state_path.parent))
    if not candidates:
        raise UserError(
            f"No unfinished training run to resume under {root}/. Start one with python -m pipeline.train."
        )
    return max(candidates)[1]
