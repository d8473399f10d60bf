"""``passage hc`` on the local store: connections, rules and tokens, and its error exits.

The same command through a running server (``--connection-string``) is tested in
tests/api/test_hc_admin_api.py, beside the API it calls.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from passage.cli.main import main
from passage.hybrid.admin import HybridAdmin
from passage.hybrid.entities import ROOT_RULE, Namespace
from passage.hybrid.sas import Rights, SasToken, verify_sas_token
from passage.mounts import RESERVED_NAMES
from passage.store.database import open_database, sqlite_url
from passage.store.hybrid import HybridStore
from passage_server import passage_process

pytestmark = pytest.mark.usefixtures("no_passage_environment")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


class Passage:
    """``passage hc ... --data-dir DIR`` in-process: (exit status, stdout lines, stderr)."""

    def __init__(self, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.data_dir = data_dir
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, list[str], str]:
        status = main(["hc", *argv, "--data-dir", str(self.data_dir)])
        captured = self.capsys.readouterr()
        return status, captured.out.splitlines(), captured.err

    def ok(self, *argv: str) -> list[str]:
        status, out, err = self(*argv)
        assert (status, err) == (0, ""), (argv, err)
        return out

    def fails(self, *argv: str) -> str:
        status, out, err = self(*argv)
        assert (status, out) == (2, []), (argv, out)
        assert err.startswith("passage: error: "), err
        return err.removeprefix("passage: error: ").strip()


@pytest.fixture
def passage(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> Passage:
    return Passage(data_dir, capsys)


def stored_namespace(data_dir: Path) -> Namespace:
    """What the store holds, read as the server reads it."""

    async def load() -> Namespace:
        database = await open_database(sqlite_url(data_dir))
        try:
            admin = HybridAdmin(
                HybridStore(database),
                clock=time.time,
                new_key=lambda: "unused",
                reserved_names=RESERVED_NAMES,
            )
            return await admin.refresh()
        finally:
            await database.close()

    return asyncio.run(load())


def test_create_list_and_delete(passage: Passage, data_dir: Path) -> None:
    assert passage.ok("create", "Orders/EU") == [
        "created hybrid connection Orders/EU (senders need a token)"
    ]
    assert passage.ok("create", "public", "--no-client-auth") == [
        "created hybrid connection public (anonymous senders)"
    ]
    assert passage.ok("list") == [
        "Orders/EU  senders need a token",
        "public     anonymous senders",
    ]
    stored = stored_namespace(data_dir)
    assert sorted(stored.connections) == ["orders/eu", "public"]
    assert stored.connections["public"].requires_client_authorization is False

    assert passage.ok("delete", "orders/eu") == [
        "deleted hybrid connection orders/eu and its rules"
    ]
    assert passage.ok("list") == [
        "public     anonymous senders"[: len("public")] + "  anonymous senders"
    ]
    assert sorted(stored_namespace(data_dir).connections) == ["public"]


def test_the_root_rule_is_created_once_with_random_keys(passage: Passage, data_dir: Path) -> None:
    assert passage.ok("list") == []
    assert passage.ok("rule", "list") == [f"{ROOT_RULE}  Listen, Send, Manage"]
    out = passage.ok("rule", "show", ROOT_RULE)
    assert out[0] == f"rule {ROOT_RULE} on the namespace: Listen, Send, Manage"
    primary, secondary = (line.split(": ", 1)[1] for line in out[1:])
    assert len(base64.b64decode(primary, validate=True)) == 32
    assert len(base64.b64decode(secondary, validate=True)) == 32
    assert primary != secondary
    assert passage.ok("rule", "show", ROOT_RULE) == out  # the next run keeps them
    root = stored_namespace(data_dir).rules[ROOT_RULE]
    assert (root.primary_key, root.secondary_key) == (primary, secondary)


def test_rules_on_a_connection_and_on_the_namespace(passage: Passage, data_dir: Path) -> None:
    passage.ok("create", "orders")
    out = passage.ok("rule", "add", "app", "--rights", "listen,send", "--entity", "orders")
    assert out[0] == "created rule app on hybrid connection orders: Listen, Send"
    assert out[1].startswith("primary key: ") and out[2].startswith("secondary key: ")
    out = passage.ok(
        "rule", "add", "app", "--rights", "SEND", "--entity", "ORDERS", "--key", "k" * 20
    )
    assert out == [
        "replaced rule app on hybrid connection ORDERS: Send",
        f"primary key: {'k' * 20}",
        out[2],
    ]
    passage.ok("rule", "add", "monitor", "--rights", "listen")
    assert passage.ok("rule", "list", "--entity", "orders") == ["app  Send"]
    assert passage.ok("rule", "list") == [
        f"{ROOT_RULE}  Listen, Send, Manage",
        f"{'monitor':<{len(ROOT_RULE)}}  Listen",
    ]
    stored = stored_namespace(data_dir)
    assert stored.connections["orders"].rules["app"].primary_key == "k" * 20
    assert stored.rules["monitor"].rights == Rights.LISTEN

    assert passage.ok("rule", "delete", "app", "--entity", "orders") == [
        "deleted rule app on hybrid connection orders"
    ]
    assert passage.ok("rule", "delete", "monitor") == ["deleted rule monitor on the namespace"]
    assert passage.ok("rule", "list", "--entity", "orders") == []
    assert set(stored_namespace(data_dir).rules) == {ROOT_RULE}


def test_token_is_one_line_that_verifies(passage: Passage, data_dir: Path) -> None:
    passage.ok("create", "Orders")
    passage.ok("rule", "add", "listener", "--rights", "listen", "--entity", "orders")
    before = int(time.time())
    out = passage.ok(
        "token",
        "orders",
        "--rule",
        "listener",
        "--ttl",
        "90",
        "--endpoint",
        "http://relay.test:9090",
    )
    assert len(out) == 1
    token = SasToken.parse(out[0])
    assert urllib.parse.unquote(token.resource) == "http://relay.test:9090/Orders"
    assert before + 90 <= token.expiry <= int(time.time()) + 90
    stored = stored_namespace(data_dir)
    rules = stored.rules_for(stored.connections["orders"])
    check = {"hosts": ("relay.test",), "entity": "orders", "now": time.time()}
    assert verify_sas_token(out[0], rules, needed=Rights.LISTEN, **check).name == "listener"

    root = passage.ok("token", "orders", "--endpoint", "http://relay.test")
    assert SasToken.parse(root[0]).key_name == ROOT_RULE
    assert verify_sas_token(root[0], rules, needed=Rights.SEND, **check).name == ROOT_RULE


def test_token_names_the_advertised_host_by_default(
    passage: Passage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PASSAGE_PUBLIC_HOST", "relay.example.test")
    monkeypatch.setenv("PASSAGE_API_PORT", "8443")
    passage.ok("create", "orders")
    token = SasToken.parse(passage.ok("token", "orders")[0])
    assert urllib.parse.unquote(token.resource) == "http://relay.example.test:8443/orders"
    assert token.expiry >= int(time.time()) + 3600 - 5  # one hour by default


def test_refusals_exit_2_with_what_is_wrong(passage: Passage) -> None:
    passage.ok("create", "orders")
    assert passage.fails("create", "ORDERS") == "hybrid connection 'ORDERS' already exists"
    assert "/usage is served by the Passage API" in passage.fails("create", "usage")
    assert "1-260 letters" in passage.fails("create", "a b")
    assert "must start and end with a letter or digit" in passage.fails("create", "a/-b")
    assert passage.fails("delete", "ghost") == "no hybrid connection named 'ghost'"
    assert "unknown right 'write'" in passage.fails("rule", "add", "app", "--rights", "write")
    assert "no hybrid connection named 'ghost'" in passage.fails(
        "rule", "add", "app", "--rights", "send", "--entity", "ghost"
    )
    assert "16 to 256 printable ASCII" in passage.fails(
        "rule", "add", "app", "--rights", "send", "--key", "short"
    )
    assert "cannot be deleted" in passage.fails("rule", "delete", ROOT_RULE)
    assert "no authorization rule 'app' on the namespace" in passage.fails("rule", "delete", "app")
    assert "no authorization rule 'nope' on hybrid connection 'orders' or the namespace" in (
        passage.fails("token", "orders", "--rule", "nope")
    )
    assert "expected http://HOST" in passage.fails("token", "orders", "--endpoint", "relay")
    assert passage.ok("list") == ["orders  senders need a token"]


def test_bad_ttl_is_a_usage_error(passage: Passage, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        passage("token", "orders", "--ttl", "0")
    assert exited.value.code == 2
    assert "'0' is not a whole number of seconds >= 1" in capsys.readouterr().err


def test_a_missing_data_dir_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert main(["hc", "list", "--data-dir", str(missing)]) == 2
    assert f"{missing} does not exist" in capsys.readouterr().err
    assert not missing.exists()


MONTH = 30 * 24 * 3600
"""The relay's --hc-max-token-lifetime default."""


