"""benchmarks/general_run.py: the general recipe's wall clock and per-family test metrics are written from a
record of the run, never typed in; the targets' verdict follows the figures."""

from __future__ import annotations

import json

from benchmarks import default_run, general_run
from tests.conftest import REPO_ROOT

SUMMARY = {
    "epochs": {"configured": 60, "planned": 25, "run": 25, "best": 24, "stopped_early": False, "budget_cut": True},
    "phases_s": {"data": 900.4, "setup": 4.0, "first_epoch": 150.0, "steady_epoch_median": 100.0,
                 "compilation_estimate": 50.0, "epochs": 2500.0, "evaluation": 30.2, "bundle_and_registry": 9.0,
                 "total": 3450.0},
    "epoch_times_s": [150.0, 98.0, 104.0],
    "test_metrics": {"velocity_ssim": 0.71, "velocity_mae_mps": 250.4, "velocity_mae": 0.16},
    "test_metrics_per_family": {"salt": {"velocity_ssim": 0.6512, "velocity_mae_mps": 401.2},
                                "flatvel-a": {"velocity_ssim": 0.8712, "velocity_mae_mps": 90.3}},
    "registered_model": "seisinvert-general",
    "model_version": "1",
    "budget_s": {"max_total_time_s": 3600.0},
}  # fmt: skip
LOAD = {"time_utc": "2026-12-06T01:00:00Z", "uptime": "load average: 0.5", "loadavg": [0.5, 0.5, 0.5]}


def _record(**changes):
    record = general_run.general_record(SUMMARY, ["python", "-m", "pipeline.train"], "", 3460.0, LOAD, LOAD)
    return {**record, **changes}


def test_the_block_states_the_run_and_judges_it_against_the_targets():
    record = _record()
    assert record["test_metrics_per_family"]["flatvel-a"] == {
        "velocity_ssim": 0.8712,
        "velocity_mae_mps": 90.3,
    }
    text = general_run.block(record)
    for part in (
        "**57 min 40 s** in all (data 900 s, 25 epochs of 60 configured (the time budget), 98–104 s each",
        "FlatVel-A **SSIM 0.871**",
        "(at most 60 minutes, data included; FlatVel-A SSIM ≥ 0.85): both met.",
        "| flatvel-a | 0.871 | 90 |",
        "| salt | 0.651 | 401 |",
    ):
        assert part in text, (part, text)
    assert text.index("| flatvel-a |") < text.index("| salt |")  # families in order
    slow = general_run.block(_record(wall_s=3700.0))
    assert "not met: 61 min 40 s > 60 min." in slow
    worse = {
        **SUMMARY,
        "test_metrics_per_family": {"flatvel-a": {"velocity_ssim": 0.80, "velocity_mae_mps": 1}},
    }
    record = general_run.general_record(worse, ["python"], "", 100.0, LOAD, LOAD)
    assert "not met: FlatVel-A SSIM 0.800 < 0.85." in general_run.block(record)
    # A run without per-family metrics (one family) cannot claim the FlatVel-A target.
    single = general_run.general_record(
        {**SUMMARY, "test_metrics_per_family": {}}, ["p"], "", 100.0, LOAD, LOAD
    )
    assert "not met: FlatVel-A SSIM nan < 0.85" in general_run.block(single)


def test_the_committed_block_matches_the_committed_record():
    training = (REPO_ROOT / "docs" / "training.md").read_text()
    path = REPO_ROOT / "docs" / "general_run.json"
    record = json.loads(path.read_text()) if path.exists() else None
    assert default_run.replace_block(training, general_run.block(record), general_run.BLOCK) == training


def test_the_wide_layers_block_matches_its_record():
    training = (REPO_ROOT / "docs" / "training.md").read_text()
    record = json.loads((REPO_ROOT / "docs" / "general_wide_run.json").read_text())
    assert record["command"].endswith("--record docs/general_wide_run.json --block general_wide_run")
    text = general_run.block(record, "general_wide_run.json")
    assert "[docs/general_wide_run.json](general_wide_run.json)" in text
    assert default_run.replace_block(training, text, "general_wide_run") == training
