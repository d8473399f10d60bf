"""One node's link to Redis: its registry record, the events it hears and sends, its inbox.

Redis is expiring, rebuildable state: a node starts without it and runs degraded (alone:
same-node pairing, per-node quotas, revocations by the store poll), says so once in the
log, and keeps trying every :data:`~passage.cluster.nodes.NODE_HEARTBEAT` seconds. When
the link comes back, ``on_reconnect`` callbacks put back what this node holds (its
listeners), since Redis may have lost it. Every command fails fast (one second, no
retries): a caller falls back to what it can do alone rather than wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from passage.cluster.events import ClusterEvent, decode_event, encode_event
from passage.cluster.keys import ClusterKeys
from passage.cluster.nodes import (
    NODE_EXPIRY,
    NODE_HEARTBEAT,
    NodeInfo,
    NodeTable,
    decode_node,
    encode_node,
)

__all__ = ["ClusterLink", "redis_target"]

logger = logging.getLogger("passage.cluster")

COMMAND_TIMEOUT = 1.0
"""Seconds one Redis command may take before the link counts as down."""

LISTEN_POLL = 0.25
"""Seconds the channel reader waits for a message before it checks whether to stop."""

Ask = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
"""What answers another node's ask: its JSON object in, the answer's out."""


def redis_target(url: str) -> str:
    """``url`` without its credentials, for the log."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    where = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{where or parts.path}"


def connect(url: str) -> redis.Redis:
    """A client that gives up after :data:`COMMAND_TIMEOUT` and never retries on its own."""
    client: redis.Redis = redis.Redis.from_url(
        url,
        socket_connect_timeout=COMMAND_TIMEOUT,
        socket_timeout=COMMAND_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )
    return client


