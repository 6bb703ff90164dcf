"""Issue 8 case 12 and a minor item: synthesize records its configuration before the first chunk, so a
re-run with other settings cannot mix two datasets in one folder; the shard summary says what was written.

The engine is replaced by a fast deterministic stand-in (``_fake_simulate``): these tests are about which
files are written and refused, not about physics (tests/data_prep/test_synthesize.py covers that).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import segyio

import data_prep.synthesize as synthesize_module
from core.config import CONFIG_DIR, load_config
from core.errors import UserError
from data_prep.synthesize import SynthesizeConfig, main, synthesize
from data_prep.velocity_models import family_parameters, generate_model

SMALL = CONFIG_DIR / "data" / "small.yaml"  # chunks of 2 models


def _fake_simulate(velocity, geometry, engine):
    """``(models, sources, samples, receivers)``: each model's mean velocity, so files show which model."""
    velocity = np.asarray(velocity, dtype=np.float32)
    shape = (len(velocity), geometry.num_sources, geometry.num_samples, geometry.num_receivers)
    return np.broadcast_to(velocity.mean(axis=(1, 2))[:, None, None, None], shape).copy()


@pytest.fixture
def fast_engine(monkeypatch):
    calls = {"n": 0, "fail_at": None}

    def simulate(velocity, geometry, engine):
        calls["n"] += 1
        if calls["n"] == calls["fail_at"]:
            raise RuntimeError("node lost")
        return _fake_simulate(velocity, geometry, engine)

    monkeypatch.setattr(synthesize_module, "simulate", simulate)
    return calls


def _config(**values) -> SynthesizeConfig:
    return load_config(SynthesizeConfig, files=[SMALL], values={"family": "flatvel-a", "count": 4, **values})


def _velocity_of_chunk(folder: Path, name: str) -> np.ndarray:
    with segyio.open(folder / name, ignore_geometry=True) as f:
        return f.trace.raw[:]


def test_case12_manifest_is_written_before_the_first_chunk(tmp_path, fast_engine):
    fast_engine["fail_at"] = 2  # the run dies in its second chunk
    with pytest.raises(RuntimeError, match="node lost"):
        synthesize(_config(seed=1), tmp_path, progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "flatvel-a_shots_000000-000001.segy",
        "flatvel-a_velocity_000000-000001.segy",
        "manifest.json",
    ]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert (manifest["seed"], manifest["count"], manifest["family"]) == (1, 4, "flatvel-a")


def test_case12_resume_with_another_seed_is_refused_naming_the_difference_and_the_way_on(
    tmp_path, fast_engine, capsys
):
    fast_engine["fail_at"] = 2
    with pytest.raises(RuntimeError):
        synthesize(_config(seed=1), tmp_path, progress=False)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    fast_engine["fail_at"] = None

    with pytest.raises(UserError) as error:
        synthesize(_config(seed=2), tmp_path, progress=False)
    message = str(error.value)
    assert "seed: 1 there, 2 now" in message and "--family flatvel-a --count 4 --seed 1" in message, message
    assert "choose another --out folder" in message
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before, "nothing written"

    code = main(
        ["--config", str(SMALL), "--family", "flatvel-a", "--count", "4", "--seed", "2"]
        + ["--out", str(tmp_path), "--quiet"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err

    # The advice: the same settings resume the run; the complete chunk is kept, the missing one written.
    kept_mtime = (tmp_path / "flatvel-a_shots_000000-000001.segy").stat().st_mtime_ns
    synthesize(_config(seed=1), tmp_path, progress=False)
    assert (tmp_path / "flatvel-a_shots_000000-000001.segy").stat().st_mtime_ns == kept_mtime
    parameters = family_parameters("flatvel-a")
    grid = _config().geometry.grid_shape
    expected = np.stack([generate_model(parameters, 1, index, grid).velocity_mps for index in (2, 3)])
    written = _velocity_of_chunk(tmp_path, "flatvel-a_velocity_000002-000003.segy")
    assert np.array_equal(
        written.reshape(2, grid[1], grid[0]).transpose(0, 2, 1), expected.astype(np.float32)
    ), "the resumed chunk holds the models of seed 1"


def test_case12_engine_or_geometry_differences_are_named_by_key(tmp_path, fast_engine):
    synthesize(_config(seed=1), tmp_path, progress=False)
    changed = load_config(
        SynthesizeConfig,
        files=[SMALL],
        overrides=["engine.spatial_order=8"],
        values={"family": "flatvel-a", "count": 4, "seed": 1},
    )
    with pytest.raises(UserError, match=r"engine\.spatial_order: 4 there, 8 now") as error:
        synthesize(changed, tmp_path, progress=False)
    assert "engine" in str(error.value).split("To resume that run")[1], "says the engine settings must match"


def test_case12_chunk_files_without_a_manifest_are_refused_unless_overwritten(tmp_path, fast_engine):
    synthesize(_config(seed=1), tmp_path, progress=False)
    (tmp_path / "manifest.json").unlink()  # as a run of an earlier version that died leaves the folder
    with pytest.raises(UserError, match=r"holds 4 chunk file\(s\).*but no manifest\.json.*--overwrite"):
        synthesize(_config(seed=2), tmp_path, progress=False)
    synthesize(_config(seed=2), tmp_path, overwrite=True, progress=False)
    assert json.loads((tmp_path / "manifest.json").read_text())["seed"] == 2
    grid = _config().geometry.grid_shape
    expected = generate_model(family_parameters("flatvel-a"), 2, 0, grid).velocity_mps.astype(np.float32)
    written = _velocity_of_chunk(tmp_path, "flatvel-a_velocity_000000-000001.segy")
    assert np.array_equal(written.reshape(2, grid[1], grid[0]).transpose(0, 2, 1)[0], expected)


def test_minor_shard_summary_says_what_was_written(tmp_path, fast_engine, capsys):
    assert (
        main(
            [
                "--config",
                str(SMALL),
                "--count",
                "2",
                "--shard",
                "3/4",
                "--out",
                str(tmp_path / "a"),
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "shard 3/4 has no chunk to write" in out and "wrote only the manifest" in out, out
    assert "Use at most 1 shard(s)" in out
    assert sorted(path.name for path in (tmp_path / "a").iterdir()) == ["manifest.json"]
    assert fast_engine["n"] == 0

    assert (
        main(
            [
                "--config",
                str(SMALL),
                "--count",
                "5",
                "--shard",
                "2/2",
                "--out",
                str(tmp_path / "b"),
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "wrote shard 2/2: 1 chunk(s), 2 of the 5 flatvel-a models" in out, out
