"""``pip install .`` (not editable) gives working commands outside the source tree (issue 23 item 7).

The wheel must hold every package and the YAML configurations (``configs/`` is shipped as the package
``seisinvert_configs``); installed, ``python -m pipeline.train --help`` and ``--config configs/train/...``
work from any folder. The wheel test builds with the running interpreter's setuptools (no build isolation,
no network), installs with ``--no-deps`` into a new virtual environment and reuses the running environment's
dependencies through a ``.pth`` file (``--system-site-packages`` would expose the base interpreter's
packages, not those of the environment the tests run in).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: What goes into the wheel's source copy (the rest of the checkout is not packaged).
SOURCES = ("pyproject.toml", "README.md", "core", "data_prep", "models", "pipeline", "configs")


def test_the_package_list_names_every_package_folder():
    settings = PYPROJECT["tool"]["setuptools"]
    listed = set(settings["packages"])
    on_disk = {
        ".".join(path.parent.relative_to(REPO_ROOT).parts)
        for top in ("core", "data_prep", "models", "pipeline")
        for path in (REPO_ROOT / top).rglob("__init__.py")
    }
    assert listed - {"seisinvert_configs"} == on_disk, (
        "pyproject.toml [tool.setuptools] packages must list every package folder (a missing one is missing "
        f"from the wheel): add {sorted(on_disk - listed)}, remove {sorted(listed - on_disk - {'seisinvert_configs'})}"
    )
    assert settings["package-dir"]["seisinvert_configs"] == "configs"


def _run(
    command: list[str], cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess:
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, (
        f"{' '.join(map(str, command))} exited {completed.returncode}:\n{completed.stdout[-2000:]}\n"
        f"{completed.stderr[-3000:]}"
    )
    return completed


@pytest.mark.slow
def test_the_wheel_works_outside_the_source_tree(tmp_path: Path):
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        origin = REPO_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, source / name)
    environment = {
        key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    environment.update(MLFLOW_DISABLE_TELEMETRY="true", TF_CPP_MIN_LOG_LEVEL="3", PIP_NO_INPUT="1")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        cwd=tmp_path,
        env=environment,
    )
    wheels = sorted((tmp_path / "dist").glob("seisinvert-*.whl"))
    assert len(wheels) == 1, wheels
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    shipped = {
        f"seisinvert_configs/{p.relative_to(REPO_ROOT / 'configs')}"
        for p in (REPO_ROOT / "configs").rglob("*.yaml")
    }
    assert shipped <= names, f"configurations missing from the wheel: {sorted(shipped - names)}"

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path, env=environment)
    python = venv / "bin" / "python"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheels[0]),
        ],
        cwd=tmp_path,
        env=environment,
    )
    site_packages = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            tmp_path,
            environment,
        ).stdout.strip()
    )
    # The dependencies (TensorFlow, MLflow, ...) of the running environment, after the wheel's own packages.
    (site_packages / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(
        [
            str(python),
            "-c",
            "import core, pipeline; from core.config import CONFIG_DIR; print(pipeline.__file__); print(CONFIG_DIR)",
        ],
        elsewhere,
        environment,
    ).stdout.split()
    assert all(Path(path).is_relative_to(site_packages) for path in where), f"not the installed copy: {where}"

    help_text = _run([str(python), "-m", "pipeline.train", "--help"], elsewhere, environment).stdout
    assert "usage: python -m pipeline.train" in help_text
    assert (
        "usage: python -m pipeline.infer"
        in _run([str(python), "-m", "pipeline.infer", "--help"], elsewhere, environment).stdout
    )
    version = _run([str(python), "-m", "pipeline.train", "--version"], elsewhere, environment).stdout.strip()
    assert version == f"seisinvert {PYPROJECT['project']['version']}"

    # `--config configs/train/quick.yaml` as documented, from a folder without configs/: the shipped file.
    load = textwrap.dedent("""
        from core.config import load_config
        from models.presets import resolve_model_config
        from pipeline.train import TrainConfig
        config = load_config(TrainConfig, files=["configs/train/quick.yaml"], overrides=["model=gru"])
        # A configs/model name, found among the installed configurations.
        family, _ = resolve_model_config(config.model, config.model_options, (5, 1000, 70), (70, 70))
        print(config.epochs, config.data.default.count, type(family).__name__)
    """)
    printed = _run([str(python), "-c", load], elsewhere, environment).stdout.split()
    quick = __import__("yaml").safe_load((REPO_ROOT / "configs" / "train" / "quick.yaml").read_text())
    assert printed == [str(quick["epochs"]), str(quick["data"]["default"]["count"]), "LSTMConfig"], printed
