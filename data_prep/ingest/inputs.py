"""Input discovery for ingest: files, directories, glob patterns and synthesize folders -> the files to read.

A directory written by ``data_prep.synthesize`` is read through its ``manifest.json`` (exactly the shot and
velocity files it lists, and the geometry it records); any other directory contributes its SEG-Y and
``.npy`` files in name order.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from data_prep.geometry import AcquisitionGeometry
from data_prep.schema import DatasetGeometry
from pipeline.cli import UserError

SEGY_SUFFIXES = (".segy", ".sgy", ".seg")
SYNTHESIZE_MANIFEST = "manifest.json"
SYNTHESIZE_FORMAT = "seisinvert-synthetic-survey"


@dataclass
class ResolvedInputs:
    segy: list[tuple[Path, str | None]]  # (path, role hint: "shots", "velocity" or None)
    npy: list[Path]
    manifest_geometry: DatasetGeometry | None = None


def resolve_sources(sources: Sequence[str | Path]) -> ResolvedInputs:
    """Expands files, directories and glob patterns into SEG-Y and .npy inputs.

    A directory with a ``manifest.json`` from ``data_prep.synthesize`` contributes exactly the files its
    manifest lists (shots and velocity); any other directory contributes its ``*.segy``/``*.sgy``/``*.npy``
    files (not recursive), in name order.
    """
    if not sources:
        raise UserError("No inputs given: pass SEG-Y files, directories or glob patterns.")
    resolved = ResolvedInputs(segy=[], npy=[])
    seen: set[Path] = set()

    def add(path: Path, role: str | None) -> None:
        path = path.resolve()
        if path in seen:
            return
        seen.add(path)
        if path.suffix.lower() == ".npy":
            resolved.npy.append(path)
        else:
            resolved.segy.append((path, role))

    for source in sources:
        text = str(source)
        if any(char in text for char in "*?["):
            matches = sorted(Path(match) for match in glob.glob(text))
            if not matches:
                raise UserError(
                    f"The pattern {text!r} matches no file. Check the path (quote it for the shell)."
                )
            for match in matches:
                if match.is_file():
                    add(match, None)
            continue
        path = Path(source)
        if path.is_dir():
            manifest = path / SYNTHESIZE_MANIFEST
            if manifest.is_file():
                _add_manifest(path, manifest, add, resolved)
                continue
            entries = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (*SEGY_SUFFIXES, ".npy")
            )
            if not entries:
                raise UserError(f"Directory {path} holds no .segy, .sgy or .npy files.")
            for entry in entries:
                add(entry, None)
        elif path.is_file():
            add(path, None)
        else:
            raise UserError(f"Input {path} does not exist. Check the path.")
    if not resolved.segy:
        raise UserError("No SEG-Y input among the sources: ingest needs shot gathers (.segy/.sgy).")
    return resolved


def _add_manifest(directory: Path, manifest_path: Path, add: Callable, resolved: ResolvedInputs) -> None:
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(
            f"{manifest_path} is not valid JSON ({error}): regenerate the folder with synthesize."
        ) from None
    if manifest.get("format") != SYNTHESIZE_FORMAT:
        raise UserError(
            f"{manifest_path} is not a {SYNTHESIZE_FORMAT} manifest (format={manifest.get('format')!r})."
        )
    missing = [
        name
        for entry in manifest.get("files", [])
        for name in (entry["shots"], entry["velocity"])
        if not (directory / name).is_file()
    ]
    if missing:
        raise UserError(
            f"{directory}: {len(missing)} file(s) listed in manifest.json are missing (first: {missing[0]}). "
            "Finish every synthesize shard, or pass the existing .segy files explicitly."
        )
    for entry in manifest["files"]:
        add(directory / entry["shots"], "shots")
        add(directory / entry["velocity"], "velocity")
    geometry = manifest.get("geometry")
    if geometry:
        try:
            acquisition = AcquisitionGeometry(
                **{
                    key: (
                        tuple(tuple(v) if isinstance(v, list) else v for v in value)
                        if isinstance(value, list)
                        else value
                    )
                    for key, value in geometry.items()
                }
            )
        except (TypeError, ValueError) as error:
            raise UserError(f"{manifest_path}: the geometry entry is invalid ({error}).") from None
        candidate = DatasetGeometry.from_acquisition(acquisition)
        if resolved.manifest_geometry is not None and resolved.manifest_geometry.differences(candidate):
            raise UserError(
                f"{manifest_path} describes a different geometry from the other inputs: "
                + "; ".join(resolved.manifest_geometry.differences(candidate))
            )
        resolved.manifest_geometry = candidate
