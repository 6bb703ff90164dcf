"""SEG-Y and .npy fixtures generated in code (see FIXTURES.md for the table of fixtures).

Sample values encode their position: in a survey of ``models x shots x receivers`` traces of ``samples``
samples, the value of (model m, shot s, receiver r, time sample t) is its linear index
``((m * shots + s) * receivers + r) * samples + t`` plus ``VALUE_OFFSET``. Reading the value back tells
exactly which model, shot, receiver and sample landed where, so an assertion checks the indexing itself.
Every value is an integer below 2**24 (exact in float32 and IBM float), and tiny fixtures fit int8.

Every SEG-Y fixture is written by segyio (through ``data_prep.segy_io``). Damaged files are made by editing
the bytes of a segyio-written file afterwards (``replace_binary_header``, ``set_binary_sample_count``;
tests truncate files themselves), never by a second writer.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from data_prep.geometry import AcquisitionGeometry
from data_prep.segy_io import (
    BINARY_HEADER_BYTES,
    TEXTUAL_HEADER_BYTES,
    format_textual_header,
    shot_gather_headers,
    write_segy_traces,
    write_shot_gathers,
    write_velocity_models,
)
from data_prep.segy_io.headers import shot_textual_lines

#: Added to every encoded value so that no sample is 0 (a zero would hide a missing trace).
VALUE_OFFSET = 1

#: Sample formats segyio reads, each with a (models, shots, receivers, samples) survey small enough for
#: the format's integer range.
FORMATS = {
    1: "IBM float",
    2: "int32",
    3: "int16",
    5: "IEEE float",
    6: "IEEE double",
    8: "int8",
}


def tiny_geometry(num_samples: int = 8, num_shots: int = 2, num_receivers: int = 3) -> AcquisitionGeometry:
    """A small surface survey on a 6 x 10 grid of 10 m cells, 2 ms sampling."""
    return AcquisitionGeometry.surface_line(
        grid_shape=(6, 10),
        num_sources=num_shots,
        num_receivers=num_receivers,
        num_samples=num_samples,
        sample_interval_s=0.002,
    )


def encoded_seismic(num_models: int, geometry: AcquisitionGeometry, first_model: int = 0) -> np.ndarray:
    """``(models, shots, time, receivers)`` float32 whose values encode (model, shot, receiver, sample)."""
    shots, samples, receivers = geometry.num_sources, geometry.num_samples, geometry.num_receivers
    model, shot, time, receiver = np.meshgrid(
        np.arange(first_model, first_model + num_models),
        np.arange(shots),
        np.arange(samples),
        np.arange(receivers),
        indexing="ij",
    )
    values = ((model * shots + shot) * receivers + receiver) * samples + time + VALUE_OFFSET
    return values.astype(np.float32)


def decode(values: np.ndarray, geometry: AcquisitionGeometry) -> tuple[np.ndarray, ...]:
    """Inverse of the encoding: ``(model, shot, receiver, sample)`` index arrays."""
    index = np.asarray(values, dtype=np.int64) - VALUE_OFFSET
    index, sample = np.divmod(index, geometry.num_samples)
    index, receiver = np.divmod(index, geometry.num_receivers)
    model, shot = np.divmod(index, geometry.num_sources)
    return model, shot, receiver, sample


def layered_velocity(num_models: int, geometry: AcquisitionGeometry, first_model: int = 0) -> np.ndarray:
    """``(models, depth, x)`` m/s: two layers, the interface depth and velocities depending on the model."""
    depth_cells, x_cells = geometry.grid_shape
    velocity = np.empty((num_models, depth_cells, x_cells), dtype=np.float32)
    for i in range(num_models):
        model = first_model + i
        velocity[i] = 1500.0 + 10.0 * model
        velocity[i, 1 + model % (depth_cells - 1) :] = 3000.0 + 10.0 * model
    return velocity


def write_fixture(
    path: str | Path,
    seismic: np.ndarray,
    geometry: AcquisitionGeometry,
    first_model: int = 0,
    sample_format: int = 5,
    endian: str = "big",
    trace_order: np.ndarray | None = None,
    edit_headers=None,
    textual_header: str | None = None,
) -> Path:
    """Writes shot gathers with the project's headers in any format, byte order and trace order (segyio).

    Args:
        seismic: ``(models, shots, time, receivers)``.
        trace_order: file position -> trace: a permutation (or a subset) of the ``models * shots *
            receivers`` traces.
        edit_headers: ``callable(headers)`` that modifies the header columns (a dict of segyio
            ``TraceField`` name -> array, after the reordering) in place, to break the file on purpose.
        textual_header: the textual header's lines; None writes the project's (with its signature, so
            ingest trusts the model id in byte 233); pass other text to make a file "from another tool".
    """
    num_models = len(seismic)
    if textual_header is None:
        textual_header = format_textual_header(
            shot_textual_lines(geometry, first_model, num_models, sample_format)
        )
    headers = shot_gather_headers(geometry, first_model, num_models)
    traces = np.ascontiguousarray(seismic.transpose(0, 1, 3, 2)).reshape(-1, geometry.num_samples)
    if trace_order is not None:
        headers = {name: values[trace_order] for name, values in headers.items()}
        traces = traces[trace_order]
    if edit_headers is not None:
        edit_headers(headers)
    return write_segy_traces(
        path,
        headers,
        traces,
        num_samples=geometry.num_samples,
        sample_interval=int(round(geometry.sample_interval_s * 1e6)),
        sample_format=sample_format,
        endian=endian,
        textual_header=textual_header,
    )


def replace_binary_header(path: str | Path, source: str | Path) -> Path:
    """Copies the 400-byte binary header of ``source`` into ``path`` (e.g. a big-endian one into a
    little-endian file, for a file with mixed byte orders)."""
    path = Path(path)
    header = slice(TEXTUAL_HEADER_BYTES, TEXTUAL_HEADER_BYTES + BINARY_HEADER_BYTES)
    data = bytearray(path.read_bytes())
    data[header] = Path(source).read_bytes()[header]
    path.write_bytes(bytes(data))
    return path


def set_binary_sample_count(path: str | Path, count: int, endian: str = "big") -> Path:
    """Overwrites the binary header's sample count (bytes 3221-3222) of a written file."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    data[3220:3222] = int(count).to_bytes(2, endian)
    path.write_bytes(bytes(data))
    return path


