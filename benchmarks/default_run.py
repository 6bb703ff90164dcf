"""The README's default run, measured as a user would run it, and every sentence and picture made from it.

    python -m benchmarks.default_run                                   # the default run (~13 min on 2 cores)
    python -m benchmarks.default_run --config configs/train/quick.yaml # a smoke test of this script (~2 min)

1. Takes the ``python -m pipeline.train ...`` of the README's first quick-start command (the line CI checks
   too), adds ``--config`` files if given, and runs it in a fresh temporary directory: the default dataset is
   synthesized there, the MLflow store is that directory's ``mlflow.db``, exactly as on a fresh clone. The
   checkout being measured is put first on ``PYTHONPATH`` (an editable install may point elsewhere).
2. Records into ``docs/default_run.json``: the command, the phases (data, compilation, epochs, evaluation) and
   epochs from the run's ``run_summary.json`` (written by ``pipeline.train``), the test metrics, the dashboard
   line, the machine (CPU model, cores) and its load (``uptime`` and ``os.getloadavg`` before and after).
3. Rewrites the generated ``default_run`` blocks of README.md and docs/training.md from that record
   (``<!-- BEGIN default_run -->`` ... ``<!-- END default_run -->``; each names this command).
4. Re-makes ``docs/figures/prediction.png`` and ``section.png`` from the run's registered model
   (``docs/make_figures.py --only prediction,section``), unless ``--no-figures``.

``--no-write`` prints the record and the blocks and changes no file. Run it on a quiet machine: the run trains
for a fixed wall clock (``max_total_time_s``), so a busy machine trains fewer epochs and records a worse model.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"
TRAINING_MD = REPO_ROOT / "docs" / "training.md"
RECORD = REPO_ROOT / "docs" / "default_run.json"
BLOCK = "default_run"
#: The default run's targets as the README states them: SSIM, MAE on OpenFWI's [-1, 1] scale, wall clock.
TARGET_SSIM, TARGET_MAE, TARGET_WALL_S = 0.80, 0.10, 900.0
#: The README's first quick-start command ends with the training command this script runs.
SETUP_PREFIX = 'python3 -m venv .venv && . .venv/bin/activate && pip install -q -e ".[dev]" && '


# ----------------------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------------------


def readme_train_command(readme_text: str) -> list[str]:
    """The ``python -m pipeline.train ...`` of the README's first quick-start command, as arguments.

    Raises:
        ValueError: the README holds no such command.
    """
    for line in readme_text.splitlines():
        line = line.strip()
        if line.startswith(SETUP_PREFIX) and "pipeline.train" in line:
            return shlex.split(line[len(SETUP_PREFIX) :])
    raise ValueError(
        f"README.md holds no quick-start line '{SETUP_PREFIX}python -m pipeline.train ...': the default run "
        "is no longer where this script looks for it."
    )


def benchmark_command(configs: Sequence[str]) -> str:
    """The command that regenerates the record, as the blocks cite it."""
    return " ".join(["python -m benchmarks.default_run", *(f"--config {c}" for c in configs)])


# ----------------------------------------------------------------------------------------------------------
# Machine and load
# ----------------------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def load_snapshot() -> dict[str, Any]:
    """``uptime``'s line and the 1/5/15-minute load averages, now."""
    try:
        uptime = subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        uptime = ""
    return {
        "time_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "uptime": uptime,
        "loadavg": [round(value, 2) for value in os.getloadavg()],
    }


def git_commit() -> str | None:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if completed.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    ).stdout.strip()
    return completed.stdout.strip() + ("+uncommitted changes" if dirty else "")


# ----------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------


def run_training(arguments: Sequence[str], workdir: Path) -> tuple[int, str, float]:
    """Runs ``python -m pipeline.train ...`` in ``workdir``, echoing its output; ``(exit code, output, s)``."""
    environment = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    )
    environment.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    command = [sys.executable, *arguments[1:]] if arguments[0] in ("python", "python3") else list(arguments)
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=workdir, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    code = process.wait()
    return code, "".join(lines), time.monotonic() - started


