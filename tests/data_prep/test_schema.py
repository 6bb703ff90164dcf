"""The HDF5 contract: validate() catches each kind of damage; splits and statistics have their properties."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from core.errors import UserError
from data_prep import schema
from data_prep.ingest import IngestConfig, ingest
from data_prep.normalization import (
    NormalizationConfig,
    RunningStats,
    StatisticsAccumulator,
    denormalize_seismic,
    denormalize_velocity,
    normalize_seismic,
    normalize_velocity,
)
from data_prep.splits import check_splits, extend_splits, make_splits, split_sizes
from tests.data_prep.segy_fixtures import tiny_geometry, write_synthetic_folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("schema")
    survey, _, _ = write_synthetic_folder(folder / "survey", tiny_geometry(), 6, 3)
    return ingest([survey], folder / "data.h5", IngestConfig(progress=False))


def _damaged(dataset, tmp_path, damage):
    copy = tmp_path / "copy.h5"
    shutil.copy(dataset, copy)
    with h5py.File(copy, "r+") as h5:
        damage(h5)
    return copy


def test_valid_dataset_summary(dataset):
    summary = schema.validate(dataset)
    assert summary.num_samples == 6 and summary.seismic_shape == (6, 2, 8, 3)
    assert summary.velocity_shape == (6, 6, 10)
    assert sum(summary.split_sizes.values()) == 6
    with schema.open_dataset(dataset) as h5:
        assert h5["seismic"].attrs["axes"] == "sample,shot,time,receiver"
        assert h5["velocity"].attrs["units"] == "m/s"


def _drop_edges(h5):
    del h5["edges"]


def _overlap_splits(h5):
    val = h5["splits/val"][()]
    del h5["splits/train"]
    h5["splits"].create_dataset("train", data=np.sort(np.r_[val, h5["splits/test"][()]]))


def _nan_sample(h5):
    h5["seismic"][2, 0, 0, 0] = np.nan


def _edges_out_of_range(h5):
    h5["edges"][1, 0, 0] = 7


def _wrong_dtype(h5):
    data = h5["velocity"][()]
    del h5["velocity"]
    h5.create_dataset("velocity", data=data.astype(np.float64), chunks=(1, 6, 10))


def _in_progress(h5):
    h5.attrs["write_in_progress"] = True


def _stale_statistics(h5):
    h5["normalization"].attrs["train_split_sha256"] = "0" * 64


def _no_provenance_hash(h5):
    del h5["provenance"].attrs["sources"]


def _bad_version(h5):
    h5.attrs["schema_version"] = 99


def _receiver_outside_grid(h5):
    h5["sample_receiver_positions_m"][0, 2, 1] = 690.0  # the grid's x nodes end at 90 m


def _nominal_outside_grid(h5):
    h5["geometry/receiver_positions_m"][2, 1] = 95.0


def _same_identity_twice(h5):
    h5["sample_id"][1] = h5["sample_id"][0]  # same origin (the folder), same id


def _other_start_time(h5):
    h5["sample_start_time_s"][3] = 0.004


def _origin_out_of_range(h5):
    h5["sample_origin"][0] = 5


def _family_as_numbers(h5):
    del h5["sample_family"]
    h5.create_dataset("sample_family", data=np.zeros(6, np.int32))


def _no_start_times(h5):
    del h5["sample_start_time_s"]


def _no_origins(h5):
    del h5["provenance"].attrs["origins"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_drop_edges, "missing edges"),
        (_overlap_splits, "more than one split"),
        (_nan_sample, "seismic sample 2 holds NaN"),
        (_edges_out_of_range, "other than 0 and 1"),
        (_wrong_dtype, "velocity must be float32"),
        (_in_progress, "append was interrupted"),
        (_stale_statistics, "not computed from the current train split"),
        (_no_provenance_hash, "provenance lacks sources"),
        (_bad_version, "schema_version is 99; this code reads versions 1, 2"),
        (
            _receiver_outside_grid,
            r"sample 0: receiver 3 at \(depth, x\) = \(0, 690\) m lies outside the velocity grid \(depth 0-50 m, x 0-90 m",
        ),
        (
            _nominal_outside_grid,
            r"the nominal geometry's receiver 3 at \(depth, x\) = \(0, 95\) m lies outside",
        ),
        (_same_identity_twice, r"sample \(origin 0, id 1\) appears 2 times"),
        (_other_start_time, "sample 3 starts at 4 ms, the dataset's time axis at 0 ms"),
        (_origin_out_of_range, "sample_origin points outside the provenance origins list"),
        (_family_as_numbers, "sample_family must be UTF-8 strings"),
        (_no_start_times, "missing sample_start_time_s"),
        (_no_origins, "provenance lacks origins"),
    ],
)
def test_validate_reports_damage(dataset, tmp_path, damage, message):
    with pytest.raises(schema.SchemaError, match=message):
        schema.validate(_damaged(dataset, tmp_path, damage))


def test_validate_refuses_non_hdf5(tmp_path):
    (tmp_path / "x.h5").write_text("not hdf5")
    with pytest.raises(schema.SchemaError, match="not a readable HDF5 file"):
        schema.validate(tmp_path / "x.h5")


@pytest.mark.parametrize("num_samples", [1, 2, 3, 7, 10, 101, 1000])
def test_splits_are_disjoint_complete_seeded(num_samples):
    splits = make_splits(num_samples, (0.8, 0.1, 0.1), seed=4)
    assert check_splits(splits, num_samples) == []
    assert sum(len(v) for v in splits.values()) == num_samples
    if num_samples >= 3:
        assert all(len(v) >= 1 for v in splits.values()), "each split non-empty when possible"
    again = make_splits(num_samples, (0.8, 0.1, 0.1), seed=4)
    assert all(np.array_equal(splits[k], again[k]) for k in splits), "same seed, same splits"
    if num_samples >= 100:
        tenth = round(num_samples / 10)
        assert split_sizes(num_samples, (0.8, 0.1, 0.1)) == (num_samples - 2 * tenth, tenth, tenth)
        other = make_splits(num_samples, (0.8, 0.1, 0.1), seed=5)
        assert not np.array_equal(splits["train"], other["train"]), "another seed, other splits"


def test_extend_splits_keeps_existing_assignment():
    first = make_splits(50, (0.7, 0.2, 0.1), seed=1)
    extended = extend_splits(first, 30, (0.7, 0.2, 0.1), seed=1)
    assert check_splits(extended, 80) == []
    for name in first:
        assert np.array_equal(extended[name][extended[name] < 50], first[name])
    with pytest.raises(ValueError, match="summing to 1"):
        make_splits(10, (0.5, 0.2, 0.2))


def test_running_stats_merge_equals_one_pass():
    rng = np.random.default_rng(0)
    values = rng.standard_normal(10_000) * 3 + 7
    merged = RunningStats()
    for block in np.array_split(values, 7):
        merged.merge(RunningStats().update(block))
    assert merged.count == values.size
    assert merged.mean == pytest.approx(values.mean(), rel=1e-12)
    assert merged.std == pytest.approx(values.std(), rel=1e-12)
    assert (merged.minimum, merged.maximum) == (values.min(), values.max())


@pytest.mark.parametrize("method", ["minmax", "standard"])
def test_normalisation_round_trip_and_openfwi_convention(method):
    rng = np.random.default_rng(1)
    seismic = (rng.standard_normal((4, 5, 100, 7)) * 50).astype(np.float32)
    velocity = rng.uniform(1500, 4500, (4, 7, 7)).astype(np.float32)
    accumulator = StatisticsAccumulator(NormalizationConfig(method=method))
    accumulator.update(seismic, velocity)
    stats = accumulator.result()
    normalized = normalize_seismic(seismic, stats)
    assert normalized.dtype == np.float32
    if method == "minmax":
        assert normalized.min() == pytest.approx(-1.0, abs=1e-6) and normalized.max() == pytest.approx(
            1.0, abs=1e-6
        )
        assert np.allclose(normalize_velocity(np.array([1500.0, 4500.0]), stats), [-1.0, 1.0])
    else:
        transformed = np.sign(seismic) * np.log1p(np.abs(seismic))
        assert normalized.mean() == pytest.approx(0.0, abs=1e-4) and normalized.std() == pytest.approx(
            1.0, rel=1e-4
        )
        assert stats.seismic["mean"] == pytest.approx(float(transformed.astype(np.float64).mean()), abs=1e-9)
    assert np.allclose(denormalize_seismic(normalized, stats), seismic, rtol=1e-4, atol=1e-4)
    assert np.allclose(denormalize_velocity(normalize_velocity(velocity, stats), stats), velocity, rtol=1e-5)


def test_stored_statistics_round_trip(dataset):
    stats = schema.read_normalization(dataset)
    assert type(stats).from_dict(stats.to_dict()) == stats
    assert stats.method == "minmax" and stats.seismic_transform == "log1p"


def _as_version_1(h5):
    """What an earlier version wrote: no per-sample origin/family/positions/start time, no start_time_s."""
    for name in schema.SAMPLE_FIELDS[2]:
        if name not in schema.SAMPLE_FIELDS[1]:
            del h5[name]
    for key in ("origins", "families", "engine_settings"):
        del h5["provenance"].attrs[key]
    del h5["geometry"].attrs["start_time_s"]
    del h5["splits"].attrs["stratified_by"]
    h5.attrs["schema_version"] = 1


def test_version_1_files_are_still_read(dataset, tmp_path):
    old = _damaged(dataset, tmp_path, _as_version_1)
    summary = schema.validate(old)
    assert summary.schema_version == 1 and summary.num_samples == 6
    with schema.open_dataset(old) as h5:
        table = schema.read_sample_table(h5)
        geometry = schema.read_geometry(h5)
        assert schema.read_engine_settings(h5) == {}
        sample_source = h5["sample_source"][()]
    assert geometry.start_time_s == 0.0
    assert table.family.tolist() == ["unknown"] * 6
    assert table.origin.tolist() == sample_source.tolist(), "version 1: a sample's origin is its seismic file"
    assert table.origin_name.tolist() == [table.origins[i]["name"] for i in sample_source]
    assert table.sample_id.tolist() == [1, 2, 3, 4, 5, 6]
    assert np.array_equal(table.source_positions_m, np.broadcast_to(geometry.source_positions_m, (6, 2, 2)))
    assert np.array_equal(
        table.receiver_positions_m, np.broadcast_to(geometry.receiver_positions_m, (6, 3, 2))
    )
    assert table.start_time_s.tolist() == [0.0] * 6 and table.x_origin_m.tolist() == [0.0] * 6
    assert summary.families == {"unknown": {"samples": 6, **summary.split_sizes}}
    # Version 1 keeps its own uniqueness rule (a bare sample id).
    with h5py.File(old, "r+") as h5:
        h5["sample_id"][1] = 1
    with pytest.raises(schema.SchemaError, match="sample_id holds duplicates"):
        schema.validate(old)


def test_version_1_files_are_not_appended_to(dataset, tmp_path):
    old = _damaged(dataset, tmp_path, _as_version_1)
    survey, _, _ = write_synthetic_folder(tmp_path / "more", tiny_geometry(), 2, 2, family="more")
    before = old.read_bytes()
    with pytest.raises(UserError, match=r"schema-version-1 dataset .* Re-create the dataset"):
        ingest([survey], old, IngestConfig(progress=False), append=True)
    assert old.read_bytes() == before


def test_readers_take_any_sample_order(dataset):
    with schema.open_dataset(dataset) as h5:
        everything = schema.read_sample_table(h5)
        picked = schema.read_sample_table(h5, [4, 0, 4])
        sources, receivers = schema.read_sample_positions(h5, [5, 1])
    assert picked.index.tolist() == [4, 0, 4]
    assert picked.sample_id.tolist() == everything.sample_id[[4, 0, 4]].tolist()
    assert picked.family.tolist() == ["fixture"] * 3
    assert np.array_equal(sources, everything.source_positions_m[[5, 1]])
    assert np.array_equal(receivers, everything.receiver_positions_m[[5, 1]])
