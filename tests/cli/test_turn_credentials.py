"""``passage turn-credentials``: coturn-compatible ephemeral credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from passage.cli.main import main
from passage.config import Config
from passage.datadir import prepare_data_dir

PASSAGE = Path(sys.executable).parent / "passage"


def expected_password(secret: str, username: str) -> str:
    """draft-uberti-behave-turn-rest-00 §2.2: base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def parse_lines(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.strip().splitlines())


def test_prints_username_and_password_from_the_secret(capsys: pytest.CaptureFixture[str]) -> None:
    before = int(time.time())
    assert main(["turn-credentials", "--user", "alice", "--ttl", "600", "--auth-secret", "s"]) == 0
    printed = parse_lines(capsys.readouterr().out)
    expiry, _, user = printed["username"].partition(":")
    assert user == "alice"
    assert before + 600 <= int(expiry) <= int(time.time()) + 600
    assert printed["password"] == expected_password("s", printed["username"])
    assert printed["expires"].endswith("Z")


def test_json_form(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["turn-credentials", "--json", "--ttl", "60", "--auth-secret", "k"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"username", "password", "expires"}
    assert printed["username"].isdigit()  # no --user: the expiry alone, as coturn
    assert printed["password"] == expected_password("k", printed["username"])


def test_first_configured_secret_mints(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PASSAGE_AUTH_SECRETS", "newest,older")
    assert main(["turn-credentials", "--user", "bob"]) == 0
    printed = parse_lines(capsys.readouterr().out)
    assert printed["password"] == expected_password("newest", printed["username"])


def test_uses_the_secret_passage_serve_generated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    datadir = prepare_data_dir(Config(data_dir=tmp_path / "data"))
    (secret,) = datadir.auth_secrets
    assert main(["turn-credentials", "--data-dir", str(datadir.path), "--user", "carol"]) == 0
    printed = parse_lines(capsys.readouterr().out)
    assert printed["password"] == expected_password(secret, printed["username"])


def test_missing_data_dir_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PASSAGE_AUTH_SECRETS", raising=False)
    assert main(["turn-credentials", "--data-dir", str(tmp_path / "absent")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("passage: error: ")
    assert "passage serve" in error


def test_non_positive_ttl_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["turn-credentials", "--ttl", "0", "--auth-secret", "s"]) == 2
    assert "--ttl" in capsys.readouterr().err


def test_entry_point_runs_as_a_subprocess(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(PASSAGE), "turn-credentials", "--json", "--user", "dave", "--auth-secret", "xyz"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=tmp_path,
    )
    printed = json.loads(result.stdout)
    assert printed["username"].endswith(":dave")
    assert printed["password"] == expected_password("xyz", printed["username"])
