"""The accuracy benchmark's edge-head verdict: a difference within the seed spread is a tie; what the edge
task claims (MAE near interfaces, a smoother error map) is judged with MAE and SSIM."""

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
