"""The TURN client the tests drive: :class:`passage.turnclient.aio.TurnConnection`, plus test tools.

The package's client does the work (UDP, TCP or TLS to a real server; requests
matched to answers by transaction ID; the long-term credential dance of 401
with REALM and NONCE, then the same request signed, and 438 → a fresh nonce).
This module adds what only tests need: the ``alice:wonderland`` defaults,
raw bytes on the wire (:meth:`TurnClient.send_raw`, :meth:`TurnClient.build`),
and :class:`UdpPeer`, the peer on the far side of the relay.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from passage.addresses import Address
from passage.stun import MessageClass, TransactionId
from passage.turnclient import UDP, Credentials, Relayed, error_code, relayed_addresses
from passage.turnclient.aio import ANSWER_TIMEOUT, NoAnswer, TurnConnection
from passage.turnclient.client import Attributes

__all__ = [
    "ANSWER_TIMEOUT",
    "UDP",
    "NoAnswer",
    "Received",
    "TurnClient",
    "UdpPeer",
    "error_code",
    "relayed_addresses",
]

Received = Relayed
"""Application data relayed to the client: by ChannelData (``channel``) or a Data
indication (``peer``)."""


class TurnClient(TurnConnection):
    """One TURN client 5-tuple. Build it with :meth:`connect`; ``await close()`` it."""

    @classmethod
    async def connect(
        cls,
        transport: str,
        server: Address,
        username: str = "alice",
        password: str = "wonderland",
        *,
        ssl_context: ssl.SSLContext | None = None,
        sock: socket.socket | None = None,
    ) -> TurnClient:
        """A client on a fresh local port: ``transport`` is ``udp``, ``tcp`` or ``tls``.

        ``sock``, an unconnected socket of the right type, is used instead of a
        new one: the NAT lab passes one made inside a network namespace.
        """
        connection = await cls.open(
            transport, server, Credentials(username, password), ssl_context=ssl_context, sock=sock
        )
        assert isinstance(connection, TurnClient)
        return connection

    @property
    def username(self) -> str:
        assert self.core.credentials is not None
        return self.core.credentials.username

    @property
    def password(self) -> str:
        assert self.core.credentials is not None
        return self.core.credentials.password

    @property
    def nonce(self) -> str | None:
        return self.core.nonce

    @property
    def realm(self) -> str | None:
        return self.core.realm

    @property
    def stream_bytes(self) -> int:
        """Raw bytes received on a TCP/TLS stream, padding included."""
        return self.bytes_received

    def build(
        self, method: int, message_class: MessageClass, attributes: Attributes, *, sign: bool
    ) -> tuple[TransactionId, bytes]:
        """Encode a message; signed with the long-term key when ``sign`` and we know a nonce."""
        return self.core.encode(method, message_class, attributes, sign=sign)


class _PeerDatagrams(asyncio.DatagramProtocol):
    def __init__(self, peer: UdpPeer) -> None:
        self.peer = peer

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.peer.datagrams.put_nowait((data, (str(addr[0]), int(addr[1]))))

    def error_received(self, exc: Exception) -> None:
        pass


class UdpPeer:
    """A UDP socket on the far side of the relay; ``await close()`` it."""

    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
        self._transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def bind(cls, host: str = "127.0.0.1", port: int = 0) -> UdpPeer:
        peer = cls()
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        peer._transport, _ = await loop.create_datagram_endpoint(
            lambda: _PeerDatagrams(peer), local_addr=(host, port), family=family
        )
        return peer

    @property
    def address(self) -> Address:
        assert self._transport is not None
        return self._transport.get_extra_info("sockname")[:2]  # type: ignore[no-any-return]

    def sendto(self, data: bytes, address: Address) -> None:
        assert self._transport is not None
        self._transport.sendto(data, address)

    async def receive(self, within: float = ANSWER_TIMEOUT) -> tuple[bytes, Address]:
        try:
            return await asyncio.wait_for(self.datagrams.get(), within)
        except TimeoutError:
            raise NoAnswer(f"the peer got nothing within {within} s") from None

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            await asyncio.sleep(0)
