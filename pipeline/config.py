"""Moved to ``core.config``: import from there.

Kept while other branches still say ``from pipeline.config import load_config``. No module of this repository
imports it (``tests/test_architecture.py``).
"""

from core.config import (
    CONFIG_DIR,
    add_config_arguments,
    config_file,
    config_hash,
    from_dict,
    json_ready,
    load_config,
    parse_override,
    to_dict,
    to_yaml,
)
from core.errors import ConfigError

__all__ = [
    "CONFIG_DIR",
    "ConfigError",
    "add_config_arguments",
    "config_file",
    "config_hash",
    "from_dict",
    "json_ready",
    "load_config",
    "parse_override",
    "to_dict",
    "to_yaml",
]
