"""ruff, as CI's test command runs it: ``ruff check .`` and ``ruff format --check .`` (settings in pyproject.toml).

The README's test command (the one .ci/run runs) is ``python -m pytest``, so the linters run as a test; ruff is
a dev dependency. Skipped only when ruff is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


def _ruff() -> list[str]:
    try:
        import ruff  # noqa: F401
    except ImportError:
        executable = shutil.which("ruff")
        if executable is None:
            pytest.skip("ruff is not installed (pip install -e '.[dev]')")
        return [executable]
    return [sys.executable, "-m", "ruff"]


@pytest.mark.parametrize("arguments", [["check", "."], ["format", "--check", "."]], ids=["check", "format"])
def test_ruff(arguments):
    completed = subprocess.run(
        [*_ruff(), *arguments], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, (
        f"`ruff {' '.join(arguments)}` found problems (fix: ruff check --fix . / ruff format .):\n"
        f"{completed.stdout[-4000:]}{completed.stderr[-2000:]}"
    )