def run_folder(keep: Path | None, prefix: str) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    """The empty folder a run starts in, and what removes it afterwards: ``keep`` (created if missing, refused
    unless empty; kept), else a new temporary folder."""
    if keep is None:
        cleanup = tempfile.TemporaryDirectory(prefix=prefix)
        return Path(cleanup.name), cleanup
    keep.mkdir(parents=True, exist_ok=True)
    if any(keep.iterdir()):
        raise ValueError(f"--keep {keep} is not empty: the run must start from an empty directory")
    return keep.resolve(), None


def measure_training(
    arguments: Sequence[str], workdir: Path
) -> tuple[dict[str, Any], str, float, dict, dict] | None:
    """Runs the training command in ``workdir`` between two load snapshots: ``(run_summary.json's content,
    output, wall s, load before, load after)``, or None (after saying so) when the command failed."""
    print(f"running `{' '.join(arguments)}` in {workdir}", flush=True)
    load_before = load_snapshot()
    code, output, wall_s = run_training(arguments, workdir)
    load_after = load_snapshot()
    if code != 0:
        print(f"error: the training command exited with {code}", file=sys.stderr)
        return None
    summary = json.loads(find_summary(workdir, output).read_text())
    return summary, output, wall_s, load_before, load_after


def dashboard_line(output: str) -> str | None:
    for line in output.splitlines():
        if line.startswith("dashboard: "):
            return line[len("dashboard: ") :].strip()
    return None


def find_summary(workdir: Path, output: str) -> Path:
    """The run's ``run_summary.json``: the path ``pipeline.train`` printed, else the one under ``outputs/``."""
    match = re.search(r"^run summary: (.+)$", output, re.MULTILINE)
    if match:
        path = Path(match.group(1).strip())
        path = path if path.is_absolute() else workdir / path
        if path.is_file():
            return path
    found = sorted(workdir.glob("outputs/*/run_summary.json"))
    if not found:
        raise RuntimeError(f"pipeline.train wrote no run_summary.json under {workdir / 'outputs'}")
    return found[-1]


def make_record(
    command: str,
    train_arguments: Sequence[str],
    summary: dict[str, Any],
    output: str,
    wall_s: float,
    load_before: dict[str, Any],
    load_after: dict[str, Any],
) -> dict[str, Any]:
    metrics = summary.get("test_metrics", {})
    return {
        "format": "seisinvert-default-run",
        "format_version": 1,
        "command": command,
        "train_command": " ".join(train_arguments),
        "commit": git_commit(),
        "date_utc": load_before["time_utc"][:10],
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
        "load": {"before": load_before, "after": load_after},
        "wall_s": round(wall_s, 1),
        "phases_s": {k: (None if v is None else round(float(v), 1)) for k, v in summary["phases_s"].items()},
        "epoch_times_s": [round(float(v), 1) for v in summary.get("epoch_times_s", [])],
        "epochs": summary["epochs"],
        "budget_s": summary.get("budget_s", {}),
        "test_metrics": {k: round(float(v), 4) for k, v in metrics.items()},
        "registered_model": summary.get("registered_model"),
        "model_version": summary.get("model_version"),
        "dashboard": dashboard_line(output),
    }


# ----------------------------------------------------------------------------------------------------------
# The generated blocks
# ----------------------------------------------------------------------------------------------------------


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _range(values: Sequence[float]) -> str:
    if not values:
        return "-"
    low, high = min(values), max(values)
    return f"{low:.0f}" if round(low) == round(high) else f"{low:.0f}–{high:.0f}"


