"""Writing SEG-Y files with segyio: ``write_segy_traces``, ``write_shot_gathers``, ``write_velocity_models``.

Part of ``data_prep.segy_io``; ``data_prep.synthesize`` writes its shot gathers and velocity models through
it, and the test fixtures write every sample format and byte order with ``write_segy_traces``. What goes
into the headers is decided in ``data_prep.segy_io.headers`` (the tables of header bytes are there).

Files are created with ``segyio.create`` as unstructured (prestack) files: ``spec.tracecount`` is set and
``spec.ilines``/``spec.xlines`` are not. segyio
encodes everything (EBCDIC text, byte order, IBM floats for format 1). Headers and samples are written in
file order, one model (a block of traces) at a time, so memory is bounded by one model. The textual header
is always assigned explicitly, because ``segyio.create`` stamps today's date into its default one: the same
input gives the same bytes. Files are written under a temporary name and renamed when complete.

* ``write_segy_traces``, the low-level writer used by test fixtures, writes any sample format segyio
  writes in either byte order. segyio 1.9 leaves trace-header bytes 233-240 big-endian in little-endian
  files; this writer compensates (``_SEGYIO_UNSWAPPED_LITTLE_ENDIAN_FIELDS``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import segyio

from core import __version__
from core.atomic import atomic_output
from data_prep.geometry import AcquisitionGeometry
from data_prep.segy_io.headers import (
    MODEL_ID_FIELD,
    check_short,
    format_textual_header,
    shot_gather_headers,
    shot_textual_lines,
    textual_header_bytes,
    velocity_model_headers,
    velocity_textual_lines,
    with_user_lines,
)
from data_prep.segy_io.layout import SAMPLE_FORMAT_DTYPES, SAMPLE_FORMAT_NAMES, TraceHeaders

#: segyio 1.9 leaves trace-header bytes 233-240 (UnassignedInt1/2, our model id) in big-endian order when it
#: writes a little-endian file through ``f.header`` (the 4-byte list of its ``bswap_th`` misses them; its
#: ``f.header`` reads mirror this, ``f.attributes`` reads them correctly). ``write_segy_traces`` swaps
#: these two fields itself for little-endian files, and ``test_little_endian_model_id_bytes_on_disk``
#: checks the bytes on disk, so a segyio that fixes this makes the test fail rather than the files wrong.
_SEGYIO_UNSWAPPED_LITTLE_ENDIAN_FIELDS = (
    ("UnassignedInt1", "UnassignedInt2") if importlib.metadata.version("segyio").startswith("1.") else ()
)


def _header_rows(headers: TraceHeaders, count: int) -> list[dict[int, int]]:
    """Header columns -> one ``{byte offset: value}`` dict per trace, the form ``f.header[...] = ...`` takes."""
    unknown = [name for name in headers if name not in segyio.tracefield.keys]
    if unknown:
        raise ValueError(
            f"Unknown trace-header field(s) {unknown}: use segyio TraceField names such as 'FieldRecord'."
        )
    offsets = [segyio.tracefield.keys[name] for name in headers]
    columns = []
    for name, values in headers.items():
        values = np.asarray(values, dtype=np.int64)
        if values.shape not in ((), (count,)):
            raise ValueError(
                f"Header column {name!r} has shape {values.shape}; expected one value or ({count},)."
            )
        columns.append(np.broadcast_to(values, (count,)))
    if not columns:
        return [{} for _ in range(count)]
    return [dict(zip(offsets, row, strict=True)) for row in np.stack(columns, axis=1).tolist()]


def _samples_for_format(values: np.ndarray, dtype: np.dtype, sample_format: int) -> np.ndarray:
    """Samples in the dtype segyio writes for the format, refusing integers that would wrap or be cut."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if values.size and (values.min() < info.min or values.max() > info.max):
            raise ValueError(
                f"Samples span [{values.min()}, {values.max()}], outside the range of format {sample_format} "
                f"({SAMPLE_FORMAT_NAMES[sample_format]}: [{info.min}, {info.max}]). Scale them or use format 5."
            )
        if values.dtype.kind == "f" and not np.array_equal(values, np.rint(values)):
            raise ValueError(f"Format {sample_format} stores integers; the samples are not integral.")
    return np.ascontiguousarray(values, dtype=dtype)


