"""``passage connection-string`` beside a running ``passage serve``: the string the SDKs take."""

from __future__ import annotations

import argparse
import base64
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from passage.cli.main import main
from passage.cli.management import call_remote, remote_target
from passage.config import Config
from passage.identity.keys import KEY_BYTES
from passage_server import ServerInfo, passage_process


def run_passage(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m passage ARGS`` without any ``PASSAGE_*`` setting from the outer environment."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PASSAGE_")}
    return subprocess.run(
        [sys.executable, "-m", "passage", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def signed_usage(connection_string: str, ca_file: Path) -> Any:
    """``GET /usage`` signed with the string's key: raises RemoteError (401) for a stale key."""
    flags = argparse.Namespace(connection_string=connection_string, ca_file=str(ca_file))
    target = remote_target(flags, Config())
    assert target is not None
    return call_remote(target, "GET", "/usage")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    with passage_process(tmp_path_factory.mktemp("serve")) as (info, _log):
        yield info


def connection_string(info: ServerInfo, *extra: str) -> str:
    result = run_passage(
        "connection-string", "--data-dir", str(info.data_dir), "--listen-ip", info.host,
        "--api-port", str(info.api_port), *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_names_the_api_and_a_key_the_server_accepts(server: ServerInfo) -> None:
    printed = connection_string(server)
    match = re.fullmatch(
        rf"endpoint=https://127\.0\.0\.1:{server.api_port}/;accesskey=(\S+)", printed
    )
    assert match is not None, printed
    assert len(base64.b64decode(match[1], validate=True)) == KEY_BYTES
    assert signed_usage(printed, server.ca_cert)["value"] == []


def test_secondary_is_another_key_the_server_accepts(server: ServerInfo) -> None:
    primary, secondary = connection_string(server), connection_string(server, "--secondary")
    assert primary.split(";")[0] == secondary.split(";")[0]
    assert primary != secondary
    assert signed_usage(secondary, server.ca_cert)["value"] == []


def test_http_names_the_plain_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    argv = ["connection-string", "--data-dir", str(data_dir), "--listen-ip", "127.0.0.1"]
    assert main([*argv, "--http", "--http-port", "8080"]) == 0
    assert capsys.readouterr().out.startswith("endpoint=http://127.0.0.1:8080/;accesskey=")


def test_http_without_an_http_port_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("PASSAGE_"):
            monkeypatch.delenv(name)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    assert main(["connection-string", "--data-dir", str(data_dir), "--http"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("passage: error: ")
    assert "--http-port" in captured.err
