"""The notebooks under ``notebooks/``: committed without outputs, and each executes top to bottom.

Each notebook has one cell tagged ``parameters`` that reads ``SEISINVERT_NOTEBOOK_TINY``; with ``=1`` it runs
on tiny settings (a handful of samples, one or two epochs, a three-window line). The notebooks write only
into ``tempfile.mkdtemp`` folders; here ``TMPDIR`` points into pytest's ``tmp_path`` and the kernel starts
there, so nothing reaches the repository. The last cell of each notebook prints one line
``SUMMARY {json}`` with its key results, which the tests parse and check.

The kernel is the running interpreter (a kernel spec written for ``sys.executable``), so the notebooks see
the same virtual environment as the tests.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = ("01-explore-data.ipynb", "02-train-and-compare.ipynb", "03-survey-inference.ipynb")
TINY_VARIABLE = "SEISINVERT_NOTEBOOK_TINY"
KERNEL_NAME = "seisinvert-test-python"


def test_every_notebook_is_committed_stripped_with_a_parameters_cell():
    found = sorted(path.name for path in NOTEBOOK_DIR.glob("*.ipynb"))
    assert found == sorted(NOTEBOOKS), f"expected exactly {sorted(NOTEBOOKS)} in notebooks/, found {found}"
    for name in NOTEBOOKS:
        notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
        nbformat.validate(notebook)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        with_outputs = [cell.get("id") for cell in code if cell.outputs]
        counted = [cell.get("id") for cell in code if cell.execution_count is not None]
        assert not with_outputs and not counted, (
            f"{name}: cells {with_outputs or counted} hold outputs or execution counts; strip them before "
            "committing (e.g. `jupyter nbconvert --clear-output --inplace` or nbstripout)"
        )
        parameters = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
        assert len(parameters) == 1, f"{name}: expected one cell tagged 'parameters', found {len(parameters)}"
        assert TINY_VARIABLE in parameters[0].source, f"{name}: the parameters cell must read {TINY_VARIABLE}"
        assert code.index(parameters[0]) == 0, f"{name}: the parameters cell must be the first code cell"
        assert "SUMMARY " in code[-1].source, f"{name}: the last cell must print the SUMMARY line"
        assert notebook.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.fixture
def kernel_environment(tmp_path: Path, monkeypatch) -> Path:
    """A kernel spec for this interpreter, temporary files under ``tmp_path``, tiny settings."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "seisinvert tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setenv(TINY_VARIABLE, "1")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return temporary


def execute(name: str, workdir: Path) -> tuple[object, dict, float]:
    """Runs a notebook in a fresh kernel; returns the executed notebook, its SUMMARY and the seconds taken."""
    notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name=KERNEL_NAME,
        timeout=600,
        resources={"metadata": {"path": str(workdir)}},
    )
    started = time.monotonic()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"{name} failed in a cell:\n{str(error)[-4000:]}")
    seconds = time.monotonic() - started
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    not_run = [cell.get("id") for cell in code if cell.execution_count is None]
    assert not not_run, f"{name}: cells {not_run} did not run"
    errors = [o for cell in code for o in cell.outputs if o.get("output_type") == "error"]
    assert not errors, f"{name}: error outputs {errors}"
    text = "".join(o.get("text", "") for o in code[-1].outputs if o.get("output_type") == "stream")
    lines = [line for line in text.splitlines() if line.startswith("SUMMARY ")]
    assert len(lines) == 1, (
        f"{name}: expected one SUMMARY line in the last cell's output, got {text[-2000:]!r}"
    )
    return notebook, json.loads(lines[0][len("SUMMARY ") :]), seconds


def images(notebook) -> int:
    return sum(
        1
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    )


def test_01_explore_data_runs(kernel_environment):
    notebook, summary, seconds = execute(NOTEBOOKS[0], kernel_environment)
    print(f"\n{NOTEBOOKS[0]}: {seconds:.0f} s")
    assert summary["tiny"] is True
    assert summary["num_samples"] == 10, "5 models of each of 2 families"
    assert summary["families"] == ["curvefault-a", "flatvel-a"]
    assert summary["seismic_shape"] == [10, 3, 400, 24], (
        "configs/data/small.yaml: 3 shots, 400 samples, 24 rx"
    )
    assert sum(summary["splits"].values()) == 10 and min(summary["splits"].values()) >= 1
    low, high = summary["velocity_range_mps"]
    assert 1500 <= low < high <= 4500, "OpenFWI's A families stay within 1500-4500 m/s"
    assert 0.0 < summary["edge_fraction"] < 0.3, "layered models: a minority of cells are edges"
    assert images(notebook) >= 3, "gathers, velocity + edges, statistics"
    assert list(kernel_environment.glob("seisinvert-01-*/dataset.h5")), (
        "the dataset goes to a temporary folder"
    )


