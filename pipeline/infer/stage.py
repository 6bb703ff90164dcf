"""The inference stage: ``infer`` (one line), ``infer_lines`` (a survey of lines), ``merge`` and the command line.

See ``pipeline.infer`` for what a run does and writes; this module ties the steps together: the model
(``pipeline.infer.model``), the line's geometry and window plan (``pipeline.windows``), the work folder
(``pipeline.infer.work_dir``), the windows' prediction (``pipeline.infer.processing``, in this process or on
a Dask cluster through ``pipeline.infer.cluster``) and the outputs (``pipeline.infer.outputs``).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.cli import add_common_arguments, make_parser, run_main
from core.config import add_config_arguments, to_dict
from core.distributed import add_scheduler_argument, connect
from core.errors import EXPECTED_ERRORS, UserError
from pipeline.infer.config import InferConfig, InferResult, load_infer_config
from pipeline.infer.line_refinement import refine_run_line
from pipeline.infer.model import check_refinement, model_identity, resolve_mirror_average, resolve_model
from pipeline.infer.outputs import finished_result, write_outputs
from pipeline.infer.processing import LineCorrection, prepare_line, process_windows
from pipeline.infer.work_dir import (
    LOCK_FILE,
    PLAN_FILE,
    RUN_FILE,
    SECTION_FILE,
    WORK_DIR,
    acquire_lock,
    done_windows,
    prepare_work,
    shard_range,
    write_run_record,
)
from pipeline.section import open_truth
from pipeline.windows import ModelLayout, WindowPlan, check_geometry, read_survey_line

logger = logging.getLogger(__name__)

#: What ``--lines`` finds in a folder: the SEG-Y files directly inside it, one line each.
SEGY_SUFFIXES = (".sgy", ".segy")


def infer(
    inputs: Sequence[str | Path],
    model: Any,
    out: str | Path,
    config: InferConfig = InferConfig(),
    *,
    resume: bool = False,
    shard: tuple[int, int] = (1, 1),
    progress: bool = True,
    model_uri: str | None = None,
    client: Any = None,
) -> InferResult:
    """Predicts a stitched velocity section for a survey line (see ``pipeline.infer``).

    Args:
        inputs: the line's shot-gather SEG-Y files.
        model: a ``pipeline.bundle.ModelBundle`` (or an object with the same ``geometry``, ``stats``,
            ``engine_settings``, ``info``, ``has_edges`` and ``predict``, which ``mirror_average`` calls with
            ``mirror_average=True``; one that also has
            ``predict_windows(seismic, window_origins_m, batch_size)`` is told where each window lies, e.g.
            a baseline or an oracle), or a bundle location (folder, ``runs:/…``, ``models:/…``).
        out: output folder.
        config: the settings.
        resume: continue an interrupted run in ``out`` (finished windows are skipped).
        shard: ``(K, N)``: process the K-th of N contiguous parts of the windows; the part that finishes
            last stitches the section.
        progress: print progress (a bar on a terminal, periodic lines otherwise).
        model_uri: how the model was named, for provenance (defaults to ``model`` when it is a string).
        client: a ``distributed.Client`` (``core.distributed.connect``): the windows are predicted on its
            workers (``pipeline.infer.cluster``: the model loaded once per worker, results written here as
            they come); None predicts them in this process. The outputs are the same.

    Returns:
        An ``InferResult``; ``merged`` is False when other shards still have windows to do.

    Raises:
        UserError: bad inputs, a geometry the model cannot be applied to (every mismatch listed),
            an output folder holding another run.
    """
    started = time.perf_counter()
    out = Path(out)
    index, count = shard
    if not 1 <= index <= count:
        raise UserError(f"--shard K/N needs 1 <= K <= N. Received: {index}/{count}")
    bundle, model_uri = resolve_model(model, model_uri)
    config = resolve_mirror_average(config, bundle)
    layout = ModelLayout.from_geometry(bundle.geometry)

    section_path = out / SECTION_FILE
    work = out / WORK_DIR
    if section_path.exists():
        if not (resume or count > 1):
            raise FileExistsError(
                f"{section_path} already exists: choose another --out (or --resume to keep the finished run)."
            )
        if not (work / RUN_FILE).exists():
            logger.info("%s is already complete: nothing to do.", section_path)
            return finished_result(out)

    if config.refine.iterations:
        check_refinement(bundle, layout, config)
    line = read_survey_line(inputs, config.line, grid_spacing_m=layout.grid_spacing_m)
    check = check_geometry(line, layout, config.line, config.regrid, config.windows)
    plan = check.raise_if_refused()
    regridded = [m.describe() for m in check.mismatches if m.fixed_by_regrid]
    for mismatch in regridded:
        logger.warning("Regridded: %s", mismatch)
    for warning in check.warnings:
        logger.warning("Geometry: %s", warning)
    geometry = {"warnings": check.warnings, "shot_moves": plan.shot_moves()}

    truth = None
    if config.truth is not None:
        truth = open_truth(config.truth, line.frame, layout.grid_shape[0], layout.grid_spacing_m)

    fingerprint = _fingerprint(bundle, model_uri, line, truth, config)
    run = prepare_work(work, fingerprint, plan, resume=resume, sharded=count > 1)
    correction = LineCorrection.estimate(bundle, line, layout, plan, config)
    if run is None:
        run = write_run_record(
            work,
            fingerprint,
            bundle,
            model_uri,
            line,
            layout,
            plan,
            config,
            regridded,
            truth,
            correction,
            geometry,
        )

    num_windows = plan.num_windows
    first, stop = shard_range(num_windows, index, count)
    done = done_windows(work, num_windows)
    todo = [w for w in range(first, stop) if not done[w]]
    skipped = (stop - first) - len(todo)
    if skipped:
        logger.info("Resuming: %d of this part's %d windows are already done.", skipped, stop - first)
    logger.info(
        "%d window(s) of %d columns along %.0f m%s; %d to predict here.",
        num_windows,
        layout.width_cells,
        plan.num_columns * plan.grid_spacing_m,
        f" (shard {index}/{count}: windows {first}..{stop - 1})" if count > 1 else "",
        len(todo),
    )

    timings = {"read": 0.0, "predict": 0.0, "qc": 0.0, "write": 0.0}
    if todo:
        job = prepare_line(bundle, line, layout, plan, config, truth, correction)
        if client is None:
            process_windows(todo, bundle, job, work, timings, progress)
        else:
            from pipeline.infer.cluster import process_on_cluster

            process_on_cluster(client, todo, bundle, model_uri, job, work, timings, progress)
    line.close()
    timings["windows_total"] = time.perf_counter() - started

    result = InferResult(
        out_dir=out,
        num_windows=num_windows,
        processed=len(todo),
        skipped=skipped,
        merged=False,
        timings_s=timings,
    )
    if not all(done_windows(work, num_windows)):
        remaining = int(num_windows - done_windows(work, num_windows).sum())
        logger.info(
            "%d window(s) are left for other shards; the last one to finish writes the section "
            "(or run --merge when they are done).",
            remaining,
        )
        return result
    if config.refine.iterations and config.refine.mode == "line":
        tick = time.perf_counter()
        refine_run_line(work, bundle, layout, plan, config, correction, truth)
        timings["refine"] = timings.get("refine", 0.0) + time.perf_counter() - tick
    merged = merge(out, config, timings=timings)
    merged.processed, merged.skipped = len(todo), skipped
    merged.timings_s = {**timings, **merged.timings_s}
    return merged


def _fingerprint(bundle: Any, model_uri: str, line: Any, truth: Any, config: InferConfig) -> str:
    """What a run's windows depend on (model, input files, truth, the options that change a window), digested:
    a resumed run or another shard must have the same."""
    inputs = {
        "model": model_identity(bundle, model_uri),
        "inputs": [{"name": f.path.name, "sha256": f.sha256} for f in line.files],
        "truth_sha256": truth.sha256 if truth else None,
        "options": {
            k: to_dict(getattr(config, k))
            for k in ("line", "regrid", "windows", "input_correction", "calibration", "qc")
            + (("refine",) if config.refine.iterations else ())
        },
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:20]


def merge(
    out: str | Path,
    config: InferConfig = InferConfig(),
    *,
    timings: dict[str, float] | None = None,
    force: bool = False,
) -> InferResult:
    """Stitches the finished windows in ``out/.work`` into the section outputs (``--merge``).

    Only the stitching and output options of ``config`` are used; everything else comes from the run
    record the windows were computed with.

    Raises:
        UserError: no run in ``out``, or windows still missing (named).
    """
    out = Path(out)
    work = out / WORK_DIR
    if not (work / RUN_FILE).is_file():
        if (out / SECTION_FILE).is_file():
            return finished_result(out)
        raise UserError(f"{out} holds no inference run to merge ({work / RUN_FILE} is missing).")
    run = json.loads((work / RUN_FILE).read_text())
    with np.load(work / PLAN_FILE) as arrays:
        plan = WindowPlan.from_arrays(arrays)
    done = done_windows(work, plan.num_windows)
    if not done.all():
        missing = np.flatnonzero(~done)
        raise UserError(
            f"{out}: {missing.size} of {plan.num_windows} windows are not finished yet (first: "
            f"{', '.join(map(str, missing[:10]))}): run the missing shards (or --resume) before --merge."
        )
    lock = work / LOCK_FILE
    if not acquire_lock(lock, force):
        logger.info("Another process is writing the section of %s (lock %s).", out, lock)
        return InferResult(out_dir=out, num_windows=plan.num_windows, processed=0, skipped=0, merged=False)
    try:
        result = write_outputs(out, work, run, plan, config, timings or {})
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
    if not config.outputs.keep_window_files:
        shutil.rmtree(work, ignore_errors=True)
    if config.tracking.enabled:
        from pipeline.tracking import log_inference_to_mlflow

        result.mlflow_run_id = log_inference_to_mlflow(result, run, config)
    return result


def infer_lines(
    lines: Mapping[str, Sequence[str | Path]] | Sequence[str | Path],
    model: Any,
    out: str | Path,
    config: InferConfig = InferConfig(),
    *,
    resume: bool = False,
    shard: tuple[int, int] = (1, 1),
    progress: bool = True,
    model_uri: str | None = None,
    client: Any = None,
) -> dict[str, InferResult]:
    """Predicts a section for each of several survey lines: ``out/<name>/`` per line, as ``infer`` writes.

    The model is loaded once (and, with a ``client``, once per worker for all the lines). The lines run one
    after another; a line that fails with an input error (a geometry the model cannot take, a damaged file) is
    reported and the others go on: the error names every failed line at the end. Each line's folder is an
    ordinary run folder: ``--resume``, ``--shard`` and ``--merge`` work on it as on a single line's.

    Args:
        lines: ``{name: [SEG-Y files of that line]}``, or SEG-Y files, one line each, named by their file name
            without suffix (``lines_from_arguments`` expands globs and folders).
        model, config, resume, shard, progress, model_uri, client: as for ``infer``.
        out: the folder that receives one folder per line.

    Returns:
        ``{name: InferResult}`` in the lines' order.

    Raises:
        UserError: no lines, two lines with the same name, or (after every line was tried) the lines that failed.
    """
    if not isinstance(lines, Mapping):
        lines = _name_lines([Path(path) for path in lines])
    if not lines:
        raise UserError("No survey lines were given: pass --lines FILE_OR_GLOB [...].")
    out = Path(out)
    bundle, model_uri = resolve_model(model, model_uri)
    results: dict[str, InferResult] = {}
    failed: list[str] = []
    with contextlib.ExitStack() as stack:
        if client is not None:
            from pipeline.infer.cluster import bundle_on_workers

            stack.enter_context(bundle_on_workers(client, bundle, model_uri))
        for number, (name, inputs) in enumerate(lines.items(), start=1):
            logger.info("Line %d of %d: %s -> %s", number, len(lines), name, out / name)
            try:
                results[name] = infer(
                    inputs,
                    bundle,
                    out / name,
                    config,
                    resume=resume,
                    shard=shard,
                    progress=progress,
                    model_uri=model_uri,
                    client=client,
                )
            except (*EXPECTED_ERRORS, FileExistsError) as error:
                logger.error("Line %s failed: %s", name, error)
                failed.append(f"{name}: {' '.join(str(error).split())}")
    if failed:
        raise UserError(
            f"{len(failed)} of {len(lines)} line(s) failed ({'; '.join(failed)}); the others are written in {out}: "
            "fix the failed lines' inputs or options and run the same command with --resume."
        )
    return results


def lines_from_arguments(arguments: Sequence[str]) -> dict[str, list[Path]]:
    """``--lines`` arguments -> ``{name: [file]}``: SEG-Y files, glob patterns and folders (their ``*.sgy``,
    ``*.segy`` files), one line per file, named by the file name without suffix, in the order given."""
    files: list[Path] = []
    for argument in arguments:
        if glob.has_magic(argument):
            matches = sorted(Path(match) for match in glob.glob(argument))
            if not matches:
                raise UserError(f"--lines {argument!r} matches no file: check the pattern.")
            files += [match for match in matches if match.is_file()]
        elif Path(argument).is_dir():
            found = sorted(p for p in Path(argument).iterdir() if p.suffix.lower() in SEGY_SUFFIXES)
            if not found:
                raise UserError(f"--lines {argument}: the folder holds no .sgy or .segy file.")
            files += found
        else:
            files.append(Path(argument))
    return _name_lines(files)


def _name_lines(files: Sequence[Path]) -> dict[str, list[Path]]:
    named: dict[str, list[Path]] = {}
    for path in files:
        name = path.stem
        if name in named:
            raise UserError(
                f"Two lines would be written to the same folder {name!r} ({named[name][0]} and {path}): each "
                "line's outputs go to OUT/<file name without suffix>; rename one of the files or run them separately."
            )
        named[name] = [path]
    return named


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UserError(f"--shard takes K/N (e.g. 3/8). Received: {text!r}") from None
    if not 1 <= index <= count:
        raise UserError(f"--shard K/N needs 1 <= K <= N. Received: {text!r}")
    return index, count


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "python -m pipeline.infer",
        "Predict a stitched velocity section for a survey line (shot-gather SEG-Y): section.h5, SEG-Y velocity "
        "and edge sections, PNG previews and a physics QC table; optionally refined by full-waveform "
        "inversion. --lines does several lines in one call, --scheduler runs the windows on a Dask cluster.",
        examples=[
            "python -m pipeline.infer --model models:/seisinvert-unet@champion --input 'line/*.sgy' --out out/line",
            "python -m pipeline.infer --model ... --input ... --out ... --regrid     # accept small geometry "
            "differences",
            "python -m pipeline.infer --model ... --input ... --out ... --refine 20  # 20 FWI iterations per window",
            "python -m pipeline.infer --model ... --input ... --out ... --shard 3/8  # job-array part 3 of 8",
            "python -m pipeline.infer --out out/line --merge   # stitch the finished parts",
            "python -m pipeline.infer --model ... --lines 'survey/*.sgy' --out out/survey   # one section per line",
            "python -m pipeline.infer --model ... --input ... --out ... --scheduler local:4  # docs/scaling.md",
        ],
    )
    parser.add_argument(
        "--model", help="Model bundle: a folder written by pipeline.train, runs:/… or models:/…."
    )
    parser.add_argument(
        "--input", nargs="+", default=[], metavar="SGY", help="Shot-gather SEG-Y files of one line."
    )
    parser.add_argument(
        "--lines",
        nargs="+",
        default=[],
        metavar="SGY|GLOB|DIR",
        help="Several lines, one SEG-Y file each (files, quoted globs, folders of .sgy/.segy files): each "
        "line's outputs go to OUT/<file name without suffix>/.",
    )
    parser.add_argument(
        "--out", required=True, help="Output folder (with --lines: one folder per line in it)."
    )
    parser.add_argument(
        "--regrid", action="store_true", help="Allow regridding (time, receivers, nearest shots)."
    )
    parser.add_argument(
        "--truth",
        help="True velocity section of a synthetic survey, for velocity errors: SEG-Y, or .npy/.npz/HDF5 (depth, x) in m/s.",
    )
    parser.add_argument("--resume", action="store_true", help="Continue an interrupted run in --out.")
    parser.add_argument("--shard", default="1/1", help="Process part K of N of the windows (job arrays).")
    parser.add_argument("--merge", action="store_true", help="Only stitch the finished windows in --out.")
    parser.add_argument(
        "--force-merge", action="store_true", help="With --merge: ignore another process's lock."
    )
    parser.add_argument(
        "--mlflow",
        action="store_true",
        help="Log the run to MLflow (tracking.enabled=true; tracking.* options).",
    )
    parser.add_argument(
        "--refine",
        type=int,
        metavar="N",
        help="Refine each window's velocity with N iterations of full-waveform inversion (refine.* options).",
    )
    add_scheduler_argument(parser)
    add_config_arguments(parser)
    add_common_arguments(parser)
    return parser


def _main(args: argparse.Namespace) -> int:
    values: dict[str, Any] = {}
    if args.regrid:
        values["regrid"] = {"enabled": True}
    if args.truth:
        values["truth"] = args.truth
    if args.mlflow:
        values["tracking"] = {"enabled": True}
    if args.refine is not None:
        values["refine"] = {"iterations": args.refine}
    config = load_infer_config(args.config, args.overrides, values)
    if args.merge:
        if args.scheduler or args.lines:
            raise UserError(
                "--merge stitches one line's folder in this process: drop --scheduler and --lines."
            )
        _report(merge(args.out, config, force=args.force_merge))
        return 0
    if args.input and args.lines:
        raise UserError(
            "--input (the files of one line) and --lines (several lines, a file each) exclude each other: pass one."
        )
    if not args.model or not (args.input or args.lines):
        raise UserError("--model and --input are required (except with --merge; --lines instead of --input).")
    lines = lines_from_arguments(args.lines) if args.lines else None
    with contextlib.ExitStack() as stack:
        client = (
            stack.enter_context(connect(args.scheduler, announce=not args.quiet)) if args.scheduler else None
        )
        options = {
            "resume": args.resume,
            "shard": parse_shard(args.shard),
            "progress": not args.quiet,
            "client": client,
        }
        if lines is None:
            _report(infer(args.input, args.model, args.out, config, **options))
        else:
            for name, result in infer_lines(lines, args.model, args.out, config, **options).items():
                _report(result, name)
    return 0


def _report(result: InferResult, name: str | None = None) -> None:
    prefix = f"{name}: " if name else ""
    if result.merged:
        print(
            f"{prefix}Wrote {result.section_path} and {len(result.files) - 1} other file(s) in {result.out_dir} "
            f"({result.num_windows} windows; {result.processed} predicted now, {result.skipped} reused)."
        )
    else:
        print(
            f"{prefix}Predicted {result.processed} window(s) in {result.out_dir}; the section is written when every "
            "shard is done."
        )


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, build_parser(), argv)


__all__ = [
    "build_parser",
    "infer",
    "infer_lines",
    "lines_from_arguments",
    "main",
    "merge",
    "parse_shard",
]
