"""The bottom layer every package may import: errors, configuration, CLI conventions, progress, version,
atomic writes.

Layer order (``tests/test_architecture.py`` checks it on every import, lazy ones included)::

    core < data_prep < models < pipeline < benchmarks

``core`` imports nothing from the project and no heavy dependency (no TensorFlow, Keras, MLflow, h5py,
segyio), so ``python -m data_prep.validate --help`` stays fast. Modules:

* ``core.errors``: ``UserError``, ``ConfigError`` (one-line ``error: ...`` messages, exit status 2);
* ``core.config``: frozen dataclasses from YAML files and ``--set key=value`` overrides (``load_config``);
* ``core.cli``: ``make_parser``, ``add_common_arguments``, ``run_main`` (exit statuses, logging levels);
* ``core.progress``: ``Progress`` (a tqdm bar on a terminal, plain periodic lines in a log);
* ``core.version``: ``__version__`` from the package metadata;
* ``core.atomic``: ``atomic_output`` and SIGTERM-as-interrupt for every file the project writes.
"""

import sys as _sys

from core.version import __version__

if _sys.argv[:1] == ["-m"]:
    # `python -m pipeline.<command>` or `python -m data_prep.<command>` is starting (Python imports the package
    # of the module it runs while sys.argv[0] is "-m"): core.cli keeps TensorFlow's native start-up logging
    # off the terminal, which works only before anything imports TensorFlow.
    from core import cli as _cli  # noqa: F401

__all__ = ["__version__"]
