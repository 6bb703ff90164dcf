"""``pipeline.infer`` end to end on a simulated line nine windows long.

Two kinds of model: ``OracleBundle`` returns each window's true velocity (so the stitched section must equal
the truth exactly and the physics QC must find the data explained: plumbing, stitching and QC are checked
against known answers), and a small *untrained* U-Net saved as a real bundle (the real load, normalisation
and prediction path; its velocities are meaningless, so only their range and consistency are asserted).
The trained-model check (a model from ``pipeline.train`` on a five-window line) is in ``test_infer_slow.py``.
"""

from __future__ import annotations

import io
import json
import warnings

import h5py
import numpy as np
import pytest
import segyio

from core.errors import UserError
from core.progress import Progress
from data_prep.schema import file_sha256
from pipeline.infer import InferConfig, infer, lines_from_arguments, main, merge
from pipeline.section import read_section
from tests.pipeline import line_fixtures as F


@pytest.fixture(scope="module")
def line():
    return F.simulate_line()


@pytest.fixture(scope="module")
def survey(tmp_path_factory, line):
    folder = tmp_path_factory.mktemp("survey")
    return {
        "line": F.write_line(folder / "line.sgy", line),
        "truth": F.write_truth(folder / "truth.sgy", line),
        "folder": folder,
    }


@pytest.fixture(scope="module")
def keras_bundle(tmp_path_factory):
    return F.keras_bundle(tmp_path_factory.mktemp("bundle") / "unet")


def quiet(**values) -> InferConfig:
    """A config without SEG-Y and PNG outputs (seconds each) unless asked for; tests that check them ask."""
    from core.config import from_dict

    values.setdefault("outputs", {"png": False, "segy": False})
    return from_dict(InferConfig, values)


#: The same for the command line.
NO_EXTRA_OUTPUTS = ["--set", "outputs.png=false", "--set", "outputs.segy=false"]


def test_oracle_line_gives_the_true_section_and_every_output_reads_back(tmp_path, line, survey):
    oracle = F.OracleBundle(line.velocity_mps)
    out = tmp_path / "run"
    config = quiet(truth=str(survey["truth"]), outputs={"png": True, "segy": True})
    result = infer([survey["line"]], oracle, out, config, progress=False)
    assert result.merged and result.num_windows == 9 and result.processed == 9
    assert sorted(oracle.calls) == [120.0 * k for k in range(9)], "one prediction per window, at its origin"

    section = read_section(out / "section.h5")
    np.testing.assert_allclose(section["velocity_mps"], line.velocity_mps, atol=1e-3)
    np.testing.assert_allclose(section["x_m"], np.arange(120) * 10.0)
    np.testing.assert_allclose(section["depth_m"], np.arange(16) * 10.0)
    assert np.all(section["coverage_weight"] > 0)
    assert set(np.unique(section["edges"])) <= {0.0, 1.0} and section["edges"].any()
    windows = section["windows"]
    np.testing.assert_array_equal(windows["column_start"], np.arange(0, 97, 12))
    np.testing.assert_allclose(windows["x_end_m"] - windows["x_start_m"], 230.0)
    assert np.all(windows["data_misfit"] < 0.05), windows["data_misfit"]  # the truth explains the data
    assert np.all(windows["velocity_mae_mps"] == 0.0)
    assert list(windows["flags"]) == [""] * 9
    np.testing.assert_allclose(windows["calibration_factor"], 1.0, rtol=0.05)  # training stats from this line
    errors = section["qc"]["section_velocity_errors"]
    assert errors["velocity_mae_mps"] == pytest.approx(0.0, abs=1e-3) and errors["num_cells"] == 16 * 120
    assert result.section_errors["velocity_mae_mps"] == pytest.approx(0.0, abs=1e-3)

    provenance = section["provenance"]
    assert provenance["inputs"][0]["sha256"] == file_sha256(survey["line"])
    assert provenance["truth"]["sha256"] == file_sha256(survey["truth"])
    assert provenance["model"]["family"] == "oracle" and provenance["regridded"] == []
    assert "calibration:" in provenance["configuration"] and provenance["calibration"]["method"] == "rms"

    with segyio.open(out / "section_velocity.segy", ignore_geometry=True) as segy:
        assert segy.tracecount == 120 and len(segy.samples) == 16
        assert segyio.tools.dt(segy) == 10_000  # depth spacing in mm
        np.testing.assert_allclose(segy.trace.raw[:].T, section["velocity_mps"], atol=1e-3)
        np.testing.assert_array_equal(segy.attributes(segyio.TraceField.CDP_X)[:], np.arange(120) * 1000)
        np.testing.assert_array_equal(segy.attributes(segyio.TraceField.SourceGroupScalar)[:], -100)
        np.testing.assert_array_equal(segy.attributes(segyio.TraceField.CDP)[:], np.arange(1, 121))
        np.testing.assert_array_equal(segy.attributes(segyio.TraceField.TraceIdentificationCode)[:], 1)
    with segyio.open(out / "section_edges.segy", ignore_geometry=True) as segy:
        np.testing.assert_array_equal(segy.trace.raw[:].T, section["edges"])
    for name in ("section_velocity.png", "section_edges.png", "qc.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    qc_rows = (out / "qc.csv").read_text().splitlines()
    assert len(qc_rows) == 10 and qc_rows[0].startswith("window,x_start_m")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_windows"] == 9 and summary["qc"]["num_flagged"] == 0
    assert not (out / ".work").exists(), "window files are removed after a successful merge"
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]


