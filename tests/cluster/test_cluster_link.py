"""The node registry over the real Redis: nodes see each other, leave at once when they stop,
and a node starts (and keeps serving) without Redis, saying so, then joins when it is back."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import aiohttp
import pytest
from cluster_nodes import cluster, cluster_node

from passage.app import nonce_key
from passage.stun import MessageClass
from passage.turn.credentials import make_rest_credentials
from passage_server import free_port
from turn_client import TurnClient

pytestmark = pytest.mark.postgres


async def test_nodes_see_each_other_and_a_stopped_node_leaves_at_once(
    tmp_path: Path, redis_prefix: str, pg_schema: str
) -> None:
    async with cluster(tmp_path, "ab", prefix=redis_prefix, schema=pg_schema) as (a, b):
        now = a.server.running.edge.clock()
        live = a.link.nodes.live(now)
        assert [node.name for node in live] == ["a", "b"]
        seen_b = live[1]
        assert (seen_b.public_url, seen_b.turn_host) == (b.ws_base, "127.0.0.3")
        assert seen_b.turn_port == b.server.config.turn_port
        assert (seen_b.load, seen_b.draining) == (0, False)
        async with cluster_node(tmp_path, "c", prefix=redis_prefix, schema=pg_schema) as c:
            await c.link.beat()
            await a.link.beat()
            assert [node.name for node in a.link.nodes.live(now)] == ["a", "b", "c"]
        await a.link.beat()
        assert [node.name for node in a.link.nodes.live(now)] == ["a", "b"]


async def test_a_node_starts_degraded_without_redis_and_joins_when_it_is_back(
    tmp_path: Path, redis_prefix: str, pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "passage.cluster")
    metrics = free_port((socket.SOCK_STREAM,))
    readyz = f"http://127.0.0.1:{metrics}/readyz"
    async with cluster_node(
        tmp_path, "a", prefix=redis_prefix, schema=pg_schema, redis_down=True,
        metrics_port=metrics,
    ) as a:  # fmt: skip
        assert not a.link.up
        async with aiohttp.ClientSession() as http, http.get(readyz) as reply:
            body = await reply.json()
        assert reply.status == 200  # degraded, but it serves: still ready
        target = f"redis://127.0.0.1:{a.redis_link.port}"
        assert body["degraded"] == f"Redis at {target} unreachable: serving alone"
        degraded = [r.getMessage() for r in caplog.records if "running degraded" in r.message]
        assert len(degraded) == 1
        assert f"Redis at redis://127.0.0.1:{a.redis_link.port}" in degraded[0]
        await a.link.beat()  # still down: said once, not every heartbeat
        assert len([r for r in caplog.records if "running degraded" in r.message]) == 1
        async with aiohttp.ClientSession() as http:  # it keeps serving meanwhile
            async with http.get(f"{a.http_base}/openapi.json") as reply:
                assert reply.status == 200
        a.redis_link.restore()
        await a.link.beat()
        assert a.link.up
        assert any("reachable again" in r.message for r in caplog.records)
        async with aiohttp.ClientSession() as http, http.get(readyz) as reply:
            assert (reply.status, await reply.json()) == (200, {"status": "ready", "problems": {}})


async def test_the_nodes_share_one_rest_secret_so_credentials_and_nonces_pass_everywhere(
    tmp_path: Path, redis_prefix: str, pg_schema: str
) -> None:
    async with cluster(tmp_path, "ab", prefix=redis_prefix, schema=pg_schema) as (a, b):
        dir_a, dir_b = a.server.running.datadir, b.server.running.datadir
        assert dir_a.auth_secrets == dir_b.auth_secrets
        assert dir_b.auth_secret_file.read_text().strip() == dir_a.auth_secrets[0]
        assert nonce_key(dir_a) == nonce_key(dir_b)
        # What `passage turn-credentials --data-dir` of node a mints works on node b.
        secret = dir_a.auth_secret_file.read_text().strip()
        username, password = make_rest_credentials(secret, "carol", 600, now=time.time())
        client = await TurnClient.connect("udp", b.server.address("udp"), username, password)
        try:
            assert (await client.allocate()).message_class is MessageClass.SUCCESS
        finally:
            await client.close()
