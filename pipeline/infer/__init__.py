"""Batch inference on survey SEG-Y: windows along a line, stitched velocity and edge sections, physics QC.

Pipeline position: the last stage. A trained model bundle (``pipeline.bundle``, from ``pipeline.train``: a
folder, ``runs:/…`` or ``models:/…``) and the shot gathers of a 2D survey line go in; a velocity section
comes out::

    python -m pipeline.infer --model models:/unet@champion --input line.sgy --out runs/line1
    python -m pipeline.infer --model bundles/unet --input part1.sgy part2.sgy --out runs/line1 --regrid
    python -m pipeline.infer ... --shard 3/8          # job-array part 3 of 8; the last part merges
    python -m pipeline.infer --merge --out runs/line1 # stitch what the shards wrote (if needed)
    python -m pipeline.infer ... --resume             # continue an interrupted run
    python -m pipeline.infer --model ... --lines 'survey/*.sgy' --out runs/survey  # one section per line
    python -m pipeline.infer ... --scheduler local:4  # windows on a Dask cluster (docs/scaling.md)

``infer(inputs, model, out, config)`` is the pure function behind the command line (``infer_lines`` runs it
for each of several lines, ``OUT/<line>/`` each):

1. read the line's geometry from the trace headers and check it against the model's training geometry
   (``pipeline.windows``): every mismatch is listed with the option that fixes it; with ``--regrid`` time
   axes are resampled, receivers interpolated and shots taken from the nearest position within tolerance;
2. plan windows of the model's acquisition layout along the line, half a window apart by default;
3. estimate the polarity, delay and phase of the survey's wavelet relative to the training wavelet from the
   direct wave (``pipeline.input_correction``; ``input_correction.enabled``), which also decides the QC's
   source correction (``qc.source_correction: auto``) and its threshold (the misfit floor);
4. per window (in batches, memory bounded by a batch): cut out and regrid the gathers, undo the estimated
   polarity/delay/phase for the network, calibrate their amplitude to the training data's
   (``pipeline.calibration``), predict velocity and edges, run the physics QC (``pipeline.qc``:
   re-simulation, misfit, velocity errors against ``--truth``), and save the window's result atomically
   under ``OUT/.work/windows/`` — which is what ``--resume`` and ``--shard`` build on;
5. when every window is done, stitch them streaming (``pipeline.stitching``) into ``OUT/section.h5`` and
   write ``section_velocity.segy`` (+ ``section_edges.segy``), PNG previews, ``qc.csv`` and
   ``summary.json`` (``pipeline.section``), every file under a temporary name first.

Outputs in ``OUT``: ``section.h5``, ``section_velocity.segy``, ``section_edges.segy``,
``section_velocity.png``, ``section_edges.png``, ``qc.png``, ``qc.csv``, ``summary.json``. The per-window
files are removed after a successful merge unless ``outputs.keep_window_files`` is set.

``--refine N`` (``pipeline.refine``) also runs N iterations of full-waveform inversion per window, starting
from the network's velocity, and writes the refined section beside the network's: ``refined_velocity_mps``
in ``section.h5`` (with the data misfit before/after and, with ``--truth``, the velocity error before/after
per window), ``section_refined_velocity.segy`` and ``refinement.png``. With ``--set refine.mode=line`` the
windows keep their recorded gathers instead, and once every window is done the stitched network section is
refined as one model against all of them (``pipeline.infer.line_refinement``): no seams, one misfit for
the line.

With ``--scheduler ADDRESS|local:N`` (``client=`` from Python) step 4 runs on a Dask cluster
(``pipeline.infer.cluster``): the model is loaded once per worker, batches of windows are submitted with at
most a few per worker thread in flight and their results are written here as they complete; everything
else, the single writer included, stays in this process, and the outputs are the in-process run's.

The stage is split into one module per concept:

=================================  ====================================================================
module                             holds
=================================  ====================================================================
``pipeline.infer.config``          ``InferConfig`` (and its output and MLflow parts), ``InferResult``
``pipeline.infer.model``           resolving ``--model``, the model's identity, the ``--refine`` checks
``pipeline.infer.processing``      the input correction and predicting a batch of windows (``LineJob``,
                                   ``predict_batch``), in this process (``process_windows``)
``pipeline.infer.cluster``         the same on Dask workers (``--scheduler``): model once per worker,
                                   bounded in-flight batches, results as they complete
``pipeline.infer.line_refinement`` ``refine.mode: line``: the stitched section refined as one model
``pipeline.infer.work_dir``        ``OUT/.work``: run record, window files, shards, the merge lock
``pipeline.infer.outputs``         stitching the window files into ``section.h5`` and the other outputs
``pipeline.infer.stage``           ``infer``, ``infer_lines``, ``merge`` and the command line (``main``)
=================================  ====================================================================
"""

from pipeline.infer.config import InferConfig, InferResult, OutputConfig, load_infer_config
from pipeline.infer.stage import (
    build_parser,
    infer,
    infer_lines,
    lines_from_arguments,
    main,
    merge,
    parse_shard,
)

__all__ = [
    "InferConfig",
    "InferResult",
    "OutputConfig",
    "build_parser",
    "infer",
    "infer_lines",
    "lines_from_arguments",
    "load_infer_config",
    "main",
    "merge",
    "parse_shard",
]
