"""SEG-Y layout facts shared by reading and writing: header sizes, sample formats, coordinate scalars.

Part of ``data_prep.segy_io`` (as ``segyio``'s own constants modules are): the numbers of the standard that
this project relies on, the dtype segyio uses for each sample format, and the error raised for files that
cannot be read as SEG-Y.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from core.errors import UserError

TEXTUAL_HEADER_BYTES = 3200
BINARY_HEADER_BYTES = 400
TRACE_HEADER_BYTES = 240

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
#: A readable name for each format code, for messages and textual headers.
SAMPLE_FORMAT_NAMES = {
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
#: Bytes per sample of the unsupported formats (to check file sizes before refusing them clearly).
UNSUPPORTED_FORMAT_BYTES = {4: 4, 7: 3, 15: 3}


class SegyFormatError(UserError):
    """A file that cannot be read as SEG-Y (empty, truncated, wrong byte order, unsupported format)."""


def format_bytes(sample_format: int) -> int:
    """Bytes per sample on disk of a SEG-Y format code (supported or not)."""
    if sample_format in SAMPLE_FORMAT_DTYPES:
        return np.dtype(SAMPLE_FORMAT_DTYPES[sample_format]).itemsize
    return UNSUPPORTED_FORMAT_BYTES[sample_format]


def scale_factors(scalars: np.ndarray) -> np.ndarray:
    """SEG-Y coordinate scalars to multipliers: positive multiplies, negative divides, 0 means 1."""
    scalars = np.asarray(scalars, dtype=np.float64)
    return np.where(
        scalars > 0, scalars, np.where(scalars < 0, -1.0 / np.where(scalars < 0, scalars, -1), 1.0)
    )
