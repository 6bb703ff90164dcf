"""Conventions shared by every command-line entry point.

Expected failures (bad input files, bad configuration, unstable physics settings) are raised as
``UserError`` or ``ConfigError`` carrying a message that says what was wrong and what to do. ``run_main``
prints that message to stderr and exits with status 2; a traceback is shown only with ``--debug``.
Unexpected exceptions keep their traceback and exit status 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from pipeline.config import ConfigError


class UserError(Exception):
    """An error caused by the user's input, with a message that says what to do about it."""


#: Exceptions reported as one clean line rather than a traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    UserError,
    ConfigError,
    FileNotFoundError,
    FileExistsError,
)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--debug`` and ``--quiet`` to a parser."""
    parser.add_argument("--debug", action="store_true", help="Show full tracebacks on errors.")
    parser.add_argument("--quiet", action="store_true", help="No progress bars; warnings and errors only.")


def run_main(
    main: Callable[[argparse.Namespace], int | None],
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
) -> int:
    """Parses ``argv``, calls ``main(args)`` and turns expected errors into a message and exit code 2."""
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(main(args) or 0)
    except EXPECTED_ERRORS as error:
        if getattr(args, "debug", False):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no partial output was kept.", file=sys.stderr)
        return 130
