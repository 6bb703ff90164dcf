"""Atomic file output: write under a temporary name, rename only when complete.

Every file the project writes (SEG-Y, manifests, HDF5 datasets) goes through ``atomic_output`` so an
interrupted or failed run never leaves a file under its final name that looks complete.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


def temporary_sibling(destination: Path) -> Path:
    """A unique temporary path in the destination's folder (same file system, so rename is atomic)."""
    destination = Path(destination)
    return destination.with_name(f".{destination.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")


@contextlib.contextmanager
def atomic_output(destination: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yields a temporary path; on success renames it to ``destination``, on any error deletes it.

    Args:
        destination: the final file path.
        overwrite: when False, refuse to replace an existing ``destination``.

    Example:
        >>> with atomic_output("shots.segy") as temporary:
        ...     write_segy(temporary)
    """
    destination = Path(destination)
    if not overwrite and destination.exists():
        raise FileExistsError(f"{destination} already exists; remove it or choose another output path.")
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(destination)
    try:
        yield temporary
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def check_writable_destination(destination: str | Path, overwrite: bool = True, flag: str = "--out") -> Path:
    """Checks, before any work, that ``atomic_output(destination)`` will be able to write its file.

    Run before long input scans so that a bad output path fails first, with one line: an existing folder
    named as the output file, a path under a file (``existing_file/x.h5``), a folder without write
    permission, an existing file without ``overwrite``.

    Raises:
        UserError: what is wrong with the path and what to do (``flag`` names the option in messages).
        FileExistsError: ``destination`` exists and ``overwrite`` is False.
    """
    from pipeline.cli import UserError  # pipeline.cli is light; imported here to keep this module standalone

    destination = Path(destination)
    try:
        if destination.is_dir():
            raise UserError(
                f"{flag} {destination} is an existing folder; {flag} names the file to write, e.g. "
                f"{destination / 'dataset.h5'}"
                + (" (--overwrite replaces files, never folders)." if overwrite else ".")
            )
        if destination.exists() and not overwrite:
            raise FileExistsError(f"{destination} already exists; remove it or choose another output path.")
        ancestor = destination.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise UserError(
                f"{flag} {destination}: {ancestor} is a file, not a folder, so nothing can be created under it. "
                f"Choose an {flag} path inside a folder."
            )
    except PermissionError:
        raise UserError(
            f"{flag} {destination}: a folder on the path cannot be searched (permission denied). Choose a "
            "path you can write to."
        ) from None
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(
            f"{flag} {destination}: cannot write in {ancestor} (permission denied). Choose a folder you can "
            "write to, or fix its permissions."
        )
    return destination


def write_text_atomic(destination: str | Path, text: str) -> Path:
    """Writes ``text`` to ``destination`` atomically."""
    with atomic_output(destination) as temporary:
        temporary.write_text(text)
    return Path(destination)
