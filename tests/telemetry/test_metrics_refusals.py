"""Two counters driven by their real condition and read from a scrape of ``/metrics``
(``prometheus_client``'s text parser): connections the front door refuses at its caps
(``passage_http_connections_refused_total``), and usage ledger writes that fail while
SQLite is locked by another writer (``passage_store_flush_failures_total``)."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path

import aiohttp
import pytest

import passage.store.database
from metrics_scrape import Scrape, scrape, scrape_until
from passage_server import Server, free_port, in_process
from turn_client import TurnClient, UdpPeer

pytestmark = pytest.mark.timeout(90)


async def scrape_of(server: Server) -> Scrape:
    operators = server.running.operators
    assert operators is not None
    host, port = operators.addresses[0]
    async with aiohttp.ClientSession() as session:
        return await scrape(session, f"http://{host}:{port}")


async def open_from(source: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to the plain-HTTP port from ``source`` (a loopback address)."""
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def refused_answer(source: str, port: int) -> bytes:
    reader, writer = await open_from(source, port)
    try:
        return await asyncio.wait_for(reader.read(), 10)  # answered, then closed
    finally:
        writer.close()
        await writer.wait_closed()


async def test_connections_over_the_caps_are_counted_by_reason(tmp_path: Path) -> None:
    environ = {"PASSAGE_HTTP_MAX_CONNECTIONS": "3", "PASSAGE_HTTP_MAX_CONNECTIONS_PER_IP": "2"}
    async with in_process(
        tmp_path, environ=environ, http_port=free_port((socket.SOCK_STREAM,)),
        metrics_port=free_port((socket.SOCK_STREAM,)),
    ) as server:  # fmt: skip
        port = server.running.http[0][1]
        before = await scrape_of(server)
        held = [await open_from("127.0.0.1", port), await open_from("127.0.0.1", port)]
        answer = await refused_answer("127.0.0.1", port)  # a third from one address
        assert answer.startswith(b"HTTP/1.1 503"), answer
        held.append(await open_from("127.0.0.2", port))  # the third in all
        answer = await refused_answer("127.0.0.3", port)  # a fourth in all
        assert answer.startswith(b"HTTP/1.1 503") and b"TooManyConnections" in answer
        after = await scrape_of(server)
        for _, writer in held:
            writer.close()
            await writer.wait_closed()
    name = "passage_http_connections_refused_total"
    for reason in ("too_many_connections_from_source", "too_many_connections"):
        assert before.value(name, reason=reason) == 0
        assert after.value(name, reason=reason) == 1, reason
    assert after.types["passage_http_connections_refused"] == "counter"


async def test_ledger_writes_failing_on_a_locked_store_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(passage.store.database, "SQLITE_BUSY_TIMEOUT_MS", 50)  # fail fast
    async with in_process(
        tmp_path, loopback_peers=True, usage_flush_interval=3600.0,
        metrics_port=free_port((socket.SOCK_STREAM,)),
    ) as server:  # fmt: skip
        edge = server.running.edge
        assert edge is not None
        peer = await UdpPeer.bind()
        client = await TurnClient.connect("udp", server.address("udp"))
        await client.allocate()
        await client.create_permission(peer.address)
        name = "passage_store_flush_failures_total"

        async def relay_and_flush() -> Scrape:
            client.send_indication(peer.address, b"x" * 100)
            await peer.receive()
            await edge.flush_usage()
            return await scrape_of(server)

        assert (await relay_and_flush()).value(name) == 0
        holder = sqlite3.connect(server.datadir.path / "passage.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another writer holds SQLite's lock
        try:
            first, second = await relay_and_flush(), await relay_and_flush()
        finally:
            holder.rollback()
            holder.close()
        assert (first.value(name), second.value(name)) == (1, 2)
        assert second.value("passage_store_unsaved_records") == 2
        back = await relay_and_flush()
        assert back.value(name) == 2 and back.value("passage_store_unsaved_records") == 0
        assert back.types["passage_store_flush_failures"] == "counter"
        await client.close()
        await peer.close()


async def test_with_workers_the_parent_s_failing_ledger_writes_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--workers 2``: the workers hand their records to the parent, and only the
    parent writes the store; its failures are the ones ``/metrics`` counts."""
    monkeypatch.setattr(passage.store.database, "SQLITE_BUSY_TIMEOUT_MS", 50)  # fail fast
    async with (
        in_process(
            tmp_path, loopback_peers=True, workers=2,
            metrics_port=free_port((socket.SOCK_STREAM,)),
        ) as server,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
    ):  # fmt: skip
        operators = server.running.operators
        assert operators is not None
        base = "http://{}:{}".format(*operators.addresses[0])
        peer = await UdpPeer.bind()
        client = await TurnClient.connect("udp", server.address("udp"))
        await client.allocate()
        await client.create_permission(peer.address)
        name = "passage_store_flush_failures_total"
        stop = asyncio.Event()
        traffic = asyncio.create_task(relay_until(stop, client, peer))
        try:
            await scrape_until(
                session, base, lambda s: s.value("passage_store_flush_duration_seconds_count") > 0
            )
            assert (await scrape(session, base)).value(name) == 0
            holder = sqlite3.connect(server.datadir.path / "passage.db", isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")  # another writer holds SQLite's lock
            try:
                down = await scrape_until(
                    session, base,
                    lambda s: s.value(name) >= 2 and s.value("passage_store_unsaved_records") > 0,
                )  # fmt: skip
            finally:
                holder.rollback()
                holder.close()
            back = await scrape_until(
                session, base, lambda s: s.value("passage_store_unsaved_records") == 0
            )
            assert back.value(name) >= down.value(name) >= 2
        finally:
            stop.set()  # not cancel(): 3.11's wait_for can swallow one (peer.receive)
            await asyncio.gather(traffic, return_exceptions=True)
            await client.close()
            await peer.close()


async def relay_until(stop: asyncio.Event, client: TurnClient, peer: UdpPeer) -> None:
    """A packet every 50 ms until ``stop``, so that every flush has a record to write."""
    while not stop.is_set():
        client.send_indication(peer.address, b"x" * 100)
        await peer.receive()
        await asyncio.sleep(0.05)
