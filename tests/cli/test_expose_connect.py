"""``passage expose`` and ``passage connect`` end to end: real processes, real sockets.

``passage serve`` runs in a subprocess; ``passage expose`` and ``passage
connect`` run as their own processes too, as a user runs them, each told
where the relay is by the data directory or by a relay connection string.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from passage_server import ServerInfo, free_port, passage_command, passage_process

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerInfo]:
    with passage_process(tmp_path) as (info, _log):
        yield info


def passage(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSAGE_")}
    return subprocess.run(
        [sys.executable, "-m", "passage", *argv], capture_output=True, text=True, env=env
    )


def store(info: ServerInfo) -> list[str]:
    """What ``passage hc`` needs to act on the server's store."""
    return ["--data-dir", str(info.data_dir)]


def local_flags(info: ServerInfo) -> list[str]:
    """What expose/connect need to find the relay: the data directory of the running server."""
    return ["--data-dir", str(info.data_dir)]


@contextlib.contextmanager
def running(*argv: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """A ``passage`` process that printed its first line (it is ready); stopped with SIGTERM."""
    with passage_command(*argv, env=env) as (process, _):
        yield process


async def start_echo_server() -> tuple[asyncio.Server, int]:
    """A TCP service that echoes, and closes its side when the client closes its."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    port = free_port((socket.SOCK_STREAM,))
    return await asyncio.start_server(echo, "127.0.0.1", port), port


async def round_trip(port: int, payload: bytes) -> bytes:
    """Send ``payload``, half-close, read to EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    writer.write_eof()
    received = await reader.read()
    writer.close()
    return received


async def test_a_tcp_service_exposed_and_reached_through_the_relay(server: ServerInfo) -> None:
    assert passage("hc", "create", "echo", *store(server)).returncode == 0
    echo_server, echo_port = await start_echo_server()
    local_port = free_port((socket.SOCK_STREAM,))
    async with echo_server:
        with (
            running("expose", "echo", "--to", f"127.0.0.1:{echo_port}", *local_flags(server)),
            running("connect", "echo", "--listen", f"127.0.0.1:{local_port}", *local_flags(server)),
        ):
            payload = os.urandom(1_000_000)
            received = await round_trip(local_port, payload)
            assert hashlib.sha256(received).hexdigest() == hashlib.sha256(payload).hexdigest()
            many = await asyncio.gather(
                *(round_trip(local_port, f"client {n}".encode() * 100) for n in range(20))
            )
            assert many == [f"client {n}".encode() * 100 for n in range(20)]


async def test_a_relay_connection_string_is_all_connect_needs(server: ServerInfo) -> None:
    assert passage("hc", "create", "tunnel", *store(server)).returncode == 0
    endpoint = f"sb://127.0.0.1:{server.api_port}/"
    printed = passage("hc", "connection-string", "tunnel", "--endpoint", endpoint, *store(server))
    assert printed.returncode == 0, printed.stderr
    text = printed.stdout.strip()
    assert text.startswith(f"Endpoint=sb://127.0.0.1:{server.api_port}/;")
    assert text.endswith(";EntityPath=tunnel")
    echo_server, echo_port = await start_echo_server()
    local_port = free_port((socket.SOCK_STREAM,))
    relay_env = {
        "PASSAGE_RELAY_CONNECTION_STRING": text,
        "PASSAGE_CA_FILE": str(server.ca_cert),
    }
    async with echo_server:
        with (
            running("expose", "tunnel", "--to", f"127.0.0.1:{echo_port}", env=relay_env),
            running("connect", "tunnel", "--listen", f"127.0.0.1:{local_port}", env=relay_env),
        ):
            assert await round_trip(local_port, b"via the string") == b"via the string"


async def test_an_http_service_exposed_with_http_and_reached_with_curl(
    server: ServerInfo,
) -> None:
    assert passage("hc", "create", "web", *store(server)).returncode == 0

    async def hello(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {"path": request.path_qs, "method": request.method, "length": len(body)}
        )

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    http_port = free_port((socket.SOCK_STREAM,))
    await web.TCPSite(runner, "127.0.0.1", http_port).start()
    base = f"http://127.0.0.1:{server.api_port}"
    token = passage("hc", "token", "web", "--endpoint", base, *store(server)).stdout.strip()
    url = f"https://127.0.0.1:{server.api_port}/web/items/7?full=1"
    try:
        with running(
            "expose", "web", "--to", f"127.0.0.1:{http_port}", "--http", *local_flags(server)
        ) as exposing:
            assert exposing.stdout is not None
            assert exposing.stdout.readline() == f"open https://127.0.0.1:{server.api_port}/web/\n"
            curl = await asyncio.to_thread(
                subprocess.run,
                ["curl", "-sS", "--cacert", str(server.ca_cert), "-H", f"Authorization: {token}",
                 "-X", "POST", "--data-binary", "@-", "-i", url],
                input=b"x" * 300_000, capture_output=True,
            )  # fmt: skip
            assert curl.returncode == 0, curl.stderr
            head, _, body = curl.stdout.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            assert b"\r\nvia: 1.1 " in head.lower()
            assert json.loads(body) == {
                "path": "/items/7?full=1",
                "method": "POST",
                "length": 300_000,
            }
            # Python's own client, no token: 401 from the relay, not the service.
            request = urllib.request.Request(url, method="GET")
            context = ssl.create_default_context(cafile=str(server.ca_cert))
            with pytest.raises(urllib.error.HTTPError) as refused:
                await asyncio.to_thread(urllib.request.urlopen, request, context=context)
            assert refused.value.code == 401
            refused.value.close()  # it holds the response's socket
    finally:
        await runner.cleanup()


async def test_a_killed_listener_ends_its_streams_at_once(server: ServerInfo) -> None:
    assert passage("hc", "create", "fragile", *store(server)).returncode == 0
    echo_server, echo_port = await start_echo_server()
    local_port = free_port((socket.SOCK_STREAM,))
    async with echo_server:
        with (
            running(
                "expose", "fragile", "--to", f"127.0.0.1:{echo_port}", *local_flags(server)
            ) as exposer,
            running(
                "connect", "fragile", "--listen", f"127.0.0.1:{local_port}", *local_flags(server)
            ),
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", local_port)
            writer.write(b"before")
            await writer.drain()
            assert await reader.readexactly(6) == b"before"
            exposer.send_signal(signal.SIGKILL)
            exposer.wait()
            # The relay sees the listener's sockets close and ends the stream: EOF, no hang.
            assert await asyncio.wait_for(reader.read(), 30) == b""
            writer.close()


def test_expose_says_plainly_what_is_wrong(server: ServerInfo) -> None:
    missing = passage("expose", "nothing", "--to", "127.0.0.1:9", *local_flags(server))
    assert missing.returncode == 2
    assert "no hybrid connection 'nothing'" in missing.stderr
    assert passage("hc", "create", "named", *store(server)).returncode == 0
    bad_rule = passage(
        "expose", "named", "--to", "127.0.0.1:9", "--rule", "nope", *local_flags(server)
    )
    assert bad_rule.returncode == 2 and "no authorization rule 'nope'" in bad_rule.stderr
    # connect checks its rule's rights at start, not at the first connection
    added = passage("hc", "rule", "add", "listener", "--rights", "listen", "--entity", "named",
                    *store(server))  # fmt: skip
    assert added.returncode == 0, added.stderr
    listen_only = passage(
        "connect", "named", "--listen", "127.0.0.1:0", "--rule", "listener", *local_flags(server)
    )
    assert listen_only.returncode == 2
    assert listen_only.stderr.splitlines()[-1] == (
        "passage: error: --rule listener: the rule does not grant send on 'named' "
        "(passage hc rule add listener --rights send --entity named)"
    )
    bad_target = passage("expose", "named", "--to", "localhost", *local_flags(server))
    assert bad_target.returncode == 2 and "is not HOST:PORT" in bad_target.stderr
    wrong_entity = passage(
        "connect", "named", "--listen", "127.0.0.1:0",
        "--relay-connection-string",
        "Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=a;SharedAccessKey=b;EntityPath=other",
    )  # fmt: skip
    assert wrong_entity.returncode == 2 and "is for 'other'" in wrong_entity.stderr
    forged = passage(
        "expose", "named", "--to", "127.0.0.1:9", "--ca-file", str(server.ca_cert),
        "--relay-connection-string",
        f"Endpoint=sb://127.0.0.1:{server.api_port}/;SharedAccessKeyName=RootManageSharedAccessKey;"
        "SharedAccessKey=wrong-key-wrong-key",
    )  # fmt: skip
    assert forged.returncode == 2
    assert forged.stderr.startswith(
        "passage: error: cannot listen on 'named': the token was refused (bad signature, "
        "expired, or for another hybrid connection)"
    ), forged.stderr
    assert forged.stderr.endswith(" (401)\n")
