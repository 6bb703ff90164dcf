"""Fixtures of issue 8 (ingest reliability): the files that used to be read wrongly or end in a traceback.

Each builder makes one case from a valid segyio-written survey (``segy_fixtures.write_fixture``, values that
encode their position) by editing header bytes afterwards, as ``segy_fixtures`` does; the table in
FIXTURES.md lists them with the behaviour each must produce.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import segyio

from data_prep.geometry import AcquisitionGeometry
from data_prep.segy_io import TEXTUAL_HEADER_BYTES, shot_gather_headers, write_velocity_models
from tests.data_prep.segy_fixtures import (
    encoded_seismic,
    layered_velocity,
    set_binary_field,
    set_binary_sample_count,
    tiny_geometry,
    write_fixture,
    write_synthetic_folder,
)

GEOMETRY = tiny_geometry()  # 2 ms, 8 samples, 2 shots x 3 receivers; 2 models = 12 traces


def write_survey(folder: str | Path, num_models: int = 2, edit_headers=None, **kwargs) -> Path:
    """``folder/shots.segy`` + ``folder/velocity.segy``: a valid labelled survey of ``num_models`` models."""
    folder = Path(folder)
    write_fixture(
        folder / "shots.segy",
        encoded_seismic(num_models, GEOMETRY),
        GEOMETRY,
        edit_headers=edit_headers,
        **kwargs,
    )
    write_velocity_models(folder / "velocity.segy", layered_velocity(num_models, GEOMETRY), 10.0, 0)
    return folder


def negative_binary_interval(path: str | Path, interval_us: int = -2000) -> Path:
    """Case 1: the binary header's sample interval (signed) is negative; trace headers say 2000 µs.

    Read unsigned, -2000 is 63536 µs (63.5 ms): the silent wrong result the issue found.
    """
    write_fixture(path, encoded_seismic(2, GEOMETRY), GEOMETRY)
    return set_binary_field(path, 3217, interval_us)


def disagreeing_intervals(path: str | Path, trace_interval_us: int = 1000) -> Path:
    """Case 1: binary header 2000 µs, every trace header ``trace_interval_us``."""

    def edit(headers):
        headers["TRACE_SAMPLE_INTERVAL"] = np.full(12, trace_interval_us)

    return write_fixture(path, encoded_seismic(2, GEOMETRY), GEOMETRY, edit_headers=edit)


def stale_trace_sample_count(path: str | Path, stale_count: int = 6, endian: str = "big") -> Path:
    """Case 5: every trace header says ``stale_count`` samples; binary header and file size say 8."""

    def edit(headers):
        headers["TRACE_SAMPLE_COUNT"] = np.full(12, stale_count)

    return write_fixture(path, encoded_seismic(2, GEOMETRY), GEOMETRY, edit_headers=edit, endian=endian)


def wrong_binary_sample_count(path: str | Path, binary_count: int = 6) -> Path:
    """Case 5 (the other way round): binary header ``binary_count``; trace headers and file size say 8."""
    write_fixture(path, encoded_seismic(2, GEOMETRY), GEOMETRY)
    return set_binary_sample_count(path, binary_count)


def variable_extended_headers(
    path: str | Path, extended: Sequence[str] = ("MORE TEXT", "((SEG: EndText))")
) -> Path:
    """Minor item: extended textual headers (EBCDIC, by segyio) whose count in the binary header is -1.

    ``write_segy_traces`` writes no extended headers, so this writes with ``segyio.create`` directly, then
    sets bytes 3505-3506 to -1 (a variable number, ended by the EndText stanza: SEG-Y rev 1).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seismic = encoded_seismic(2, GEOMETRY)
    columns = {
        name: np.broadcast_to(values, (12,)) for name, values in shot_gather_headers(GEOMETRY, 0, 2).items()
    }
    traces = np.ascontiguousarray(seismic.transpose(0, 1, 3, 2)).reshape(-1, GEOMETRY.num_samples)
    spec = segyio.spec()
    spec.samples = list(range(GEOMETRY.num_samples))
    spec.format = 5
    spec.tracecount = len(traces)
    spec.ext_headers = len(extended)
    with segyio.create(str(path), spec) as f:
        f.bin.update(
            {
                segyio.BinField.Samples: GEOMETRY.num_samples,
                segyio.BinField.Interval: 2000,
                segyio.BinField.ExtendedHeaders: len(extended),
            }
        )
        for i, trace in enumerate(traces):
            f.header[i] = {
                getattr(segyio.TraceField, name): int(column[i]) for name, column in columns.items()
            }
            f.trace[i] = trace
        for k, text in enumerate(extended, start=1):
            f.text[k] = text.encode("ascii").ljust(TEXTUAL_HEADER_BYTES)
    return set_binary_field(path, 3505, -1)


