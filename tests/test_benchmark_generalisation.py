"""The generalisation benchmark's bookkeeping (benchmarks/generalisation.py), with training and scoring faked:
which models it trains on which families, that fine-tuning starts from the model without K, that a second call
resumes instead of retraining, and that a budget given in epochs is kept apart from one given in seconds."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks import generalisation
from tests.pipeline.datasets import write_dataset

FAMILIES = ("flatvel-a", "flatvel-b", "curvevel-a", "curvefault-b")


@pytest.fixture()
def fake_training(tmp_path, monkeypatch):
    """Records every training call; each "model" scores the MAE given by how it was trained."""
    calls = []

    def train_row(dataset_path, work_dir, families, budget, seed, init_from=None, extra=()):
        bundle = tmp_path / f"bundle{len(calls)}"
        bundle.mkdir()
        calls.append(
            {"families": list(families), "budget": budget, "init_from": init_from, "extra": list(extra)}
        )
        return SimpleNamespace(
            bundle_dir=bundle, history=[{}] * (budget.epochs or 3), wall_time_s=1.0, model=None
        )

    def score_model(bundle, dataset_path, families, baseline):
        mae = {None: 300.0}.get(bundle.model, 200.0)
        return {"mae_mps": mae, "ssim": 0.7, "baseline_mae_mps": 400.0, "baseline_ssim": 0.6,
                "skill": 1 - mae / 400.0, "interface_mae_mps": 350.0, "error_tv_mps": 20.0, "samples": 4,
                "bias_mps": -5.0, "lateral_mae_mps": 150.0, "truth_lateral_mps": 160.0}  # fmt: skip

    def load_bundle(path):  # fine-tuned models (bundles made from a parent) score 200, the others 300
        tuned = any(c["init_from"] for c in calls if str(path).endswith(f"bundle{calls.index(c)}"))
        return SimpleNamespace(model="tuned" if tuned else None, stats=None)

    monkeypatch.setattr(generalisation, "train_row", train_row)
    # In-process: the fakes live in this process (the benchmark spawns one process per training run).
    monkeypatch.setattr(
        generalisation, "run_isolated", lambda function, *args, **kwargs: function(*args, **kwargs)
    )
    monkeypatch.setattr(generalisation, "score_model", score_model)
    monkeypatch.setattr(generalisation, "_release_memory", lambda: None)
    monkeypatch.setattr("pipeline.bundle.load_bundle", load_bundle)
    return calls


def test_rows_resume_and_fine_tuning_starts_from_the_model_without_k(tmp_path, fake_training):
    dataset = write_dataset(tmp_path / "mix.h5", num_samples=32, families=FAMILIES)
    work = tmp_path / "work"
    argv = ["--data", str(dataset), "--work-dir", str(work), "--held-out", "curvefault-b", "--epochs", "4",
            "--finetune-epochs", "2", "--rows", "general without K", "fine-tuning", "--no-write"]  # fmt: skip
    assert generalisation.main(argv) == 0
    without, tuned, scratch = fake_training
    assert sorted(without["families"]) == ["curvevel-a", "flatvel-a", "flatvel-b"], "curvefault-b held out"
    assert without["budget"].epochs == 4 and without["init_from"] is None
    assert tuned["families"] == scratch["families"] == ["curvefault-b"]
    assert tuned["init_from"] == str(tmp_path / "bundle0") and tuned["budget"].epochs == 2
    assert scratch["init_from"] is None and scratch["budget"] == tuned["budget"]
    rows = [json.loads(line) for line in (work / "results.jsonl").read_text().splitlines()]
    assert [(r["row"], r["budget"]) for r in rows] == [
        ("general without K", "4 epochs"), ("fine-tuned on K", "2 epochs"), ("scratch on K", "2 epochs"),
    ]  # fmt: skip
    assert [r["mae_mps"] for r in rows] == [300.0, 200.0, 300.0]

    # The same call again trains nothing; a wall-clock budget is another row.
    assert generalisation.main(argv) == 0
    assert len(fake_training) == 3
    seconds = [a for a in argv if a not in ("--epochs", "4", "--finetune-epochs", "2")]
    assert generalisation.main([*seconds, "--budget-s", "60", "--finetune-budget-s", "30"]) == 0
    assert len(fake_training) == 6 and fake_training[3]["budget"].seconds == 60


def test_the_report_gives_the_fine_tuning_verdict_from_the_rows(tmp_path, fake_training, capsys):
    dataset = write_dataset(tmp_path / "mix.h5", num_samples=32, families=FAMILIES)
    argv = ["--data", str(dataset), "--work-dir", str(tmp_path / "work"), "--held-out", "curvefault-b", "--epochs", "4",
            "--finetune-epochs", "2", "--rows", "fine-tuning", "--no-write"]  # fmt: skip
    generalisation.main(argv)
    table = capsys.readouterr().out
    # 200 vs 300 m/s: 33 % lower, which meets the 20 % goal.
    assert "MAE 200 vs 300 m/s, 33 % lower: **meets** the ≥ 20 % goal" in table
    assert "4 epochs per model, 2 epochs for fine-tuning" in table


def test_fine_tuning_on_fewer_samples_at_several_budgets_is_a_row_per_budget(tmp_path, fake_training, capsys):
    dataset = write_dataset(tmp_path / "mix.h5", num_samples=32, families=FAMILIES)
    work = tmp_path / "work"
    common = ["--data", str(dataset), "--work-dir", str(work), "--held-out", "curvefault-b", "--epochs", "4",
              "--rows", "fine-tuning", "--no-write"]  # fmt: skip
    generalisation.main([*common, "--finetune-epochs", "2"])  # all of K's samples
    capsys.readouterr()
    assert len(fake_training) == 3  # the parent, then the pair
    available = len(generalisation.family_indices(dataset, ("curvefault-b",), ("train",)))
    assert available > 2

    generalisation.main([*common, "--finetune-epochs", "1", "2", "--finetune-samples", "2"])
    table = capsys.readouterr().out
    # The parent is reused; a pair per budget, both limited to the first 2 samples of K's training split.
    new = fake_training[3:]
    assert [(c["init_from"] is not None, c["budget"].epochs) for c in new] == [
        (True, 1), (False, 1), (True, 2), (False, 2),
    ]  # fmt: skip
    assert all("data.max_train_samples=2" in c["extra"] for c in new)
    assert "data.max_train_samples=2" not in fake_training[1]["extra"]
    # This command's table holds the 2-sample rows only, one verdict per budget, smallest budget first.
    assert table.count("fine-tuned on K (2 samples)") == 2 and f"({available} samples)" not in table
    verdicts = [line for line in table.splitlines() if line.startswith("Fine-tuning vs from scratch")]
    assert [v.split(", ")[1].split(" each")[0] for v in verdicts] == ["1 epochs", "2 epochs"]
    assert all("K's 2 training samples" in v for v in verdicts)

    # Asking for more samples than K has is all of them: the first call's rows, nothing retrained.
    generalisation.main([*common, "--finetune-epochs", "2", "--finetune-samples", "100000"])
    assert len(fake_training) == 7
    assert f"fine-tuned on K ({available} samples)" in capsys.readouterr().out


def test_count_sizes_the_dataset_it_builds_and_data_wins(tmp_path, monkeypatch):
    """``--count N``: the dataset built in --work-dir (no --data) has N samples per family; --data is used as is."""
    built = []

    def ensure_default_dataset(config, echo=print):
        built.append(config)
        return tmp_path / "built.h5"

    monkeypatch.setattr("pipeline.training.default_dataset.ensure_default_dataset", ensure_default_dataset)
    parser = generalisation.build_parser()
    recipe = generalisation._dataset(parser.parse_args([]), tmp_path)
    larger = generalisation._dataset(parser.parse_args(["--count", "1000"]), tmp_path)
    assert recipe == larger == tmp_path / "built.h5"
    assert built[0].count == generalisation.general_config().data.default.count == 400
    assert built[1].count == 1000 and built[1].directory == str(tmp_path)
    given = generalisation._dataset(parser.parse_args(["--data", "mix.h5", "--count", "7"]), tmp_path)
    assert str(given) == "mix.h5" and len(built) == 2


def test_set_changes_every_model_of_the_call_and_its_rows_are_kept_apart(
    tmp_path, fake_training, capsys, monkeypatch
):
    """``--set KEY=VALUE``: a recipe change (what the recipe's settings are chosen by) reaches every training
    run, fine-tuning's own settings after it; its rows neither resume nor replace the plain recipe's."""
    dataset = write_dataset(tmp_path / "mix.h5", num_samples=32, families=FAMILIES)
    common = ["--data", str(dataset), "--work-dir", str(tmp_path / "work"), "--held-out", "curvefault-b",
              "--epochs", "4", "--finetune-epochs", "2", "--rows", "general without K", "fine-tuning"]  # fmt: skip
    generalisation.main([*common, "--no-write"])
    assert len(fake_training) == 3 and all(
        "optimizer.learning_rate=1e-3" not in c["extra"] for c in fake_training
    )
    change = ["--set", "optimizer.learning_rate=1e-3", "--set", "data.augmentation.polarity_probability=0"]
    generalisation.main([*common, *change, "--no-write"])
    changed = fake_training[3:]
    assert len(changed) == 3, "the plain recipe's rows are not this setting's: all three trained again"
    assert changed[1]["init_from"] == str(tmp_path / "bundle3"), "fine-tuned from the parent of this setting"
    for call in changed:
        assert call["extra"][:2] == [
            "optimizer.learning_rate=1e-3",
            "data.augmentation.polarity_probability=0",
        ]
    assert changed[1]["extra"][2] == "optimizer.learning_rate=2.0e-4", "fine-tuning's own rate comes last"
    table = capsys.readouterr().out.split("## Out-of-distribution skill")[-1]
    assert "--set optimizer.learning_rate=1e-3" in table, "the command in the header names the setting"
    assert "the recipe changed by `optimizer.learning_rate=1e-3`, `data.augmentation" in table
    assert table.count("| general without K |") == 1, "only this setting's rows"
    rows = [json.loads(line) for line in (tmp_path / "work" / "results.jsonl").read_text().splitlines()]
    assert [r["settings"] for r in rows] == [[]] * 3 + [change[1::2]] * 3
    written = []
    monkeypatch.setattr(generalisation, "update_section", lambda name, text: written.append((name, text)))
    generalisation.main([*common, *change, "--section", "generalisation_lr", "--title", "a rerun"])
    assert len(fake_training) == 6, "resumed: nothing trained again"
    assert [name for name, _ in written] == ["generalisation_lr"], "its own section, not the recipe's table"
    assert written[0][1].splitlines()[0].endswith("`data.augmentation.polarity_probability=0`, a rerun")


def test_the_error_split_separates_a_wrong_depth_trend_from_missing_lateral_structure():
    true = np.tile(np.linspace(2000.0, 4000.0, 6)[:, None], (2, 1, 5))  # (2 samples, 6 depths, 5 columns)
    true[:, 3:, 2] += 600.0  # a lateral anomaly in every sample
    # A model with the lateral structure right but every depth row 100-300 m/s too slow ...
    trend = true - np.linspace(100.0, 300.0, 6)[None, :, None]
    split = generalisation.error_split(true, trend)
    assert split["bias_mps"] == pytest.approx(-200.0) and split["lateral_mae_mps"] == pytest.approx(0.0)
    assert split["predicted_lateral_mps"] == pytest.approx(split["truth_lateral_mps"])
    # ... and one with each row's mean right but no lateral structure: its lateral error is the truth's own.
    flat = np.broadcast_to(true.mean(axis=-1, keepdims=True), true.shape)
    split = generalisation.error_split(true, flat)
    assert split["bias_mps"] == pytest.approx(0.0, abs=1e-9)
    assert split["lateral_mae_mps"] == pytest.approx(split["truth_lateral_mps"])
    assert split["predicted_lateral_mps"] == pytest.approx(0.0, abs=1e-9), "1-D sections have none"
    # Half the rows hold the anomaly: their mean is 120 m/s above four cells and 480 below the fifth.
    assert split["truth_lateral_mps"] == pytest.approx(0.5 * (4 * 120 + 480) / 5)


def test_the_skill_by_depth_third_is_measured_against_the_baseline_on_those_rows_only():
    """A model exact in the top third, as wrong as the baseline in the middle and twice as wrong at the bottom
    scores +1, 0 and -1 there; the whole-section skill is in between."""
    true = np.tile(np.linspace(2000.0, 4000.0, 9)[:, None], (3, 1, 4))  # (3 samples, 9 rows, 4 columns)
    baseline = true[0, :, 0] + 200.0
    predicted = true.copy()
    predicted[:, 3:6] += 200.0
    predicted[:, 6:] -= 400.0
    scores = generalisation.velocity_scores(true, predicted, baseline, np.zeros_like(true))
    assert scores["skill_by_depth_third"] == pytest.approx([1.0, 0.0, -1.0])
    assert scores["skill"] == pytest.approx(0.0)


def test_a_bundle_is_scored_as_predicted_and_mirror_averaged(trained_flatvel):
    """``score_model`` on a trained bundle: the plain scores are those of ``bundle.predict``, the ``mirror_*``
    ones those of ``bundle.predict(..., mirror_average=True)`` on the same samples (the window geometry's shots
    at cells 0, 12, 22 of 24 mirror within one cell); both beat the 1-D baseline of the training data."""
    from pipeline.bundle import load_bundle
    from pipeline.feeding import SeismicDataset

    dataset = trained_flatvel.dataset
    bundle = load_bundle(trained_flatvel.result.bundle_dir)
    baseline = generalisation.depth_baseline_mps(dataset, ["flatvel-a"])
    scores = generalisation.score_model(bundle, dataset, ["flatvel-a"], baseline)

    samples = SeismicDataset(
        dataset, indices=generalisation.family_indices(dataset, ["flatvel-a"], ("val", "test"))
    )
    seismic, truth, _ = samples.read(samples.epoch_order())
    assert scores["samples"] == len(truth) == 48
    plain = bundle.predict(seismic)["velocity_mps"]
    averaged = bundle.predict(seismic, mirror_average=True)["velocity_mps"]
    assert scores["mae_mps"] == pytest.approx(np.abs(plain - truth).mean(), rel=1e-5)
    assert scores["mirror_mae_mps"] == pytest.approx(np.abs(averaged - truth).mean(), rel=1e-5)
    assert scores["mirror_mae_mps"] != pytest.approx(scores["mae_mps"], rel=1e-4)
    assert 0 < scores["mirror_skill"] and 0 < scores["skill"], scores
    assert set(generalisation.MIRROR_SCORES) <= {key.removeprefix("mirror_") for key in scores}


def test_score_data_scores_the_held_out_group_elsewhere_against_the_training_data_s_baseline(
    tmp_path, fake_training, monkeypatch
):
    """--score-data: the held-out samples come from the other file (a training run and a rescore alike), the
    1-D baseline from the training file, and the row records where it was scored."""
    dataset = write_dataset(tmp_path / "mix.h5", num_samples=32, families=FAMILIES)
    other = write_dataset(tmp_path / "other.h5", num_samples=32, families=FAMILIES)
    seen = {"scored": [], "baseline": []}
    scorer = generalisation.score_model

    def score_model(bundle, dataset_path, families, baseline):
        seen["scored"].append(Path(dataset_path))
        return scorer(bundle, dataset_path, families, baseline)

    def depth_baseline_mps(dataset_path, families):
        seen["baseline"].append(Path(dataset_path))
        return np.full(16, 3000.0)

    monkeypatch.setattr(generalisation, "score_model", score_model)
    monkeypatch.setattr(generalisation, "depth_baseline_mps", depth_baseline_mps)
    work = tmp_path / "work"
    argv = ["--data", str(dataset), "--work-dir", str(work), "--held-out", "curvefault-b", "--epochs", "4",
            "--rows", "general without K", "--no-write"]  # fmt: skip
    generalisation.main([*argv, "--score-data", str(other)])
    assert seen == {"scored": [other], "baseline": [dataset]}
    row = json.loads((work / "results.jsonl").read_text())
    assert row["score_dataset"] == str(other) and row["dataset"] == str(dataset)
    # A row scored on the training file, then rescored elsewhere: it now says so.
    (work / "results.jsonl").write_text(json.dumps({**row, "score_dataset": None}) + "\n")
    seen["scored"].clear()
    generalisation.main([*argv, "--rescore"])
    assert seen["scored"] == [dataset], "no --score-data: where it was scored, here the training file"
    generalisation.main([*argv, "--rescore", "--score-data", str(other)])
    assert seen["scored"][-1] == other
    assert json.loads((work / "results.jsonl").read_text())["score_dataset"] == str(other)


def test_rescore_adds_new_scores_to_the_recorded_rows_without_training(tmp_path, fake_training, capsys):
    dataset = write_dataset(tmp_path / "mix.h5", num_samples=32, families=FAMILIES)
    work = tmp_path / "work"
    argv = ["--data", str(dataset), "--work-dir", str(work), "--held-out", "curvefault-b", "--epochs", "4",
            "--rows", "general without K", "--no-write"]  # fmt: skip
    generalisation.main(argv)
    results = work / "results.jsonl"
    row = json.loads(results.read_text())
    assert "bias m/s" in capsys.readouterr().out
    old = {key: value for key, value in row.items() if key not in ("bias_mps", "mae_mps")}  # before the split
    results.write_text(json.dumps({**old, "mae_mps": 1.0}) + "\n")
    generalisation.main([*argv, "--report"])
    assert "| 1 | 0.700 | 400 | +0.25 | 350 | 20.0 | – |" in capsys.readouterr().out, "not scored: a dash"
    generalisation.main([*argv, "--rescore"])
    assert len(fake_training) == 1, "nothing trained"
    again = json.loads(results.read_text())
    assert again["mae_mps"] == 300.0 and again["bias_mps"] == -5.0 and again["row"] == "general without K"
    assert "| 300 | 0.700 | 400 |" in capsys.readouterr().out


def test_an_unknown_row_is_refused_instead_of_skipped(capsys):
    # "fine-tuned on K" is a row of the table, not something --rows trains: it once ran nothing, silently.
    with pytest.raises(SystemExit):
        generalisation.build_parser().parse_args(["--rows", "general without K", "fine-tuned on K"])
    assert "argument --rows: invalid choice: 'fine-tuned on K'" in capsys.readouterr().err
