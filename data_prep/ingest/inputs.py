"""Input discovery for ingest: files, directories, glob patterns and synthesize folders -> the files to read.

A directory written by ``data_prep.synthesize`` is read through its ``manifest.json`` (exactly the shot and
velocity files it lists, and the geometry it records) and becomes one ``InputGroup``: one origin of
samples, whose model ids pair its shots with its velocity models and which records the manifest's family
and engine settings. Any other directory contributes its SEG-Y and ``.npy`` files in name order; each such
shot file is an origin of its own (its sample ids are its own), and their velocity models are paired by id
among all such inputs. A path given twice (directly, or through a folder or a glob) is read once, with a
warning.
"""

from __future__ import annotations

import errno
import glob
import json
import logging
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError
from data_prep.geometry import AcquisitionGeometry
from data_prep.schema import DatasetGeometry
from data_prep.segy_io import TEXTUAL_HEADER_BYTES, decode_textual_header

SEGY_SUFFIXES = (".segy", ".sgy", ".seg")
SYNTHESIZE_MANIFEST = "manifest.json"
SYNTHESIZE_FORMAT = "seisinvert-synthetic-survey"

logger = logging.getLogger(__name__)


@dataclass
class InputGroup:
    """A synthesize folder: its files form one origin of samples (see the module docstring).

    Attributes:
        directory: the folder.
        manifest: its ``manifest.json``.
        geometry: the geometry the manifest records (None if it records none).
    """

    directory: Path
    manifest: dict[str, Any]
    geometry: DatasetGeometry | None = None

    @property
    def family(self) -> str | None:
        return self.manifest.get("family")

    def engine_settings(self) -> dict[str, Any] | None:
        """Every forward-modelling setting the manifest records (older manifests: their ``engine`` section)."""
        if isinstance(self.manifest.get("engine_settings"), dict):
            return dict(self.manifest["engine_settings"])
        engine = self.manifest.get("engine")
        if not isinstance(engine, dict) or not engine:
            return None
        geometry = self.manifest.get("geometry") or {}
        return {
            **engine,
            "peak_frequency_hz": geometry.get("peak_frequency_hz"),
            "sample_interval_s": geometry.get("sample_interval_s"),
            "num_samples": geometry.get("num_samples"),
            "grid_spacing_m": geometry.get("grid_spacing_m"),
            "recorded_by": (
                f"the engine section of a seisinvert {self.manifest.get('package_version', '?')} manifest, which "
                "does not record the wavelet's delay or the amplitude convention"
            ),
        }

    def models(self) -> dict[str, Any] | None:
        """What identifies the folder's velocity models besides their ids: generator, family, recipe, seed, grid."""
        if "seed" not in self.manifest or not self.family:
            return None
        geometry = self.manifest.get("geometry") or {}
        return {
            "generator": "data_prep.velocity_models",
            "family": self.family,
            "family_parameters": self.manifest.get("family_parameters"),
            "seed": self.manifest.get("seed"),
            "grid_shape": geometry.get("grid_shape"),
            "grid_spacing_m": geometry.get("grid_spacing_m"),
        }


@dataclass
class ResolvedInputs:
    segy: list[tuple[Path, str | None]]  # (path, role hint: "shots", "velocity" or None)
    npy: list[Path]
    manifest_geometry: DatasetGeometry | None = None  # the first synthesize folder's (the nominal geometry)
    groups: list[InputGroup] = field(default_factory=list)
    group_of: dict[Path, int] = field(default_factory=dict)  # file -> index in groups (synthesize files)


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

    def add(path: Path, role: str | None, group: int | None = None) -> None:
        path = path.resolve()
        if path in seen:
            logger.warning(
                "%s is given more than once (directly, in a folder or by a pattern): read once.", path
            )
            return
        seen.add(path)
        if group is not None:
            resolved.group_of[path] = group
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
                if any(group.directory == path.resolve() for group in resolved.groups):
                    logger.warning("%s is given more than once: read once.", path)
                    continue
                _add_manifest(path, manifest, add, resolved)
                continue
            entries = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (*SEGY_SUFFIXES, ".npy")
            )
            _warn_about_skipped_entries(path)
            if not entries:
                raise UserError(f"Directory {path} holds no .segy, .sgy or .npy files.")
            for entry in entries:
                add(entry, None)
        elif path.is_file():
            add(path, None)
        elif path.exists():
            raise UserError(
                f"Input {path} is {_file_kind(path)}, not a regular file: SEG-Y inputs must be files with a "
                "size (segyio maps them into memory). Copy the data into a file and ingest that."
            )
        else:
            raise UserError(_missing_input_message(path))
    if not resolved.segy:
        raise UserError("No SEG-Y input among the sources: ingest needs shot gathers (.segy/.sgy).")
    return resolved


def _missing_input_message(path: Path) -> str:
    """Why a path that is neither a file nor a folder names nothing: a link that loops, a link to nothing, or
    no such path."""
    if path.is_symlink():
        try:
            os.stat(path)
        except OSError as error:
            if error.errno == errno.ELOOP:
                return (
                    f"Input {path} is a symbolic link that loops (it points, through links, back to itself): it "
                    "names no file. Point the link at the SEG-Y file or folder, or pass that itself."
                )
        return (
            f"Input {path} is a symbolic link to {os.readlink(path)}, which does not exist. Fix or remove the "
            "link, or pass the file itself."
        )
    return f"Input {path} does not exist. Check the path."


