"""Training, evaluation, inference and experiment tracking (MLflow) for seismic velocity inversion.

Layering: this file, ``pipeline.config`` and ``pipeline.cli`` are the light core that ``data_prep`` and
``models`` may import (config types, ``UserError`` and the CLI conventions, ``__version__``). They import no
stage and no heavy dependency, so the stages (``pipeline.train``, ``pipeline.infer``, ...) can import
``data_prep`` and ``models`` without cycles. ``tests/pipeline/test_layering.py`` enforces this: do not import
a stage here.
"""

__version__ = "0.1.0"

import sys as _sys

if _sys.argv[:1] == ["-m"]:
    # `python -m pipeline.<command>` or `python -m data_prep.<command>` is starting (Python imports the package
    # of the module it runs while sys.argv[0] is "-m"): pipeline.cli keeps TensorFlow's native start-up logging
    # off the terminal, which works only before anything imports TensorFlow.
    from pipeline import cli as _cli  # noqa: F401
