"""Standard trace headers: offset in metres (SEG-Y rev 1), and the signature that makes byte 233 a model id."""

from __future__ import annotations

import numpy as np
import segyio

from data_prep.segy_io import (
    SIGNATURE_LINE,
    header_convention,
    scan_segy,
    write_shot_gathers,
    write_velocity_models,
)
from tests.data_prep.segy_fixtures import encoded_seismic, layered_velocity, tiny_geometry

# What earlier versions of this project wrote (before the signature): version line and the byte-233 line.
PREVIOUS_VERSION_TEXT = (
    "C 1 SEISINVERT 0.1.0 - DEEP-LEARNING SEISMIC VELOCITY INVERSION".ljust(80)
    + "C21  37 OFFSET = GROUPX - SOURCEX (CM)".ljust(80)
    + "C22 233 MODEL ID (1-BASED) = MODEL INDEX + 1; GROUPS SHOTS OF ONE MODEL".ljust(80)
)


def test_segyio_reads_offset_in_metres_equal_to_group_x_minus_source_x(tmp_path):
    geometry = tiny_geometry()  # sources at x = 0 and 90 m, receivers at 0, 40, 90 m
    path = write_shot_gathers(tmp_path / "shots.segy", encoded_seismic(2, geometry), geometry, 0)
    with segyio.open(path, ignore_geometry=True) as f:
        offset = f.attributes(segyio.TraceField.offset)[:]
        source_x = f.attributes(segyio.TraceField.SourceX)[:]
        group_x = f.attributes(segyio.TraceField.GroupX)[:]
        scalar = f.attributes(segyio.TraceField.SourceGroupScalar)[:]
    assert np.all(scalar == -100), "coordinates in centimetres"
    assert np.array_equal(offset, (group_x - source_x) / 100), "offset = GroupX - SourceX in metres"
    # Per model: shot at 0 m then shot at 90 m, receivers at 0, 40, 90 m.
    assert offset.tolist() == [0, 40, 90, -90, -50, 0] * 2


def test_offset_is_rounded_to_whole_metres(tmp_path):
    geometry = tiny_geometry()
    from dataclasses import replace

    fine = replace(geometry, grid_spacing_m=2.5)  # receivers at 0, 10, 22.5 m; sources at 0, 22.5 m
    path = write_shot_gathers(tmp_path / "shots.segy", encoded_seismic(1, fine), fine, 0)
    with segyio.open(path, ignore_geometry=True) as f:
        offset = f.attributes(segyio.TraceField.offset)[:]
    # 22.5 m rounds half to even (22), -12.5 m to -12: whole metres, as byte 37 holds them.
    assert offset.tolist() == [0, 10, 22, -22, -12, 0]


def test_header_convention_tells_project_files_from_others(tmp_path):
    geometry = tiny_geometry()
    shots = write_shot_gathers(tmp_path / "s.segy", encoded_seismic(1, geometry), geometry, 0)
    velocity = write_velocity_models(tmp_path / "v.segy", layered_velocity(1, geometry), 10.0, 0)
    assert header_convention(scan_segy(shots).textual_header) == 2
    assert header_convention(scan_segy(velocity).textual_header) == 2
    assert header_convention(PREVIOUS_VERSION_TEXT) == 1, "earlier versions' files say so in their text"
    assert header_convention("C 1 CLIENT: ACME  LINE 42  SEG-Y REV 2".ljust(3200)) is None
    assert header_convention("C 1 SEISINVERT 0.1.0".ljust(3200)) is None, "a name alone is no convention"


def test_signature_survives_the_most_caller_lines(tmp_path):
    geometry = tiny_geometry()
    lines = "\n".join(f"USER LINE {i}" for i in range(36))
    shots = write_shot_gathers(
        tmp_path / "s.segy", encoded_seismic(1, geometry), geometry, 0, textual_header=lines
    )
    velocity = write_velocity_models(
        tmp_path / "v.segy", layered_velocity(1, geometry), 10.0, 0, textual_header=lines
    )
    for path in (shots, velocity):
        text = scan_segy(path).textual_header
        assert text.startswith("C 1 USER LINE 0")
        assert SIGNATURE_LINE in text and header_convention(text) == 2
    assert scan_segy(velocity).is_velocity_file, "DEPTH SAMPLES survives too"
