"""When Redis goes away (issue 14's table): live allocations keep relaying, new Allocates
work, a sender meets a listener on its own node, a sender whose listener is on another
node is told so at once; when Redis is back, every node puts its listeners back (even if
Redis lost them) and cross-node pairing works again within 5 s."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as redis
from cluster_nodes import Node, cluster
from cluster_services import REDIS_URL
from test_cluster_hybrid import base, shared_connections

from interop.test_interop_hyco import driver
from passage.stun import MessageClass
from passage_server import PASSWORD, USER
from turn_client import TurnClient, UdpPeer

pytestmark = [pytest.mark.postgres, pytest.mark.interop]


async def send_once(node: Node, size: int = 1024) -> tuple[bool, float, object]:
    """One hyco-ws sender on ``node``: whether it got its echo, how long it took, its
    error's status."""
    started = time.monotonic()
    async with driver(
        "ws-sender.mjs", base(node), "myhc", HC_BINARY_LENGTH=str(size), HC_TIMEOUT_MS="10000"
    ) as sender:
        event = await sender.next_event_of("result", "error")
    return event["event"] == "result", time.monotonic() - started, event.get("status")


async def test_with_redis_down_a_node_serves_alone_and_rejoins_when_it_is_back(
    tmp_path: Path, redis_prefix: str, pg_schema: str
) -> None:
    async with cluster(
        tmp_path, "ab", prefix=redis_prefix, schema=pg_schema, loopback_peers=True
    ) as (a, b):
        await shared_connections([a, b], "myhc")
        peer = await UdpPeer.bind()
        live = await TurnClient.connect("udp", a.server.address("udp"), USER, PASSWORD)
        async with driver("ws-listener.mjs", base(b), "myhc") as listener:
            await listener.next_event("ready")
            try:
                assert (await live.allocate()).message_class is MessageClass.SUCCESS
                await live.create_permission(peer.address)
                for node in (a, b):
                    node.redis_link.cut()
                    await node.link.beat()
                # Redis lost what it held meanwhile (a restart without persistence).
                store = redis.Redis.from_url(REDIS_URL)
                await store.delete(*[key async for key in store.scan_iter(f"{redis_prefix}:*")])
                await store.aclose()

                live.send_indication(peer.address, b"still relaying")
                assert (await peer.receive())[0] == b"still relaying"
                fresh = await TurnClient.connect("udp", a.server.address("udp"), USER, PASSWORD)
                assert (await fresh.allocate()).message_class is MessageClass.SUCCESS
                await fresh.close()

                assert (await send_once(b))[0]  # same node: paired as ever
                reached, took, status = await send_once(a)  # cross-node: fails, fast
                assert (reached, status) == (False, 404)
                assert took < 3.0

                for node in (a, b):
                    node.redis_link.restore()  # and their own heartbeats find it
                deadline = time.monotonic() + 5.0
                while not (await send_once(a))[0]:
                    assert time.monotonic() < deadline, "listeners not back within 5 s"
                    await asyncio.sleep(0.2)
            finally:
                await live.close()
                await peer.close()