def readme_block(record: dict[str, Any] | None, command: str = "python -m benchmarks.default_run") -> str:
    """The README's default-run sentences (or, without a record, that none is recorded yet)."""
    if record is None:
        return (
            f"*Not yet regenerated:* `{command}` runs the command above in a fresh directory, records it in "
            "[docs/default_run.json](docs/default_run.json) and writes these sentences (and the prediction and "
            "section pictures below) from that record."
        )
    phases, metrics, epochs = record["phases_s"], record["test_metrics"], record["epochs"]
    load_before, load_after = record["load"]["before"]["loadavg"][0], record["load"]["after"]["loadavg"][0]
    steady = record["epoch_times_s"][1:] or record["epoch_times_s"]
    cut = (
        f"; the time budget cut the {epochs['configured']} configured epochs to {epochs['run']}"
        if epochs.get("budget_cut")
        else ""
    )
    edge = f", edge F1 {metrics['edges_f1']:.2f}" if "edges_f1" in metrics else ""
    ssim, mae = metrics.get("velocity_ssim", float("nan")), metrics.get("velocity_mae", float("nan"))
    missed = [
        text
        for text, ok in (
            (f"SSIM {ssim:.3f} < 0.80", ssim >= TARGET_SSIM),
            (f"MAE {mae:.3f} > 0.10", mae <= TARGET_MAE),
            (f"{_minutes(record['wall_s'])} > 15 min", record["wall_s"] <= TARGET_WALL_S),
        )
        if not ok
    ]
    targets = "both met" if not missed else f"not met: {', '.join(missed)}"
    budget = (record.get("budget_s") or {}).get("max_total_time_s")
    closing = (
        f" The run trains for a fixed wall clock ({budget:.0f} s, `max_total_time_s`), so a faster or quieter "
        "machine trains more epochs and ends with a better model."
        if budget
        else ""
    )
    return (
        f"Measured by `{command}` (record: [docs/default_run.json](docs/default_run.json)) from an empty "
        f"directory on {record['date_utc']} at {record['commit']}, on {record['machine']['cpu']} with "
        f"{record['machine']['cores']} cores (1-minute load {load_before:.1f} before, {load_after:.1f} after): "
        f"**{_minutes(record['wall_s'])}** in all (data {phases['data']:.0f} s, first epoch "
        f"{phases['first_epoch']:.0f} s with the XLA compilation, {epochs['run']} epochs, the others "
        f"{_range(steady)} s each{cut}; evaluation {phases['evaluation']:.0f} s), test "
        f"**SSIM {ssim:.3f}** and **MAE {mae:.3f}** "
        f"({metrics.get('velocity_mae_mps', float('nan')):.0f} m/s){edge} on FlatVel-A; the targets (SSIM ≥ "
        f"0.80 and MAE ≤ 0.10 within 15 minutes): {targets}.{closing}"
    )


