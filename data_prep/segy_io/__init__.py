"""SEG-Y input and output: shot gathers and velocity models, written and read through segyio.

Sits between the data engine and the HDF5 datasets: ``data_prep.synthesize`` writes its simulated shot
gathers and velocity models through ``write_shot_gathers`` / ``write_velocity_models``, and
``data_prep.ingest`` reads those files (or field SEG-Y in any sample format, byte order and trace order)
through ``scan_segy`` / ``SegyScan.read_traces``. segyio does the encoding and decoding; this package adds
only what segyio does not do. It is organised as segyio itself is, one concept per module:

===============================  ==========================================================================
module                           holds
===============================  ==========================================================================
``data_prep.segy_io.layout``     header sizes, sample-format codes and dtypes, coordinate scalars,
                                 ``SegyFormatError``
``data_prep.segy_io.detect``     byte-order detection and the checks made before segyio opens a file
                                 (``detect_endianness``, ``check_layout``, ``open_segy``)
``data_prep.segy_io.read``       scanning headers and reading traces (``scan_segy``, ``SegyScan``,
                                 ``read_segy``, ``decode_textual_header``)
``data_prep.segy_io.headers``    what this project writes into the headers (the byte tables;
                                 ``shot_gather_headers``, ``format_textual_header``, ``MODEL_ID_FIELD``,
                                 ``header_convention``)
``data_prep.segy_io.write``      writing files (``write_segy_traces``, ``write_shot_gathers``,
                                 ``write_velocity_models``)
===============================  ==========================================================================

Import the public names from here: ``from data_prep.segy_io import scan_segy``.
"""

from data_prep.segy_io.detect import FileLayout, check_layout, detect_endianness, open_segy
from data_prep.segy_io.headers import (
    COORDINATE_SCALAR,
    HEADER_CONVENTION,
    MODEL_ID_FIELD,
    SIGNATURE_LINE,
    format_textual_header,
    header_convention,
    shot_gather_headers,
)
from data_prep.segy_io.layout import (
    BINARY_HEADER_BYTES,
    SAMPLE_FORMAT_DTYPES,
    SAMPLE_FORMAT_NAMES,
    TEXTUAL_HEADER_BYTES,
    TRACE_HEADER_BYTES,
    UNSUPPORTED_SAMPLE_FORMATS,
    SegyFormatError,
    TraceHeaders,
    scale_factors,
)
from data_prep.segy_io.read import (
    READ_BLOCK_BYTES,
    SCAN_FIELDS,
    SegyScan,
    decode_textual_header,
    read_segy,
    scan_segy,
)
from data_prep.segy_io.write import write_segy_traces, write_shot_gathers, write_velocity_models

__all__ = [
    "BINARY_HEADER_BYTES",
    "COORDINATE_SCALAR",
    "HEADER_CONVENTION",
    "MODEL_ID_FIELD",
    "READ_BLOCK_BYTES",
    "SAMPLE_FORMAT_DTYPES",
    "SAMPLE_FORMAT_NAMES",
    "SCAN_FIELDS",
    "SIGNATURE_LINE",
    "TEXTUAL_HEADER_BYTES",
    "TRACE_HEADER_BYTES",
    "UNSUPPORTED_SAMPLE_FORMATS",
    "FileLayout",
    "SegyFormatError",
    "SegyScan",
    "TraceHeaders",
    "check_layout",
    "decode_textual_header",
    "detect_endianness",
    "format_textual_header",
    "header_convention",
    "open_segy",
    "read_segy",
    "scale_factors",
    "scan_segy",
    "shot_gather_headers",
    "write_segy_traces",
    "write_shot_gathers",
    "write_velocity_models",
]
