"""benchmarks/refinement.py: what decides whether a cached row is today's."""

from __future__ import annotations


def test_the_refinement_benchmark_measures_again_when_the_refinement_code_changes(tmp_path):
    """Its cached rows are keyed by a digest of the sources a refinement runs (a fix of the optimiser once
    went unmeasured because only the settings were in the key)."""
    from benchmarks.refinement import _refine_code_digest

    package, module = tmp_path / "package", tmp_path / "module.py"
    package.mkdir()
    (package / "a.py").write_text("x = 1\n")
    (package / "b.py").write_text("y = 2\n")
    module.write_text("z = 3\n")
    before = _refine_code_digest([package, module])
    assert before == _refine_code_digest([package, module]) and len(before) == 16
    (package / "b.py").write_text("y = 4\n")
    changed_package = _refine_code_digest([package, module])
    module.write_text("z = 5\n")
    changed_module = _refine_code_digest([package, module])
    assert len({before, changed_package, changed_module}) == 3, (
        "a change in a folder or in a single file counts"
    )
    assert _refine_code_digest() != before  # the project's own sources
