"""Datasets of many families and sources (issue 7 item 2, issue 8 item 8): identity (origin, id).

Every fixture is built here by code (``segy_fixtures``): synthesize-style folders whose models are numbered
from 1 in each, field-style files that each number their shots from 1 (or carry none), copies of files.
Values encode their position (``decode``), so each assertion checks which sample landed where.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil

import h5py
import numpy as np
import pytest

from core.errors import UserError
from data_prep import schema
from data_prep.ingest import GroupingConfig, IngestConfig, ingest, main
from tests.data_prep.segy_fixtures import (
    decode,
    encoded_seismic,
    layered_velocity,
    tiny_geometry,
    write_fixture,
    write_synthetic_folder,
)

QUIET = IngestConfig(progress=False)
GEOMETRY = tiny_geometry()
FOREIGN_TEXT = "EXPORTED BY ANOTHER TOOL\nSEG-Y REV 2"


def _folder(path, family, num_models=4, first_value=0):
    """A synthesize-style folder of ``family`` whose models are numbered 1..num_models (as every folder is)."""
    seismic = encoded_seismic(num_models, GEOMETRY) + first_value
    velocity = layered_velocity(num_models, GEOMETRY) + first_value / 1000
    return write_synthetic_folder(
        path, GEOMETRY, num_models, 2, family=family, seismic=seismic, velocity=velocity
    )


def test_two_synthesize_folders_numbered_from_one_make_one_dataset(tmp_path, capsys):
    first, seismic_a, velocity_a = _folder(tmp_path / "A", "flatvel-a")
    second, seismic_b, velocity_b = _folder(tmp_path / "B", "curvefault-b", first_value=1000)
    out = tmp_path / "mix.h5"
    assert main([str(first), str(second), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "curvefault-b: 4 samples (train 2, val 1, test 1)" in printed
    assert "flatvel-a: 4 samples (train 2, val 1, test 1)" in printed

    summary = schema.validate(out)
    assert summary.num_samples == 8 and summary.schema_version == 2
    with schema.open_dataset(out) as h5:
        table = schema.read_sample_table(h5)
        seismic, velocity = h5["seismic"][()], h5["velocity"][()]
        splits = schema.read_splits(h5)
        provenance = schema.read_provenance(h5)
    assert np.array_equal(seismic, np.concatenate([seismic_a, seismic_b])), (
        "A's samples, then B's, bit for bit"
    )
    assert np.array_equal(velocity, np.concatenate([velocity_a, velocity_b])), "each folder's own models"
    assert table.sample_id.tolist() == [1, 2, 3, 4, 1, 2, 3, 4], "each folder numbers its models from 1"
    assert table.origin.tolist() == [0] * 4 + [1] * 4
    assert table.origin_name.tolist() == ["A"] * 4 + ["B"] * 4
    assert table.family.tolist() == ["flatvel-a"] * 4 + ["curvefault-b"] * 4
    # Stratified: each family alone is split 2/1/1 (split_sizes of 4 samples).
    for family in ("flatvel-a", "curvefault-b"):
        members = set(np.flatnonzero(table.family == family).tolist())
        counts = [len(members & set(splits[name].tolist())) for name in ("train", "val", "test")]
        assert counts == [2, 1, 1], f"{family}: {counts}"
    assert provenance["families"] == summary.families
    assert [origin["kind"] for origin in provenance["origins"]] == ["synthesize", "synthesize"]
    assert provenance["origins"][0]["grouping"] == "model id in byte 233 (listed by a synthesize manifest)"


def test_append_adds_a_family_and_keeps_old_splits(tmp_path):
    first, seismic_a, _ = _folder(tmp_path / "A", "flatvel-a")
    second, seismic_b, _ = _folder(tmp_path / "B", "curvefault-b", num_models=6, first_value=1000)
    path = ingest([first], tmp_path / "d.h5", QUIET)
    with h5py.File(path, "r") as h5:
        before = schema.read_splits(h5)
    ingest([second], path, QUIET, append=True)
    summary = schema.validate(path)
    assert summary.families == {
        "curvefault-b": {"samples": 6, "train": 4, "val": 1, "test": 1},
        "flatvel-a": {"samples": 4, "train": 2, "val": 1, "test": 1},
    }
    with h5py.File(path, "r") as h5:
        after = schema.read_splits(h5)
        assert np.array_equal(h5["seismic"][()], np.concatenate([seismic_a, seismic_b]))
        assert schema.read_sample_ids(h5).tolist() == [1, 2, 3, 4, 1, 2, 3, 4, 5, 6]
        assert schema.read_provenance(h5)["families"] == summary.families
    for name in before:
        assert np.array_equal(after[name][after[name] < 4], before[name]), f"old samples keep split {name}"


def test_same_files_twice_and_same_models_are_the_only_duplicates(tmp_path, caplog):
    folder, _, _ = _folder(tmp_path / "A", "flatvel-a")
    # The same folder twice on the command line: read once, with a warning that says so.
    with caplog.at_level(logging.WARNING):
        path = ingest([folder, folder], tmp_path / "once.h5", QUIET)
    assert schema.validate(path).num_samples == 4
    assert "given more than once" in caplog.text

    # A copy under another name: the same bytes, refused as such (nothing written).
    shutil.copytree(folder, tmp_path / "copy")
    with pytest.raises(UserError, match=r"hold the same bytes \(SHA-256 [0-9a-f]{12}\.\.\.\): the same data"):
        ingest([folder, tmp_path / "copy"], tmp_path / "twice.h5", QUIET)
    assert not (tmp_path / "twice.h5").exists()

    # The same family and seed chunked differently: other bytes, the same velocity models.
    write_synthetic_folder(tmp_path / "rechunked", GEOMETRY, 4, 4, family="flatvel-a")
    with pytest.raises(
        UserError, match=r"hold the same velocity models: flatvel-a seed 0, model id\(s\) \[1, 2"
    ):
        ingest([folder, tmp_path / "rechunked"], tmp_path / "models.h5", QUIET)

    # Appending an ingested folder's copy: the message names the file and says why it counts as ingested.
    with pytest.raises(UserError, match=r"has the same bytes .* so it was ingested before"):
        ingest([tmp_path / "copy"], path, QUIET, append=True)


def _own_numbering(folder, count, shots_per_file=2, field_record=None, textual_header=FOREIGN_TEXT):
    """``count`` field-style files that each number their shots from 1 (or carry ``field_record``)."""
    geometry = tiny_geometry(num_shots=shots_per_file)
    files = []
    for index in range(count):

        def edit(headers):
            headers["UnassignedInt1"] = np.zeros_like(headers["UnassignedInt1"])
            # Each file numbers its shots 1..N (FieldRecord), as exports of one gather set per file do.
            shots = headers["EnergySourcePoint"]
            headers["FieldRecord"] = shots if field_record is None else np.full_like(shots, field_record)

        seismic = encoded_seismic(1, geometry, first_model=index)
        files.append(
            write_fixture(
                folder / f"line_{index}.sgy",
                seismic,
                geometry,
                edit_headers=edit,
                textual_header=textual_header,
            )
        )
    return files, geometry


@pytest.mark.parametrize(
    ("grouping", "field_record", "shots_per_file"),
    [
        (GroupingConfig(shots_per_sample=2), None, 2),  # shots 1, 2 in every file
        (GroupingConfig(sample_key="file"), None, 2),  # one sample per file
        (GroupingConfig(shots_per_sample=1), 0, 1),  # no shot numbers at all (FieldRecord 0)
    ],
)
def test_files_that_number_their_own_shots_ingest_together(tmp_path, grouping, field_record, shots_per_file):
    files, geometry = _own_numbering(tmp_path / "in", 3, shots_per_file, field_record)
    config = dataclasses.replace(QUIET, require_velocity=False, grouping=grouping, family="field")
    path = ingest([tmp_path / "in"], tmp_path / "d.h5", config)
    with schema.open_dataset(path) as h5:
        table = schema.read_sample_table(h5)
        seismic = h5["seismic"][()]
    expected_id = 0 if field_record == 0 else 1
    assert table.sample_id.tolist() == [expected_id] * 3, "every file's sample has the same id..."
    assert table.origin.tolist() == [0, 1, 2], "...and its own origin, so they do not collide"
    assert table.origin_name.tolist() == [f.name for f in files]
    assert table.family.tolist() == ["field"] * 3
    model, _, _, _ = decode(seismic, geometry)
    assert np.array_equal(model[:, 0, 0, 0], [0, 1, 2]), "file k's traces in sample k"


def test_append_of_another_self_numbered_file_is_not_called_a_repeat(tmp_path):
    files, _ = _own_numbering(tmp_path / "in", 2)
    config = dataclasses.replace(QUIET, require_velocity=False, grouping=GroupingConfig(shots_per_sample=2))
    path = ingest([files[0]], tmp_path / "d.h5", config)
    ingest([files[1]], path, config, append=True)  # same sample id 1, another file: accepted
    with h5py.File(path, "r") as h5:
        assert schema.read_sample_ids(h5).tolist() == [1, 1]
        assert schema.read_sample_origins(h5).tolist() == [0, 1]
    shutil.copy(files[0], tmp_path / "renamed.sgy")
    with pytest.raises(UserError, match=r"renamed.sgy has the same bytes .* ingested before"):
        ingest([tmp_path / "renamed.sgy"], path, config, append=True)


def test_identical_files_under_two_names_are_refused_as_the_same_bytes(tmp_path):
    files, _ = _own_numbering(tmp_path / "in", 1)
    shutil.copy(files[0], tmp_path / "in" / "line_copy.sgy")
    config = dataclasses.replace(QUIET, require_velocity=False, grouping=GroupingConfig(shots_per_sample=2))
    with pytest.raises(UserError, match=r"line_0.sgy and .*line_copy.sgy hold the same bytes"):
        ingest([tmp_path / "in"], tmp_path / "d.h5", config)
    assert not (tmp_path / "d.h5").exists()


def test_byte_233_is_trusted_only_with_the_project_signature(tmp_path, caplog):
    """A rev-2 file keeps a header name in bytes 233-240 ("SEG00000"): it must not group samples."""
    rev2_name = int.from_bytes(b"SEG0", "big")

    def header_name(headers):
        headers["UnassignedInt1"] = np.full_like(headers["UnassignedInt1"], rev2_name)

    seismic = encoded_seismic(2, GEOMETRY)
    foreign = write_fixture(
        tmp_path / "rev2.sgy", seismic, GEOMETRY, edit_headers=header_name, textual_header=FOREIGN_TEXT
    )
    unlabelled = dataclasses.replace(QUIET, require_velocity=False)
    with pytest.raises(
        UserError,
        match=r"rev2.sgy: bytes 233-240 are not zero, but .*\(SEG-Y rev 2 keeps a trace-header name",
    ):
        ingest([foreign], tmp_path / "a.h5", unlabelled)
    with caplog.at_level(logging.INFO, logger="data_prep.ingest.grouping"):
        path = ingest(
            [foreign],
            tmp_path / "a.h5",
            dataclasses.replace(unlabelled, grouping=GroupingConfig(shots_per_sample=2)),
        )
    assert "rev2.sgy: samples grouped by every 2 consecutive shots (grouping.shots_per_sample)" in caplog.text
    with h5py.File(path, "r") as h5:
        assert schema.read_sample_ids(h5).tolist() == [1, 3], "first FieldRecord of each pair of shots"
        assert np.array_equal(h5["seismic"][()], seismic)
        assert (
            schema.read_origins(h5)[0]["grouping"] == "every 2 consecutive shots (grouping.shots_per_sample)"
        )

    # The same traces with the project's textual header: byte 233 is its model id.
    ours = write_fixture(tmp_path / "ours.sgy", seismic, GEOMETRY)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="data_prep.ingest.grouping"):
        path = ingest([ours], tmp_path / "b.h5", unlabelled)
    assert (
        "ours.sgy: samples grouped by model id in byte 233 (seisinvert textual-header signature)"
        in caplog.text
    )
    with h5py.File(path, "r") as h5:
        assert schema.read_sample_ids(h5).tolist() == [1, 2]


def test_files_of_the_previous_version_are_still_grouped_by_model_id(tmp_path):
    """Earlier synthesize files: no signature, but their textual header maps byte 233 as the model id."""
    previous = "\n".join(
        [
            "SEISINVERT 0.1.0 - DEEP-LEARNING SEISMIC VELOCITY INVERSION",
            " 37 OFFSET = GROUPX - SOURCEX (CM)",
            "233 MODEL ID (1-BASED) = MODEL INDEX + 1; GROUPS SHOTS OF ONE MODEL",
        ]
    )

    def centimetre_offsets(headers):
        headers["offset"] = headers["offset"] * 100  # what they wrote into byte 37

    seismic = encoded_seismic(3, GEOMETRY)
    path = write_fixture(
        tmp_path / "old.segy", seismic, GEOMETRY, edit_headers=centimetre_offsets, textual_header=previous
    )
    dataset = ingest([path], tmp_path / "d.h5", dataclasses.replace(QUIET, require_velocity=False))
    with h5py.File(dataset, "r") as h5:
        assert schema.read_sample_ids(h5).tolist() == [1, 2, 3]
        assert np.array_equal(h5["seismic"][()], seismic)
        assert (
            schema.read_origins(h5)[0]["grouping"]
            == "model id in byte 233 (seisinvert textual-header signature)"
        )


def _synthesize_cli(family, out, *extra):
    from data_prep.synthesize import main as synthesize_main

    argv = ["--family", family, "--count", "1", "--seed", "1", "--out", str(out), "--quiet", *extra]
    assert synthesize_main(argv) == 0


def test_synthesized_families_ingest_with_their_engine_settings(tmp_path, capsys):
    """The issue's done-when on the small survey: two synthesize folders, one ingest, both families recorded."""
    from core.config import CONFIG_DIR
    from data_prep.synthesize import read_manifest

    small = str(CONFIG_DIR / "data" / "small.yaml")
    _synthesize_cli("flatvel-a", tmp_path / "A", "--config", small)
    _synthesize_cli("curvefault-b", tmp_path / "B", "--config", small)
    capsys.readouterr()
    out = tmp_path / "mix.h5"
    assert main([str(tmp_path / "A"), str(tmp_path / "B"), "--out", str(out), "--quiet"]) == 0
    assert "per family:\n  curvefault-b: 1 samples" in capsys.readouterr().out
    summary = schema.validate(out)
    manifests = [read_manifest(tmp_path / name) for name in ("A", "B")]
    with schema.open_dataset(out) as h5:
        table = schema.read_sample_table(h5)
        geometry = schema.read_geometry(h5)
        shared = schema.read_engine_settings(h5)
    assert summary.num_samples == 2
    assert table.family.tolist() == ["flatvel-a", "curvefault-b"]
    assert table.sample_id.tolist() == [1, 1] and table.origin_name.tolist() == ["A", "B"]
    # Every engine setting of the manifests, per origin and (the same for both) for the dataset.
    assert [origin["engine_settings"] for origin in table.origins] == [
        m["engine_settings"] for m in manifests
    ]
    assert shared == manifests[0]["engine_settings"] and shared["amplitude_convention"] == "openfwi"
    assert [origin["models"]["seed"] for origin in table.origins] == [1, 1]
    nominal = manifests[0]["geometry_m"]
    assert np.allclose(geometry.receiver_positions_m, nominal["receiver_positions_m"])
    assert np.allclose(table.receiver_positions_m, np.asarray(nominal["receiver_positions_m"])[None])
    assert geometry.start_time_s == 0.0 and table.start_time_s.tolist() == [0.0] * 2


