"""Survey geometry ↔ model geometry: reading a 2D line from trace headers, checks, regridding, sliding windows.

Pipeline position: the first step of ``pipeline.infer``. A trained model (``pipeline.bundle``) knows one
acquisition *window*: its shots and receivers at fixed positions over a velocity grid of ``grid_shape``
cells (``data_prep.schema.DatasetGeometry``, positions in metres from the grid's left edge). A survey is a
long 2D line of shots recorded by a fixed or moving spread. This module

1. reads the line's geometry from the SEG-Y trace headers (``read_survey_line``): shots grouped by a header
   key, source and receiver positions with their scalars projected onto the line's direction (a straight
   line at any azimuth), depths, sample interval and count per file. Only headers are kept in memory
   (20 bytes per trace once sorted); samples are read per window on demand.
2. slides the model's window along the line (``check_geometry`` places it, ``WindowPlan`` records it): window ``k`` starts at section column
   ``c_k``; its model shot ``i`` must be a survey shot at ``origin + c_k * dx + s_i`` and that shot must have
   recorded the model's receivers at ``origin + c_k * dx + r_j``. Positions match *exactly* within
   ``exact_tolerance_m`` (SEG-Y coordinates are centimetres) or, when regridding is allowed, through the
   nearest shot within ``shot_tolerance_m`` and receivers interpolated (or nearest) between recorded ones.
3. lists every mismatch with the option that fixes it (``GeometryCheck.message``) and refuses a line that
   is shorter than one window or where no window position matches the layout;
4. cuts each window's gathers out of the line and brings them onto the model's time axis and receivers
   (``WindowReader.read``): band-limited resampling (``scipy.signal.resample_poly`` through
   ``data_prep.regularization.resample_time``), receivers linearly interpolated or nearest.

The section grid: column ``c`` lies at along-line distance ``origin_m + c * grid_spacing_m``. ``origin_m``
defaults to the circular mean of the receiver positions modulo the grid spacing, so a line recorded on a
regular station grid is sampled exactly on it, and shots a few metres off do not move it.

The package, one module per step (import the public names from ``pipeline.windows``):

=================================  ===================================================================================
module                             holds
=================================  ===================================================================================
``pipeline.windows.config``        ``LineConfig``, ``RegridConfig``, ``WindowConfig``
``pipeline.windows.layout``        ``ModelLayout``: the model's window
``pipeline.windows.survey_line``   step 1: ``read_survey_line``, ``SurveyLine``, ``SurveyFile``, ``LineFrame``
``pipeline.windows.plan``          step 2: ``WindowPlan``, ``grid_origin_m``, candidate window starts and the choice
``pipeline.windows.check``         step 3: ``check_geometry``, ``GeometryCheck``, ``Mismatch``
``pipeline.windows.reader``        step 4: ``WindowReader``, ``SpanGathers`` (a window's shots over a wider span)
=================================  ===================================================================================
"""

from pipeline.windows.check import GeometryCheck, Mismatch, check_geometry
from pipeline.windows.config import LineConfig, RegridConfig, WindowConfig
from pipeline.windows.layout import ModelLayout
from pipeline.windows.plan import WindowPlan, grid_origin_m
from pipeline.windows.reader import SpanGathers, WindowReader
from pipeline.windows.survey_line import LineFrame, SurveyFile, SurveyLine, read_survey_line

__all__ = [
    "GeometryCheck",
    "LineConfig",
    "LineFrame",
    "Mismatch",
    "ModelLayout",
    "RegridConfig",
    "SpanGathers",
    "SurveyFile",
    "SurveyLine",
    "WindowConfig",
    "WindowPlan",
    "WindowReader",
    "check_geometry",
    "grid_origin_m",
    "read_survey_line",
]
