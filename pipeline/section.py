"""The stitched-section outputs of ``pipeline.infer``: HDF5 layout, SEG-Y velocity section, PNG previews.

Pipeline position: last step of inference. ``SectionWriter`` receives finished columns from
``pipeline.stitching.StreamingStitcher`` and writes them into a temporary HDF5 file, which is renamed into
place only when complete; the SEG-Y section and the previews are then made from that file block by block,
so no output needs the whole section in memory.

HDF5 layout (``format="seisinvert-section"``, ``schema_version=1``)::

    /                     attrs: format, schema_version, package_version, created_utc, complete (bool)
    /velocity_mps         float32 (depth, x) m/s; NaN where no window covers a column
    /edges                float32 (depth, x) edge probability in [0, 1] (only when the model has an edge head)
    /refined_velocity_mps float32 (depth, x) m/s refined by full-waveform inversion (only with --refine;
                          per-window refine_* values in /windows, summary and settings in /refine attrs)
    /coverage_weight      float64 (x,) sum of the blending weights of the windows covering each column
    /x_m                  float64 (x,) along-line position of each column (metres)
    /map_x_m, /map_y_m    float64 (x,) map coordinates of each column (the line's projection inverted)
    /depth_m              float64 (depth,) depth of each row below the datum (metres)
    /windows/*            one entry per window: column_start, x_start_m, x_end_m, shot_index (window, shot),
                          shot_offset_m, receivers_interpolated, amplitude_statistic, calibration_factor,
                          data_misfit, source_scale, velocity_*_mps, velocity_relative_mae, clipped_cells,
                          flags (strings, comma-separated), qc_error (strings)
    /qc                   attrs: summary (JSON: medians, worst values, flagged count), thresholds (JSON),
                          section_velocity_errors (JSON, when a true velocity was given)
    /provenance           attrs: JSON strings: model (uri, family, bundle info), inputs (path, size, sha256),
                          configuration (YAML), config_hash, regridded (mismatches fixed by --regrid),
                          engine (QC engine settings and notes), calibration (method, target), timings

SEG-Y velocity section (``write_section_segy``): one trace per column, depth down the trace (sample
interval = grid spacing in millimetres, as ``data_prep.segy_io.write_velocity_models`` writes velocity
models), IEEE float big-endian; trace headers: ``TRACE_SEQUENCE_LINE``/``FILE`` and ``TraceNumber`` and
``CDP`` = column number (1-based), ``SourceX``/``GroupX``/``CDP_X`` and ``SourceY``/``GroupY``/``CDP_Y`` =
the column's map coordinates in centimetres with ``SourceGroupScalar = -100``, ``CoordinateUnits = 1``;
columns no window covers are written as zeros with ``TraceIdentificationCode = 2`` (dead trace).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from core import __version__
from core.atomic import atomic_output
from core.errors import UserError
from data_prep.segy_io import COORDINATE_SCALAR, scale_factors, scan_segy, write_segy_traces
from data_prep.segy_io import format_textual_header as _format_textual_header

FORMAT = "seisinvert-section"
SCHEMA_VERSION = 1
#: Columns per HDF5 chunk and per SEG-Y/preview block.
BLOCK_COLUMNS = 512


class SectionWriter:
    """Writes a section's columns into an HDF5 file opened at ``path`` (a temporary path: see ``infer``).

    Use as the ``sink`` of a ``StreamingStitcher``; then ``write_windows`` and ``write_attributes``; then
    ``close``.
    """

    def __init__(
        self,
        path: Path,
        num_columns: int,
        depth: int,
        names: Sequence[str],
        x_m: np.ndarray,
        map_x_m: np.ndarray,
        map_y_m: np.ndarray,
        depth_m: np.ndarray,
    ) -> None:
        self.h5 = h5py.File(path, "w")
        self.h5.attrs["format"] = FORMAT
        self.h5.attrs["schema_version"] = SCHEMA_VERSION
        self.h5.attrs["package_version"] = __version__
        self.h5.attrs["created_utc"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        self.h5.attrs["complete"] = False
        chunk = (depth, min(num_columns, BLOCK_COLUMNS))
        self.names = tuple(names)
        for name in self.names:
            dataset = self.h5.create_dataset(
                name, shape=(depth, num_columns), dtype=np.float32, chunks=chunk, fillvalue=np.nan
            )
            dataset.attrs["axes"] = "depth,x"
            dataset.attrs["units"] = "m/s" if name.endswith("velocity_mps") else "edge probability, 0..1"
        self.h5.create_dataset("coverage_weight", shape=(num_columns,), dtype=np.float64)
        for name, values in (("x_m", x_m), ("map_x_m", map_x_m), ("map_y_m", map_y_m), ("depth_m", depth_m)):
            self.h5.create_dataset(name, data=np.asarray(values, dtype=np.float64))

    def __call__(self, first: int, blocks: Mapping[str, np.ndarray], weight: np.ndarray) -> None:
        stop = first + len(weight)
        for name in self.names:
            self.h5[name][:, first:stop] = blocks[name]
        self.h5["coverage_weight"][first:stop] = weight

    def write_windows(self, columns: Mapping[str, np.ndarray]) -> None:
        group = self.h5.create_group("windows")
        for name, values in columns.items():
            values = np.asarray(values)
            if values.dtype.kind in "OU":
                group.create_dataset(name, data=np.asarray(values, dtype=object), dtype=h5py.string_dtype())
            else:
                group.create_dataset(name, data=values)

    def write_attributes(self, group: str, values: Mapping[str, Any]) -> None:
        target = self.h5.require_group(group)
        for key, value in values.items():
            target.attrs[key] = value if isinstance(value, str) else json.dumps(_plain(value), sort_keys=True)

    def close(self, complete: bool = True) -> None:
        self.h5.attrs["complete"] = bool(complete)
        self.h5.close()


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def read_section(path: str | Path) -> dict[str, Any]:
    """Reads a whole section file (small sections, tests, notebooks) after checking its format.

    Returns:
        ``{"velocity_mps", "edges" (or None), "coverage_weight", "x_m", "map_x_m", "map_y_m", "depth_m",
        "windows": {name: array}, "qc": {attr: value}, "provenance": {attr: value}}``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Section file {path} does not exist.")
    with h5py.File(path, "r") as h5:
        if h5.attrs.get("format") != FORMAT:
            raise UserError(f"{path} is not a {FORMAT} file (format={h5.attrs.get('format')!r}).")
        if not h5.attrs.get("complete", False):
            raise UserError(
                f"{path} is incomplete (written by an interrupted run): run pipeline.infer again."
            )
        result: dict[str, Any] = {
            name: (h5[name][()] if name in h5 else None)
            for name in (
                "velocity_mps",
                "edges",
                "refined_velocity_mps",
                "coverage_weight",
                "x_m",
                "map_x_m",
                "map_y_m",
                "depth_m",
            )
        }
        result["windows"] = {
            name: (
                h5["windows"][name].asstr()[()]
                if h5["windows"][name].dtype.kind == "O"
                else h5["windows"][name][()]
            )
            for name in h5["windows"]
        }
        for group in ("qc", "provenance", "refine"):
            result[group] = {
                key: _maybe_json(value) for key, value in (h5[group].attrs.items() if group in h5 else [])
            }
    return result


