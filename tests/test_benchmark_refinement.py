"""benchmarks/refinement.py: what decides whether a cached row is today's."""

from __future__ import annotations


def test_the_refinement_benchmark_measures_again_when_the_refinement_code_changes(tmp_path):
    """Its cached rows are keyed by a digest of pipeline.refine's sources (a fix of the optimiser once went
    unmeasured because only the settings were in the key)."""
    from benchmarks.refinement import _refine_code_digest

    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    before = _refine_code_digest(tmp_path)
    assert before == _refine_code_digest(tmp_path) and len(before) == 16
    (tmp_path / "b.py").write_text("y = 3\n")
    assert _refine_code_digest(tmp_path) != before
    assert _refine_code_digest() != before  # the installed package's own sources
