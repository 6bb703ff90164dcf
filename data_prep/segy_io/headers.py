"""What goes into the headers of the SEG-Y files this project writes (the conventions readers rely on).

Part of ``data_prep.segy_io``: ``data_prep.segy_io.write`` writes these headers with segyio; the constants
``MODEL_ID_FIELD`` and ``COORDINATE_SCALAR`` are also what ``data_prep.ingest`` reads back, and
``header_convention`` tells ingest whether a file was written by this project.

* Textual header: 40 lines x 80 characters (EBCDIC on disk), describing content, geometry and header bytes.
  The first generated line (after any caller lines) is the **signature** ``SIGNATURE_LINE`` ("SEISINVERT
  HEADER CONVENTION 2: ..."), so it survives however many lines the caller adds (at most 36).
* Binary header: ``Interval`` (3217) µs (mm for velocity files), ``Samples`` (3221), ``Format`` (3225),
  ``SortingCode`` (3229) = 1 (as recorded), ``MeasurementSystem`` (3255) = 1 (metres),
  ``SEGYRevision`` (3501) = 1, ``TraceFlag`` (3503) = 1 (fixed-length traces); ``Traces`` (3213) and
  ``AuxTraces`` (3215) are 0 (shots may differ in size; there are no auxiliary traces).
* Byte order: big-endian (the standard). Sample format: IEEE float (5) by default, IBM float (1) on
  request (segyio converts float32 to IBM by truncation: at least 21 significant bits).

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
offset                       37     ``GroupX - SourceX`` in whole METRES, unscaled (SEG-Y rev 1: the
                                    coordinate scalar does not apply to byte 37), rounded to the metre
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
                                    shots recorded over one velocity model (see "Model id" below)
===========================  =====  ====================================================================

Model id (bytes 233-236). SEG-Y rev 1 leaves bytes 233-240 unassigned (free for local use), which is why
the model id lives there; SEG-Y rev 2 uses them for an 8-character header name ("SEG00000" on a standard
trace header), so a non-zero value there means nothing by itself. Readers therefore trust bytes 233-236 as
a model id only in files that say they follow this convention: ``header_convention(textual_header)``
returns 2 for files with ``SIGNATURE_LINE``, 1 for files written by earlier versions of this project (their
textual header names "SEISINVERT" and maps "233 MODEL ID"; they differ only in byte 37, which held
centimetres and which ingest does not read) and None for every other file. ``data_prep.ingest`` also
trusts the files listed by a synthesize ``manifest.json``.

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
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from core import __version__
from data_prep.geometry import AcquisitionGeometry
from data_prep.segy_io.layout import SAMPLE_FORMAT_NAMES, TEXTUAL_HEADER_BYTES

#: Coordinate and elevation scalar written to every trace: negative means "divide by", so centimetres.
COORDINATE_SCALAR = -100
#: Header field holding the global model (sample) id in files written by this project.
MODEL_ID_FIELD = "UnassignedInt1"
#: Version of the header conventions of this module (2: offset in metres; 1, before: offset in centimetres).
HEADER_CONVENTION = 2
#: The textual-header line that marks a file written with these conventions (see "Model id").
SIGNATURE_LINE = f"SEISINVERT HEADER CONVENTION {HEADER_CONVENTION}: MODEL ID IN BYTES 233-236, OFFSET IN M"
_SIGNATURE = re.compile(r"SEISINVERT HEADER CONVENTION (\d+)")


def header_convention(textual_header: str) -> int | None:
    """Which of this project's header conventions a file follows, from its textual header; None if none.

    Returns:
        The number in ``SIGNATURE_LINE`` (2 for files written by this version); 1 for files written by
        earlier versions (the textual header contains "SEISINVERT" and the line "233 MODEL ID", and no
        signature); None for files written by anything else, whose bytes 233-240 must not be taken for a
        model id.
    """
    text = textual_header.upper()
    match = _SIGNATURE.search(text)
    if match:
        return int(match.group(1))
    if "SEISINVERT" in text and "233 MODEL ID" in text:
        return 1
    return None


def offset_m(source_x_m: np.ndarray | float, receiver_x_m: np.ndarray | float) -> np.ndarray:
    """Byte 37 as SEG-Y rev 1 defines it: receiver x minus source x in whole metres (no scalar applies)."""
    return np.rint(
        np.asarray(receiver_x_m, dtype=np.float64) - np.asarray(source_x_m, dtype=np.float64)
    ).astype(np.int64)


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


def textual_header_bytes(textual_header: str | None, default_lines: Sequence[str]) -> bytes:
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


def check_short(name: str, value: int, what: str) -> int:
    """2-byte header fields hold at most 32767: refuse rather than let the value wrap."""
    if not 0 < value <= 32767:
        raise ValueError(f"{what} must fit a 2-byte SEG-Y header field (1..32767). Received: {name}={value}.")
    return int(value)


def scaled(metres: np.ndarray | float) -> np.ndarray:
    """Metres to the integer header units implied by COORDINATE_SCALAR (centimetres)."""
    return np.rint(np.asarray(metres, dtype=np.float64) * -COORDINATE_SCALAR).astype(np.int64)


def shot_textual_lines(geometry: AcquisitionGeometry, first_model: int, num_models: int, sample_format: int):
    sources = geometry.source_positions_m()
    receivers = geometry.receiver_positions_m()
    return [
        SIGNATURE_LINE,
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
        f"({SAMPLE_FORMAT_NAMES[sample_format].upper()}), BIG-ENDIAN",
        "",
        "TRACE HEADER BYTES:",
        "  9 FIELDRECORD = GLOBAL SHOT NO. (1-BASED) = MODEL*NSHOTS+SHOT+1",
        " 13 TRACENUMBER = RECEIVER NO. IN SHOT (1-BASED)",
        " 17 ENERGYSOURCEPOINT = SHOT NO. IN MODEL (1-BASED)",
        " 37 OFFSET = GROUPX - SOURCEX IN WHOLE M (UNSCALED, AS IN REV 1)",
        " 41 RECEIVER ELEVATION (CM, NEGATIVE BELOW SURFACE)",
        " 49 SOURCE DEPTH BELOW SURFACE (CM, POSITIVE)",
        " 69 ELEVATION SCALAR = -100  71 COORDINATE SCALAR = -100",
        " 73 SOURCEX (CM)  81 GROUPX (CM)  181 CDP_X = MIDPOINT (CM)",
        "115 SAMPLE COUNT  117 SAMPLE INTERVAL (US)",
        "233 MODEL ID (1-BASED) = MODEL INDEX + 1; GROUPS SHOTS OF ONE MODEL",
        "    (BYTES 233-240 ARE UNASSIGNED IN REV 1; NOT A REV-2 HEADER NAME)",
        "",
        "COMPANION FILE: *_VELOCITY_*.SEGY, SAME MODEL IDS",
    ]


def with_user_lines(textual_header: str | None, generated: list[str]) -> list[str]:
    """User lines first, then the generated description, as far as 40 cards allow.

    The generated lines are never replaced entirely: their first three always survive, so a reader can
    always find the signature (``SIGNATURE_LINE``) and tell a velocity file ("DEPTH SAMPLES; SAMPLE
    INTERVAL IN MM") from a shot file whatever the caller adds.
    """
    if not textual_header:
        return generated
    user = [line.strip() for line in textual_header.splitlines()]
    if len(user) > 40 - 4:
        raise ValueError(
            f"textual_header may add at most 36 lines (the generated content lines follow). Received {len(user)}."
        )
    return (user + [""] + generated)[:40]


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
    source_x = scaled(sources_m[:, 1])
    group_x = scaled(receivers_m[:, 1])
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
        "offset": offset_m(sources_m[shot, 1], receivers_m[receiver, 1]),
        "ReceiverGroupElevation": -scaled(receivers_m[:, 0])[receiver],
        "SourceDepth": scaled(sources_m[:, 0])[shot],
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


def velocity_model_headers(
    model_index: int, position_in_file: int, x_cells: int, depth_cells: int, grid_spacing_m: float
) -> dict[str, np.ndarray | int]:
    """The trace headers ``write_velocity_models`` writes for one model, ``(x_cells,)`` columns in file order.

    Args:
        model_index: 0-based global index of the model (its model id is ``model_index + 1``).
        position_in_file: 0-based position of the model in its file (for the trace sequence numbers).
        x_cells, depth_cells: the model's grid (one trace per x position, ``depth_cells`` samples each).
        grid_spacing_m: cell size; x positions are ``x_index * grid_spacing_m`` and the depth spacing is
            written as the sample interval in millimetres.
    """
    x_cm = scaled(np.arange(x_cells) * float(grid_spacing_m))
    model_id = model_index + 1
    sequence = position_in_file * x_cells + np.arange(1, x_cells + 1)
    return {
        "TraceNumber": np.arange(1, x_cells + 1),
        "SourceX": x_cm,
        "GroupX": x_cm,
        "CDP_X": x_cm,
        "SourceGroupScalar": COORDINATE_SCALAR,
        "ElevationScalar": COORDINATE_SCALAR,
        "CoordinateUnits": 1,
        "TRACE_SAMPLE_COUNT": depth_cells,
        "TRACE_SAMPLE_INTERVAL": int(round(grid_spacing_m * 1000)),
        "TRACE_SEQUENCE_LINE": sequence,
        "TRACE_SEQUENCE_FILE": sequence,
        "FieldRecord": model_id,
        MODEL_ID_FIELD: model_id,
    }


def velocity_textual_lines(
    first_model_index: int, num_models: int, depth_cells: int, x_cells: int, grid_spacing_m: float
) -> list[str]:
    """The generated textual-header lines of a velocity-model file ("DEPTH SAMPLES" marks it as one)."""
    spacing_mm = int(round(grid_spacing_m * 1000))
    # Signature and "DEPTH SAMPLES" first: they survive 36 caller lines (readers need both).
    return [
        SIGNATURE_LINE,
        "CONTENT: VELOCITY MODELS, P-WAVE VELOCITY IN M/S",
        "DEPTH SAMPLES; SAMPLE INTERVAL IN MM",
        f"SEISINVERT {__version__} - DEEP-LEARNING SEISMIC VELOCITY INVERSION",
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
