"""benchmarks/references.py: a verdict is never drawn from a reference that contradicts itself.

Fabricated timings only (no timing in tests); the first case is the measurement of issue 24: Deepwave with
2 threads 22.65 s / sample against 0.166 s with 1 thread, once written as "184x, met".
"""

from __future__ import annotations

from benchmarks.forward_modelling import timing_problems
from benchmarks.references import scaling_problem, spread_problem, verdict


def test_more_threads_much_slower_than_one_makes_the_verdict_invalid():
    problem = scaling_problem("1 thread", 0.166, "Deepwave, 2 threads", 22.65)
    assert problem and "136.4x slower" in problem
    text = verdict(True, [problem], load=3.9)
    assert text.startswith("INVALID") and "met" not in text.replace("INVALID", "") and "load 3.9" in text


def test_a_bigger_batch_much_slower_per_sample_is_a_contradiction_but_modest_slowdowns_are_not():
    assert scaling_problem("1 model / call", 1.0, "16 models / call", 2.0)
    assert scaling_problem("1 model / call", 1.0, "16 models / call", 1.4) is None
    assert scaling_problem("1 thread", 1.0, "2 threads", 0.6) is None


def test_repeats_that_spread_beyond_the_factor_are_not_trusted():
    assert spread_problem("Deepwave, 1 thread", [0.16, 0.17, 0.50]) is not None
    assert spread_problem("Deepwave, 1 thread", [0.16, 0.17, 0.30]) is None
    assert spread_problem("one repeat", [0.16]) is None


def test_a_consistent_reference_gives_met_or_not_met_with_its_load():
    assert verdict(True, [], load=1.25) == "met, load 1.2"
    assert verdict(False, [], load=0.5) == "NOT met, load 0.5"


def _result(unbatched, batched=None):
    return {"unbatched_s": unbatched, "batched_s_per_sample": batched or {}}


def test_forward_modelling_checks_the_issue_measurement_and_passes_a_sane_one():
    single = {"deepwave": [_result([0.166, 0.170, 0.168])], "tensorflow": [_result([0.09] * 3)], "jax": []}
    broken = {
        "deepwave": [_result([22.65, 22.0, 23.1], {"16": [0.15, 0.16]})],
        "ours": [_result([0.12, 0.12, 0.13], {"16": [0.05, 0.05]})],
    }
    problems = timing_problems(single, broken, threads=2, batch_sizes=(16,))
    assert any("Deepwave, 2 threads" in p and "slower" in p for p in problems), problems
    sane = {
        "deepwave": [_result([0.10, 0.11, 0.10], {"16": [0.09, 0.09]})],
        "ours": [_result([0.05, 0.05, 0.06], {"16": [0.03, 0.03]})],
    }
    assert timing_problems(single, sane, threads=2, batch_sizes=(16,)) == []
    spread = {"deepwave": [_result([0.10, 0.35, 0.10])], "ours": [_result([0.05] * 3)]}
    assert any("repeats spread" in p for p in timing_problems(single, spread, threads=2, batch_sizes=()))


def test_forward_modelling_never_writes_met_from_the_issue_measurement(monkeypatch, capsys):
    """The whole report, with the engines replaced by fabricated results: Deepwave with 2 threads 136x slower
    than with 1, in both the measurement and the re-measurement. Every speed verdict says INVALID."""
    import numpy as np

    import benchmarks.forward_modelling as benchmark

    calls = []

    def fake_worker(
        engine, threads, repeats, batch_sizes, folder, backend=None, width=None, reflection=False
    ):
        calls.append((engine, threads, reflection))
        widths = {str(w): 1e-3 for w in benchmark.DEEPWAVE_WIDTH_CANDIDATES}
        if reflection:
            if engine == "ours":
                return {"default_width": 14, "reflection": widths}
            return {"reflection": widths}
        traces = np.ones((5, 10, 70), np.float32)
        np.save(
            folder / ("ours.npy" if engine == "ours" else "deepwave.npy"),
            traces * (1 if engine == "ours" else -1),
        )
        slow = engine == "deepwave" and threads > 1
        seconds = (
            [22.65, 22.0, 23.1] if slow else [0.166, 0.17, 0.168] if engine == "deepwave" else [0.09] * 3
        )
        return {
            "unbatched_s": seconds,
            "batched_s_per_sample": {str(b): [0.05, 0.05] for b in batch_sizes},
            "version": "fake",
        }

    monkeypatch.setattr(benchmark, "_worker", fake_worker)
    assert benchmark.main(["--quick", "--no-write", "--threads", "2", "--batch-sizes", "16"]) == 0
    report = capsys.readouterr().out
    assert "measuring again" in report
    assert "**The timings contradict themselves after a re-measurement**" in report
    speed = [line for line in report.splitlines() if "target >= 1.0x" in line or "target >= 1.5x" in line]
    assert speed and all("INVALID" in line for line in speed), speed
    assert "INVALID" not in report.split("Trace agreement")[1], (
        "the trace agreement is not timed: it keeps its verdict"
    )
    # Twice the timed phases: measured, then re-measured once.
    assert (
        sum(
            1
            for engine, threads, reflection in calls
            if engine == "deepwave" and threads == 2 and not reflection
        )
        == 2
    )


def test_a_page_calls_a_run_quiet_only_when_nothing_else_ran():
    from benchmarks.report import load_sentence

    assert load_sentence(0.3, 2.4, cores=2).startswith("Quiet machine: load average 0.3 before, 2.4 after")
    loaded = load_sentence(8.8, 7.5, cores=2)
    assert loaded.startswith("**Provisional**") and "8.8 before, 7.5 after (1 min, 2 cores)" in loaded
    # The benchmark's own workers may load every core at the end, but not more.
    assert load_sentence(0.2, 4.5, cores=2).startswith("**Provisional**")
