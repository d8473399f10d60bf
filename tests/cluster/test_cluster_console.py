"""What the console shows of a cluster: ``GET /live/nodes`` lists every live node."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from cluster_nodes import cluster

from api_harness import Api


async def test_every_node_lists_the_clusters_live_nodes(
    tmp_path: Path, redis_prefix: str, pg_schema: str
) -> None:
    async with (
        cluster(tmp_path, "ab", prefix=redis_prefix, schema=pg_schema) as (a, b),
        aiohttp.ClientSession() as session,
    ):
        for node in (a, b):
            api = Api(node.server.running, node.server.datadir, node.server.config,
                      session=session)  # fmt: skip
            answer = await api.request("GET", "/live/nodes")
            assert answer.status == 200, answer
            listed = {item["name"]: item for item in answer.body["value"]}
            assert sorted(listed) == ["a", "b"]
            assert [name for name, item in listed.items() if item["thisNode"]] == [node.name]
            assert listed["b"]["turnHost"] == "127.0.0.3"
            assert (listed["a"]["allocations"], listed["a"]["draining"]) == (0, False)
