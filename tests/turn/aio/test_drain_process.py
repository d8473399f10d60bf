"""SIGTERM drains a real ``passage serve``: new Allocates go elsewhere (300 or 403), live
ones carry on until they end, then the process exits 0 by itself; a second SIGTERM, or
the drain timeout, stops it at once. Usage is flushed in every case."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from pathlib import Path

import pytest

from passage.stun import AttributeType, MessageClass
from passage_server import ServerInfo, free_port, passage_process
from turn_client import TurnClient, UdpPeer, error_code
from waiting import until

pytestmark = pytest.mark.timeout(120)


def server_process(info: ServerInfo) -> int:
    return int(json.loads((info.data_dir / "server.json").read_text())["pid"])


def exited(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1].startswith("Z")
    except FileNotFoundError:
        return True


def readyz(info: ServerInfo, port: int) -> tuple[int, str]:
    """``/readyz`` on the operators' listener: its status and body."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{info.host}:{port}/readyz", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def drain_and_watch(info: ServerInfo, log: Path) -> int:
    pid = server_process(info)
    os.kill(pid, signal.SIGTERM)
    await until(lambda: "draining (SIGTERM)" in log.read_text())
    return pid


async def test_a_drain_redirects_new_allocates_and_waits_for_live_ones(tmp_path: Path) -> None:
    metrics = free_port((socket.SOCK_STREAM,))
    with passage_process(
        tmp_path, "--allow-loopback-peers", "--alternate-server", "127.0.0.1:3999",
        "--metrics-port", str(metrics),
    ) as (info, log):  # fmt: skip
        assert readyz(info, metrics)[0] == 200
        udp = await TurnClient.connect("udp", (info.host, info.turn_port))
        tcp = await TurnClient.connect("tcp", (info.host, info.turn_port))
        peer = await UdpPeer.bind()
        for client in (udp, tcp):
            assert (await client.allocate()).message_class is MessageClass.SUCCESS
        assert error_code(await udp.channel_bind(0x4000, peer.address)) is None
        pid = await drain_and_watch(info, log)
        status, body = readyz(info, metrics)
        assert status == 503 and "draining (SIGTERM)" in body

        late = await TurnClient.connect("udp", (info.host, info.turn_port))
        answer = await late.allocate()
        assert error_code(answer) == 300
        assert answer.get(AttributeType.ALTERNATE_SERVER, tuple) == ("127.0.0.1", 3999)
        await late.close()

        # Live allocations relay, refresh and bind as before.
        udp.send_channel_data(0x4000, b"during the drain")
        assert (await peer.receive())[0] == b"during the drain"
        assert udp.relayed is not None
        peer.sendto(b"back", udp.relayed)
        assert (await udp.receive()).data == b"back"
        assert (await tcp.refresh(600)).message_class is MessageClass.SUCCESS
        assert error_code(await tcp.create_permission(peer.address)) is None
        assert not exited(pid)

        # The last one ends: the server stops by itself.
        await udp.close()  # deletes its allocation (Refresh 0)
        assert not exited(pid)
        await tcp.close()
        await until(lambda: exited(pid))
        await peer.close()
    text = log.read_text()
    assert "drained: no allocation or bridge left" in text
    assert "stopped; usage ledger flushed" in text
    assert "new Allocates get 300 Try Alternate (127.0.0.1:3999)" in text


async def test_without_an_alternate_new_allocates_get_403(tmp_path: Path) -> None:
    with passage_process(tmp_path) as (info, log):
        live = await TurnClient.connect("tcp", (info.host, info.turn_port))
        assert (await live.allocate()).message_class is MessageClass.SUCCESS
        await drain_and_watch(info, log)
        late = await TurnClient.connect("udp", (info.host, info.turn_port))
        answer = await late.allocate()
        assert error_code(answer) == 403
        assert not answer.has(AttributeType.ALTERNATE_SERVER)
        await late.close()
        await live.close(release=False)
    assert "new Allocates get 403 (no --alternate-server)" in log.read_text()


