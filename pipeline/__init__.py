"""Training, evaluation, inference and experiment tracking (MLflow) for seismic velocity inversion.

The top layer but one (``core < data_prep < models < pipeline < benchmarks``): its stages import ``data_prep``,
``models`` and ``core``; nothing below imports ``pipeline`` (``tests/test_architecture.py``).
"""

# Importing core first: while `python -m pipeline.<command>` starts, core keeps TensorFlow's native start-up
# logging off the terminal (see core/__init__.py).
from core import __version__

__all__ = ["__version__"]