def training_block(record: dict[str, Any] | None, command: str = "python -m benchmarks.default_run") -> str:
    """docs/training.md's table of where a default run's time goes (or, without a record, that none is)."""
    if record is None:
        return (
            f"*Not yet regenerated:* `{command}` runs the default run in a fresh directory and writes here "
            "where its time went (data, compilation, epochs, evaluation) and its test metrics, from "
            "[docs/default_run.json](default_run.json)."
        )
    phases, metrics, epochs = record["phases_s"], record["test_metrics"], record["epochs"]

    def seconds(value):
        return "-" if value is None else f"{value:.0f} s"

    rows = [
        ("data (synthesis and ingest of the default dataset, splits opened)", seconds(phases["data"])),
        ("set-up (model, compile call, MLflow run)", seconds(phases["setup"])),
        (
            "first epoch (XLA compilation and the training split's first read included)",
            seconds(phases["first_epoch"]),
        ),
        (
            "of which compilation, estimated (first epoch less the median epoch)",
            seconds(phases["compilation_estimate"]),
        ),
        (
            f"epochs: {epochs['run']} run of {epochs['configured']} configured (best: {epochs['best']}); "
            f"{_range(record['epoch_times_s'][1:] or record['epoch_times_s'])} s each after the first",
            seconds(phases["epochs"]),
        ),
        ("evaluation of the best epoch's weights on the test split", seconds(phases["evaluation"])),
        ("bundle, MLflow model and registration", seconds(phases["bundle_and_registry"])),
        ("**total** (wall clock of the command)", f"**{_minutes(record['wall_s'])}**"),
    ]
    table = "\n".join(["| phase | time |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)])
    metric_names = [
        ("velocity_ssim", "SSIM"),
        ("velocity_mae", "MAE"),
        ("velocity_rmse", "RMSE"),
        ("velocity_mae_mps", "MAE m/s"),
        ("edges_f1", "edge F1"),
    ]
    shown = [(label, metrics[key]) for key, label in metric_names if key in metrics]
    metric_text = ", ".join(
        f"{label} {value:.3f}" if value < 10 else f"{label} {value:.0f}" for label, value in shown
    )
    load = record["load"]
    return (
        f"Measured by `{command}` ([docs/default_run.json](default_run.json)) on {record['date_utc']} at "
        f"{record['commit']}: {record['machine']['cpu']}, {record['machine']['cores']} cores; `uptime` before: "
        f"`{load['before']['uptime']}`, after: `{load['after']['uptime']}`.\n\n{table}\n\nTest metrics: "
        f"{metric_text}{'; the time budget cut the epochs' if epochs.get('budget_cut') else ''}."
    )


def replace_block(text: str, content: str, name: str = BLOCK) -> str:
    """``text`` with its ``<!-- BEGIN name -->`` ... ``<!-- END name -->`` block's content replaced.

    Raises:
        ValueError: the block is missing or appears more than once.
    """
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    found = pattern.findall(text)
    if len(found) != 1:
        raise ValueError(f"expected one {begin} ... {end} block, found {len(found)}")
    return pattern.sub(lambda _: f"{begin}\n{content.strip()}\n{end}", text)


def write_blocks(
    record: dict[str, Any] | None, command: str, readme: Path = README, training: Path = TRAINING_MD
) -> None:
    readme.write_text(replace_block(readme.read_text(), readme_block(record, command)))
    training.write_text(replace_block(training.read_text(), training_block(record, command)))


# ----------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.default_run",
        description=__doc__.split("\n")[0],
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", action="append", default=[], help="a training YAML added to the command")
    parser.add_argument("--no-write", action="store_true", help="print only: no record, blocks or pictures")
    parser.add_argument(
        "--no-figures", action="store_true", help="do not re-make the prediction/section pictures"
    )
    parser.add_argument(
        "--record", type=Path, default=RECORD, help="where the record goes (docs/default_run.json)"
    )
    parser.add_argument("--readme", type=Path, default=README, help=argparse.SUPPRESS)
    parser.add_argument("--training-md", type=Path, default=TRAINING_MD, help=argparse.SUPPRESS)
    parser.add_argument("--keep", type=Path, help="run in this (new or empty) folder and keep it")
    parser.add_argument(
        "--figures-out", type=Path, help="folder of the re-made pictures (default: docs/figures)"
    )
    args = parser.parse_args(argv)

    arguments = readme_train_command(args.readme.read_text())
    for config in args.config:
        arguments += ["--config", str(Path(config).resolve())]
    command = benchmark_command(args.config)
    try:
        workdir, cleanup = run_folder(args.keep, "seisinvert-default-run-")
    except ValueError as error:
        parser.error(str(error))
    try:
        measured = measure_training(arguments, workdir)
        if measured is None:
            return 1
        summary, output, wall_s, load_before, load_after = measured
        record = make_record(command, arguments, summary, output, wall_s, load_before, load_after)
        print(json.dumps(record, indent=2))
        if args.no_write:
            print(readme_block(record, command), training_block(record, command), sep="\n\n")
            return 0
        args.record.write_text(json.dumps(record, indent=2) + "\n")
        write_blocks(record, command, args.readme, args.training_md)
        print(f"wrote {args.record}, the {BLOCK} blocks of {args.readme} and {args.training_md}")
        if not args.no_figures and summary.get("registered_model"):
            model = f"models:/{summary['registered_model']}/{summary['model_version']}"
            status = subprocess.run(
                [
                    sys.executable,
                    str(REPO_ROOT / "docs" / "make_figures.py"),
                    "--only",
                    "prediction,section",
                    *(["--out", str(args.figures_out)] if args.figures_out else []),
                    "--model",
                    model,
                    "--tracking-uri",
                    f"sqlite:///{workdir / 'mlflow.db'}",
                    "--data",
                    summary["dataset"]
                    if Path(summary["dataset"]).is_absolute()
                    else str(workdir / summary["dataset"]),
                ],
                cwd=REPO_ROOT,
            ).returncode
            if status != 0:
                print("error: docs/make_figures.py failed", file=sys.stderr)
                return 1
        return 0
    finally:
        if cleanup is not None:
            cleanup.cleanup()


if __name__ == "__main__":
    sys.exit(main())
