"""SEG-Y -> HDF5 ingest: exact values, any format/byte order/trace order, grouping, append, regularisation."""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest

from core.errors import UserError
from data_prep import schema
from data_prep.edges import edge_map
from data_prep.ingest import GroupingConfig, IngestConfig, RegularizationConfig, ingest, main
from data_prep.normalization import NormalizationConfig, normalize_velocity
from data_prep.segy_io import write_velocity_models
from tests.data_prep.segy_fixtures import (
    FORMATS,
    decode,
    encoded_seismic,
    layered_velocity,
    tiny_geometry,
    write_fixture,
    write_synthetic_folder,
)

QUIET = IngestConfig(progress=False)


def _read(path):
    with h5py.File(path, "r") as h5:
        return {name: h5[name][()] for name in ("seismic", "velocity", "edges", "sample_id", "sample_source")}


def test_synthesize_style_folder_ingests_bit_for_bit(tmp_path):
    geometry = tiny_geometry(num_samples=32, num_shots=3, num_receivers=5)
    rng = np.random.default_rng(0)
    seismic = rng.standard_normal((5, 3, 32, 5)).astype(np.float32)
    folder, seismic, velocity = write_synthetic_folder(tmp_path / "survey", geometry, 5, 2, seismic=seismic)
    path = ingest([folder], tmp_path / "data.h5", QUIET)

    summary = schema.validate(path)
    assert summary.num_samples == 5 and summary.labelled
    data = _read(path)
    assert np.array_equal(data["seismic"], seismic), "seismic must equal the SEG-Y traces bit for bit"
    assert np.array_equal(data["velocity"], velocity)
    assert np.array_equal(data["edges"], edge_map(velocity))
    assert np.array_equal(data["sample_id"], np.arange(1, 6))
    with h5py.File(path, "r") as h5:
        geometry_stored = schema.read_geometry(h5)
        provenance = schema.read_provenance(h5)
        assert h5["seismic"].chunks == (1, 3, 32, 5) and h5["seismic"].compression is None
    assert not geometry_stored.differences(schema.DatasetGeometry.from_acquisition(geometry))
    names = [source["name"] for source in provenance["sources"]]
    assert "fixture_shots_000000-000001.segy" in names and "fixture_velocity_000004-000004.segy" in names
    assert all(len(source["sha256"]) == 64 and source["size_bytes"] > 0 for source in provenance["sources"])
    assert provenance["segyio_version"] and provenance["package_version"]
    assert "require_velocity: true" in provenance["configuration"]
    assert not list(tmp_path.glob(".*partial")), "no temporary file left behind"


@pytest.mark.parametrize("endian", ["big", "little"])
@pytest.mark.parametrize("sample_format", sorted(FORMATS))
def test_any_format_byte_order_and_trace_order(tmp_path, sample_format, endian):
    geometry = tiny_geometry()
    seismic = encoded_seismic(2, geometry)
    order = np.random.default_rng(sample_format).permutation(12)  # traces shuffled in the file
    write_fixture(
        tmp_path / "in" / "shots.sgy",
        seismic,
        geometry,
        sample_format=sample_format,
        endian=endian,
        trace_order=order,
    )
    write_velocity_models(tmp_path / "in" / "velocity.segy", layered_velocity(2, geometry), 10.0, 0)
    path = ingest([tmp_path / "in"], tmp_path / "data.h5", QUIET)
    stored = _read(path)["seismic"]
    model, shot, receiver, sample = decode(stored, geometry)
    # Sorted back into (sample, shot, time, receiver) whatever the file order.
    assert np.array_equal(model, np.broadcast_to(np.arange(2)[:, None, None, None], model.shape))
    assert np.array_equal(shot, np.broadcast_to(np.arange(2)[None, :, None, None], shot.shape))
    assert np.array_equal(sample, np.broadcast_to(np.arange(8)[None, None, :, None], sample.shape))
    assert np.array_equal(receiver, np.broadcast_to(np.arange(3), receiver.shape))
    assert np.array_equal(stored, seismic)


def test_field_data_grouped_by_shots_per_sample(tmp_path):
    geometry = tiny_geometry()
    seismic = encoded_seismic(3, geometry)

    def drop_model_id(headers):
        headers["UnassignedInt1"] = 0

    write_fixture(tmp_path / "field.sgy", seismic, geometry, edit_headers=drop_model_id)
    unlabelled = IngestConfig(progress=False, require_velocity=False)
    with pytest.raises(UserError, match="shots_per_sample"):
        ingest([tmp_path / "field.sgy"], tmp_path / "a.h5", unlabelled)
    config = dataclasses.replace(unlabelled, grouping=GroupingConfig(shots_per_sample=2))
    path = ingest([tmp_path / "field.sgy"], tmp_path / "a.h5", config)
    data = _read_unlabelled(path)
    assert np.array_equal(data["seismic"], seismic)
    assert np.array_equal(data["sample_id"], [1, 3, 5]), "sample id = first FieldRecord of the group"
    assert not schema.validate(path).labelled


