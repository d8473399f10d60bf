"""PostgreSQL cut under traffic (issue 14's table): live allocations keep relaying, a new
Allocate still works, usage waits in memory, and once the store is back the ledger holds
exactly the bytes relayed: every batch written once, none lost, none twice."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp
import pytest
from cluster_nodes import cluster

from api_harness import Api, identity_path
from passage.stun import MessageClass
from passage_server import PASSWORD, USER
from turn_client import TurnClient, UdpPeer, error_code

pytestmark = pytest.mark.postgres

CUT = float(os.environ.get("PG_CUT_SECONDS", "5"))
"""Seconds the node's link to PostgreSQL stays cut (the usage flush fails five times);
``PG_CUT_SECONDS=30`` runs the longer outage docs/cluster.md reports."""


async def test_postgresql_cut_under_traffic_and_the_ledger_matches_the_bytes_relayed(
    tmp_path: Path, redis_prefix: str, pg_schema: str
) -> None:
    async with cluster(
        tmp_path, "a", prefix=redis_prefix, schema=pg_schema, loopback_peers=True
    ) as (a,):
        edge = a.server.running.edge
        peer = await UdpPeer.bind()
        client = await TurnClient.connect("udp", a.server.address("udp"), USER, PASSWORD)
        relayed = 0

        async def traffic(seconds: float) -> None:
            nonlocal relayed
            until = time.monotonic() + seconds
            size = 700
            while time.monotonic() < until:
                client.send_indication(peer.address, bytes(size))
                data, _ = await peer.receive()
                assert len(data) == size
                relayed += size
                await asyncio.sleep(0.01)

        try:
            assert (await client.allocate()).message_class is MessageClass.SUCCESS
            await client.create_permission(peer.address)
            await traffic(1.5)
            a.postgres_link.cut()
            await traffic(CUT)
            assert edge.flush_failures > 0 and edge.unsaved_records > 0  # kept, not lost
            fresh = await TurnClient.connect("udp", a.server.address("udp"), USER, PASSWORD)
            assert (await fresh.allocate()).message_class is MessageClass.SUCCESS
            await fresh.close()
            a.postgres_link.restore()
            await traffic(1.5)
            deadline = time.monotonic() + 10.0
            while edge.unsaved_records:
                assert time.monotonic() < deadline, "usage still unwritten 10 s after"
                await asyncio.sleep(0.1)
            await edge.flush_usage()
        finally:
            await client.close(release=False)
            await peer.close()
        allocations = await a.server.running.api.ledger.allocations()
        mine = [row for row in allocations if row.bytes_to_peer]
        assert [row.bytes_to_peer for row in mine] == [relayed]


async def test_the_api_answers_503_with_retry_after_while_postgresql_is_cut(
    tmp_path: Path, redis_prefix: str, pg_schema: str
) -> None:
    async with (
        cluster(tmp_path, "a", prefix=redis_prefix, schema=pg_schema) as (a,),
        aiohttp.ClientSession() as session,
    ):
        api = Api(a.server.running, a.server.datadir, a.server.config, session=session)
        a.postgres_link.cut()
        answer = await api.request("POST", identity_path())
        assert answer.status == 503, answer
        assert answer.headers["Retry-After"] == "5"
        assert answer.body["error"]["code"] == "StoreUnavailable"
        a.postgres_link.restore()
        answer = await api.request("POST", identity_path())
        assert answer.status == 201, answer


@pytest.mark.parametrize(("workers", "silent"), [(1, False), (2, False), (1, True)])
async def test_past_the_staleness_bound_identities_get_no_new_allocation_others_go_on(
    tmp_path: Path, redis_prefix: str, pg_schema: str, workers: int, silent: bool
) -> None:
    """With one process, and with TURN in two worker processes (the parent tells them when
    the store turns stale and when it is back); and with a silent cut, where every read
    of the store hangs rather than fails."""
    async with cluster(
        tmp_path,
        "a",
        prefix=redis_prefix,
        schema=pg_schema,
        store_staleness=1.5,
        workers=workers,
    ) as (a,):
        service = a.server.running.api.service
        identity = await service.create_identity()
        configuration = await service.relay_configuration(
            service.state.keys.primary, identity, None, 3600, None
        )
        server = configuration.ice_servers[0]
        username, password = str(server["username"]), str(server["credential"])
        address = a.server.address("udp")
        live = await TurnClient.connect("udp", address, username, password)
        try:
            assert (await live.allocate()).message_class is MessageClass.SUCCESS
            a.postgres_link.cut(silent=silent)
            started = time.monotonic()
            while True:  # allowed on the revocations last read, for a bounded time
                fresh = await TurnClient.connect("udp", address, username, password)
                answer = await fresh.allocate()
                await fresh.close(release=answer.message_class is MessageClass.SUCCESS)
                if answer.message_class is MessageClass.ERROR:
                    assert error_code(answer) == 403
                    break
                assert time.monotonic() - started < 6.0, "still allowed 6 s into the outage"
                await asyncio.sleep(0.2)
            assert time.monotonic() - started >= 1.0  # not refused before the bound
            assert (await live.refresh(600)).message_class is MessageClass.SUCCESS
            static = await TurnClient.connect("udp", address, USER, PASSWORD)
            assert (await static.allocate()).message_class is MessageClass.SUCCESS
            await static.close()
            a.postgres_link.restore()
            started = time.monotonic()
            while True:
                fresh = await TurnClient.connect("udp", address, username, password)
                answer = await fresh.allocate()
                await fresh.close(release=answer.message_class is MessageClass.SUCCESS)
                if answer.message_class is MessageClass.SUCCESS:
                    break
                assert time.monotonic() - started < 6.0, "still refused 6 s after the store"
                await asyncio.sleep(0.2)
        finally:
            await live.close()
