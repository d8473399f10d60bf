"""What the relay keeps per listener and per sender while they are paired.

A :class:`ControlChannel` is one listener's control WebSocket: it sends
``accept`` and ``request`` commands (a JSON text and its binary body, never
interleaved with another command: hyco-https takes the next message as the
body), reads ``response`` and ``renewToken`` commands with the core's
:class:`~passage.hybrid.framing.CommandReader`, and knows the exchanges and
bridges that must end when it does. An :class:`HttpExchange` is one HTTP sender waiting for
its response; a :class:`PendingAccept` is one WebSocket sender waiting for the
listener to meet it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from passage.hybrid.aio.meters import Traffic
from passage.hybrid.control import RenewToken, ResponseHead
from passage.hybrid.entities import HybridConnectionPath
from passage.hybrid.framing import CommandReader, Outgoing
from passage.hybrid.gateway import ListenerRef

__all__ = [
    "Body",
    "ControlChannel",
    "HttpExchange",
    "InvalidResponse",
    "ListenerGone",
    "PendingAccept",
    "Rejected",
    "SenderGone",
    "send_command",
]


Body = bytes | AsyncIterator[bytes]
"""A body whole (inline on the control channel), or streamed as it comes (rendezvous)."""


@dataclass(slots=True)
class HttpExchange:
    """One HTTP request relayed to a listener, and the response it is waiting for."""

    request_id: str
    head: str
    """The full ``request`` JSON: method, target, headers, whether a body follows."""
    body: Body | None
    """What follows the head (None: nothing); a stream is read once, as it is sent."""
    sent: bool = False
    """True once the listener has the full request (inline, or over the rendezvous)."""
    response: asyncio.Future[tuple[ResponseHead, Body]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by the sender's side once it is done with the response (relayed or not)."""
    relayed: bool = False
    """True once the response body reached the sender whole."""
    last_upload: float = 0.0
    """When the request body last moved (the response deadline runs from there)."""
    traffic: Traffic | None = None
    """Where the bytes it carries are metered."""

    def complete(self, head: ResponseHead, body: Body) -> None:
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


async def send_command(websocket: web.WebSocketResponse, command: Outgoing) -> None:
    """The messages of ``command``; the caller keeps anything else off the socket meanwhile."""
    for message in command.messages:
        if isinstance(message, str):
            await websocket.send_str(message)
        else:
            await websocket.send_bytes(message)


class ListenerGone(Exception):
    """The listener's control channel closed while a sender waited for it."""


class InvalidResponse(Exception):
    """The listener answered a request with a ``response`` we cannot relay."""


class SenderGone(Exception):
    """The HTTP sender broke its request body off: nobody waits for the response."""


@dataclass(slots=True)
class BridgeMeter:
    """One WebSocket sender paired through a listener: who, since when, bytes each way."""

    sender: str
    """``ip:port`` of the sender."""
    opened_at: float
    bytes_to_listener: int = 0
    bytes_to_sender: int = 0


@dataclass(slots=True)
class ControlChannel:
    path: HybridConnectionPath
    ref: ListenerRef
    websocket: web.WebSocketResponse
    token_expiry: float
    """Unix seconds; the channel closes with 1008 after it (plus grace) unless renewed."""
    reader: CommandReader[ResponseHead | RenewToken]
    """What the listener sent so far: a ``response`` may still wait for its body."""
    base_url: str
    """``ws(s)://host:port`` of this node where the listener meets its senders."""
    exchanges: dict[str, HttpExchange] = field(default_factory=dict)
    address: str = ""
    """``ip:port`` the listener connected from."""
    connected_at: float = 0.0
    """Unix seconds."""
    bridges: dict[web.WebSocketResponse, BridgeMeter] = field(default_factory=dict)
    """Sender sockets paired through this listener (closed when it goes), with their meters."""
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, command: Outgoing) -> None:
        """One command, and its body right after it, with nothing in between."""
        async with self._send_lock:
            await send_command(self.websocket, command)

    async def end(self) -> None:
        """Fail what waits on this listener and close the senders paired through it."""
        for exchange in self.exchanges.values():
            exchange.fail(ListenerGone())
        self.exchanges.clear()
        for sender in list(self.bridges):
            await sender.close(code=1001, message=b"listener went away")
        self.bridges.clear()