def _read_unlabelled(path):
    with h5py.File(path, "r") as h5:
        assert "velocity" not in h5 and "edges" not in h5
        return {name: h5[name][()] for name in ("seismic", "sample_id")}


def test_npy_velocity_models_pair_by_row(tmp_path):
    geometry = tiny_geometry()
    seismic = encoded_seismic(2, geometry)
    write_fixture(tmp_path / "shots.segy", seismic, geometry)
    velocity = layered_velocity(2, geometry)
    np.save(tmp_path / "velocity.npy", velocity[:, None])  # OpenFWI's (models, 1, depth, x)
    with pytest.raises(UserError, match="grid_spacing_m"):
        ingest([tmp_path / "shots.segy", tmp_path / "velocity.npy"], tmp_path / "a.h5", QUIET)
    config = dataclasses.replace(QUIET, grid_spacing_m=10.0)
    path = ingest([tmp_path / "shots.segy", tmp_path / "velocity.npy"], tmp_path / "a.h5", config)
    assert np.array_equal(_read(path)["velocity"], velocity)


def test_append_adds_samples_keeps_splits_and_merges_statistics(tmp_path):
    geometry = tiny_geometry(num_samples=16)
    rng = np.random.default_rng(1)
    seismic = rng.standard_normal((20, 2, 16, 3)).astype(np.float32)
    velocity = layered_velocity(20, geometry)
    folder, _, _ = write_synthetic_folder(
        tmp_path / "all", geometry, 20, 10, seismic=seismic, velocity=velocity
    )
    first = tmp_path / "first"
    first.mkdir()
    second = tmp_path / "second"
    second.mkdir()
    for name in ("shots", "velocity"):
        (folder / f"fixture_{name}_000000-000009.segy").rename(first / f"{name}.segy")
        (folder / f"fixture_{name}_000010-000019.segy").rename(second / f"{name}.segy")

    # mean/std of the transformed seismic are kept only with method "standard": check their merging too.
    config = dataclasses.replace(QUIET, normalization=NormalizationConfig(method="standard"))
    path = ingest([first], tmp_path / "data.h5", config)
    with h5py.File(path, "r") as h5:
        old_splits = schema.read_splits(h5)
    ingest([second], path, config, append=True)
    schema.validate(path)
    with h5py.File(path, "r") as h5:
        splits = schema.read_splits(h5)
        stats = schema.read_normalization(h5)
        history = schema.read_provenance(h5)["history"]
        stored = h5["seismic"][()]
    assert np.array_equal(stored, seismic)
    for name in ("train", "val", "test"):
        assert np.array_equal(splits[name][splits[name] < 10], old_splits[name]), (
            f"old samples keep split {name}"
        )
    assert [entry["action"] for entry in history] == ["create", "append"]
    train = seismic[splits["train"]]
    transformed = np.sign(train) * np.log1p(np.abs(train))
    assert stats.num_train_samples == len(splits["train"])
    assert stats.seismic["min"] == pytest.approx(float(transformed.min()), rel=1e-6)
    assert stats.seismic["max"] == pytest.approx(float(transformed.max()), rel=1e-6)
    assert stats.seismic["mean"] == pytest.approx(
        float(transformed.astype(np.float64).mean()), rel=1e-9, abs=1e-12
    )
    assert stats.seismic["std"] == pytest.approx(float(transformed.astype(np.float64).std()), rel=1e-9)

    # Appending the same files again is refused and leaves the dataset untouched.
    before = path.read_bytes()
    with pytest.raises(UserError, match="already holds"):
        ingest([second], path, config, append=True)
    assert path.read_bytes() == before
    schema.validate(path)


def test_geometry_mismatch_is_refused_listing_differences_or_regularised(tmp_path):
    geometry = tiny_geometry(num_samples=40)
    other = dataclasses.replace(geometry, sample_interval_s=0.001, num_samples=80)
    t = np.arange(80) * 0.001
    wavelet = np.sin(2 * np.pi * 12 * t).astype(np.float32)
    fine = np.broadcast_to(wavelet[None, None, :, None], (2, 2, 80, 3)).copy()
    write_fixture(tmp_path / "a" / "shots.segy", encoded_seismic(2, geometry), geometry)
    write_velocity_models(tmp_path / "a" / "velocity.segy", layered_velocity(2, geometry), 10.0, 0)
    write_fixture(tmp_path / "b" / "shots.segy", fine, other, first_model=2)
    write_velocity_models(tmp_path / "b" / "velocity.segy", layered_velocity(2, geometry, 2), 10.0, 2)

    with pytest.raises(UserError) as error:
        ingest([tmp_path / "a", tmp_path / "b"], tmp_path / "x.h5", QUIET)
    message = str(error.value)
    assert "time samples 80 instead of 40" in message and "sample interval 1 ms instead of 2 ms" in message
    assert not (tmp_path / "x.h5").exists()

    config = dataclasses.replace(QUIET, regularization=RegularizationConfig(enabled=True))
    path = ingest([tmp_path / "a", tmp_path / "b"], tmp_path / "x.h5", config)
    resampled = _read(path)["seismic"][2, 0, :, 0]
    expected = np.sin(2 * np.pi * 12 * np.arange(40) * 0.002)
    # Anti-aliased 2:1 decimation of a 12 Hz sine: exact away from the filter's edge effects.
    assert np.max(np.abs(resampled[5:35] - expected[5:35])) < 0.02


