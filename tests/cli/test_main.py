"""The ``passage`` command table, ``--version`` and ``passage serve`` start-up."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from passage import __version__
from passage.cli.logging import configure_logging
from passage.cli.main import COMMANDS, main
from passage.config import Config
from passage.datadir import DataDir


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"passage {__version__}"


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    for command in COMMANDS:
        assert command.name in err


def test_serve_builds_config_and_data_dir_then_runs_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[Config, DataDir]] = []
    reread: list[Config] = []

    async def serve(config: Config, datadir: DataDir, reread_config: Callable[[], Config]) -> None:
        started.append((config, datadir))
        monkeypatch.setenv("PASSAGE_TURN_PORT", "4479")
        reread.append(reread_config())  # what a reload reads: the same flags, the environment

    app = types.ModuleType("passage.app")
    app.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "passage.app", app)
    monkeypatch.setenv("PASSAGE_TURN_PORT", "4478")
    data_dir = tmp_path / "data"
    argv = ["serve", "--data-dir", str(data_dir), "--realm", "example.org", "--log-level", "debug"]
    assert main(argv) == 0
    ((config, datadir),) = started
    assert (config.turn_port, config.turn.realm) == (4478, "example.org")
    assert datadir.path == data_dir
    assert (data_dir / "server.pem").exists()
    assert logging.getLogger().level == logging.DEBUG
    assert (reread[0].turn_port, reread[0].turn.realm) == (4479, "example.org")


def test_configure_logging_writes_one_line_per_event(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    configure_logging("info")  # a second call replaces the handler, no doubled lines
    logging.getLogger("passage.test").info("allocation %s created", "a1")
    logging.getLogger("passage.test").debug("not shown")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(" INFO passage.test: allocation a1 created")


def test_logging_follows_stderr_when_it_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler writes to the current stderr: one swapped and closed since (as a test
    harness or an embedding program does) gives no '--- Logging error ---'."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("info")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("passage.test").info("after the swap")
    assert second.getvalue().endswith(" INFO passage.test: after the swap\n")


def test_serve_config_error_exits_2_with_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--data-dir", str(tmp_path), "--relay-ports", "9-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("passage: error: --relay-ports: expected LOW-HIGH")
    assert not (tmp_path / "ca.pem").exists()


@pytest.mark.parametrize(
    "argv",
    [[entry.name] for entry in COMMANDS]
    + [["hc", action] for action in ("create", "list", "delete", "token", "connection-string")]
    + [["hc", "rule", "add"], ["keys", "rotate"], ["keys", "show"]],
)
def test_every_help_has_a_description_and_an_example(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    paragraphs = out.split("\n\n")
    assert paragraphs[1].strip().endswith("."), out  # one line saying what it does
    if argv[0] != "keys":  # keys' actions share the command's example
        assert "\nexample:\n  passage " in out, out


def test_help_loads_no_command_module() -> None:
    """passage --help lists every command without importing one (bench/cli_startup.py
    measures the time; this keeps the import graph from growing back)."""
    code = (
        "import sys\n"
        "from passage.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('passage.cli.') "
        "and m not in ('passage.cli.main', 'passage.cli.parsing')))\n"
        "print('passage.config' in sys.modules, 'typing' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.splitlines()[-2:] == ["[]", "False False"], done.stderr
