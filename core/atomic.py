"""Atomic file output: write under a temporary name, rename only when complete.

Every file the project writes (SEG-Y, manifests, HDF5 datasets) goes through ``atomic_output`` so an
interrupted or failed run never leaves a file under its final name that looks complete.

The temporary file is a hidden sibling, ``.NAME.PID-TOKEN@HOST.partial``: an error (or Ctrl-C, or SIGTERM
where the stage turns it into an exception) deletes it, but a process killed outright (``kill -9``, the
out-of-memory killer, power loss) cannot, and such a file can be as large as the output. So the next
``atomic_output`` into the same destination looks for them (``stale_partials``): a partial file written on
this host by a process that no longer runs (or a process started after the file was last written, i.e. the
id was reused) is deleted with a warning; one from another host, whose processes cannot be checked, is
named in a warning and kept; one of a live process (another run writing the same output) is left alone.

SIGTERM (what ``timeout``, ``kill`` and job schedulers send) ends Python without any cleanup; stages run
their work inside ``terminate_as_interrupt``, which turns SIGTERM and SIGHUP into ``Terminated`` (a
KeyboardInterrupt), so temporary files are deleted and in-place appends rolled back as on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from core.errors import UserError

logger = logging.getLogger(__name__)


def _host() -> str:
    # The host's short name, without characters that would make the file name ambiguous or awkward.
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0]) or "localhost"


def temporary_sibling(destination: Path) -> Path:
    """A unique temporary path in the destination's folder (same file system, so rename is atomic).

    Named ``.NAME.PID-TOKEN@HOST.partial``: the process id and host say who writes it (``stale_partials``).
    """
    destination = Path(destination)
    return destination.with_name(
        f".{destination.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}@{_host()}.partial"
    )


@dataclasses.dataclass(frozen=True)
class PartialFile:
    """A temporary sibling of an output: its path, the writing process and host (None if unrecorded)."""

    path: Path
    pid: int
    host: str | None
    size_bytes: int
    modified: float


def partial_files(destination: str | Path) -> list[PartialFile]:
    """The temporary siblings ``atomic_output`` writes for ``destination`` (this version's names and the
    earlier ``.NAME.PID-TOKEN.partial``)."""
    destination = Path(destination)
    pattern = re.compile(
        rf"^\.{re.escape(destination.name)}\.(?P<pid>\d+)-[0-9a-f]{{8}}(?:@(?P<host>[A-Za-z0-9_-]+))?\.partial$"
    )
    found = []
    try:
        entries = list(destination.parent.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = pattern.match(entry.name)
        if not match:
            continue
        try:
            info = entry.stat()
        except OSError:
            continue
        found.append(PartialFile(entry, int(match["pid"]), match["host"], info.st_size, info.st_mtime))
    return sorted(found, key=lambda partial: partial.path.name)


def stale_partials(destination: str | Path, remove: bool = True) -> list[PartialFile]:
    """Deletes (``remove``) partial files of ``destination`` left by dead processes on this host; warns.

    Returns:
        The partial files found stale (deleted when ``remove``) or that cannot be checked (another host).
    """
    reported = []
    for partial in partial_files(destination):
        if partial.pid == os.getpid() and partial.host in (None, _host()):
            continue  # this process's own (an output written twice at once by one process is not stale)
        size = f"{partial.size_bytes / 2**20:.1f} MiB"
        if partial.host not in (None, _host()):
            logger.warning(
                "%s (%s) was left by process %d on host %s, which cannot be checked from here: delete it if no "
                "run is writing %s.",
                partial.path,
                size,
                partial.pid,
                partial.host,
                destination,
            )
            reported.append(partial)
            continue
        if _writer_alive(partial):
            continue  # another run is writing the same output right now
        if remove:
            with contextlib.suppress(FileNotFoundError):
                partial.path.unlink()
            logger.warning(
                "removed %s (%s), a partial file left by process %d, which no longer runs (killed while writing %s).",
                partial.path,
                size,
                partial.pid,
                destination,
            )
        reported.append(partial)
    return reported


def _writer_alive(partial: PartialFile) -> bool:
    """Whether the process that wrote ``partial`` still runs (a process started after the file's last write
    has only reused the id)."""
    try:
        os.kill(partial.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    started = _process_start_time(partial.pid)
    return started is None or started <= partial.modified + 1.0


def _process_start_time(pid: int) -> float | None:
    """Start time (Unix seconds) of a process, from /proc on Linux; None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


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
    stale_partials(destination)
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


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) received while a write was in progress; raised so that it rolls back."""

    def __init__(self, signal_number: int) -> None:
        self.signal_number = signal_number
        super().__init__(f"received {signal.Signals(signal_number).name}")


def install_termination_handler(
    signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP),
) -> Callable[[], None]:
    """Makes ``signals`` raise ``Terminated`` in the main thread; returns a function that undoes it.

    Signals whose handler is not the default (ignored, as under ``nohup``, or handled by the application)
    are left alone. Outside the main thread (where Python cannot set handlers) nothing is changed.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signal_number: int, frame) -> None:
        raise Terminated(signal_number)

    previous = {}
    for number in signals:
        if signal.getsignal(number) is signal.SIG_DFL:
            previous[number] = signal.signal(number, handler)

    def restore() -> None:
        for number, old in previous.items():
            signal.signal(number, old)
        previous.clear()

    return restore


@contextlib.contextmanager
def terminate_as_interrupt(signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """Within the block, SIGTERM/SIGHUP raise ``Terminated`` (so ``finally`` and rollbacks run)."""
    restore = install_termination_handler(signals)
    try:
        yield
    finally:
        restore()


def write_text_atomic(destination: str | Path, text: str) -> Path:
    """Writes ``text`` to ``destination`` atomically."""
    with atomic_output(destination) as temporary:
        temporary.write_text(text)
    return Path(destination)
