"""Moved to ``core.atomic``: import from there.

Kept while other branches still say ``from data_prep.atomic import atomic_output``. No module of this
repository imports it (``tests/test_architecture.py``).
"""

from core.atomic import (
    PartialFile,
    Terminated,
    atomic_output,
    check_writable_destination,
    install_termination_handler,
    partial_files,
    stale_partials,
    temporary_sibling,
    terminate_as_interrupt,
    write_text_atomic,
)

__all__ = [
    "PartialFile",
    "Terminated",
    "atomic_output",
    "check_writable_destination",
    "install_termination_handler",
    "partial_files",
    "stale_partials",
    "temporary_sibling",
    "terminate_as_interrupt",
    "write_text_atomic",
]
