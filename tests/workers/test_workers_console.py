"""What the parent shows and does for its workers: the console's live view (allocations,
counters, throughput, ending one) and a reload, against the whole server with two worker
processes started from this test (``passage.app.start(..., workers=2)``)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import pytest

from api_harness import Api, api_server
from passage.stun import MessageClass
from turn_client import TurnClient, UdpPeer, error_code
from waiting import until

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]


def holder(api: Api, allocation_id: str) -> int | None:
    """The worker whose last snapshot lists ``allocation_id``."""
    assert api.running.workers is not None
    for slot in api.running.workers.slots:
        if slot.snapshot and any(a.id == allocation_id for a in slot.snapshot.allocations):
            return slot.index
    return None


async def test_the_live_view_lists_every_worker_s_allocations_and_ends_one(tmp_path: Path) -> None:
    async with api_server(tmp_path, loopback_peers=True, workers=2) as api:
        peer = await UdpPeer.bind()
        clients = [await api.client("udp") for _ in range(12)]
        try:
            for client in clients:
                assert (await client.allocate()).message_class is MessageClass.SUCCESS
                await client.create_permission(peer.address)
                client.send_indication(peer.address, b"x" * 100)
                await peer.receive()

            async def listed() -> list[dict[str, object]]:
                answer = await api.request("GET", "/live/allocations")
                assert answer.status == 200, answer
                value: list[dict[str, object]] = answer.body["value"]
                return value

            for _ in range(200):  # snapshots come every second: wait for all twelve
                allocations = await listed()
                if len(allocations) == 12:
                    break
                await asyncio.sleep(0.05)
            assert {holder(api, str(a["id"])) for a in allocations} == {1, 2}
            assert all(a["bytesToPeer"] == 100 for a in allocations)
            counters = (await api.request("GET", "/live/turn")).body
            assert counters["allocationsByTransport"] == {"udp": 12}

            mine = next(a for a in allocations if str(a["clientAddress"]).endswith(
                f":{clients[0].local[1]}"))  # fmt: skip
            ended = await api.request("DELETE", f"/live/allocations/{mine['id']}")
            assert ended.status == 204  # asked of the worker that holds it, which ends it next
            for _ in range(200):
                if all(a["id"] != mine["id"] for a in await listed()):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the ended allocation is still listed")
            assert error_code(await clients[0].refresh(600)) == 437  # RFC 8656 §7.3
            missing = await api.request("DELETE", "/live/allocations/nosuchallocation")
            assert missing.status == 404
        finally:
            for client in clients:
                await client.close(release=False)
            await peer.close()


async def test_a_reload_reaches_every_worker(tmp_path: Path) -> None:
    async with api_server(tmp_path, workers=2) as api:
        host, port = api.address("udp")
        refused = await TurnClient.connect("udp", (host, port), "carol", "new")
        assert error_code(await refused.allocate()) == 401
        await refused.close(release=False)
        config = dataclasses.replace(
            api.running.config, users=(*api.config.users, ("carol", "new"))
        )
        await api.running.reload(config)
        carols = [await TurnClient.connect("udp", (host, port), "carol", "new") for _ in range(12)]
        try:
            for carol in carols:
                answer = await carol.allocate()
                assert answer.message_class is MessageClass.SUCCESS, error_code(answer)
            assert api.running.workers is not None
            await until(lambda: sum(
                len(s.snapshot.allocations) for s in api.running.workers.slots if s.snapshot
            ) == 12)  # fmt: skip
            ids = [
                a.id
                for s in api.running.workers.slots
                if s.snapshot
                for a in s.snapshot.allocations
            ]
            assert {holder(api, i) for i in ids} == {1, 2}
        finally:
            for carol in carols:
                await carol.close(release=False)


async def test_the_stats_line_is_one_for_every_worker_together(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with api_server(tmp_path, workers=2) as api:
        pool = api.running.workers
        assert pool is not None
        clients = [await api.client("udp") for _ in range(12)]
        try:
            for client in clients:
                assert (await client.allocate()).message_class is MessageClass.SUCCESS
            await until(
                lambda: sum(len(s.snapshot.allocations) for s in pool.slots if s.snapshot) == 12
            )
            assert all(slot.snapshot and slot.snapshot.allocations for slot in pool.slots)
            with caplog.at_level(logging.INFO, logger="passage.turn"):
                pool.log_stats()
                pool.log_stats()  # nothing changed: no second line
            lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stats:")]
            assert lines == [  # a worker's own line would count its share only
                "stats: 12 allocations live, 12 started, 0 ended; "
                "errors sent: 401=12; dropped: none"
            ]
        finally:
            for client in clients:
                await client.close(release=False)
