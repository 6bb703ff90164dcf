"""The accuracy benchmark's edge-head verdict: a difference within the seed spread is a tie; what the edge
task claims (MAE near interfaces, a smoother error map) is judged with MAE and SSIM."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks.accuracy import edge_head_verdict


def _rows(dual: tuple[float, float], single: tuple[float, float]) -> dict:
    """Means keyed as the benchmark keeps them: (MAE, SSIM) of the dual U-Net and of the U-Net without edges."""
    return {
        name: {"velocity_mae": mae, "velocity_ssim": ssim, "train_samples_per_s": speed, "epochs": epochs}
        for name, (mae, ssim), speed, epochs in (
            ("unet", dual, 20.0, 5.0),
            ("unet-no-edges", single, 35.0, 8.0),
        )
    }


def _spreads(mae: float, ssim: float) -> dict:
    return {name: {"velocity_mae": mae, "velocity_ssim": ssim} for name in ("unet", "unet-no-edges")}


def test_clear_differences_give_a_verdict_and_the_budget_adds_epochs():
    helps = edge_head_verdict(_rows((0.10, 0.85), (0.12, 0.80)), _spreads(0.005, 0.01), budgeted=True)
    assert helps.startswith("edge head helps (unet: SSIM 0.8500 vs 0.8000 without; MAE 0.1000 vs 0.1200;")
    assert helps.endswith(
        "it costs 43 % of the training speed: 20.0 vs 35.0 samples/s, 5.0 vs 8.0 epochs in the budget)"
    )
    hurts = edge_head_verdict(_rows((0.14, 0.76), (0.10, 0.82)), _spreads(0.01, 0.02), budgeted=False)
    assert hurts.startswith("edge head does not help (")
    assert hurts.endswith("20.0 vs 35.0 samples/s)"), "equal epochs: no epochs-in-the-budget clause"


def test_differences_within_the_seed_spread_are_ties():
    # SSIM 0.784 vs 0.785 with half-spreads 0.005 + 0.002: a tie; MAE 0.121 vs 0.122 with 0.002 + 0.0001: a tie.
    tie = edge_head_verdict(
        {
            "unet": {
                "velocity_mae": 0.121,
                "velocity_ssim": 0.784,
                "train_samples_per_s": 42.0,
                "epochs": 6.0,
            },
            "unet-no-edges": {
                "velocity_mae": 0.122,
                "velocity_ssim": 0.785,
                "train_samples_per_s": 65.0,
                "epochs": 6.0,
            },
        },
        {
            "unet": {"velocity_mae": 0.002, "velocity_ssim": 0.005},
            "unet-no-edges": {"velocity_mae": 0.0001, "velocity_ssim": 0.002},
        },
        budgeted=False,
    )
    assert tie.startswith("edge head neither helps nor hurts beyond the seed spread (")
    mixed = edge_head_verdict(_rows((0.10, 0.801), (0.12, 0.80)), _spreads(0.005, 0.01), budgeted=False)
    assert mixed.startswith("edge head helps on MAE, ties on SSIM within the seed spread (")
    one_seed = edge_head_verdict(_rows((0.10, 0.79), (0.12, 0.80)), _spreads(0.0, 0.0), budgeted=False)
    assert one_seed.startswith("edge head helps on MAE, hurts on SSIM (")


def test_the_smoothness_claims_and_the_shared_decoder_are_judged_too():
    means = _rows((0.10, 0.80), (0.10, 0.80))
    means["unet"].update(velocity_interface_mae_mps=200.0, velocity_error_tv_mps=30.0)
    means["unet-no-edges"].update(velocity_interface_mae_mps=260.0, velocity_error_tv_mps=29.0)
    means["unet-shared"] = {**means["unet"], "train_samples_per_s": 32.0}
    spreads = _spreads(0.0, 0.0)
    for name in spreads:
        spreads[name].update(velocity_interface_mae_mps=10.0, velocity_error_tv_mps=2.0)
    spreads["unet-shared"] = spreads["unet"]
    verdict = edge_head_verdict(means, spreads, budgeted=False)
    assert verdict.startswith(
        "edge head ties on MAE within the seed spread, ties on SSIM within the seed spread, helps on MAE near "
        "interfaces, ties on error TV within the seed spread ("
    )
    assert "MAE near interfaces 200.0 vs 260.0 m/s; error TV 30.0 vs 29.0 m/s" in verdict
    shared = edge_head_verdict(means, spreads, budgeted=False, dual_name="unet-shared")
    assert shared.startswith("unet-shared's edge head ties on MAE")
    assert "it costs 9 % of the training speed: 32.0 vs 35.0 samples/s" in shared


def test_an_edge_head_measured_faster_than_none_is_called_noise_not_a_negative_cost():
    rows = _rows((0.10, 0.85), (0.10, 0.85))
    rows["unet"]["train_samples_per_s"] = 40.0
    text = edge_head_verdict(rows, _spreads(0.01, 0.02), budgeted=False)
    assert (
        "no measurable cost in training speed (40.0 vs 35.0 samples/s" in text
        and "-" not in text.split("cost")[1][:4]
    )


def test_the_general_mix_trains_with_the_recipe_s_own_settings_and_its_rows_are_reported(
    tmp_path, monkeypatch, capsys
):
    """``--families general``: the general recipe's dataset and settings (batch size, learning rate,
    augmentation, no total-time budget), the benchmark's epochs and seed; ``--report`` finds its rows again."""
    from benchmarks import accuracy

    configs = []

    def compare_table(config):
        configs.append(config)
        return [
            {
                "model": entry.name,
                "velocity_mae": 0.2,
                "velocity_ssim": 0.7,
                "epochs": 3,
                "training_s": 60.0,
                "train_samples_per_s": 50.0,
            }
            for entry in config.models
        ]

    def ensure_default_dataset(config, echo=print):
        return Path(config.directory) / "default-mix12-abc-400-seed0.h5"

    monkeypatch.setattr(accuracy, "run_isolated", lambda function, *a: compare_table(*a))
    monkeypatch.setattr("pipeline.training.default_dataset.ensure_default_dataset", ensure_default_dataset)
    monkeypatch.setattr(
        "pipeline.training.default_dataset.default_dataset_path",
        lambda config: Path(config.directory) / "default-mix12-abc-400-seed0.h5",
    )
    argv = [
        "--families",
        "general",
        "--models",
        "unet",
        "unet-no-edges",
        "--epochs",
        "3",
        "--seeds",
        "0",
        "1",
    ]
    argv += ["--data-dir", str(tmp_path), "--no-write"]
    assert accuracy.main(argv) == 0
    assert len(configs) == 2
    train = configs[1].train
    assert train.batch_size == 8 and train.optimizer.learning_rate == 5e-4 and train.epochs == 3
    assert train.max_total_time_s is None and train.max_train_time_s is None
    assert train.data.augmentation.polarity_probability == 0.5 and train.runtime.seed == 1
    assert train.data.path.endswith("default-mix12-abc-400-seed0.h5")
    assert [entry.name for entry in configs[0].models] == ["unet", "unet-no-edges"]
    page = capsys.readouterr().out
    assert "## Accuracy: the general mix" in page and "400 samples of each of its\n12 families" in page
    assert "--train-samples" not in page, "the recipe's own sizes, not the per-family options"
    monkeypatch.setattr(accuracy, "run_isolated", lambda *a: pytest.fail("--report trains nothing"))
    args = SimpleNamespace(
        families=["general"], epochs=3, budget_s=600.0, unet="unet-small", data_dir=str(tmp_path),
        train_samples=2000, test_samples=200, batch_size=16, ssim_weight=0.5,
    )  # fmt: skip
    assert len(accuracy.finished_rows(args)) == 4, "two models x two seeds"
    assert accuracy.finished_rows(SimpleNamespace(**{**vars(args), "families": ["flatvel-a"]})) == []
