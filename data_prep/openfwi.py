"""OpenFWI ``.npy`` files -> the project's HDF5 dataset layout.

An alternative first stage to ``data_prep.synthesize`` + ``data_prep.ingest``: OpenFWI ships pairs of
``data*.npy`` (seismic, ``(500, 5, 1000, 70)`` = ``(samples, shots, time, receivers)``, float32) and
``model*.npy`` (velocity, ``(500, 1, 70, 70)`` = ``(samples, 1, depth, x)``, m/s) per file. They are
written into the schema of ``data_prep.schema`` with the same splits, statistics, edges, provenance and
atomic-write guarantees as ``ingest``. Files are streamed one at a time through ``np.load(mmap_mode="r")``
(only the current file is mapped), so memory is bounded by one block of samples.

Pairing: ``.../dataN.npy`` goes with ``.../modelN.npy`` in the same folder, or ``.../model/modelN.npy`` when
the seismic lives in ``.../data/`` (OpenFWI's CurveVel/FlatFault layouts). Data files are read in natural
name order (``data2`` before ``data10``); each is one origin of samples, whose ids are its row numbers + 1,
so several families (or more files of one) can be imported into one dataset, or appended to it.

Family: ``family`` in the configuration, else the first folder above a data file whose name is an OpenFWI
family (``FlatVel_A`` or ``flatvel-a`` -> ``flatvel-a``), else "unknown". Splits are stratified by family.

Engine settings: OpenFWI's data were not made by this project's engine; each origin records OpenFWI's
published modelling settings (``openfwi_engine_settings``), as the provenance of synthesized data records
the engine's.

Command line::

    python -m data_prep.openfwi ~/openfwi/flatvel-a --out data/flatvel-a-openfwi.h5
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import h5py
import numpy as np

from core.cli import add_common_arguments, make_parser, run_main
from core.config import add_config_arguments, load_config
from core.errors import UserError
from data_prep import schema
from data_prep.dataset_writer import (
    OriginRecord,
    SamplePlan,
    SourceRecord,
    SplitConfig,
    append_samples,
    check_schema_version,
    write_dataset,
)
from data_prep.edges import EdgeConfig
from data_prep.geometry import AcquisitionGeometry
from data_prep.normalization import NormalizationConfig
from data_prep.schema import DatasetGeometry


@dataclass(frozen=True)
class OpenFWIConfig:
    """Settings of the OpenFWI importer.

    Attributes:
        geometry: the acquisition geometry of the files (OpenFWI's by default; OpenFWI keeps it in
            ``dataset_config.json``, which does not give positions, so they are configuration here).
        splits, normalization, edges: as in ``IngestConfig``.
        nonfinite: ``"error"`` refuses NaN/Inf samples, ``"zero"`` replaces them.
        family: family of every imported sample; None infers it from the folder names (see the module
            docstring).
        block_bytes, compression, progress: as in ``IngestConfig``.
    """

    geometry: AcquisitionGeometry = AcquisitionGeometry()
    splits: SplitConfig = SplitConfig()
    normalization: NormalizationConfig = NormalizationConfig()
    edges: EdgeConfig = EdgeConfig()
    nonfinite: Literal["error", "zero"] = "error"
    family: str | None = None
    block_bytes: int = 64 * 2**20
    compression: Literal["none", "gzip", "lzf"] = "none"
    progress: bool = True


#: OpenFWI's 2-D families (folder names such as ``FlatVel_A``, normalised to lower case with hyphens).
OPENFWI_FAMILIES = (
    "flatvel-a",
    "flatvel-b",
    "curvevel-a",
    "curvevel-b",
    "flatfault-a",
    "flatfault-b",
    "curvefault-a",
    "curvefault-b",
    "style-a",
    "style-b",
)


def infer_family(data_path: Path) -> str:
    """The OpenFWI family named by a folder above ``data_path`` (``FlatVel_A`` -> ``flatvel-a``), or "unknown"."""
    for folder in data_path.parents:
        name = folder.name.lower().replace("_", "-").replace(" ", "-")
        if name in OPENFWI_FAMILIES:
            return name
    return schema.UNKNOWN_FAMILY


def openfwi_engine_settings(geometry: AcquisitionGeometry) -> dict:
    """OpenFWI's published forward-modelling settings, with the geometry's time axis and positions.

    From the modeller of the OpenFWI authors (``FWIForward``, the PyTorch code of OpenFWI / UPFWI) and
    OpenFWI's ``dataset_config.json``: a 4th-order-in-space, 2nd-order-in-time acoustic stencil, a damping
    (sponge) absorbing layer of 120 cells around a velocity model padded by edge replication, no free
    surface, sources and receivers 10 m deep, a 15 Hz Ricker of ``2 floor(1.1 / (f dt)) + 1`` samples peaking
    at sample ``floor(1.1 / (f dt))`` (73 ms at 1 ms), injected as ``(v dt)^2 w[n]`` at the source cell, and
    pressure recorded after each step (OpenFWI's sample ``k`` is the pressure at ``(k + 1) dt``).
    """
    peak_frequency_hz = float(geometry.peak_frequency_hz)
    sample_interval_s = float(geometry.sample_interval_s)
    peak_sample = int(np.floor(1.1 / (peak_frequency_hz * sample_interval_s) + 1e-9))
    return {
        "engine": "OpenFWI's published modeller (FWIForward), not this project's engine",
        "equation": "2D constant-density acoustic wave equation, pressure",
        "wavelet": "ricker",
        "peak_frequency_hz": peak_frequency_hz,
        "ricker_delay_s": round(peak_sample * sample_interval_s, 12),
        "amplitude_convention": "openfwi",
        "source_injection": "(v dt)^2 w[n] added at the source cell",
        "spatial_order": 4,
        "time_order": 2,
        "free_surface": False,
        "absorbing_boundary": "damping (sponge), quadratic profile, velocity padded by edge replication",
        "absorbing_width_cells": 120,
        "time_step_s": sample_interval_s,
        "sample_interval_s": sample_interval_s,
        "num_samples": int(geometry.num_samples),
        "grid_spacing_m": float(geometry.grid_spacing_m),
        "source_depth_m": [float(depth) for depth in geometry.source_positions_m()[:, 0]],
        "receiver_depth_m": [float(depth) for depth in geometry.receiver_positions_m()[:, 0]],
        "recording": "sample k = pressure at (k + 1) * sample_interval_s (recorded after each step)",
    }


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def find_pairs(sources: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """``(data*.npy, model*.npy)`` pairs under the given files and folders (folders searched recursively)."""
    data_files: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            data_files += [p for p in path.rglob("data*.npy") if p.is_file()]
        elif path.is_file():
            if not path.name.startswith("data") or path.suffix != ".npy":
                raise UserError(
                    f"{path}: OpenFWI seismic files are named data*.npy; pass those (or their folder)."
                )
            data_files.append(path)
        else:
            raise UserError(f"Input {path} does not exist. Check the path.")
    if not data_files:
        raise UserError(f"No data*.npy files found in {', '.join(map(str, sources))}.")
    pairs = []
    for data in sorted(set(p.resolve() for p in data_files), key=_natural_key):
        model_name = "model" + data.name[len("data") :]
        candidates = [data.with_name(model_name)]
        if data.parent.name == "data":
            candidates.append(data.parent.parent / "model" / model_name)
        model = next((c for c in candidates if c.is_file()), None)
        if model is None:
            raise UserError(
                f"{data} has no velocity file: expected {' or '.join(map(str, candidates))}. Every data*.npy needs "
                "its model*.npy."
            )
        pairs.append((data, model))
    return pairs


class _CurrentFile:
    """Keeps only the current file's memory maps open, so mapped pages are released file by file."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.arrays: tuple[np.ndarray, np.ndarray] | None = None

    def get(self, data: Path, model: Path) -> tuple[np.ndarray, np.ndarray]:
        if self.path != data:
            self.arrays = (np.load(data, mmap_mode="r"), np.load(model, mmap_mode="r"))
            self.path = data
        return self.arrays


def plan_openfwi(
    sources: Sequence[str | Path], config: OpenFWIConfig, source_offset: int = 0
) -> tuple[list[SamplePlan], DatasetGeometry, list[SourceRecord], list[OriginRecord]]:
    """Checks every pair's shapes (headers only) and plans one ``SamplePlan`` per row; one origin per file."""
    geometry = DatasetGeometry.from_acquisition(config.geometry)
    expected_data = (geometry.num_shots, geometry.num_samples, geometry.num_receivers)
    expected_model = tuple(geometry.grid_shape)
    plans: list[SamplePlan] = []
    records: list[SourceRecord] = []
    origins: list[OriginRecord] = []
    current = _CurrentFile()
    settings = openfwi_engine_settings(config.geometry)
    for data_path, model_path in find_pairs(sources):
        try:
            data = np.load(data_path, mmap_mode="r")
            model = np.load(model_path, mmap_mode="r")
        except (ValueError, OSError) as error:
            raise UserError(f"{data_path} or {model_path} is not a readable .npy file ({error}).") from None
        if data.ndim != 4 or data.shape[1:] != expected_data:
            raise UserError(
                f"{data_path}: expected seismic (samples, shots, time, receivers) = (N, {', '.join(map(str, expected_data))}) "
                f"for the configured geometry. Received shape {data.shape}. Set --set geometry... to match the files."
            )
        model_shape = model.shape[2:] if model.ndim == 4 and model.shape[1] == 1 else model.shape[1:]
        if model.ndim not in (3, 4) or tuple(model_shape) != expected_model or len(model) != len(data):
            raise UserError(
                f"{model_path}: expected {len(data)} velocity models (N, 1, {expected_model[0]}, {expected_model[1]}) "
                f"to match {data_path.name}. Received shape {model.shape}."
            )
        source_index = source_offset + len(records)
        records.append(
            SourceRecord(data_path, "openfwi_data", data_path.stat().st_size, schema.file_sha256(data_path))
        )
        records.append(
            SourceRecord(
                model_path, "openfwi_model", model_path.stat().st_size, schema.file_sha256(model_path)
            )
        )
        family = config.family or infer_family(data_path)
        origin_index = len(origins)
        origins.append(
            OriginRecord(
                name=f"{data_path.parent.name}/{data_path.name}",
                kind="openfwi",
                path=data_path,
                family=family,
                grouping="one sample per row of the data file (sample id = row + 1)",
                engine_settings=settings,
                details={"velocity_file": str(model_path)},
            )
        )
        del data, model
        rows = len(np.load(data_path, mmap_mode="r"))
        for row in range(rows):

            def load(data_path=data_path, model_path=model_path, row=row):
                seismic, velocity = current.get(data_path, model_path)
                values = np.array(seismic[row], dtype=np.float32)
                finite = np.isfinite(values)
                if not finite.all():
                    if config.nonfinite == "error":
                        raise UserError(
                            f"{data_path}: row {row} holds {int((~finite).sum())} NaN/Inf values. Fix the file or "
                            "set --set nonfinite=zero."
                        )
                    values = np.where(finite, values, np.float32(0))
                model_values = np.array(velocity[row], dtype=np.float32).reshape(expected_model)
                if not (np.all(np.isfinite(model_values)) and np.all(model_values > 0)):
                    raise UserError(f"{model_path}: row {row} holds non-finite or non-positive velocities.")
                return values, model_values

            plans.append(
                SamplePlan(
                    row + 1,
                    source_index,
                    geometry.num_shots * geometry.num_receivers,
                    load,
                    origin_index=origin_index,
                    family=family,
                )
            )
    return plans, geometry, records, origins


def import_openfwi(
    sources: Sequence[str | Path],
    destination: str | Path,
    config: OpenFWIConfig = OpenFWIConfig(),
    append: bool = False,
    overwrite: bool = False,
) -> Path:
    """Imports OpenFWI ``data*.npy`` / ``model*.npy`` pairs into a validated HDF5 dataset.

    Args:
        sources: ``data*.npy`` files or folders holding them.
        destination: the ``.h5`` dataset.
        config: geometry, family, splits, statistics settings.
        append: add to an existing dataset (new origins; files it already holds are refused).
        overwrite: replace an existing dataset.

    Returns:
        The dataset path.
    """
    destination = Path(destination)
    if append:
        summary = schema.validate(destination, check_values=False)
        check_schema_version(destination, summary.schema_version)
        with h5py.File(destination, "r") as h5:
            num_sources = len(json.loads(h5[schema.PROVENANCE].attrs["sources"]))
        plans, geometry, records, origins = plan_openfwi(sources, config, num_sources)
        differences = summary.geometry.differences(geometry)
        if differences:
            raise UserError(f"{destination} has another geometry: " + "; ".join(differences) + ".")
        return append_samples(
            destination, plans, records, config, created_by="data_prep.openfwi", origins=origins
        )
    if destination.exists() and not overwrite:
        raise FileExistsError(f"{destination} already exists: pass --append, --overwrite, or another --out.")
    plans, geometry, records, origins = plan_openfwi(sources, config)
    return write_dataset(
        destination, plans, geometry, True, records, config, created_by="data_prep.openfwi", origins=origins
    )


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "python -m data_prep.openfwi",
        "Import OpenFWI data*.npy / model*.npy pairs into a validated HDF5 dataset (the layout data_prep.ingest "
        "writes: splits, normalisation statistics, edges, provenance).",
        examples=[
            "python -m data_prep.openfwi openfwi/CurveFault_B --out data/openfwi_cfb.h5",
            "python -m data_prep.openfwi openfwi/FlatVel_A/data1.npy openfwi/FlatVel_A/data2.npy --out data/fva.h5",
            "python -m data_prep.openfwi openfwi/CurveVel_A --out data/openfwi_cfb.h5 --append"
            "   # add another family",
        ],
    )
    parser.add_argument("sources", nargs="+", help="data*.npy files or folders holding them.")
    parser.add_argument("--out", required=True, type=Path, metavar="DATASET.h5")
    parser.add_argument("--append", action="store_true", help="Add to an existing dataset.")
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing dataset.")
    add_config_arguments(parser)
    add_common_arguments(parser)
    return parser


def _main(args: argparse.Namespace) -> int:
    values = {"progress": False} if args.quiet else None
    config = load_config(OpenFWIConfig, files=args.config, overrides=args.overrides, values=values)
    path = import_openfwi(args.sources, args.out, config, append=args.append, overwrite=args.overwrite)
    summary = schema.validate(path, check_values=False)
    print(f"{path}: {summary.num_samples} samples, seismic {summary.seismic_shape}")
    print("per family:\n" + schema.format_family_breakdown(summary.families))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