@pytest.mark.parametrize("how", ["second-sigterm", "sigint", "timeout"])
async def test_a_drain_can_be_cut_short(tmp_path: Path, how: str) -> None:
    extra = ("--drain-timeout", "0.5") if how == "timeout" else ()
    with passage_process(tmp_path, *extra) as (info, log):
        live = await TurnClient.connect("udp", (info.host, info.turn_port))
        assert (await live.allocate()).message_class is MessageClass.SUCCESS
        pid = await drain_and_watch(info, log)
        if how != "timeout":
            await asyncio.sleep(0)  # the drain is under way; the allocation lives
            assert not exited(pid)
            signal_number = signal.SIGTERM if how == "second-sigterm" else signal.SIGINT
            os.kill(pid, signal_number)
        await until(lambda: exited(pid))
        await live.close(release=False)
    text = log.read_text()
    expected = {
        "second-sigterm": "second SIGTERM while draining: stopping now",
        "sigint": "SIGINT: stopping now",
        "timeout": "drain timeout: stopping with 1 allocations",
    }[how]
    assert expected in text
    assert "ended (shutdown)" in text and "stopped; usage ledger flushed" in text


async def test_a_reload_during_a_drain_moves_its_alternate_and_its_deadline(
    tmp_path: Path,
) -> None:
    config = tmp_path / "passage.toml"
    config.write_text('alternate_servers = ["127.0.0.1:3999"]\n')
    with passage_process(tmp_path, "--config", str(config)) as (info, log):
        live = await TurnClient.connect("udp", (info.host, info.turn_port))
        assert (await live.allocate()).message_class is MessageClass.SUCCESS
        pid = await drain_and_watch(info, log)
        config.write_text('alternate_servers = ["127.0.0.1:3998"]\ndrain_timeout = 600\n')
        os.kill(pid, signal.SIGHUP)
        await until(lambda: "changed: alternate_servers, drain_timeout" in log.read_text())
        late = await TurnClient.connect("udp", (info.host, info.turn_port))
        answer = await late.allocate()
        assert answer.get(AttributeType.ALTERNATE_SERVER, tuple) == ("127.0.0.1", 3998)
        await late.close()
        assert not exited(pid)
        config.write_text('alternate_servers = ["127.0.0.1:3998"]\ndrain_timeout = 0.1\n')
        os.kill(pid, signal.SIGHUP)  # a deadline already past: the drain ends now
        await until(lambda: exited(pid))
        await live.close(release=False)
    assert "drain timeout: stopping with 1 allocations" in log.read_text()


async def ledger_bytes_to_peer(info: ServerInfo) -> int:
    from passage.store.database import open_database, sqlite_url
    from passage.store.ledger import UsageLedger

    database = await open_database(sqlite_url(info.data_dir))
    try:
        return sum(row.bytes_to_peer for row in await UsageLedger(database).allocations())
    finally:
        await database.close()


@pytest.mark.parametrize("sig", ["SIGHUP", "SIGTERM"])
async def test_sighup_and_a_drain_flush_usage_at_once(tmp_path: Path, sig: str) -> None:
    """With an hour between usage writes, only the signal can have put the bytes in the
    ledger: SIGHUP (a reload) and SIGTERM (a drain starting) each write what was metered."""
    with passage_process(tmp_path, "--allow-loopback-peers", "--usage-flush-interval", "3600") as (
        info,
        log,
    ):
        client = await TurnClient.connect("udp", (info.host, info.turn_port))
        peer = await UdpPeer.bind()
        assert (await client.allocate()).message_class is MessageClass.SUCCESS
        assert error_code(await client.channel_bind(0x4000, peer.address)) is None
        for index in range(5):
            client.send_channel_data(0x4000, bytes([index]) * 100)
        for _ in range(5):
            await peer.receive()
        assert await ledger_bytes_to_peer(info) == 0  # nothing written yet
        pid = server_process(info)
        os.kill(pid, getattr(signal, sig))
        wrote = "reloaded the configuration" if sig == "SIGHUP" else "draining (SIGTERM)"
        await until(lambda: wrote in log.read_text())
        for _ in range(200):  # the flush follows the log line
            if await ledger_bytes_to_peer(info) == 500:
                break
            await asyncio.sleep(0.05)
        assert await ledger_bytes_to_peer(info) == 500
        assert not exited(pid)  # a reload, or a drain waiting for this allocation
        await client.close(release=False)
        await peer.close()