def test_engine_settings_per_origin_and_shared_only_when_equal(tmp_path, caplog):
    import json

    folders = []
    for index, (name, width) in enumerate((("A", 20), ("B", 24), ("C", None))):
        folder, _, _ = _folder(tmp_path / name, f"family-{name.lower()}", first_value=1000 * index)
        manifest = json.loads((folder / "manifest.json").read_text())
        if width is None:  # an older manifest: only its engine section
            manifest["engine"] = {"spatial_order": 4, "absorbing_width_cells": 20, "free_surface": False}
        else:
            manifest["engine_settings"] = {"wavelet": "ricker", "absorbing_width_cells": width}
        (folder / "manifest.json").write_text(json.dumps(manifest))
        folders.append(folder)
    with caplog.at_level(logging.WARNING, logger="data_prep.dataset_writer"):
        path = ingest(folders, tmp_path / "d.h5", QUIET)
    assert "simulated with different engine settings (absorbing_width_cells, free_surface," in caplog.text
    assert "wavelet differ between origins" in caplog.text
    with h5py.File(path, "r") as h5:
        origins = schema.read_origins(h5)
        assert schema.read_engine_settings(h5) == {}, "no single engine to re-simulate with"
    assert origins[0]["engine_settings"] == {"wavelet": "ricker", "absorbing_width_cells": 20}
    assert origins[1]["engine_settings"]["absorbing_width_cells"] == 24
    older = origins[2]["engine_settings"]
    assert older["spatial_order"] == 4 and older["peak_frequency_hz"] == GEOMETRY.peak_frequency_hz
    assert "does not record the wavelet's delay or the amplitude convention" in older["recorded_by"]


