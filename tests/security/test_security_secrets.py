"""Secrets never reach the log, even at debug level (issue 2, "CLI and configuration")."""

from __future__ import annotations

import base64
import time
from pathlib import Path

from passage.stun import long_term_key
from passage.turn.credentials import rest_password
from passage_server import passage_process
from turn_client import TurnClient, error_code

AUTH_SECRET = "S3CR3T-xyz"
BOB_PASSWORD = "hunter2-pw"
WRONG_PASSWORD = "wr0ng-Guess-77"


async def test_no_secret_or_password_is_logged(tmp_path: Path) -> None:
    args = ("--log-level", "debug", "--auth-secret", AUTH_SECRET, "--user", f"bob:{BOB_PASSWORD}")
    rest_user = f"{int(time.time()) + 600}:carol"
    rest_pw = rest_password(AUTH_SECRET, rest_user)
    forged_pw = rest_password("not-the-secret", rest_user)
    with passage_process(tmp_path, *args) as (info, log):
        server = (info.host, info.turn_port)
        attempts = [
            ("udp", "bob", BOB_PASSWORD, None),
            ("tcp", info.username, info.password, None),
            ("udp", rest_user, rest_pw, None),
            ("udp", "bob", WRONG_PASSWORD, 401),
            ("tcp", rest_user, forged_pw, 401),
            ("udp", "nobody", WRONG_PASSWORD, 401),
        ]
        for transport, username, password, expected in attempts:
            client = await TurnClient.connect(transport, server, username, password)
            try:
                assert error_code(await client.allocate()) == expected, username
            finally:
                await client.close()
    text = log.read_text()
    # The log did see all of it: debug output, allocations and refusals.
    assert "DEBUG" in text and "configuration" in text
    assert text.count(" started: ") == 3 and text.count(" ended (refresh_zero)") == 3
    assert text.count("refused allocate from ") == text.count(": 401 ") == 3
    secrets = {
        "auth secret": AUTH_SECRET,
        "static password": BOB_PASSWORD,
        "harness password": info.password,
        "wrong password": WRONG_PASSWORD,
        "REST password": rest_pw,
        "forged REST password": forged_pw,
    }
    for key_user, key_password in (("bob", BOB_PASSWORD), (rest_user, rest_pw)):
        key = long_term_key(key_user, info.realm, key_password)
        secrets[f"key of {key_user} (hex)"] = key.hex()
        secrets[f"key of {key_user} (base64)"] = base64.b64encode(key).decode()
    leaked = [name for name, secret in secrets.items() if secret in text]
    assert leaked == []
