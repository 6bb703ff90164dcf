"""Heavier inference tests (``-m slow``): a real process killed and resumed; a survey simulated at 0.5 ms."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pipeline.infer import InferConfig, infer
from pipeline.section import read_section
from pipeline.windows import RegridConfig
from tests.conftest import REPO_ROOT
from tests.pipeline import line_fixtures as F

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def line():
    return F.simulate_line()


def test_killed_process_resumes_and_gives_the_uninterrupted_section(tmp_path, line):
    """``kill -9`` a real ``python -m pipeline.infer`` after two windows; ``--resume`` finishes the others."""
    bundle = F.keras_bundle(tmp_path / "bundle")
    survey = F.write_line(tmp_path / "line.sgy", line)
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "pipeline.infer",
        "--model",
        str(bundle),
        "--input",
        str(survey),
        "--out",
        str(out),
        "--set",
        "batch_size=1",
        "--set",
        "qc.batch_windows=1",
        "--quiet",
    ]
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    windows = out / ".work" / "windows"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if windows.is_dir() and len(list(windows.glob("window_*.npz"))) >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, (
        f"the run ended before it could be killed: {process.communicate()[1][-2000:]}"
    )
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list(windows.glob("window_*.npz")))
    assert 2 <= done_before < 9 and not (out / "section.h5").exists()

    refused = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True)
    assert refused.returncode == 2 and "pass --resume" in refused.stderr

    resumed = subprocess.run(
        [*command, "--resume"], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{9 - done_before} predicted now, {done_before} reused" in resumed.stdout, resumed.stdout

    reference = infer([survey], str(bundle), tmp_path / "reference", InferConfig(), progress=False)
    resumed_section = read_section(out / "section.h5")
    reference_section = read_section(reference.section_path)
    np.testing.assert_allclose(resumed_section["velocity_mps"], reference_section["velocity_mps"], atol=0.01)
    np.testing.assert_allclose(
        resumed_section["windows"]["data_misfit"], reference_section["windows"]["data_misfit"], rtol=1e-4
    )


def test_survey_simulated_at_half_a_millisecond_is_resampled_onto_the_model(tmp_path, line):
    """The engine run at 0.5 ms, resampled with --regrid, is explained by the true model as the 1 ms line is.

    Measured misfits: 0.050-0.052 per window (the 1 ms line: 0.009-0.015); the difference is the engine's time
    step (0.5 ms here, 1 ms in the QC's re-simulation), not the resampling.
    """
    fine = F.simulate_line(sample_interval_s=0.0005, num_samples=2 * F.NUM_SAMPLES)
    path = F.write_line(tmp_path / "half_ms.sgy", fine)
    oracle = F.OracleBundle(line.velocity_mps)
    config = InferConfig(regrid=RegridConfig(enabled=True))
    result = infer([path], oracle, tmp_path / "run", config, progress=False)
    misfit = read_section(result.section_path)["windows"]["data_misfit"]
    assert np.all(misfit < 0.1), misfit
    assert read_section(result.section_path)["provenance"]["regridded"][0].startswith(
        "half_ms.sgy: sample interval"
    )
    assert len(read_section(result.section_path)["provenance"]["regridded"]) == 1, (
        "512 x 0.5 ms = 256 x 1 ms: no cut"
    )