def test_02_train_and_compare_runs(kernel_environment):
    notebook, summary, seconds = execute(NOTEBOOKS[1], kernel_environment)
    print(f"\n{NOTEBOOKS[1]}: {seconds:.0f} s")
    assert summary["parent_status"] == "FINISHED" and summary["children_finished"]
    assert summary["children"] == ["transformer", "unet"]
    assert summary["epochs_logged"] == {"unet": 2, "transformer": 2}, "two epochs of val_loss per child run"
    for name, ssim in summary["test_velocity_ssim"].items():
        assert 0.0 < ssim < 1.0, f"{name}: SSIM {ssim} outside (0, 1): a degenerate prediction or metric"
    for name, mae in summary["test_velocity_mae_mps"].items():
        assert 0.0 < mae < 3000.0, f"{name}: MAE {mae} m/s outside (0, 3000) for a 1500-4500 m/s range"
    _check_02_against_its_store(summary, kernel_environment)
    assert images(notebook) >= 2, "training curves and predictions.png"
    html = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "text/html" in o.get("data", {})
    ]
    assert html and "velocity_ssim" in html[-1]["data"]["text/html"], "the metrics table is displayed"
    assert list(kernel_environment.glob("seisinvert-02-*/mlflow.db")), "the MLflow store is temporary"


def _check_02_against_its_store(summary: dict, workdir: Path) -> None:
    """What the notebook printed is what MLflow recorded, and the metrics agree with each other: the MAE in m/s
    is the normalised MAE times half the training split's velocity range (a denormalisation or metric bug
    breaks it; bounds alone cannot see it)."""
    import mlflow

    from data_prep.schema import read_normalization

    (store,) = workdir.glob("seisinvert-02-*/mlflow.db")
    datasets = sorted(store.parent.glob("*.h5"))
    assert datasets, f"no dataset beside {store}"
    stats = read_normalization(datasets[0])
    half_range = (stats.velocity_max_mps - stats.velocity_min_mps) / 2
    client = mlflow.MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`seisinvert.compare_name` != ''"
    )
    by_name = {run.data.tags["seisinvert.compare_name"]: run for run in runs}
    assert set(by_name) >= set(summary["test_velocity_mae_mps"]), by_name.keys()
    for name, mae_mps in summary["test_velocity_mae_mps"].items():
        metrics = by_name[name].data.metrics
        assert metrics["test_velocity_mae_mps"] == pytest.approx(mae_mps, rel=1e-6), name
        assert metrics["test_velocity_ssim"] == pytest.approx(summary["test_velocity_ssim"][name], rel=1e-6)
        assert metrics["test_velocity_mae_mps"] == pytest.approx(
            metrics["test_velocity_mae"] * half_range, rel=1e-3
        ), (
            f"{name}: MAE {metrics['test_velocity_mae_mps']} m/s is not the normalised MAE "
            f"{metrics['test_velocity_mae']} x half the range ({half_range} m/s)"
        )


def _check_03_section(summary: dict, workdir: Path) -> None:
    """The section file, read back here, against the truth regenerated here: velocities in m/s within the
    training range (a missing denormalisation gives values near 0), and the error the notebook reported is the
    error of that file, below what a model stuck at either end of the range would make."""
    from data_prep.velocity_models import generate_model
    from pipeline.section import read_section

    (section_file,) = workdir.glob("seisinvert-03-*/section/section.h5")
    section = read_section(section_file)["velocity_mps"]
    truth = generate_model(
        "flatvel-a", seed=11, index=0, grid_shape=tuple(summary["section_shape"])
    ).velocity_mps
    assert 1400.0 <= float(section.min()) and float(section.max()) <= 4600.0, (section.min(), section.max())
    recomputed = float(np.mean(np.abs(section - truth)))
    assert recomputed == pytest.approx(summary["section_mae_mps"], rel=1e-3), (recomputed, summary)
    for constant in (1500.0, 4500.0):
        assert recomputed < float(np.mean(np.abs(truth - constant))), (
            f"no better than {constant:.0f} m/s everywhere"
        )


def test_03_survey_inference_runs(kernel_environment):
    notebook, summary, seconds = execute(NOTEBOOKS[2], kernel_environment)
    print(f"\n{NOTEBOOKS[2]}: {seconds:.0f} s")
    assert summary["num_windows"] == 2, "a 36-column line, windows of 24 columns every 12"
    assert summary["section_shape"] == [16, 36]
    assert summary["section_finite"] and summary["refined_finite"], "every column is covered by a window"
    assert summary["qc_rows"] == 2
    assert 0.0 <= summary["misfit_median"] <= 1.5
    assert summary["misfit_after_not_worse"], "refinement keeps the best iterate"
    assert 0.0 < summary["section_mae_mps"] < 3000.0
    expected = {"section.h5", "section_velocity.segy", "section_edges.segy", "section_refined_velocity.segy"}
    expected |= {"qc.csv", "qc.png", "refinement.png", "summary.json"}
    assert expected <= set(summary["outputs"]), f"missing outputs: {expected - set(summary['outputs'])}"
    assert images(notebook) >= 4, "line, section panels, QC/refinement PNGs, refinement plot"
    _check_03_section(summary, kernel_environment)