class ClusterLink:
    """The node's registry heartbeat, event channel and inbox. ``advert`` says what this
    node is now (``seen_at`` is filled in from ``clock``)."""

    def __init__(
        self,
        url: str,
        keys: ClusterKeys,
        advert: Callable[[float], NodeInfo],
        clock: Callable[[], float],
    ) -> None:
        self.url = url
        self.keys = keys
        self.advert = advert
        self.clock = clock
        first = advert(clock())
        self.name, self.boot_id = first.name, first.boot_id
        self.redis = connect(url)
        self.nodes = NodeTable()
        self.up = False
        self.on_event: list[Callable[[ClusterEvent], Awaitable[None]]] = []
        self.on_reconnect: list[Callable[[], Awaitable[None]]] = []
        self.on_state: list[Callable[[str | None], None]] = []
        """Told why the link went down (a few words), and None when it is up again."""
        self.answers: dict[str, Ask] = {}
        """What answers other nodes' asks, by service (``hc``: the Hybrid Connections relay)."""
        self.hears: dict[str, Callable[[str, dict[str, Any]], None]] = {}
        """What takes other nodes' one-way messages, by service, in the order they were sent
        (``signal``: rooms homed here or proxied from here); called with the sender's name."""
        self._told: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._teller: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._subscriber: asyncio.Task[None] | None = None
        self._readers: set[asyncio.Task[None]] = set()
        """Channel readers not yet finished, the current one and any told to stop."""
        self._stop_listening = asyncio.Event()
        self._reported_down = False

    # --- life -------------------------------------------------------------------------

    async def start(self) -> None:
        """The first heartbeat now (so the log says at once whether Redis is there), then
        one every :data:`NODE_HEARTBEAT` seconds until :meth:`close`."""
        await self.beat()
        self._tasks.append(asyncio.create_task(self._heartbeats()))

    def run(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` until :meth:`close` (a loop that lives as long as the link)."""
        self._tasks.append(asyncio.create_task(work))

    async def close(self) -> None:
        """Withdraw this node's record (it is gone now, not in six seconds) and disconnect."""
        for task in [*self._tasks, *([self._teller] if self._teller else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._stop_subscriber()
        if self._readers:
            await asyncio.wait(self._readers, timeout=4 * LISTEN_POLL)
        if self.up:
            with contextlib.suppress(redis.RedisError, OSError, TimeoutError):
                await self.redis.delete(self.keys.node(self.name), self.keys.alive(self.name))
                await self.redis.srem(self.keys.nodes, self.name)
        await self.redis.aclose()

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(NODE_HEARTBEAT)
            await self.beat()

    async def beat(self) -> None:
        """Write this node's record, read everyone's; on the first success after a failure,
        re-subscribe and run the ``on_reconnect`` callbacks."""
        now = self.clock()
        me = self.advert(now)
        ttl = int(NODE_EXPIRY * 1000)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(self.keys.node(me.name), encode_node(me), px=ttl)
                pipe.set(self.keys.alive(me.name), me.boot_id, px=ttl)
                pipe.sadd(self.keys.nodes, me.name)
                await pipe.execute()
            names = sorted(str(name) for name in await self.redis.smembers(self.keys.nodes))
            records = (
                await self.redis.mget([self.keys.node(name) for name in names]) if names else []
            )
        except (redis.RedisError, OSError, TimeoutError) as error:
            self._went_down(error)
            return
        found = [decode_node(record) for record in records if record is not None]
        self.nodes.replace(node for node in found if node is not None)
        gone = [name for name, record in zip(names, records, strict=True) if record is None]
        if gone:
            with contextlib.suppress(redis.RedisError, OSError, TimeoutError):
                await self.redis.srem(self.keys.nodes, *gone)
        if not self.up:
            await self._came_up()

    def _went_down(self, error: BaseException) -> None:
        if self.up or not self._reported_down:
            logger.warning(
                "cluster: Redis at %s is unreachable (%s); running degraded: this node serves "
                "alone (same-node Hybrid Connections, per-node quotas, revocations by the "
                "store poll) and retries every %.0f s",
                redis_target(self.url), _reason(error), NODE_HEARTBEAT,
            )  # fmt: skip
            self._reported_down = True
            for tell in self.on_state:
                tell(f"Redis at {redis_target(self.url)} unreachable: serving alone")
        self.up = False
        self._stop_subscriber()

    def _stop_subscriber(self) -> None:
        """Ask the reader to stop at its next poll (redis-py's ``get_message`` does not
        take cancellation well), and forget it."""
        self._stop_listening.set()
        self._subscriber = None

    async def _came_up(self) -> None:
        self.up = True
        for tell in self.on_state:
            tell(None)
        self._stop_listening = asyncio.Event()
        self._subscriber = asyncio.create_task(self._listen(self._stop_listening))
        self._readers.add(self._subscriber)
        self._subscriber.add_done_callback(self._readers.discard)
        if self._reported_down:
            logger.warning("cluster: Redis at %s is reachable again", redis_target(self.url))
            self._reported_down = False
        else:
            logger.info(
                "cluster: node %s joined through Redis at %s (%d live node%s)",
                self.name, redis_target(self.url), len(self.nodes.live(self.clock())),
                "" if len(self.nodes.live(self.clock())) == 1 else "s",
            )  # fmt: skip
        for callback in self.on_reconnect:
            try:
                await callback()
            except Exception:
                logger.exception("cluster: could not re-register after reconnecting")

    # --- events -----------------------------------------------------------------------

    async def publish(self, event: ClusterEvent) -> None:
        """Tell every node; a failure is logged, not raised (their store poll catches up)."""
        if not self.up:
            return
        try:
            await self.redis.publish(self.keys.events, encode_event(event))
        except (redis.RedisError, OSError, TimeoutError) as error:
            logger.info("cluster: could not publish %s (%s)", event.kind, _reason(error))

    # --- asks between nodes -----------------------------------------------------------

    def tell(self, node: str, service: str, body: dict[str, Any]) -> None:
        """Send ``body`` to ``node``'s ``service``, after whatever was told before (one
        sender, in order); nothing says whether it arrived."""
        if not self.up:
            return
        message = json.dumps({"tell": body, "service": service, "ticket": "", "from": self.name})
        self._told.put_nowait((self.keys.inbox(node), message))
        if self._teller is None or self._teller.done():
            self._teller = asyncio.create_task(self._send_told())

    async def _send_told(self) -> None:
        while not self._told.empty():
            channel, message = self._told.get_nowait()
            try:
                await self.redis.publish(channel, message)
            except (redis.RedisError, OSError, TimeoutError):
                pass

    async def ask(
        self, node: str, body: dict[str, Any], within: float, service: str = "hc"
    ) -> dict[str, Any] | None:
        """Send ``body`` to ``node``'s inbox and wait for its answer; None when nobody
        listens there, Redis is down, or no answer came within ``within`` seconds."""
        if not self.up:
            return None
        ticket = secrets.token_hex(12)
        waiting: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ticket] = waiting
        message = json.dumps({"ask": body, "service": service, "ticket": ticket, "from": self.name})
        try:
            if not await self.redis.publish(self.keys.inbox(node), message):
                return None  # no subscriber: that node is gone or its link is down
            return await asyncio.wait_for(waiting, within)
        except (redis.RedisError, OSError, TimeoutError):
            return None
        finally:
            self._waiting.pop(ticket, None)

    async def _listen(self, stop: asyncio.Event) -> None:
        """Read the shared channel and this node's inbox until ``stop`` or the link fails
        (the next heartbeat that succeeds starts a new reader)."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.keys.events, self.keys.inbox(self.name))
            while not stop.is_set():
                message = await pubsub.get_message(timeout=LISTEN_POLL)
                if message is None:
                    continue
                data = str(message["data"])
                if message["channel"] == self.keys.events:
                    await self._on_event(data)
                else:
                    self._on_inbox(data)
        except (redis.RedisError, OSError, TimeoutError) as error:
            if not stop.is_set():
                self._went_down(error)
        finally:
            with contextlib.suppress(redis.RedisError, OSError, TimeoutError):
                await pubsub.aclose()

    async def _on_event(self, data: str) -> None:
        event = decode_event(data)
        if event is None or event.origin == self.name:
            return
        for callback in self.on_event:
            try:
                await callback(event)
            except Exception:
                logger.exception("cluster: could not apply %s", event.kind)

    def _on_inbox(self, data: str) -> None:
        try:
            message = json.loads(data)
            ticket, sender = str(message["ticket"]), str(message["from"])
        except (ValueError, KeyError, TypeError):
            return
        if "answer" in message:
            waiting = self._waiting.get(ticket)
            if waiting is not None and not waiting.done() and isinstance(message["answer"], dict):
                waiting.set_result(message["answer"])
        elif isinstance(message.get("tell"), dict):
            hear = self.hears.get(str(message.get("service", "")))
            if hear is not None:
                try:
                    hear(sender, message["tell"])
                except Exception:
                    logger.exception("cluster: could not take a message of node %s", sender)
        elif isinstance(message.get("ask"), dict):
            answer = self.answers.get(str(message.get("service", "hc")))
            if answer is None:
                return
            task = asyncio.create_task(self._answer(answer, sender, ticket, message["ask"]))
            self._tasks.append(task)
            task.add_done_callback(self._tasks.remove)

    async def _answer(
        self, answer_with: Ask, sender: str, ticket: str, ask: dict[str, Any]
    ) -> None:
        try:
            answer = await answer_with(ask)
        except Exception:
            logger.exception("cluster: could not answer node %s", sender)
            answer = {"ok": False, "error": "internal"}
        reply = json.dumps({"answer": answer, "ticket": ticket, "from": self.name})
        with contextlib.suppress(redis.RedisError, OSError, TimeoutError):
            await self.redis.publish(self.keys.inbox(sender), reply)


def _reason(error: BaseException) -> str:
    return str(error) or type(error).__name__
