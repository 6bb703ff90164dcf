"""The ingest stage: ``ingest(sources, destination, config)`` and its thin command line (``main``).

See ``data_prep.ingest`` for what the stage does; this module ties planning (``data_prep.ingest.plan``) to
the dataset writer (``data_prep.dataset_writer``).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py

from core.atomic import Terminated, check_writable_destination, terminate_as_interrupt
from core.cli import add_common_arguments, make_parser, run_main
from core.config import add_config_arguments, load_config
from core.distributed import add_scheduler_argument, connect
from core.errors import UserError
from data_prep import schema
from data_prep.append_journal import recover_interrupted_append
from data_prep.dataset_writer import (
    BackgroundHasher,
    LoadSamples,
    append_samples,
    check_schema_version,
    write_dataset,
)
from data_prep.ingest.cluster import cluster_loader
from data_prep.ingest.config import IngestConfig
from data_prep.ingest.plan import plan_segy_inputs
from data_prep.splits import SPLIT_NAMES

logger = logging.getLogger(__name__)


def ingest(
    sources: Sequence[str | Path],
    destination: str | Path,
    config: IngestConfig = IngestConfig(),  # noqa: B008 (a frozen dataclass, immutable)
    append: bool = False,
    overwrite: bool = False,
    client: Any = None,
) -> Path:
    """Reads SEG-Y (and velocity) inputs into a validated HDF5 dataset; see the module docstring.

    With a Dask ``client`` (``core.distributed.connect``) the inputs are scanned and the samples read on its
    workers; this process plans and is the only writer (``data_prep.ingest.cluster``). The dataset is the
    same as without one.

    Args:
        sources: SEG-Y files, directories (synthesize folders included), glob patterns, ``.npy`` velocity.
        destination: the ``.h5`` dataset to create (or to extend with ``append``).
        config: settings.
        append: add the inputs' samples to the existing ``destination`` without rewriting it.
        overwrite: replace an existing ``destination`` (otherwise refused).
        client: a ``distributed.Client`` to read on, or None to read in this process.

    Returns:
        The dataset path.

    Raises:
        UserError: bad input, with a message naming the file and trace; nothing is left half-written.
    """
    destination = Path(destination)
    # The output is checked before the inputs are scanned: a bad --out fails at once, not after the scan.
    if append:
        check_appendable(destination)
        # An append whose process was killed (kill -9) left its rollback record: undo it, then append.
        recovered = recover_interrupted_append(destination)
        if recovered:
            logger.warning("%s", recovered)
        with h5py.File(destination, "r") as h5:
            reference = schema.read_geometry(h5) if schema.GEOMETRY in h5 else None
            num_sources = (
                len(json.loads(h5[schema.PROVENANCE].attrs["sources"])) if schema.PROVENANCE in h5 else 0
            )
        check_schema_version(destination, schema.validate(destination, check_values=False).schema_version)
        with BackgroundHasher() as hasher:
            plans, geometry, labelled, records, origins = plan_segy_inputs(
                sources, config, reference, num_sources, hasher, client=client
            )
            return append_samples(
                destination,
                plans,
                records,
                config,
                created_by="data_prep.ingest",
                origins=origins,
                load_samples=_loader(client, geometry, config),
            )
    if destination.is_file() and not overwrite:
        raise FileExistsError(
            f"{destination} already exists: pass --append to add samples to it, --overwrite to replace it, or "
            "choose another --out."
        )
    check_writable_destination(destination, overwrite=overwrite)
    with BackgroundHasher() as hasher:
        plans, geometry, labelled, records, origins = plan_segy_inputs(
            sources, config, hasher=hasher, client=client
        )
        return write_dataset(
            destination,
            plans,
            geometry,
            labelled,
            records,
            config,
            "data_prep.ingest",
            origins,
            load_samples=_loader(client, geometry, config),
        )


def _loader(client: Any, geometry: schema.DatasetGeometry, config: IngestConfig) -> LoadSamples | None:
    """Reading on the cluster's workers, a few chunks of about ``block_bytes`` ahead of the writer."""
    if client is None:
        return None
    sample_bytes = 4 * geometry.num_shots * geometry.num_samples * geometry.num_receivers
    return cluster_loader(client, sample_bytes, config.block_bytes)


