"""SEG-Y input and output: shot gathers and velocity models, written and read with explicit conventions.

Sits between the data engine and the HDF5 datasets: ``data_prep.synthesize`` writes its simulated shot
gathers and velocity models through ``write_shot_gathers`` / ``write_velocity_models``, and
``data_prep.ingest`` reads those files (or field SEG-Y in any sample format, byte order and trace
order) through ``scan_segy`` / ``read_traces``.

Writing
-------
Files are written by this module directly with numpy (not through ``segyio.create``) because that is
fast (one ``write`` per model), memory-bounded (one model at a time) and byte-for-byte deterministic
(segyio stamps today's date into its default textual header). The result is a standard SEG-Y rev 1
file; every test reads it back with segyio, an independent implementation.

* Textual header: 40 lines x 80 characters, EBCDIC, describing content, geometry and header bytes.
* Binary header: ``Interval`` (3217) µs (mm for velocity files), ``Samples`` (3221), ``Format`` (3225),
  ``SortingCode`` (3229) = 1 (as recorded), ``MeasurementSystem`` (3255) = 1 (metres),
  ``SEGYRevision`` (3501) = 1, ``TraceFlag`` (3503) = 1 (fixed-length traces).
* Byte order: big-endian (the standard). Sample format: IEEE float (5) by default, IBM float (1) on
  request.

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
``detect_endianness`` checks the binary header for plausibility in both byte orders (segyio does not
detect it). ``scan_segy`` checks the layout (empty, too short, truncated, unsupported format, sample count
and interval with their documented repairs), confirms it by opening the file with segyio in the detected
byte order, and returns a ``SegyScan`` with the trace-header columns, the decoded textual header and the
file's SHA-256, all from one pass over the file in bounded blocks. ``SegyScan.read_traces(indices)`` then
reads any traces, in any order, as float32 (integer formats cast, IBM floats decoded; equal to segyio's
values, which the tests check for every format and byte order) through a buffer the size of the result,
never mapping or loading the whole file. ``read_segy`` is the one-call version for small files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
from collections.abc import Iterator, Sequence
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

#: Bytes per sample of the sample formats this module writes (segyio reads these and more).
SAMPLE_FORMAT_BYTES = {1: 4, 2: 4, 3: 2, 5: 4, 6: 8, 8: 1}
_SAMPLE_FORMAT_NAMES = {
    1: "4-byte IBM float",
    2: "4-byte signed integer",
    3: "2-byte signed integer",
    5: "4-byte IEEE float",
    6: "8-byte IEEE float",
    8: "1-byte signed integer",
}
_SAMPLE_DTYPES = {2: "i4", 3: "i2", 5: "f4", 6: "f8", 8: "i1"}

# Trace-header field sizes follow from the byte offsets segyio knows (SEG-Y rev 1 layout): each field
# runs up to the next one, the last one to byte 240.
_FIELD_OFFSETS = sorted((offset, name) for name, offset in segyio.tracefield.keys.items())
TRACE_FIELD_SIZES: dict[str, int] = {
    name: (_FIELD_OFFSETS[i + 1][0] if i + 1 < len(_FIELD_OFFSETS) else TRACE_HEADER_BYTES + 1) - offset
    for i, (offset, name) in enumerate(_FIELD_OFFSETS)
}


def trace_header_dtype(endian: str = "big") -> np.dtype:
    """A numpy structured dtype for one 240-byte SEG-Y trace header in the given byte order.

    Field names are segyio's ``TraceField`` names; 2- and 4-byte fields are signed integers.
    """
    order = ">" if endian == "big" else "<"
    names, formats, offsets = [], [], []
    for offset, name in _FIELD_OFFSETS:
        names.append(name)
        formats.append(f"{order}i{TRACE_FIELD_SIZES[name]}")
        offsets.append(offset - 1)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": TRACE_HEADER_BYTES})


# ----------------------------------------------------------------------------------------------------------
# Sample encoding
# ----------------------------------------------------------------------------------------------------------


def ieee_to_ibm(values: np.ndarray) -> np.ndarray:
    """Converts floats to IBM System/360 single-precision words (uint32), rounding to nearest.

    IBM floats have a 7-bit base-16 exponent and a 24-bit fraction, so up to 3 low bits of an IEEE
    float32 significand can be lost; values beyond the IBM range (about 7.2e75) cannot occur in float32.
    """
    values = np.asarray(values, dtype=np.float64)
    sign = np.signbit(values).astype(np.uint32) << np.uint32(31)
    fraction, exponent2 = np.frexp(np.abs(values))  # |x| = fraction * 2**exponent2, 0.5 <= fraction < 1
    exponent16 = -((-exponent2) // 4)  # ceil(exponent2 / 4)
    mantissa = np.rint(np.ldexp(fraction, 24 + exponent2 - 4 * exponent16)).astype(np.int64)
    # Rounding can carry into a 25th bit: renormalise by one hex digit.
    carry = mantissa >= (1 << 24)
    mantissa = np.where(carry, mantissa >> 4, mantissa)
    exponent16 = exponent16 + carry
    biased = exponent16 + 64
    underflow = (biased < 0) | (mantissa == 0)
    biased = np.clip(biased, 0, 127).astype(np.uint32)
    words = sign | (biased << np.uint32(24)) | mantissa.astype(np.uint32)
    return np.where(underflow, np.uint32(0), words).astype(np.uint32)


def ibm_to_ieee(words: np.ndarray) -> np.ndarray:
    """Converts IBM single-precision words (uint32) to float64 exactly."""
    words = np.asarray(words, dtype=np.uint32).astype(np.int64)
    sign = np.where(words >> 31, -1.0, 1.0)
    exponent = ((words >> 24) & 0x7F) - 64
    mantissa = (words & 0xFFFFFF).astype(np.float64)
    return sign * np.ldexp(mantissa, 4 * exponent - 24)


def encode_samples(values: np.ndarray, sample_format: int, endian: str = "big") -> np.ndarray:
    """Encodes samples for a SEG-Y file: returns an array whose bytes are the on-disk samples.

    Args:
        values: any shape; floats for formats 1, 5 and 6, integers (or integral floats) for 2, 3 and 8.
        sample_format: SEG-Y format code (1 IBM float, 2 int32, 3 int16, 5 IEEE float, 6 IEEE double,
            8 int8).
        endian: ``"big"`` (standard) or ``"little"``.

    Raises:
        ValueError: unsupported format, or integer samples that do not fit the format.
    """
    order = ">" if endian == "big" else "<"
    if sample_format == 1:
        return ieee_to_ibm(values).astype(f"{order}u4")
    if sample_format not in _SAMPLE_DTYPES:
        raise ValueError(
            f"Cannot write SEG-Y sample format {sample_format}: supported formats are "
            f"{', '.join(f'{k} ({v})' for k, v in _SAMPLE_FORMAT_NAMES.items())}."
        )
    dtype = np.dtype(f"{order}{_SAMPLE_DTYPES[sample_format]}")
    if dtype.kind == "i":
        info = np.iinfo(dtype)
        values = np.asarray(values)
        if values.size and (values.min() < info.min or values.max() > info.max):
            raise ValueError(
                f"Samples span [{values.min()}, {values.max()}], outside the range of format {sample_format} "
                f"({_SAMPLE_FORMAT_NAMES[sample_format]}: [{info.min}, {info.max}]). Scale them or use format 5."
            )
        if values.dtype.kind == "f" and not np.array_equal(values, np.rint(values)):
            raise ValueError(f"Format {sample_format} stores integers; the samples are not integral.")
    return np.asarray(values).astype(dtype)


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
        # EBCDIC, as SEG-Y rev 1 prescribes; segyio decodes it back to ASCII.
        return text.encode("cp037")
    except UnicodeEncodeError as error:
        raise ValueError(f"textual_header must be plain ASCII text: {error}") from None


def binary_header_bytes(
    num_samples: int,
    sample_interval: int,
    sample_format: int,
    endian: str = "big",
    sorting_code: int = 1,
) -> bytes:
    """The 400-byte binary header (SEG-Y rev 1) with the fields this project sets.

    Args:
        num_samples: samples per trace (``Samples``, byte 3221).
        sample_interval: microseconds for time data, millimetres for depth data (``Interval``, 3217).
        sample_format: format code (``Format``, 3225).
        endian: byte order of the integers.
        sorting_code: ``SortingCode`` (3229); 1 = as recorded.
    """
    order = ">" if endian == "big" else "<"
    header = np.zeros(BINARY_HEADER_BYTES, dtype=np.uint8)

    def put(byte: int, value: int, size: int) -> None:
        header[byte - 3201 : byte - 3201 + size] = np.frombuffer(
            np.array(value, dtype=f"{order}i{size}").tobytes(), dtype=np.uint8
        )

    put(3213, 0, 2)  # Traces per ensemble: left 0, shots may differ.
    put(3217, sample_interval, 2)
    put(3219, sample_interval, 2)
    put(3221, num_samples, 2)
    put(3223, num_samples, 2)
    put(3225, sample_format, 2)
    put(3229, sorting_code, 2)
    put(3255, 1, 2)  # Measurement system: metres.
    header[3501 - 3201] = 1  # SEG-Y revision 1.0 (major byte, minor byte 0).
    put(3503, 1, 2)  # Fixed-length traces.
    return header.tobytes()


def _check_short(name: str, value: int, what: str) -> int:
    """2-byte header fields hold at most 32767: refuse rather than silently wrap."""
    if not 0 < value <= 32767:
        raise ValueError(f"{what} must fit a 2-byte SEG-Y header field (1..32767). Received: {name}={value}.")
    return int(value)


def _scaled(metres: np.ndarray | float) -> np.ndarray:
    """Metres to the integer header units implied by COORDINATE_SCALAR (centimetres)."""
    return np.rint(np.asarray(metres, dtype=np.float64) * -COORDINATE_SCALAR).astype(np.int64)


# ----------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------


def write_segy_traces(
    path: str | Path,
    headers: np.ndarray,
    traces: np.ndarray | Iterator[tuple[np.ndarray, np.ndarray]],
    num_samples: int,
    sample_interval: int,
    sample_format: int = 5,
    textual_header: str | None = None,
    endian: str = "big",
    atomic: bool = True,
) -> Path:
    """Writes a SEG-Y file from header records and trace samples (the low-level writer).

    Args:
        path: output file.
        headers: ``(traces,)`` structured array of ``trace_header_dtype()`` (any byte order), or None when
            ``traces`` is an iterator of ``(headers, samples)`` blocks.
        traces: ``(traces, num_samples)`` samples, or an iterator of ``(headers, samples)`` blocks so a
            large file is written block by block with bounded memory.
        num_samples: samples per trace.
        sample_interval: binary-header interval (µs for time, mm for depth).
        sample_format: SEG-Y format code, see ``encode_samples``.
        textual_header: 40 lines of text; a minimal one when None.
        endian: ``"big"`` (standard) or ``"little"`` (for tests of byte-order detection).
        atomic: write under a temporary name and rename when complete.

    Returns:
        The path written.
    """
    path = Path(path)
    if endian not in ("big", "little"):
        raise ValueError(f"endian must be 'big' or 'little'. Received: {endian!r}")
    header_dtype = trace_header_dtype(endian)
    blocks = [(headers, traces)] if isinstance(traces, np.ndarray) else traces
    text = _textual_header_bytes(textual_header, [f"SEISINVERT {__version__}", "SEG-Y REV 1"])
    binary = binary_header_bytes(num_samples, sample_interval, sample_format, endian)

    context = atomic_output(path) if atomic else contextlib.nullcontext(path)
    with context as target, open(target, "wb") as handle:
        handle.write(text)
        handle.write(binary)
        for block_headers, block_samples in blocks:
            block_samples = np.asarray(block_samples)
            if block_samples.ndim != 2 or block_samples.shape[1] != num_samples:
                raise ValueError(
                    f"Trace samples must be (traces, {num_samples}). Received shape {block_samples.shape}."
                )
            if len(block_headers) != len(block_samples):
                raise ValueError(
                    f"{len(block_headers)} trace headers for {len(block_samples)} traces: give one header per trace."
                )
            encoded = encode_samples(block_samples, sample_format, endian)
            record = np.zeros(
                len(block_samples),
                dtype=[("header", header_dtype), ("samples", encoded.dtype, (num_samples,))],
            )
            record["header"] = block_headers.astype(header_dtype)
            record["samples"] = encoded
            handle.write(record.tobytes())
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


def shot_gather_headers(geometry: AcquisitionGeometry, first_model_index: int, num_models: int) -> np.ndarray:
    """The trace headers ``write_shot_gathers`` writes, ``(models * shots * receivers,)`` in file order.

    Public so that tests and tools can build variants (other trace orders, byte orders, broken headers).
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
    headers = np.zeros(model.size, dtype=trace_header_dtype("big"))
    headers["TRACE_SEQUENCE_LINE"] = np.arange(1, model.size + 1)
    headers["TRACE_SEQUENCE_FILE"] = np.arange(1, model.size + 1)
    headers["FieldRecord"] = model_index * num_shots + shot + 1
    headers["TraceNumber"] = receiver + 1
    headers["EnergySourcePoint"] = shot + 1
    headers["TraceIdentificationCode"] = 1
    headers["SourceX"] = source_x[shot]
    headers["GroupX"] = group_x[receiver]
    headers["offset"] = group_x[receiver] - source_x[shot]
    # Midpoint; integer halving keeps it exact for even sums and deterministic otherwise.
    headers["CDP_X"] = (source_x[shot] + group_x[receiver]) // 2
    headers["SourceDepth"] = _scaled(sources_m[:, 0])[shot]
    headers["ReceiverGroupElevation"] = -_scaled(receivers_m[:, 0])[receiver]
    headers["ElevationScalar"] = COORDINATE_SCALAR
    headers["SourceGroupScalar"] = COORDINATE_SCALAR
    headers["CoordinateUnits"] = 1
    headers["TRACE_SAMPLE_COUNT"] = geometry.num_samples
    headers["TRACE_SAMPLE_INTERVAL"] = int(round(geometry.sample_interval_s * 1e6))
    headers[MODEL_ID_FIELD] = model_index + 1
    return headers


