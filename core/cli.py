"""Conventions shared by every command-line entry point.

Every command (``python -m data_prep.synthesize``, ``data_prep.ingest``, ``data_prep.openfwi``,
``data_prep.validate``, ``pipeline.train``, ``pipeline.evaluate``, ``pipeline.infer``, ``pipeline.dashboard``)
builds its parser with ``make_parser`` (help with an examples epilog) and ``add_common_arguments``, and runs
through ``run_main``:

* ``--version`` prints ``seisinvert <version>``.
* Exit status: 0 success; 2 a user error (bad input files, bad configuration, bad arguments, unstable physics
  settings), reported as one line ``error: ...`` on stderr; 1 a bug, with its traceback; 130 interrupted
  (Ctrl-C). Expected failures are raised as ``UserError`` or ``ConfigError`` carrying a message that says what
  was wrong and what to do.
* Logging: by default only warnings and errors are logged (each command prints its own summary lines);
  ``--quiet`` also turns progress output off; ``--verbose`` adds the INFO messages of this project's modules;
  ``--debug`` adds DEBUG messages, shows the traceback of expected errors and leaves TensorFlow's native
  logging as it is.
* Progress (``Progress``): a tqdm bar on a terminal, a plain line every few seconds when stderr is a file or a
  pipe (a bar would write a carriage-return update per refresh into the log).
* TensorFlow's native start-up logging (CUDA probing on machines without a GPU, CPU-feature notices, absl's
  "log messages before absl::InitializeLog()") is kept off the terminal: when this module is imported while
  Python starts one of the project's commands, ``quiet_native_logging`` sets ``TF_CPP_MIN_LOG_LEVEL=3``
  (unless it is set already) and filters the lines TensorFlow's shared libraries write to stderr while they
  load, which no log level reaches; ``--debug`` or ``TF_CPP_MIN_LOG_LEVEL=0`` leave both alone (see
  docs/command_line.md).

Layering: part of ``core``, the bottom layer (``tests/test_architecture.py``): standard library and ``core``
only, so every package can use it without loading TensorFlow or MLflow.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import tempfile
import textwrap
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from core.errors import EXPECTED_ERRORS, ConfigError, UserError
from core.version import DISTRIBUTION, package_version

#: Top-level packages whose loggers ``--verbose`` and ``--debug`` open up.
PROJECT_LOGGERS = ("core", "data_prep", "models", "pipeline", "benchmarks")
#: Exit statuses shared by every command.
EXIT_OK, EXIT_BUG, EXIT_USER_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


# ----------------------------------------------------------------------------------------------------------
# Parser
# ----------------------------------------------------------------------------------------------------------


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line ``error: ...`` on stderr with exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"error: {message} (see {self.prog} --help)\n")


def make_parser(prog: str, description: str, examples: Sequence[str] = ()) -> CommandParser:
    """A parser with the project's help layout: the description wrapped, then an ``examples:`` epilog.

    Args:
        prog: how the user runs the command, e.g. ``"python -m pipeline.train"``.
        description: one paragraph (or several separated by blank lines); wrapped to 100 columns.
        examples: command lines, each optionally followed by ``  # comment``; shown as written.
    """
    paragraphs = [textwrap.fill(" ".join(p.split()), width=100) for p in description.strip().split("\n\n")]
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples) if examples else None
    return CommandParser(
        prog=prog,
        description="\n\n".join(paragraphs),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--version``, ``--quiet``, ``--verbose`` and ``--debug`` to a parser."""
    group = parser.add_argument_group("output and diagnostics")
    group.add_argument(
        "--version",
        action="version",
        version=f"{DISTRIBUTION} {package_version()}",
        help="Print the version.",
    )
    group.add_argument(
        "--quiet",
        action="store_true",
        help="No progress output; only warnings and errors besides the result.",
    )
    group.add_argument(
        "--verbose", action="store_true", help="Also log the INFO messages of each stage (files read, plans)."
    )
    group.add_argument(
        "--debug",
        action="store_true",
        help="DEBUG logging, full tracebacks on errors, and TensorFlow's native logging left on.",
    )


# ----------------------------------------------------------------------------------------------------------
# Running a command
# ----------------------------------------------------------------------------------------------------------