def set_binary_field(
    path: str | Path, byte: int, value: int, size: int = 2, endian: str = "big", signed: bool = True
) -> Path:
    """Overwrites a binary-header field (``byte`` as in the standard, e.g. 3217 for the sample interval)."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    data[byte - 1 : byte - 1 + size] = int(value).to_bytes(size, endian, signed=signed)
    path.write_bytes(bytes(data))
    return path


def write_synthetic_folder(
    folder: str | Path,
    geometry: AcquisitionGeometry,
    num_models: int = 4,
    chunk_size: int = 2,
    family: str = "fixture",
    seismic: np.ndarray | None = None,
    velocity: np.ndarray | None = None,
) -> tuple[Path, np.ndarray, np.ndarray]:
    """A folder laid out like ``data_prep.synthesize``'s output (manifest + per-chunk SEG-Y pairs).

    Returns:
        ``(folder, seismic (models, shots, time, receivers), velocity (models, depth, x))``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    seismic = encoded_seismic(num_models, geometry) if seismic is None else seismic
    velocity = layered_velocity(num_models, geometry) if velocity is None else velocity
    files = []
    for first in range(0, num_models, chunk_size):
        last = min(first + chunk_size, num_models) - 1
        shots = f"{family}_shots_{first:06d}-{last:06d}.segy"
        models = f"{family}_velocity_{first:06d}-{last:06d}.segy"
        write_velocity_models(folder / models, velocity[first : last + 1], geometry.grid_spacing_m, first)
        write_shot_gathers(folder / shots, seismic[first : last + 1], geometry, first)
        files.append(
            {"shots": shots, "velocity": models, "first_model": first, "num_models": last - first + 1}
        )
    manifest = {
        "format": "seisinvert-synthetic-survey",
        "format_version": 1,
        "package_version": "test",
        "family": family,
        "count": num_models,
        "seed": 0,
        "chunk_size": chunk_size,
        "geometry": asdict(geometry),
        "engine": {},
        "files": files,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder, seismic, velocity


def write_openfwi_pair(
    folder: str | Path, index: int, num_samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``data{index}.npy`` (N, 5, 1000, 70) and ``model{index}.npy`` (N, 1, 70, 70) with OpenFWI's shapes."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    seismic = (rng.standard_normal((num_samples, 5, 1000, 70)) * 10).astype(np.float32)
    velocity = np.repeat(
        np.linspace(1500, 4500, 70, dtype=np.float32)[None, None, :, None], num_samples, axis=0
    )
    velocity = np.repeat(velocity, 70, axis=3) + rng.uniform(0, 50, (num_samples, 1, 1, 1)).astype(np.float32)
    np.save(folder / f"data{index}.npy", seismic)
    np.save(folder / f"model{index}.npy", velocity)
    return seismic, velocity