def test_keras_bundle_from_a_path_runs_end_to_end(tmp_path, survey, keras_bundle):
    out = tmp_path / "run"
    result = infer([survey["line"]], str(keras_bundle), out, quiet(), progress=False)
    assert result.merged
    with h5py.File(out / "section.h5") as h5:
        velocity = h5["velocity_mps"][()]
        edges = h5["edges"][()]
        misfit = h5["windows/data_misfit"][()]
        provenance_model = json.loads(h5["provenance"].attrs["model"])
    assert velocity.shape == (16, 120) and np.all(np.isfinite(velocity))
    assert (
        velocity.min() >= F.VELOCITY_RANGE_MPS[0] - 1e-3 and velocity.max() <= F.VELOCITY_RANGE_MPS[1] + 1e-3
    )
    assert np.all((edges >= 0) & (edges <= 1))
    assert np.all(np.isfinite(misfit)) and np.all(misfit > 0)
    assert provenance_model["uri"] == str(keras_bundle) and provenance_model["family"] == "unet"


def test_calibration_makes_predictions_independent_of_survey_units(tmp_path, line, survey, keras_bundle):
    scaled = F.write_line(tmp_path / "scaled.sgy", line, scale=1000.0)
    base = infer(
        [survey["line"]], str(keras_bundle), tmp_path / "base", quiet(qc={"enabled": False}), progress=False
    )
    louder = infer(
        [scaled], str(keras_bundle), tmp_path / "louder", quiet(qc={"enabled": False}), progress=False
    )
    a, b = read_section(base.section_path), read_section(louder.section_path)
    np.testing.assert_allclose(b["velocity_mps"], a["velocity_mps"], atol=0.05)
    np.testing.assert_allclose(
        b["windows"]["calibration_factor"] * 1000.0, a["windows"]["calibration_factor"], rtol=1e-5
    )
    raw = infer(
        [scaled],
        str(keras_bundle),
        tmp_path / "raw",
        quiet(qc={"enabled": False}, calibration={"method": "none"}),
        progress=False,
    )
    c = read_section(raw.section_path)
    assert np.all(c["windows"]["calibration_factor"] == 1.0)
    assert np.abs(c["velocity_mps"] - a["velocity_mps"]).max() > 1.0, "without calibration the units matter"
    line_scope = infer(
        [scaled],
        str(keras_bundle),
        tmp_path / "line_scope",
        quiet(qc={"enabled": False}, calibration={"scope": "line"}),
        progress=False,
    )
    factors = read_section(line_scope.section_path)["windows"]["calibration_factor"]
    assert np.all(factors == factors[0]), "one factor for the whole line"
    assert factors[0] == pytest.approx(np.median(b["windows"]["calibration_factor"]), rel=0.05)


def test_cli_refuses_shots_a_few_metres_off_then_regrids(tmp_path, line, keras_bundle, capsys):
    rng = np.random.default_rng(2)
    jitter = rng.uniform(1.0, 3.5, len(line.shot_columns)) * rng.choice([-1, 1], len(line.shot_columns))
    path = F.write_line(tmp_path / "jitter.sgy", line, shot_jitter_m=jitter)
    arguments = [
        "--model",
        str(keras_bundle),
        "--input",
        str(path),
        "--out",
        str(tmp_path / "run"),
        "--quiet",
        "--set",
        "qc.enabled=false",
    ]
    assert main(arguments) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "\n" not in error and "Traceback" not in error
    assert "shots up to" in error and "--regrid" in error
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())

    assert main([*arguments, "--regrid"]) == 0
    section = read_section(tmp_path / "run" / "section.h5")
    assert any("shots up to" in entry for entry in section["provenance"]["regridded"])
    assert np.abs(section["windows"]["shot_offset_m"]).max() <= 3.5 + 1e-6