def run_main(
    main: Callable[[argparse.Namespace], int | None],
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
) -> int:
    """Parses ``argv``, calls ``main(args)`` and maps the outcome onto the shared exit statuses.

    ``UserError``, ``ConfigError``, ``FileNotFoundError`` and ``FileExistsError`` become one line ``error: ...``
    on stderr and status 2; Ctrl-C becomes status 130; any other exception is a bug: its traceback and a
    line saying so are printed and the status is 1. With ``--debug`` every exception propagates (with its
    traceback) to the caller.
    """
    args = parser.parse_args(argv)
    with configure_logging(
        quiet=getattr(args, "quiet", False),
        verbose=getattr(args, "verbose", False),
        debug=getattr(args, "debug", False),
    ):
        try:
            return int(main(args) or 0)
        except EXPECTED_ERRORS as error:
            if getattr(args, "debug", False):
                raise
            print(f"error: {one_line(error)}", file=sys.stderr)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            print("interrupted: no partial output was kept.", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception:
            if getattr(args, "debug", False):
                raise
            # A bug: the traceback, then one line that says so (exit status 1).
            traceback.print_exc()
            print(
                f"error: unexpected {sys.exc_info()[0].__name__} (a bug in seisinvert {package_version()}; "
                "please report it with the traceback above)",
                file=sys.stderr,
            )
            return EXIT_BUG


def one_line(error: BaseException) -> str:
    """An exception's message on one line (its type name when it has no message)."""
    return " ".join((str(error) or type(error).__name__).split())


@contextlib.contextmanager
def configure_logging(quiet: bool = False, verbose: bool = False, debug: bool = False) -> Iterator[None]:
    """Logging to stderr for one command; the previous configuration is restored afterwards.

    Default and ``quiet``: warnings and errors of every logger, as ``warning: message``. ``verbose``: also
    INFO of this project's loggers, with their names. ``debug``: DEBUG of this project's loggers and INFO
    of the libraries'.
    """
    if debug:
        project_level, root_level = logging.DEBUG, logging.INFO
    elif verbose:
        project_level, root_level = logging.INFO, logging.WARNING
    else:
        project_level, root_level = logging.WARNING, logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    if debug or verbose:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    else:
        handler.setFormatter(_PlainFormatter())
    root = logging.getLogger()
    project = [logging.getLogger(name) for name in PROJECT_LOGGERS]
    saved = (root.level, [logger.level for logger in project])
    root.addHandler(handler)
    root.setLevel(root_level)
    for logger in project:
        logger.setLevel(project_level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for logger, level in zip(project, saved[1], strict=True):
            logger.setLevel(level)


class _PlainFormatter(logging.Formatter):
    """``warning: message`` (the level in lower case, like the ``error:`` lines of the commands)."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


# ----------------------------------------------------------------------------------------------------------
# TensorFlow's native start-up logging
# ----------------------------------------------------------------------------------------------------------

#: Lines TensorFlow's (and XLA's) shared libraries print while they load, before ``TF_CPP_MIN_LOG_LEVEL`` or
#: Python logging can act: CUDA probing on machines without a GPU and absl's pre-initialisation notice.
NATIVE_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|cudart_stub\.cc:\d+\] Could not find cuda drivers"
    r"|cpu_feature_guard\.cc:\d+\]"
    r"|^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags"
    r"|cuda_platform\.cc:\d+\] failed call to cuInit"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|TF-TRT Warning: Could not find TensorRT"
    r"|oneDNN custom operations are on"
)
#: Modules whose first import runs with the native stderr filtered.
NOISY_MODULES = ("tensorflow",)


def quiet_native_logging(debug: bool = False) -> bool:
    """Keeps TensorFlow's native start-up logging off the terminal; call before TensorFlow is imported.

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` unless the user has set it, and arranges for the first ``import
    tensorflow`` to run with file descriptor 2 captured: the lines matching ``NATIVE_NOISE`` are dropped and
    everything else is written back to stderr when the import ends (``TF_CPP_MIN_LOG_LEVEL`` does not reach
    the lines printed while TensorFlow's libraries load). Does nothing with ``debug``, with
    ``TF_CPP_MIN_LOG_LEVEL=0`` (the user asked for all of TensorFlow's logging), or once TensorFlow is loaded.

    Returns:
        Whether the import filter was installed.
    """
    if debug or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if any(name in sys.modules for name in NOISY_MODULES):
        return False
    if not any(isinstance(finder, _FilteredImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _FilteredImport(NOISY_MODULES))
    return True


@contextlib.contextmanager
def filtered_native_stderr(pattern: re.Pattern[str] = NATIVE_NOISE) -> Iterator[None]:
    """Captures file descriptor 2 (C/C++ code's stderr as well as Python's) for the duration of the block,
    then writes back every line that does not match ``pattern``."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):  # no usable stderr (a daemon): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = "".join(line for line in text.splitlines(keepends=True) if not pattern.search(line))
            if kept:
                os.write(2, kept.encode("utf-8"))


class _FilteredImport(importlib.abc.MetaPathFinder):
    """Runs the first import of each named top-level module inside ``filtered_native_stderr``."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = set(names)

    def find_spec(
        self, fullname: str, path: Any, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        self.names.discard(fullname)
        if not self.names and self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)  # the other finders, this one being out of sys.meta_path
        loader = getattr(spec, "loader", None)
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            return spec
        execute = loader.exec_module

        def exec_module(module: Any) -> None:
            with filtered_native_stderr():
                execute(module)

        loader.exec_module = exec_module  # this loader instance serves this one module only
        return spec


def _started_as_command() -> bool:
    """Whether Python is starting one of the project's commands (``python -m pipeline.train ...``).

    While ``python -m`` imports the package of the module it is about to run, ``sys.argv[0]`` is ``"-m"``;
    once the module runs, ``__main__`` carries the module's spec.
    """
    if sys.argv[:1] == ["-m"]:
        return True
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec is not None and str(spec.name).split(".")[0] in PROJECT_LOGGERS


if _started_as_command():
    quiet_native_logging(debug="--debug" in sys.argv[1:])


__all__ = [
    "DISTRIBUTION",
    "EXPECTED_ERRORS",
    "ConfigError",
    "CommandParser",
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