def test_a_ttl_past_the_default_token_lifetime_warns_in_one_line(passage: Passage) -> None:
    passage.ok("create", "orders")
    status, out, err = passage("token", "orders", "--ttl", str(MONTH + 1))
    assert status == 0 and len(out) == 1  # the token is still printed, for another relay
    assert err.count("\n") == 1 and err.startswith("passage: warning: "), err
    assert f"--ttl {MONTH + 1} is longer than the default" in err
    assert f"--hc-max-token-lifetime ({MONTH} s)" in err and "(401)" in err
    assert passage.ok("token", "orders", "--ttl", str(MONTH))  # at the limit: no warning


def test_a_ttl_past_the_configured_token_lifetime_warns(
    passage: Passage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PASSAGE_HC_MAX_TOKEN_LIFETIME", "3600")
    passage.ok("create", "orders")
    _, _, err = passage("token", "orders", "--ttl", "3601")
    assert "longer than the configured --hc-max-token-lifetime (3600 s)" in err


def test_a_ttl_past_the_running_server_s_token_lifetime_warns(tmp_path: Path) -> None:
    """The running server's limit (from its server.json) wins over this command's."""
    with passage_process(tmp_path, "--hc-max-token-lifetime", "600") as (info, _):
        record = json.loads((info.data_dir / "server.json").read_text())
        assert record["hc_max_token_lifetime"] == 600
        base = [sys.executable, "-m", "passage", "hc"]
        where = ["--data-dir", str(info.data_dir)]
        subprocess.run([*base, "create", "orders", *where], check=True, capture_output=True)
        done = subprocess.run(
            [*base, "token", "orders", "--ttl", "601", *where],
            capture_output=True, text=True, check=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("PASSAGE_")},
        )  # fmt: skip
    assert done.stdout.startswith("SharedAccessSignature ")
    # The first line says which server the command asked; the warning is the other one.
    [line] = [text for text in done.stderr.splitlines() if "warning" in text]
    assert f"longer than the running server's (pid {record['pid']})" in line
    assert "--hc-max-token-lifetime (600 s)" in line and "--ttl 600 or less" in line