def write_shot_gathers(
    path: str | Path,
    seismic: np.ndarray,
    geometry: AcquisitionGeometry,
    first_model_index: int,
    textual_header: str | None = None,
    sample_format: int = 5,
) -> Path:
    """Writes the shot gathers of consecutive velocity models to one prestack SEG-Y file.

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
        sample_format: 5 (IEEE float, default, exact) or 1 (IBM float, ~7 significant digits).

    Returns:
        The path written.
    """
    seismic = _check_common(
        "seismic", seismic, 4, "(models, shots, time, receivers)", first_model_index
    )
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

    headers = shot_gather_headers(geometry, first_model_index, 1)
    traces_per_model = num_shots * num_receivers

    def blocks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for model in range(num_models):
            block = headers.copy()
            block["TRACE_SEQUENCE_LINE"] += model * traces_per_model
            block["TRACE_SEQUENCE_FILE"] += model * traces_per_model
            block["FieldRecord"] += model * num_shots
            block[MODEL_ID_FIELD] += model
            # (shots, time, receivers) -> (shots, receivers, time): one row per trace.
            samples = np.ascontiguousarray(np.asarray(seismic[model], dtype=np.float32).transpose(0, 2, 1))
            yield block, samples.reshape(traces_per_model, num_samples)

    lines = _shot_textual_lines(geometry, first_model_index, num_models, sample_format)
    return write_segy_traces(
        path,
        None,
        blocks(),
        num_samples=num_samples,
        sample_interval=interval_us,
        sample_format=sample_format,
        textual_header=format_textual_header(_with_user_lines(textual_header, lines)),
    )


