"""Every command line follows the same conventions (``core/cli.py``, issue 12 item 4).

For each command: ``--help`` shows examples, ``--version`` prints ``seisinvert <version>``, a usage error and
a bad input each exit with status 2 and one line ``error: ...`` on stderr (no traceback). The shared parts
(exit status of a bug and of Ctrl-C, logging levels of ``--quiet``/``--verbose``/``--debug``, progress lines
for logs, the native-stderr filter) are checked once on ``core.cli`` and ``core.progress``. Two real ``python -m`` processes
check what only a fresh interpreter shows: TensorFlow's start-up lines do not reach stderr.
"""

from __future__ import annotations

import argparse
import importlib
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import cli, progress
from core.errors import UserError
from core.progress import Progress
from tests.conftest import REPO_ROOT

#: Module run by ``python -m`` -> the module holding its ``main`` and ``build_parser``.
COMMANDS = {
    "data_prep.synthesize": "data_prep.synthesize",
    "data_prep.ingest": "data_prep.ingest.stage",
    "data_prep.openfwi": "data_prep.openfwi",
    "data_prep.validate": "data_prep.validate",
    "pipeline.train": "pipeline.train",
    "pipeline.evaluate": "pipeline.evaluate",
    "pipeline.infer": "pipeline.infer",
    "pipeline.dashboard": "pipeline.dashboard",
}


def bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """One input error per command: arguments and a fragment of the expected message."""
    missing = tmp_path / "missing"
    return {
        "data_prep.synthesize": (["--out", str(tmp_path / "s"), "--shard", "5/3"], "1 <= K <= N"),
        "data_prep.ingest": ([str(missing), "--out", str(tmp_path / "d.h5")], "missing"),
        "data_prep.openfwi": ([str(missing), "--out", str(tmp_path / "o.h5")], "missing"),
        "data_prep.validate": ([str(missing / "d.h5")], "does not exist"),
        "pipeline.train": (
            ["--data", str(missing / "x.h5"), "--set", "tracking.enabled=false"],
            "does not exist",
        ),
        "pipeline.evaluate": (["--data", str(missing / "x.h5"), "--no-tracking"], "--model"),
        "pipeline.infer": (["--out", str(tmp_path / "run")], "--model and --input are required"),
        "pipeline.dashboard": (["--store", str(missing / "mlflow.db")], "No MLflow store"),
    }


