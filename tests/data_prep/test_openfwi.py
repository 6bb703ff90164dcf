"""OpenFWI-shaped .npy pairs -> HDF5: exact round trip, pairing rules, streaming file by file, append."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from core.errors import UserError
from data_prep import schema
from data_prep.openfwi import OpenFWIConfig, find_pairs, import_openfwi, main
from tests.data_prep.segy_fixtures import write_openfwi_pair

QUIET = OpenFWIConfig(progress=False)


def test_openfwi_round_trip_exact(tmp_path):
    # Two files of 2 samples each, OpenFWI's per-sample shapes (5, 1000, 70) and (1, 70, 70).
    first = write_openfwi_pair(tmp_path / "FlatVel_A", 1, 2, seed=0)
    second = write_openfwi_pair(tmp_path / "FlatVel_A", 10, 2, seed=1)  # natural order: data1, data10
    path = import_openfwi([tmp_path / "FlatVel_A"], tmp_path / "openfwi.h5", QUIET)
    summary = schema.validate(path)
    assert summary.seismic_shape == (4, 5, 1000, 70) and summary.velocity_shape == (4, 70, 70)
    with h5py.File(path, "r") as h5:
        assert np.array_equal(h5["seismic"][()], np.concatenate([first[0], second[0]]))
        assert np.array_equal(h5["velocity"][()], np.concatenate([first[1], second[1]])[:, 0])
        # Identity (origin = data file, id = row + 1).
        assert np.array_equal(h5["sample_id"][()], [1, 2, 1, 2])
        assert np.array_equal(schema.read_sample_origins(h5), [0, 0, 1, 1])
        assert schema.read_sample_families(h5).tolist() == ["flatvel-a"] * 4, (
            "family from the folder FlatVel_A"
        )
        assert h5["seismic"].chunks == (1, 5, 1000, 70)
        provenance = schema.read_provenance(h5)
        geometry = schema.read_geometry(h5)
        settings = schema.read_engine_settings(h5)
    assert [s["name"] for s in provenance["sources"]] == [
        "data1.npy",
        "model1.npy",
        "data10.npy",
        "model10.npy",
    ]
    assert [o["name"] for o in provenance["origins"]] == ["FlatVel_A/data1.npy", "FlatVel_A/data10.npy"]
    assert provenance["created_by"] == "data_prep.openfwi"
    assert provenance["families"]["flatvel-a"]["samples"] == 4
    # OpenFWI's published modelling settings (FWIForward): 4th order, 120-cell sponge, 15 Hz, peak at 73 ms.
    assert (settings["spatial_order"], settings["absorbing_width_cells"], settings["free_surface"]) == (
        4,
        120,
        False,
    )
    assert (settings["peak_frequency_hz"], settings["ricker_delay_s"]) == (15.0, 0.073)
    assert settings["source_depth_m"] == [10.0] * 5 and settings["receiver_depth_m"] == [10.0] * 70
    assert geometry.sample_interval_s == 0.001 and geometry.num_shots == 5 and geometry.num_receivers == 70
    stats = schema.read_normalization(path)
    with h5py.File(path, "r") as h5:
        train = h5["seismic"][np.sort(h5["splits/train"][()])]
    assert stats.seismic["max"] == pytest.approx(float(np.log1p(train.max())), rel=1e-6)


def test_openfwi_append_adds_a_family_as_new_origins(tmp_path):
    write_openfwi_pair(tmp_path / "flatvel_a", 1, 2, seed=0)
    write_openfwi_pair(tmp_path / "CurveFault_B", 1, 3, seed=1)  # also data1.npy: its own origin
    path = import_openfwi([tmp_path / "flatvel_a"], tmp_path / "d.h5", QUIET)
    import_openfwi([tmp_path / "CurveFault_B"], path, QUIET, append=True)
    summary = schema.validate(path)
    assert summary.num_samples == 5
    assert summary.families == {
        "curvefault-b": {"samples": 3, "train": 1, "val": 1, "test": 1},
        "flatvel-a": {"samples": 2, "train": 2, "val": 0, "test": 0},  # too few to split
    }
    with h5py.File(path, "r") as h5:
        assert np.array_equal(h5["sample_id"][()], [1, 2, 1, 2, 3])
        assert np.array_equal(schema.read_sample_origins(h5), [0, 0, 1, 1, 1])
        assert schema.read_sample_families(h5).tolist() == ["flatvel-a"] * 2 + ["curvefault-b"] * 3
    # The same files again: refused by their bytes, and the message says so.
    with pytest.raises(UserError, match=r"data1.npy has the same bytes .* ingested before"):
        import_openfwi([tmp_path / "CurveFault_B"], path, QUIET, append=True)


def test_openfwi_layouts_and_errors(tmp_path, capsys):
    # CurveVel layout: data/dataN.npy with model/modelN.npy
    write_openfwi_pair(tmp_path / "curve" / "data", 3, 1, seed=2)
    (tmp_path / "curve" / "data" / "model3.npy").rename(tmp_path / "curve" / "model3.npy")
    (tmp_path / "curve" / "model").mkdir()
    (tmp_path / "curve" / "model3.npy").rename(tmp_path / "curve" / "model" / "model3.npy")
    pairs = find_pairs([tmp_path / "curve"])
    assert [(d.name, m.parent.name) for d, m in pairs] == [("data3.npy", "model")]

    write_openfwi_pair(tmp_path / "lonely", 1, 1, seed=3)
    (tmp_path / "lonely" / "model1.npy").unlink()
    out = tmp_path / "out"
    out.mkdir()
    assert main([str(tmp_path / "lonely"), "--out", str(out / "x.h5"), "--quiet"]) == 2
    assert "has no velocity file" in capsys.readouterr().err
    np.save(tmp_path / "lonely" / "model1.npy", np.ones((1, 1, 70, 70), np.float32) * 2000)
    np.save(tmp_path / "lonely" / "data1.npy", np.ones((1, 5, 500, 70), np.float32))
    assert main([str(tmp_path / "lonely"), "--out", str(out / "x.h5"), "--quiet"]) == 2
    assert "Received shape (1, 5, 500, 70)" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_velocities_beyond_the_fixed_range_are_warned_about_at_ingest(tmp_path, caplog):
    """Salt at 5200 m/s in data ingested with OpenFWI's fixed 1500-4500 m/s: the warning names the file, how far
    the velocities reach and the --set that covers them; ingested with the training split's own range, none."""
    import logging

    from data_prep.normalization import NormalizationConfig

    _, velocity = write_openfwi_pair(tmp_path / "Salt", 1, 2, seed=0)
    velocity[:, :, 40:50, 20:30] = 5200.0
    np.save(tmp_path / "Salt" / "model1.npy", velocity)
    with caplog.at_level(logging.WARNING, logger="data_prep"):
        path = import_openfwi([tmp_path / "Salt"], tmp_path / "fixed.h5", QUIET)
    assert schema.read_normalization(path).velocity_max_mps == 4500.0
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "fixed.h5: the training velocities reach up to 5200 m/s" in warnings[0]
    assert "--set 'normalization.velocity_range_mps=[1500, 5200]'" in warnings[0]
    caplog.clear()
    own_range = OpenFWIConfig(progress=False, normalization=NormalizationConfig(velocity_range_mps=None))
    with caplog.at_level(logging.WARNING, logger="data_prep"):
        path = import_openfwi([tmp_path / "Salt"], tmp_path / "own.h5", own_range)
    assert schema.read_normalization(path).velocity_max_mps == 5200.0
    assert not [record for record in caplog.records if record.levelno == logging.WARNING]
