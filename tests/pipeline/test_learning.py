"""A trained model is good, not only well-plumbed: the default suite's check that learning works.

The model is the session's ``trained_flatvel`` (tests/pipeline/trained_model.py: a small U-Net, 12 epochs on
192 synthesized flatvel-a samples of the window geometry). It must beat, by a clear margin, what a model
that learned nothing from the seismic can do: the 1-D-average model (the training split's mean velocity at
each depth) on the held-out test split, and the constant and 1-D-average models on a stitched survey line.

The margins are set so that broken learning fails them (``SEISINVERT_BREAK_LEARNING``, see trained_model.py).
Measured on a 2-core machine (the training is deterministic: the same numbers on every run there), model MAE
over the baseline's:

=========================  ===========================  ==========================================
run                        test MAE / 1-D average        section MAE / constant; / 1-D average
=========================  ===========================  ==========================================
as trained                 0.36 (200 / 548 m/s)          0.40 (362 / 902 m/s); 0.62 (/ 586 m/s)
learning rate 0            1.51 (830 m/s)                1.07 (968 m/s); 1.65
training labels shuffled   1.06 (582 m/s)                0.61 (549 m/s); 0.94
=========================  ===========================  ==========================================

Thresholds: 0.6 on the test split (and better than the baseline on >= 80 % of the test samples: 100 %
trained, 0 % at learning rate 0, 17 % shuffled); 0.6 of the constant's and 0.8 of the 1-D average's on the
section. A model that learned only the velocity-depth trend (shuffled labels) beats the constant model by
itself, which is why the section is held to the 1-D average too.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.pipeline import line_fixtures as F
from tests.pipeline.trained_model import depth_average_model, split_velocity

#: The trained model's test MAE must be below this fraction of the 1-D-average model's.
MAX_MAE_RATIO_TO_DEPTH_AVERAGE = 0.6
#: The stitched section's MAE must be below this fraction of the constant model's (the training mean) ...
MAX_SECTION_MAE_RATIO_TO_CONSTANT = 0.6
#: ... and below this fraction of the 1-D-average model's on the same line (a model that learned only the
#: velocity-depth trend beats a constant one easily: with shuffled training labels the section's MAE was
#: 0.61 x the constant model's).
MAX_SECTION_MAE_RATIO_TO_DEPTH_AVERAGE = 0.8


def test_trained_unet_beats_the_depth_average_model_on_held_out_samples(trained_flatvel, capsys):
    from pipeline.bundle import load_bundle
    from pipeline.feeding import SeismicDataset

    dataset = trained_flatvel.dataset
    test = SeismicDataset(dataset, "test", batch_size=8)
    seismic, truth_mps, _ = test.read(np.sort(test.indices))
    assert np.allclose(truth_mps, split_velocity(dataset, "test")), "test split read in another order"
    predicted = load_bundle(trained_flatvel.result.bundle_dir).predict(seismic)["velocity_mps"]

    model_mae = float(np.mean(np.abs(predicted - truth_mps)))
    profile = depth_average_model(dataset)
    baseline_mae = float(np.mean(np.abs(profile[None, :, None] - truth_mps)))
    per_sample_better = np.mean(
        np.abs(predicted - truth_mps).mean(axis=(1, 2))
        < np.abs(profile[None, :, None] - truth_mps).mean(axis=(1, 2))
    )
    with capsys.disabled():
        print(
            f"\nlearning ({trained_flatvel.broken or 'as trained'}): test MAE {model_mae:.1f} m/s, 1-D average "
            f"{baseline_mae:.1f} m/s (ratio {model_mae / baseline_mae:.2f}); better on {per_sample_better:.0%} of "
            f"{len(truth_mps)} samples; epochs {len(trained_flatvel.result.history)}"
        )
    assert model_mae < MAX_MAE_RATIO_TO_DEPTH_AVERAGE * baseline_mae, (
        f"expected the trained model's test MAE below {MAX_MAE_RATIO_TO_DEPTH_AVERAGE} x the 1-D-average model's "
        f"({baseline_mae:.1f} m/s); got {model_mae:.1f} m/s: learning is broken"
    )
    assert per_sample_better >= 0.8, (
        f"expected the model better on >= 80% of test samples, got {per_sample_better:.0%}"
    )
    # The training run's own test evaluation agrees with this one (same model, same split).
    assert trained_flatvel.result.test_metrics["velocity_mae_mps"] == pytest.approx(model_mae, rel=0.02)


def test_stitched_section_of_the_registered_model_beats_the_constant_and_depth_average_models(
    trained_flatvel, tmp_path, monkeypatch, capsys
):
    """``pipeline.infer`` with ``models:/…@champion`` on a flatvel-a line five windows long (the engine's
    gathers of one model drawn over the whole line): the stitched section against the truth."""
    from pipeline.infer import InferConfig, infer
    from pipeline.qc import QCConfig

    line = F.simulate_line(num_columns=72, kind="flatvel-a")
    survey = F.write_line(tmp_path / "line.sgy", line)
    truth = F.write_truth(tmp_path / "truth.sgy", line)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_flatvel.tracking_uri)
    result = infer(
        [survey],
        trained_flatvel.model_uri,
        tmp_path / "section",
        InferConfig(truth=truth, qc=QCConfig(enabled=False)),
        progress=False,
    )
    assert result.merged and result.num_windows == 5
    constant_mps = float(split_velocity(trained_flatvel.dataset, "train").mean())
    constant_mae = float(np.mean(np.abs(line.velocity_mps - constant_mps)))
    profile = depth_average_model(trained_flatvel.dataset)
    depth_average_mae = float(np.mean(np.abs(line.velocity_mps - profile[:, None])))
    section_mae = result.section_errors["velocity_mae_mps"]
    with capsys.disabled():
        print(
            f"\nsection ({trained_flatvel.broken or 'as trained'}): MAE {section_mae:.1f} m/s; constant "
            f"{constant_mps:.0f} m/s: {constant_mae:.1f} m/s (ratio {section_mae / constant_mae:.2f}); 1-D "
            f"average: {depth_average_mae:.1f} m/s (ratio {section_mae / depth_average_mae:.2f})"
        )
    assert section_mae < MAX_SECTION_MAE_RATIO_TO_CONSTANT * constant_mae, (
        f"expected the stitched section's MAE below {MAX_SECTION_MAE_RATIO_TO_CONSTANT} x the constant model's "
        f"({constant_mae:.1f} m/s); got {section_mae:.1f} m/s"
    )
    assert section_mae < MAX_SECTION_MAE_RATIO_TO_DEPTH_AVERAGE * depth_average_mae, (
        f"expected the stitched section's MAE below {MAX_SECTION_MAE_RATIO_TO_DEPTH_AVERAGE} x the 1-D-average "
        f"model's ({depth_average_mae:.1f} m/s); got {section_mae:.1f} m/s"
    )
