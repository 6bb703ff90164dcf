"""The exceptions every layer raises for expected failures (bad input, bad configuration).

``core.cli.run_main`` reports them as one line ``error: ...`` with exit status 2 instead of a traceback;
their messages say what was wrong and what to do. ``data_prep.schema.SchemaError`` (a dataset that breaks the
HDF5 contract) subclasses ``UserError``.
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by the user's input, with a message that says what to do about it."""


class ConfigError(ValueError):
    """A configuration file or override is malformed or does not match the dataclass."""


#: Exceptions reported as one clean line rather than a traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    UserError,
    ConfigError,
    FileNotFoundError,
    FileExistsError,
)

__all__ = ["EXPECTED_ERRORS", "ConfigError", "UserError"]
