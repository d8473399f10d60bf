"""A relayed WebSocket stream: what a listener accepts and what a sender opens.

Messages keep their boundaries and kind (text or binary) end to end; the
relay copies them without looking inside (reference §2.4).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import aiohttp

from passage.hybrid.sdk.errors import MAX_MESSAGE, MessageTooLarge, too_large

__all__ = ["HybridStream"]


@dataclass(eq=False)
class HybridStream:
    websocket: aiohttp.ClientWebSocketResponse
    tracking_id: str = ""
    """The sender's ``sb-hc-id`` (or the one the relay made up)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """The headers the sender connected with (a listener's view; empty for a sender)."""
    remote: tuple[str, int] | None = None
    """The sender's address as the relay saw it, when it says."""
    target: str = ""
    """The path and query the sender used, ``/$hc/`` and ``sb-hc-*`` parameters removed."""
    session: aiohttp.ClientSession | None = None
    """A session this stream owns and closes with it."""
    max_message: int = MAX_MESSAGE
    """The largest message its socket reads (``max_msg_size``), for the error past it."""
    _peer_close_code: int | None = field(default=None, init=False)

    @property
    def protocol(self) -> str | None:
        """The subprotocol agreed on, if any."""
        return self.websocket.protocol

    @property
    def close_code(self) -> int | None:
        """The code the other side closed with (1000 normal, 1001 going away, 1008 policy).

        Taken from the close frame itself: aiohttp reports 1006 when its reply
        finds the connection already shut, as the relay may do once it has closed.
        """
        return self._peer_close_code or self.websocket.close_code

    @property
    def closed(self) -> bool:
        return self.websocket.closed

    async def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            await self.websocket.send_str(data)
        else:
            await self.websocket.send_bytes(data)

    async def receive(self) -> bytes | str | None:
        """The next message; None once the stream has closed (see :attr:`close_code`).

        Raises :class:`MessageTooLarge` when the relay sent a message larger than
        :attr:`max_message` (the stream is then closed with 1009).
        """
        while True:
            message = await self.websocket.receive()
            if message.type is aiohttp.WSMsgType.BINARY:
                data: bytes = message.data
                return data
            if message.type is aiohttp.WSMsgType.TEXT:
                text: str = message.data
                return text
            if message.type is aiohttp.WSMsgType.CLOSE:
                self._peer_close_code = int(message.data)
            if too_large(message):
                await self._release()
                raise MessageTooLarge(self.max_message)
            if message.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                await self._release()
                return None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.websocket.close(code=code, message=reason.encode())
        await self._release()

    def __aiter__(self) -> AsyncIterator[bytes | str]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[bytes | str]:
        while (message := await self.receive()) is not None:
            yield message

    async def _release(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            await session.close()