def write_velocity_models(
    path: str | Path,
    velocity_mps: np.ndarray,
    grid_spacing_m: float,
    first_model_index: int,
    textual_header: str | None = None,
) -> Path:
    """Writes velocity models to one SEG-Y file: one trace per lateral position, depth down the trace.

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

    template = np.zeros(x_cells, dtype=trace_header_dtype("big"))
    x_cm = _scaled(np.arange(x_cells) * float(grid_spacing_m))
    template["TraceNumber"] = np.arange(1, x_cells + 1)
    template["SourceX"] = x_cm
    template["GroupX"] = x_cm
    template["CDP_X"] = x_cm
    template["SourceGroupScalar"] = COORDINATE_SCALAR
    template["ElevationScalar"] = COORDINATE_SCALAR
    template["CoordinateUnits"] = 1
    template["TRACE_SAMPLE_COUNT"] = depth_cells
    template["TRACE_SAMPLE_INTERVAL"] = spacing_mm

    def blocks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for model in range(num_models):
            model_id = first_model_index + model + 1
            headers = template.copy()
            sequence = model * x_cells + np.arange(1, x_cells + 1)
            headers["TRACE_SEQUENCE_LINE"] = sequence
            headers["TRACE_SEQUENCE_FILE"] = sequence
            headers["FieldRecord"] = model_id
            headers[MODEL_ID_FIELD] = model_id
            # (depth, x) -> (x, depth): one trace per x position.
            yield headers, np.ascontiguousarray(np.asarray(velocity_mps[model], dtype=np.float32).T)

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
    )


# ----------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------

#: numpy dtypes of the sample formats segyio 1.9 reads (1, IBM float, is decoded from uint32 words).
READ_SAMPLE_DTYPES = {
    1: "u4", 2: "i4", 3: "i2", 5: "f4", 6: "f8", 8: "i1", 9: "i8", 10: "u4", 11: "u2", 12: "u8", 16: "u1"
}
#: Format codes that exist in the standard but that segyio (and so this project) cannot decode.
UNSUPPORTED_SAMPLE_FORMATS = {4: "4-byte fixed point with gain", 7: "3-byte signed integer", 15: "3-byte unsigned integer"}

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

#: Bytes read at a time while scanning headers or reading traces: bounds memory whatever the file size.
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


def detect_endianness(path: str | Path) -> str:
    """Detects the byte order of a SEG-Y file from the plausibility of its headers in both orders.

    A byte order is plausible when the binary header's format code is a known SEG-Y sample format and a
    sample count can be found (binary header, else the first trace header); among plausible orders the one
    whose trace length divides the file size wins, then big-endian (the standard).

    Returns:
        ``"big"`` or ``"little"``.

    Raises:
        SegyFormatError: the file is empty, too short, or plausible in neither order (not SEG-Y).
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise SegyFormatError(f"{path} is empty (0 bytes): re-copy or re-export it, or remove it from the inputs.")
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
        trace_samples = int(np.frombuffer(head[3600 + 114 : 3600 + 116], dtype=f"{order}u2")[0])
        samples = values["samples"] or trace_samples
        described.append(f"{endian}-endian: format {values['format']}, {samples} samples")
        known = values["format"] in READ_SAMPLE_DTYPES or values["format"] in UNSUPPORTED_SAMPLE_FORMATS
        if not known or samples == 0 or values["extended_headers"] < 0:
            continue
        bytes_per_sample = SAMPLE_FORMAT_BYTES.get(values["format"]) or np.dtype(
            READ_SAMPLE_DTYPES.get(values["format"], "u4")
        ).itemsize
        data = size - TEXTUAL_HEADER_BYTES - BINARY_HEADER_BYTES - TEXTUAL_HEADER_BYTES * values["extended_headers"]
        divides = data > 0 and data % (TRACE_HEADER_BYTES + samples * bytes_per_sample) == 0
        candidates.append((not divides, endian != "big", endian))
    if not candidates:
        raise SegyFormatError(
            f"{path} is not a readable SEG-Y file: its binary header is implausible in both byte orders "
            f"({'; '.join(described)}). Check that it is SEG-Y (not SU, SEG-D or another format)."
        )
    return min(candidates)[2]


