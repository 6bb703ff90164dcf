"""benchmarks/default_run.py: the README's default-run sentences come from a record, never typed in.

Fast tests of the pieces on fixture text and a fabricated record (the command found in the README, the
blocks rewritten, the record built from a run summary). One test runs the whole script end to end with the
quick config (``configs/train/quick.yaml``) into temporary copies of README.md and docs/training.md: that is
also CI's run of the main job, ``python -m pipeline.train --config configs/train/quick.yaml`` in a fresh
directory as a user runs it (default dataset synthesized there, ``./mlflow.db``, its dashboard line).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks import default_run
from tests.conftest import REPO_ROOT

FIXTURE = """# title

```bash
python3 -m venv .venv && . .venv/bin/activate && pip install -q -e ".[dev]" && python -m pipeline.train
python3 -m venv .venv && . .venv/bin/activate && pip install -q -e ".[dev]" && python -m pytest
```

before
<!-- BEGIN default_run -->
13 min 19 s, typed by hand
<!-- END default_run -->
after
"""

SUMMARY = {
    "run_id": "abc",
    "model": "unet-small",
    "dataset": "data/default-flatvel-a-1000-seed0.h5",
    "epochs": {
        "configured": 40,
        "planned": 12,
        "run": 12,
        "best": 11,
        "stopped_early": False,
        "budget_cut": True,
    },
    "phases_s": {
        "data": 150.2,
        "setup": 3.1,
        "first_epoch": 140.0,
        "steady_epoch_median": 40.0,
        "compilation_estimate": 100.0,
        "epochs": 600.0,
        "evaluation": 12.3,
        "bundle_and_registry": 8.0,
        "total": 773.6,
    },
    "epoch_times_s": [140.0, 38.0, 41.5, 40.0],
    "test_metrics": {
        "velocity_mae": 0.0612,
        "velocity_ssim": 0.9123,
        "velocity_mae_mps": 91.8,
        "velocity_rmse": 0.1,
        "edges_f1": 0.55,
    },
    "registered_model": "seisinvert-unet",
    "model_version": "1",
    "budget_s": {"max_total_time_s": 840.0, "max_train_time_s": None},
}


def _record():
    load = {
        "time_utc": "2026-12-06T01:00:00Z",
        "uptime": "up 1 day, load average: 0.10, 0.2, 0.3",
        "loadavg": [0.1, 0.2, 0.3],
    }
    return default_run.make_record(
        "python -m benchmarks.default_run",
        ["python", "-m", "pipeline.train"],
        SUMMARY,
        "epoch 1/12 ...\ndashboard: python -m pipeline.dashboard --store /tmp/x/mlflow.db\n",
        775.0,
        load,
        {**load, "loadavg": [0.9, 0.5, 0.3]},
    )


def test_the_command_is_the_readmes_first_training_command():
    assert default_run.readme_train_command(FIXTURE) == ["python", "-m", "pipeline.train"]
    assert default_run.readme_train_command((REPO_ROOT / "README.md").read_text())[:3] == [
        "python",
        "-m",
        "pipeline.train",
    ]
    with pytest.raises(ValueError, match="no quick-start line"):
        default_run.readme_train_command("# nothing here")


def test_the_block_is_replaced_and_nothing_else():
    text = default_run.replace_block(FIXTURE, "new sentence")
    assert (
        "13 min 19 s" not in text
        and "<!-- BEGIN default_run -->\nnew sentence\n<!-- END default_run -->" in text
    )
    assert text.replace("new sentence", "13 min 19 s, typed by hand") == FIXTURE
    with pytest.raises(ValueError, match="found 0"):
        default_run.replace_block("no block", "x")
    with pytest.raises(ValueError, match="found 2"):
        default_run.replace_block(FIXTURE + FIXTURE, "x")


def test_the_sentences_are_written_from_the_record():
    record = _record()
    assert record["dashboard"] == "python -m pipeline.dashboard --store /tmp/x/mlflow.db"
    assert record["machine"]["cores"] == os.cpu_count()
    sentence = default_run.readme_block(record)
    for text in (
        "`python -m benchmarks.default_run`",
        "**12 min 55 s**",
        "data 150 s",
        "first epoch 140 s",
        "12 epochs",
        "38–42 s each",
        "the time budget cut the 40 configured epochs to 12",
        "**SSIM 0.912**",
        "**MAE 0.061**",
        "(92 m/s), edge F1 0.55",
        "load 0.1 before, 0.9 after",
        "the targets (SSIM ≥ 0.80 and MAE ≤ 0.10 within 15 minutes): both met.",
    ):
        assert text in sentence, (text, sentence)
    assert "fixed wall clock (840 s, `max_total_time_s`)" in sentence
    slow = {**record, "wall_s": 950.0, "test_metrics": {**record["test_metrics"], "velocity_ssim": 0.7}}
    assert "not met: SSIM 0.700 < 0.80, 15 min 50 s > 15 min" in default_run.readme_block(slow)
    table = default_run.training_block(record)
    assert "| evaluation of the best epoch's weights on the test split | 12 s |" in table
    assert "| of which compilation, estimated (first epoch less the median epoch) | 100 s |" in table
    assert "`up 1 day, load average: 0.10, 0.2, 0.3`" in table


def test_without_a_record_the_blocks_say_so_and_name_the_command():
    assert default_run.readme_block(None).startswith(
        "*Not yet regenerated:* `python -m benchmarks.default_run`"
    )
    assert "Not yet regenerated" in default_run.training_block(None)


def test_the_committed_blocks_match_the_committed_record():
    """README.md and docs/training.md hold what the script writes from docs/default_run.json (or, without one,
    a block that names the command and says it has not run yet)."""
    record_path = REPO_ROOT / "docs" / "default_run.json"
    readme = (REPO_ROOT / "README.md").read_text()
    training = (REPO_ROOT / "docs" / "training.md").read_text()
    if not record_path.exists():
        for text in (readme, training):
            block = text.split("<!-- BEGIN default_run -->")[1].split("<!-- END default_run -->")[0]
            assert "Not yet regenerated" in block and "python -m benchmarks.default_run" in block
        return
    record = json.loads(record_path.read_text())
    assert default_run.replace_block(readme, default_run.readme_block(record, record["command"])) == readme
    assert (
        default_run.replace_block(training, default_run.training_block(record, record["command"])) == training
    )


def test_the_main_job_with_the_quick_config_end_to_end_through_the_script(tmp_path):
    """The README's first command with configs/train/quick.yaml, run by the script in a fresh directory, and the
    blocks written into copies of the docs. The record is the run's: 3 epochs, test metrics, the dashboard line
    the command printed (``python -m pipeline.dashboard``, the store being ``./mlflow.db`` there)."""
    readme, training = tmp_path / "README.md", tmp_path / "training.md"
    readme.write_text((REPO_ROOT / "README.md").read_text())
    training.write_text((REPO_ROOT / "docs" / "training.md").read_text())
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.default_run",
            "--config",
            "configs/train/quick.yaml",
            "--no-figures",
            "--record",
            str(tmp_path / "default_run.json"),
            "--readme",
            str(readme),
            "--training-md",
            str(training),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    record = json.loads((tmp_path / "default_run.json").read_text())
    assert record["command"] == "python -m benchmarks.default_run --config configs/train/quick.yaml"
    assert record["epochs"]["configured"] == 3 and record["epochs"]["run"] == 3
    assert record["dashboard"].startswith("python -m pipeline.dashboard"), record["dashboard"]
    assert 0 <= record["test_metrics"]["velocity_ssim"] <= 1
    assert default_run.readme_block(record, record["command"]) in readme.read_text()
    assert default_run.training_block(record, record["command"]) in training.read_text()


def test_a_kept_run_folder_starts_empty_and_a_temporary_one_is_removed(tmp_path):
    kept, cleanup = default_run.run_folder(tmp_path / "new", "x-")
    assert kept == (tmp_path / "new").resolve() and kept.is_dir() and cleanup is None
    (kept / "mlflow.db").write_text("")
    with pytest.raises(
        ValueError, match=r"--keep .*new is not empty: the run must start from an empty directory"
    ):
        default_run.run_folder(kept, "x-")
    folder, cleanup = default_run.run_folder(None, "seisinvert-test-")
    assert folder.is_dir() and not any(folder.iterdir())
    cleanup.cleanup()
    assert not folder.exists()
