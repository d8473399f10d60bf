"""Hybrid Connections across nodes, Azure's redirect model: a sender on node A, its
listener on node B. A keeps the rendezvous, B passes the ``accept`` (or ``request``)
to its listener, the listener meets the sender on A, and A bridges: nothing opens on B.
The unmodified npm clients (hyco-ws, hyco-https) play listener and WebSocket sender.
And the 25-listener limit holds across the nodes, atomically."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as redis
from cluster_nodes import Node, cluster
from cluster_services import REDIS_URL

from interop.test_interop_hyco import KEY, Base, driver
from passage.hybrid.entities import ROOT_RULE
from passage.hybrid.sas import Rights, make_sas_token

pytestmark = pytest.mark.postgres


async def within(seconds: float, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not so after {seconds} s"
        await asyncio.sleep(0.01)


async def shared_connections(nodes: list[Node], *names: str) -> None:
    """Hybrid connections ``names`` and the root rule's key, made on the first node and
    held by every node."""
    admin = nodes[0].server.running.api.hybrid_admin
    assert admin is not None
    for name in names:
        await admin.create_connection(name)
    await admin.put_rule(None, ROOT_RULE, Rights.MANAGE, primary_key=KEY)
    for node in nodes:
        await within(2.0, lambda node=node: holds(node, names))  # type: ignore[misc]


def holds(node: Node, names: tuple[str, ...]) -> bool:
    """Whether ``node`` knows hybrid connections ``names`` and the root rule's key."""
    admin = node.server.running.api.hybrid_admin
    assert admin is not None
    namespace = admin.namespace()
    resolved = [namespace.resolve(name) for name in names]
    if any(found is None for found in resolved):
        return False
    rules = namespace.rules_for(resolved[0].connection)  # type: ignore[union-attr]
    root = rules.get(ROOT_RULE)
    return root is not None and root.primary_key == KEY


def base(node: Node) -> Base:
    return Base(node.ws_base, node.http_base, None)


class Watch:
    """Samples both nodes while a flow runs: which of them bridged or held a rendezvous."""

    def __init__(self, a: Node, b: Node) -> None:
        self.a_bridges = self.b_bridges = self.a_rendezvous = self.b_rendezvous = 0
        self.a, self.b = a, b

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async def sample() -> None:
            relay_a, relay_b = self.a.server.running.relay, self.b.server.running.relay
            while True:
                self.a_bridges = max(self.a_bridges, len(relay_a.live_bridges()))
                self.b_bridges = max(self.b_bridges, len(relay_b.live_bridges()))
                self.a_rendezvous = max(self.a_rendezvous, len(relay_a.rendezvous))
                self.b_rendezvous = max(self.b_rendezvous, len(relay_b.rendezvous))
                await asyncio.sleep(0.002)

        task = asyncio.create_task(sample())
        try:
            yield
        finally:
            task.cancel()


@pytest.mark.interop
@pytest.mark.parametrize("size", [1024, 204_800])
async def test_a_hyco_ws_sender_on_a_reaches_a_listener_on_b_bridged_on_a(
    tmp_path: Path, redis_prefix: str, pg_schema: str, size: int
) -> None:
    async with cluster(tmp_path, "ab", prefix=redis_prefix, schema=pg_schema) as (a, b):
        await shared_connections([a, b], "myhc")
        watch = Watch(a, b)
        async with driver("ws-listener.mjs", base(b), "myhc") as listener:
            await listener.next_event("ready")
            async with (
                watch.running(),
                driver("ws-sender.mjs", base(a), "myhc", HC_BINARY_LENGTH=str(size)) as sender,
            ):
                result = await sender.next_event("result")
                assert (result["binaryLength"], result["binaryEqual"]) == (size, True)
                assert result["text"] == "hello from hyco-ws"
                assert await sender.process.wait() == 0
            connection = await listener.next_event("connection")
        assert str(connection["url"]).startswith(f"{a.ws_base}/$hc/myhc?sb-hc-action=accept")
        assert (watch.a_bridges, watch.b_bridges) == (1, 0)
        assert watch.b_rendezvous == 0


