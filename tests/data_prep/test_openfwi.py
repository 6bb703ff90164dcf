"""OpenFWI-shaped .npy pairs -> HDF5: exact round trip, pairing rules, streaming file by file, append."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from data_prep import schema
from data_prep.openfwi import OpenFWIConfig, find_pairs, import_openfwi, main
from tests.data_prep.segy_fixtures import write_openfwi_pair

QUIET = OpenFWIConfig(progress=False)


def test_openfwi_round_trip_exact(tmp_path):
    # Two files of 2 samples each, OpenFWI's per-sample shapes (5, 1000, 70) and (1, 70, 70).
    first = write_openfwi_pair(tmp_path / "flatvel", 1, 2, seed=0)
    second = write_openfwi_pair(tmp_path / "flatvel", 10, 2, seed=1)  # natural order: data1, data10
    path = import_openfwi([tmp_path / "flatvel"], tmp_path / "openfwi.h5", QUIET)
    summary = schema.validate(path)
    assert summary.seismic_shape == (4, 5, 1000, 70) and summary.velocity_shape == (4, 70, 70)
    with h5py.File(path, "r") as h5:
        assert np.array_equal(h5["seismic"][()], np.concatenate([first[0], second[0]]))
        assert np.array_equal(h5["velocity"][()], np.concatenate([first[1], second[1]])[:, 0])
        assert np.array_equal(h5["sample_id"][()], [1, 2, 3, 4])
        assert h5["seismic"].chunks == (1, 5, 1000, 70)
        provenance = schema.read_provenance(h5)
        geometry = schema.read_geometry(h5)
    assert [s["name"] for s in provenance["sources"]] == ["data1.npy", "model1.npy", "data10.npy", "model10.npy"]
    assert provenance["created_by"] == "data_prep.openfwi"
    assert geometry.sample_interval_s == 0.001 and geometry.num_shots == 5 and geometry.num_receivers == 70
    stats = schema.read_normalization(path)
    with h5py.File(path, "r") as h5:
        train = h5["seismic"][np.sort(h5["splits/train"][()])]
    assert stats.seismic["max"] == pytest.approx(float(np.log1p(train.max())), rel=1e-6)


def test_openfwi_append_continues_sample_ids(tmp_path):
    write_openfwi_pair(tmp_path / "a", 1, 2, seed=0)
    write_openfwi_pair(tmp_path / "b", 2, 2, seed=1)
    path = import_openfwi([tmp_path / "a"], tmp_path / "d.h5", QUIET)
    import_openfwi([tmp_path / "b"], path, QUIET, append=True)
    summary = schema.validate(path)
    assert summary.num_samples == 4
    with h5py.File(path, "r") as h5:
        assert np.array_equal(h5["sample_id"][()], [1, 2, 3, 4])


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