@dataclasses.dataclass
class SegyScan:
    """What ``scan_segy`` learns about a SEG-Y file without reading its samples.

    Attributes:
        path: the file.
        endian: detected byte order, ``"big"`` or ``"little"``.
        sample_format: SEG-Y format code of the samples.
        num_traces: number of traces.
        num_samples: samples per trace.
        sample_interval: binary-header interval (µs for time data; mm for this project's velocity files).
        textual_header: the 3200-character textual header decoded to ASCII (EBCDIC detected).
        headers: trace-header columns, ``(num_traces,)`` int32 arrays keyed by segyio ``TraceField`` names.
        data_offset: byte offset of the first trace.
        sha256: SHA-256 of the whole file (computed while the headers are read, so the file is read once).
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

    @property
    def sample_dtype(self) -> np.dtype:
        return np.dtype(("<" if self.endian == "little" else ">") + READ_SAMPLE_DTYPES[self.sample_format])

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

    def read_traces(self, indices: np.ndarray | slice) -> np.ndarray:
        """Reads traces as float32, ``(len(indices), num_samples)``, in the order given.

        Reads runs of consecutive traces with one system call each through a buffer, so memory is the
        size of the result, not of the file. Integer formats are cast to float32 (exact up to 2**24),
        IBM floats decoded.
        """
        if isinstance(indices, slice):
            indices = np.arange(self.num_traces)[indices]
        indices = np.asarray(indices, dtype=np.int64)
        record = np.dtype([("header", "V240"), ("samples", self.sample_dtype, (self.num_samples,))])
        result = np.empty((len(indices), self.num_samples), dtype=np.float32)
        if len(indices) == 0:
            return result
        if indices.min() < 0 or indices.max() >= self.num_traces:
            raise IndexError(f"Trace indices must lie in 0..{self.num_traces - 1} for {self.path}.")
        order = np.argsort(indices, kind="stable")
        sorted_indices = indices[order]
        # The common case (a sorted file): traces wanted in file order, decoded straight into the result.
        in_order = bool(np.all(order[1:] > order[:-1])) if len(order) > 1 else True
        # Runs of consecutive trace numbers, each read in one go (bounded by READ_BLOCK_BYTES).
        breaks = np.flatnonzero(np.diff(sorted_indices) != 1) + 1
        max_run = max(1, READ_BLOCK_BYTES // self.trace_bytes)
        with open(self.path, "rb", buffering=0) as handle:
            position = 0
            for run in np.split(sorted_indices, breaks):
                for start in range(0, len(run), max_run):
                    first = int(run[start])
                    count = min(max_run, len(run) - start)
                    buffer = np.empty(count, dtype=record)
                    handle.seek(self.data_offset + first * self.trace_bytes)
                    read = handle.readinto(memoryview(buffer).cast("B"))
                    if read != buffer.nbytes:
                        raise SegyFormatError(
                            f"{self.path} ended while reading trace {first + 1 + read // self.trace_bytes}: "
                            "the file was truncated after it was scanned. Re-copy it and run again."
                        )
                    if in_order:
                        self._decode_into(buffer["samples"], result[position : position + count])
                    else:
                        result[order[position : position + count]] = self._decode(buffer["samples"])
                    position += count
        return result

    def _decode_into(self, samples: np.ndarray, out: np.ndarray) -> None:
        if self.sample_format == 1:
            out[...] = ibm_to_ieee(samples)
        else:
            out[...] = samples  # one pass: byte swap and cast

    def _decode(self, samples: np.ndarray) -> np.ndarray:
        if self.sample_format == 1:
            return ibm_to_ieee(samples).astype(np.float32)
        return samples.astype(np.float32)


def scale_factors(scalars: np.ndarray) -> np.ndarray:
    """SEG-Y coordinate scalars to multipliers: positive multiplies, negative divides, 0 means 1."""
    scalars = np.asarray(scalars, dtype=np.float64)
    return np.where(scalars > 0, scalars, np.where(scalars < 0, -1.0 / np.where(scalars < 0, scalars, -1), 1.0))


def decode_textual_header(raw: bytes) -> str:
    """Decodes a textual header: EBCDIC (the standard) or ASCII, whichever reads as text."""
    ascii_printable = sum(32 <= byte < 127 for byte in raw)
    if ascii_printable >= 0.9 * len(raw):
        return raw.decode("ascii", errors="replace")
    return raw.decode("cp037", errors="replace")


def scan_segy(
    path: str | Path,
    extra_fields: Sequence[str] = (),
    sample_interval_override: float | None = None,
    compute_sha256: bool = True,
) -> SegyScan:
    """Reads the headers of a SEG-Y file (not its samples) and checks that the file is consistent.

    The byte order is detected (``detect_endianness``); the sample count comes from the binary header,
    else from the first trace header; the sample interval from the binary header, else from the trace
    headers, else from ``sample_interval_override``. segyio opens the file to confirm the layout when the
    binary header is complete.

    Args:
        path: a SEG-Y file.
        extra_fields: trace-header fields to keep besides ``SCAN_FIELDS`` (segyio ``TraceField`` names).
        sample_interval_override: interval (binary-header units) to use when no header gives one.
        compute_sha256: hash the file while reading its headers (``SegyScan.sha256`` is "" otherwise;
            ingest hashes in a background thread instead, overlapping the hash with its writing).

    Returns:
        A ``SegyScan``.

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
    first_header = np.frombuffer(head[3600:3840], dtype=trace_header_dtype(endian))[0]
    repairs: list[str] = []

    sample_format = binary["format"]
    if sample_format in UNSUPPORTED_SAMPLE_FORMATS:
        raise SegyFormatError(
            f"{path} stores samples in format {sample_format} ({UNSUPPORTED_SAMPLE_FORMATS[sample_format]}), "
            "which segyio cannot decode. Convert it to IEEE float (format 5), e.g. with segyio or SU's segyread."
        )
    num_samples = binary["samples"]
    if num_samples == 0:
        num_samples = int(first_header["TRACE_SAMPLE_COUNT"])
        repairs.append(
            f"{path}: the binary header's sample count (byte 3221) is 0; used {num_samples} from the first trace "
            "header."
        )
    data_offset = TEXTUAL_HEADER_BYTES + BINARY_HEADER_BYTES + TEXTUAL_HEADER_BYTES * binary["extended_headers"]
    sample_bytes = np.dtype(READ_SAMPLE_DTYPES[sample_format]).itemsize
    trace_bytes = TRACE_HEADER_BYTES + num_samples * sample_bytes
    data_bytes = size - data_offset
    if data_bytes <= 0:
        raise SegyFormatError(f"{path} holds headers but no traces: remove it from the inputs or re-export it.")
    num_traces, leftover = divmod(data_bytes, trace_bytes)
    if leftover:
        raise SegyFormatError(
            f"{path} is truncated or has variable-length traces: after {num_traces} complete traces of "
            f"{trace_bytes} bytes ({num_samples} samples of {sample_bytes} bytes + 240-byte header), trace "
            f"{num_traces + 1} has only {leftover} bytes. Re-copy or re-export the file; if only the end was "
            "lost, cut it to whole traces with segyio and ingest that copy."
        )

    if binary["samples"]:
        # segyio is the reference reader: if it cannot open the file with this byte order, neither should we.
        try:
            with segyio.open(path, ignore_geometry=True, endian=endian) as segy:
                if segy.tracecount != num_traces:
                    raise SegyFormatError(
                        f"{path}: segyio counts {segy.tracecount} traces, the file size implies {num_traces}."
                    )
        except RuntimeError as error:
            raise SegyFormatError(f"{path} could not be opened by segyio as {endian}-endian SEG-Y: {error}") from None

    fields = list(dict.fromkeys([*SCAN_FIELDS, *extra_fields]))
    unknown = [name for name in fields if name not in TRACE_FIELD_SIZES]
    if unknown:
        raise UserError(f"Unknown trace-header field(s) {unknown}; use segyio TraceField names such as 'FieldRecord'.")
    headers, sha256 = _read_header_columns(path, endian, data_offset, trace_bytes, num_traces, fields, compute_sha256)

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
            repairs.append(f"{path}: the binary header's sample interval is 0; used {interval:g} from the trace headers.")
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
        textual_header=decode_textual_header(head[:TEXTUAL_HEADER_BYTES]),
        headers=headers,
        data_offset=data_offset,
        sha256=sha256,
        repairs=repairs,
    )


