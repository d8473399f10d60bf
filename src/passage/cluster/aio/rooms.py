"""Signaling rooms' homes in Redis: ``PREFIX:room:NAME`` = the home node, expiring after
:data:`~passage.cluster.nodes.NODE_EXPIRY` seconds unless the home keeps it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import redis.asyncio as redis

from passage.cluster.aio.link import ClusterLink
from passage.cluster.nodes import NODE_EXPIRY
from passage.signal.homing import SERVICE

__all__ = ["RedisRoomDirectory"]

FAILURES = (redis.RedisError, OSError, TimeoutError)
TTL_MS = int(NODE_EXPIRY * 1000)

KEEP = """
for i, key in ipairs(KEYS) do
  local home = redis.call('GET', key)
  if home == false or home == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  end
end
return 1
"""
"""Renew the claims this node still holds (never one another node took meanwhile)."""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisRoomDirectory:
    """:class:`~passage.signal.homing.RoomDirectory` over this node's :class:`ClusterLink`."""

    def __init__(self, link: ClusterLink) -> None:
        self.link = link
        self._keep = link.redis.register_script(KEEP)
        self._release = link.redis.register_script(RELEASE)

    @property
    def node(self) -> str:
        return self.link.name

    def _key(self, room: str) -> str:
        return f"{self.link.keys.prefix}:room:{room}"

    async def claim(self, room: str) -> str | None:
        if not self.link.up:
            return None
        try:
            await self.link.redis.set(self._key(room), self.node, nx=True, px=TTL_MS)
            home = await self.link.redis.get(self._key(room))
        except FAILURES:
            return None
        if home is None:
            return None
        home = str(home)
        return home if home == self.node or self.is_live(home) else await self._take(room, home)

    async def _take(self, room: str, dead: str) -> str | None:
        """The claim names a node no longer live: take the room over."""
        try:
            await self.link.redis.set(self._key(room), self.node, px=TTL_MS)
        except FAILURES:
            return None
        return self.node

    async def keep(self, rooms: Iterable[str]) -> None:
        keys = [self._key(room) for room in rooms]
        if not keys or not self.link.up:
            return
        try:
            await self._keep(keys=keys, args=[self.node, TTL_MS])
        except FAILURES:
            pass

    async def release(self, room: str) -> None:
        if not self.link.up:
            return
        try:
            await self._release(keys=[self._key(room)], args=[self.node])
        except FAILURES:
            pass

    def is_live(self, node: str) -> bool | None:
        if not self.link.up:
            return None
        return self.link.nodes.get(node, self.link.clock()) is not None

    async def ask(
        self, node: str, body: Mapping[str, Any], within: float
    ) -> Mapping[str, Any] | None:
        return await self.link.ask(node, dict(body), within, service=SERVICE)

    def tell(self, node: str, body: dict[str, Any]) -> None:
        self.link.tell(node, SERVICE, body)

    def serve(
        self,
        answer: Callable[[Mapping[str, Any]], Awaitable[Mapping[str, Any]]],
        hear: Callable[[str, dict[str, Any]], None],
    ) -> None:
        async def answer_dict(body: dict[str, Any]) -> dict[str, Any]:
            return dict(await answer(body))

        self.link.answers[SERVICE] = answer_dict
        self.link.hears[SERVICE] = hear
