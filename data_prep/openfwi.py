"""OpenFWI ``.npy`` files -> the project's HDF5 dataset layout.

An alternative first stage to ``data_prep.synthesize`` + ``data_prep.ingest``: OpenFWI ships pairs of
``data*.npy`` (seismic, ``(500, 5, 1000, 70)`` = ``(samples, shots, time, receivers)``, float32) and
``model*.npy`` (velocity, ``(500, 1, 70, 70)`` = ``(samples, 1, depth, x)``, m/s) per file. They are
written into the schema of ``data_prep.schema`` with the same splits, statistics, edges, provenance and
atomic-write guarantees as ``ingest``. Files are streamed one at a time through ``np.load(mmap_mode="r")``
(only the current file is mapped), so memory is bounded by one block of samples.

Pairing: ``.../dataN.npy`` goes with ``.../modelN.npy`` in the same folder, or ``.../model/modelN.npy`` when
the seismic lives in ``.../data/`` (OpenFWI's CurveVel/FlatFault layouts). Sample ids are 1-based global
row numbers over the data files in natural name order (``data2`` before ``data10``).

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

from data_prep import schema
from data_prep.dataset_writer import SamplePlan, SourceRecord, SplitConfig, append_samples, write_dataset
from data_prep.edges import EdgeConfig
from data_prep.geometry import AcquisitionGeometry
from data_prep.normalization import NormalizationConfig
from data_prep.schema import DatasetGeometry
from pipeline.cli import UserError, add_common_arguments, run_main
from pipeline.config import add_config_arguments, load_config


@dataclass(frozen=True)
class OpenFWIConfig:
    """Settings of the OpenFWI importer.

    Attributes:
        geometry: the acquisition geometry of the files (OpenFWI's by default; OpenFWI keeps it in
            ``dataset_config.json``, which does not give positions, so they are configuration here).
        splits, normalization, edges: as in ``IngestConfig``.
        nonfinite: ``"error"`` refuses NaN/Inf samples, ``"zero"`` replaces them.
        block_bytes, compression, progress: as in ``IngestConfig``.
    """

    geometry: AcquisitionGeometry = AcquisitionGeometry()
    splits: SplitConfig = SplitConfig()
    normalization: NormalizationConfig = NormalizationConfig()
    edges: EdgeConfig = EdgeConfig()
    nonfinite: Literal["error", "zero"] = "error"
    block_bytes: int = 64 * 2**20
    compression: Literal["none", "gzip", "lzf"] = "none"
    progress: bool = True


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
    sources: Sequence[str | Path], config: OpenFWIConfig, first_sample_id: int = 1, source_offset: int = 0
) -> tuple[list[SamplePlan], DatasetGeometry, list[SourceRecord]]:
    """Checks every pair's shapes (headers only) and plans one ``SamplePlan`` per row."""
    geometry = DatasetGeometry.from_acquisition(config.geometry)
    expected_data = (geometry.num_shots, geometry.num_samples, geometry.num_receivers)
    expected_model = tuple(geometry.grid_shape)
    plans: list[SamplePlan] = []
    records: list[SourceRecord] = []
    current = _CurrentFile()
    sample_id = first_sample_id
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
        del data, model
        rows = len(np.load(data_path, mmap_mode="r"))
        for row in range(rows):

            def load(data_path=data_path, model_path=model_path, row=row, sample_id=sample_id):
                seismic, velocity = current.get(data_path, model_path)
                values = np.array(seismic[row], dtype=np.float32)
                finite = np.isfinite(values)
                if not finite.all():
                    if config.nonfinite == "error":
                        raise UserError(
                            f"{data_path}: row {row} (sample id {sample_id}) holds {int((~finite).sum())} NaN/Inf "
                            "values. Fix the file or set --set nonfinite=zero."
                        )
                    values = np.where(finite, values, np.float32(0))
                model_values = np.array(velocity[row], dtype=np.float32).reshape(expected_model)
                if not (np.all(np.isfinite(model_values)) and np.all(model_values > 0)):
                    raise UserError(f"{model_path}: row {row} holds non-finite or non-positive velocities.")
                return values, model_values

            plans.append(
                SamplePlan(sample_id, source_index, geometry.num_shots * geometry.num_receivers, load)
            )
            sample_id += 1
    return plans, geometry, records


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
        config: geometry, splits, statistics settings.
        append: add to an existing dataset (sample ids continue after its largest id).
        overwrite: replace an existing dataset.

    Returns:
        The dataset path.
    """
    destination = Path(destination)
    if append:
        summary = schema.validate(destination, check_values=False)
        with h5py.File(destination, "r") as h5:
            first_id = int(h5[schema.SAMPLE_ID][()].max()) + 1 if summary.num_samples else 1
            num_sources = len(json.loads(h5[schema.PROVENANCE].attrs["sources"]))
        plans, geometry, records = plan_openfwi(sources, config, first_id, num_sources)
        differences = summary.geometry.differences(geometry)
        if differences:
            raise UserError(f"{destination} has another geometry: " + "; ".join(differences) + ".")
        return append_samples(destination, plans, records, config, created_by="data_prep.openfwi")
    if destination.exists() and not overwrite:
        raise FileExistsError(f"{destination} already exists: pass --append, --overwrite, or another --out.")
    plans, geometry, records = plan_openfwi(sources, config)
    return write_dataset(destination, plans, geometry, True, records, config, created_by="data_prep.openfwi")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.openfwi",
        description="Import OpenFWI data*.npy / model*.npy pairs into a validated HDF5 dataset.",
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
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
