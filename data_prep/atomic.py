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


def write_text_atomic(destination: str | Path, text: str) -> Path:
    """Writes ``text`` to ``destination`` atomically."""
    with atomic_output(destination) as temporary:
        temporary.write_text(text)
    return Path(destination)