def _module(command: str):
    return importlib.import_module(COMMANDS[command])


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_examples_and_the_shared_options(command, capsys):
    module = _module(command)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: python -m {command}" in text
    examples = text.split("examples:\n", 1)[-1]
    assert "examples:\n" in text and f"  python -m {command}" in examples, f"no examples in:\n{text}"
    for option in ("--version", "--quiet", "--verbose", "--debug"):
        assert option in text, f"{option} missing from {command} --help"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_version(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _module(command).main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"seisinvert {cli.package_version()}"


def test_the_version_is_the_package_version():
    import importlib.metadata
    import tomllib

    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert cli.package_version() == declared
    try:
        assert importlib.metadata.version("seisinvert") == declared
    except importlib.metadata.PackageNotFoundError:
        pass  # a source tree that is not installed: pyproject.toml is the answer


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_usage_and_input_errors_exit_2_with_one_line(command, tmp_path, capsys):
    module = _module(command)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--no-such-option"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"usage error of {command}: {err!r}"
    assert f"see python -m {command} --help" in lines[0]

    argv, fragment = bad_inputs(tmp_path)[command]
    assert module.main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"input error of {command}: {err!r}"
    assert fragment in lines[0] and "Traceback" not in err


# ----------------------------------------------------------------------------------------------------------
# The shared behaviour, on core.cli itself
# ----------------------------------------------------------------------------------------------------------


def _command(body):
    parser = cli.make_parser("python -m example", "An example command.", examples=["python -m example"])
    cli.add_common_arguments(parser)
    return lambda argv: cli.run_main(body, parser, argv)


def test_a_bug_exits_1_with_its_traceback_and_debug_lets_it_propagate(capsys):
    def body(args: argparse.Namespace) -> int:
        raise RuntimeError("boom")

    run = _command(body)
    assert run([]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: boom" in err
    assert err.strip().splitlines()[-1].startswith("error: unexpected RuntimeError (a bug")
    with pytest.raises(RuntimeError, match="boom"):
        run(["--debug"])


def test_ctrl_c_exits_130(capsys):
    def body(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    assert _command(body)([]) == 130
    assert capsys.readouterr().err.startswith("interrupted")


def test_an_error_message_is_printed_on_one_line(capsys):
    def body(args: argparse.Namespace) -> int:
        raise UserError("first part\n  second part")

    assert _command(body)([]) == 2
    assert capsys.readouterr().err == "error: first part second part\n"


@pytest.mark.parametrize(
    ("flags", "shown", "hidden"),
    [
        ([], {"warning: a warning", "error: an error"}, {"an info", "a debug", "library info"}),
        (["--quiet"], {"warning: a warning"}, {"an info", "a debug", "library info"}),
        (["--verbose"], {"an info", "a warning"}, {"a debug", "library info"}),
        (["--debug"], {"an info", "a debug", "library info", "a warning"}, set()),
    ],
)
def test_logging_levels(flags, shown, hidden, capsys):
    def body(args: argparse.Namespace) -> int:
        stage = logging.getLogger("pipeline.example")
        stage.debug("a debug")
        stage.info("an info")
        stage.warning("a warning")
        stage.error("an error")
        logging.getLogger("some_library").info("library info")
        return 0

    before = (
        logging.getLogger().level,
        logging.getLogger("pipeline").level,
        len(logging.getLogger().handlers),
    )
    assert _command(body)(flags) == 0
    err = capsys.readouterr().err
    for text in shown:
        assert text in err, f"{flags}: {text!r} missing from {err!r}"
    for text in hidden:
        assert text not in err, f"{flags}: {text!r} shown in {err!r}"
    after = (
        logging.getLogger().level,
        logging.getLogger("pipeline").level,
        len(logging.getLogger().handlers),
    )
    assert after == before, "the logging configuration is restored after the command"


def test_progress_writes_plain_lines_when_not_on_a_terminal(monkeypatch):
    stream = io.StringIO()
    clock = iter(range(0, 10_000, 7))  # 7 s per call of time.monotonic
    monkeypatch.setattr(progress.time, "monotonic", lambda: float(next(clock)))
    with Progress(total=20, desc="ingest", unit="trace", interval_s=30.0, stream=stream) as bar:
        for _ in range(20):
            bar.update(1)
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    # One line at most every 30 s of the 140 s, and one at the end.
    assert 2 <= len(lines) <= 6, lines
    assert lines[-1].startswith("ingest: 20/20 trace (100%)"), lines[-1]
    quiet = io.StringIO()
    assert list(Progress(range(3), disable=True, stream=quiet)) == [0, 1, 2] and quiet.getvalue() == ""


def test_the_native_filter_drops_tensorflow_start_up_lines_and_keeps_the_rest(capfd):
    noise = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1795983514.813346   26507 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
        "GPU will not be used.\n"
        "E0000 00:00:1795983525.192121   26507 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n"
    )
    with cli.filtered_native_stderr():
        os.write(2, noise.encode())
        os.write(2, b"a real problem\n")
        print("python's stderr", file=sys.stderr)
    err = capfd.readouterr().err
    # (pytest's capture may take Python's line before the replayed one: compare the lines, not their order.)
    assert sorted(err.splitlines()) == ["a real problem", "python's stderr"], err


def test_tensorflow_logging_is_left_alone_with_debug_or_level_0(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert cli.quiet_native_logging(debug=True) is False
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    assert cli.quiet_native_logging() is False and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


# ----------------------------------------------------------------------------------------------------------
# Real processes: what a user's terminal shows
# ----------------------------------------------------------------------------------------------------------

#: What TensorFlow, XLA and absl print at start-up on a machine without a GPU (none may reach the user).
NOISE_PATTERNS = (
    "absl::InitializeLog",
    "cudart_stub",
    "cpu_feature_guard",
    "To enable the following instructions",
    "cuInit",
    "cuda_platform",
    "I0000",
    "E0000",
    "W0000",
    "oneDNN",
)


@pytest.mark.parametrize(
    ("command", "argv", "fragment"),
    [
        # Imports Keras (and TensorFlow) at module level, then refuses the missing dataset.
        ("pipeline.train", ["--data", "missing.h5", "--set", "tracking.enabled=false"], "does not exist"),
        # A data_prep command: TensorFlow is imported by `import keras` before core.cli is.
        ("data_prep.synthesize", ["--out", "out", "--count", "1", "--shard", "2/1"], "1 <= K <= N"),
    ],
)
def test_a_real_command_prints_one_error_line_and_no_tensorflow_noise(command, argv, fragment, tmp_path):
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as in a user's shell
    environment.update(PYTHONPATH=str(REPO_ROOT), KERAS_BACKEND="tensorflow")
    completed = subprocess.run(
        [sys.executable, "-m", command, *argv],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 2, completed.stderr[-3000:]
    found = [p for p in NOISE_PATTERNS if p in completed.stderr]
    assert not found, f"TensorFlow start-up noise on stderr ({found}):\n{completed.stderr}"
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], completed.stderr
