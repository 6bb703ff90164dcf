"""Scanning and reading SEG-Y files with segyio: ``scan_segy``, ``SegyScan``, ``read_segy``.

Part of ``data_prep.segy_io``; ``data_prep.ingest`` reads every shot-gather and velocity file through it.

segyio reads everything it can: ``scan_segy`` opens the file with ``segyio.open(path,
ignore_geometry=True, endian=...)`` and ``f.mmap()``, takes the trace-header columns from
``f.attributes(field)[:]``, and ``SegyScan.read_traces`` reads runs of consecutive traces with
``f.trace.raw[start:stop]`` (segyio decodes IBM floats and byte order; integer formats are cast to
float32). This module adds only what segyio does not do:

* the byte order, detected from the binary header, and checks before segyio opens the file, so that an
  empty, too short, truncated or non-SEG-Y file, an unsupported sample format or a sample count of 0 in the
  binary header gives a message that names the file (and trace) and says what to do, instead of segyio's
  "trace count inconsistent with file size" (both in ``data_prep.segy_io.detect``);
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
import logging
import os
import string
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import segyio

from core.errors import UserError
from data_prep.segy_io.detect import FileLayout, check_layout, detect_endianness, open_segy
from data_prep.segy_io.layout import (
    SAMPLE_FORMAT_DTYPES,
    TEXTUAL_HEADER_BYTES,
    TRACE_HEADER_BYTES,
    SegyFormatError,
    scale_factors,
)

logger = logging.getLogger(__name__)

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
    "DelayRecordingTime",
    "ScalarTraceHeader",
)

#: Values bytes 215-216 (the scalar of the times in bytes 95-114) may take (SEG-Y rev 1 and 2); 0 means 1.
TIME_SCALARS = (1, 10, 100, 1000, 10000, -10, -100, -1000, -10000)

#: Samples asked of segyio at a time by ``read_traces``: bounds memory whatever the file size.
READ_BLOCK_BYTES = 32 * 2**20


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
        trace_start_times_s: time of each trace's first sample after the shot, in seconds (the recording
            delay, DelayRecordingTime, byte 109, scaled by bytes 215-216): ``(num_traces,)`` float64, or
            one value ``()`` when every trace starts at the same time. Read it through ``start_time_s``,
            which survives the trimming of ``headers`` done by ingest.
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
    trace_start_times_s: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(()))
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

    def start_time_s(self, traces: np.ndarray | slice | None = None) -> np.ndarray:
        """Start time of each trace (time of its first sample after the shot), seconds, float64.

        The recording delay of SEG-Y (DelayRecordingTime, bytes 109-110, signed, in milliseconds) scaled by
        the time scalar of bytes 215-216 (SEG-Y rev 1 and 2; positive multiplies, negative divides, 0 = 1).
        A positive delay means recording started after the shot; negative, before it.

        Args:
            traces: trace indices (file order) or a slice; None for every trace.

        Returns:
            ``(num_traces,)`` (or ``(len(traces),)``) start times in seconds.
        """
        every = np.broadcast_to(self.trace_start_times_s, (self.num_traces,))
        selected = every if traces is None else every[traces]
        return np.array(selected, dtype=np.float64)

    @property
    def uniform_start_time_s(self) -> float | None:
        """The start time shared by every trace (seconds), or None when traces start at different times."""
        values = np.unique(self.trace_start_times_s)
        return float(values[0]) if values.size == 1 else None

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

    def __getstate__(self) -> dict:
        # What another process (a Dask worker) gets: no open handle (it opens its own on first read) and an
        # absolute path, since it may run in another folder.
        return {**self.__dict__, "_segy": None, "path": Path(os.path.abspath(self.path))}

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


#: Characters of ordinary header text: what a correctly decoded card line is made of.
_TEXT_CHARACTERS = frozenset(string.ascii_letters + string.digits + " .,:;-_/()=+*#'\"&%<>?!")
_CARD_BYTES = 80


def _text_score(text: str) -> int:
    return sum(char in _TEXT_CHARACTERS for char in text)


def _printable(text: str) -> str:
    """Control characters (NUL padding, line feeds) -> spaces; characters outside ASCII -> '?'."""
    return "".join(
        " " if ord(char) < 32 or ord(char) == 127 else char if ord(char) < 127 else "?" for char in text
    )


def decode_textual_header(raw: bytes, segyio_text: bytes | None = None) -> str:
    """The 3200-byte textual header as ASCII text, each 80-byte card line decoded as EBCDIC or ASCII.

    The standard says EBCDIC, and segyio (``f.text[0]``) always decodes so, which garbles the ASCII textual
    headers some exporters write. Counting printable ASCII bytes does not tell them apart: EBCDIC's space
    (0x40, the most common byte of a mostly blank header) is ASCII '@'. Instead each card line is decoded
    both ways and the decoding made of more ordinary text characters (letters, digits, spaces, common
    punctuation) wins; a line where neither wins (all NUL bytes, say) follows the header's majority, and
    EBCDIC when that is a tie too. Deciding per line reads headers that mix both (a line patched in ASCII
    into an EBCDIC header). Control characters become spaces and other non-ASCII characters '?'.

    Args:
        raw: the file's first 3200 bytes.
        segyio_text: unused (kept for callers of the earlier signature, which passed segyio's decoding).
    """
    del segyio_text
    raw = bytes(raw)
    cards = [raw[start : start + _CARD_BYTES] for start in range(0, len(raw), _CARD_BYTES)]
    decoded = []  # (ascii text, ebcdic text, ascii score - ebcdic score)
    for card in cards:
        as_ascii, as_ebcdic = card.decode("latin-1"), card.decode("cp037")
        decoded.append((as_ascii, as_ebcdic, _text_score(as_ascii) - _text_score(as_ebcdic)))
    majority_ascii = sum(lead for *_, lead in decoded) > 0
    lines = [
        as_ascii if lead > 0 or (lead == 0 and majority_ascii) else as_ebcdic
        for as_ascii, as_ebcdic, lead in decoded
    ]
    return _printable("".join(lines))


def segy_revision(binary_header: bytes) -> int:
    """The SEG-Y revision (major number) of a 400-byte binary header; 0 for rev 0 or an unset field.

    Byte 3501 holds the major and 3502 the minor revision; a little-endian writer that stores the field as
    one 2-byte integer (0x0100 for rev 1) puts the major number in byte 3502 instead.
    """
    major, minor = binary_header[300], binary_header[301]
    return int(major or minor)


def start_times_from_headers(
    path: Path, delay_ms: np.ndarray, time_scalar: np.ndarray, revision: int, repairs: list[str]
) -> np.ndarray:
    """Per-trace start times in seconds from the recording delay (byte 109) and time scalar (byte 215).

    The scalar is applied only where the standard defines it (revision 1 and later) and only when it is one
    of the legal values (1, +-10, +-100, +-1000, +-10000; 0 means 1); otherwise the delay is taken in
    milliseconds as it is and a warning is added to ``repairs`` (only when some delay is non-zero, since
    an unscaled 0 is 0).

    Returns:
        ``(traces,)`` float64, or a 0-d array when every trace has the same start time.
    """
    delay_ms = np.asarray(delay_ms, dtype=np.float64)
    factors = np.ones_like(delay_ms)
    if delay_ms.any():
        scalars = np.asarray(time_scalar)
        legal = np.isin(scalars, (0, *TIME_SCALARS))
        if revision >= 1:
            factors = np.where(legal, scale_factors(np.where(legal, scalars, 1)), 1.0)
            bad = np.flatnonzero(~legal & (delay_ms != 0))
            if bad.size:
                repairs.append(
                    f"{path}: trace {int(bad[0]) + 1} has the time scalar {int(scalars[bad[0]])} in bytes 215-216, "
                    f"not one of 1, +-10, +-100, +-1000, +-10000 ({bad.size} trace(s)); its recording delay "
                    f"(byte 109) was read as {delay_ms[bad[0]]:g} ms without scaling."
                )
        elif np.any((scalars != 0) & (scalars != 1) & (delay_ms != 0)):
            first = int(np.flatnonzero((scalars != 0) & (scalars != 1) & (delay_ms != 0))[0])
            repairs.append(
                f"{path}: the file declares SEG-Y revision 0, where bytes 215-216 are unassigned, but trace "
                f"{first + 1} holds {int(scalars[first])} there; the recording delay (byte 109) was read in "
                "milliseconds without that scalar."
            )
    start_times = delay_ms * factors / 1000.0
    if start_times.size and np.all(start_times == start_times[0]):
        return np.asarray(start_times[0])
    return start_times


def _byteswap16(value: int) -> int:
    return ((value & 0xFF) << 8) | ((value >> 8) & 0xFF)


def check_sample_counts(
    path: Path, headers: dict[str, np.ndarray], layout: FileLayout, repairs: list[str]
) -> None:
    """Checks the trace headers' sample counts (byte 115) against the binary header's, which segyio uses.

    The binary header's count already divides the file into whole traces (``check_layout``). Then:

    * 0 in every trace header: the binary header's count is used (repair, warned);
    * every trace header that sets it gives the same other count: a stale field, common in files written
      by other tools. The count the file size confirms (the binary header's) is used, with a warning --
      unless the other count is the binary one with its bytes swapped, the sign of trace headers written in
      another byte order, or the file has one trace only and the other count fits the file size too;
    * trace headers that disagree with each other: variable-length traces, refused.

    Raises:
        SegyFormatError: variable-length traces, or trace headers in another byte order.
    """
    num_samples = layout.num_samples
    if num_samples > 0xFFFF:
        # The count is in the extended binary header (bytes 3269-3272); a 2-byte trace-header field cannot hold
        # it, so there is nothing to compare (segyio reads the traces by the binary header's count too).
        return
    counts = headers["TRACE_SAMPLE_COUNT"].astype(np.int64) & 0xFFFF  # an unsigned 2-byte field
    if not counts.any():
        repairs.append(
            f"{path}: the sample count (byte 115) is 0 in every trace header; used the binary header's "
            f"{num_samples} samples (repair; fix the exporter to silence this warning)."
        )
        return
    wrong = np.flatnonzero((counts != num_samples) & (counts != 0))
    if not wrong.size:
        return
    trace = int(wrong[0])
    declared = np.unique(counts[counts != 0])
    data_bytes = layout.num_traces * layout.trace_bytes
    other = int(declared[0])
    sample_bytes = (layout.trace_bytes - TRACE_HEADER_BYTES) // num_samples
    other_fits = data_bytes % (TRACE_HEADER_BYTES + other * sample_bytes) == 0
    swapped = other == _byteswap16(num_samples)
    if declared.size == 1 and not swapped and (layout.num_traces > 1 or not other_fits):
        repairs.append(
            f"{path}: the trace headers say {other} samples (byte 115) but the binary header says {num_samples} "
            f"({layout.sample_count_field}), and the file size confirms {num_samples} ({layout.num_traces} traces of "
            f"{layout.trace_bytes} bytes); used {num_samples}: the trace headers' count is stale (repair; fix the "
            "exporter to silence this warning)."
        )
        return
    raise SegyFormatError(
        f"{path}: trace {trace + 1} declares {int(counts[trace])} samples but the file has {num_samples} per "
        f"trace ({wrong.size} trace(s) disagree). Variable-length traces are not supported: re-export the "
        "file with a fixed trace length (if the counts look absurd, the trace headers may use another byte "
        "order than the binary header: re-export the file with one byte order)."
    )


#: The largest sample interval SEG-Y rev 1 can store (a signed 2-byte field), µs for time data.
MAX_SIGNED_INTERVAL = 32767


def sample_interval(
    path: Path,
    binary: dict[str, int],
    trace_intervals: np.ndarray,
    override: float | None,
    repairs: list[str],
) -> float:
    """The sample interval (binary-header units: µs, or mm for this project's velocity files).

    Interval fields are signed 2-byte integers in SEG-Y rev 1. The binary header's (bytes 3217-3218) is
    used when positive, with a warning naming both values when trace headers (byte 117) give another. A
    value above 32767 read unsigned (negative read signed) is accepted only when every trace header holds
    the same bytes (the unsigned reading some writers use, e.g. depth spacings in millimetres); otherwise it
    is implausible, like 0, and the interval comes from the trace headers (when they agree), else from
    ``override``, with a warning.

    Raises:
        SegyFormatError: no plausible interval in any header and no ``override``.
    """
    signed, unsigned = binary["interval"], binary["interval_unsigned"]
    in_traces = trace_intervals.astype(np.int64) & 0xFFFF  # the bytes, as the binary header's are read
    given = np.unique(in_traces[in_traces > 0])
    if signed > 0 or (given.size and np.all(in_traces == unsigned)):
        interval = signed if signed > 0 else unsigned
        others = given[given != interval]
        if others.size:
            disagree = np.flatnonzero((in_traces > 0) & (in_traces != interval))
            repairs.append(
                f"{path}: the sample interval is {interval} in the binary header (bytes 3217-3218) but "
                f"{', '.join(str(int(v)) for v in others[:5])} in {disagree.size} trace header(s) (byte 117, first "
                f"trace {int(disagree[0]) + 1}); used the binary header's {interval} (as segyio does). If the "
                'trace headers are right, fix the binary header of a copy: python -c "import struct; f = '
                f"open('COPY.segy', 'r+b'); f.seek(3216); f.write(struct.pack('>H', <interval>))\" (use '<H' for a "
                "little-endian file) and ingest the copy."
            )
        return float(interval)

    described = (
        "0 (not set)"
        if signed == 0
        else f"{signed} when read as the signed field of SEG-Y rev 1 ({unsigned} unsigned), implausible"
    )
    plausible = given[given <= MAX_SIGNED_INTERVAL]
    trace_values = ", ".join(_signed_interval_text(int(v)) for v in given[:5])
    if plausible.size == 1 and given.size == 1:
        interval = float(plausible[0])
        repairs.append(
            f"{path}: the binary header's sample interval (bytes 3217-3218) is {described}; used {interval:g} from "
            "the trace headers (byte 117)."
        )
        return interval
    if override:
        repairs.append(
            f"{path}: the binary header's sample interval is {described} and the trace headers give "
            f"{'none' if not given.size else trace_values}; used the configured "
            f"sample_interval_us={float(override):g}."
        )
        return float(override)
    if given.size:
        raise SegyFormatError(
            f"{path}: the binary header's sample interval (bytes 3217-3218) is {described}, and the trace headers "
            f"(byte 117) give {trace_values}: no one plausible interval. Set it in "
            "the configuration: --set sample_interval_us=<microseconds>."
        )
    raise SegyFormatError(
        f"{path}: the sample interval is {described} in the binary header (bytes 3217-3218) and 0 in every trace "
        "header (byte 117). Set it in the configuration: --set sample_interval_us=<microseconds>."
    )


def _signed_interval_text(unsigned: int) -> str:
    """A trace-header interval (its two bytes read unsigned) as SEG-Y rev 1 defines it, signed: 40536 is
    -25000; the unsigned reading is added for values above 32767."""
    if unsigned > MAX_SIGNED_INTERVAL:
        return f"{unsigned - 0x10000} ({unsigned} read unsigned)"
    return str(unsigned)


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
    layout = check_layout(path, detect_endianness(path))
    endian, head, binary = layout.endian, layout.head, layout.binary
    sample_format, num_samples, data_offset = layout.sample_format, layout.num_samples, layout.data_offset
    trace_bytes, num_traces = layout.trace_bytes, layout.num_traces
    repairs: list[str] = []

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
                textual_header = decode_textual_header(head[:TEXTUAL_HEADER_BYTES])
            for name in fields:
                headers[name][start:stop] = segy.attributes(segyio.tracefield.keys[name])[start:stop]

    check_sample_counts(path, headers, layout, repairs)
    interval = sample_interval(
        path, binary, headers["TRACE_SAMPLE_INTERVAL"], sample_interval_override, repairs
    )
    start_times = start_times_from_headers(
        path,
        headers["DelayRecordingTime"],
        headers["ScalarTraceHeader"],
        segy_revision(head[TEXTUAL_HEADER_BYTES:]),
        repairs,
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
        trace_start_times_s=start_times,
    )


def read_segy(path: str | Path) -> tuple[np.ndarray, SegyScan]:
    """Reads a whole SEG-Y file: ``(traces (num_traces, num_samples) float32 in file order, scan)``.

    For small files and tools; ``data_prep.ingest`` streams instead.
    """
    with scan_segy(path) as scan:
        return scan.read_traces(slice(None)), scan
