"""One name per idea: ``--endpoint`` for the server's address, ``PASSAGE_TOKEN`` for a user token.

The old spellings keep working (users have scripts), are hidden from ``--help``,
and say once what replaced them.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from passage.cli.main import build_parser, main
from passage_server import free_port

pytestmark = pytest.mark.usefixtures("no_passage_environment")


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    path.mkdir()
    yield path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        status = main(list(argv))
    except SystemExit as exited:
        status = int(exited.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize(
    ("command", "hidden"),
    [
        (["expose"], ["--relay-url", "--api-port", "--listen-ip", "--public-host", "--relay-ip"]),
        (["connect"], ["--relay-url", "--api-port", "--http-port", "--public-ip"]),
        (["doctor"], ["--public-host", "--public-ip", "--listen-ip", "--relay-ip"]),
        (["hc", "token"], ["--base-url", "--api-port"]),
        (["pipe"], ["--api-port", "--listen-ip"]),
    ],
)
def test_client_commands_list_no_server_flags_and_no_old_names(
    command: list[str], hidden: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, *command, "--help")
    assert status == 0
    for flag in hidden:
        assert flag not in out, flag
    if command != ["doctor"]:
        assert "--endpoint URL" in out


def test_hc_token_s_base_url_still_works_and_says_endpoint(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "hc", "create", "orders", "--data-dir", str(data_dir))[0] == 0
    status, out, err = run(
        capsys, "hc", "token", "orders", "--base-url", "http://relay.test", "--data-dir",
        str(data_dir),
    )  # fmt: skip
    assert status == 0
    assert "sr=http%3A%2F%2Frelay.test%2Forders" in out
    assert err == "passage: warning: --base-url is deprecated; use --endpoint\n"
    status, same, err = run(
        capsys, "hc", "token", "orders", "--endpoint", "http://relay.test", "--data-dir",
        str(data_dir),
    )  # fmt: skip
    assert (status, err) == (0, "")
    assert "sr=http%3A%2F%2Frelay.test%2Forders" in same


def test_expose_s_relay_url_still_works_and_says_endpoint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    closed = free_port()
    status, _, err = run(
        capsys, "expose", "web", "--to", "127.0.0.1:9", "--relay-url", f"ws://127.0.0.1:{closed}",
        "--relay-connection-string",
        "Endpoint=sb://relay.test/;SharedAccessKeyName=rule;SharedAccessKey=key-key-key-key-key",
    )  # fmt: skip
    lines = err.splitlines()
    assert lines[0] == "passage: warning: --relay-url is deprecated; use --endpoint"
    assert status == 2
    assert lines[-1].startswith("passage: error: cannot listen on 'web': ")
    assert f"127.0.0.1:{closed}" in lines[-1]  # the old flag's address was the one dialled


def test_the_old_token_variable_still_works_and_says_the_new_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = free_port()
    monkeypatch.setenv("PASSAGE_USER_TOKEN", "eyJ.old.name")
    status, _, err = run(
        capsys, "pipe", "--room", "names", "--endpoint", f"https://127.0.0.1:{closed}/"
    )
    assert status == 2
    assert err.splitlines() == [
        "passage: warning: PASSAGE_USER_TOKEN is deprecated; use PASSAGE_TOKEN",
        f"passage: error: --endpoint https://127.0.0.1:{closed}/: cannot reach "
        f"127.0.0.1:{closed}: [Errno 111] Connection refused",
    ]


def _parsers(
    parser: argparse.ArgumentParser, path: str = "passage"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def test_every_flag_with_a_default_says_it_in_help_nested_actions_too() -> None:
    """``passage hc rule add --help`` shows defaults as ``passage serve --help`` does."""
    missing = []
    for path, parser in _parsers(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or not action.option_strings:
                continue
            if action.default in (None, False, argparse.SUPPRESS):
                continue
            text = formatter._get_help_string(action) or ""
            if "default" not in text:
                missing.append(f"{path} {action.option_strings[0]}")
    assert not missing
