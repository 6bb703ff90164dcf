"""Small labelled HDF5 datasets for the pipeline tests, written through ``data_prep.openfwi`` (fast, no engine).

The seismic is a cheap stand-in for physics that still carries the velocity: every trace holds a direct
arrival and one reflection whose time grows with the depth of the interface and whose amplitude follows the
velocity contrast, plus a little noise, so a tiny model can learn something in a few steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_prep.geometry import AcquisitionGeometry

#: (shots, time, receivers) and (depth, x) of the test geometry.
SEISMIC_SHAPE = (2, 64, 16)
GRID_SHAPE = (16, 16)

TINY_UNET = {
    "family": "unet",
    "seismic_shape": list(SEISMIC_SHAPE),
    "grid_shape": list(GRID_SHAPE),
    "front_end_filters": [4],
    "front_end_kernel_sizes": [3],
    "encoder_filters": [4, 8],
    "blocks_per_level": 1,
}


def small_geometry() -> AcquisitionGeometry:
    return AcquisitionGeometry(
        grid_shape=GRID_SHAPE,
        grid_spacing_m=10.0,
        num_samples=SEISMIC_SHAPE[1],
        sample_interval_s=0.002,
        peak_frequency_hz=15.0,
        source_cells=((1, 0), (1, 15)),
        receiver_cells=tuple((1, x) for x in range(SEISMIC_SHAPE[2])),
    )


def layered_samples(num_samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(seismic (n, shots, time, receivers), velocity (n, depth, x) m/s)`` of two-layer models."""
    rng = np.random.default_rng(seed)
    shots, times, receivers = SEISMIC_SHAPE
    depth, width = GRID_SHAPE
    seismic = np.zeros((num_samples, shots, times, receivers), np.float32)
    velocity = np.empty((num_samples, depth, width), np.float32)
    for sample in range(num_samples):
        interface = int(rng.integers(3, depth - 2))
        top, bottom = rng.uniform(1500, 2800), rng.uniform(3000, 4500)
        velocity[sample, :interface] = top
        velocity[sample, interface:] = bottom
        reflection_time = min(times - 2, 8 + 3 * interface)
        for shot in range(shots):
            seismic[sample, shot, 2:4, :] = 40.0  # direct wave (positive, OpenFWI's polarity)
            seismic[sample, shot, reflection_time, :] = (bottom - top) / 100.0
        seismic[sample] += rng.normal(0, 0.1, (shots, times, receivers)).astype(np.float32)
    return seismic, velocity


def write_dataset(
    path: Path,
    num_samples: int = 24,
    seed: int = 0,
    files: int = 1,
    families: tuple[str, ...] = (),
    basement_mps: float | None = None,
) -> Path:
    """Writes ``num_samples`` two-layer samples as OpenFWI ``.npy`` files and imports them to ``path``.

    With ``families``, the files are spread over folders named after them (OpenFWI's layout), so the
    dataset records those families (split stratified by family). ``basement_mps`` sets the deepest three
    rows of every model to that velocity (e.g. beyond the fixed 1500-4500 m/s range the import uses).
    """
    from data_prep.openfwi import OpenFWIConfig, import_openfwi

    source = path.parent / f"{path.stem}_npy"
    source.mkdir(parents=True, exist_ok=True)
    seismic, velocity = layered_samples(num_samples, seed)
    if basement_mps is not None:
        velocity[:, -3:, :] = basement_mps
    count = max(files, len(families))
    for index, chunk in enumerate(np.array_split(np.arange(num_samples), count), start=1):
        folder = source / families[(index - 1) % len(families)] if families else source
        folder.mkdir(exist_ok=True)
        np.save(folder / f"data{index}.npy", seismic[chunk])
        np.save(folder / f"model{index}.npy", velocity[chunk][:, None])
    config = OpenFWIConfig(geometry=small_geometry(), progress=False)
    return import_openfwi([source], path, config, overwrite=True)