def _maybe_json(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


# ----------------------------------------------------------------------------------------------------------
# SEG-Y
# ----------------------------------------------------------------------------------------------------------


def write_section_segy(
    section_path: Path, destination: Path, name: str = "velocity_mps", grid_spacing_m: float | None = None
) -> Path:
    """Writes one map of a section file as a SEG-Y section (one trace per column), streaming, atomically."""
    with h5py.File(section_path, "r") as h5:
        data = h5[name]
        depth, num_columns = data.shape
        depth_m = h5["depth_m"][()]
        spacing = grid_spacing_m or (float(depth_m[1] - depth_m[0]) if depth > 1 else 1.0)
        spacing_mm = int(round(spacing * 1000))
        if not 0 < spacing_mm <= 32767:
            raise UserError(
                f"The grid spacing {spacing:g} m does not fit SEG-Y's sample-interval field in millimetres "
                "(at most 32.767 m): the SEG-Y section cannot be written; the HDF5 section holds it."
            )
        map_x = np.rint(h5["map_x_m"][()] * -COORDINATE_SCALAR).astype(np.int64)
        map_y = np.rint(h5["map_y_m"][()] * -COORDINATE_SCALAR).astype(np.int64)
        if max(np.abs(map_x).max(initial=0), np.abs(map_y).max(initial=0)) > 2**31 - 1:
            raise UserError(
                "Map coordinates exceed SEG-Y's 4-byte coordinate fields at centimetre precision."
            )
        units = "M/S" if name.endswith("velocity_mps") else "EDGE PROBABILITY 0-1"
        content = {"velocity_mps": "VELOCITY", "refined_velocity_mps": "REFINED VELOCITY (FWI)"}.get(
            name, "EDGE"
        )
        lines = [
            f"SEISINVERT {__version__} - DEEP-LEARNING SEISMIC VELOCITY INVERSION",
            f"CONTENT: STITCHED {content} SECTION, {units}",
            "DEPTH SAMPLES; SAMPLE INTERVAL IN MM",
            f"{num_columns} TRACES (COLUMNS), {depth} DEPTH SAMPLES OF {spacing:g} M = {spacing_mm} MM",
            "ONE TRACE PER LATERAL POSITION, DEPTH DOWN THE TRACE",
            "SAMPLE FORMAT 5 (4-BYTE IEEE FLOAT), BIG-ENDIAN",
            "",
            "TRACE HEADER BYTES:",
            "  1/5 TRACE SEQUENCE  13 TRACENUMBER = COLUMN (1-BASED)  21 CDP = COLUMN",
            " 29 TRACE ID: 1 = LIVE, 2 = DEAD (NO WINDOW COVERS THE COLUMN; ZEROS)",
            " 71 COORDINATE SCALAR = -100 (CM)  89 COORDINATE UNITS = 1 (LENGTH)",
            " 73/77 SOURCEX/Y  81/85 GROUPX/Y  181/185 CDP_X/Y = MAP POSITION (CM)",
            "115 SAMPLE COUNT = DEPTH SAMPLES  117 SAMPLE INTERVAL = DEPTH SPACING (MM)",
        ]

        def blocks():
            for first in range(0, num_columns, BLOCK_COLUMNS):
                stop = min(first + BLOCK_COLUMNS, num_columns)
                values = data[:, first:stop].T  # (columns, depth)
                dead = ~np.all(np.isfinite(values), axis=1)
                columns = np.arange(first + 1, stop + 1)
                headers = {
                    "TRACE_SEQUENCE_LINE": columns,
                    "TRACE_SEQUENCE_FILE": columns,
                    "FieldRecord": 1,
                    "TraceNumber": columns,
                    "CDP": columns,
                    "TraceIdentificationCode": np.where(dead, 2, 1),
                    "SourceGroupScalar": COORDINATE_SCALAR,
                    "ElevationScalar": COORDINATE_SCALAR,
                    "CoordinateUnits": 1,
                    "SourceX": map_x[first:stop],
                    "SourceY": map_y[first:stop],
                    "GroupX": map_x[first:stop],
                    "GroupY": map_y[first:stop],
                    "CDP_X": map_x[first:stop],
                    "CDP_Y": map_y[first:stop],
                    "TRACE_SAMPLE_COUNT": depth,
                    "TRACE_SAMPLE_INTERVAL": spacing_mm,
                }
                yield headers, np.where(np.isfinite(values), values, 0.0).astype(np.float32)

        return write_segy_traces(
            destination,
            None,
            blocks(),
            num_samples=depth,
            sample_interval=spacing_mm,
            sample_format=5,
            textual_header=_format_textual_header(lines),
            num_traces=num_columns,
        )


# ----------------------------------------------------------------------------------------------------------
# Previews
# ----------------------------------------------------------------------------------------------------------


def write_previews(
    section_path: Path,
    out_dir: Path,
    rows: Sequence[Mapping[str, Any]] | None = None,
    max_columns: int = 2000,
    title: str = "",
) -> list[Path]:
    """PNG previews of the velocity and edge sections (columns decimated to at most ``max_columns``)."""
    # A Figure of its own, not pyplot: switching pyplot's backend would turn off a notebook's inline plots.
    from matplotlib.figure import Figure

    written = []
    with h5py.File(section_path, "r") as h5:
        x_m = h5["x_m"][()]
        depth_m = h5["depth_m"][()]
        step = max(1, int(np.ceil(len(x_m) / max_columns)))
        for name, colour_map, label in (
            ("velocity_mps", "viridis", "velocity (m/s)"),
            ("edges", "gray_r", "edge probability"),
        ):
            if name not in h5:
                continue
            image = h5[name][:, ::step]
            spacing = float(depth_m[1] - depth_m[0]) if len(depth_m) > 1 else 1.0
            extent = (x_m[0], x_m[-1], depth_m[-1] + spacing / 2, depth_m[0] - spacing / 2)
            aspect = max(4.0, min(16.0, 4.0 * (x_m[-1] - x_m[0]) / max(depth_m[-1] - depth_m[0], 1.0)))
            figure = Figure(figsize=(min(16.0, aspect + 2), 4.0))
            axis = figure.subplots()
            shown = axis.imshow(
                image,
                aspect="auto",
                cmap=colour_map,
                extent=extent,
                interpolation="nearest",
                vmin=0.0 if name == "edges" else None,
                vmax=1.0 if name == "edges" else None,
            )
            figure.colorbar(shown, ax=axis, label=label)
            if rows:
                for row in rows:
                    if row.get("flags"):
                        axis.axvspan(
                            row["x_start_m"],
                            row["x_end_m"],
                            ymin=0.97,
                            ymax=1.0,
                            color="tab:red",
                            alpha=0.6,
                            linewidth=0,
                        )
            axis.set_xlabel("along-line position (m)")
            axis.set_ylabel("depth (m)")
            axis.set_title(f"{title} {label}".strip() + (f" (every {step}th column)" if step > 1 else ""))
            figure.tight_layout()
            path = out_dir / f"section_{name.split('_')[0]}.png"
            with atomic_output(path) as temporary:
                figure.savefig(temporary, dpi=100, format="png")
            written.append(path)
    return written


# ----------------------------------------------------------------------------------------------------------
# A known velocity section (synthetic surveys)
# ----------------------------------------------------------------------------------------------------------


class TruthSection:
    """A true velocity section from SEG-Y (one trace per lateral position, depth samples in mm).

    The layout ``write_section_segy`` and ``data_prep.segy_io.write_velocity_models`` write. Traces are
    placed along the survey line through ``frame`` (``CDP_X/Y``, else ``SourceX/Y``, with the coordinate
    scalar); ``window(x_m)`` reads the columns needed for some positions and interpolates linearly along x
    (NaN outside the truth's extent). Only headers are kept in memory.
    """

    def __init__(self, path: str | Path, frame, depth_cells: int, grid_spacing_m: float) -> None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"True velocity {path} does not exist: check --truth.")
        self.scan = scan_segy(path, extra_fields=("CDP_Y",), compute_sha256=True)
        self.sha256 = self.scan.sha256
        self.path = path
        headers = self.scan.headers
        if (
            self.scan.num_samples != depth_cells
            or abs(self.scan.sample_interval - grid_spacing_m * 1000) > 0.5
        ):
            raise UserError(
                f"True velocity {path} has {self.scan.num_samples} depth samples every "
                f"{self.scan.sample_interval / 1000:g} m; the model's grid has {depth_cells} cells of "
                f"{grid_spacing_m:g} m. Give the truth on the model's depth grid."
            )
        factor = scale_factors(headers["SourceGroupScalar"])
        use_cdp = bool(np.any(headers["CDP_X"]) or np.any(headers["CDP_Y"]))
        x = (headers["CDP_X"] if use_cdp else headers["SourceX"]) * factor
        y = (headers["CDP_Y"] if use_cdp else headers["SourceY"]) * factor
        along = frame.along(x, y)
        self.order = np.argsort(along, kind="stable")
        self.along = along[self.order]
        if np.any(np.diff(self.along) <= 0):
            raise UserError(
                f"True velocity {path}: two traces share a lateral position; one per position is needed."
            )
        self.scan.headers = {}

    def window(self, x_m: np.ndarray) -> np.ndarray:
        """``(depth, len(x_m))`` true velocity at along-line positions ``x_m`` (NaN outside the truth)."""
        x_m = np.asarray(x_m, dtype=np.float64)
        position = np.searchsorted(self.along, x_m)
        left = np.clip(position - 1, 0, len(self.along) - 1)
        right = np.clip(position, 0, len(self.along) - 1)
        exact = np.isclose(self.along[right], x_m, atol=1e-3)
        left = np.where(exact, right, left)
        needed = np.unique(np.r_[left, right])
        traces = self.scan.read_traces(self.order[needed])  # (needed, depth)
        lookup = {int(index): row for row, index in enumerate(needed)}
        values_left = traces[[lookup[int(i)] for i in left]]
        values_right = traces[[lookup[int(i)] for i in right]]
        span = self.along[right] - self.along[left]
        fraction = np.where(span > 0, (x_m - self.along[left]) / np.where(span > 0, span, 1.0), 0.0)
        result = values_left * (1 - fraction[:, None]) + values_right * fraction[:, None]
        outside = (x_m < self.along[0] - 1e-3) | (x_m > self.along[-1] + 1e-3)
        result[outside] = np.nan
        self.scan.close()
        return result.T.astype(np.float32)


