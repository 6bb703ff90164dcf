"""The work folder of an inference run (``OUT/.work``): the run record, per-window files, shards, the lock.

What ``--resume``, ``--shard K/N``, ``--merge`` and ``--scheduler`` build on:

* ``run.json`` (``write_run_record``) and ``plan.npz``: the model, inputs, options and window plan the
  windows are computed with, with a fingerprint; ``prepare_work`` refuses a folder holding another run;
* ``windows/window_NNNNNNN.npz`` (``save_window``, atomic): one finished window each; ``done_windows`` is
  what a resumed run, a shard or the cluster path skips;
* ``merge.lock`` (``acquire_lock``): one process stitches the section (the last shard to finish).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from core import __version__
from core.atomic import atomic_output, write_text_atomic
from core.config import config_hash, json_ready, to_dict, to_yaml
from core.errors import UserError
from pipeline.calibration import CalibrationConfig, training_target
from pipeline.infer.model import model_identity, model_lineage
from pipeline.qc import engine_setup
from pipeline.windows import WindowPlan

WORK_DIR = ".work"
SECTION_FILE = "section.h5"
RUN_FILE = "run.json"
PLAN_FILE = "plan.npz"
LOCK_FILE = "merge.lock"
RUN_FORMAT = "seisinvert-inference-run"


# ----------------------------------------------------------------------------------------------------------
# Window files
# ----------------------------------------------------------------------------------------------------------


def save_window(
    work: Path,
    window: int,
    velocity: np.ndarray,
    edges: np.ndarray | None,
    record: dict[str, Any],
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    """Saves one window's maps and record atomically (``OUT/.work/windows/window_NNNNNNN.npz``)."""
    path = window_path(work, window)
    arrays = {
        "velocity_mps": velocity.astype(np.float32),
        "record": np.asarray(json.dumps(json_ready(record))),
        **{name: np.asarray(values, np.float32) for name, values in (extra or {}).items()},
    }
    if edges is not None:
        arrays["edges"] = edges.astype(np.float32)
    with atomic_output(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **arrays)


