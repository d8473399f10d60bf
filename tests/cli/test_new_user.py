"""The new user's path, end to end: ``passage serve`` on ports of its own, then every helper
given nothing but ``--data-dir``. Each must talk to that server (not to the defaults,
which on a shared host may be somebody else's) and say so in one line on stderr.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from passage.app import runtime_record
from passage.cli.main import main
from passage.hybrid.endpoint import RelayEndpoint
from passage.hybrid.entities import ROOT_RULE
from passage.hybrid.sdk import HybridConnectionListener, KeyTokenProvider
from passage.runtime import write_record
from passage.tlsmaterial import generate_ca
from passage_server import ServerInfo, in_process, passage_command, passage_process

NEVER = 1e9
"""A store poll interval no test outlives: only what the server is told reaches it."""

pytestmark = pytest.mark.timeout(180)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PASSAGE_")}


def passage(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "passage", *argv],
        capture_output=True, text=True, env=clean_env() | (env or {}),
    )  # fmt: skip


running = passage_command
"""A ``passage`` process that printed its first line, and that line; then SIGTERM."""


async def echo_once(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    writer.write_eof()
    received = await reader.read()
    writer.close()
    return received


def announced(info: ServerInfo) -> str:
    return f"passage: using the server running on {info.data_dir} (pid "


def pipe_waits_for_the_other_side(info: ServerInfo, only: tuple[str, ...]) -> None:
    """pipe with only the data directory: the running server makes it a user, and it checks
    the user's token before it says it waits."""
    pipe = subprocess.Popen(
        [sys.executable, "-m", "passage", "pipe", "--room", "newuser-room", *only],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env=clean_env() | {"PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert pipe.stderr is not None
    said = [pipe.stderr.readline() for _ in range(3)]
    assert said[0].startswith(announced(info))
    assert said[1].startswith("passage pipe: created user 8:acs:")
    assert said[2] == "passage pipe: waiting for the other side in room 'newuser-room'\n"
    pipe.send_signal(signal.SIGINT)
    assert pipe.wait(timeout=15) == 130
    pipe.stderr.close()


async def test_serve_then_every_helper_with_only_the_data_dir(tmp_path: Path) -> None:
    with passage_process(tmp_path) as (info, _log):
        only = ("--data-dir", str(info.data_dir))
        api = f"https://127.0.0.1:{info.api_port}/"

        printed = passage("connection-string", *only)
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout.startswith(f"endpoint={api};accesskey=")
        assert printed.stderr.startswith(announced(info))
        assert printed.stderr.count("\n") == 1  # one line says which server

        credentials = passage("turn-credentials", "--user", "alice", "--json", *only)
        assert json.loads(credentials.stdout)["username"].endswith(":alice")

        # Created through the running server: a listener right after it is accepted.
        created = passage("hc", "create", "echo", *only)
        assert created.stdout == "created hybrid connection echo (senders need a token)\n"
        string = passage("hc", "connection-string", "echo", *only).stdout
        assert string.startswith(f"Endpoint=sb://127.0.0.1:{info.api_port}/;")
        token = passage("hc", "token", "echo", *only).stdout
        assert token.startswith("SharedAccessSignature sr=http%3A%2F%2F127.0.0.1%3A")

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read())
            writer.write_eof()
            await writer.drain()
            writer.close()

        service = await asyncio.start_server(echo, "127.0.0.1", 0)
        service_port = service.sockets[0].getsockname()[1]
        async with service:
            with (
                running("expose", "echo", "--to", f"127.0.0.1:{service_port}", *only) as (_, up),
                running("connect", "echo", "--listen", "127.0.0.1:0", *only) as (_, listening),
            ):
                assert f"on wss://127.0.0.1:{info.api_port}" in up
                local_port = int(listening.split(":")[1].split()[0])
                assert await echo_once(local_port, b"through the relay") == b"through the relay"

        doctor = passage("doctor", "--duration", "0", "--json", *only)
        assert doctor.returncode == 0, doctor.stderr
        probed = {(t["transport"], t["port"]) for t in json.loads(doctor.stdout)["transports"]}
        assert probed == {("udp", info.turn_port), ("tcp", info.turn_port),
                          ("tls", info.turns_port)}  # fmt: skip

        minted = passage("token", *only)
        assert minted.returncode == 0, minted.stderr
        assert minted.stderr.splitlines()[1].startswith("passage: token for user 8:acs:")
        with_token = passage(
            "doctor", "--duration", "0", "--json", "--endpoint", api,
            "--ca-file", str(info.ca_cert), env={"PASSAGE_TOKEN": minted.stdout.strip()},
        )  # fmt: skip
        assert json.loads(with_token.stdout)["credentials"] == {"source": "token", "error": None}

        pipe_waits_for_the_other_side(info, only)

        usage = passage("usage", "--format", "json", *only)
        assert usage.returncode == 0 and "value" in json.loads(usage.stdout)
        # An untrusted certificate names the fix.
        _, other_ca = generate_ca("another CA", datetime.datetime.now(datetime.UTC))
        (tmp_path / "elsewhere.pem").write_bytes(other_ca.public_bytes(Encoding.PEM))
        untrusted = passage(
            "usage", "--connection-string", printed.stdout.strip(),
            "--ca-file", str(tmp_path / "elsewhere.pem"), "--data-dir", str(tmp_path / "none"),
        )  # fmt: skip
        assert untrusted.returncode == 2
        assert untrusted.stderr.startswith(
            f"passage: error: cannot reach 127.0.0.1:{info.api_port}: its TLS certificate "
            "is not trusted (unable to get local issuer certificate); pass --ca-file "
            "DATA_DIR/ca.pem (the CA passage serve made, e.g. .passage/ca.pem) or set "
            "PASSAGE_CA_FILE"
        ), untrusted.stderr
        keys = passage("keys", "show", *only)
        assert keys.returncode == 0 and keys.stdout.startswith("primary ")

        second = passage("serve", *only, "--turn-port", "1", "--api-port", "0")
        assert second.returncode == 2
        assert second.stderr.startswith(
            f"passage: error: --data-dir {info.data_dir}: a passage serve already runs on it (pid "
        )
        assert (info.data_dir / "server.json").exists()
    assert not (info.data_dir / "server.json").exists()  # removed at a clean stop
    after = passage("connection-string", *only)
    assert after.stderr == ""  # no server runs: the configuration's defaults, silently
    offline = passage("token", "--json", *only)  # minted from the store itself
    assert json.loads(offline.stdout)["token"].count(".") == 2


async def test_a_hybrid_connection_created_on_the_data_dir_is_usable_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """hc create goes through the running server, so its listener is accepted at once. The
    server here never polls its store: a connection written to the store alone would be
    404 for good (it was 404 until the next poll, up to a second)."""
    for name in [name for name in os.environ if name.startswith("PASSAGE_")]:
        monkeypatch.delenv(name)
    async with in_process(tmp_path, poll_interval=NEVER) as server:
        write_record(
            server.datadir.path, runtime_record(server.config, server.datadir, server.running)
        )
        admin = server.running.api.hybrid_admin
        assert admin is not None
        root = await admin.get_rule(None, ROOT_RULE)  # before: reading rules refreshes
        only = ["--data-dir", str(server.datadir.path)]
        assert await asyncio.to_thread(main, ["hc", "create", "at-once", *only]) == 0
        assert capsys.readouterr().err.startswith(
            f"passage: using the server running on {server.datadir.path} (pid {os.getpid()}, "
        )
        relay = RelayEndpoint.parse(server.https_base)
        tokens = KeyTokenProvider(root.name, root.primary_key)
        async with HybridConnectionListener(
            relay, "at-once", tokens, ssl=server.tls_context()
        ) as listener:
            assert listener.name == "at-once"
