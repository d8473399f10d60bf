"""What the relay keeps per listener and per sender while they are paired.

A :class:`ControlChannel` is one listener's control WebSocket: it sends
``accept`` and ``request`` messages (a JSON text and its binary body, never
interleaved with another command: hyco-https takes the next message as the
body), collects ``response`` messages, and knows the exchanges and bridges that
must end when it does. An :class:`HttpExchange` is one HTTP sender waiting for
its response; a :class:`PendingAccept` is one WebSocket sender waiting for the
listener to meet it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from passage.hybrid.control import ResponseHead
from passage.hybrid.entities import HybridConnectionPath
from passage.hybrid.gateway import ListenerRef

__all__ = [
    "ControlChannel",
    "HttpExchange",
    "InvalidResponse",
    "ListenerGone",
    "PendingAccept",
    "Rejected",
]


@dataclass(slots=True)
class HttpExchange:
    """One HTTP request relayed to a listener, and the response it is waiting for."""

    request_id: str
    full_request: str
    """The ``request`` JSON with method, target, headers and ``body``."""
    body: bytes
    sent: bool = False
    """True once the listener has the full request (inline, or over the rendezvous)."""
    response: asyncio.Future[tuple[ResponseHead, bytes]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def complete(self, head: ResponseHead, body: bytes) -> None:
        if not self.response.done():
            self.response.set_result((head, body))

    def fail(self, error: BaseException) -> None:
        if not self.response.done():
            self.response.set_exception(error)


@dataclass(frozen=True, slots=True)
class Rejected:
    """The listener declined the sender (``sb-hc-statusCode`` on the accept address)."""

    status: int
    description: str


@dataclass(slots=True)
class PendingAccept:
    """A WebSocket sender waiting for the listener at the accept address."""

    met: asyncio.Future[web.WebSocketResponse | Rejected] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the bridge ends, so the accept handler may return."""


class ListenerGone(Exception):
    """The listener's control channel closed while a sender waited for it."""


class InvalidResponse(Exception):
    """The listener answered a request with a ``response`` we cannot relay."""


@dataclass(slots=True)
class ControlChannel:
    path: HybridConnectionPath
    ref: ListenerRef
    websocket: web.WebSocketResponse
    token_expiry: float
    """Unix seconds; the channel closes with 1008 after it (plus grace) unless renewed."""
    exchanges: dict[str, HttpExchange] = field(default_factory=dict)
    bridges: set[web.WebSocketResponse] = field(default_factory=set)
    """Sender sockets paired through this listener: closed when it goes."""
    awaiting_body: tuple[HttpExchange | None, ResponseHead] | None = None
    """A ``response`` with ``body: true`` whose binary message comes next."""
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, text: str, body: bytes | None = None) -> None:
        """One command, and its body right after it, with nothing in between."""
        async with self._send_lock:
            await self.websocket.send_str(text)
            if body is not None:
                await self.websocket.send_bytes(body)

    async def end(self) -> None:
        """Fail what waits on this listener and close the senders paired through it."""
        for exchange in self.exchanges.values():
            exchange.fail(ListenerGone())
        self.exchanges.clear()
        for sender in list(self.bridges):
            await sender.close(code=1001, message=b"listener went away")
        self.bridges.clear()