def check_appendable(destination: Path) -> None:
    """``--append`` needs an existing dataset file that this process may modify in place."""
    if destination.is_dir():
        raise UserError(f"--append: {destination} is a folder; --out names the dataset file (.h5) to extend.")
    if not destination.is_file():
        raise UserError(f"--append: {destination} does not exist. Create it first without --append.")
    if not os.access(destination, os.R_OK | os.W_OK):
        raise UserError(
            f"--append: {destination} cannot be modified (permission denied): an append changes the file in "
            "place. Fix its permissions, or write a new dataset with another --out."
        )


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "python -m data_prep.ingest",
        "Read prestack SEG-Y shot gathers (and velocity models) into a validated HDF5 dataset: any sample "
        "format, byte order and trace order; synthesize folders or field files. Bad input is refused with one "
        "line naming the file and trace; nothing half-written is left.",
        examples=[
            "python -m data_prep.ingest data/cfb --out data/cfb.h5",
            "python -m data_prep.ingest 'field/line*.sgy' --out data/line.h5 --set require_velocity=false "
            "--set grouping.shots_per_sample=5",
            "python -m data_prep.ingest data/cfb-more --out data/cfb.h5 --append",
            "python -m data_prep.ingest --repair --out data/cfb.h5   # roll back an append that was killed",
            "python -m data_prep.ingest data/cfb --out data/cfb.h5 --scheduler local:4   # read on 4 processes",
        ],
    )
    parser.add_argument(
        "sources", nargs="*", help="SEG-Y files, directories (synthesize folders) or glob patterns."
    )
    parser.add_argument(
        "--out", required=True, type=Path, metavar="DATASET.h5", help="The HDF5 dataset to write."
    )
    parser.add_argument(
        "--append", action="store_true", help="Add the inputs' samples to an existing dataset."
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing dataset.")
    parser.add_argument(
        "--repair",
        action="store_true",
        help="Roll back an append to --out that was killed (kill -9, power loss), then exit; no inputs needed. "
        "(Re-running the append also does it first.)",
    )
    add_scheduler_argument(parser)
    add_config_arguments(parser)
    for action in parser._actions:  # argparse has no public handle on an added option's help
        if "--set" in action.option_strings:
            action.help = (
                "Override one ingest setting (an IngestConfig key), e.g. --set grouping.shots_per_sample=5 or "
                "--set require_velocity=false (repeatable)."
            )
    add_common_arguments(parser)
    return parser


def _main(args: argparse.Namespace) -> int:
    values = {"progress": False} if args.quiet else None
    config = load_config(IngestConfig, files=args.config, overrides=args.overrides, values=values)
    if args.repair:
        return _repair(args.out)
    try:
        # SIGTERM (timeout, kill, job schedulers) unwinds like Ctrl-C: partial files removed, appends rolled back.
        with terminate_as_interrupt(), contextlib.ExitStack() as stack:
            client = (
                stack.enter_context(connect(args.scheduler, announce=not args.quiet))
                if args.scheduler
                else None
            )
            path = ingest(
                args.sources, args.out, config, append=args.append, overwrite=args.overwrite, client=client
            )
    except Terminated as stop:
        print(
            f"error: stopped by {signal.Signals(stop.signal_number).name}: "
            + ("the append was rolled back; " if args.append else "")
            + "no partial output was kept.",
            file=sys.stderr,
        )
        return 128 + stop.signal_number
    except ValueError as error:
        # Library-level ValueErrors (e.g. an impossible resampling ratio) are still the user's input.
        raise UserError(str(error)) from error
    except (FileNotFoundError, FileExistsError):
        raise
    except OSError as error:
        # What the checks before the work cannot foresee (a file made unreadable during the run, a full
        # disk, an HDF5 file locked by another process) is still one line, not a traceback.
        if args.debug:
            raise
        raise UserError(describe_os_error(error)) from error
    summary = schema.validate(path, check_values=False)
    print(
        f"{path}: {summary.num_samples} samples, seismic {summary.seismic_shape}, splits "
        + ", ".join(f"{name} {summary.split_sizes[name]}" for name in SPLIT_NAMES)
    )
    print("per family:\n" + schema.format_family_breakdown(summary.families))
    return 0


def _repair(destination: Path) -> int:
    if not destination.is_file():
        raise UserError(f"--repair: {destination} does not exist; --out names the dataset to repair.")
    message = recover_interrupted_append(destination)
    summary = schema.validate(destination, check_values=False)
    print(message or f"{destination}: no interrupted append to roll back.")
    print(f"{destination}: {summary.num_samples} samples, valid.")
    return 0


def describe_os_error(error: OSError) -> str:
    """One line for an operating-system error: the path, what happened, what to do."""
    where = f"{error.filename}: " if error.filename else ""
    reason = error.strerror or str(error)
    if isinstance(error, PermissionError):
        advice = "fix the permissions or choose other paths"
    elif isinstance(error, IsADirectoryError):
        advice = "a file path was expected there, not a folder"
    elif isinstance(error, NotADirectoryError):
        advice = "a folder was expected there, not a file"
    elif "lock" in reason.lower():
        advice = (
            "another process has the file open; wait for it to finish (or set HDF5_USE_FILE_LOCKING=FALSE on "
            "file systems without locks)"
        )
    elif getattr(error, "errno", None) == errno.ENOSPC:
        advice = "free some space or choose another --out"
    else:
        advice = "check the paths and the disk"
    return f"{where}{reason} ({type(error).__name__}): {advice}."


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, build_parser(), argv)
