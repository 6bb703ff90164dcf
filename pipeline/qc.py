"""Physics QC of predicted velocity: re-simulate each window's gathers and measure the data misfit.

Pipeline position: ``pipeline.infer`` predicts a velocity model per window; here each prediction is put back
through the project's forward engine (``data_prep.forward.simulate``) with the engine settings recorded
with the training data (``ModelBundle.engine_settings``) and the model's window geometry, and the simulated
gathers are compared with the window's observed gathers. A network can return a plausible-looking model for
data it has never seen the like of; the data misfit says whether that model explains the recording.

Per window:

1. **Source correction** (``QCConfig.source_correction``): the survey's source wavelet and amplitude units
   are usually unknown, so before comparing, the simulated gathers ``s`` are matched to the observed ``d``
   (as recorded: the input correction of ``pipeline.input_correction`` is for the network only). ``"auto"``
   (default): ``"wavelet"`` when the input correction found another wavelet than training (data from
   elsewhere), else ``"scale"``. ``"scale"``: a least-squares scalar ``a = <d, s> / <s, s>``; ``"wavelet"`` a least-squares
   convolution filter ``F(f) = sum(D S*) / (sum |S|^2 + eps)`` over all traces of the window (frequency
   domain, ``eps`` = ``wavelet_damping`` x the peak of ``sum |S|^2``; the classic source-signature
   estimate of FWI, Pratt 1999), which also absorbs a different wavelet shape; ``"none"``: the survey was
   recorded with the training data's source and units (e.g. synthesised by this project).
2. **Data misfit** = ``||d - corrected s|| / ||d||`` (relative L2 over the window's traces): 0 is a perfect
   fit, 1 is no better than predicting silence.
3. **Velocity errors** when the true velocity is known (synthetic surveys): MAE, RMSE and largest absolute
   error in m/s, and MAE relative to the true velocity.
   Shots that ``--regrid`` took a whole number of cells from the model's position are simulated where they
   were fired (``source_shift_cells``).
4. **Flags**: ``misfit`` (misfit above ``misfit_threshold``, by default the measured floor of the source
   correction, ``MISFIT_FLOOR``: what the *true* model gives, plus ``misfit_margin``), ``velocity`` (MAE above
   ``velocity_mae_threshold_mps``), ``no_signal`` (the window's gathers are all zero), ``qc_failed``
   (the engine refused the model, e.g. a CFL violation; the reason is kept).

Predicted velocities are clipped to the training data's velocity range before simulation (a network with a
linear head may step outside it, and the engine's stability limit was chosen for that range); the number of
clipped cells is reported.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from data_prep.geometry import AcquisitionGeometry
from data_prep.wavelets import ricker
from pipeline.windows import ModelLayout

# data_prep.forward (the engine) imports Keras and its backend: it is imported where it is used, so that
# ``python -m pipeline.infer --help`` and the table/plot helpers stay light.

logger = logging.getLogger(__name__)

#: Names of the per-window QC values, in the order of the summary table and the HDF5 ``qc`` group.
QC_FIELDS = (
    "data_misfit",
    "source_scale",
    "velocity_mae_mps",
    "velocity_rmse_mps",
    "velocity_max_error_mps",
    "velocity_relative_mae",
    "clipped_cells",
)


#: The misfit floor: the data misfit of the *true* velocity model under each source correction, measured by
#: ``benchmarks/inference.py --foreign`` (``docs/benchmarks.md``, "Inference on lines from elsewhere") on
#: lines simulated with other wavelets than training (12, 15 and 20 Hz Rickers, delays of +20, +15 and
#: -10 ms, two of three reversed), shots every 170 m regridded onto OpenFWI's layout (moved shots simulated
#: where they were fired), input correction on: per-window misfit 0.02-0.03 with ``wavelet`` for the 12 and
#: 15 Hz lines and 0.10 for the 20 Hz line (the training wavelet's band cannot be filtered into a higher
#: one); with ``scale`` 0.02-0.03 on a line with the training wavelet (where ``auto`` chooses ``scale``; on
#: a foreign wavelet ``scale`` gives 0.89-1.0 and is no floor). The largest value is used. A perfect model
#: does not go below it: a window is flagged only when its misfit exceeds the floor by
#: ``QCConfig.misfit_margin``. A line from another engine (sources at another depth, a free surface, ...)
#: has a higher floor: measure it on a synthetic line made like the survey and set ``qc.misfit_floor``.
MISFIT_FLOOR = {"wavelet": 0.1, "scale": 0.1, "none": 0.1}


@dataclass(frozen=True)
class QCConfig:
    """Physics QC settings.

    Attributes:
        enabled: re-simulate and compute the misfit (velocity errors against a truth are computed anyway).
        source_correction: ``"auto"`` (default): ``"wavelet"`` when the input correction
            (``pipeline.input_correction``) finds the line recorded with another wavelet than training
            (reversed polarity, a delay of a sample or more, a phase rotation), else ``"scale"``;
            or ``"scale"``, ``"wavelet"`` or ``"none"`` (see the module docstring).
        wavelet_damping: relative stabilisation of the ``"wavelet"`` filter estimate.
        misfit_floor: the misfit a correct model has under the source correction used. None: the measured
            ``MISFIT_FLOOR`` of that correction.
        misfit_margin: windows are flagged when their misfit exceeds the floor by more than this.
        misfit_threshold: windows whose data misfit exceeds it are flagged. None: ``misfit_floor +
            misfit_margin``.
        velocity_mae_threshold_mps: windows whose velocity MAE against the truth exceeds it are flagged.
        batch_windows: windows simulated per engine call.
    """

    enabled: bool = True
    source_correction: Literal["auto", "scale", "wavelet", "none"] = "auto"
    wavelet_damping: float = 1e-3
    misfit_floor: float | None = None
    misfit_margin: float = 0.15
    misfit_threshold: float | None = None
    velocity_mae_threshold_mps: float = 250.0
    batch_windows: int = 4

    def __post_init__(self) -> None:
        if self.batch_windows < 1:
            raise ValueError(f"qc.batch_windows must be at least 1. Received: {self.batch_windows}")
        if not self.wavelet_damping > 0:
            raise ValueError(f"qc.wavelet_damping must be positive. Received: {self.wavelet_damping}")
        if self.misfit_margin < 0:
            raise ValueError(f"qc.misfit_margin must not be negative. Received: {self.misfit_margin}")

    def resolved(self, recorded_elsewhere: bool) -> QCConfig:
        """A copy with ``source_correction``, ``misfit_floor`` and ``misfit_threshold`` made concrete.

        Args:
            recorded_elsewhere: the input correction found another wavelet than training's (``"auto"``
                then means ``"wavelet"``).
        """
        correction = self.source_correction
        if correction == "auto":
            correction = "wavelet" if recorded_elsewhere else "scale"
        floor = self.misfit_floor if self.misfit_floor is not None else MISFIT_FLOOR[correction]
        threshold = self.misfit_threshold if self.misfit_threshold is not None else floor + self.misfit_margin
        return dataclasses.replace(
            self, source_correction=correction, misfit_floor=float(floor), misfit_threshold=float(threshold)
        )


@dataclass
class EngineSetup:
    """What ``simulate`` needs to re-simulate one window like the training data."""

    geometry: AcquisitionGeometry
    config: Any  # data_prep.forward.EngineConfig
    wavelet: np.ndarray | None
    notes: list[str]

    def describe(self) -> dict[str, Any]:
        return {
            "engine": dataclasses.asdict(self.config),
            "peak_frequency_hz": self.geometry.peak_frequency_hz,
            "wavelet": "ricker (engine default)" if self.wavelet is None else "ricker (bundled delay)",
            "notes": list(self.notes),
        }


def engine_setup(layout: ModelLayout, settings: Mapping[str, Any] | None) -> EngineSetup:
    """The window geometry in grid cells and the engine settings, from a bundle's ``engine_settings``.

    Missing settings fall back to the engine's defaults, with a note (reported in the provenance).

    Raises:
        ValueError: source or receiver positions that are not on the velocity grid (a model trained on
            field data); QC then cannot simulate.
    """
    from data_prep.forward import EngineConfig

    settings = dict(settings or {})
    notes: list[str] = []
    spacing = layout.grid_spacing_m

    def cells(positions: np.ndarray, label: str) -> np.ndarray:
        values = np.asarray(positions, dtype=np.float64) / spacing
        rounded = np.round(values)
        if np.max(np.abs(values - rounded)) > 1e-3:
            raise ValueError(
                f"The model's {label} positions are not on its {spacing:g} m velocity grid, so the engine cannot "
                "re-simulate them."
            )
        return rounded.astype(int)

    source_cells = np.stack(
        [cells(layout.source_depth_m, "source"), cells(layout.source_x_m, "source")], axis=1
    )
    receiver_cells = np.stack(
        [cells(layout.receiver_depth_m, "receiver"), cells(layout.receiver_x_m, "receiver")], axis=1
    )
    peak = settings.get("peak_frequency_hz")
    if peak is None:
        peak = AcquisitionGeometry.peak_frequency_hz
        notes.append(f"peak frequency unknown: assumed {peak:g} Hz")
    geometry = AcquisitionGeometry(
        grid_shape=tuple(layout.grid_shape),
        grid_spacing_m=spacing,
        num_samples=layout.num_samples,
        sample_interval_s=layout.sample_interval_s,
        peak_frequency_hz=float(peak),
        source_cells=tuple(map(tuple, source_cells.tolist())),
        receiver_cells=tuple(map(tuple, receiver_cells.tolist())),
    )
    fields = {f.name for f in dataclasses.fields(EngineConfig)}
    arguments = {}
    for name in ("spatial_order", "absorbing_width_cells", "free_surface", "time_step_s", "ricker_delay_s"):
        if name in settings and settings[name] is not None and name in fields:
            arguments[name] = settings[name]
    missing = [n for n in ("spatial_order", "absorbing_width_cells", "free_surface") if n not in settings]
    if missing:
        notes.append(f"engine settings {', '.join(missing)} unknown: engine defaults used")
    if arguments.get("time_step_s") is not None:
        substeps = layout.sample_interval_s / arguments["time_step_s"]
        if abs(substeps - round(substeps)) > 1e-6:
            notes.append(
                f"recorded time step {arguments['time_step_s']} s does not divide the sample interval: ignored"
            )
            arguments.pop("time_step_s")
    config = EngineConfig(**arguments)
    wavelet = None
    if settings.get("wavelet", "ricker") != "ricker":
        notes.append(f"training wavelet {settings.get('wavelet')!r} is not a Ricker: a Ricker is simulated")
    delay = settings.get("ricker_delay_s")
    if delay is not None and "ricker_delay_s" not in fields:
        wavelet = ricker(float(peak), layout.num_samples, layout.sample_interval_s, delay_s=float(delay))
    return EngineSetup(geometry, config, wavelet, notes)


def simulate_windows(
    velocity_mps: np.ndarray,
    setup: EngineSetup,
    bounds_mps: tuple[float, float] | None,
    pad_to: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulated gathers ``(windows, shots, time, receivers)`` and clipped-cell counts ``(windows,)``.

    ``pad_to``: simulate batches of this many windows (repeating the last one), so that the engine sees one
    input shape and compiles once.
    """
    from data_prep.forward import simulate

    velocity = np.asarray(velocity_mps, dtype=np.float32)
    count = len(velocity)
    if pad_to is not None and count < pad_to:
        # One batch shape for every call: the engine compiles once per shape (seconds each time).
        velocity = np.concatenate([velocity, np.repeat(velocity[-1:], pad_to - count, axis=0)])
    if bounds_mps is not None:
        clipped = np.sum((velocity < bounds_mps[0]) | (velocity > bounds_mps[1]), axis=(1, 2))
        velocity = np.clip(velocity, *bounds_mps)
    else:
        clipped = np.zeros(len(velocity), dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # dispersion warnings: the training data had them too
        gathers = simulate(velocity, setup.geometry, setup.config, wavelet=setup.wavelet)
    return np.asarray(gathers, dtype=np.float32)[:count], clipped[:count].astype(np.int64)


@dataclass(frozen=True)
class SourceMatch:
    """The least-squares source correction of one window, as a linear operator on simulated gathers.

    ``apply`` maps simulated gathers ``(shots, time, receivers)`` to corrected ones; ``adjoint`` is its exact
    transpose (used by ``pipeline.refine`` to turn a data residual into the adjoint source of the engine).

    Attributes:
        method: ``"scale"``, ``"wavelet"`` or ``"none"``.
        scale: the least-squares scalar (``"scale"``), the filter's gain ``||F * s|| / ||s||`` on the
            gathers it was estimated from (``"wavelet"``), or 1 (``"none"``).
        filter_spectrum: ``"wavelet"`` only: the filter ``F`` on the ``rfft`` bins of ``2 x num_samples``
            (zero-padded, so it is a linear, not a circular, convolution).
    """

    method: str
    scale: float
    filter_spectrum: np.ndarray | None = None

    def apply(self, simulated: np.ndarray) -> np.ndarray:
        simulated = np.asarray(simulated, np.float64)
        if self.filter_spectrum is None:
            return self.scale * simulated if self.method != "none" else simulated
        return self._filter(simulated, self.filter_spectrum)

    def adjoint(self, residual: np.ndarray) -> np.ndarray:
        residual = np.asarray(residual, np.float64)
        if self.filter_spectrum is None:
            return self.scale * residual if self.method != "none" else residual
        # Zero-pad, circular correlation with F, truncate: the transpose of pad, convolve, truncate.
        return self._filter(residual, np.conj(self.filter_spectrum))

    @staticmethod
    def _filter(gathers: np.ndarray, spectrum: np.ndarray) -> np.ndarray:
        num_samples = gathers.shape[1]
        length = 2 * num_samples
        filtered = np.fft.irfft(
            np.fft.rfft(gathers, n=length, axis=1) * spectrum[None, :, None], n=length, axis=1
        )
        return filtered[:, :num_samples]


def match_source(
    observed: np.ndarray, simulated: np.ndarray, method: str, damping: float = 1e-3
) -> SourceMatch:
    """Estimates the source correction that matches ``simulated`` to ``observed`` (see the module docstring).

    ``observed``/``simulated``: ``(shots, time, receivers)``.
    """
    observed = np.asarray(observed, np.float64)
    simulated = np.asarray(simulated, np.float64)
    if method == "none":
        return SourceMatch("none", 1.0)
    energy = float(np.sum(simulated * simulated))
    if method == "scale":
        return SourceMatch("scale", float(np.sum(observed * simulated)) / energy if energy > 0 else 0.0)
    if method == "wavelet":
        length = 2 * simulated.shape[1]  # zero padding: the filter is a linear, not circular, convolution
        spectrum_s = np.fft.rfft(simulated, n=length, axis=1)
        spectrum_d = np.fft.rfft(observed, n=length, axis=1)
        cross = np.sum(spectrum_d * np.conj(spectrum_s), axis=(0, 2))
        power = np.sum(np.abs(spectrum_s) ** 2, axis=(0, 2))
        peak = float(power.max()) if power.size else 0.0
        filter_spectrum = cross / (power + damping * peak) if peak > 0 else np.zeros_like(cross)
        match = SourceMatch("wavelet", 0.0, filter_spectrum)
        gain = float(np.sqrt(np.sum(match.apply(simulated) ** 2) / energy)) if energy > 0 else 0.0
        return dataclasses.replace(match, scale=gain)
    raise ValueError(f"Unknown source correction {method!r}: use 'scale', 'wavelet' or 'none'.")


def source_correction(
    observed: np.ndarray, simulated: np.ndarray, method: str, damping: float = 1e-3
) -> tuple[np.ndarray, float]:
    """Matches simulated gathers to observed ones; returns ``(corrected, scale)``.

    ``observed``/``simulated``: ``(shots, time, receivers)``. ``scale`` is the least-squares scalar for
    ``"scale"``, the filter's gain ``||F * s|| / ||s||`` for ``"wavelet"``, 1 for ``"none"``
    (``match_source`` gives the correction itself).
    """
    match = match_source(observed, simulated, method, damping)
    return match.apply(simulated), match.scale


def data_misfit(observed: np.ndarray, corrected: np.ndarray) -> float:
    """``||d - s|| / ||d||``; NaN when the observed window is all zero."""
    observed = np.asarray(observed, np.float64)
    norm = float(np.sqrt(np.sum(observed * observed)))
    if norm == 0:
        return float("nan")
    return float(np.sqrt(np.sum((observed - np.asarray(corrected, np.float64)) ** 2)) / norm)


def velocity_errors(predicted_mps: np.ndarray, true_mps: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, largest absolute error (m/s) and relative MAE over the cells where the truth is finite."""
    predicted = np.asarray(predicted_mps, np.float64)
    truth = np.asarray(true_mps, np.float64)
    valid = np.isfinite(truth) & np.isfinite(predicted)
    if not valid.any():
        return {
            k: float("nan")
            for k in (
                "velocity_mae_mps",
                "velocity_rmse_mps",
                "velocity_max_error_mps",
                "velocity_relative_mae",
            )
        }
    error = predicted[valid] - truth[valid]
    return {
        "velocity_mae_mps": float(np.mean(np.abs(error))),
        "velocity_rmse_mps": float(np.sqrt(np.mean(error**2))),
        "velocity_max_error_mps": float(np.max(np.abs(error))),
        "velocity_relative_mae": float(np.mean(np.abs(error) / truth[valid])),
    }


def window_flags(values: Mapping[str, float], config: QCConfig) -> list[str]:
    """The flags raised for one window's QC values."""
    flags = []
    if values.get("qc_error"):
        flags.append("qc_failed")
    misfit = values.get("data_misfit", float("nan"))
    threshold = config.resolved(recorded_elsewhere=False).misfit_threshold
    if np.isfinite(misfit) and misfit > threshold:
        flags.append("misfit")
    if values.get("no_signal"):
        flags.append("no_signal")
    mae = values.get("velocity_mae_mps", float("nan"))
    if np.isfinite(mae) and mae > config.velocity_mae_threshold_mps:
        flags.append("velocity")
    return flags


def shifted_setup(setup: EngineSetup, shift_cells: Sequence[int]) -> EngineSetup:
    """``setup`` with each source moved by ``shift_cells`` along x (clipped to the grid)."""
    geometry = setup.geometry.shift_sources(shift_cells)
    return setup if geometry is setup.geometry else dataclasses.replace(setup, geometry=geometry)


def _simulate_at_shot_positions(predicted_mps, setup, bounds_mps, pad_to, source_shift_cells):
    """``simulate_windows`` per group of windows whose shots lie at the same cells."""
    predicted_mps = np.asarray(predicted_mps, np.float32)
    if source_shift_cells is None or not np.any(np.asarray(source_shift_cells)):
        return simulate_windows(predicted_mps, setup, bounds_mps, pad_to=pad_to)
    shifts = [tuple(int(c) for c in s) for s in source_shift_cells]
    simulated = [None] * len(predicted_mps)
    clipped = np.zeros(len(predicted_mps), np.int64)
    for key in dict.fromkeys(shifts):
        members = [i for i, s in enumerate(shifts) if s == key]
        gathers, counts = simulate_windows(
            predicted_mps[members], shifted_setup(setup, key), bounds_mps, pad_to=pad_to
        )
        for row, index in enumerate(members):
            simulated[index], clipped[index] = gathers[row], counts[row]
    return np.stack(simulated), clipped


def window_qc(
    observed: Sequence[np.ndarray],
    predicted_mps: np.ndarray,
    setup: EngineSetup | None,
    config: QCConfig,
    bounds_mps: tuple[float, float] | None,
    truth_mps: Sequence[np.ndarray | None] | None = None,
    source_shift_cells: Sequence[Sequence[int]] | None = None,
) -> list[dict[str, Any]]:
    """QC values of a batch of windows.

    Args:
        observed: per window, ``(shots, time, receivers)`` gathers on the model's geometry, survey units.
        predicted_mps: ``(windows, depth, x)`` predicted velocity.
        setup: the engine setup (None: no re-simulation, only velocity errors).
        config: thresholds and source correction.
        bounds_mps: clip range for simulation (the training velocity range).
        truth_mps: per window the true ``(depth, x)`` velocity, or None.
        source_shift_cells: per window, ``(shots,)`` whole cells by which each survey shot lies off the
            model's position (``--regrid`` used the nearest shot): the window is simulated with its shots
            where they were fired (kept inside the grid). Without it a shot moved by one cell alone raised
            the true model's misfit from 0.03 to 0.34-0.42 (``benchmarks/inference.py --foreign``).

    Returns:
        One dict per window with ``QC_FIELDS`` (NaN where not computed), ``flags`` and ``qc_error``.
    """
    config = config.resolved(recorded_elsewhere=False)  # no-op when infer resolved it for the line
    count = len(predicted_mps)
    results: list[dict[str, Any]] = [
        {name: float("nan") for name in QC_FIELDS} | {"qc_error": ""} for _ in range(count)
    ]
    for index in range(count):
        results[index]["no_signal"] = not np.any(observed[index])
    if config.enabled and setup is not None:
        try:
            simulated, clipped = _simulate_at_shot_positions(
                predicted_mps, setup, bounds_mps, config.batch_windows, source_shift_cells
            )
        except ValueError as error:  # e.g. CFL violation: report it per window, keep going
            for result in results:
                result["qc_error"] = str(error)
        else:
            for index in range(count):
                corrected, scale = source_correction(
                    observed[index], simulated[index], config.source_correction, config.wavelet_damping
                )
                results[index]["data_misfit"] = data_misfit(observed[index], corrected)
                results[index]["source_scale"] = scale
                results[index]["clipped_cells"] = float(clipped[index])
    if truth_mps is not None:
        for index in range(count):
            if truth_mps[index] is not None:
                results[index].update(velocity_errors(predicted_mps[index], truth_mps[index]))
    for result in results:
        result["flags"] = window_flags(result, config)
    return results


# ----------------------------------------------------------------------------------------------------------
# Summary table and plot
# ----------------------------------------------------------------------------------------------------------


def summary_table(rows: Sequence[Mapping[str, Any]], max_rows: int = 20) -> str:
    """A plain-text QC table: one line per window (the worst ``max_rows`` by misfit when there are more)."""
    columns = [
        ("window", "{:>6d}", "window"),
        ("x_start_m", "{:>10.1f}", "x from m"),
        ("x_end_m", "{:>10.1f}", "x to m"),
        ("calibration_factor", "{:>11.4g}", "calibration"),
        ("source_scale", "{:>10.4g}", "src scale"),
        ("data_misfit", "{:>8.3f}", "misfit"),
        ("velocity_mae_mps", "{:>9.1f}", "MAE m/s"),
        ("flags", "{}", "flags"),
    ]
    shown = list(rows)
    note = ""
    if len(shown) > max_rows:
        shown = sorted(shown, key=lambda r: -np.nan_to_num(r.get("data_misfit", np.nan), nan=-1.0))[:max_rows]
        shown.sort(key=lambda r: r["window"])
        note = f"(the {max_rows} windows with the largest misfit of {len(rows)})\n"
    header = "  ".join(
        f"{title:>{max(len(title), 6)}}" if key != "flags" else title for key, _, title in columns
    )
    lines = [header]
    for row in shown:
        cells = []
        for key, fmt, title in columns:
            value = row.get(key)
            if key == "flags":
                cells.append(",".join(value) if value else "-")
                continue
            width = max(len(title), 6)
            if value is None or (isinstance(value, float) and not np.isfinite(value)):
                cells.append(f"{'-':>{width}}")
            else:
                cells.append(f"{fmt.format(value):>{width}}")
        lines.append("  ".join(cells))
    return note + "\n".join(lines)


def aggregate(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Line-wide QC numbers: medians, worst values and flag counts."""

    def finite(key):
        values = np.asarray([row.get(key, np.nan) for row in rows], dtype=np.float64)
        return values[np.isfinite(values)]

    result: dict[str, float] = {"num_windows": float(len(rows))}
    for key in ("data_misfit", "velocity_mae_mps", "calibration_factor"):
        values = finite(key)
        if values.size:
            result[f"{key}_median"] = float(np.median(values))
            result[f"{key}_max"] = float(values.max())
    result["num_flagged"] = float(sum(1 for row in rows if row.get("flags")))
    return result


def plot_qc(path, rows: Sequence[Mapping[str, Any]], config: QCConfig, title: str = "") -> None:
    """QC along the line: misfit per window (flagged windows marked), calibration factor, velocity MAE."""
    # A Figure of its own, not pyplot: switching pyplot's backend would turn off a notebook's inline plots.
    from matplotlib.figure import Figure

    centre = np.asarray([(row["x_start_m"] + row["x_end_m"]) / 2 for row in rows])
    misfit = np.asarray([row.get("data_misfit", np.nan) for row in rows], dtype=float)
    factor = np.asarray([row.get("calibration_factor", np.nan) for row in rows], dtype=float)
    mae = np.asarray([row.get("velocity_mae_mps", np.nan) for row in rows], dtype=float)
    flagged = np.asarray([bool(row.get("flags")) for row in rows])
    panels = 3 if np.isfinite(mae).any() else 2
    figure = Figure(figsize=(10, 2.4 * panels))
    axes = figure.subplots(panels, 1, sharex=True, squeeze=False)
    axes = axes[:, 0]
    axes[0].plot(centre, misfit, "o-", color="tab:blue", markersize=3, label="data misfit")
    if flagged.any():
        axes[0].plot(centre[flagged], misfit[flagged], "x", color="tab:red", markersize=8, label="flagged")
    config = config.resolved(recorded_elsewhere=False)
    axes[0].axhline(config.misfit_threshold, color="tab:red", linestyle="--", linewidth=1, label="threshold")
    axes[0].axhline(
        config.misfit_floor, color="tab:gray", linestyle=":", linewidth=1, label="floor (true model)"
    )
    axes[0].set_ylabel("||d - s|| / ||d||")
    axes[0].legend(loc="upper right", fontsize=8)
    positive = np.where(factor > 0, factor, np.nan)
    spread = np.nanmax(positive) / np.nanmin(positive) if np.isfinite(positive).any() else 1.0
    plot = axes[1].semilogy if spread > 10 else axes[1].plot  # log scale only when factors span decades
    plot(centre, positive, "o-", color="tab:green", markersize=3)
    axes[1].set_ylabel("calibration factor")
    if panels == 3:
        axes[2].plot(centre, mae, "o-", color="tab:purple", markersize=3)
        axes[2].axhline(config.velocity_mae_threshold_mps, color="tab:red", linestyle="--", linewidth=1)
        axes[2].set_ylabel("velocity MAE (m/s)")
    axes[-1].set_xlabel("window centre, along-line position (m)")
    if title:
        axes[0].set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")


__all__ = [
    "QC_FIELDS",
    "EngineSetup",
    "QCConfig",
    "SourceMatch",
    "aggregate",
    "data_misfit",
    "engine_setup",
    "match_source",
    "plot_qc",
    "simulate_windows",
    "source_correction",
    "summary_table",
    "velocity_errors",
    "window_flags",
    "window_qc",
]