def test_cli_refuses_another_sample_interval_naming_it_then_resamples(
    tmp_path, line, survey, keras_bundle, capsys
):
    fine = F.resampled(line, 2, 1, num_samples=2 * F.NUM_SAMPLES)
    path = F.write_line(tmp_path / "half_ms.sgy", fine)
    arguments = [
        "--model",
        str(keras_bundle),
        "--input",
        str(path),
        "--out",
        str(tmp_path / "run"),
        "--quiet",
        "--set",
        "qc.enabled=false",
    ]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert "sample interval 0.5 ms instead of the model's 1 ms" in error and "--regrid" in error
    assert main([*arguments, "--regrid"]) == 0
    resampled = read_section(tmp_path / "run" / "section.h5")["velocity_mps"]
    reference = infer(
        [survey["line"]],
        str(keras_bundle),
        tmp_path / "reference",
        quiet(qc={"enabled": False}),
        progress=False,
    )
    original = read_section(reference.section_path)["velocity_mps"]
    assert np.mean(np.abs(resampled - original)) < 5.0, "resampled gathers are within 1 %: so are predictions"


def test_shards_and_merge_give_the_unsharded_section(tmp_path, line, survey):
    oracle = F.OracleBundle(line.velocity_mps)
    out = tmp_path / "sharded"
    config = quiet(qc={"enabled": False})
    first = infer([survey["line"]], oracle, out, config, shard=(1, 3), progress=False)
    second = infer([survey["line"]], oracle, out, config, shard=(2, 3), progress=False)
    assert not first.merged and not second.merged
    assert first.processed == 3 and second.processed == 3
    with pytest.raises(UserError, match=r"3 of 9 windows are not finished yet \(first: 6, 7, 8\)"):
        merge(out, config)
    third = infer([survey["line"]], oracle, out, config, shard=(3, 3), progress=False)
    assert third.merged and third.processed == 3
    np.testing.assert_allclose(read_section(out / "section.h5")["velocity_mps"], line.velocity_mps, atol=1e-3)
    assert sorted(oracle.calls) == [120.0 * k for k in range(9)], "every window predicted exactly once"


def test_interrupted_run_resumes_without_recomputing_finished_windows(tmp_path, line, survey):
    out = tmp_path / "run"
    config = quiet(batch_size=2, qc={"enabled": False})
    crashing = F.OracleBundle(line.velocity_mps, interrupt_after=4)
    with pytest.raises(KeyboardInterrupt):
        infer([survey["line"]], crashing, out, config, progress=False)
    finished = sorted(p.name for p in (out / ".work" / "windows").iterdir())
    assert finished == [
        "window_0000000.npz",
        "window_0000001.npz",
        "window_0000002.npz",
        "window_0000003.npz",
    ]
    assert not (out / "section.h5").exists()

    oracle = F.OracleBundle(line.velocity_mps)
    with pytest.raises(UserError, match=r"unfinished run \(4 of 9 windows done\): pass --resume"):
        infer([survey["line"]], oracle, out, config, progress=False)
    with pytest.raises(UserError, match="another model, other inputs or other options"):
        infer(
            [survey["line"]],
            oracle,
            out,
            quiet(batch_size=2, qc={"enabled": False}, calibration={"method": "percentile"}),
            resume=True,
        )
    result = infer([survey["line"]], oracle, out, config, resume=True, progress=False)
    assert result.merged and result.processed == 5 and result.skipped == 4
    assert sorted(oracle.calls) == [120.0 * k for k in range(4, 9)], (
        "only the unfinished windows are predicted"
    )
    np.testing.assert_allclose(read_section(out / "section.h5")["velocity_mps"], line.velocity_mps, atol=1e-3)

    with pytest.raises(FileExistsError, match="already exists"):
        infer([survey["line"]], oracle, out, config, progress=False)
    again = infer([survey["line"]], oracle, out, config, resume=True, progress=False)
    assert again.merged and again.processed == 0 and len(oracle.calls) == 5


def test_windows_that_disagree_are_blended_without_seams(tmp_path, line, survey):
    """Each oracle window is offset by its own constant: the stitched section changes smoothly between them."""
    biases = {120.0 * k: b for k, b in enumerate(np.random.default_rng(4).uniform(-80, 80, 9))}
    oracle = F.OracleBundle(line.velocity_mps, bias_mps=lambda origin: biases[round(origin, 6)])
    result = infer([survey["line"]], oracle, tmp_path / "run", quiet(qc={"enabled": False}), progress=False)
    residual = read_section(result.section_path)["velocity_mps"] - line.velocity_mps
    largest_jump = np.max(np.abs(np.diff(list(biases.values()))))
    assert np.max(np.abs(np.diff(residual, axis=1))) < 0.3 * largest_jump