#: Plausible seismic velocities (m/s): outside this a truth is refused (a section in km/s has values 1.5-4.5).
PLAUSIBLE_VELOCITY_MPS = (300.0, 20000.0)


class ArrayTruth:
    """A true velocity section from ``.npy``, ``.npz`` or HDF5 (``--truth``), with ``TruthSection``'s interface.

    Layouts (``velocity``: ``(depth, x)`` float, m/s, depth rows on the model's grid, NaN = unknown):

    * ``.npy``: the array alone; column ``i`` lies at along-line position ``i * grid_spacing_m`` (the
      section's ``x_m`` frame: the projection of map coordinates onto the survey line).
    * ``.npz``: ``velocity_mps`` (or the file's only array), optionally ``x_m`` ``(x,)`` along-line positions
      (metres, increasing), or ``map_x_m`` and ``map_y_m`` ``(x,)`` map coordinates (projected onto the line).
    * ``.h5``/``.hdf5``: the same names as datasets (a ``section.h5`` written by ``pipeline.infer`` is a
      valid truth), or the file's only 2-D dataset; ``depth_m`` ``(depth,)``, when present, must match the
      model's depth grid.

    Raises:
        UserError: a missing file, no or several candidate arrays, a shape other than ``(depth cells, x)``,
            positions that do not increase or do not match the columns, values that are not m/s (e.g. km/s).
    """

    SUFFIXES = (".npy", ".npz", ".h5", ".hdf5")

    def __init__(self, path: str | Path, frame, depth_cells: int, grid_spacing_m: float) -> None:
        from data_prep.schema import file_sha256

        path = Path(path)
        if not path.is_file():
            raise UserError(f"True velocity {path} does not exist: check --truth.")
        self.path = path
        self.sha256 = file_sha256(path)
        velocity, x_m, map_xy, depth_m = self._load(path)
        velocity = np.asarray(velocity)
        where = f"True velocity {path}"
        if velocity.ndim != 2:
            raise UserError(
                f"{where}: the velocity array has shape {velocity.shape}; expected one section (depth, x) = "
                f"({depth_cells}, columns)"
                + (": a stack of models? pass one section" if velocity.ndim == 3 else "")
                + "."
            )
        if velocity.shape[0] != depth_cells:
            hint = (
                " (it looks transposed: pass velocity.T, depth first)"
                if velocity.shape[1] == depth_cells
                else ""
            )
            raise UserError(
                f"{where}: {velocity.shape[0]} depth rows (shape {velocity.shape}); the model's grid has "
                f"{depth_cells} cells of {grid_spacing_m:g} m, so (depth, x) = ({depth_cells}, columns) is "
                f"expected{hint}."
            )
        if depth_m is not None:
            expected = np.arange(depth_cells) * grid_spacing_m
            if np.shape(depth_m) != expected.shape or not np.allclose(depth_m, expected, atol=1e-3):
                raise UserError(
                    f"{where}: depth_m runs {np.min(depth_m):g}..{np.max(depth_m):g} m in {np.size(depth_m)} rows; "
                    f"the model's grid is 0..{expected[-1]:g} m every {grid_spacing_m:g} m. Resample the truth."
                )
        velocity = velocity.astype(np.float64)
        finite = velocity[np.isfinite(velocity)]
        if not finite.size:
            raise UserError(f"{where}: no finite velocity values.")
        low, high = float(finite.min()), float(finite.max())
        if low < PLAUSIBLE_VELOCITY_MPS[0] or high > PLAUSIBLE_VELOCITY_MPS[1]:
            unit = ""
            if high < 20.0:
                unit = " They look like km/s: multiply by 1000."
            elif low > 1000.0 * PLAUSIBLE_VELOCITY_MPS[0] / 1.0 and high < 1000.0 * PLAUSIBLE_VELOCITY_MPS[1]:
                unit = " They look like mm/s: divide by 1000."
            raise UserError(
                f"{where}: values {low:g}..{high:g}; expected m/s within {PLAUSIBLE_VELOCITY_MPS[0]:g}.."
                f"{PLAUSIBLE_VELOCITY_MPS[1]:g}.{unit}"
            )
        columns = velocity.shape[1]
        if map_xy is not None:
            x_m = frame.along(*map_xy)
        if x_m is None:
            x_m = np.arange(columns) * grid_spacing_m
        x_m = np.asarray(x_m, np.float64).ravel()
        if x_m.shape != (columns,):
            raise UserError(
                f"{where}: {x_m.size} column positions for {columns} columns; give one position per column."
            )
        order = np.argsort(x_m, kind="stable")
        if np.any(np.diff(x_m[order]) <= 0):
            raise UserError(f"{where}: two columns share a lateral position; one per position is needed.")
        self.along = x_m[order]
        self.values = velocity[:, order].astype(np.float32)

    @staticmethod
    def _load(path: Path):
        suffix = path.suffix.lower()
        names = ("velocity_mps", "x_m", "map_x_m", "map_y_m", "depth_m")
        if suffix == ".npy":
            return np.load(path, allow_pickle=False), None, None, None
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                found = {name: arrays[name] for name in arrays.files}
        else:
            found = {}
            with h5py.File(path, "r") as h5:
                for name in names:
                    if name in h5 and isinstance(h5[name], h5py.Dataset):
                        found[name] = h5[name][()]
                if "velocity_mps" not in found:
                    two_d = []
                    h5.visititems(
                        lambda key, item: (
                            two_d.append(key) if isinstance(item, h5py.Dataset) and item.ndim == 2 else None
                        )
                    )
                    if len(two_d) == 1:
                        found["velocity_mps"] = h5[two_d[0]][()]
                    found["_candidates"] = two_d
        velocity = found.get("velocity_mps")
        if velocity is None:
            candidates = found.pop("_candidates", None) or [k for k in found if k not in names]
            if suffix == ".npz" and len(found) == 1:
                velocity = next(iter(found.values()))
            else:
                raise UserError(
                    f"True velocity {path}: no 'velocity_mps' array"
                    + (
                        f" and {len(candidates)} other candidates ({', '.join(map(str, candidates[:5]))})"
                        if candidates
                        else ""
                    )
                    + ". Name the (depth, x) section 'velocity_mps'."
                )
        map_xy = None
        if "map_x_m" in found and "map_y_m" in found and "x_m" not in found:
            map_xy = (np.asarray(found["map_x_m"], np.float64), np.asarray(found["map_y_m"], np.float64))
        return velocity, found.get("x_m"), map_xy, found.get("depth_m")

    def window(self, x_m: np.ndarray) -> np.ndarray:
        """``(depth, len(x_m))`` true velocity at along-line positions ``x_m`` (NaN outside the truth)."""
        x_m = np.asarray(x_m, dtype=np.float64)
        position = np.clip(np.searchsorted(self.along, x_m), 1, max(1, len(self.along) - 1))
        left = np.clip(position - 1, 0, len(self.along) - 1)
        right = np.clip(position, 0, len(self.along) - 1)
        span = self.along[right] - self.along[left]
        fraction = np.where(span > 0, (x_m - self.along[left]) / np.where(span > 0, span, 1.0), 0.0)
        result = self.values[:, left] * (1 - fraction[None, :]) + self.values[:, right] * fraction[None, :]
        outside = (x_m < self.along[0] - 1e-3) | (x_m > self.along[-1] + 1e-3)
        result[:, outside] = np.nan
        return result.astype(np.float32)


def open_truth(path: str | Path, frame, depth_cells: int, grid_spacing_m: float):
    """A true velocity section for ``--truth``: SEG-Y (``TruthSection``), or ``.npy``/``.npz``/HDF5
    (``ArrayTruth``), chosen by the file's suffix."""
    if Path(path).suffix.lower() in ArrayTruth.SUFFIXES:
        return ArrayTruth(path, frame, depth_cells, grid_spacing_m)
    return TruthSection(path, frame, depth_cells, grid_spacing_m)


__all__ = [
    "ArrayTruth",
    "BLOCK_COLUMNS",
    "PLAUSIBLE_VELOCITY_MPS",
    "open_truth",
    "FORMAT",
    "SCHEMA_VERSION",
    "SectionWriter",
    "TruthSection",
    "read_section",
    "write_previews",
    "write_section_segy",
]
