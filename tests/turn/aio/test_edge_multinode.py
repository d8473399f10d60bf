"""Two ``passage serve`` nodes sharing one PostgreSQL database (``--database-url``).

They share the access keys, the identities and the usage ledger: a relay
credential minted by one node's API works on the other node's TURN; revoking
the identity on one node is refused by the other within its store poll
(about a second); usage relayed on one node is reported by the other's API.
Each run gets its own database, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import asyncpg
import pytest

from passage.cli.management import ConnectionString, RemoteTarget, call_remote
from passage_server import ServerInfo, passage_process
from turn_client import TurnClient, UdpPeer, error_code

pytestmark = pytest.mark.postgres

ADMIN_URL = os.environ.get("PASSAGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    try:
        admin = await asyncpg.connect(ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL not reachable: {error!r}")
        pytest.skip(f"PostgreSQL not reachable: {error!r}")
    name = f"passage_nodes_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        parsed = urllib.parse.urlsplit(ADMIN_URL)
        yield urllib.parse.urlunsplit(parsed._replace(path=f"/{name}"))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def nodes(tmp_path: Path, database_url: str) -> Iterator[tuple[ServerInfo, ServerInfo]]:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with ExitStack() as stack:
        started = [
            stack.enter_context(
                passage_process(tmp_path / name, "--allow-loopback-peers", "--database-url", url)
            )[0]
            for name, url in (("a", database_url), ("b", database_url))
        ]
        yield started[0], started[1]


def connection_string(info: ServerInfo, database_url: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "passage", "connection-string", "--data-dir", str(info.data_dir),
         "--database-url", database_url, "--listen-ip", info.host,
         "--api-port", str(info.api_port)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip()


def call(info: ServerInfo, key: str, method: str, path: str, body: object = None) -> object:
    """A signed API call, as the ACS SDKs make it (``passage``'s own remote client); the JSON."""
    connection = ConnectionString(f"https://{info.host}:{info.api_port}/", key)
    target = RemoteTarget(connection, ssl.create_default_context(cafile=str(info.ca_cert)))
    route, _, query = path.partition("?")
    return call_remote(
        target,
        method,
        route,
        dict(urllib.parse.parse_qsl(query)) or None,
        body if isinstance(body, dict) else None,
    )


async def allocate(info: ServerInfo, username: str, password: str) -> int | None:
    """The error code of an Allocate on ``info``'s TURN with these credentials (None: success)."""
    client = await TurnClient.connect("udp", (info.host, info.turn_port), username, password)
    try:
        return error_code(await client.allocate())
    finally:
        await client.close()


async def test_nodes_share_keys_identities_revocations_and_usage(
    nodes: tuple[ServerInfo, ServerInfo], database_url: str
) -> None:
    a, b = nodes
    key = connection_string(a, database_url).split("accesskey=")[1]
    assert connection_string(b, database_url).split("accesskey=")[1] == key

    identities = "/identities?api-version=2023-10-01"
    user = call(a, key, "POST", identities)
    assert isinstance(user, dict)
    identity = user["identity"]["id"]
    relay_path = "/networkTraversal/:issueRelayConfiguration?api-version=2022-03-01-preview"
    config = call(a, key, "POST", relay_path, {"id": identity, "routeType": "any"})
    assert isinstance(config, dict)
    [ice_server] = config["iceServers"]
    username, password = ice_server["username"], ice_server["credential"]

    # Minted by A, relayed by B: 12 packets of 50 bytes to a local peer.
    client = await TurnClient.connect("udp", (b.host, b.turn_port), username, password)
    peer = await UdpPeer.bind()
    try:
        assert error_code(await client.allocate()) is None
        assert error_code(await client.channel_bind(0x4000, peer.address)) is None
        for _ in range(12):
            client.send_channel_data(0x4000, b"n" * 50)
        for _ in range(12):
            await peer.receive()
        assert error_code(await client.refresh(0)) is None
    finally:
        await client.close(release=False)
        await peer.close()

    # B's usage, reported by A's API.
    query = urllib.parse.urlencode({"identity": identity, "granularity": "day"})
    deadline = time.monotonic() + 10
    while True:
        usage = call(a, key, "GET", f"/usage?{query}")
        assert isinstance(usage, dict)
        if usage["value"] and usage["value"][0]["bytesToPeer"] == 600:
            break
        assert time.monotonic() < deadline, usage
        await asyncio.sleep(0.2)
    assert usage["value"][0]["identity"] == identity
    assert usage["value"][0]["packetsToPeer"] == 12

    # Revoked on A: refused on B after its next store poll (every second).
    call(a, key, "POST", f"/identities/{urllib.parse.quote(identity)}/:revokeAccessTokens"
         "?api-version=2023-10-01")  # fmt: skip
    assert await allocate(a, username, password) == 401  # at once on the node that revoked
    deadline = time.monotonic() + 5
    while (code := await allocate(b, username, password)) != 401:
        assert code is None
        assert time.monotonic() < deadline, "node B never saw the revocation"
        await asyncio.sleep(0.2)
