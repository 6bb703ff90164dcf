"""``python -m pipeline.infer``: the inference command line (see ``pipeline.infer``)."""

import contextlib
import sys

from pipeline.infer import main

with contextlib.suppress(BrokenPipeError):
    sys.exit(main())
