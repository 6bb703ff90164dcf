"""The rollback record of an in-place ``--append``, and recovery when the appending process died.

``data_prep.dataset_writer.append_samples`` extends a dataset file in place (rewriting it would cost as much
as the dataset is large). Before it changes anything, ``begin_append`` copies what the append rewrites --
the ``splits``, ``normalization`` and ``provenance`` groups, the root attributes and the sample count -- into
the group ``/append_journal`` of the same file, flushes, and only then flags the file ``write_in_progress``
(which ``data_prep.schema.validate`` refuses, so a half-appended file never passes for a valid one).

* An exception during the append (Ctrl-C's KeyboardInterrupt, a bad input, a full disk) rolls back from the
  record at once (``roll_back``).
* SIGTERM -- what ``timeout``, ``kill`` and job schedulers send -- would end Python without running any
  cleanup; ``core.atomic.install_termination_handler`` turns it into ``Terminated`` (a
  KeyboardInterrupt) for the duration of the append, so it rolls back like Ctrl-C, and the previous
  handler is restored afterwards.
* A process killed outright (``kill -9``, out-of-memory killer, power loss) leaves the flag and the record.
  The next ``python -m data_prep.ingest ... --out FILE --append`` rolls back from the record before it
  starts (``recover_interrupted_append``), so re-running the append is the way out;
  ``python -m data_prep.ingest --repair --out FILE`` rolls back without appending.

A rolled-back append leaves the file's size as it was at the kill: HDF5 does not return freed space to the
file system (``h5repack FILE COPY`` does). HDF5's file lock (on by default) keeps a second process from
opening a file that is being appended to; where locking is off (``HDF5_USE_FILE_LOCKING=FALSE``) the
record's host and process id are checked instead.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
from pathlib import Path

import h5py

from core.atomic import Terminated, install_termination_handler, terminate_as_interrupt
from core.errors import UserError
from data_prep import schema

logger = logging.getLogger(__name__)

JOURNAL = "append_journal"
#: What an append rewrites besides the per-sample datasets (which are only extended): saved whole.
SAVED_GROUPS = (schema.SPLITS, schema.NORMALIZATION, schema.PROVENANCE)
IN_PROGRESS = "write_in_progress"


def begin_append(h5: h5py.File) -> None:
    """Saves the rollback record, then flags the file ``write_in_progress`` (each step flushed to disk)."""
    if JOURNAL in h5:  # left by an append that finished but died before removing it: nothing to undo
        del h5[JOURNAL]
    journal = h5.create_group(JOURNAL)
    journal.attrs["num_samples"] = int(h5[schema.SEISMIC].shape[0])
    journal.attrs["host"] = socket.gethostname()
    journal.attrs["pid"] = os.getpid()
    journal.attrs["started_utc"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    for name in SAVED_GROUPS:
        h5.copy(h5[name], journal, name=name)
    root = journal.create_group("root_attributes")
    for key, value in h5.attrs.items():
        root.attrs[key] = value
    journal.attrs["complete"] = True
    h5.flush()
    h5.attrs[IN_PROGRESS] = True
    h5.flush()


def roll_back(h5: h5py.File) -> int:
    """Restores the dataset saved by ``begin_append`` and removes the record; returns the sample count."""
    journal = h5[JOURNAL]
    num_samples = int(journal.attrs["num_samples"])
    schema.resize_samples(h5, num_samples)
    for name in SAVED_GROUPS:
        if name in h5:
            del h5[name]
        h5.copy(journal[name], h5, name=name)
    saved = journal["root_attributes"].attrs
    for key in list(h5.attrs):
        if key not in saved:
            del h5.attrs[key]
    for key, value in saved.items():
        h5.attrs[key] = value
    del h5[JOURNAL]
    h5.flush()
    return num_samples


def finish_append(h5: h5py.File) -> None:
    """Clears the flag, then drops the record (a crash in between leaves a harmless stale record)."""
    if IN_PROGRESS in h5.attrs:
        del h5.attrs[IN_PROGRESS]
    h5.flush()
    if JOURNAL in h5:
        del h5[JOURNAL]


def recover_interrupted_append(path: str | Path) -> str | None:
    """Rolls back an append whose process died (the file is flagged and holds the record).

    Returns:
        A message describing the rollback, or None when the file held no interrupted append.

    Raises:
        UserError: another process is appending to the file right now, or the file was flagged by a version
            that kept no rollback record (it must be rebuilt from its inputs).
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as h5:
            flagged = bool(h5.attrs.get(IN_PROGRESS, False))
            has_journal = JOURNAL in h5
            complete = has_journal and bool(h5[JOURNAL].attrs.get("complete", False))
            owner = (
                (str(h5[JOURNAL].attrs.get("host", "")), int(h5[JOURNAL].attrs.get("pid", 0)))
                if has_journal
                else ("", 0)
            )
    except OSError as error:
        if "lock" in str(error).lower():
            raise UserError(
                f"{path} is open in another process (HDF5 file lock), probably an append still running: wait for "
                "it to finish, then run again."
            ) from None
        raise
    if not flagged and not has_journal:
        return None
    if flagged and not complete:
        raise UserError(
            f"{path}: an append was interrupted, and the file holds no rollback record (written by an earlier "
            "version of seisinvert): it cannot be repaired. Rebuild the dataset from its inputs."
        )
    host, pid = owner
    locking_off = os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() in ("FALSE", "0")
    # With HDF5's file lock the open above would have failed while the writer lives; without it, ask the OS.
    if flagged and locking_off and host == socket.gethostname() and pid != os.getpid() and _alive(pid):
        raise UserError(
            f"{path} is being appended to by process {pid} on this machine: wait for it to finish (or stop it; "
            "then run again to roll its append back)."
        )
    with h5py.File(path, "r+") as h5:
        if not flagged:  # died before flagging (nothing changed) or after clearing the flag
            del h5[JOURNAL]
            return None
        current = int(h5[schema.SEISMIC].shape[0])
        restored = roll_back(h5)
    return (
        f"{path}: rolled back an interrupted append (process {pid} on {host or 'an unknown host'}): the dataset "
        f"holds its {restored} samples from before it again ({current - restored} partly written sample(s) "
        "discarded)."
    )


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


__all__ = [
    "JOURNAL",
    "SAVED_GROUPS",
    "Terminated",
    "begin_append",
    "finish_append",
    "install_termination_handler",
    "recover_interrupted_append",
    "roll_back",
    "terminate_as_interrupt",
]
