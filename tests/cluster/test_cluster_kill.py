"""``kill -9`` of the node holding the listeners, with three real ``passage serve``
processes: the listeners come back through the load balancer to the other nodes, and
within 10 s, 20 of 20 new senders succeed through the others; meanwhile no sender waits
more than 3 s for its error (a dead node's listeners are skipped at once: nobody reads
its inbox)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from cluster_services import POSTGRES_URL
from serve_nodes import RoundRobin, ServeNode, serve_node

from interop.test_interop_hyco import KEY, Base, driver
from passage.api.service import new_key_text
from passage.hybrid.admin import HybridAdmin
from passage.hybrid.entities import ROOT_RULE
from passage.hybrid.sas import Rights, make_sas_token
from passage.mounts import RESERVED_NAMES
from passage.store.database import open_database
from passage.store.hybrid import HybridStore

pytestmark = [pytest.mark.postgres, pytest.mark.interop]


async def make_hybrid_connection(schema: str, name: str) -> None:
    """``name`` and the root rule's key, written to the store (the nodes poll it)."""
    database = await open_database(POSTGRES_URL, schema=schema)
    try:
        admin = HybridAdmin(
            HybridStore(database), clock=time.time, new_key=new_key_text,
            reserved_names=RESERVED_NAMES,
        )  # fmt: skip
        await admin.create_connection(name)
        await admin.put_rule(None, ROOT_RULE, Rights.MANAGE, primary_key=KEY)
    finally:
        await database.close()


async def send(http: aiohttp.ClientSession, node: ServeNode) -> tuple[bool, float]:
    """One HTTP sender on ``node``: whether it got the listener's answer, and how long."""
    token = make_sas_token(f"{node.http_base}/myhttp", ROOT_RULE, KEY, int(time.time()) + 600)
    started = time.monotonic()
    try:
        async with http.get(
            f"{node.http_base}/myhttp/hello",
            headers={"ServiceBusAuthorization": token},
            timeout=aiohttp.ClientTimeout(total=10),
        ) as reply:
            ok = reply.status == 200 and await reply.text() == "hello"
    except (aiohttp.ClientError, TimeoutError):
        ok = False
    return ok, time.monotonic() - started


async def test_kill_9_of_the_listeners_node_and_new_senders_succeed_through_the_others(
    tmp_path: Path, redis_prefix: str, pg_schema: str
) -> None:
    with (
        serve_node(tmp_path, "a", prefix=redis_prefix, schema=pg_schema) as a,
        serve_node(tmp_path, "b", prefix=redis_prefix, schema=pg_schema) as b,
        serve_node(tmp_path, "c", prefix=redis_prefix, schema=pg_schema) as c,
    ):
        await make_hybrid_connection(pg_schema, "myhttp")
        balancer = await RoundRobin([(b.host, b.http_port)]).start()  # listeners land on b
        lb = f"127.0.0.1:{balancer.port}"
        base = Base(f"ws://{lb}", f"http://{lb}", None)
        try:
            async with (
                driver("https-listener.mjs", base, "myhttp") as first,
                driver("https-listener.mjs", base, "myhttp") as second,
                aiohttp.ClientSession() as http,
            ):
                await first.next_event("ready")
                await second.next_event("ready")
                for node in (a, c):  # each has polled the hybrid connection in (1 s)
                    ready_by = time.monotonic() + 5.0
                    while not (await send(http, node))[0]:
                        assert time.monotonic() < ready_by, f"node {node.name} never reached it"
                        await asyncio.sleep(0.1)
                balancer.upstreams = [(n.host, n.http_port) for n in (a, b, c)]
                b.kill()
                killed = time.monotonic()
                outcomes: list[tuple[bool, float]] = []
                while sum(1 for ok, _ in outcomes[-20:] if ok) < 20:
                    assert time.monotonic() - killed < 10.0, f"after 10 s: {outcomes}"
                    outcomes.append(await send(http, (a, c)[len(outcomes) % 2]))
                failed = [took for ok, took in outcomes if not ok]
                assert all(took < 3.0 for took in failed), outcomes
        finally:
            await balancer.close()
