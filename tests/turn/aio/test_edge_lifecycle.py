"""``passage serve`` as a process: metering to the ledger, SIGINT, credentials, logs.

Each test runs the real command (``passage_server.passage_process``), relays
known traffic through it, and reads what it left behind: the SQLite usage
ledger in the data directory and the log. Credential expiry runs the server
in-process on a clock the test moves, so no test waits for time to pass.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path

import pytest

from passage.store.database import open_database, sqlite_url
from passage.store.ledger import AllocationUsage, UsageLedger
from passage.stun import MessageClass
from passage_server import Clock, ServerInfo, in_process, passage_process
from turn_client import TurnClient, UdpPeer, error_code

TO_PEER = (12, 100)
"""Packets and bytes per packet the client sends through the relay."""
FROM_PEER = (7, 61)
"""Packets and bytes per packet the peer sends back."""


async def ledger_rows(info: ServerInfo) -> list[AllocationUsage]:
    database = await open_database(sqlite_url(info.data_dir))
    try:
        return await UsageLedger(database).allocations()
    finally:
        await database.close()


async def relay_known_traffic(info: ServerInfo) -> tuple[TurnClient, UdpPeer]:
    """Allocate, bind a channel to a local peer, relay TO_PEER and FROM_PEER, all received."""
    client = await TurnClient.connect("udp", (info.host, info.turn_port))
    peer = await UdpPeer.bind()
    assert (await client.allocate()).message_class is MessageClass.SUCCESS
    assert error_code(await client.channel_bind(0x4000, peer.address)) is None
    count, size = TO_PEER
    for index in range(count):
        client.send_channel_data(0x4000, bytes([index]) * size)
    for index in range(count):
        assert (await peer.receive())[0] == bytes([index]) * size
    count, size = FROM_PEER
    assert client.relayed is not None
    for index in range(count):
        peer.sendto(bytes([index]) * size, client.relayed)
    for index in range(count):
        assert (await client.receive()).data == bytes([index]) * size
    return client, peer


def assert_exact_counts(row: AllocationUsage) -> None:
    assert (row.packets_to_peer, row.bytes_to_peer) == (TO_PEER[0], TO_PEER[0] * TO_PEER[1])
    assert (row.packets_from_peer, row.bytes_from_peer) == (
        FROM_PEER[0],
        FROM_PEER[0] * FROM_PEER[1],
    )


async def test_ledger_has_exact_counts_after_refresh_zero(tmp_path: Path) -> None:
    with passage_process(tmp_path, "--allow-loopback-peers") as (info, _):
        client, peer = await relay_known_traffic(info)
        assert error_code(await client.refresh(0)) is None
        await client.close()
        await peer.close()
    [row] = await ledger_rows(info)
    assert_exact_counts(row)
    assert (row.username, row.subject, row.transport) == ("alice", "alice", "udp")
    assert row.client_address == f"{client.local[0]}:{client.local[1]}"
    assert row.ended_at is not None and row.ended_at >= row.started_at
    assert row.end_reason == "refresh_zero"


async def test_sigint_ends_open_allocations_and_flushes_them(tmp_path: Path) -> None:
    with passage_process(tmp_path, "--allow-loopback-peers") as (info, _):
        client, peer = await relay_known_traffic(info)
        tcp = await TurnClient.connect("tcp", (info.host, info.turn_port))
        assert (await tcp.allocate()).message_class is MessageClass.SUCCESS
    # The harness sent SIGINT (stop now, no drain), saw exit 0 with both allocations open.
    await client.close(release=False)
    await tcp.close(release=False)
    await peer.close()
    rows = await ledger_rows(info)
    assert sorted(row.transport for row in rows) == ["tcp", "udp"]
    [udp_row] = [row for row in rows if row.transport == "udp"]
    assert_exact_counts(udp_row)
    assert all(row.end_reason == "shutdown" and row.ended_at is not None for row in rows)


async def test_ledger_shows_live_counts_while_the_allocation_lives(tmp_path: Path) -> None:
    with passage_process(tmp_path, "--allow-loopback-peers") as (info, _):
        client, peer = await relay_known_traffic(info)
        deadline = time.monotonic() + 10.0  # flushes every second; be generous
        rows = await ledger_rows(info)
        while not (rows and rows[0].packets_from_peer == FROM_PEER[0]):
            assert time.monotonic() < deadline, rows
            await asyncio.sleep(0.2)
            rows = await ledger_rows(info)
        [row] = rows
        assert_exact_counts(row)
        assert row.ended_at is None and row.end_reason is None
        await client.close()
        await peer.close()
    [row] = await ledger_rows(info)
    assert_exact_counts(row)  # the live flushes were deltas, not counted twice
    assert row.end_reason == "refresh_zero"


async def turn_credentials(data_dir: Path, *args: str) -> tuple[str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "passage", "turn-credentials", "--data-dir", str(data_dir),
        *args, "--json",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    assert process.returncode == 0
    printed = json.loads(out)
    return printed["username"], printed["password"]


async def test_turn_credentials_work_until_they_expire(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``passage turn-credentials`` mints them; the server's clock, moved past the expiry
    instead of slept through, turns them away."""
    caplog.set_level(logging.INFO, logger="passage.turn")
    clock = Clock()
    async with in_process(tmp_path, clock=clock) as server:
        address = server.address("udp")
        data_dir = server.datadir.path
        username, password = await turn_credentials(data_dir, "--user", "carol", "--ttl", "600")
        assert username.endswith(":carol")
        client = await TurnClient.connect("udp", address, username, password)
        try:
            assert (await client.allocate()).message_class is MessageClass.SUCCESS
        finally:
            await client.close()

        short_user, short_password = await turn_credentials(
            data_dir, "--user", "carol", "--ttl", "1"
        )
        clock.advance(2.1)
        expired = await TurnClient.connect("udp", address, short_user, short_password)
        try:
            assert error_code(await expired.allocate()) == 401
        finally:
            await expired.close()
    assert f"user={username} subject=carol" in caplog.text


