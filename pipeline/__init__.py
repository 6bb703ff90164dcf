"""Training, evaluation, inference and experiment tracking (MLflow) for seismic velocity inversion.

Layering: this file, ``pipeline.config`` and ``pipeline.cli`` are the light core that ``data_prep`` and
``models`` may import (config types, ``UserError`` and the CLI conventions, ``__version__``). They import no
stage and no heavy dependency, so the stages (``pipeline.train``, ``pipeline.infer``, ...) can import
``data_prep`` and ``models`` without cycles. ``tests/pipeline/test_layering.py`` enforces this: do not import
a stage here.
"""

__version__ = "0.1.0"
