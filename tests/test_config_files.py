"""Every YAML file shipped in ``configs/`` is written in the current keys.

A configuration dataclass that moved keys lists them in ``MOVED_KEYS`` (``core.config.moved_keys`` reads the old
ones with a FutureWarning): evaluation's flat ``tracking``, ``tracking_uri`` and ``experiment``, inference's
``mlflow:`` section (issue 23 item 5). The shipped files are what users copy, so none may hold an old key. The
classes are found in the source text (every class that assigns ``MOVED_KEYS``), so one added later is
checked without editing this test.
"""

from __future__ import annotations

import ast
import functools
import importlib
import warnings
from pathlib import Path

import pytest
import yaml

from core.config import CONFIG_DIR, moved_keys
from tests.conftest import REPO_ROOT

PACKAGES = ("core", "data_prep", "models", "pipeline")
YAML_FILES = sorted(CONFIG_DIR.rglob("*.yaml"))


@functools.cache
def classes_with_moved_keys() -> tuple[type, ...]:
    """The classes of the project's packages whose body assigns ``MOVED_KEYS``."""
    found = []
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and any(
                    isinstance(statement, ast.AnnAssign | ast.Assign)
                    and "MOVED_KEYS" in {getattr(t, "id", None) for t in _targets(statement)}
                    for statement in node.body
                ):
                    module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
                    found.append(
                        getattr(importlib.import_module(module.removesuffix(".__init__")), node.name)
                    )
    return tuple(found)


def _targets(statement: ast.stmt) -> list[ast.expr]:
    return [statement.target] if isinstance(statement, ast.AnnAssign) else list(statement.targets)


def test_the_classes_that_moved_keys_are_found():
    names = {cls.__name__ for cls in classes_with_moved_keys()}
    assert {"EvaluateConfig", "InferConfig"} <= names, f"expected evaluation and inference; found {names}"


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda path: str(path.relative_to(CONFIG_DIR)))
def test_no_shipped_config_holds_a_moved_key(path: Path):
    data = yaml.safe_load(path.read_text()) or {}
    for cls in classes_with_moved_keys():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FutureWarning)
            moved_keys(cls, data, str(path.relative_to(CONFIG_DIR.parent)))
        messages = [str(warning.message) for warning in caught if warning.category is FutureWarning]
        assert not messages, f"write the new keys: {messages}"
