"""The gateway store of Hybrid Connections in Redis, shared by a cluster's nodes.

One hash per hybrid connection, ``PREFIX:hc:PATH``: listener id → ``NODE BOOT``, the
node holding that listener's control channel and the boot id of its process. A listen
is admitted by one Lua script, atomically: it drops the entries of nodes no longer live
(their ``PREFIX:alive:NODE`` key expired or names another boot), counts the rest, and
adds the new listener only below the limit, so the 25-listener limit holds across nodes.
Senders find listeners on other nodes here and reach them through those nodes' inboxes
(:meth:`~passage.cluster.aio.link.ClusterLink.ask`).
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import redis.asyncio as redis

from passage.cluster.aio.link import ClusterLink
from passage.hybrid.entities import HybridConnectionPath
from passage.hybrid.gateway import Answer, ListenerRef

__all__ = ["RedisGateway"]

logger = logging.getLogger("passage.cluster")

REGISTER = """
local entries = redis.call('HGETALL', KEYS[1])
local count = 0
for i = 1, #entries, 2 do
  local holder = entries[i + 1]
  local space = string.find(holder, ' ', 1, true)
  local alive = nil
  if space then
    alive = redis.call('GET', ARGV[4] .. string.sub(holder, 1, space - 1))
  end
  if space and alive == string.sub(holder, space + 1) then
    count = count + 1
  else
    redis.call('HDEL', KEYS[1], entries[i])
  end
end
if count >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
"""KEYS[1]: the hash; ARGV: listener id, ``NODE BOOT``, the limit, the alive keys' prefix."""

FAILURES = (redis.RedisError, OSError, TimeoutError)


class RedisGateway:
    """:class:`~passage.hybrid.gateway.SharedGateway` over this node's :class:`ClusterLink`."""

    def __init__(self, link: ClusterLink) -> None:
        self.link = link
        self._register = link.redis.register_script(REGISTER)

    @property
    def _holder(self) -> str:
        return f"{self.link.name} {self.link.boot_id}"

    async def register(
        self, path: HybridConnectionPath, listener_id: str, limit: int
    ) -> bool | None:
        if not self.link.up:
            return None
        keys = self.link.keys
        try:
            admitted = await self._register(
                keys=[keys.listeners(path)],
                args=[listener_id, self._holder, limit, keys.alive("")],
            )
        except FAILURES as error:
            logger.info("cluster: could not register a listener of %s (%s)", path, error)
            return None
        return bool(admitted)

    async def unregister(self, path: HybridConnectionPath, listener_id: str) -> None:
        if not self.link.up:
            return  # the entry dies with this boot's alive key, or the next reassert skips it
        try:
            await self.link.redis.hdel(self.link.keys.listeners(path), listener_id)
        except FAILURES:
            pass

    async def reassert(self, held: Mapping[HybridConnectionPath, Sequence[str]]) -> None:
        if not held:
            return
        async with self.link.redis.pipeline(transaction=False) as pipe:
            for path, listener_ids in held.items():
                for listener_id in listener_ids:
                    pipe.hset(self.link.keys.listeners(path), listener_id, self._holder)
            await pipe.execute()
        count = sum(len(ids) for ids in held.values())
        logger.info("cluster: re-registered %d listener%s", count, "" if count == 1 else "s")

    async def elsewhere(self, path: HybridConnectionPath) -> Sequence[ListenerRef] | None:
        if not self.link.up:
            return None
        try:
            entries = await self.link.redis.hgetall(self.link.keys.listeners(path))
        except FAILURES:
            return None
        now = self.link.clock()
        found = []
        for listener_id, holder in entries.items():
            node, _, boot = str(holder).partition(" ")
            info = self.link.nodes.get(node, now)
            if node != self.link.name and info is not None and info.boot_id == boot:
                found.append(ListenerRef(str(listener_id), node))
        return found

    async def ask(
        self, node: str, body: Mapping[str, Any], within: float
    ) -> Mapping[str, Any] | None:
        return await self.link.ask(node, dict(body), within)

    def node_hosts(self) -> Sequence[str]:
        hosts: list[str] = []
        for node in self.link.nodes.live(self.link.clock()):
            hosts += [urllib.parse.urlsplit(node.public_url).hostname or "", node.turn_host]
        return [host for host in dict.fromkeys(hosts) if host]

    def serve(self, answer: Answer, reassert: Callable[[], Awaitable[None]]) -> None:
        async def answer_dict(body: dict[str, Any]) -> dict[str, Any]:
            return dict(await answer(body))

        self.link.answers["hc"] = answer_dict
        self.link.on_reconnect.append(reassert)