async def test_log_has_one_line_per_allocation_start_and_end(tmp_path: Path) -> None:
    with passage_process(tmp_path, "--user", "bob:builder") as (info, log):
        server = (info.host, info.turn_port)
        ended = await TurnClient.connect("udp", server)
        kept = await TurnClient.connect("tcp", server, "bob", "builder")
        assert (await ended.allocate()).message_class is MessageClass.SUCCESS
        assert (await kept.allocate()).message_class is MessageClass.SUCCESS
        await ended.close()  # Refresh lifetime 0
    await kept.close(release=False)
    rows = {row.username: row for row in await ledger_rows(info)}
    lines = log.read_text().splitlines()
    for user, reason in (("alice", "refresh_zero"), ("bob", "shutdown")):
        allocation_id = rows[user].allocation_id
        mentions = [line for line in lines if allocation_id[:12] in line]
        assert len(mentions) == 2, mentions
        started, ended_line = mentions
        assert " started: " in started and f"user={user} " in started
        assert f" ended ({reason}): " in ended_line and f"user={user} " in ended_line
        assert rows[user].end_reason == reason


async def test_closing_the_tcp_connection_ends_its_allocation(tmp_path: Path) -> None:
    """RFC 8656 §3.1: a TCP/TLS allocation lives as long as its connection."""
    with passage_process(tmp_path) as (info, log):
        client = await TurnClient.connect("tcp", (info.host, info.turn_port))
        assert (await client.allocate()).message_class is MessageClass.SUCCESS
        await client.close(release=False)
        deadline = time.monotonic() + 10.0
        rows = await ledger_rows(info)
        while not (rows and rows[0].ended_at is not None):
            assert time.monotonic() < deadline, rows
            await asyncio.sleep(0.2)
            rows = await ledger_rows(info)
        [row] = rows
        assert (row.transport, row.end_reason) == ("tcp", "client_closed")
    assert log.read_text().count("ended (client_closed)") == 1
