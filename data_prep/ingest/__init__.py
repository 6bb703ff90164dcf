"""SEG-Y shot gathers (+ velocity models) -> one validated HDF5 training dataset.

Second stage of the pipeline, after ``data_prep.synthesize`` (or field data) and before training. The pure
function ``ingest(sources, destination, config)`` reads prestack SEG-Y files, directories (a folder written
by ``data_prep.synthesize`` is read through its ``manifest.json``) and globs, and writes the layout of
``data_prep.schema``. The command line is a thin wrapper::

    python -m data_prep.ingest data/flatvel-a --out data/flatvel-a.h5
    python -m data_prep.ingest 'field/*.sgy' --out field.h5 --set require_velocity=false \\
        --set grouping.shots_per_sample=5
    python -m data_prep.ingest data/more --out data/flatvel-a.h5 --append
    python -m data_prep.ingest data/flatvel-a --out data/flatvel-a.h5 --scheduler local:4   # docs/scaling.md

How the inputs are read:

* Byte order is detected per file, any sample format segyio reads is accepted (integers are cast to
  float32, IBM floats decoded), coordinates are scaled by SourceGroupScalar / ElevationScalar.
* Traces may come in any order: they are sorted by sample (velocity model), shot and receiver from the
  headers (``grouping``): by default the model id in byte 233 (``UnassignedInt1``), trusted only in files
  that carry this project's textual-header signature or that a synthesize manifest lists (SEG-Y rev 2 keeps
  a header name there); for other files, ``grouping.shots_per_sample=N`` groups every N consecutive shots
  (by ``grouping.shot_key``, default FieldRecord) into one sample, whose id is its first shot number, and
  ``grouping.sample_key=file`` makes each file one sample. Which rule was used is logged per file.
* A synthesize folder is one origin, every other shot file another; a sample's identity is (origin, id),
  so several folders (``ingest data/flatvel-a data/curvefault-b --out mix.h5``) and files that each number
  their shots from 1 make one dataset. Each sample's family, origin, own shot/receiver positions (in its
  velocity grid's frame; all inside the grid) and start time are stored; splits are stratified by family and
  a per-family breakdown is printed and recorded. Different recording delays are refused unless
  ``regularization.start_time_s`` aligns them. The engine settings of each synthesize folder (its
  manifest's ``engine_settings``) are copied into the provenance.
* Velocity models come from SEG-Y files written by ``write_velocity_models`` (recognised by their textual
  header "DEPTH SAMPLES", or named ``*velocity*``), paired by model id; or from ``.npy`` arrays
  ``(models, depth, x)`` / ``(models, 1, depth, x)`` whose row ``k`` (files concatenated in name order) is
  model id ``k + 1``. ``require_velocity=false`` builds an unlabelled dataset (for inference).
* Every input must have the dataset's geometry; otherwise it is refused with every difference listed,
  unless ``regularization.enabled`` resamples time and interpolates receivers onto the target.

All SEG-Y reading goes through segyio (``data_prep.segy_io``). Safety: headers are scanned first (nothing is
written if any input is bad); samples are then streamed one sample at a time (velocity models and edges in
blocks of ``block_bytes``) into a temporary file, which is validated and renamed only when complete.
``--append`` adds samples (new origins) to an existing dataset in place without rewriting it: the file is flagged
``write_in_progress`` while it changes (so an interrupted append never looks valid), existing samples keep
their split, the new ones are split among themselves, and the statistics of the new training samples are
merged into the stored ones (see ``data_prep.splits`` and ``data_prep.normalization``). A failed or
interrupted append (an error, Ctrl-C, SIGTERM) is rolled back at once; after a ``kill -9`` the next
``--append`` into the file, or ``--repair``, rolls it back first (``data_prep.append_journal``). The output
is checked before any input is scanned; damaged inputs are repaired with a warning or refused in one line
(docs/data_format.md, "Repairs, warnings and refusals").

The stage is split into one module per concept:

=======================================  ==================================================================
module                                   holds
=======================================  ==================================================================
``data_prep.ingest.config``              ``IngestConfig``, ``GroupingConfig``, ``RegularizationConfig``
``data_prep.ingest.inputs``              input discovery: files, directories, globs, synthesize manifests
                                         (``resolve_sources``)
``data_prep.ingest.grouping``            a shot file's traces -> (samples, shots, receivers)
                                         (``group_shot_file``)
``data_prep.ingest.header_geometry``     geometry from trace headers and its agreement with the dataset's
                                         (``geometry_from_headers``, ``target_geometry``, ``check_geometry``)
``data_prep.ingest.velocity``            which input holds each model id's velocity (``VelocityIndex``)
``data_prep.ingest.plan``                scanning all inputs into ``SamplePlan`` s (``plan_segy_inputs``)
``data_prep.ingest.stage``               ``ingest`` and the command line (``main``)
``data_prep.ingest.cluster``             scanning and reading on Dask workers (``--scheduler``), one writer
``data_prep.dataset_writer``             writing/appending the HDF5 dataset (shared with ``data_prep.openfwi``)
=======================================  ==================================================================
"""

from data_prep.dataset_writer import SplitConfig, append_samples, write_dataset
from data_prep.ingest.config import GroupingConfig, IngestConfig, RegularizationConfig
from data_prep.ingest.plan import plan_segy_inputs
from data_prep.ingest.stage import build_parser, ingest, main

__all__ = [
    "GroupingConfig",
    "IngestConfig",
    "RegularizationConfig",
    "SplitConfig",
    "append_samples",
    "build_parser",
    "ingest",
    "main",
    "plan_segy_inputs",
    "write_dataset",
]
