"""SEG-Y input and output: shot gathers and velocity models, written and read through segyio.

Sits between the data engine and the HDF5 datasets: ``data_prep.synthesize`` writes its simulated shot
gathers and velocity models through ``write_shot_gathers`` / ``write_velocity_models``, and
``data_prep.ingest`` reads those files (or field SEG-Y in any sample format, byte order and trace
order) through ``scan_segy`` / ``SegyScan.read_traces``.

Writing
-------
Files are created with ``segyio.create`` as unstructured (prestack) files: ``spec.tracecount`` is set and
``spec.ilines``/``spec.xlines`` are not. This module only decides what goes into the headers; segyio
encodes everything (EBCDIC text, byte order, IBM floats for format 1). Headers and samples are written in
file order, one model (a block of traces) at a time, so memory is bounded by one model. The textual header
is always assigned explicitly, because ``segyio.create`` stamps today's date into its default one: the same
input gives the same bytes. Files are written under a temporary name and renamed when complete.

* Textual header: 40 lines x 80 characters (EBCDIC on disk), describing content, geometry and header bytes.
* Binary header: ``Interval`` (3217) µs (mm for velocity files), ``Samples`` (3221), ``Format`` (3225),
  ``SortingCode`` (3229) = 1 (as recorded), ``MeasurementSystem`` (3255) = 1 (metres),
  ``SEGYRevision`` (3501) = 1, ``TraceFlag`` (3503) = 1 (fixed-length traces); ``Traces`` (3213) and
  ``AuxTraces`` (3215) are 0 (shots may differ in size; there are no auxiliary traces).
* Byte order: big-endian (the standard). Sample format: IEEE float (5) by default, IBM float (1) on
  request (segyio converts float32 to IBM by truncation: at least 21 significant bits).
* ``write_segy_traces``, the low-level writer used by test fixtures, writes any sample format segyio
  writes in either byte order. segyio 1.9 leaves trace-header bytes 233-240 big-endian in little-endian
  files; this writer compensates (``_SEGYIO_UNSWAPPED_LITTLE_ENDIAN_FIELDS``).

Shot-gather files (``write_shot_gathers``), one trace per (model, shot, receiver), in that order:

===========================  =====  ====================================================================
field                        byte   value
===========================  =====  ====================================================================
TRACE_SEQUENCE_LINE          1      trace number within the file, 1-based
TRACE_SEQUENCE_FILE          5      same
FieldRecord                  9      global shot number, 1-based: ``model_index * num_shots + shot + 1``
TraceNumber                  13     receiver number within the shot, 1-based
EnergySourcePoint            17     shot number within its model, 1-based
TraceIdentificationCode      29     1 (seismic data)
offset                       37     ``GroupX - SourceX`` in the same scaled units (centimetres)
ReceiverGroupElevation       41     receiver elevation relative to the surface (negative below it),
                                    scaled by ElevationScalar
SourceDepth                  49     source depth below the surface (positive), scaled by ElevationScalar
ElevationScalar              69     -100 (values are centimetres: divide by 100 to get metres)
SourceGroupScalar            71     -100 (coordinates are centimetres: divide by 100 to get metres)
SourceX / GroupX             73/81  source / receiver x position, centimetres
CoordinateUnits              89     1 (length)
TRACE_SAMPLE_COUNT           115    samples per trace
TRACE_SAMPLE_INTERVAL        117    sample interval in microseconds
CDP_X                        181    midpoint x ``(SourceX + GroupX) // 2``, centimetres (floor)
UnassignedInt1               233    global model (sample) id, 1-based: ``model_index + 1``; it groups the
                                    shots recorded over one velocity model
===========================  =====  ====================================================================

Velocity-model files (``write_velocity_models``), one trace per (model, x position), depth down the trace:

===========================  =====  ====================================================================
FieldRecord                  9      global model id, 1-based
TraceNumber                  13     x index, 1-based
SourceGroupScalar            71     -100
SourceX / GroupX / CDP_X     73/81/181  x position in centimetres (``x_index * grid_spacing_m * 100``)
TRACE_SAMPLE_COUNT           115    depth cells
TRACE_SAMPLE_INTERVAL        117    depth spacing in MILLIMETRES (10 m -> 10000); the textual header says
                                    "DEPTH SAMPLES; SAMPLE INTERVAL IN MM"
UnassignedInt1               233    global model id, 1-based
===========================  =====  ====================================================================
Samples are velocities in m/s, IEEE float.

Reading
-------
segyio reads everything it can: ``scan_segy`` opens the file with ``segyio.open(path,
ignore_geometry=True, endian=...)`` and ``f.mmap()``, takes the trace-header columns from
``f.attributes(field)[:]``, and ``SegyScan.read_traces`` reads runs of consecutive traces with
``f.trace.raw[start:stop]`` (segyio decodes IBM floats and byte order; integer formats are cast to
float32). This module adds only what segyio does not do:

* the byte order, detected from the binary header (``detect_endianness``; segyio assumes big-endian);
* checks before segyio opens the file, so that an empty, too short, truncated or non-SEG-Y file, an
  unsupported sample format or a sample count of 0 in the binary header gives a message that names the
  file (and trace) and says what to do, instead of segyio's "trace count inconsistent with file size";
* consistency checks and documented repairs on the headers segyio returns (sample count 0 in every trace
  header, sample interval missing from the binary header);
* ASCII textual headers (segyio always decodes the textual header as EBCDIC).

Memory is bounded by ``READ_BLOCK_BYTES`` per read, never by the file: ``scan_segy`` reads the header
columns in blocks of traces, mapping the file afresh for each; ``read_traces`` asks segyio for ranges of
traces, and ``SegyScan.close`` unmaps the file (``data_prep.ingest`` closes each file after every block).
Pages of a mapped file count towards the process's resident memory while mapped (they are the page cache),
which is why mappings are not kept. ``read_segy`` is the one-call version for small files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import segyio

from data_prep.atomic import atomic_output
from data_prep.geometry import AcquisitionGeometry
from pipeline import __version__
from pipeline.cli import UserError

logger = logging.getLogger(__name__)

TEXTUAL_HEADER_BYTES = 3200
BINARY_HEADER_BYTES = 400
TRACE_HEADER_BYTES = 240
#: Coordinate and elevation scalar written to every trace: negative means "divide by", so centimetres.
COORDINATE_SCALAR = -100
#: Header field holding the global model (sample) id in files written by this project.
MODEL_ID_FIELD = "UnassignedInt1"

#: Trace headers as columns: segyio ``TraceField`` name -> ``(traces,)`` integers (or one value for all).
TraceHeaders = Mapping[str, "np.ndarray | int"]

#: The numpy dtype segyio 1.9 reads and writes for each sample format; its size is the size on disk.
#: Format 1 (IBM float) is converted by segyio from and to float32.
SAMPLE_FORMAT_DTYPES = {
    1: "f4",
    2: "i4",
    3: "i2",
    5: "f4",
    6: "f8",
    8: "i1",
    9: "i8",
    10: "u4",
    11: "u2",
    12: "u8",
    16: "u1",
}
_SAMPLE_FORMAT_NAMES = {
    1: "4-byte IBM float",
    2: "4-byte signed integer",
    3: "2-byte signed integer",
    5: "4-byte IEEE float",
    6: "8-byte IEEE float",
    8: "1-byte signed integer",
    9: "8-byte signed integer",
    10: "4-byte unsigned integer",
    11: "2-byte unsigned integer",
    12: "8-byte unsigned integer",
    16: "1-byte unsigned integer",
}
#: Format codes that exist in the standard but that segyio (and so this project) cannot decode.
UNSUPPORTED_SAMPLE_FORMATS = {
    4: "4-byte fixed point with gain",
    7: "3-byte signed integer",
    15: "3-byte unsigned integer",
}
_UNSUPPORTED_FORMAT_BYTES = {4: 4, 7: 3, 15: 3}

#: segyio 1.9 leaves trace-header bytes 233-240 (UnassignedInt1/2, our model id) in big-endian order when it
#: writes a little-endian file through ``f.header`` (the 4-byte list of its ``bswap_th`` misses them; its
#: ``f.header`` reads mirror this, ``f.attributes`` reads them correctly). ``write_segy_traces`` swaps
#: these two fields itself for little-endian files, and ``test_little_endian_model_id_bytes_on_disk``
#: checks the bytes on disk, so a segyio that fixes this makes the test fail rather than the files wrong.
_SEGYIO_UNSWAPPED_LITTLE_ENDIAN_FIELDS = (
    ("UnassignedInt1", "UnassignedInt2") if importlib.metadata.version("segyio").startswith("1.") else ()
)


# ----------------------------------------------------------------------------------------------------------
# Headers
# ----------------------------------------------------------------------------------------------------------


def format_textual_header(lines: Sequence[str]) -> str:
    """Builds a 3200-character textual header: 40 card images ``C 1 ...`` of 80 characters.

    Lines longer than 76 characters are cut; missing lines are blank cards.
    """
    if len(lines) > 40:
        raise ValueError(f"A textual header holds 40 lines. Received: {len(lines)} lines.")
    cards = []
    for number in range(1, 41):
        text = lines[number - 1] if number <= len(lines) else ""
        cards.append(f"C{number:2d} {text}"[:80].ljust(80))
    return "".join(cards)


def _textual_header_bytes(textual_header: str | None, default_lines: Sequence[str]) -> bytes:
    """The 3200 ASCII bytes to assign to ``f.text[0]`` (segyio encodes them as EBCDIC on disk)."""
    if textual_header is None:
        text = format_textual_header(default_lines)
    elif len(textual_header) == TEXTUAL_HEADER_BYTES and "\n" not in textual_header:
        text = textual_header
    else:
        lines = textual_header.splitlines()
        too_long = [i + 1 for i, line in enumerate(lines) if len(line) > 80]
        if len(lines) > 40 or too_long:
            raise ValueError(
                "textual_header must be 40 lines of at most 80 characters (or exactly 3200 characters). "
                f"Received: {len(lines)} lines, lines longer than 80 characters: {too_long or 'none'}."
            )
        text = "".join(line.ljust(80) for line in lines).ljust(TEXTUAL_HEADER_BYTES)
    try:
        return text.encode("ascii")
    except UnicodeEncodeError as error:
        raise ValueError(f"textual_header must be plain ASCII text: {error}") from None


def _check_short(name: str, value: int, what: str) -> int:
    """2-byte header fields hold at most 32767: refuse rather than let the value wrap."""
    if not 0 < value <= 32767:
        raise ValueError(f"{what} must fit a 2-byte SEG-Y header field (1..32767). Received: {name}={value}.")
    return int(value)


def _scaled(metres: np.ndarray | float) -> np.ndarray:
    """Metres to the integer header units implied by COORDINATE_SCALAR (centimetres)."""
    return np.rint(np.asarray(metres, dtype=np.float64) * -COORDINATE_SCALAR).astype(np.int64)


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
                f"({_SAMPLE_FORMAT_NAMES[sample_format]}: [{info.min}, {info.max}]). Scale them or use format 5."
            )
        if values.dtype.kind == "f" and not np.array_equal(values, np.rint(values)):
            raise ValueError(f"Format {sample_format} stores integers; the samples are not integral.")
    return np.ascontiguousarray(values, dtype=dtype)


# ----------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------


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
            f"{', '.join(f'{k} ({v})' for k, v in _SAMPLE_FORMAT_NAMES.items())}."
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
    text = _textual_header_bytes(textual_header, [f"SEISINVERT {__version__}", "SEG-Y REV 1"])

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


def _shot_textual_lines(geometry: AcquisitionGeometry, first_model: int, num_models: int, sample_format: int):
    sources = geometry.source_positions_m()
    receivers = geometry.receiver_positions_m()
    return [
        f"SEISINVERT {__version__} - DEEP-LEARNING SEISMIC VELOCITY INVERSION",
        "CONTENT: SYNTHETIC PRESTACK SHOT GATHERS, ACOUSTIC PRESSURE",
        f"MODELS {first_model}-{first_model + num_models - 1} (0-BASED GLOBAL MODEL INDEX), {num_models} MODELS",
        "TRACE ORDER: MODEL, SHOT, RECEIVER",
        f"SHOTS PER MODEL {geometry.num_sources}  RECEIVERS PER SHOT {geometry.num_receivers}",
        f"SAMPLES {geometry.num_samples}  SAMPLE INTERVAL {geometry.sample_interval_s * 1e6:g} US",
        f"GRID {geometry.grid_shape[0]} X {geometry.grid_shape[1]} CELLS (DEPTH, X), SPACING {geometry.grid_spacing_m:g} M",
        f"SOURCE X {sources[:, 1].min():g}-{sources[:, 1].max():g} M, DEPTH {sources[:, 0].min():g}-{sources[:, 0].max():g} M",
        f"RECEIVER X {receivers[:, 1].min():g}-{receivers[:, 1].max():g} M, DEPTH {receivers[:, 0].min():g}-{receivers[:, 0].max():g} M",
        f"PEAK FREQUENCY {geometry.peak_frequency_hz:g} HZ  SAMPLE FORMAT {sample_format} "
        f"({_SAMPLE_FORMAT_NAMES[sample_format].upper()}), BIG-ENDIAN",
        "",
        "TRACE HEADER BYTES:",
        "  9 FIELDRECORD = GLOBAL SHOT NO. (1-BASED) = MODEL*NSHOTS+SHOT+1",
        " 13 TRACENUMBER = RECEIVER NO. IN SHOT (1-BASED)",
        " 17 ENERGYSOURCEPOINT = SHOT NO. IN MODEL (1-BASED)",
        " 37 OFFSET = GROUPX - SOURCEX (CM)",
        " 41 RECEIVER ELEVATION (CM, NEGATIVE BELOW SURFACE)",
        " 49 SOURCE DEPTH BELOW SURFACE (CM, POSITIVE)",
        " 69 ELEVATION SCALAR = -100  71 COORDINATE SCALAR = -100",
        " 73 SOURCEX (CM)  81 GROUPX (CM)  181 CDP_X = MIDPOINT (CM)",
        "115 SAMPLE COUNT  117 SAMPLE INTERVAL (US)",
        "233 MODEL ID (1-BASED) = MODEL INDEX + 1; GROUPS SHOTS OF ONE MODEL",
        "",
        "COMPANION FILE: *_VELOCITY_*.SEGY, SAME MODEL IDS",
    ]


def _with_user_lines(textual_header: str | None, generated: list[str]) -> list[str]:
    """User lines first, then the generated description, as far as 40 cards allow.

    The generated lines are never replaced entirely, so a reader can always tell a velocity file
    ("DEPTH SAMPLES; SAMPLE INTERVAL IN MM") from a shot file whatever the caller adds.
    """
    if not textual_header:
        return generated
    user = [line.strip() for line in textual_header.splitlines()]
    if len(user) > 40 - 4:
        raise ValueError(
            f"textual_header may add at most 36 lines (the generated content lines follow). Received {len(user)}."
        )
    return (user + [""] + generated)[:40]


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


def shot_gather_headers(
    geometry: AcquisitionGeometry, first_model_index: int, num_models: int
) -> dict[str, np.ndarray]:
    """The trace headers ``write_shot_gathers`` writes, as columns ``(models * shots * receivers,)`` in file order.

    Keys are segyio ``TraceField`` names (the fields set; all others are 0). Public so that tests and tools
    can build variants (other trace orders, byte orders, broken headers) and write them with
    ``write_segy_traces``.
    """
    num_shots, num_receivers = geometry.num_sources, geometry.num_receivers
    sources_m = geometry.source_positions_m()  # (shots, 2): depth_m, x_m
    receivers_m = geometry.receiver_positions_m()  # (receivers, 2)
    source_x = _scaled(sources_m[:, 1])
    group_x = _scaled(receivers_m[:, 1])
    model, shot, receiver = np.meshgrid(
        np.arange(num_models), np.arange(num_shots), np.arange(num_receivers), indexing="ij"
    )
    model, shot, receiver = model.ravel(), shot.ravel(), receiver.ravel()
    model_index = first_model_index + model
    count = model.size
    sequence = np.arange(1, count + 1)
    return {
        "TRACE_SEQUENCE_LINE": sequence,
        "TRACE_SEQUENCE_FILE": sequence.copy(),
        "FieldRecord": model_index * num_shots + shot + 1,
        "TraceNumber": receiver + 1,
        "EnergySourcePoint": shot + 1,
        "TraceIdentificationCode": np.full(count, 1),
        "offset": group_x[receiver] - source_x[shot],
        "ReceiverGroupElevation": -_scaled(receivers_m[:, 0])[receiver],
        "SourceDepth": _scaled(sources_m[:, 0])[shot],
        "ElevationScalar": np.full(count, COORDINATE_SCALAR),
        "SourceGroupScalar": np.full(count, COORDINATE_SCALAR),
        "SourceX": source_x[shot],
        "GroupX": group_x[receiver],
        "CoordinateUnits": np.full(count, 1),
        "TRACE_SAMPLE_COUNT": np.full(count, geometry.num_samples),
        "TRACE_SAMPLE_INTERVAL": np.full(count, int(round(geometry.sample_interval_s * 1e6))),
        # Midpoint; integer halving keeps it exact for even sums and deterministic otherwise.
        "CDP_X": (source_x[shot] + group_x[receiver]) // 2,
        MODEL_ID_FIELD: model_index + 1,
    }


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
    _check_short("sample_interval_us", interval_us, "The sample interval in microseconds")
    _check_short("num_samples", num_samples, "The number of samples")

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

    lines = _shot_textual_lines(geometry, first_model_index, num_models, sample_format)
    return write_segy_traces(
        path,
        None,
        blocks(),
        num_samples=num_samples,
        sample_interval=interval_us,
        sample_format=sample_format,
        textual_header=format_textual_header(_with_user_lines(textual_header, lines)),
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
    _check_short("grid_spacing_mm", spacing_mm, "The grid spacing in millimetres (at most 32.767 m)")
    _check_short("depth_cells", depth_cells, "The number of depth cells")

    x_cm = _scaled(np.arange(x_cells) * float(grid_spacing_m))
    template = {
        "TraceNumber": np.arange(1, x_cells + 1),
        "SourceX": x_cm,
        "GroupX": x_cm,
        "CDP_X": x_cm,
        "SourceGroupScalar": COORDINATE_SCALAR,
        "ElevationScalar": COORDINATE_SCALAR,
        "CoordinateUnits": 1,
        "TRACE_SAMPLE_COUNT": depth_cells,
        "TRACE_SAMPLE_INTERVAL": spacing_mm,
    }

    def blocks():
        for model in range(num_models):
            model_id = first_model_index + model + 1
            sequence = model * x_cells + np.arange(1, x_cells + 1)
            headers = {
                **template,
                "TRACE_SEQUENCE_LINE": sequence,
                "TRACE_SEQUENCE_FILE": sequence,
                "FieldRecord": model_id,
                MODEL_ID_FIELD: model_id,
            }
            # (depth, x) -> (x, depth): one trace per x position.
            yield headers, np.asarray(velocity_mps[model], dtype=np.float32).T

    lines = [
        f"SEISINVERT {__version__} - DEEP-LEARNING SEISMIC VELOCITY INVERSION",
        "CONTENT: VELOCITY MODELS, P-WAVE VELOCITY IN M/S",
        "DEPTH SAMPLES; SAMPLE INTERVAL IN MM",
        f"MODELS {first_model_index}-{first_model_index + num_models - 1} (0-BASED GLOBAL MODEL INDEX), "
        f"{num_models} MODELS",
        f"GRID {depth_cells} X {x_cells} CELLS (DEPTH, X), SPACING {grid_spacing_m:g} M = {spacing_mm} MM",
        "ONE TRACE PER X POSITION, DEPTH DOWN THE TRACE; TRACE ORDER: MODEL, X",
        "SAMPLE FORMAT 5 (4-BYTE IEEE FLOAT), BIG-ENDIAN; UNITS M/S",
        "",
        "TRACE HEADER BYTES:",
        "  9 FIELDRECORD = MODEL ID (1-BASED) = MODEL INDEX + 1",
        " 13 TRACENUMBER = X INDEX (1-BASED)",
        " 71 COORDINATE SCALAR = -100",
        " 73 SOURCEX  81 GROUPX  181 CDP_X = X POSITION (CM)",
        "115 SAMPLE COUNT = DEPTH CELLS  117 SAMPLE INTERVAL = DEPTH SPACING (MM)",
        "233 MODEL ID (1-BASED)",
    ]
    return write_segy_traces(
        path,
        None,
        blocks(),
        num_samples=depth_cells,
        sample_interval=spacing_mm,
        sample_format=5,
        textual_header=format_textual_header(_with_user_lines(textual_header, lines)),
        num_traces=num_models * x_cells,
    )


# ----------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------

#: Trace-header columns kept by ``scan_segy`` (plus any extra ones asked for).
SCAN_FIELDS = (
    "TRACE_SEQUENCE_FILE",
    "FieldRecord",
    "TraceNumber",
    "EnergySourcePoint",
    "CDP",
    "offset",
    "ReceiverGroupElevation",
    "SourceSurfaceElevation",
    "SourceDepth",
    "ElevationScalar",
    "SourceGroupScalar",
    "SourceX",
    "SourceY",
    "GroupX",
    "GroupY",
    "TRACE_SAMPLE_COUNT",
    "TRACE_SAMPLE_INTERVAL",
    "CDP_X",
    "UnassignedInt1",
)

#: Samples asked of segyio at a time by ``read_traces``: bounds memory whatever the file size.
READ_BLOCK_BYTES = 32 * 2**20


class SegyFormatError(UserError):
    """A file that cannot be read as SEG-Y (empty, truncated, wrong byte order, unsupported format)."""


def _binary_values(binary: bytes, order: str) -> dict[str, int]:
    def get(byte: int, size: int, signed: bool = True) -> int:
        kind = "i" if signed else "u"
        return int(np.frombuffer(binary[byte - 3201 : byte - 3201 + size], dtype=f"{order}{kind}{size}")[0])

    return {
        "interval": get(3217, 2, signed=False),
        "samples": get(3221, 2, signed=False),
        "format": get(3225, 2),
        "extended_headers": get(3505, 2),
    }


def _first_trace_sample_count(head: bytes, order: str) -> int:
    """``TRACE_SAMPLE_COUNT`` (bytes 115-116) of the first trace header."""
    start = TEXTUAL_HEADER_BYTES + BINARY_HEADER_BYTES + 114
    return int(np.frombuffer(head[start : start + 2], dtype=f"{order}u2")[0])


def _format_bytes(sample_format: int) -> int:
    if sample_format in SAMPLE_FORMAT_DTYPES:
        return np.dtype(SAMPLE_FORMAT_DTYPES[sample_format]).itemsize
    return _UNSUPPORTED_FORMAT_BYTES[sample_format]


def detect_endianness(path: str | Path) -> str:
    """Detects the byte order of a SEG-Y file from the plausibility of its headers in both orders.

    segyio does not detect it (a little-endian file opened as big-endian fails with "trace count
    inconsistent with file size"). A byte order is plausible when the binary header's format code is a
    known SEG-Y sample format and a sample count can be found (binary header, else the first trace header);
    among plausible orders the one whose trace length divides the file size wins, then big-endian (the
    standard).

    Returns:
        ``"big"`` or ``"little"``.

    Raises:
        SegyFormatError: the file is empty, too short, or plausible in neither order (not SEG-Y).
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise SegyFormatError(
            f"{path} is empty (0 bytes): re-copy or re-export it, or remove it from the inputs."
        )
    if size < TEXTUAL_HEADER_BYTES + BINARY_HEADER_BYTES + TRACE_HEADER_BYTES:
        raise SegyFormatError(
            f"{path} is not a SEG-Y file: it has {size} bytes, fewer than the 3840 of a textual header, a binary "
            "header and one trace header. Check that the path points at a SEG-Y file."
        )
    with open(path, "rb") as handle:
        head = handle.read(TEXTUAL_HEADER_BYTES + BINARY_HEADER_BYTES + TRACE_HEADER_BYTES)
    binary = head[TEXTUAL_HEADER_BYTES : TEXTUAL_HEADER_BYTES + BINARY_HEADER_BYTES]
    candidates = []
    described = []
    for endian, order in (("big", ">"), ("little", "<")):
        values = _binary_values(binary, order)
        samples = values["samples"] or _first_trace_sample_count(head, order)
        described.append(f"{endian}-endian: format {values['format']}, {samples} samples")
        known = values["format"] in SAMPLE_FORMAT_DTYPES or values["format"] in UNSUPPORTED_SAMPLE_FORMATS
        if not known or samples == 0 or values["extended_headers"] < 0:
            continue
        data = (
            size
            - TEXTUAL_HEADER_BYTES
            - BINARY_HEADER_BYTES
            - TEXTUAL_HEADER_BYTES * values["extended_headers"]
        )
        divides = data > 0 and data % (TRACE_HEADER_BYTES + samples * _format_bytes(values["format"])) == 0
        candidates.append((not divides, endian != "big", endian))
    if not candidates:
        raise SegyFormatError(
            f"{path} is not a readable SEG-Y file: its binary header is implausible in both byte orders "
            f"({'; '.join(described)}). Check that it is SEG-Y (not SU, SEG-D or another format)."
        )
    return min(candidates)[2]


def open_segy(path: str | Path, endian: str) -> segyio.SegyFile:
    """Opens a prestack file with segyio (``ignore_geometry=True``, memory-mapped) in the given byte order.

    Raises:
        SegyFormatError: segyio cannot open it; the message names the file and the byte order.
    """
    try:
        segy = segyio.open(path, ignore_geometry=True, endian=endian)
    except RuntimeError as error:
        raise SegyFormatError(
            f"{path} could not be opened by segyio as {endian}-endian SEG-Y ({error}). Check that the file is "
            "complete and uses one byte order throughout."
        ) from None
    segy.mmap()  # False when the file cannot be mapped; segyio then reads through the file handle
    return segy


@dataclasses.dataclass
class SegyScan:
    """What ``scan_segy`` learns about a SEG-Y file without reading its samples; reads them on request.

    Attributes:
        path: the file.
        endian: detected byte order, ``"big"`` or ``"little"``.
        sample_format: SEG-Y format code of the samples.
        num_traces: number of traces.
        num_samples: samples per trace.
        sample_interval: binary-header interval (µs for time data; mm for this project's velocity files).
        textual_header: the 3200-character textual header decoded to ASCII (EBCDIC or ASCII).
        headers: trace-header columns, ``(num_traces,)`` int32 arrays keyed by segyio ``TraceField`` names.
        data_offset: byte offset of the first trace.
        sha256: SHA-256 of the whole file ("" when not computed).
        repairs: warnings about repairs made while scanning (e.g. sample count 0 in the trace headers).
    """

    path: Path
    endian: str
    sample_format: int
    num_traces: int
    num_samples: int
    sample_interval: float
    textual_header: str
    headers: dict[str, np.ndarray]
    data_offset: int
    sha256: str = ""
    repairs: list[str] = dataclasses.field(default_factory=list)
    _segy: segyio.SegyFile | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    @property
    def sample_dtype(self) -> np.dtype:
        """The dtype segyio returns for the samples (float32 for IBM floats)."""
        return np.dtype(SAMPLE_FORMAT_DTYPES[self.sample_format])

    @property
    def trace_bytes(self) -> int:
        return TRACE_HEADER_BYTES + self.num_samples * self.sample_dtype.itemsize

    @property
    def is_velocity_file(self) -> bool:
        """True for velocity-model files written by this project (depth samples, interval in mm)."""
        return "DEPTH SAMPLES" in self.textual_header.upper()

    def coordinates_m(self, field: str, scalar_field: str = "SourceGroupScalar") -> np.ndarray:
        """A coordinate column in metres, applying the scalar (negative = divide, 0 = 1)."""
        return self.headers[field] * scale_factors(self.headers[scalar_field])

    def source_x_m(self) -> np.ndarray:
        return self.coordinates_m("SourceX")

    def group_x_m(self) -> np.ndarray:
        return self.coordinates_m("GroupX")

    def source_depth_m(self) -> np.ndarray:
        """Source depth below the datum (positive down): SourceDepth - SourceSurfaceElevation."""
        return self.coordinates_m("SourceDepth", "ElevationScalar") - self.coordinates_m(
            "SourceSurfaceElevation", "ElevationScalar"
        )

    def receiver_depth_m(self) -> np.ndarray:
        """Receiver depth below the datum (positive down): minus ReceiverGroupElevation."""
        # "+ 0.0" turns -0.0 into 0.0, so surface receivers print and compare as depth 0.
        return -self.coordinates_m("ReceiverGroupElevation", "ElevationScalar") + 0.0

    def open(self) -> segyio.SegyFile:
        """The segyio handle (opened and memory-mapped on first use; ``close`` releases it)."""
        if self._segy is None:
            self._segy = open_segy(self.path, self.endian)
        return self._segy

    def close(self) -> None:
        """Closes the segyio handle, unmapping the file (a later read opens it again)."""
        if self._segy is not None:
            self._segy.close()
            self._segy = None

    def __enter__(self) -> SegyScan:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def read_traces(self, indices: np.ndarray | slice) -> np.ndarray:
        """Reads traces with segyio as float32, ``(len(indices), num_samples)``, in the order given.

        Runs of consecutive traces are read with one ``f.trace.raw[start:stop]`` each (at most
        ``READ_BLOCK_BYTES`` at a time), so memory is the size of the result, not of the file. When the
        indices are one run in file order (a sorted file), segyio's array is returned as it is (float
        formats) or cast once (integer formats, exact up to 2**24).
        """
        if isinstance(indices, slice):
            indices = np.arange(self.num_traces)[indices]
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) == 0:
            return np.empty((0, self.num_samples), dtype=np.float32)
        if indices.min() < 0 or indices.max() >= self.num_traces:
            raise IndexError(f"Trace indices must lie in 0..{self.num_traces - 1} for {self.path}.")
        raw = self.open().trace.raw
        max_run = max(1, READ_BLOCK_BYTES // self.trace_bytes)
        try:
            first = int(indices[0])
            if len(indices) <= max_run and np.all(np.diff(indices) == 1):
                return raw[first : first + len(indices)].astype(np.float32, copy=False)
            result = np.empty((len(indices), self.num_samples), dtype=np.float32)
            order = np.argsort(indices, kind="stable")
            sorted_indices = indices[order]
            in_order = bool(np.all(order[1:] > order[:-1]))
            breaks = np.flatnonzero(np.diff(sorted_indices) != 1) + 1
            position = 0
            for run in np.split(sorted_indices, breaks):
                for start in range(0, len(run), max_run):
                    first, count = int(run[start]), min(max_run, len(run) - start)
                    where = (
                        slice(position, position + count) if in_order else order[position : position + count]
                    )
                    result[where] = raw[first : first + count]
                    position += count
            return result
        except (RuntimeError, OSError) as error:
            raise SegyFormatError(
                f"{self.path}: segyio failed reading traces {int(indices.min()) + 1}-{int(indices.max()) + 1} "
                f"({error}). The file may have changed after it was scanned: re-copy it and run again."
            ) from None


def scale_factors(scalars: np.ndarray) -> np.ndarray:
    """SEG-Y coordinate scalars to multipliers: positive multiplies, negative divides, 0 means 1."""
    scalars = np.asarray(scalars, dtype=np.float64)
    return np.where(
        scalars > 0, scalars, np.where(scalars < 0, -1.0 / np.where(scalars < 0, scalars, -1), 1.0)
    )


def decode_textual_header(raw: bytes, segyio_text: bytes) -> str:
    """The textual header as text: ``raw`` (the file's 3200 bytes) when it is ASCII, else segyio's decoding.

    segyio (``f.text[0]``) always decodes from EBCDIC, the standard, which garbles the ASCII textual
    headers some exporters write.
    """
    codes = np.frombuffer(raw, dtype=np.uint8)
    ascii_printable = np.count_nonzero((codes >= 32) & (codes < 127))
    text = raw if ascii_printable >= 0.9 * len(raw) else segyio_text
    return bytes(text).decode("ascii", errors="replace")


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def scan_segy(
    path: str | Path,
    extra_fields: Sequence[str] = (),
    sample_interval_override: float | None = None,
    compute_sha256: bool = True,
) -> SegyScan:
    """Reads the headers of a SEG-Y file (not its samples) with segyio and checks that they are consistent.

    The byte order is detected (``detect_endianness``) and the layout checked before segyio opens the file,
    so a bad file gets a message that names it and says what to do. The sample count comes from the binary
    header (as in segyio); the sample interval from the binary header, else from the trace headers, else
    from ``sample_interval_override``.

    Args:
        path: a SEG-Y file.
        extra_fields: trace-header fields to keep besides ``SCAN_FIELDS`` (segyio ``TraceField`` names).
        sample_interval_override: interval (binary-header units) to use when no header gives one.
        compute_sha256: hash the whole file (``SegyScan.sha256`` is "" otherwise; ingest hashes in a
            background thread instead, overlapping the hash with its writing).

    Returns:
        A ``SegyScan`` (with no open handle: ``read_traces`` opens one, ``close`` releases it).

    Raises:
        SegyFormatError: empty, truncated, not SEG-Y, unsupported format, inconsistent sample counts,
            no sample interval. The message names the file (and trace) and says what to do.
    """
    path = Path(path)
    endian = detect_endianness(path)
    order = ">" if endian == "big" else "<"
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(TEXTUAL_HEADER_BYTES + BINARY_HEADER_BYTES + TRACE_HEADER_BYTES)
    binary = _binary_values(head[TEXTUAL_HEADER_BYTES : TEXTUAL_HEADER_BYTES + BINARY_HEADER_BYTES], order)
    repairs: list[str] = []

    sample_format = binary["format"]
    if sample_format in UNSUPPORTED_SAMPLE_FORMATS:
        raise SegyFormatError(
            f"{path} stores samples in format {sample_format} ({UNSUPPORTED_SAMPLE_FORMATS[sample_format]}), "
            "which segyio cannot decode. Convert it to IEEE float (format 5), e.g. with SU's segyread/segywrite."
        )
    num_samples = binary["samples"]
    if num_samples == 0:
        from_trace = _first_trace_sample_count(head, order)
        raise SegyFormatError(
            f"{path}: the binary header's sample count (bytes 3221-3222) is 0; the first trace header says "
            f"{from_trace}. segyio takes the count from the binary header only, so the file cannot be read as "
            f"it is. Fix a copy, e.g. python -c \"import struct; f = open('COPY.segy', 'r+b'); f.seek(3220); "
            f"f.write(struct.pack('{order}H', {from_trace}))\", and ingest the copy."
        )
    data_offset = (
        TEXTUAL_HEADER_BYTES + BINARY_HEADER_BYTES + TEXTUAL_HEADER_BYTES * binary["extended_headers"]
    )
    sample_bytes = _format_bytes(sample_format)
    trace_bytes = TRACE_HEADER_BYTES + num_samples * sample_bytes
    data_bytes = size - data_offset
    if data_bytes <= 0:
        raise SegyFormatError(
            f"{path} holds headers but no traces: remove it from the inputs or re-export it."
        )
    num_traces, leftover = divmod(data_bytes, trace_bytes)
    if leftover:
        raise SegyFormatError(
            f"{path} is truncated or has variable-length traces: after {num_traces} complete traces of "
            f"{trace_bytes} bytes ({num_samples} samples of {sample_bytes} bytes + 240-byte header), trace "
            f"{num_traces + 1} has only {leftover} bytes. Re-copy or re-export the file; if only the end was "
            "lost, cut it to whole traces (a multiple of the trace size after the headers) and ingest that copy."
        )

    fields = list(dict.fromkeys([*SCAN_FIELDS, *extra_fields]))
    unknown = [name for name in fields if name not in segyio.tracefield.keys]
    if unknown:
        raise UserError(
            f"Unknown trace-header field(s) {unknown}; use segyio TraceField names such as 'FieldRecord'."
        )
    # int32 holds every 2- and 4-byte field (it is what f.attributes returns).
    headers = {name: np.empty(num_traces, dtype=np.int32) for name in fields}
    per_block = max(1, READ_BLOCK_BYTES // trace_bytes)
    for start in range(0, num_traces, per_block):
        stop = min(start + per_block, num_traces)
        # A fresh mapping per block: SEG-Y interleaves headers and samples, so reading the headers touches
        # nearly every page, and a mapping kept for the whole file would hold all of them.
        with contextlib.closing(open_segy(path, endian)) as segy:
            if start == 0:
                if segy.tracecount != num_traces:
                    raise SegyFormatError(
                        f"{path}: segyio counts {segy.tracecount} traces, the file size implies {num_traces}."
                    )
                textual_header = decode_textual_header(head[:TEXTUAL_HEADER_BYTES], segy.text[0])
            for name in fields:
                headers[name][start:stop] = segy.attributes(segyio.tracefield.keys[name])[start:stop]

    counts = headers["TRACE_SAMPLE_COUNT"]
    if not counts.any():
        repairs.append(
            f"{path}: the sample count (byte 115) is 0 in every trace header; used the binary header's "
            f"{num_samples} samples (repair; fix the exporter to silence this warning)."
        )
    else:
        wrong = np.flatnonzero((counts != num_samples) & (counts != 0))
        if wrong.size:
            trace = int(wrong[0])
            raise SegyFormatError(
                f"{path}: trace {trace + 1} declares {int(counts[trace])} samples but the file has {num_samples} per "
                f"trace ({wrong.size} trace(s) disagree). Variable-length traces are not supported: re-export the "
                "file with a fixed trace length (if the counts look absurd, the trace headers may use another byte "
                "order than the binary header: re-export the file with one byte order)."
            )

    interval = float(binary["interval"])
    if interval == 0:
        trace_intervals = headers["TRACE_SAMPLE_INTERVAL"]
        nonzero = trace_intervals[trace_intervals > 0]
        if nonzero.size:
            interval = float(nonzero[0])
            repairs.append(
                f"{path}: the binary header's sample interval is 0; used {interval:g} from the trace headers."
            )
        elif sample_interval_override:
            interval = float(sample_interval_override)
            repairs.append(f"{path}: no header gives a sample interval; used the configured {interval:g}.")
        else:
            raise SegyFormatError(
                f"{path}: the sample interval is 0 in the binary header (byte 3217) and in every trace header "
                "(byte 117). Set it in the configuration: --set sample_interval_us=<microseconds>."
            )
    for repair in repairs:
        logger.warning(repair)
    return SegyScan(
        path=path,
        endian=endian,
        sample_format=sample_format,
        num_traces=int(num_traces),
        num_samples=int(num_samples),
        sample_interval=interval,
        textual_header=textual_header,
        headers=headers,
        data_offset=data_offset,
        sha256=_file_sha256(path) if compute_sha256 else "",
        repairs=repairs,
    )


def read_segy(path: str | Path) -> tuple[np.ndarray, SegyScan]:
    """Reads a whole SEG-Y file: ``(traces (num_traces, num_samples) float32 in file order, scan)``.

    For small files and tools; ``data_prep.ingest`` streams instead.
    """
    with scan_segy(path) as scan:
        return scan.read_traces(slice(None)), scan