def _read_header_columns(
    path: Path,
    endian: str,
    data_offset: int,
    trace_bytes: int,
    num_traces: int,
    fields: Sequence[str],
    compute_sha256: bool = True,
) -> tuple[dict[str, np.ndarray], str]:
    """Header columns as int32 arrays and the file's SHA-256, reading the file in bounded blocks.

    SEG-Y interleaves headers and samples, so reading every header reads (nearly) every page of the file
    anyway: hashing the same blocks costs no extra I/O.
    """
    header_dtype = trace_header_dtype(endian)
    record = np.dtype([("header", header_dtype), ("samples", "V", trace_bytes - TRACE_HEADER_BYTES)])
    # int32 holds every 2- and 4-byte field and halves the per-trace bookkeeping of a large file.
    columns = {name: np.empty(num_traces, dtype=np.int32) for name in fields}
    per_block = max(1, READ_BLOCK_BYTES // trace_bytes)
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        digest.update(handle.read(data_offset))
        for start in range(0, num_traces, per_block):
            count = min(per_block, num_traces - start)
            buffer = np.empty(count, dtype=record)
            view = memoryview(buffer).cast("B")
            if handle.readinto(view) != buffer.nbytes:
                raise SegyFormatError(f"{path} ended early while reading trace headers near trace {start + 1}.")
            if compute_sha256:
                digest.update(view)
            for name in fields:
                columns[name][start : start + count] = buffer["header"][name]
    return columns, digest.hexdigest() if compute_sha256 else ""


def read_segy(path: str | Path) -> tuple[np.ndarray, SegyScan]:
    """Reads a whole SEG-Y file: ``(traces (num_traces, num_samples) float32 in file order, scan)``.

    For small files and tools; ``data_prep.ingest`` streams instead.
    """
    scan = scan_segy(path)
    return scan.read_traces(slice(None)), scan
