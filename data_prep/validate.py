"""``python -m data_prep.validate``: check HDF5 datasets against the schema and summarise them.

The check ``data_prep.ingest`` and ``data_prep.openfwi`` run after every write and ``pipeline.train`` runs
before every read (``data_prep.schema.validate``), as a command: structure, splits, statistics and
provenance, and with values (the default) every sample's seismic, velocity, edges and positions. Useful
after copying a dataset, before a long training job, or to see what a file holds::

    python -m data_prep.validate data/cfb.h5
    python -m data_prep.validate data/*.h5 --structure-only

Prints one summary per valid file; a file that does not follow the schema ends the command with status 2
and one line listing every problem found (the other files are still checked).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from core.cli import add_common_arguments, make_parser, run_main
from core.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "python -m data_prep.validate",
        "Check HDF5 datasets (written by data_prep.ingest or data_prep.openfwi) against the schema: "
        "structure, splits, normalisation statistics, provenance and, unless --structure-only, every value. "
        "Prints a summary of each valid file; exits with status 2 if any file is invalid.",
        examples=[
            "python -m data_prep.validate data/cfb.h5",
            "python -m data_prep.validate data/*.h5 --structure-only   # seconds, even for large files",
        ],
    )
    parser.add_argument("datasets", nargs="+", type=Path, metavar="DATASET.h5", help="Dataset files.")
    parser.add_argument(
        "--structure-only",
        action="store_true",
        help="Skip reading every value (structure and metadata only).",
    )
    add_common_arguments(parser)
    return parser


def _main(args: argparse.Namespace) -> int:
    from data_prep import schema

    problems = []
    for path in args.datasets:
        try:
            summary = schema.validate(path, check_values=not args.structure_only)
        except UserError as error:
            problems.append(str(error))
            continue
        geometry = summary.geometry
        print(
            f"{path}: valid (schema version {summary.schema_version}"
            + (", structure only" if args.structure_only else "")
            + f"): {summary.num_samples} samples, seismic {summary.seismic_shape} (samples, shots, time, "
            f"receivers), {'labelled' if summary.labelled else 'unlabelled'}, grid {geometry.grid_shape} of "
            f"{geometry.grid_spacing_m:g} m, {geometry.num_samples} samples of "
            f"{geometry.sample_interval_s * 1000:g} ms; splits "
            + ", ".join(f"{name} {size}" for name, size in summary.split_sizes.items())
        )
        if summary.families:
            print("per family:\n" + schema.format_family_breakdown(summary.families))
    if problems:
        raise UserError(" | ".join(problems))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
