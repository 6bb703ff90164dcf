"""The model bundle: save/load round trip, raw-seismic prediction in m/s, shape refusal, atomic writing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import UserError
from data_prep.normalization import NormalizationStats
from data_prep.schema import DatasetGeometry
from pipeline.bundle import (
    EDGES,
    INFO_FILE,
    MODEL_FILE,
    VELOCITY_MPS,
    amplitude_statistics,
    engine_settings_from_provenance,
    load_bundle,
    save_bundle,
)

SEISMIC_SHAPE = (2, 64, 12)
GRID = (8, 12)
TINY_UNET = {
    "seismic_shape": list(SEISMIC_SHAPE),
    "grid_shape": list(GRID),
    "front_end_filters": [4],
    "front_end_kernel_sizes": [3],
    "encoder_filters": [4, 8],
    "blocks_per_level": 1,
}


def _stats(velocity_range=(2000.0, 4000.0)) -> NormalizationStats:
    return NormalizationStats(
        method="minmax",
        seismic_transform="log1p",
        seismic={"count": 10, "min": -2.0, "max": 3.0, "mean": float("nan"), "std": float("nan")},
        seismic_raw={"count": 10, "min": -6.4, "max": 19.1, "mean": float("nan"), "std": float("nan")},
        velocity={"count": 10, "min": 2000.0, "max": 4000.0, "mean": 3000.0, "std": 500.0},
        velocity_min_mps=velocity_range[0],
        velocity_max_mps=velocity_range[1],
        num_train_samples=10,
    )


def _geometry() -> DatasetGeometry:
    return DatasetGeometry(
        source_positions_m=np.array([[10.0, 0.0], [10.0, 110.0]]),
        receiver_positions_m=np.stack([np.full(12, 10.0), np.arange(12) * 10.0], axis=1),
        sample_interval_s=0.002,
        num_samples=SEISMIC_SHAPE[1],
        grid_spacing_m=10.0,
        grid_shape=GRID,
    )


@pytest.fixture(scope="module")
def tiny_model():
    import models

    return models.build("unet", TINY_UNET)


def test_round_trip_and_prediction_in_mps(tmp_path: Path, tiny_model):
    stats = _stats()
    directory = save_bundle(
        tmp_path / "bundle",
        tiny_model,
        stats=stats,
        geometry=_geometry(),
        engine_settings={"spatial_order": 4},
        dataset_info={"path": "x.h5", "families": ["flatvel-a"]},
        amplitude_stats={"rms_median": 1.5},
        extra={"mlflow_run_id": "abc"},
    )
    assert sorted(p.name for p in directory.iterdir()) == [INFO_FILE, MODEL_FILE]
    assert not list(tmp_path.glob(".*partial")), "no temporary folder may remain"
    info = json.loads((directory / INFO_FILE).read_text())  # strict JSON: NaN became null
    assert info["family"] == "unet" and info["mlflow_run_id"] == "abc"
    assert info["normalization"]["seismic"]["mean"] is None

    bundle = load_bundle(directory)
    assert bundle.family == "unet" and bundle.has_edges
    assert bundle.seismic_shape == SEISMIC_SHAPE and bundle.grid_shape == GRID
    assert bundle.engine_settings == {"spatial_order": 4}
    np.testing.assert_allclose(bundle.geometry.source_positions_m, _geometry().source_positions_m)
    assert bundle.stats.velocity_min_mps == 2000.0

    raw = np.random.default_rng(0).normal(0, 3, (3, *SEISMIC_SHAPE)).astype(np.float32)
    result = bundle.predict(raw, batch_size=2)
    assert result[VELOCITY_MPS].shape == (3, *GRID) and result[VELOCITY_MPS].dtype == np.float32
    # By hand: normalise with the stats (log1p, then min-max of [-2, 3] to [-1, 1]), tanh output -> m/s.
    transformed = np.sign(raw) * np.log1p(np.abs(raw))
    normalized = (transformed + 2.0) * (2.0 / 5.0) - 1.0
    outputs = tiny_model(normalized.astype(np.float32), training=False)
    expected = (np.asarray(outputs["velocity"]) + 1.0) / 2.0 * 2000.0 + 2000.0
    np.testing.assert_allclose(result[VELOCITY_MPS], expected, rtol=1e-5, atol=1e-2)
    assert 2000.0 <= result[VELOCITY_MPS].min() and result[VELOCITY_MPS].max() <= 4000.0
    np.testing.assert_allclose(result[EDGES], np.asarray(outputs["edges"]), atol=1e-6)
    # The .keras file beside bundle.json resolves to the same bundle.
    assert load_bundle(directory / MODEL_FILE).path == directory


def test_wrong_shape_is_refused_with_both_shapes(tmp_path: Path, tiny_model):
    bundle = load_bundle(save_bundle(tmp_path / "b", tiny_model, stats=_stats(), geometry=_geometry()))
    with pytest.raises(UserError, match=r"\(batch, 2, 64, 12\).*Received shape \(1, 2, 32, 12\)"):
        bundle.predict(np.zeros((1, 2, 32, 12), np.float32))
    with pytest.raises(UserError, match="add a leading batch axis"):
        bundle.predict(np.zeros(SEISMIC_SHAPE, np.float32))
    with pytest.raises(UserError, match="NaN"):
        bundle.predict(np.full((1, *SEISMIC_SHAPE), np.nan, np.float32))


def test_mirror_average_is_the_mean_of_the_sample_and_its_mirror(tmp_path: Path, tiny_model):
    import dataclasses

    bundle = load_bundle(save_bundle(tmp_path / "b", tiny_model, stats=_stats(), geometry=_geometry()))
    raw = np.random.default_rng(1).normal(0, 3, (3, *SEISMIC_SHAPE)).astype(np.float32)
    plain = bundle.predict(raw)
    # Sources at x 0 and 110 m of a 0..110 m window: the mirror swaps the two shots and reverses the receivers.
    mirrored = bundle.predict(np.ascontiguousarray(raw[:, ::-1, :, ::-1]))
    averaged = bundle.predict(raw, batch_size=2, mirror_average=True)
    for name in (VELOCITY_MPS, EDGES):
        np.testing.assert_allclose(
            averaged[name], 0.5 * (plain[name] + mirrored[name][..., ::-1]), rtol=1e-5, atol=1e-3
        )
    assert np.abs(averaged[VELOCITY_MPS] - plain[VELOCITY_MPS]).max() > 1.0, "the mirror changes the section"
    # A layout that does not mirror onto itself is refused, naming the setting to turn off.
    lopsided = dataclasses.replace(_geometry(), source_positions_m=np.array([[10.0, 0.0], [10.0, 40.0]]))
    bundle = load_bundle(save_bundle(tmp_path / "c", tiny_model, stats=_stats(), geometry=lopsided))
    with pytest.raises(
        UserError, match=r"mirror_average: the source at x 0 m mirrors to 110 m.*mirror_average=false"
    ):
        bundle.predict(raw, mirror_average=True)
    np.testing.assert_allclose(bundle.predict(raw)[VELOCITY_MPS], plain[VELOCITY_MPS], rtol=1e-6)


def test_overwrite_replaces_and_missing_paths_are_explained(tmp_path: Path, tiny_model):
    first = save_bundle(tmp_path / "b", tiny_model, stats=_stats(), geometry=_geometry())
    save_bundle(first, tiny_model, stats=_stats((1500.0, 4500.0)), geometry=_geometry())
    assert load_bundle(first).stats.velocity_min_mps == 1500.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"], "the replaced bundle must be removed"
    with pytest.raises(FileExistsError):
        save_bundle(first, tiny_model, stats=_stats(), geometry=_geometry(), overwrite=False)
    with pytest.raises(UserError, match="does not exist"):
        load_bundle(tmp_path / "missing")
    lone = tmp_path / "lone"
    lone.mkdir()
    tiny_model.save(lone / "m.keras")
    with pytest.raises(UserError, match="no bundle.json beside it"):
        load_bundle(lone / "m.keras")


def test_mlflow_addresses_go_through_tracking(tmp_path: Path, tiny_model):
    # pipeline.bundle knows no MLflow (tracking imports bundle, not the reverse): it names the function to use.
    with pytest.raises(UserError, match=r"MLflow address: load it with pipeline.tracking.load_bundle"):
        load_bundle("models:/seisinvert-unet@champion")
    from pipeline import tracking

    directory = save_bundle(tmp_path / "b", tiny_model, stats=_stats(), geometry=_geometry())
    assert tracking.load_bundle(directory).path == directory, "tracking.load_bundle reads folders too"


def test_amplitude_statistics_values():
    windows = np.zeros((3, 1, 4, 5), np.float32)
    windows[0] = 1.0  # RMS 1
    windows[1] = 2.0  # RMS 2
    windows[2, 0, 0, 0] = -10.0  # RMS 10 / sqrt(20)
    stats = amplitude_statistics(windows)
    assert stats["rms_median"] == pytest.approx(np.median([1.0, 2.0, 10 / np.sqrt(20)]))
    assert stats["abs_max"] == 10.0 and stats["num_windows"] == 3
    assert stats["abs_p99"] == pytest.approx(np.percentile(np.abs(windows), 99))
    with pytest.raises(ValueError, match="windows, shots, time, receivers"):
        amplitude_statistics(np.zeros((4, 5)))


def test_engine_settings_from_provenance():
    assert engine_settings_from_provenance({"engine": json.dumps({"spatial_order": 8})}) == {
        "spatial_order": 8
    }
    assert engine_settings_from_provenance({"sources": [{"engine": {"free_surface": False}}]}) == {
        "free_surface": False
    }
    assert engine_settings_from_provenance({"sources": []}) == {}
