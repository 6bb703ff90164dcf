"""Step 3: comparing the line with the model's window (``check_geometry``) and saying what fixes each
difference.

Part of ``pipeline.windows``. Every mismatch (time axis, depths, window positions that need regridding) is
listed with the option that fixes it and its cost (``GeometryCheck.message``); a line shorter than one
window, or where no window position matches the layout, is refused with the setting that would let the
closest position through. The windows themselves are placed by ``pipeline.windows.plan``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from core.errors import UserError
from pipeline.windows.config import LineConfig, RegridConfig, WindowConfig
from pipeline.windows.layout import ModelLayout
from pipeline.windows.plan import (
    EXACT,
    REGRID,
    Tolerances,
    WindowPlan,
    WindowStatus,
    choose_windows,
    coverage,
    grid_origin_m,
    resolve_tolerances,
    window_status,
)
from pipeline.windows.survey_line import SurveyLine

logger = logging.getLogger(__name__)

#: Slowest velocity used to express a position error as a time error in messages (water, m/s).
_SLOW_VELOCITY_MPS = 1500.0


@dataclass(frozen=True)
class Mismatch:
    """One difference between the survey and the model geometry, and what would fix it."""

    what: str
    fix: str
    fixed_by_regrid: bool

    def describe(self) -> str:
        return f"{self.what} (fix: {self.fix})"


@dataclass
class GeometryCheck:
    """The outcome of comparing a line with a model: the mismatches found and, if usable, the plan."""

    mismatches: list[Mismatch]
    plan: WindowPlan | None
    regrid_enabled: bool
    refusal: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> list[Mismatch]:
        return [m for m in self.mismatches if not (m.fixed_by_regrid and self.regrid_enabled)]

    def message(self) -> str:
        parts = []
        if self.refusal:
            parts.append(self.refusal)
        blocking = self.blocking
        if blocking:
            listed = "; ".join(f"({i + 1}) {m.describe()}" for i, m in enumerate(blocking))
            parts.append(f"The survey's geometry differs from the model's training geometry: {listed}.")
        return " ".join(parts)

    def raise_if_refused(self) -> WindowPlan:
        if self.refusal or self.blocking or self.plan is None:
            raise UserError(self.message())
        return self.plan


def check_geometry(
    line: SurveyLine,
    layout: ModelLayout,
    line_config: LineConfig = LineConfig(),
    regrid: RegridConfig = RegridConfig(),
    window_config: WindowConfig = WindowConfig(),
) -> GeometryCheck:
    """Compares the line with the model's window layout and plans the windows.

    Every mismatch is listed with the option that fixes it; ``GeometryCheck.raise_if_refused`` raises one
    ``UserError`` listing all of those not fixed. The plan uses exact windows only unless regridding is
    enabled.
    """
    tolerances = resolve_tolerances(layout, line_config, regrid)
    mismatches, time_resampled = _time_axis_mismatches(line, layout)
    depth_mismatches, warnings = _depth_mismatches(line, layout, tolerances)
    mismatches += depth_mismatches

    # --- Windows ---
    spacing = layout.grid_spacing_m
    source_span = float(np.ptp(layout.source_x_m))
    line_span = float(np.ptp(line.shot_x_m)) if line.num_shots else 0.0
    window_width_m = (layout.width_cells - 1) * spacing
    if line.num_shots < layout.num_shots or line_span + tolerances.shot < source_span:
        refusal = (
            f"The line is shorter than one window: its {line.num_shots} shot(s) span {line_span:g} m "
            f"(x = {line.shot_x_m.min():g}..{line.shot_x_m.max():g} m), the model's {layout.num_shots} shots span "
            f"{source_span:g} m over a {window_width_m:g} m window. Use a longer line or a model trained on a "
            "shorter window (no setting overrides this: a window needs shots across the model's whole layout)."
        )
        return GeometryCheck(mismatches, None, regrid.enabled, refusal, warnings)

    origin = grid_origin_m(line, layout, window_config)
    first = math.ceil((line.shot_x_m.min() - layout.source_x_m.min() - origin - tolerances.shot) / spacing)
    last = math.floor((line.shot_x_m.max() - layout.source_x_m.max() - origin + tolerances.shot) / spacing)
    candidates = np.arange(first, last + 1, dtype=np.int64)
    status = window_status(line, layout, origin, candidates, tolerances, regrid)

    exact = status.kind == EXACT
    usable = exact | (status.kind == REGRID)
    if not usable.any():
        refusal = (
            f"No window position along the line matches the model's layout (shots at x = "
            f"{', '.join(f'{s:g}' for s in layout.source_x_m)} m and {layout.num_receivers} receivers at "
            f"x = {layout.receiver_x_m.min():g}..{layout.receiver_x_m.max():g} m within each window), even with "
            f"--regrid tolerances (shots within {tolerances.shot:g} m, receiver gaps up to {tolerances.gap:g} m): "
            f"{status.summary()}. The survey's shot or receiver spacing does not fit the model's layout"
            f"{_overrides(status, regrid.receivers)}."
        )
        return GeometryCheck(mismatches, None, regrid.enabled, refusal, warnings)

    allowed = usable if regrid.enabled else exact
    step = window_config.step_cells or max(1, layout.width_cells // 2)
    worst_offset = np.max(np.abs(status.shot_offset), axis=1)
    quality = np.where(
        worst_offset <= tolerances.exact, 0, np.where(worst_offset <= 0.5 * spacing + 1e-9, 1, 2)
    )
    regrid_fix = (
        f"--regrid, i.e. --set regrid.enabled=true (nearest shot within {tolerances.shot:g} m, receivers "
        f"{'interpolated linearly' if regrid.receivers == 'linear' else 'nearest'})"
    )
    if not regrid.enabled and (usable & ~exact).any():
        covered_exact = coverage(candidates[exact], layout.width_cells)
        covered_all = coverage(candidates[usable], layout.width_cells)
        if covered_all > covered_exact:
            regrid_only = usable & ~exact
            # What the plan --regrid would choose needs (not every usable position: most are never used).
            would_choose = np.isin(candidates, choose_windows(candidates[usable], step, quality[usable]))
            would_regrid = would_choose & ~exact
            if not would_regrid.any():
                would_regrid = regrid_only
            what = (
                f"{int(regrid_only.sum())} of {len(candidates)} window positions need regridding "
                f"({_regrid_needs(status, would_regrid, tolerances)}); exact windows cover {covered_exact} of "
                f"{covered_all} columns"
            )
            fix = regrid_fix + _regrid_cost(status, would_regrid)
            if covered_exact < 0.9 * covered_all:
                mismatches.append(Mismatch(what, fix, True))
            else:  # nearly all of the line without regridding: use it, say what regridding would add
                warnings.append(f"{what}: the section covers the exact windows only (more with {fix})")
    if not allowed.any():
        return GeometryCheck(mismatches, None, regrid.enabled, None, warnings)

    chosen = choose_windows(candidates[allowed], step, quality[allowed])
    chosen_mask = np.isin(candidates, chosen)
    if regrid.enabled and (chosen_mask & ~exact).any():
        regridded = chosen_mask & ~exact
        mismatches.append(
            Mismatch(
                f"{int(regridded.sum())} of {len(chosen)} windows regridded "
                f"({_regrid_needs(status, regridded, tolerances)})",
                regrid_fix + _regrid_cost(status, regridded),
                True,
            )
        )
    first_column = int(chosen[0])
    plan = WindowPlan(
        origin_m=origin + first_column * spacing,
        grid_spacing_m=spacing,
        num_columns=int(chosen[-1] - first_column + layout.width_cells),
        width=layout.width_cells,
        column_start=(chosen - first_column).astype(np.int64),
        shot_index=status.shot_index[chosen_mask],
        shot_offset_m=status.shot_offset[chosen_mask],
        receivers_interpolated=status.interpolated[chosen_mask],
        time_resampled=time_resampled,
    )
    gaps = plan.uncovered_columns()
    if gaps.size:
        logger.warning(
            "No window matches over %d section column(s) (first at x = %.1f m): the section is NaN there.",
            gaps.size,
            plan.column_x_m(gaps[:1])[0],
        )
    return GeometryCheck(mismatches, plan, regrid.enabled, None, warnings)


def _time_axis_mismatches(line: SurveyLine, layout: ModelLayout) -> tuple[list[Mismatch], bool]:
    """Each file's sample interval and trace length against the model's; and whether time is resampled."""
    mismatches: list[Mismatch] = []
    model_duration = (layout.num_samples - 1) * layout.sample_interval_s
    time_resampled = False
    for survey_file in line.files:
        name = survey_file.path.name
        if abs(survey_file.sample_interval_s - layout.sample_interval_s) > 1e-9:
            time_resampled = True
            mismatches.append(
                Mismatch(
                    f"{name}: sample interval {survey_file.sample_interval_s * 1e3:g} ms instead of the model's "
                    f"{layout.sample_interval_s * 1e3:g} ms",
                    "--regrid, i.e. --set regrid.enabled=true (band-limited resampling with "
                    "scipy.signal.resample_poly; cost: "
                    + (
                        f"frequencies above the model's Nyquist {0.5 / layout.sample_interval_s:g} Hz are removed)"
                        if survey_file.sample_interval_s < layout.sample_interval_s
                        else "none beyond the survey's own band)"
                    ),
                    True,
                )
            )
        duration = (survey_file.num_samples - 1) * survey_file.sample_interval_s
        # Samples after resampling (resample_poly returns ceil(n * up / down)); different = cut or padded.
        resampled = math.ceil(
            survey_file.num_samples * survey_file.sample_interval_s / layout.sample_interval_s - 1e-9
        )
        if resampled != layout.num_samples:
            time_resampled = True
            what = (
                "cut to"
                if resampled > layout.num_samples
                else "zero-padded to (the late arrivals are missing)"
            )
            mismatches.append(
                Mismatch(
                    f"{name}: traces last {duration * 1e3:g} ms ({survey_file.num_samples} samples) instead of the "
                    f"model's {model_duration * 1e3:g} ms ({layout.num_samples} samples)",
                    f"--regrid, i.e. --set regrid.enabled=true ({what} {layout.num_samples} samples)",
                    True,
                )
            )
    return mismatches, time_resampled


def _depth_mismatches(
    line: SurveyLine, layout: ModelLayout, tolerances: Tolerances
) -> tuple[list[Mismatch], list[str]]:
    """Source and receiver depths against the model's: they cannot be regridded; within
    ``tolerances.depth`` (one cell) they are accepted with a warning. Returns ``(mismatches, warnings)``."""
    mismatches: list[Mismatch] = []
    warnings: list[str] = []
    for label, survey_depths, model_depths in (
        ("source", line.shot_depth_m, layout.source_depth_m),
        ("receiver", line.receiver_depth_m, layout.receiver_depth_m),
    ):
        deviation = np.min(
            np.abs(np.asarray(survey_depths, np.float64)[:, None] - model_depths[None, :]), axis=1
        )
        if not deviation.size or deviation.max() <= tolerances.exact:
            continue
        worst = float(deviation.max())
        what = (
            f"{label} depths {np.min(survey_depths):g}..{np.max(survey_depths):g} m below the datum in the "
            f"headers instead of the model's {', '.join(f'{d:g}' for d in np.unique(model_depths))} m"
            + (" (zero depths: often headers left unset)" if not np.any(survey_depths) else "")
        )
        cost = (
            f"the network and the QC place the {label}s at the model's depth, so arrivals may be off by up to "
            f"{time_cost(worst)} per leg"
        )
        if worst <= tolerances.depth + 1e-9:
            warnings.append(
                f"{what}: accepted (within line.depth_tolerance_m = {tolerances.depth:g} m); {cost}."
            )
            continue
        mismatches.append(
            Mismatch(
                what,
                "none by regridding: use a model trained with these depths, or accept the difference with "
                f"--set line.depth_tolerance_m={ceil_cm(worst)} ({cost})",
                False,
            )
        )
    return mismatches, warnings


def ceil_cm(value_m: float) -> str:
    """A tolerance for a ``--set`` value: metres rounded up to the centimetre, so that it admits ``value_m``."""
    return f"{math.ceil(value_m * 100 - 1e-6) / 100:g}"


def time_cost(distance_m: float) -> str:
    return f"{1e3 * distance_m / _SLOW_VELOCITY_MPS:.1f} ms at {_SLOW_VELOCITY_MPS:g} m/s"


def _regrid_cost(status: WindowStatus, which: np.ndarray) -> str:
    """What regridding costs the windows ``which``: how far shots move, whether receivers are interpolated."""
    offsets = np.abs(status.shot_offset[which])
    costs = []
    if offsets.size and offsets.max() > 0:
        costs.append(
            f"shots used up to {offsets.max():.2f} m from the model's positions (median "
            f"{np.median(offsets):.2f} m; reported per shot in the section's windows/shot_offset_m): their "
            f"near-offset arrivals are off by up to {time_cost(float(offsets.max()))}"
        )
    if status.interpolated[which].any():
        costs.append("interpolated receivers smooth the wavefield between the recorded ones")
    return f"; cost: {' and '.join(costs)}" if costs else ""


def _overrides(status: WindowStatus, receivers: str = "linear") -> str:
    """The settings that would let the closest refused window position through, with their cost."""
    options = []
    if np.isfinite(status.needed_shot_tolerance_m):
        distance = status.needed_shot_tolerance_m
        options.append(
            f"--set regrid.shot_tolerance_m={ceil_cm(distance)} admits the closest position (cost: shots used up "
            f"to {distance:.2f} m from the model's positions, near-offset arrivals off by up to "
            f"{time_cost(distance)})"
        )
    if np.isfinite(status.needed_receiver_gap_m) and receivers == "nearest":
        distance = status.needed_receiver_gap_m
        options.append(
            f"--set regrid.receiver_tolerance_m={ceil_cm(distance)} admits the nearest recorded receivers up to "
            f"{distance:g} m away (cost: traces used up to {distance:g} m from their model positions, arrivals "
            f"off by up to {time_cost(distance)})"
        )
    elif np.isfinite(status.needed_receiver_gap_m):
        gap = status.needed_receiver_gap_m
        options.append(
            f"--set regrid.max_receiver_gap_m={ceil_cm(gap)} admits receivers interpolated across {gap:g} m gaps "
            "(cost: the wavefield between them is a linear blend, aliased where it dips steeply)"
        )
    if not options:
        return " (no setting overrides this: the model's receivers lie outside what the shots recorded)"
    return "; override: " + "; or ".join(options)


def _regrid_needs(status: WindowStatus, which: np.ndarray, tolerances: Tolerances) -> str:
    offsets = np.abs(status.shot_offset[which])
    what = []
    if offsets.max() > tolerances.exact:
        what.append(f"shots up to {offsets.max():.2f} m from the model's shot positions")
    if status.interpolated[which].any():
        what.append("model receivers not recorded at their exact positions")
    return " and ".join(what)


__all__ = [
    "GeometryCheck",
    "Mismatch",
    "check_geometry",
]
