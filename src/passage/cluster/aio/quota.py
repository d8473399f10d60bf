"""Per-user allocation counts across the cluster, so ``max_allocations_per_user`` holds
for a user whose allocations are spread over several nodes.

Every :data:`COUNT_INTERVAL` seconds each node writes its own counts (quota key →
allocations) to ``PREFIX:allocs:NODE``, expiring with its registry record, and reads the
other live nodes' into the TURN core. The quota is approximate by that second: two
Allocates on two nodes within it may both pass. Without Redis each node counts alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio as redis

from passage.cluster.aio.link import ClusterLink
from passage.cluster.nodes import NODE_EXPIRY

__all__ = ["COUNT_INTERVAL", "AllocationCounts"]

logger = logging.getLogger("passage.cluster")

COUNT_INTERVAL = 1.0
"""Seconds between two exchanges of the counts."""

FAILURES = (redis.RedisError, OSError, TimeoutError)


class AllocationCounts:
    """Writes ``mine()`` and hands ``apply`` the sum of every other live node's counts."""

    def __init__(
        self,
        link: ClusterLink,
        mine: Callable[[], Mapping[str, int]],
        apply: Callable[[dict[str, int]], None],
    ) -> None:
        self.link = link
        self.mine = mine
        self.apply = apply

    async def forever(self) -> None:
        while True:
            await self.exchange()
            await asyncio.sleep(COUNT_INTERVAL)

    async def exchange(self) -> None:
        """One write and one read; while Redis is away, no one else's counts (alone)."""
        if not self.link.up:
            self.apply({})
            return
        keys, name = self.link.keys, self.link.name
        counts: dict[Any, Any] = {user: n for user, n in self.mine().items() if n > 0}
        others = [
            node.name for node in self.link.nodes.live(self.link.clock()) if node.name != name
        ]
        try:
            async with self.link.redis.pipeline(transaction=True) as pipe:
                pipe.delete(keys.allocations(name))
                if counts:
                    pipe.hset(keys.allocations(name), mapping=counts)
                    pipe.pexpire(keys.allocations(name), int(NODE_EXPIRY * 1000))
                for other in others:
                    pipe.hgetall(keys.allocations(other))
                answers = await pipe.execute()
        except FAILURES as error:
            logger.debug("cluster: could not exchange allocation counts (%s)", error)
            return
        total: Counter[str] = Counter()
        for held in answers[-len(others) :] if others else ():
            for user, count in held.items():
                total[str(user)] += int(count)
        self.apply(dict(total))