@pytest.mark.slow
def test_issue_done_when_two_families_of_four_openfwi_models(tmp_path):
    """Issue 7's done-when, as the user types it (OpenFWI geometry, 4 models per family, real processes)."""
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    def run(*argv):
        completed = subprocess.run(
            [sys.executable, "-m", *argv], capture_output=True, text=True, cwd=REPO_ROOT, timeout=1800
        )
        assert completed.returncode == 0, completed.stderr[-2000:]
        return completed.stdout

    for family, name in (("flatvel-a", "A"), ("curvefault-b", "B")):
        run(
            "data_prep.synthesize",
            "--family",
            family,
            "--count",
            "4",
            "--seed",
            "1",
            "--out",
            str(tmp_path / name),
        )
    printed = run(
        "data_prep.ingest", str(tmp_path / "A"), str(tmp_path / "B"), "--out", str(tmp_path / "mix.h5")
    )
    assert "curvefault-b: 4 samples" in printed and "flatvel-a: 4 samples" in printed
    summary = schema.validate(tmp_path / "mix.h5")
    with schema.open_dataset(tmp_path / "mix.h5") as h5:
        families = schema.read_sample_families(h5)
        seismic = h5["seismic"][()]
    assert families.tolist() == ["flatvel-a"] * 4 + ["curvefault-b"] * 4
    assert summary.seismic_shape == (8, 5, 1000, 70)
    peak = np.abs(seismic).max(axis=(1, 2, 3))
    assert np.all((peak > 20) & (peak < 110)), f"OpenFWI-like amplitudes expected, max |x| per sample {peak}"


def test_a_folder_whose_headers_disagree_with_its_manifest_is_refused(tmp_path):
    """Positions may differ between origins, but a synthesize folder's headers must say what its manifest says."""
    folder, seismic, _ = _folder(tmp_path / "A", "flatvel-a")
    moved = folder / "flatvel-a_shots_000002-000003.segy"

    def move_receiver(headers):  # model 4 (the file's second): receiver 2 at 41 m instead of 40 m
        target = (headers["UnassignedInt1"] == 4) & (headers["TraceNumber"] == 2)
        headers["GroupX"] = np.where(target, headers["GroupX"] + 100, headers["GroupX"])

    write_fixture(moved, seismic[2:], GEOMETRY, first_model=2, edit_headers=move_receiver)
    with pytest.raises(
        UserError,
        match=r"headers of .*flatvel-a_shots_000002-000003.segy disagree with .*manifest.json: model 4: receiver 2 "
        r"at \(depth, x\) = \(0, 41\) m instead of \(0, 40\) m",
    ):
        ingest([folder], tmp_path / "d.h5", QUIET)
