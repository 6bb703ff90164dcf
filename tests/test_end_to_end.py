"""The whole pipeline once, small: synthesize -> ingest -> train -> evaluate -> registered model -> infer.

The first three stages are the session's shared trained model (``trained_flatvel``, tests/pipeline/
trained_model.py: flatvel-a models of the inference tests' window geometry, 16 x 24 cells of 10 m, 3 shots, 24
receivers, 256 samples of 1 ms, simulated by the engine and ingested through the ``data_prep.ingest`` command
line; a small U-Net trained into a temporary sqlite MLflow store and registered, alias ``champion``), so the
suite trains it once. Here: that registered champion evaluated on the test split, then used through
``models:/...@champion`` by the ``pipeline.infer`` command line on a simulated flatvel-a line three windows
long. Every output is checked: the dataset and the section with the project's readers and validator, the
SEG-Y sections read back with segyio (same values as the HDF5 section), the PNGs decoded, and the MLflow runs
(training, evaluation, inference) finished with their metrics, artifacts and the registered version. The
values checked here are the plumbing's; tests/pipeline/test_learning.py checks that the model learned.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.pipeline import line_fixtures as F
from tests.pipeline.trained_model import LEARNING_EPOCHS, LEARNING_SAMPLES, REGISTERED_NAME

NUM_MODELS = LEARNING_SAMPLES
LINE_COLUMNS = 48


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory, trained_flatvel):
    """Evaluates and infers with the shared trained model; returns the paths and results the tests look at."""
    import mlflow

    from pipeline.evaluate import EvaluateConfig, evaluate
    from pipeline.infer import main as infer_main
    from pipeline.tracking import TrackingSettings

    root = tmp_path_factory.mktemp("e2e")
    store = trained_flatvel.tracking_uri
    dataset = trained_flatvel.dataset
    trained = trained_flatvel.result
    lines = trained_flatvel.lines

    # 4. evaluate the registered champion on the test split
    model_uri = f"models:/{REGISTERED_NAME}@champion"
    evaluation = evaluate(
        EvaluateConfig(
            model=model_uri,
            data=str(dataset),
            tracking=TrackingSettings(tracking_uri=store),
            output_dir=str(root / "evaluation"),
        )
    )

    # 5. infer on a simulated line through the command line, with the model from the registry
    line = F.simulate_line(num_columns=LINE_COLUMNS, kind="flatvel-a")
    survey = F.write_line(root / "line.sgy", line)
    truth = F.write_truth(root / "truth.sgy", line)
    section_dir = root / "section"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store)  # where models:/ URIs are resolved
        code = infer_main(
            [
                "--model",
                model_uri,
                "--input",
                str(survey),
                "--truth",
                str(truth),
                "--out",
                str(section_dir),
                "--mlflow",
                "--set",
                f"tracking.tracking_uri={store}",
                "--quiet",
            ]
        )
    assert code == 0, "python -m pipeline.infer exited with an error"
    return {
        "root": root,
        "store": store,
        "dataset": dataset,
        "trained": trained,
        "lines": lines,
        "evaluation": evaluation,
        "line": line,
        "section_dir": section_dir,
        "client": mlflow.MlflowClient(store),
    }


def test_the_dataset_is_valid_and_holds_every_synthesized_model(pipeline_run):
    from data_prep import schema

    summary = schema.validate(pipeline_run["dataset"])  # values too: finite, positive velocity, edges 0/1
    assert summary.num_samples == NUM_MODELS
    assert sum(summary.split_sizes.values()) == NUM_MODELS and min(summary.split_sizes.values()) >= 1
    assert summary.seismic_shape[1:] == (len(F.MODEL_SOURCE_X_CELLS), F.NUM_SAMPLES, F.WINDOW_CELLS)
    assert set(summary.families) == {"flatvel-a"}


def test_training_finished_logged_and_registered_the_champion(pipeline_run):
    trained, client = pipeline_run["trained"], pipeline_run["client"]
    last_epoch = [line for line in pipeline_run["lines"] if line.startswith("epoch ")][-1]
    assert last_epoch.startswith(f"epoch {LEARNING_EPOCHS}/{LEARNING_EPOCHS}"), last_epoch
    run = client.get_run(trained.run_id)
    assert run.info.status == "FINISHED"
    for key in ("loss", "val_loss", "val_velocity_ssim", "test_velocity_ssim", "test_velocity_mae_mps"):
        assert np.isfinite(run.data.metrics[key]), f"training metric {key} missing or not finite"
    steps = [m.step for m in client.get_metric_history(trained.run_id, "val_loss")]
    assert steps == list(range(LEARNING_EPOCHS))
    artifacts = {a.path for a in client.list_artifacts(trained.run_id)}
    # The configuration, the per-epoch images and the test evaluation; the pyfunc model is a logged model of
    # the run (MLflow 3), reached below through the registry.
    assert {"config.yaml", "images", "evaluation"} <= artifacts, sorted(artifacts)
    version = client.get_model_version_by_alias(REGISTERED_NAME, "champion")
    assert version.run_id == trained.run_id and str(version.version) == str(trained.model_version) == "1"
    assert trained.registered_model == REGISTERED_NAME and trained.champion


def test_evaluation_of_the_registered_model_is_written_and_logged(pipeline_run):
    from data_prep import schema

    evaluation, client = pipeline_run["evaluation"], pipeline_run["client"]
    metrics = evaluation["metrics"]
    assert 0.0 < metrics["velocity_ssim"] <= 1.0 and metrics["velocity_mae_mps"] > 0
    # The same model on the same split as training's own test evaluation: the same numbers.
    trained = pipeline_run["trained"]
    assert metrics["velocity_mae_mps"] == pytest.approx(trained.test_metrics["velocity_mae_mps"], rel=1e-2)
    rows = Path(evaluation["csv"]).read_text().strip().splitlines()
    test_samples = schema.validate(pipeline_run["dataset"], check_values=False).split_sizes["test"]
    assert len(rows) == 1 + test_samples, "one CSV row per test sample, plus the header"
    _check_png(Path(evaluation["figure"]))
    run = client.get_run(evaluation["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_velocity_ssim"] == pytest.approx(metrics["velocity_ssim"])
    assert run.data.tags["seisinvert.evaluated_run_id"] == trained.run_id


def test_the_section_files_agree_with_each_other_and_the_truth(pipeline_run):
    import segyio

    from pipeline.section import read_section

    out = pipeline_run["section_dir"]
    section = read_section(out / "section.h5")  # checks format and completeness
    velocity = section["velocity_mps"]
    assert velocity.shape == (F.DEPTH_CELLS, LINE_COLUMNS)
    assert np.all(np.isfinite(velocity)), "every column of the line is covered by a window"
    assert 1000 < velocity.min() and velocity.max() < 5000, "velocities in m/s, in the training range"
    assert section["provenance"]["model"]["uri"] == f"models:/{REGISTERED_NAME}@champion"
    assert section["provenance"]["model"]["training_run_id"] == pipeline_run["trained"].run_id
    assert str(section["provenance"]["model"]["registered_version"]) == "1"
    assert len(section["windows"]["data_misfit"]) >= 2 and np.all(
        np.isfinite(section["windows"]["data_misfit"])
    )
    errors = section["qc"]["section_velocity_errors"]
    expected_mae = float(np.mean(np.abs(velocity - pipeline_run["line"].velocity_mps)))
    assert errors["velocity_mae_mps"] == pytest.approx(expected_mae, rel=1e-3)

    with segyio.open(out / "section_velocity.segy", ignore_geometry=True) as segy:
        traces = segy.trace.raw[:]
        assert traces.shape == (LINE_COLUMNS, F.DEPTH_CELLS), "one trace per column, depth down the trace"
        np.testing.assert_allclose(traces.T, velocity, rtol=1e-6)
        cdp = segy.attributes(segyio.TraceField.CDP)[:]
        assert list(cdp) == list(range(1, LINE_COLUMNS + 1))
    with segyio.open(out / "section_edges.segy", ignore_geometry=True) as segy:
        edges = segy.trace.raw[:].T
        np.testing.assert_allclose(edges, section["edges"], rtol=1e-6)
        assert edges.min() >= 0 and edges.max() <= 1

    for name in ("section_velocity.png", "section_edges.png", "qc.png"):
        _check_png(out / name)
    rows = (out / "qc.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + len(section["windows"]["data_misfit"]), "one QC row per window"
    summary = json.loads((out / "summary.json").read_text())
    assert summary, "summary.json is empty"
    assert not (out / ".work").exists(), "the per-window work folder is removed after the merge"


def test_the_inference_run_is_logged_with_its_lineage(pipeline_run):
    client = pipeline_run["client"]
    experiment = client.get_experiment_by_name("inference")
    runs = client.search_runs([experiment.experiment_id], "tags.`seisinvert.stage` = 'inference'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["seisinvert.model_run_id"] == pipeline_run["trained"].run_id
    assert run.data.params["model_version"] == "1"
    assert np.isfinite(run.data.metrics["section_velocity_mae_mps"])
    assert any(key.startswith("qc_") for key in run.data.metrics)
    logged = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "inference")}
    assert {"section_velocity.png", "qc.csv", "provenance.json", "config.yaml"} <= logged, sorted(logged)


def _check_png(path: Path) -> None:
    """The file exists, is a PNG, decodes, and is not one flat colour."""
    import matplotlib.image

    assert path.is_file() and path.stat().st_size > 1000, f"{path} is missing or nearly empty"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) >= 50, f"{path}: unexpected image shape {image.shape}"
    assert float(np.ptp(image[..., :3])) > 0.1, f"{path} is one flat colour"