def write_segy_traces(
    path: str | Path,
    headers: TraceHeaders | None,
    traces: np.ndarray | Iterable[tuple[TraceHeaders, np.ndarray]],
    num_samples: int,
    sample_interval: int,
    sample_format: int = 5,
    textual_header: str | None = None,
    endian: str = "big",
    atomic: bool = True,
    num_traces: int | None = None,
) -> Path:
    """Writes a SEG-Y file from trace-header columns and trace samples with segyio (the low-level writer).

    Args:
        path: output file.
        headers: trace-header columns (segyio ``TraceField`` names -> ``(traces,)`` integers or one value for
            every trace), or None when ``traces`` is an iterable of ``(headers, samples)`` blocks. Fields not
            given are 0.
        traces: ``(traces, num_samples)`` samples, or an iterable of ``(headers, samples)`` blocks so a
            large file is written block by block with bounded memory.
        num_samples: samples per trace.
        sample_interval: binary-header interval (µs for time, mm for depth), 0..65535.
        sample_format: SEG-Y format code, any of ``SAMPLE_FORMAT_DTYPES`` (integer formats refuse samples
            that do not fit).
        textual_header: 40 lines of text (or exactly 3200 characters); a minimal one when None.
        endian: ``"big"`` (standard) or ``"little"`` (for tests of byte-order detection).
        atomic: write under a temporary name and rename when complete.
        num_traces: total number of traces; required when ``traces`` is an iterable of blocks (segyio
            needs the trace count when it creates the file).

    Returns:
        The path written.
    """
    path = Path(path)
    if endian not in ("big", "little"):
        raise ValueError(f"endian must be 'big' or 'little'. Received: {endian!r}")
    if sample_format not in SAMPLE_FORMAT_DTYPES:
        raise ValueError(
            f"Cannot write SEG-Y sample format {sample_format}: supported formats are "
            f"{', '.join(f'{k} ({v})' for k, v in SAMPLE_FORMAT_NAMES.items())}."
        )
    if num_samples < 1 or not 0 <= sample_interval <= 65535:
        raise ValueError(
            "num_samples must be positive and sample_interval fit the 2-byte binary-header field (0..65535). "
            f"Received: num_samples={num_samples}, sample_interval={sample_interval}."
        )
    if isinstance(traces, np.ndarray):
        if headers is None:
            raise ValueError("headers are required when traces is an array.")
        blocks: Iterable[tuple[TraceHeaders, np.ndarray]] = [(headers, traces)]
        num_traces = len(traces)
    elif num_traces is None:
        raise ValueError("num_traces is required when traces is an iterable of (headers, samples) blocks.")
    else:
        blocks = traces
    text = textual_header_bytes(textual_header, [f"SEISINVERT {__version__}", "SEG-Y REV 1"])

    spec = segyio.spec()  # ilines/xlines stay None: with a tracecount, segyio creates an unstructured file
    spec.format = sample_format
    spec.samples = np.arange(num_samples) * (sample_interval / 1000.0)
    spec.tracecount = num_traces
    spec.endian = endian

    context = atomic_output(path) if atomic else contextlib.nullcontext(path)
    with context as target, segyio.create(target, spec) as segy:
        # segyio.create writes a default textual header with today's date: replace it (same input, same bytes).
        segy.text[0] = text
        segy.bin.update(
            {
                segyio.BinField.Traces: 0,
                segyio.BinField.AuxTraces: 0,
                segyio.BinField.Interval: sample_interval,
                segyio.BinField.IntervalOriginal: sample_interval,
                segyio.BinField.Samples: num_samples,
                segyio.BinField.SamplesOriginal: num_samples,
                segyio.BinField.Format: sample_format,
                segyio.BinField.SortingCode: 1,
                segyio.BinField.MeasurementSystem: 1,
                segyio.BinField.SEGYRevision: 1,
                segyio.BinField.TraceFlag: 1,
            }
        )
        written = 0
        for block_headers, block_samples in blocks:
            block_samples = np.asarray(block_samples)
            if block_samples.ndim != 2 or block_samples.shape[1] != num_samples:
                raise ValueError(
                    f"Trace samples must be (traces, {num_samples}). Received shape {block_samples.shape}."
                )
            count = len(block_samples)
            if written + count > num_traces:
                raise ValueError(f"More traces than num_traces={num_traces} were given.")
            if endian == "little":
                block_headers = {
                    name: np.asarray(values, dtype=np.int32).byteswap()
                    if name in _SEGYIO_UNSWAPPED_LITTLE_ENDIAN_FIELDS
                    else values
                    for name, values in block_headers.items()
                }
            rows = _header_rows(block_headers, count)
            samples = _samples_for_format(block_samples, segy.dtype, sample_format)
            # A block's headers, then its samples: segyio writes each straight to disk, and writing a new
            # file in order is fast where scattered writes are not.
            segy.header[written : written + count] = rows
            segy.trace[written : written + count] = samples
            written += count
        if written != num_traces:
            raise ValueError(f"{written} traces were given for num_traces={num_traces}.")
    return path


