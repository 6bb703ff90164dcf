"""``python -m data_prep.ingest``: the ingest command line (see ``data_prep.ingest``)."""

import contextlib
import sys

from data_prep.ingest import main

with contextlib.suppress(BrokenPipeError):
    sys.exit(main())
