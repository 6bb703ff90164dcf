"""benchmarks/realistic.py: its arguments and its refusals (the scores themselves come from
``benchmarks.generalisation.velocity_scores``, tested there)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from benchmarks import realistic


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("marmousi=m.npy:4:12.5", ("marmousi", Path("m.npy"), 4.0, 12.5)),
        ("overthrust=/data/o.npy:20", ("overthrust", Path("/data/o.npy"), 20.0, 20.0)),
        ("c=C:/models/s.segy:10:25", ("c", Path("C:/models/s.segy"), 10.0, 25.0)),  # a ':' in the path
    ],
)
def test_sections_name_a_file_and_its_spacings(text, expected):
    assert realistic.parse_section(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("m.npy:4", "NAME=FILE:DZ"),
        ("marmousi=m.npy", "NAME=FILE:DZ"),
        ("marmousi=m.npy:0:12.5", "positive metres"),
    ],
)
def test_bad_sections_are_refused(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        realistic.parse_section(text)


def test_bundles_are_labelled_and_missing_sections_named(tmp_path):
    assert realistic.parse_bundle("general=runs/x/bundle") == ("general", Path("runs/x/bundle"))
    with pytest.raises(argparse.ArgumentTypeError, match="LABEL=DIR"):
        realistic.parse_bundle("runs/x/bundle")
    missing = tmp_path / "nowhere.npy"
    argv = ["--section", f"m={missing}:4", "--bundle", "b=x", "--baseline-data", "x.h5", "--no-write"]
    with pytest.raises(SystemExit, match=r"--section m: .*nowhere.npy does not exist"):
        realistic.main(argv)


def test_the_table_reports_both_baselines():
    row = {
        "section": "marmousi", "model": "general", "windows": 100, "mae_mps": 300.0, "ssim": 0.6,
        "baseline_mae_mps": 600.0, "baseline_ssim": 0.5, "skill": 0.5, "oracle_mae_mps": 150.0,
        "oracle_ssim": 0.75, "oracle_skill": -1.0, "bias_mps": -20.0, "faster_than_model_percent": 2.5,
    }  # fmt: skip
    settings = {
        "command": "python -m benchmarks.realistic ...",
        "machine": "m",
        "sections": ["marmousi (m.npy)"],
    }
    table = realistic.report(
        [row, {**row, "model": "wide", "mirror_mae_mps": 290.0, "mirror_ssim": 0.61}], settings
    )
    assert (
        "| marmousi | general | 100 | 300 | 0.600 | 600 / 0.500 | +0.50 | 150 / 0.750 | -1.00 | -20 | 2.5 % | – |"
        in table
    )
    assert (
        "| wide | 100 | 300 | 0.600 | 600 / 0.500 | +0.50 | 150 / 0.750 | -1.00 | -20 | 2.5 % | 290 / 0.610 |"
        in table
    )