def _check_common(name: str, array: np.ndarray, ndim: int, axes: str, first_model_index: int) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {axes}. Received an array of shape {array.shape}.")
    if array.shape[0] == 0:
        raise ValueError(f"{name} holds no models. Received shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or Inf values: fix the simulation before writing SEG-Y.")
    if first_model_index < 0:
        raise ValueError(f"first_model_index must be >= 0. Received: {first_model_index}")
    return array


def write_shot_gathers(
    path: str | Path,
    seismic: np.ndarray,
    geometry: AcquisitionGeometry,
    first_model_index: int,
    textual_header: str | None = None,
    sample_format: int = 5,
) -> Path:
    """Writes the shot gathers of consecutive velocity models to one prestack SEG-Y file (with segyio).

    Traces are ordered model, shot, receiver; the header conventions are in the module docstring. The
    file is written under a temporary name and renamed when complete; the same input gives the same bytes.

    Args:
        path: output ``.segy`` file.
        seismic: ``(models, shots, time, receivers)`` float32 pressure; ``shots``, ``time`` and
            ``receivers`` must match ``geometry``.
        geometry: the acquisition geometry (positions, sample interval, grid spacing).
        first_model_index: 0-based global index of ``seismic[0]``; model ``m`` gets model id
            ``first_model_index + m + 1``.
        textual_header: extra lines (at most 36, each cut to 76 characters) placed above the generated
            description of content, geometry and header bytes.
        sample_format: 5 (IEEE float, default, exact) or 1 (IBM float, converted by segyio; about 6
            significant digits).

    Returns:
        The path written.
    """
    seismic = _check_common("seismic", seismic, 4, "(models, shots, time, receivers)", first_model_index)
    num_models, num_shots, num_samples, num_receivers = seismic.shape
    expected = (geometry.num_sources, geometry.num_samples, geometry.num_receivers)
    if (num_shots, num_samples, num_receivers) != expected:
        raise ValueError(
            f"seismic is (models, shots, time, receivers) = {seismic.shape} but the geometry has "
            f"{expected[0]} shots, {expected[1]} samples and {expected[2]} receivers: pass the geometry "
            "used to simulate it."
        )
    if sample_format not in (1, 5):
        raise ValueError(f"Shot gathers are written as IEEE (5) or IBM (1) floats. Received: {sample_format}")
    interval_us = int(round(geometry.sample_interval_s * 1e6))
    if abs(interval_us - geometry.sample_interval_s * 1e6) > 1e-6 * max(1.0, interval_us):
        raise ValueError(
            "SEG-Y stores the sample interval in whole microseconds. "
            f"Received: sample_interval_s={geometry.sample_interval_s}."
        )
    check_short("sample_interval_us", interval_us, "The sample interval in microseconds")
    check_short("num_samples", num_samples, "The number of samples")

    template = shot_gather_headers(geometry, first_model_index, 1)
    traces_per_model = num_shots * num_receivers

    def blocks():
        for model in range(num_models):
            headers = dict(template)
            headers["TRACE_SEQUENCE_LINE"] = template["TRACE_SEQUENCE_LINE"] + model * traces_per_model
            headers["TRACE_SEQUENCE_FILE"] = headers["TRACE_SEQUENCE_LINE"]
            headers["FieldRecord"] = template["FieldRecord"] + model * num_shots
            headers[MODEL_ID_FIELD] = template[MODEL_ID_FIELD] + model
            # (shots, time, receivers) -> (shots, receivers, time): one row per trace.
            samples = np.asarray(seismic[model], dtype=np.float32).transpose(0, 2, 1)
            yield headers, samples.reshape(traces_per_model, num_samples)

    lines = shot_textual_lines(geometry, first_model_index, num_models, sample_format)
    return write_segy_traces(
        path,
        None,
        blocks(),
        num_samples=num_samples,
        sample_interval=interval_us,
        sample_format=sample_format,
        textual_header=format_textual_header(with_user_lines(textual_header, lines)),
        num_traces=num_models * traces_per_model,
    )


