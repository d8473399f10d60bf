"""Relays across the cluster: the relay configuration of any node hands out every live,
non-draining node, least loaded first; a user's allocation quota counts every node's;
``/usage`` of any node shows every node's allocations (one ledger, in PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from cluster_nodes import Node, cluster, cluster_node

from api_harness import Api
from passage.lifecycle import cluster_alternates
from passage.stun import AttributeType, MessageClass
from passage.turn.config import TurnConfig
from passage_server import PASSWORD, REALM, USER
from turn_client import TurnClient, error_code

pytestmark = pytest.mark.postgres

RELAY_PATH = "/networkTraversal/:issueRelayConfiguration?api-version=2022-03-01-preview"


@asynccontextmanager
async def apis(nodes: list[Node]) -> AsyncIterator[list[Api]]:
    async with aiohttp.ClientSession() as session:
        yield [
            Api(node.server.running, node.server.datadir, node.server.config, session=session)
            for node in nodes
        ]


async def hosts_handed_out(api: Api) -> list[str]:
    answer = await api.request("POST", RELAY_PATH, {"routeType": "any"})
    assert answer.status == 200, answer
    (server,) = answer.body["iceServers"]
    urls = [url for url in server["urls"] if url.startswith("turn:") and "udp" in url]
    return [url.split(":")[1] for url in urls]


async def beat(nodes: list[Node]) -> None:
    for node in nodes:
        await node.link.beat()


@asynccontextmanager
async def allocations(node: Node, count: int) -> AsyncIterator[list[TurnClient]]:
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(count):
            client = await TurnClient.connect("udp", node.server.address("udp"), USER, PASSWORD)
            stack.push_async_callback(client.close)
            assert (await client.allocate()).message_class is MessageClass.SUCCESS
            clients.append(client)
        yield clients


async def test_any_node_hands_out_every_live_node_least_loaded_first_and_no_draining_one(
    tmp_path: Path, redis_prefix: str, pg_schema: str
) -> None:
    async with (
        cluster(tmp_path, "abc", prefix=redis_prefix, schema=pg_schema) as nodes,
        apis(nodes) as (api_a, api_b, api_c),
        allocations(nodes[0], 2),
        allocations(nodes[1], 1),
    ):
        await beat(nodes)
        await beat(nodes)  # each has read the others' loads
        assert await hosts_handed_out(api_a) == ["127.0.0.4", "127.0.0.3", "127.0.0.2"]
        assert await hosts_handed_out(api_c) == ["127.0.0.4", "127.0.0.3", "127.0.0.2"]
        nodes[2].server.running.drain.begin(time.time(), 60.0)
        await beat(nodes)
        await beat(nodes)
        assert await hosts_handed_out(api_b) == ["127.0.0.3", "127.0.0.2"]
        nodes[1].redis_link.cut()  # without its registry, a node hands out itself
        await nodes[1].link.beat()
        assert await hosts_handed_out(api_b) == ["127.0.0.3"]


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_user_s_quota_counts_every_node(
    tmp_path: Path, redis_prefix: str, pg_schema: str, workers: int
) -> None:
    quota = TurnConfig(realm=REALM, max_allocations_per_user=2)
    async with (
        cluster(
            tmp_path, "abc", prefix=redis_prefix, schema=pg_schema, turn=quota, workers=workers
        ) as nodes,
        allocations(nodes[0], 1),
        allocations(nodes[1], 1),
    ):
        third = await TurnClient.connect("udp", nodes[2].server.address("udp"), USER, PASSWORD)
        try:
            started = time.monotonic()
            while True:
                answer = await third.allocate()
                if answer.message_class is MessageClass.ERROR:
                    assert error_code(answer) == 486
                    break
                await third.refresh(0)
                assert time.monotonic() - started < 2.0, "a third allocation still granted"
                await asyncio.sleep(0.05)
        finally:
            await third.close()


async def test_usage_on_any_node_shows_every_node_s_allocations(
    tmp_path: Path, redis_prefix: str, pg_schema: str
) -> None:
    async with (
        cluster(tmp_path, "abc", prefix=redis_prefix, schema=pg_schema) as nodes,
        apis(nodes) as node_apis,
    ):
        for node in nodes:
            async with allocations(node, 1):
                pass
            await node.server.running.edge.flush_usage()
        for api in node_apis:
            answer = await api.request("GET", f"/usage?identity={USER}")
            assert answer.status == 200, answer
            started = sum(row["allocationsStarted"] for row in answer.body["value"])
            assert started == 3


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_draining_node_answers_a_new_allocate_with_300_to_another_live_node(
    tmp_path: Path, redis_prefix: str, pg_schema: str, workers: int
) -> None:
    async with (
        cluster(tmp_path, "abc", prefix=redis_prefix, schema=pg_schema, workers=workers) as (
            a,
            b,
            c,
        ),
        allocations(a, 1) as (live,),
        allocations(b, 1),
    ):
        await beat([a, b, c])
        await beat([a, b, c])
        a.server.running.start_draining(await cluster_alternates(a.link, "local"))
        fresh = await TurnClient.connect("udp", a.server.address("udp"), USER, PASSWORD)
        try:
            answer = await fresh.allocate()
        finally:
            await fresh.close()
        assert error_code(answer) == 300
        # c is the least loaded live node other than a
        assert answer.get(AttributeType.ALTERNATE_SERVER, tuple) == c.server.address("udp")
        assert (await live.refresh(600)).message_class is MessageClass.SUCCESS  # live one goes on


async def test_a_full_node_sends_a_new_allocate_to_a_node_of_its_region_first(
    tmp_path: Path, redis_prefix: str, pg_schema: str
) -> None:
    """a and c serve region eu, b us: a, full, sends to c, busier than b but nearer."""
    two_each = TurnConfig(realm=REALM, max_allocations_total=2)
    regions = {"a": "eu", "b": "us", "c": "eu"}
    async with AsyncExitStack() as stack:
        a, b, c = [
            await stack.enter_async_context(
                cluster_node(
                    tmp_path, name, prefix=redis_prefix, schema=pg_schema, region=region,
                    turn=two_each,
                )
            )
            for name, region in regions.items()
        ]  # fmt: skip
        await stack.enter_async_context(allocations(c, 1))
        await stack.enter_async_context(allocations(a, 2))
        await beat([a, b, c])
        await beat([a, b, c])
        loads = {node.name: node.load for node in a.link.nodes.relays(a.link.clock())}
        assert loads == {"a": 2, "b": 0, "c": 1}
        fresh = await TurnClient.connect("udp", a.server.address("udp"), USER, PASSWORD)
        try:
            started = time.monotonic()
            while error_code(answer := await fresh.allocate()) != 300:
                assert error_code(answer) == 486  # until a has read who else is live
                assert time.monotonic() - started < 5.0, "still 486 after 5 s"
                await asyncio.sleep(0.1)
        finally:
            await fresh.close()
        assert answer.get(AttributeType.ALTERNATE_SERVER, tuple) == c.server.address("udp")


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_full_node_answers_a_new_allocate_with_300_to_another_live_node(
    tmp_path: Path, redis_prefix: str, pg_schema: str, workers: int
) -> None:
    """With one process, and with TURN in two worker processes (the parent finds the node
    full and tells the workers where to send a new Allocate)."""
    one_each = TurnConfig(realm=REALM, max_allocations_total=1)
    async with (
        cluster(
            tmp_path, "ab", prefix=redis_prefix, schema=pg_schema, turn=one_each, workers=workers
        ) as (a, b),
        allocations(a, 1),
    ):
        fresh = await TurnClient.connect("udp", a.server.address("udp"), USER, PASSWORD)
        try:
            started = time.monotonic()
            while error_code(answer := await fresh.allocate()) != 300:
                assert error_code(answer) == 486  # until a has read who else is live
                assert time.monotonic() - started < 5.0, "still 486 after 5 s"
                await asyncio.sleep(0.1)
        finally:
            await fresh.close()
        assert answer.get(AttributeType.ALTERNATE_SERVER, tuple) == b.server.address("udp")
