"""The operators' listener on its own: ``/healthz``, ``/readyz``, wrong requests, its caps.

A real :class:`~passage.telemetry.OperatorsListener` on a loopback port, with
a :class:`~passage.readiness.Readiness` and a store check the test controls;
and the whole server, whose ``/readyz`` follows its start, a store that stops
answering, and its stop.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from metrics_scrape import scrape
from passage import __version__
from passage.http_limits import HttpLimits
from passage.readiness import Readiness
from passage.telemetry import OPERATOR_LIMITS, OperatorsListener
from passage_server import free_port, in_process


class Store:
    """A store check that answers, fails or hangs as the test says."""

    def __init__(self) -> None:
        self.failure: Exception | None = None
        self.hang = False

    async def __call__(self) -> None:
        if self.hang:
            await asyncio.Event().wait()
        if self.failure is not None:
            raise self.failure


async def started(
    readiness: Readiness, store: Store, limits: HttpLimits = OPERATOR_LIMITS
) -> tuple[OperatorsListener, str]:
    listener = OperatorsListener(
        CollectorRegistry(), readiness, store, limits=limits, store_timeout=0.2
    )
    host, port = await listener.listen("127.0.0.1", 0)
    return listener, f"http://{host}:{port}"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, object]]:
    async with session.get(url) as response:
        return response.status, await response.json()


async def test_readyz_names_every_problem_and_healthz_answers_anyway(
    session: aiohttp.ClientSession,
) -> None:
    readiness, store = Readiness(), Store()
    listener, base = await started(readiness, store)
    try:
        status, body = await get(session, base + "/readyz")
        assert status == 503
        assert body["problems"] == {"listeners": "not every listener is bound yet"}
        readiness.listening = True
        assert await get(session, base + "/readyz") == (200, {"status": "ready", "problems": {}})

        store.failure = ConnectionRefusedError(111, "Connection refused")
        status, body = await get(session, base + "/readyz")
        assert status == 503
        assert body == {
            "status": "not ready",
            "problems": {"store": "the store is unreachable (ConnectionRefusedError)"},
        }
        store.failure, store.hang = None, True
        status, body = await get(session, base + "/readyz")
        assert (status, body["problems"]) == (
            503,
            {"store": "the store did not answer within 0.2 s"},
        )
        store.hang = False

        readiness.start_draining("SIGTERM")
        status, body = await get(session, base + "/readyz")
        assert (status, body["problems"]) == (503, {"draining": "draining (SIGTERM)"})
        status, body = await get(session, base + "/healthz")
        assert status == 200 and body["status"] == "ok"
    finally:
        await listener.stop()


async def test_wrong_methods_and_paths_get_json_errors(session: aiohttp.ClientSession) -> None:
    listener, base = await started(Readiness(listening=True), Store())
    try:
        async with session.post(base + "/metrics", data=b"x") as response:
            assert response.status == 405
            assert response.headers["Allow"] == "GET, HEAD"
            assert (await response.json())["error"]["code"] == "MethodNotAllowed"
        async with session.get(base + "/metrics/../admin") as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "NotFound"
        async with session.head(base + "/metrics") as response:
            assert response.status == 200
    finally:
        await listener.stop()


async def test_connections_past_the_cap_are_refused() -> None:
    """The cap holds: with room for two connections, a third is answered 503 and closed,
    whatever it sends, while the two stay served."""
    limits = HttpLimits(max_connections=2, max_connections_per_ip=2)
    listener, base = await started(Readiness(listening=True), Store(), limits)
    port = int(base.rsplit(":", 1)[1])
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    try:
        for reader, writer in held:  # each is served
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await reader.read()
        assert answer.startswith(b"HTTP/1.1 503")
        assert b"TooManyConnections" in answer
        writer.close()
    finally:
        for _, writer in held:
            writer.close()
        await listener.stop()


def test_the_operators_limits_are_tighter_than_the_api_ports() -> None:
    api = HttpLimits()
    assert OPERATOR_LIMITS.max_connections < api.max_connections
    assert OPERATOR_LIMITS.max_connections_per_ip < api.max_connections_per_ip
    assert OPERATOR_LIMITS.request_head_timeout <= api.request_head_timeout


async def test_a_whole_server_is_ready_once_started_and_not_while_it_stops(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    port = free_port((socket.SOCK_STREAM,))
    base = f"http://127.0.0.1:{port}"
    async with in_process(tmp_path, metrics_port=port) as server:
        assert await get(session, base + "/readyz") == (200, {"status": "ready", "problems": {}})
        found = await scrape(session, base)
        assert found.value("passage_build_info", version=__version__) == 1
        assert (found.value("passage_ready"), found.value("passage_draining")) == (1, 0)
        # What /readyz says while the server stops (its listener goes last).
        server.running.readiness.start_draining("shutting down")
        status, body = await get(session, base + "/readyz")
        assert (status, body["problems"]) == (503, {"draining": "draining (shutting down)"})
        found = await scrape(session, base)
        assert (found.value("passage_ready"), found.value("passage_draining")) == (0, 1)
    with pytest.raises(aiohttp.ClientConnectionError):  # stopped with the server
        await get(session, base + "/healthz")