def textual_header_bytes(kind: str) -> bytes:
    """Case 11: 3200 textual-header bytes, ``kind`` one of "blank-ebcdic", "ebcdic", "ascii", "blank-ascii",
    "mixed" (EBCDIC card lines with a few ASCII ones, as tools that patch one line write), "zeros"."""
    lines = [f"C{i:2d} " for i in range(1, 41)]
    if kind in ("blank-ebcdic", "blank-ascii"):
        text = "".join(line.ljust(80) for line in lines)
        return text.encode("cp037" if kind == "blank-ebcdic" else "ascii")
    if kind == "zeros":
        return bytes(TEXTUAL_HEADER_BYTES)
    lines[0] += "CLIENT SEISMIC COMPANY  LINE 42  AREA NORTH SEA"
    lines[1] += "RECORDED 1998  SAMPLE INTERVAL 2 MS"
    text = "".join(line.ljust(80) for line in lines)
    if kind == "ascii":
        return text.encode("ascii")
    if kind == "ebcdic":
        return text.encode("cp037")
    if kind == "mixed":
        encoded = bytearray(text.encode("cp037"))
        encoded[80 * 39 : 80 * 40] = "C40 END TEXTUAL HEADER (PATCHED IN ASCII)".ljust(80).encode("ascii")
        return bytes(encoded)
    raise ValueError(f"unknown textual header kind {kind!r}")


def with_textual_header(path: str | Path, raw: bytes, geometry: AcquisitionGeometry = GEOMETRY) -> Path:
    """A valid 2-model shot file whose 3200-byte textual header is replaced by ``raw``."""
    write_fixture(path, encoded_seismic(2, geometry), geometry)
    data = bytearray(Path(path).read_bytes())
    data[:TEXTUAL_HEADER_BYTES] = raw
    Path(path).write_bytes(bytes(data))
    return Path(path)


def truncated_synthesize_folder(folder: str | Path, keep_models: int = 1) -> Path:
    """Case 3: a synthesize-style folder (4 models in chunks of 2) whose first shots file was cut at a model
    boundary, keeping ``keep_models`` of its 2 models: still whole traces, so only the manifest can tell."""
    folder, _, _ = write_synthetic_folder(folder, GEOMETRY, num_models=4, chunk_size=2)
    shots = folder / "fixture_shots_000000-000001.segy"
    traces_per_model = GEOMETRY.num_sources * GEOMETRY.num_receivers
    trace_bytes = 240 + 4 * GEOMETRY.num_samples
    shots.write_bytes(shots.read_bytes()[: 3600 + keep_models * traces_per_model * trace_bytes])
    return folder


def shots_without_velocity(folder: str | Path, field_style: bool = False) -> Path:
    """Case 7: shot gathers and no velocity model at all; ``field_style`` gives them another tool's textual
    header (no seisinvert signature, so byte 233 is not taken for a model id) as field data has."""
    folder = Path(folder)
    header = "C 1 FIELD LINE 7 EXPORTED BY ANOTHER TOOL" if field_style else None
    write_fixture(folder / "line7.sgy", encoded_seismic(2, GEOMETRY), GEOMETRY, textual_header=header)
    return folder


def extended_sample_count(
    path: str | Path,
    num_samples: int,
    two_byte_field: int | None = None,
    revision: int = 2,
    num_traces: int = 3,
) -> Path:
    """Issue 24: a SEG-Y rev 2 file whose sample count is in the extended binary header (bytes 3269-3272).

    Written by segyio (which fills the 2-byte field, bytes 3221-3222, with the count modulo 65536 and sets
    revision 2 for more than 65535 samples), then the 2-byte field and the revision (byte 3501) are set
    as asked: ``two_byte_field`` None keeps segyio's. Trace ``t`` holds ``1000 * t + sample index``, so an
    assertion checks indexing directly.
    """
    path = Path(path)
    spec = segyio.spec()
    spec.format = 5
    spec.samples = range(num_samples)
    spec.tracecount = num_traces
    with segyio.create(str(path), spec) as segy:
        for trace in range(num_traces):
            segy.header[trace] = {segyio.su.ns: num_samples % 65536, segyio.su.dt: 1000}
            segy.trace[trace] = np.arange(num_samples, dtype=np.float32) + 1000 * trace
    set_binary_field(path, 3269, num_samples, size=4)
    if two_byte_field is not None:
        set_binary_field(path, 3221, two_byte_field, signed=False)
    set_binary_field(path, 3501, revision << 8, signed=False)
    return path