@pytest.mark.interop
async def test_http_senders_on_a_reach_a_hyco_https_listener_on_b_through_a_rendezvous_on_a(
    tmp_path: Path, redis_prefix: str, pg_schema: str
) -> None:
    async with cluster(tmp_path, "ab", prefix=redis_prefix, schema=pg_schema) as (a, b):
        await shared_connections([a, b], "myhttp")
        token = make_sas_token(f"{a.http_base}/myhttp", ROOT_RULE, KEY, int(time.time()) + 600)
        url = f"{a.http_base}/myhttp"
        watch = Watch(a, b)
        async with driver("https-listener.mjs", base(b), "myhttp") as listener:
            await listener.next_event("ready")
            headers = {"ServiceBusAuthorization": token}
            async with watch.running(), aiohttp.ClientSession(headers=headers) as http:
                for size in (1024, 204_800):
                    upload = bytes(i % 251 for i in range(size))
                    async with http.post(f"{url}/echo", data=upload) as reply:
                        assert (reply.status, await reply.read()) == (200, upload)
                async with http.get(f"{url}/big") as reply:
                    assert reply.status == 200
                    assert await reply.read() == bytes(i % 251 for i in range(204_800))
            seen = [await listener.next_event("request") for _ in range(3)]
        assert [(e["method"], e["bodyLength"]) for e in seen] == [
            ("POST", 1024), ("POST", 204_800), ("GET", 0),
        ]  # fmt: skip
        assert watch.a_rendezvous >= 1 and watch.b_rendezvous == 0
        assert watch.b_bridges == 0


def listen_url(node: Node, name: str) -> str:
    token = make_sas_token(f"{node.http_base}/{name}", ROOT_RULE, KEY, int(time.time()) + 600)
    query = urllib.parse.urlencode({"sb-hc-action": "listen", "sb-hc-token": token})
    return f"{node.ws_base}/$hc/{name}?{query}"


async def listen(
    http: aiohttp.ClientSession, node: Node, name: str
) -> aiohttp.ClientWebSocketResponse:
    return await http.ws_connect(listen_url(node, name), autoping=True)


async def refused(http: aiohttp.ClientSession, node: Node, name: str) -> int:
    try:
        websocket = await listen(http, node, name)
    except aiohttp.WSServerHandshakeError as error:
        return error.status
    await websocket.close()
    raise AssertionError(f"a listener on node {node.name} was admitted")


async def test_25_listeners_over_three_nodes_and_the_26th_is_refused_on_every_node(
    tmp_path: Path, redis_prefix: str, pg_schema: str
) -> None:
    async with cluster(tmp_path, "abc", prefix=redis_prefix, schema=pg_schema) as nodes:
        await shared_connections(nodes, "capped")
        async with aiohttp.ClientSession() as http:
            held = [await listen(http, nodes[i % 3], "capped") for i in range(25)]
            try:
                assert [await refused(http, node, "capped") for node in nodes] == [403] * 3
                await held.pop().close()  # one leaves (it was on node a): one may come
                await within(2.0, lambda: len(nodes[0].server.running.relay.channels) == 8)
                held.append(await listen(http, nodes[2], "capped"))
                assert await refused(http, nodes[1], "capped") == 403
            finally:
                for websocket in held:
                    await websocket.close()


async def test_a_dead_node_s_listeners_do_not_count(
    tmp_path: Path, redis_prefix: str, pg_schema: str
) -> None:
    """Entries of a node that died (no alive key, or another boot's) are dropped by the
    script that admits the next listener."""
    async with cluster(tmp_path, "a", prefix=redis_prefix, schema=pg_schema) as (a,):
        await shared_connections([a], "capped")
        store = redis.Redis.from_url(REDIS_URL)
        try:
            key = f"{redis_prefix}:hc:capped"
            ghosts = {f"ghost-{i}": "ghost boot-1" for i in range(24)}
            ghosts["restarted"] = "a old-boot"  # node a's previous run
            await store.hset(key, mapping=ghosts)
            async with aiohttp.ClientSession() as http:
                websocket = await listen(http, a, "capped")
                await websocket.close()
            assert await store.hlen(key) <= 1
        finally:
            await store.aclose()


@pytest.mark.interop
async def test_a_token_naming_any_live_node_works_on_every_node(
    tmp_path: Path, redis_prefix: str, pg_schema: str
) -> None:
    async with cluster(tmp_path, "ab", prefix=redis_prefix, schema=pg_schema) as (a, b):
        await shared_connections([a, b], "myhttp")
        expiry = int(time.time()) + 600
        for_a = make_sas_token(f"{a.http_base}/myhttp", ROOT_RULE, KEY, expiry)
        for_elsewhere = make_sas_token("http://203.0.113.9:1234/myhttp", ROOT_RULE, KEY, expiry)
        async with (
            driver("https-listener.mjs", base(a), "myhttp") as listener,
            aiohttp.ClientSession() as http,
        ):
            await listener.next_event("ready")
            headers = {"ServiceBusAuthorization": for_a}
            async with http.get(f"{b.http_base}/myhttp/hello", headers=headers) as reply:
                assert (reply.status, await reply.text()) == (200, "hello")
            headers = {"ServiceBusAuthorization": for_elsewhere}
            async with http.get(f"{b.http_base}/myhttp/hello", headers=headers) as reply:
                assert reply.status == 401
