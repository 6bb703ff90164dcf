"""``python -m data_prep.synthesize``: determinism, SEG-Y content and headers, sharding, resume, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import segyio

from core.config import CONFIG_DIR, load_config
from core.errors import UserError
from data_prep.forward import EngineConfig, engine_settings, simulate
from data_prep.geometry import AcquisitionGeometry
from data_prep.segy_io import SIGNATURE_LINE, header_convention
from data_prep.synthesize import (
    SynthesizeConfig,
    main,
    parse_shard,
    plan_chunks,
    read_manifest,
    shard_chunks,
    synthesize,
)
from data_prep.velocity_models import generate_model

SMALL = CONFIG_DIR / "data" / "small.yaml"


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def _small_config(**values) -> SynthesizeConfig:
    return load_config(SynthesizeConfig, files=[SMALL], values=values)


def test_cli_is_byte_identical_for_the_same_seed_and_matches_openfwi_layout(tmp_path: Path, capsys):
    """The issue's done-when: 3 flatvel-a models, seed 7, twice -> identical SEG-Y that segyio reads."""
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        assert (
            main(["--family", "flatvel-a", "--count", "3", "--seed", "7", "--out", str(out), "--quiet"]) == 0
        )
    assert "wrote 3 flatvel-a model(s)" in capsys.readouterr().out
    assert _files(first) == _files(second)
    assert sorted(_files(first)) == [
        "flatvel-a_shots_000000-000002.segy",
        "flatvel-a_velocity_000000-000002.segy",
        "manifest.json",
    ]

    with segyio.open(first / "flatvel-a_shots_000000-000002.segy", ignore_geometry=True) as f:
        assert f.tracecount == 3 * 5 * 70
        assert len(f.samples) == 1000
        assert segyio.tools.dt(f) == 1000.0  # microseconds
        assert f.bin[segyio.BinField.Format] == 5  # IEEE float
        traces = f.trace.raw[:]
        model_id = f.attributes(segyio.TraceField.UnassignedInt1)[:]
        shot_in_model = f.attributes(segyio.TraceField.EnergySourcePoint)[:]
        receiver = f.attributes(segyio.TraceField.TraceNumber)[:]
        field_record = f.attributes(segyio.TraceField.FieldRecord)[:]
        offset = f.attributes(segyio.TraceField.offset)[:]
        source_x = f.attributes(segyio.TraceField.SourceX)[:]
        group_x = f.attributes(segyio.TraceField.GroupX)[:]
        text = f.text[0].decode()
    # Standard headers: offset in metres (segyio reads GroupX - SourceX in metres); signature for ingest.
    np.testing.assert_array_equal(offset, (group_x - source_x) / 100)
    assert offset.min() == -690 and offset.max() == 690, "receivers 0-690 m, sources 0-690 m"
    assert SIGNATURE_LINE in text and header_convention(text) == 2
    assert traces.dtype == np.float32 and np.all(np.isfinite(traces)) and np.abs(traces).max() > 0
    np.testing.assert_array_equal(model_id, np.repeat([1, 2, 3], 5 * 70))
    np.testing.assert_array_equal(shot_in_model, np.tile(np.repeat(np.arange(1, 6), 70), 3))
    np.testing.assert_array_equal(receiver, np.tile(np.arange(1, 71), 15))
    np.testing.assert_array_equal(field_record, np.repeat(np.arange(1, 16), 70))

    with segyio.open(first / "flatvel-a_velocity_000000-000002.segy", ignore_geometry=True) as f:
        velocity = f.trace.raw[:].reshape(3, 70, 70)  # (model, x, depth)
    assert velocity.min() >= 1500 and velocity.max() <= 4500
    assert len(np.unique(velocity[0, 0])) >= 2, "a flat-layer model has at least two layers down a trace"

    manifest = read_manifest(first)
    assert (manifest["family"], manifest["count"], manifest["seed"]) == ("flatvel-a", 3, 7)
    assert manifest["geometry"]["num_samples"] == 1000 and manifest["engine"]["spatial_order"] == 4
    # Every engine setting, as the engine reports it (what ingest copies into the dataset's provenance).
    settings = manifest["engine_settings"]
    assert settings == engine_settings(AcquisitionGeometry(), EngineConfig())
    for key in (
        "wavelet",
        "peak_frequency_hz",
        "ricker_delay_s",
        "amplitude_convention",
        "spatial_order",
        "free_surface",
        "absorbing_width_cells",
        "time_step_s",
    ):
        assert key in settings, f"manifest engine_settings lacks {key}"
    assert (settings["wavelet"], settings["peak_frequency_hz"], settings["free_surface"]) == (
        "ricker",
        15.0,
        False,
    )