def _warn_about_skipped_entries(folder: Path) -> None:
    """Logs a warning naming what a folder input holds but ingest does not read: subfolders (folders are not
    read recursively) and symbolic links that name no file (dangling or looping)."""
    subfolders, broken = [], []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            subfolders.append(entry.name)
        elif entry.is_symlink() and not entry.exists():
            broken.append(entry.name)
    if subfolders:
        logger.warning(
            "%s: skipped %d subfolder(s) (%s): folders are not read recursively; pass each subfolder as its own "
            "input to ingest it.",
            folder,
            len(subfolders),
            ", ".join(subfolders[:5]) + (", ..." if len(subfolders) > 5 else ""),
        )
    if broken:
        logger.warning(
            "%s: skipped %d symbolic link(s) that name no file (dangling or looping): %s.",
            folder,
            len(broken),
            ", ".join(broken[:5]) + (", ..." if len(broken) > 5 else ""),
        )


def _file_kind(path: Path) -> str:
    """What a path that exists but is neither a regular file nor a folder is, for messages."""
    mode = path.stat().st_mode
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


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
    group = len(resolved.groups)
    resolved.groups.append(InputGroup(directory=directory.resolve(), manifest=manifest))
    for entry in manifest["files"]:
        add(directory / entry["shots"], "shots", group)
        add(directory / entry["velocity"], "velocity", group)
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
        # Folders may differ in positions (each sample keeps its own); the plan checks what must agree.
        resolved.groups[group].geometry = DatasetGeometry.from_acquisition(acquisition)
        if resolved.manifest_geometry is None:
            resolved.manifest_geometry = resolved.groups[group].geometry


def check_manifest_models(
    resolved: ResolvedInputs,
    shot_ids: dict[Path, Sequence[int]],
    velocity_ids: dict[Path, Sequence[int]] | None,
) -> None:
    """Every file a synthesize manifest lists must hold exactly the models the manifest says it holds.

    A file cut at a model boundary is still whole traces, so nothing else notices that models are missing.
    For each listed pair, the model ids found in the shots file (and in the velocity file, when velocity is
    read) must be ``first_model + 1 .. first_model + num_models``, and the files must add up to the
    manifest's ``count``.

    Args:
        resolved: the inputs, with their synthesize folders (``groups``).
        shot_ids: the sample (model) ids found in each shot file, by resolved path.
        velocity_ids: the model ids found in each velocity file, or None when velocity is not read.

    Raises:
        UserError: naming each file that disagrees (how many models it holds, which are missing) and what
            to do.
    """
    for group in resolved.groups:
        files = group.manifest.get("files", [])
        problems = []
        listed = sum(int(entry.get("num_models", 0)) for entry in files)
        count = group.manifest.get("count")
        if count is not None and listed != int(count):
            problems.append(f"its files list {listed} model(s) but its count is {count}")
        for entry in files:
            first, number = int(entry.get("first_model", 0)), int(entry.get("num_models", 0))
            expected = set(range(first + 1, first + number + 1))
            for role, found_by_path in (("shots", shot_ids), ("velocity", velocity_ids)):
                found = (
                    None
                    if found_by_path is None
                    else found_by_path.get((group.directory / entry[role]).resolve())
                )
                if found is None:
                    continue
                found = {int(value) for value in found}
                if found == expected:
                    continue
                missing, unexpected = sorted(expected - found), sorted(found - expected)
                problem = (
                    f"{entry[role]} holds {len(found)} model(s), the manifest lists {number} "
                    f"(ids {first + 1}-{first + number})"
                )
                if missing:
                    problem += f"; missing {_id_list(missing)}"
                if unexpected:
                    problem += f"; not listed {_id_list(unexpected)}"
                problems.append(problem)
        if problems:
            raise UserError(
                f"{group.directory}: the files disagree with manifest.json: {'; '.join(problems[:4])}"
                f"{f' (and {len(problems) - 4} more)' if len(problems) > 4 else ''}. A file was truncated or "
                "replaced after synthesize wrote it: delete the damaged shots/velocity pair and re-run the same "
                "synthesize command (it regenerates missing chunks), or pass the .segy files themselves instead of "
                "the folder to ingest the models they hold."
            )


def _id_list(ids: Sequence[int]) -> str:
    shown = ", ".join(str(value) for value in ids[:5])
    return f"{shown}, ... ({len(ids)} in all)" if len(ids) > 5 else shown


def has_velocity_input(resolved: ResolvedInputs) -> bool:
    """Whether any input can hold velocity models, judged before scanning: ``.npy`` arrays, files a manifest
    lists as velocity, files named ``*velocity*``, or a textual header that says "DEPTH SAMPLES" (as
    ``write_velocity_models`` writes; only the first 3200 bytes are read). Mirrors how ``plan`` classifies
    the scanned files, so that "no velocity model" is said before any other problem of shot files."""
    if resolved.npy:
        return True
    for path, role in resolved.segy:
        if role is not None:
            if role == "velocity":
                return True
            continue
        if "velocity" in path.name.lower():
            return True
        try:
            with open(path, "rb") as handle:
                head = handle.read(TEXTUAL_HEADER_BYTES)
        except OSError:
            continue  # the scan reports it
        if len(head) == TEXTUAL_HEADER_BYTES and "DEPTH SAMPLES" in decode_textual_header(head).upper():
            return True
    return False