def test_a_gap_in_the_shots_leaves_nan_columns_and_dead_traces(tmp_path, line):
    """Shots 500-680 m missing: no window fits there; those columns are NaN, dead traces in the SEG-Y."""
    first = F.write_line(tmp_path / "a.sgy", line, shots=slice(0, 25))
    second = F.write_line(tmp_path / "b.sgy", line, shots=slice(35, None))
    oracle = F.OracleBundle(line.velocity_mps, edges=False)
    config = quiet(qc={"enabled": False}, outputs={"png": False, "segy": True})
    result = infer([first, second], oracle, tmp_path / "run", config, progress=False)
    section = read_section(result.section_path)
    covered = section["coverage_weight"] > 0
    assert not covered.all() and covered[:24].all() and covered[-24:].all()
    assert np.isnan(section["velocity_mps"][:, ~covered]).all()
    np.testing.assert_allclose(section["velocity_mps"][:, covered], line.velocity_mps[:, covered], atol=1e-3)
    assert section["edges"] is None and not (tmp_path / "run" / "section_edges.segy").exists()
    with segyio.open(tmp_path / "run" / "section_velocity.segy", ignore_geometry=True) as segy:
        identification = segy.attributes(segyio.TraceField.TraceIdentificationCode)[:]
        np.testing.assert_array_equal(identification, np.where(covered, 1, 2))
        assert not segy.trace.raw[:][~covered].any(), "dead traces hold zeros"


