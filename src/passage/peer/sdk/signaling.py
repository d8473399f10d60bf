"""A signaling session from the client side: ``wss://HOST:PORT/signal/{room}`` (aiohttp).

Connect with a user access token, read the ``welcome`` (who you are, who is
already here), then send JSON objects to one member or all, and read what
the server relays (``docs/signaling.md``). A close by the server raises
:class:`~passage.peer.errors.SignalingClosed` with its close code.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp

from passage.peer.errors import PeerError, SignalingClosed
from passage.signal.admission import SUBPROTOCOL

__all__ = ["RoomMember", "SignalingSession", "signal_url"]

CONNECT_TIMEOUT = 15.0

MESSAGE_TOO_BIG = int(aiohttp.WSCloseCode.MESSAGE_TOO_BIG)
"""1009 (RFC 6455 §7.4.1)."""

MAX_FRAME = 4 * 16 * 1024
"""Largest frame read from the server, in bytes: the server's own frame limit (four times
its 16 KiB message limit). What it relays is a member's message of at most 16 KiB in a
small envelope; a ``welcome`` lists the room's members (about 120 bytes each). A server
that sends more (hostile or broken) gets the session closed with 1009."""


def signal_url(api_url: str, room: str) -> str:
    """``https://host:port/`` → ``wss://host:port/signal/{room}`` (http → ws)."""
    base = api_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return f"{base}/signal/{room}"


@dataclass(frozen=True, slots=True)
class RoomMember:
    member: str
    identity: str


class SignalingSession:
    """One member's session in a room. Create with :meth:`join`."""

    def __init__(
        self,
        websocket: aiohttp.ClientWebSocketResponse,
        welcome: dict[str, Any],
        max_frame: int = MAX_FRAME,
    ):
        self._websocket = websocket
        self._max_frame = max_frame
        self.me = RoomMember(str(welcome["member"]), str(welcome["identity"]))
        self.members = [
            RoomMember(str(m["member"]), str(m["identity"])) for m in welcome["members"]
        ]
        """The members already in the room when this one joined, earliest first."""

    @classmethod
    async def join(
        cls,
        session: aiohttp.ClientSession,
        api_url: str,
        room: str,
        token: str,
        tls: ssl.SSLContext | None = None,
        max_frame: int = MAX_FRAME,
    ) -> SignalingSession:
        """Join ``room``; raises :class:`SignalingClosed` if the server refuses (4xxx), or
        (code 1009) if it sends a frame larger than ``max_frame`` bytes, then or later."""
        try:
            websocket = await session.ws_connect(
                signal_url(api_url, room),
                headers={"Authorization": f"Bearer {token}"},
                protocols=(SUBPROTOCOL,),
                ssl=tls if tls is not None else True,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                heartbeat=30.0,
                max_msg_size=max_frame,
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise PeerError(f"signaling at {signal_url(api_url, room)}: {error}") from None
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                welcome = await cls._next(websocket, max_frame)
        except BaseException:
            await websocket.close()
            raise
        if welcome.get("type") != "welcome":
            await websocket.close()
            raise PeerError(f"signaling: expected a welcome, got {welcome.get('type')!r}")
        return cls(websocket, welcome, max_frame)

    async def send(self, data: dict[str, Any], to: str | None = None) -> None:
        """Relay ``data`` to member ``to`` (every other member with None)."""
        frame = {"type": "send", "data": data} | ({"to": to} if to is not None else {})
        try:
            await self._websocket.send_str(json.dumps(frame, separators=(",", ":")))
        except (ConnectionError, RuntimeError) as error:
            raise self._closed_error() from error

    async def receive(self) -> dict[str, Any]:
        """The next frame the server sends: ``joined``, ``left``, ``message`` or ``error``."""
        frame: dict[str, Any] = await self._next(self._websocket, self._max_frame)
        return frame

    async def close(self) -> None:
        await self._websocket.close()

    def _closed_error(self) -> SignalingClosed:
        return SignalingClosed(self._websocket.close_code, "")

    @staticmethod
    async def _next(websocket: aiohttp.ClientWebSocketResponse, max_frame: int) -> Any:
        message = await websocket.receive()
        if message.type is aiohttp.WSMsgType.TEXT:
            try:
                frame = json.loads(message.data)
            except ValueError:
                frame = None
            if not isinstance(frame, dict):
                raise PeerError("signaling: the server sent something that is not a JSON object")
            return frame
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING):
            raise SignalingClosed(websocket.close_code, str(message.extra or ""))
        error = message.data
        if isinstance(error, aiohttp.WebSocketError) and error.code == MESSAGE_TOO_BIG:
            raise SignalingClosed(
                MESSAGE_TOO_BIG,
                f"the server sent a frame larger than {max_frame} bytes (max_frame); not read",
            )
        raise SignalingClosed(websocket.close_code, "connection lost")