def test_statistics_come_from_training_split_only(tmp_path):
    geometry = tiny_geometry(num_samples=16)
    seismic = np.random.default_rng(2).standard_normal((10, 2, 16, 3)).astype(np.float32)
    # A huge value in every sample; the statistics must only see those of the train split.
    seismic[:, 0, 0, 0] = np.arange(10) * 1000.0
    folder, _, velocity = write_synthetic_folder(tmp_path / "s", geometry, 10, 10, seismic=seismic)
    path = ingest([folder], tmp_path / "d.h5", QUIET)
    with h5py.File(path, "r") as h5:
        train = schema.read_splits(h5)["train"]
        stats = schema.read_normalization(h5)
    assert stats.seismic_raw["max"] == pytest.approx(seismic[train].max())
    assert stats.seismic_raw["max"] != pytest.approx(seismic.max()) or seismic[train].max() == seismic.max()
    assert stats.seismic["max"] == pytest.approx(np.log1p(seismic[train].max()), rel=1e-6)
    assert (stats.velocity_min_mps, stats.velocity_max_mps) == (1500.0, 4500.0)
    assert np.allclose(normalize_velocity(np.array([1500.0, 3000.0, 4500.0]), stats), [-1, 0, 1])


def test_cli_writes_dataset_and_refuses_existing_output(tmp_path, capsys):
    geometry = tiny_geometry()
    folder, seismic, _ = write_synthetic_folder(tmp_path / "s", geometry, 3, 2)
    out = tmp_path / "d.h5"
    assert main([str(folder), "--out", str(out), "--quiet", "--set", "splits.seed=3"]) == 0
    assert "3 samples" in capsys.readouterr().out
    with h5py.File(out, "r") as h5:
        assert json.loads(h5["normalization"].attrs["stats"])["num_train_samples"] == len(h5["splits/train"])
        assert h5["splits"].attrs["seed"] == 3
    assert main([str(folder), "--out", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([str(folder), "--out", str(out), "--quiet", "--set", "no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().err


def test_end_to_end_synthesize_segy_hdf5_equals_engine_arrays(tmp_path):
    """The issue's done-when: synthesize output ingests into a valid dataset equal to the engine's arrays."""
    import segyio

    from core.config import CONFIG_DIR, load_config
    from data_prep.forward import simulate
    from data_prep.synthesize import SynthesizeConfig, _to_numpy, synthesize
    from data_prep.velocity_models import family_parameters, generate_model

    config = load_config(SynthesizeConfig, [CONFIG_DIR / "data" / "small.yaml"], ["count=3", "chunk_size=2"])
    synthesize(config, tmp_path / "survey", progress=False)
    path = ingest([tmp_path / "survey"], tmp_path / "data.h5", QUIET)
    schema.validate(path)
    data = _read(path)

    # The engine's arrays, computed the way synthesize batches them (per chunk, batch_size models at once).
    parameters = family_parameters(config.family, **config.family_overrides)
    velocity = np.stack(
        [
            generate_model(parameters, config.seed, i, config.geometry.grid_shape).velocity_mps
            for i in range(3)
        ]
    ).astype(np.float32)
    engine = np.concatenate(
        [
            _to_numpy(simulate(velocity[start:stop], config.geometry, config.engine))
            for start, stop in ((0, 2), (2, 3))
        ]
    )
    assert np.array_equal(data["velocity"], velocity), "velocity must equal the generated models exactly"
    assert np.array_equal(data["seismic"], engine), "seismic must equal the engine's arrays bit for bit"
    # ... and the SEG-Y traces, read by segyio.
    with segyio.open(tmp_path / "survey" / "flatvel-a_shots_000000-000001.segy", ignore_geometry=True) as f:
        traces = f.trace.raw[:]
    geometry = config.geometry
    assert np.array_equal(
        traces.reshape(2, geometry.num_sources, geometry.num_receivers, -1).transpose(0, 1, 3, 2),
        data["seismic"][:2],
    )


def test_receivers_interpolated_onto_target_spread_without_extrapolation(tmp_path):
    geometry = tiny_geometry()  # receivers at x = 0, 40, 90 m
    receiver_x = geometry.receiver_positions_m()[:, 1]
    time = np.arange(8, dtype=np.float32)
    seismic = np.broadcast_to(receiver_x[None, None, None, :] + time[None, None, :, None], (2, 2, 8, 3))
    write_fixture(tmp_path / "in" / "shots.segy", seismic.astype(np.float32), geometry)
    write_velocity_models(tmp_path / "in" / "velocity.segy", layered_velocity(2, geometry), 10.0, 0)
    target = (0.0, 20.0, 40.0, 65.0, 90.0)
    config = dataclasses.replace(
        QUIET, regularization=RegularizationConfig(enabled=True, receiver_x_m=target)
    )
    path = ingest([tmp_path / "in"], tmp_path / "d.h5", config)
    stored = _read(path)["seismic"]
    assert stored.shape == (2, 2, 8, 5)
    # Values linear in x are reproduced exactly by linear interpolation.
    assert np.allclose(stored, np.asarray(target)[None, None, None, :] + time[None, None, :, None], atol=1e-4)
    assert np.allclose(schema.validate(path).geometry.receiver_positions_m[:, 1], target)

    outside = dataclasses.replace(
        QUIET, regularization=RegularizationConfig(enabled=True, receiver_x_m=(0.0, 120.0))
    )
    # Labelled: the target receiver at 120 m is outside the 10-cell (0-90 m) velocity grid.
    with pytest.raises(
        UserError, match=r"receiver 2 at \(depth, x\) = \(0, 120\) m lies outside the velocity"
    ):
        ingest([tmp_path / "in"], tmp_path / "e.h5", outside)
    # Unlabelled (no grid): interpolation itself refuses to extrapolate.
    unlabelled = dataclasses.replace(outside, require_velocity=False)
    with pytest.raises(ValueError, match=r"outside the recorded spread \[0, 90\] m"):
        ingest([tmp_path / "in" / "shots.segy"], tmp_path / "e.h5", unlabelled)
    assert not (tmp_path / "e.h5").exists()


def test_failed_append_is_rolled_back(tmp_path):
    geometry = tiny_geometry()
    folder, seismic, _ = write_synthetic_folder(tmp_path / "s", geometry, 3, 3)
    path = ingest([folder], tmp_path / "d.h5", QUIET)
    with h5py.File(path, "r") as h5:
        splits_before = schema.read_splits(h5)
        stats_before = schema.read_normalization(h5)
    bad = encoded_seismic(2, geometry, first_model=3)
    bad[1, 0, 0, 0] = np.nan  # the second new sample fails after the first was written
    write_fixture(tmp_path / "new" / "shots.segy", bad, geometry, first_model=3)
    write_velocity_models(tmp_path / "new" / "velocity.segy", layered_velocity(2, geometry, 3), 10.0, 3)
    with pytest.raises(UserError, match="NaN or Inf"):
        ingest([tmp_path / "new"], path, QUIET, append=True)
    summary = schema.validate(path)
    assert summary.num_samples == 3
    with h5py.File(path, "r") as h5:
        assert "write_in_progress" not in h5.attrs
        assert np.array_equal(h5["seismic"][()], seismic)
        assert all(np.array_equal(schema.read_splits(h5)[k], splits_before[k]) for k in splits_before)
        assert schema.read_normalization(h5) == stats_before
        assert len(schema.read_provenance(h5)["history"]) == 1


def test_compressed_dataset_and_input_files_closed_after_ingest(tmp_path):
    """gzip takes h5py's ordinary write path (not raw chunk writes); segyio handles are closed afterwards."""
    import psutil

    geometry = tiny_geometry(num_samples=16)
    seismic = np.random.default_rng(5).standard_normal((5, 2, 16, 3)).astype(np.float32)
    folder, seismic, velocity = write_synthetic_folder(tmp_path / "s", geometry, 5, 2, seismic=seismic)
    config = dataclasses.replace(QUIET, compression="gzip", block_bytes=2 * seismic[0].nbytes)
    path = ingest([folder], tmp_path / "d.h5", config)
    data = _read(path)
    assert np.array_equal(data["seismic"], seismic) and np.array_equal(data["velocity"], velocity)
    with h5py.File(path, "r") as h5:
        assert h5["seismic"].compression == "gzip"
    process = psutil.Process()
    still_open = [f.path for f in process.open_files() if f.path.startswith(str(folder))]
    still_mapped = [m.path for m in process.memory_maps() if m.path.startswith(str(folder))]
    assert not still_open and not still_mapped, f"input files left open: {still_open + still_mapped}"