def test_several_lines_each_get_their_folder_and_a_bad_line_does_not_stop_the_others(
    tmp_path, line, survey, keras_bundle, capsys
):
    """``--lines``: one section per SEG-Y file in OUT/<name>/, the same as a single-line run of that file; a
    damaged line is named in one error line after the others are written, and --resume finishes the survey."""
    folder = tmp_path / "survey"
    folder.mkdir()
    F.write_line(folder / "a.sgy", line)
    (folder / "b.sgy").write_bytes(survey["line"].read_bytes()[:-100])  # truncated
    arguments = [
        "--model",
        str(keras_bundle),
        "--lines",
        str(folder / "*.sgy"),
        "--out",
        str(tmp_path / "out"),
    ]
    options = ["--quiet", "--set", "qc.enabled=false", *NO_EXTRA_OUTPUTS]
    assert main([*arguments, *options]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: 1 of 2 line(s) failed (b: ") and "truncated" in error, error
    single = infer([survey["line"]], str(keras_bundle), tmp_path / "single", quiet(qc={"enabled": False}))
    np.testing.assert_array_equal(
        read_section(tmp_path / "out" / "a" / "section.h5")["velocity_mps"],
        read_section(single.section_path)["velocity_mps"],
    )
    assert not (tmp_path / "out" / "b" / "section.h5").exists()

    F.write_line(folder / "b.sgy", line, shots=slice(0, 30))  # the line re-exported
    assert main([*arguments, *options, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "a: Wrote" in printed and "b: Wrote" in printed, printed
    assert (tmp_path / "out" / "b" / "section.h5").is_file()
    with pytest.raises(UserError, match="same folder 'a'"):
        lines_from_arguments([str(folder / "a.sgy"), str(tmp_path / "other" / "a.sgy")])


def test_every_infer_config_file_loads():
    from core.config import CONFIG_DIR
    from pipeline.infer import load_infer_config

    files = sorted((CONFIG_DIR / "infer").glob("*.yaml"))
    assert files, "configs/infer/ holds the inference configurations"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # an old key (InferConfig.MOVED_KEYS) fails here
        for file in files:
            load_infer_config([file])
    assert load_infer_config([CONFIG_DIR / "infer" / "default.yaml"]) == InferConfig(), (
        "default.yaml = the defaults"
    )


def test_progress_prints_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    progress = Progress(total=10, desc="infer", unit="windows", interval_s=0.0, stream=stream)
    for _ in range(10):
        progress.update(1)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in stream.getvalue()
    assert lines[-1].startswith("infer: 10/10 windows (100%)")


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["--input", "{line}"], "--model and --input are required"),
        (["--model", "{tmp}/nothing", "--input", "{line}"], "does not exist"),
        (["--model", "{bundle}", "--input", "{tmp}/missing.sgy"], "does not exist"),
        (["--model", "{bundle}", "--input", "{truncated}"], "truncated"),
        (["--model", "{bundle}", "--input", "{line}", "--shard", "4/3"], "1 <= K <= N"),
        (["--model", "{bundle}", "--input", "{line}", "--set", "qc.treshold=1"], "Unknown configuration key"),
        (["--model", "{bundle}", "--input", "{line}", "--set", "calibration.method=loud"], "must be one of"),
        (["--merge"], "holds no inference run"),
        (["--model", "{bundle}", "--input", "{line}", "--lines", "{line}"], "exclude each other"),
        (["--model", "{bundle}", "--lines", "{tmp}/no-such-line*.sgy"], "matches no file"),
        (
            ["--model", "{bundle}", "--input", "{line}", "--scheduler", "tcp://host:port:extra"],
            "scheduler address",
        ),
        (["--model", "{bundle}", "--input", "{line}", "--scheduler", "local:0"], "N >= 1"),
    ],
)
def test_cli_bad_inputs_give_one_line_errors(tmp_path, survey, keras_bundle, capsys, arguments, expected):
    truncated = tmp_path / "truncated.sgy"
    truncated.write_bytes(survey["line"].read_bytes()[:-100])
    values = {"line": survey["line"], "tmp": tmp_path, "bundle": keras_bundle, "truncated": truncated}
    filled = [a.format(**values) for a in arguments]
    assert main([*filled, "--out", str(tmp_path / "run"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "\n" not in error, error
    assert expected in error, error


@pytest.mark.slow  # MLflow's import and database set-up take ~20 s here
def test_mlflow_logging(tmp_path, line, survey):
    pytest.importorskip("mlflow")
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    oracle = F.OracleBundle(line.velocity_mps)
    config = quiet(
        qc={"enabled": False},
        tracking={"enabled": True, "tracking_uri": uri, "experiment": "infer-test"},
        outputs={"png": False},
    )
    result = infer([survey["line"]], oracle, tmp_path / "run", config, progress=False)
    assert result.mlflow_run_id
    run = mlflow.MlflowClient(tracking_uri=uri).get_run(result.mlflow_run_id)
    assert run.data.params["num_windows"] == "9" and run.data.tags["seisinvert.stage"] == "inference"
    assert run.data.metrics["qc_num_windows"] == 9.0 and run.info.status == "FINISHED"
    assert run.data.params["infer.calibration.method"] == "rms"
    artifacts = {
        a.path
        for a in mlflow.MlflowClient(tracking_uri=uri).list_artifacts(result.mlflow_run_id, "inference")
    }
    assert {"inference/qc.csv", "inference/summary.json", "inference/config.yaml"} <= artifacts


def test_mirror_average_auto_is_on_for_a_model_whose_geometry_mirrors(tmp_path, survey, keras_bundle):
    """``mirror_average: auto`` (the default) gives the section of ``true`` for a model whose shots mirror onto
    themselves within a cell (the fixture's 0, 120, 220 m of 0..230 m), not the plain one."""
    sections = {}
    for setting in ("default", "auto", True, False):
        out = tmp_path / str(setting)
        config = quiet() if setting == "default" else quiet(mirror_average=setting)
        infer([survey["line"]], str(keras_bundle), out, config, progress=False)
        sections[setting] = read_section(out / "section.h5")["velocity_mps"]
    np.testing.assert_array_equal(sections["auto"], sections[True])
    np.testing.assert_array_equal(sections["default"], sections[True])
    assert np.nanmax(np.abs(sections[True] - sections[False])) > 1.0


def test_mirror_average_auto_is_off_with_the_reason_when_the_model_cannot_mirror(caplog):
    from types import SimpleNamespace

    from core.errors import UserError
    from pipeline.infer.model import resolve_mirror_average

    def refuse():
        raise UserError("mirror_average: the source at x 0 m mirrors to 110 m, 70 m from the nearest source")

    auto = quiet(mirror_average="auto")
    with caplog.at_level("INFO", logger="pipeline.infer.model"):
        assert resolve_mirror_average(auto, SimpleNamespace(mirror_order=refuse)).mirror_average is False
    assert "mirror_average=auto: off: mirror_average: the source at x 0 m mirrors to 110 m" in caplog.text
    stand_in = SimpleNamespace(mirror_order=lambda: None, predict_windows=lambda *a, **k: None)
    assert resolve_mirror_average(auto, stand_in).mirror_average is False
    assert resolve_mirror_average(auto, SimpleNamespace(mirror_order=lambda: None)).mirror_average is True
    # An explicit setting is kept as it is: true is refused later by the model itself if it cannot mirror.
    assert resolve_mirror_average(quiet(mirror_average=True), SimpleNamespace()).mirror_average is True
