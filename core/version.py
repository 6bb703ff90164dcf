"""The project's one version: the installed distribution's metadata, else ``pyproject.toml`` of a source tree.

``pyproject.toml`` declares the version; ``pip install`` copies it into the distribution's metadata, which
``importlib.metadata`` reads. A source checkout that was never installed (``PYTHONPATH=.``) falls back to
reading ``pyproject.toml`` beside the packages. Everything that records a version (``--version``, SEG-Y
textual headers, HDF5 provenance, bundles, MLflow tags) uses ``__version__`` from here.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from pathlib import Path

#: Distribution name (``pip install seisinvert``) and the prefix of ``--version``.
DISTRIBUTION = "seisinvert"


def package_version() -> str:
    """The installed distribution's version; from ``pyproject.toml`` in a source tree that is not installed."""
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        return importlib.metadata.version(DISTRIBUTION)
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    with contextlib.suppress(OSError, ValueError, KeyError):
        import tomllib

        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])
    return "unknown"


__version__ = package_version()

__all__ = ["DISTRIBUTION", "__version__", "package_version"]
