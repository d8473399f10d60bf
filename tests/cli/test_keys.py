"""``passage keys``: rotate an access key in the store or through a running server."""

from __future__ import annotations

import argparse
import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from passage.cli.main import main
from passage.cli.management import ConnectionString, RemoteError, call_remote, remote_target
from passage.config import Config
from passage.identity.keys import KEY_BYTES, AccessKey, KeyName, decode_key
from passage_server import free_port, passage_process

pytestmark = pytest.mark.usefixtures("no_passage_environment")


def run_passage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "passage", *args], capture_output=True, text=True, timeout=60
    )


def signed_usage(connection_string: str, ca_file: Path) -> Any:
    """``GET /usage`` signed with the string's key: raises RemoteError (401) for a stale key."""
    flags = argparse.Namespace(connection_string=connection_string, ca_file=str(ca_file))
    target = remote_target(flags, Config())
    assert target is not None
    return call_remote(target, "GET", "/usage")


def shown_keys(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, list[str]]:
    """``passage keys show --reveal``: name → [fingerprint, secret]."""
    assert main(["keys", "show", "--reveal", "--data-dir", str(data_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    return {name: rest for name, *rest in (line.split() for line in lines)}


# --- against a running server ---------------------------------------------------


def test_rotate_through_the_server_refuses_the_old_key_at_once(tmp_path: Path) -> None:
    with passage_process(tmp_path) as (info, _log):
        old = info.connection_string()
        secondary = run_passage(
            "connection-string", "--secondary", "--data-dir", str(info.data_dir),
            "--listen-ip", info.host, "--api-port", str(info.api_port),
        ).stdout.strip()  # fmt: skip
        assert secondary.startswith("endpoint=")
        result = run_passage(
            "keys", "rotate", "primary", "--connection-string", old, "--ca-file", str(info.ca_cert)
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "primary key rotated"
        assert lines[1].startswith("connection string: ")
        new = ConnectionString.parse(lines[1].removeprefix("connection string: "))
        assert lines[2] == (
            "note: tokens and relay credentials minted with the old primary key no longer work"
        )
        assert new.endpoint == ConnectionString.parse(old).endpoint
        assert new.access_key != ConnectionString.parse(old).access_key

        with pytest.raises(RemoteError, match="answered 401"):
            signed_usage(old, info.ca_cert)
        assert signed_usage(str(new), info.ca_cert)["value"] == []
        assert signed_usage(secondary, info.ca_cert)["value"] == []  # the other key stays
        assert info.connection_string() == str(new)  # and the store holds the new one


def test_rotate_on_the_data_dir_of_a_running_server_goes_through_its_api(
    tmp_path: Path,
) -> None:
    """The server running on the data directory rotates the key itself: the old one is
    refused at once, with no wait for a store poll."""
    with passage_process(tmp_path) as (info, _log):
        old = info.connection_string()
        result = run_passage("keys", "rotate", "primary", "--data-dir", str(info.data_dir))
        assert result.returncode == 0, result.stderr
        assert result.stderr.startswith(f"passage: using the server running on {info.data_dir} (")
        lines = result.stdout.splitlines()
        assert lines[0] == "primary key rotated"
        new = ConnectionString.parse(lines[1].removeprefix("connection string: "))
        assert new.endpoint == ConnectionString.parse(old).endpoint  # advertised, not loopback
        with pytest.raises(RemoteError, match="answered 401"):
            signed_usage(old, info.ca_cert)
        assert signed_usage(str(new), info.ca_cert)["value"] == []
        assert info.connection_string() == str(new)


# --- on the local store -----------------------------------------------------------


def test_show_prints_fingerprints_and_secrets_only_on_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    keys = shown_keys(data_dir, capsys)
    assert list(keys) == ["primary", "secondary"]
    for name, (fingerprint, secret) in keys.items():
        assert len(decode_key(secret)) == KEY_BYTES
        assert AccessKey(KeyName(name), decode_key(secret)).key_id == fingerprint

    assert main(["keys", "show", "--data-dir", str(data_dir)]) == 0
    hidden = capsys.readouterr().out
    assert hidden.splitlines() == [f"{name:<9}  {keys[name][0]}" for name in keys]
    assert all(secret not in hidden for _, secret in keys.values())


def test_rotate_in_the_store_replaces_only_that_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    before = shown_keys(data_dir, capsys)
    assert main(["keys", "rotate", "secondary", "--data-dir", str(data_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    after = shown_keys(data_dir, capsys)

    assert lines[0] == "secondary key rotated"
    assert lines[1] == f"key: {after['secondary'][1]}"
    assert "`passage connection-string --secondary`" in lines[2]
    assert "old secondary key no longer work" in lines[3]
    assert after["primary"] == before["primary"]
    assert after["secondary"][0] != before["secondary"][0]
    assert after["secondary"][1] != before["secondary"][1]


def test_show_reads_the_local_store_and_does_not_offer_a_connection_string(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its --help listed --connection-string and then refused it; now it does not list it."""
    key = base64.b64encode(bytes(KEY_BYTES)).decode()
    connection = f"endpoint=https://127.0.0.1:1/;accesskey={key}"
    argv = ["keys", "show", "--data-dir", str(tmp_path), "--connection-string", connection]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "unrecognized arguments: --connection-string" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["keys", "show", "--help"])
    assert "--connection-string" not in capsys.readouterr().out


def test_unreachable_server_is_an_error_and_prints_no_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = base64.b64encode(bytes(KEY_BYTES)).decode()
    connection = f"endpoint=http://127.0.0.1:{free_port()}/;accesskey={key}"
    argv = ["keys", "rotate", "primary", "--data-dir", str(tmp_path)]
    assert main([*argv, "--connection-string", connection]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "cannot reach 127.0.0.1" in captured.err


def test_unknown_key_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["keys", "rotate", "tertiary"])
    assert exited.value.code == 2
    assert "primary" in capsys.readouterr().err