def load_window(work: Path, window: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A saved window's maps (``velocity_mps``, ``edges``, ``refined_velocity_mps``) and record."""
    with np.load(window_path(work, window)) as arrays:
        maps = {
            name: arrays[name] for name in ("velocity_mps", "edges", "refined_velocity_mps") if name in arrays
        }
        record = json.loads(str(arrays["record"]))
    return maps, record


def window_path(work: Path, window: int) -> Path:
    return work / "windows" / f"window_{window:07d}.npz"


def done_windows(work: Path, num_windows: int) -> np.ndarray:
    """``(num_windows,)`` bool: which windows have their file (what ``--resume`` and shards skip)."""
    done = np.zeros(num_windows, dtype=bool)
    folder = work / "windows"
    if folder.is_dir():
        for path in folder.glob("window_*.npz"):
            with contextlib.suppress(ValueError, IndexError):
                number = int(path.stem.split("_")[1])
                if 0 <= number < num_windows:
                    done[number] = True
    return done


def shard_range(num_windows: int, index: int, count: int) -> tuple[int, int]:
    """Contiguous part ``index`` (1-based) of ``count``: neighbouring windows share shots, so reading is local."""
    return (index - 1) * num_windows // count, index * num_windows // count


# ----------------------------------------------------------------------------------------------------------
# The run record (resume, shards, merge)
# ----------------------------------------------------------------------------------------------------------


def prepare_work(
    work: Path, fingerprint: str, plan: WindowPlan, *, resume: bool, sharded: bool
) -> dict | None:
    """Checks an existing run folder against this run; returns its record, or None when there is none."""
    run_path = work / RUN_FILE
    if not run_path.is_file():
        if (work / "windows").is_dir() and any((work / "windows").iterdir()):
            raise UserError(f"{work} holds window files but no {RUN_FILE}: remove {work} and run again.")
        return None
    run = json.loads(run_path.read_text())
    if run.get("fingerprint") != fingerprint:
        raise UserError(
            f"{work.parent} holds a run with another model, other inputs or other options (fingerprint "
            f"{run.get('fingerprint')} vs {fingerprint}): choose another --out, or delete {work} to start over."
        )
    with np.load(work / PLAN_FILE) as arrays:
        stored = WindowPlan.from_arrays(arrays)
    if not (
        np.array_equal(stored.column_start, plan.column_start)
        and np.array_equal(stored.shot_index, plan.shot_index)
    ):
        raise UserError(
            f"{work}: the stored window plan differs from this run's: delete {work} to start over."
        )
    done = int(done_windows(work, plan.num_windows).sum())
    if not resume and not sharded and done:
        raise UserError(
            f"{work.parent} holds an unfinished run ({done} of {plan.num_windows} windows done): pass --resume to "
            "continue it, or choose another --out."
        )
    return run


def write_run_record(
    work, fingerprint, bundle, model_uri, line, layout, plan, config, regridded, truth, correction, geometry
) -> dict:
    """Writes ``plan.npz`` and ``run.json`` (what the windows are computed with; read by shards and merge)."""
    work.mkdir(parents=True, exist_ok=True)
    with atomic_output(work / PLAN_FILE) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **plan.to_arrays())
    setup_notes: dict[str, Any] = {}
    if config.qc.enabled:
        try:
            setup_notes = engine_setup(layout, bundle.engine_settings).describe()
        except ValueError as error:
            setup_notes = {"disabled": str(error)}
    info = dict(getattr(bundle, "info", {}) or {})
    run = {
        "format": RUN_FORMAT,
        "fingerprint": fingerprint,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {
            "uri": model_uri,
            "family": info.get("family"),
            "identity": model_identity(bundle, model_uri),
            **model_lineage(model_uri),
            "bundle_info": {k: v for k, v in info.items() if k not in ("normalization", "geometry")},
        },
        "inputs": [
            {
                "path": str(f.path.resolve()),
                "size_bytes": f.path.stat().st_size,
                "sha256": f.sha256,
                "sample_interval_s": f.sample_interval_s,
                "num_samples": f.num_samples,
                "num_traces": f.num_traces,
            }
            for f in line.files
        ],
        "truth": {"path": str(truth.path.resolve()), "sha256": truth.sha256} if truth else None,
        "line": {
            "direction": list(line.frame.direction),
            "offset_m": line.frame.offset_m,
            "num_shots": line.num_shots,
            "repairs": line.repairs,
        },
        "model_sample_interval_s": layout.sample_interval_s,
        "layout": {
            "depth_cells": layout.grid_shape[0],
            "width_cells": layout.width_cells,
            "grid_spacing_m": layout.grid_spacing_m,
        },
        "has_edges": bool(getattr(bundle, "has_edges", False)),
        "refine": to_dict(config.refine) if config.refine.iterations else None,
        "regridded": regridded,
        "geometry": geometry,
        "input_correction": correction.record(),
        "qc": to_dict(correction.qc),
        "engine": setup_notes,
        "calibration": {
            "method": config.calibration.method,
            "scope": config.calibration.scope,
            "target": _safe_target(config.calibration, info),
        },
        "configuration": to_yaml(config),
        "config_hash": config_hash(config),
        "package_version": __version__,
    }
    write_text_atomic(work / RUN_FILE, json.dumps(json_ready(run), indent=1) + "\n")
    return run


def _safe_target(calibration: CalibrationConfig, info: dict) -> float | None:
    try:
        return training_target(calibration, info.get("amplitude_statistics"))
    except UserError:
        return None


def acquire_lock(lock: Path, force: bool) -> bool:
    """Takes the merge lock (one process writes the section); a stale lock of a dead process is broken."""
    if force:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
    for _ in range(2):
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if _stale_lock(lock):
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                continue
            return False
        with os.fdopen(descriptor, "w") as handle:
            handle.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
        return True
    return False


def _stale_lock(lock: Path) -> bool:
    """A lock left by a dead process on this host."""
    try:
        owner = json.loads(lock.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return True
    if owner.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(owner.get("pid", -1)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, OverflowError):
        return False
    return False


__all__ = [
    "LOCK_FILE",
    "PLAN_FILE",
    "RUN_FILE",
    "RUN_FORMAT",
    "SECTION_FILE",
    "WORK_DIR",
    "acquire_lock",
    "done_windows",
    "load_window",
    "prepare_work",
    "save_window",
    "shard_range",
    "window_path",
    "write_run_record",
]
