"""Byte-order detection and the checks made before segyio opens a SEG-Y file.

Part of ``data_prep.segy_io``. segyio assumes big-endian and, given a little-endian, truncated, empty or
non-SEG-Y file, fails with "trace count inconsistent with file size". This module decides the byte order
from the plausibility of the binary header (``detect_endianness``), checks the file's layout against its
size before segyio sees it (``check_layout``: unsupported sample format, sample count 0, no traces,
truncated or variable-length traces), so that every bad file gets a message that names it and says what
to do, and then opens it with segyio (``open_segy``).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
from pathlib import Path

import numpy as np
import segyio

from data_prep.segy_io.layout import (
    BINARY_HEADER_BYTES,
    SAMPLE_FORMAT_DTYPES,
    TEXTUAL_HEADER_BYTES,
    TRACE_HEADER_BYTES,
    UNSUPPORTED_SAMPLE_FORMATS,
    SegyFormatError,
    format_bytes,
)


def binary_header_values(binary: bytes, order: str) -> dict[str, int]:
    """The binary-header fields the checks need, decoded in byte order ``order`` (``">"`` or ``"<"``).

    ``interval`` is signed, as SEG-Y rev 1 defines the 2-byte fields (a negative value is implausible);
    ``interval_unsigned`` is the same bytes read unsigned (some writers, this project's velocity files
    among them, store depth spacings in millimetres above 32767). ``samples`` is read unsigned (segyio
    reads it so); ``extended_samples`` is SEG-Y rev 2's 4-byte count (bytes 3269-3272) and
    ``revision_major`` the format revision's major number (byte 3501): see ``binary_sample_count``.
    ``extended_headers`` is signed: -1 means a variable number, ended by an EndText stanza.
    """

    def get(byte: int, size: int, signed: bool = True) -> int:
        kind = "i" if signed else "u"
        return int(np.frombuffer(binary[byte - 3201 : byte - 3201 + size], dtype=f"{order}{kind}{size}")[0])

    return {
        "interval": get(3217, 2),
        "interval_unsigned": get(3217, 2, signed=False),
        "samples": get(3221, 2, signed=False),
        "format": get(3225, 2),
        "extended_samples": get(3269, 4),
        "revision_major": int(binary[3501 - 3201]),
        "extended_headers": get(3505, 2),
    }


def binary_sample_count(values: dict[str, int]) -> tuple[int, str]:
    """Samples per trace as segyio takes them from the binary header, and the bytes they came from.

    SEG-Y rev 2 adds a 4-byte count (bytes 3269-3272) for traces longer than the 2-byte field (bytes
    3221-3222) holds. segyio 1.9 uses it when it is positive and either the file says revision 2 or later
    (byte 3501) or the 2-byte field is 0 (checked on files written by segyio itself: 70,000 and 1,000,000
    samples, whose 2-byte field holds the count modulo 65536).
    """
    extended = values.get("extended_samples", 0)
    if extended > 0 and (values.get("revision_major", 0) >= 2 or values["samples"] == 0):
        return extended, "bytes 3269-3272, SEG-Y rev 2's extended sample count"
    return values["samples"], "bytes 3221-3222"


def first_trace_sample_count(head: bytes, order: str) -> int:
    """``TRACE_SAMPLE_COUNT`` (bytes 115-116) of the first trace header."""
    start = TEXTUAL_HEADER_BYTES + BINARY_HEADER_BYTES + 114
    return int(np.frombuffer(head[start : start + 2], dtype=f"{order}u2")[0])


#: The stanza that ends a variable number of extended textual headers (SEG-Y rev 1 and 2).
END_TEXT_STANZA = "((SEG: EndText))"
#: Extended textual headers searched for the EndText stanza before giving up.
MAX_EXTENDED_HEADERS_SEARCHED = 1000


def file_size(path: Path) -> int:
    """The size of a regular, readable file; a clear ``SegyFormatError`` for anything else.

    Devices (``/dev/zero``), FIFOs and sockets are refused before they are opened: reading a FIFO would
    block, and a device has no size to check the traces against.
    """
    check_name_encodable(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise SegyFormatError(
                f"{path} is a symbolic link to {os.readlink(path)}, which does not exist. Fix or remove the link."
            ) from None
        raise SegyFormatError(f"{path} does not exist. Check the path.") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise SegyFormatError(
                f"{path} is a symbolic link that loops (it points, through links, back to itself): it names no "
                "file. Point the link at the SEG-Y file, or pass the file itself."
            ) from None
        raise SegyFormatError(f"{path} cannot be read ({error.strerror or error}).") from None
    except PermissionError:
        raise SegyFormatError(
            f"{path} cannot be read: permission denied on the path. Fix its permissions (or its folder's) or "
            "copy it somewhere readable."
        ) from None
    if stat.S_ISDIR(info.st_mode):
        raise SegyFormatError(f"{path} is a folder, not a SEG-Y file.")
    if not stat.S_ISREG(info.st_mode):
        kind = (
            "a FIFO (named pipe)"
            if stat.S_ISFIFO(info.st_mode)
            else "a character device"
            if stat.S_ISCHR(info.st_mode)
            else "a block device"
            if stat.S_ISBLK(info.st_mode)
            else "a socket"
            if stat.S_ISSOCK(info.st_mode)
            else "not a regular file"
        )
        raise SegyFormatError(
            f"{path} is {kind}, not a regular file: SEG-Y inputs must be files with a size (segyio maps them "
            "into memory). Copy the data into a file and ingest that."
        )
    if not os.access(path, os.R_OK):
        raise SegyFormatError(
            f"{path} cannot be read (permission denied). Fix its permissions (chmod u+r) or copy it somewhere "
            "readable."
        )
    return info.st_size


def printable_path(path: str | Path) -> str:
    """``path`` for a message: bytes that are not valid UTF-8 shown as ``\\xff`` escapes (never a codec error)."""
    text = os.fsdecode(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", errors="backslashreplace")


def check_name_encodable(path: str | Path) -> None:
    """Refuses a path that is not valid UTF-8 with a message naming it: segyio opens files by a UTF-8 name,
    so such a path would otherwise fail inside segyio with a bare codec error naming no file."""
    try:
        os.fsdecode(path).encode("utf-8")
    except UnicodeEncodeError:
        raise SegyFormatError(
            f"{printable_path(path)}: the path is not valid UTF-8 (the undecodable bytes are shown as \\x "
            "escapes), and segyio opens files by a UTF-8 name only. Rename the file (or its folder) to a UTF-8 "
            "name, or link it under one (ln -s), and ingest that."
        ) from None


def read_head(path: Path, size: int) -> bytes:
    """The first 3840 bytes (textual, binary and first trace header), with a clear error if unreadable."""
    try:
        with open(path, "rb") as handle:
            return handle.read(min(size, TEXTUAL_HEADER_BYTES + BINARY_HEADER_BYTES + TRACE_HEADER_BYTES))
    except PermissionError:
        raise SegyFormatError(
            f"{path} cannot be read (permission denied). Fix its permissions or copy it somewhere readable."
        ) from None
    except OSError as error:
        raise SegyFormatError(f"{path} cannot be read ({error.strerror or error}).") from None


def count_extended_headers(path: Path, size: int) -> int | None:
    """Extended textual headers up to and including the EndText stanza, or None when none is found.

    For files whose binary header declares a variable number (-1) of extended textual headers. The stanza
    is looked for in ASCII and in EBCDIC.
    """
    stanzas = (END_TEXT_STANZA.encode("ascii"), END_TEXT_STANZA.encode("cp037"))
    start = TEXTUAL_HEADER_BYTES + BINARY_HEADER_BYTES
    with open(path, "rb") as handle:
        for count in range(1, MAX_EXTENDED_HEADERS_SEARCHED + 1):
            offset = start + (count - 1) * TEXTUAL_HEADER_BYTES
            if offset + TEXTUAL_HEADER_BYTES > size:
                return None
            handle.seek(offset)
            block = handle.read(TEXTUAL_HEADER_BYTES)
            if any(stanza in block for stanza in stanzas):
                return count
    return None


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
    size = file_size(path)
    if size == 0:
        raise SegyFormatError(
            f"{path} is empty (0 bytes): re-copy or re-export it, or remove it from the inputs."
        )
    if size < TEXTUAL_HEADER_BYTES + BINARY_HEADER_BYTES + TRACE_HEADER_BYTES:
        raise SegyFormatError(
            f"{path} is not a SEG-Y file: it has {size} bytes, fewer than the 3840 of a textual header, a binary "
            "header and one trace header. Check that the path points at a SEG-Y file."
        )
    head = read_head(path, size)
    binary = head[TEXTUAL_HEADER_BYTES : TEXTUAL_HEADER_BYTES + BINARY_HEADER_BYTES]
    candidates = []
    described = []
    for endian, order in (("big", ">"), ("little", "<")):
        values = binary_header_values(binary, order)
        samples = binary_sample_count(values)[0] or first_trace_sample_count(head, order)
        described.append(f"{endian}-endian: format {values['format']}, {samples} samples")
        extended = values["extended_headers"]
        if extended == -1:  # a variable number, ended by an EndText stanza (check_layout explains the fix)
            extended = count_extended_headers(path, size) or 0
            described[-1] += ", a variable number (-1) of extended textual headers"
        known = values["format"] in SAMPLE_FORMAT_DTYPES or values["format"] in UNSUPPORTED_SAMPLE_FORMATS
        if not known or samples == 0 or extended < 0:
            continue
        data = size - TEXTUAL_HEADER_BYTES - BINARY_HEADER_BYTES - TEXTUAL_HEADER_BYTES * extended
        divides = data > 0 and data % (TRACE_HEADER_BYTES + samples * format_bytes(values["format"])) == 0
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
    check_name_encodable(path)
    try:
        segy = segyio.open(path, ignore_geometry=True, endian=endian)
    except RuntimeError as error:
        raise SegyFormatError(
            f"{path} could not be opened by segyio as {endian}-endian SEG-Y ({error}). Check that the file is "
            "complete and uses one byte order throughout."
        ) from None
    segy.mmap()  # False when the file cannot be mapped; segyio then reads through the file handle
    return segy


@dataclasses.dataclass(frozen=True)
class FileLayout:
    """What the binary header and the file size say about a SEG-Y file, checked before segyio opens it.

    Attributes:
        endian: ``"big"`` or ``"little"``.
        head: the file's first 3840 bytes (textual, binary and first trace header).
        binary: ``binary_header_values`` of the binary header.
        sample_format: SEG-Y format code (one segyio decodes).
        num_samples: samples per trace (from the binary header, as segyio takes it).
        sample_count_field: the binary-header bytes ``num_samples`` came from, for messages.
        data_offset: byte offset of the first trace (after any extended textual headers).
        trace_bytes: bytes per trace, header included.
        num_traces: whole traces in the file.
    """

    endian: str
    head: bytes
    binary: dict[str, int]
    sample_format: int
    num_samples: int
    data_offset: int
    trace_bytes: int
    num_traces: int
    sample_count_field: str = "bytes 3221-3222"


def check_layout(path: str | Path, endian: str) -> FileLayout:
    """Checks that the file can be read by segyio as fixed-length traces in byte order ``endian``.

    Raises:
        SegyFormatError: unsupported sample format, sample count 0 in the binary header, a variable number
            of extended textual headers, headers but no traces, truncated or variable-length traces, a
            binary-header sample count contradicted by the file size. The message names the file and says
            what to do (for header fields segyio cannot be told to ignore: the one-line fix of a copy).
    """
    path = Path(path)
    order = ">" if endian == "big" else "<"
    size = file_size(path)
    head = read_head(path, size)
    binary = binary_header_values(
        head[TEXTUAL_HEADER_BYTES : TEXTUAL_HEADER_BYTES + BINARY_HEADER_BYTES], order
    )

    sample_format = binary["format"]
    if sample_format in UNSUPPORTED_SAMPLE_FORMATS:
        raise SegyFormatError(
            f"{path} stores samples in format {sample_format} ({UNSUPPORTED_SAMPLE_FORMATS[sample_format]}), "
            "which segyio cannot decode. Convert it to IEEE float (format 5), e.g. with SU's segyread/segywrite."
        )
    num_samples, count_field = binary_sample_count(binary)
    if num_samples == 0:
        from_trace = first_trace_sample_count(head, order)
        raise SegyFormatError(
            f"{path}: the binary header's sample count (bytes 3221-3222) is 0; the first trace header says "
            f"{from_trace}. segyio takes the count from the binary header only, so the file cannot be read as "
            f"it is. Fix a copy, e.g. python -c \"import struct; f = open('COPY.segy', 'r+b'); f.seek(3220); "
            f"f.write(struct.pack('{order}H', {from_trace}))\", and ingest the copy."
        )
    if binary["extended_headers"] == -1:
        found = count_extended_headers(path, size)
        where = (
            f"the file has {found} extended header(s) up to the {END_TEXT_STANZA} stanza. segyio needs the count: "
            f"fix a copy, e.g. python -c \"import struct; f = open('COPY.segy', 'r+b'); f.seek(3504); "
            f"f.write(struct.pack('{order}h', {found}))\", and ingest the copy."
            if found
            else f"no {END_TEXT_STANZA} stanza was found in the first {MAX_EXTENDED_HEADERS_SEARCHED} blocks of "
            "3200 bytes after the binary header. Re-export the file with a fixed number of extended headers."
        )
        raise SegyFormatError(
            f"{path}: the binary header (bytes 3505-3506) declares a variable number (-1) of extended textual "
            f"headers, which segyio cannot read; {where}"
        )
    if binary["extended_headers"] < 0:
        raise SegyFormatError(
            f"{path}: the binary header (bytes 3505-3506) declares {binary['extended_headers']} extended textual "
            "headers, which is not a count. Re-export the file, or set the field of a copy to the number of "
            "extended headers (usually 0)."
        )
    data_offset = (
        TEXTUAL_HEADER_BYTES + BINARY_HEADER_BYTES + TEXTUAL_HEADER_BYTES * binary["extended_headers"]
    )
    sample_bytes = format_bytes(sample_format)
    trace_bytes = TRACE_HEADER_BYTES + num_samples * sample_bytes
    data_bytes = size - data_offset
    if data_bytes <= 0:
        raise SegyFormatError(
            f"{path} holds headers but no traces: remove it from the inputs or re-export it."
        )
    num_traces, leftover = divmod(data_bytes, trace_bytes)
    if leftover:
        from_trace = first_trace_sample_count(head, order)
        if from_trace and from_trace != num_samples:
            fits, rest = divmod(data_bytes, TRACE_HEADER_BYTES + from_trace * sample_bytes)
            if not rest:
                raise SegyFormatError(
                    f"{path}: the binary header says {num_samples} samples per trace ({count_field}), which "
                    f"does not divide the file into whole traces; the first trace header says {from_trace}, which "
                    f"gives exactly {fits} traces. The binary header is wrong, and segyio takes the count from it "
                    "only. Fix a copy, e.g. python -c \"import struct; f = open('COPY.segy', 'r+b'); "
                    f"f.seek(3220); f.write(struct.pack('{order}H', {from_trace}))\", and ingest the copy."
                )
        raise SegyFormatError(
            f"{path} is truncated or has variable-length traces: after {num_traces} complete traces of "
            f"{trace_bytes} bytes ({num_samples} samples of {sample_bytes} bytes + 240-byte header), trace "
            f"{num_traces + 1} has only {leftover} bytes. Re-copy or re-export the file; if only the end was "
            "lost, cut it to whole traces (a multiple of the trace size after the headers) and ingest that copy."
        )
    return FileLayout(
        endian=endian,
        head=head,
        binary=binary,
        sample_format=sample_format,
        num_samples=num_samples,
        data_offset=data_offset,
        trace_bytes=trace_bytes,
        num_traces=int(num_traces),
        sample_count_field=count_field,
    )
