"""Moved to ``core.cli`` (CLI conventions), ``core.errors`` (``UserError``) and ``core.progress`` (``Progress``).

Kept while other branches still say ``from pipeline.cli import UserError``: import from ``core`` instead. No
module of this repository imports it (``tests/test_architecture.py``).
"""

from core.cli import (
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USER_ERROR,
    PROJECT_LOGGERS,
    CommandParser,
    add_common_arguments,
    configure_logging,
    filtered_native_stderr,
    make_parser,
    one_line,
    quiet_native_logging,
    run_main,
)
from core.errors import EXPECTED_ERRORS, ConfigError, UserError
from core.progress import Progress
from core.version import DISTRIBUTION, package_version

__all__ = [
    "DISTRIBUTION",
    "EXIT_BUG",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USER_ERROR",
    "EXPECTED_ERRORS",
    "PROJECT_LOGGERS",
    "CommandParser",
    "ConfigError",
    "Progress",
    "UserError",
    "add_common_arguments",
    "configure_logging",
    "filtered_native_stderr",
    "make_parser",
    "one_line",
    "package_version",
    "quiet_native_logging",
    "run_main",
]
