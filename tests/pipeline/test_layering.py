"""Layering: ``data_prep`` and ``models`` may use only the light core of ``pipeline``, and that core is light.

``pipeline.train`` (and every later stage) imports ``data_prep`` and ``models``; if those imported a stage of
``pipeline`` in turn, there would be import cycles and every data command would pay for TensorFlow and
MLflow. The rule (issue 7, item 6):

* modules under ``data_prep/`` and ``models/`` import from ``pipeline`` only ``pipeline.config`` (config
  types and loading), ``pipeline.cli`` (``UserError`` and the CLI conventions) and ``pipeline.__version__``;
* ``pipeline/__init__.py``, ``pipeline.cli`` and ``pipeline.config`` import no stage (nothing from
  ``data_prep``, ``models`` or another ``pipeline`` module), so importing them loads no TensorFlow, Keras,
  JAX, MLflow, h5py or segyio.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

#: ``pipeline`` modules that ``data_prep`` and ``models`` may import.
ALLOWED_MODULES = {"pipeline.cli", "pipeline.config"}
#: Names that may be imported from the ``pipeline`` package itself.
ALLOWED_PACKAGE_NAMES = {"__version__", "cli", "config"}
#: The light core: what each may import from this project (besides the standard library and PyYAML).
CORE_MODULES = {
    # `python -m` of a command imports pipeline.cli first: it quiets TensorFlow before anything loads it.
    "pipeline/__init__.py": {"pipeline.cli"},
    "pipeline/cli.py": {"pipeline.config"},
    "pipeline/config.py": set(),
}
PROJECT_PACKAGES = ("pipeline", "data_prep", "models", "benchmarks", "tests")
HEAVY_MODULES = (
    "tensorflow",
    "keras",
    "jax",
    "mlflow",
    "h5py",
    "segyio",
    "scipy",
    "torch",
    "data_prep",
    "models",
)


def imported_modules(source: str) -> list[tuple[int, str]]:
    """Every module an import in ``source`` names, with its line: ``import a.b`` → ``a.b``; ``from a import
    b`` → ``a.b`` (whether ``b`` is a module or a name); ``importlib.import_module("a.b")`` and
    ``__import__("a.b")`` with a constant string → ``a.b``. Relative imports are ignored (they stay inside
    their own package)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def forbidden_pipeline_imports(source: str) -> list[str]:
    """The imports in ``source`` that reach a part of ``pipeline`` outside the allowed light core."""
    problems = []
    for line, name in imported_modules(source):
        if name != "pipeline" and not name.startswith("pipeline."):
            continue
        parts = name.split(".")
        if name == "pipeline":
            continue  # `import pipeline` alone runs pipeline/__init__.py, which is checked to be light
        if len(parts) == 2 and parts[1] in ALLOWED_PACKAGE_NAMES:
            continue  # `from pipeline import __version__` / `cli` / `config`, `import pipeline.cli`
        if ".".join(parts[:2]) in ALLOWED_MODULES:
            continue  # `from pipeline.cli import UserError`, `from pipeline.config import load_config`
        problems.append(f"line {line}: {name}")
    return problems


def _sources(*packages: str) -> list[Path]:
    files = sorted(path for package in packages for path in (REPO_ROOT / package).rglob("*.py"))
    assert files, f"no Python files found under {packages}"
    return files


def test_the_checker_catches_each_kind_of_forbidden_import():
    # The checks below can fail: each of these would be reported.
    bad = """
        import pipeline.train
        from pipeline import train
        from pipeline.tracking import log_model
        from pipeline.bundle import ModelBundle as Bundle
        def later():
            import importlib
            return importlib.import_module("pipeline.infer")
    """
    assert len(forbidden_pipeline_imports(textwrap.dedent(bad))) == 5
    good = """
        import pipeline
        import pipeline.cli
        from pipeline import __version__
        from pipeline.cli import UserError, run_main
        from pipeline.config import ConfigError, load_config
        from . import sibling
        import pipelines_elsewhere
    """
    assert forbidden_pipeline_imports(textwrap.dedent(good)) == []


def test_data_prep_and_models_import_only_the_light_core_of_pipeline():
    problems = {}
    for path in _sources("data_prep", "models"):
        found = forbidden_pipeline_imports(path.read_text(encoding="utf-8"))
        if found:
            problems[str(path.relative_to(REPO_ROOT))] = found
    assert not problems, (
        "data_prep/ and models/ may import only pipeline.config, pipeline.cli and pipeline.__version__ "
        f"(pipeline stages import them, not the other way round). Found: {problems}"
    )


@pytest.mark.parametrize("module", sorted(CORE_MODULES))
def test_the_light_core_imports_no_stage(module):
    allowed = CORE_MODULES[module]
    source = (REPO_ROOT / module).read_text(encoding="utf-8")
    project_imports = [
        (line, name) for line, name in imported_modules(source) if name.split(".")[0] in PROJECT_PACKAGES
    ]
    # `from pipeline.config import ConfigError` names pipeline.config.ConfigError: compare the module part.
    offending = [
        f"line {line}: {name}"
        for line, name in project_imports
        if not any(name == module_name or name.startswith(f"{module_name}.") for module_name in allowed)
    ]
    assert not offending, f"{module} must stay light (no stage, no data_prep/models): found {offending}"


def test_importing_the_core_loads_no_heavy_dependency():
    code = textwrap.dedent(f"""
        import json, sys
        import pipeline, pipeline.cli, pipeline.config
        heavy = {HEAVY_MODULES!r}
        print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in heavy)))
    """)
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing pipeline, pipeline.cli and pipeline.config loaded {loaded}"