def test_files_hold_exactly_the_generated_models_and_simulated_traces(tmp_path: Path):
    config = _small_config(family="curvefault-a", count=3, seed=11)
    synthesize(config, tmp_path, progress=False)
    geometry = config.geometry
    expected_velocity = np.stack(
        [generate_model("curvefault-a", 11, i, geometry.grid_shape).velocity_mps for i in range(3)]
    )
    # chunk_size 2 in small.yaml -> models 0-1 and 2
    with segyio.open(tmp_path / "curvefault-a_velocity_000000-000001.segy", ignore_geometry=True) as f:
        velocity = (
            f.trace.raw[:].reshape(2, geometry.grid_shape[1], geometry.grid_shape[0]).transpose(0, 2, 1)
        )
        depth_interval = f.bin[segyio.BinField.Interval]
    np.testing.assert_array_equal(velocity, expected_velocity[:2])
    assert depth_interval == 10_000, "velocity files store the depth spacing in millimetres"

    with segyio.open(tmp_path / "curvefault-a_shots_000002-000002.segy", ignore_geometry=True) as f:
        traces = f.trace.raw[:].reshape(1, geometry.num_sources, geometry.num_receivers, geometry.num_samples)
    expected = keras.ops.convert_to_numpy(simulate(expected_velocity[2:], geometry, config.engine))
    np.testing.assert_array_equal(traces.transpose(0, 1, 3, 2), expected)


def test_shards_together_equal_the_unsharded_output(tmp_path: Path):
    config = _small_config(family="flatfault-b", count=5, seed=3)  # 3 chunks of 2, 2, 1 models
    synthesize(config, tmp_path / "whole", progress=False)
    for k in (1, 2):
        synthesize(config, tmp_path / "sharded", shard=(k, 2), progress=False)
    assert _files(tmp_path / "whole") == _files(tmp_path / "sharded")

    chunks = plan_chunks(5, 2, "flatfault-b")
    assert [c.num_models for c in chunks] == [2, 2, 1]
    parts = [shard_chunks(chunks, (k, 3)) for k in (1, 2, 3)]
    assert sorted(c.index for part in parts for c in part) == [0, 1, 2]


def test_rerun_resumes_missing_chunks_and_refuses_a_different_dataset(tmp_path: Path, capsys):
    config = _small_config(family="flatvel-a", count=4, seed=5)
    synthesize(config, tmp_path, progress=False)
    reference = _files(tmp_path)
    missing = tmp_path / "flatvel-a_shots_000002-000003.segy"
    missing.unlink()
    kept = tmp_path / "flatvel-a_shots_000000-000001.segy"
    kept_mtime = kept.stat().st_mtime_ns
    synthesize(config, tmp_path, progress=False)
    assert _files(tmp_path) == reference
    assert kept.stat().st_mtime_ns == kept_mtime, "complete chunks are skipped, not rewritten"

    with pytest.raises(UserError, match=r"different synthetic dataset \(seed: 5 there, 6 now"):
        synthesize(_small_config(family="flatvel-a", count=4, seed=6), tmp_path, progress=False)
    code = main(
        [
            "--config",
            str(SMALL),
            "--family",
            "flatvel-a",
            "--count",
            "4",
            "--seed",
            "6",
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert code == 2
    assert "different synthetic dataset" in capsys.readouterr().err


def test_no_partial_files_are_left_when_simulation_fails(tmp_path: Path, monkeypatch):
    import data_prep.synthesize as module

    calls = {"n": 0}
    real_simulate = module.simulate

    def failing_simulate(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("node lost")
        return real_simulate(*args, **kwargs)

    monkeypatch.setattr(module, "simulate", failing_simulate)
    config = _small_config(family="flatvel-a", count=4, seed=1, batch_size=2)
    with pytest.raises(RuntimeError, match="node lost"):
        synthesize(config, tmp_path, progress=False)
    # The first chunk was complete and stays; the second never appears; no temporary files remain. The
    # manifest, written before the first chunk, records the configuration (issue 8 case 12).
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "flatvel-a_shots_000000-000001.segy",
        "flatvel-a_velocity_000000-000001.segy",
        "manifest.json",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--shard", "0/4"], "1 <= K <= N"),
        (["--shard", "two/4"], "K/N with whole numbers"),
        (["--count", "0"], "count must be at least 1"),
        (["--set", "geometry.sample_interval_s=0.002"], "CFL number"),
        (["--set", "geometry.num_sample=5"], "Unknown configuration key"),
    ],
)
def test_bad_command_lines_exit_2_with_a_message(tmp_path: Path, capsys, argv, message):
    out = tmp_path / "out"
    code = main(["--config", str(SMALL), "--count", "2", "--out", str(out), "--quiet", *argv])
    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error
    assert "Traceback" not in error
    assert not out.exists() or not any(out.iterdir())


def test_parse_shard_accepts_k_of_n():
    assert parse_shard("3/16") == (3, 16)


def test_manifest_lists_every_chunk_and_is_shared_by_shards(tmp_path: Path):
    config = _small_config(family="salt", count=3, seed=0)
    synthesize(config, tmp_path / "a", shard=(2, 2), progress=False)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert [f["first_model"] for f in manifest["files"]] == [0, 2]
    assert manifest["files"][1]["shots"] == "salt_shots_000002-000002.segy"
    # Shard 2 of 2 wrote only the second chunk.
    assert sorted(p.name for p in (tmp_path / "a").glob("*.segy")) == [
        "salt_shots_000002-000002.segy",
        "salt_velocity_000002-000002.segy",
    ]
    shutil.rmtree(tmp_path / "a")