def write_velocity_models(
    path: str | Path,
    velocity_mps: np.ndarray,
    grid_spacing_m: float,
    first_model_index: int,
    textual_header: str | None = None,
) -> Path:
    """Writes velocity models to one SEG-Y file (with segyio): one trace per lateral position, depth down it.

    Args:
        path: output ``.segy`` file.
        velocity_mps: ``(models, depth, x)`` velocities in m/s.
        grid_spacing_m: cell size in metres (depth and x); stored as the sample interval in millimetres.
        first_model_index: 0-based global index of ``velocity_mps[0]``.
        textual_header: extra lines placed above the generated description (see ``write_shot_gathers``).

    Returns:
        The path written.
    """
    velocity_mps = _check_common("velocity_mps", velocity_mps, 3, "(models, depth, x)", first_model_index)
    num_models, depth_cells, x_cells = velocity_mps.shape
    spacing_mm = int(round(grid_spacing_m * 1000))
    if not grid_spacing_m > 0 or abs(spacing_mm - grid_spacing_m * 1000) > 1e-6 * spacing_mm:
        raise ValueError(
            f"grid_spacing_m must be a positive whole number of millimetres. Received: {grid_spacing_m}"
        )
    check_short("grid_spacing_mm", spacing_mm, "The grid spacing in millimetres (at most 32.767 m)")
    check_short("depth_cells", depth_cells, "The number of depth cells")

    def blocks():
        for model in range(num_models):
            headers = velocity_model_headers(
                first_model_index + model, model, x_cells, depth_cells, grid_spacing_m
            )
            # (depth, x) -> (x, depth): one trace per x position.
            yield headers, np.asarray(velocity_mps[model], dtype=np.float32).T

    lines = velocity_textual_lines(first_model_index, num_models, depth_cells, x_cells, grid_spacing_m)
    return write_segy_traces(
        path,
        None,
        blocks(),
        num_samples=depth_cells,
        sample_interval=spacing_mm,
        sample_format=5,
        textual_header=format_textual_header(with_user_lines(textual_header, lines)),
        num_traces=num_models * x_cells,
    )
