"""A small TURN client for tests: the ``passage.stun`` codec on real asyncio sockets.

It talks UDP, TCP or TLS to a real server. Requests are matched to their answers
by transaction ID; the long-term credential dance (unsigned request → 401 with
REALM and NONCE → the same request signed, and 438 → a fresh nonce) happens in
:meth:`TurnClient.request`. Everything else the server sends (ChannelData, Data
indications) waits in a queue for :meth:`TurnClient.receive`.

:class:`UdpPeer` plays the peer on the far side of the relay.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from passage.stun import (
    Address,
    AttributeType,
    AttributeValue,
    ErrorCodeValue,
    Message,
    MessageClass,
    Method,
    StreamFramer,
    StunDecodeError,
    TransactionId,
    decode_channel_data,
    decode_message,
    encode_channel_data,
    encode_message,
    long_term_key,
)

Attributes = Sequence[tuple[int, AttributeValue]]

UDP = 17
"""REQUESTED-TRANSPORT for a UDP relay (RFC 8656 §14.7)."""

ANSWER_TIMEOUT = 3.0
"""Seconds to wait for an answer on loopback before deciding there is none."""

RTO = 0.5
"""First UDP retransmission timeout (RFC 8489 §6.2.1)."""


class NoAnswer(Exception):
    """The server sent nothing back in time."""


def error_code(message: Message) -> int | None:
    """The ERROR-CODE of an answer, or None for a success."""
    value = message.get(AttributeType.ERROR_CODE, ErrorCodeValue)
    return None if value is None else value.code


def relayed_addresses(message: Message) -> list[Address]:
    """Every XOR-RELAYED-ADDRESS of an Allocate success, in order."""
    return [
        value  # type: ignore[misc]
        for kind, value in message.attributes
        if kind == AttributeType.XOR_RELAYED_ADDRESS
    ]


@dataclass(frozen=True)
class Received:
    """Application data relayed to the client: by ChannelData or by Data indication."""

    data: bytes
    channel: int | None = None
    """The channel of ChannelData; None for a Data indication."""
    peer: Address | None = None
    """The XOR-PEER-ADDRESS of a Data indication; None for ChannelData."""


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, deliver: Callable[[bytes], None]) -> None:
        self.deliver = deliver

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.deliver(data)

    def error_received(self, exc: Exception) -> None:
        pass


class _Stream(asyncio.Protocol):
    def __init__(self, client: TurnClient) -> None:
        self.client = client
        self.framer = StreamFramer()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.client.stream_bytes += len(data)
        try:
            frames = self.framer.feed(data)
        except StunDecodeError:
            # The server broke the framing: note it, and stop reading this stream.
            self.client.stream_broken = True
            assert self.client._transport is not None
            self.client._transport.close()
            return
        for frame in frames:
            self.client._deliver(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class TurnClient:
    """One TURN client 5-tuple. Build it with :meth:`connect`; ``await close()`` it."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.realm: str | None = None
        self.nonce: str | None = None
        self.relayed: Address | None = None
        """The first XOR-RELAYED-ADDRESS of the last successful Allocate."""
        self.stream = False
        self.stream_bytes = 0
        """Raw bytes received on a TCP/TLS stream, padding included."""
        self.stream_broken = False
        """The server sent bytes that are neither STUN nor ChannelData on the stream."""
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self._waiting: dict[bytes, asyncio.Future[Message]] = {}
        self._transport: asyncio.BaseTransport | None = None
        self._stream_protocol: _Stream | None = None

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
        client = cls(username, password)
        loop = asyncio.get_running_loop()
        if sock is not None:
            sock.setblocking(False)
            await loop.sock_connect(sock, server)
        if transport == "udp":
            family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
            where = {"sock": sock} if sock else {"remote_addr": server, "family": family}
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(client._deliver), **where
            )
            client._transport = udp
        else:
            client.stream = True
            tls = ssl_context if transport == "tls" else None
            if sock is not None:
                stream, protocol = await loop.create_connection(
                    lambda: _Stream(client), sock=sock, ssl=tls,
                    server_hostname=server[0] if tls else None,
                )  # fmt: skip
            else:
                stream, protocol = await loop.create_connection(
                    lambda: _Stream(client), server[0], server[1], ssl=tls
                )
            client._transport = stream
            client._stream_protocol = protocol
        return client

    @property
    def local(self) -> Address:
        assert self._transport is not None
        return self._transport.get_extra_info("sockname")[:2]  # type: ignore[no-any-return]

    async def close(self, *, release: bool = True) -> None:
        """Delete the allocation (Refresh, lifetime 0) unless told not to; close the socket."""
        if release and self.relayed is not None:
            try:
                await self.refresh(0, within=1.0)
            except NoAnswer:
                pass
        if self._transport is not None:
            self._transport.close()
            if self._stream_protocol is not None:
                await asyncio.wait_for(self._stream_protocol.lost, 5.0)
            else:
                await asyncio.sleep(0)  # let the transport run its close callback

    # -- sending ---------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        """Put ``data`` on the wire as it is."""
        transport = self._transport
        assert transport is not None
        if self.stream:
            transport.write(data)  # type: ignore[attr-defined]
        else:
            transport.sendto(data)  # type: ignore[attr-defined]

    def build(
        self, method: int, message_class: MessageClass, attributes: Attributes, *, sign: bool
    ) -> tuple[TransactionId, bytes]:
        """Encode a message; signed with the long-term key when ``sign`` and we know a nonce."""
        transaction_id = TransactionId(os.urandom(12))
        attributes = list(attributes)
        key = None
        if sign and self.nonce is not None and self.realm is not None:
            attributes += [
                (AttributeType.USERNAME, self.username),
                (AttributeType.REALM, self.realm),
                (AttributeType.NONCE, self.nonce),
            ]
            key = long_term_key(self.username, self.realm, self.password)
        message = Message(method, message_class, transaction_id, tuple(attributes))
        return transaction_id, encode_message(message, integrity_key=key, fingerprint=True)

    async def transact(
        self, transaction_id: bytes, data: bytes, within: float = ANSWER_TIMEOUT
    ) -> Message:
        """Send an encoded request and return the answer with its transaction ID.

        Over UDP the request is retransmitted as RFC 8489 §6.2.1 says (RTO 0.5 s,
        doubling) until ``within`` seconds have passed.
        """
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Message] = loop.create_future()
        self._waiting[transaction_id] = answer
        deadline = loop.time() + within
        rto = RTO
        try:
            while True:
                self.send_raw(data)
                wait = deadline - loop.time() if self.stream else min(rto, deadline - loop.time())
                try:
                    return await asyncio.wait_for(asyncio.shield(answer), max(wait, 0.0))
                except TimeoutError:
                    if loop.time() >= deadline:
                        raise NoAnswer(f"no answer within {within} s") from None
                rto *= 2
        finally:
            self._waiting.pop(transaction_id, None)
            answer.cancel()

    async def request(
        self,
        method: int,
        attributes: Attributes = (),
        *,
        sign: bool = True,
        retry: bool = True,
        within: float = ANSWER_TIMEOUT,
    ) -> Message:
        """Send a request and return the final answer.

        With ``sign``, an unsigned first try that earns 401, and any try that
        earns 438, is repeated signed with the REALM and NONCE just received
        (``retry=False`` returns the 401/438 instead). A 401 to a signed request
        is returned: the credentials are wrong.
        """
        for _ in range(4):
            signed = sign and self.nonce is not None
            transaction_id, data = self.build(method, MessageClass.REQUEST, attributes, sign=sign)
            answer = await self.transact(transaction_id, data, within)
            code = error_code(answer)
            nonce = answer.get(AttributeType.NONCE, str)
            if code in (401, 438) and nonce is not None:
                self.nonce = nonce
                self.realm = answer.get(AttributeType.REALM, str) or self.realm
                if sign and retry and (code == 438 or not signed):
                    continue
            return answer
        raise AssertionError("the server kept challenging")

    async def binding(self, within: float = ANSWER_TIMEOUT) -> Message:
        """A STUN Binding request, unauthenticated."""
        return await self.request(Method.BINDING, sign=False, within=within)

    async def allocate(
        self,
        *attributes: tuple[int, AttributeValue],
        retry: bool = True,
        within: float = ANSWER_TIMEOUT,
    ) -> Message:
        """Allocate a UDP relay; remembers the relayed address of a success."""
        attributes = ((AttributeType.REQUESTED_TRANSPORT, UDP), *attributes)
        answer = await self.request(Method.ALLOCATE, attributes, retry=retry, within=within)
        if answer.message_class is MessageClass.SUCCESS:
            self.relayed = relayed_addresses(answer)[0]
        return answer

    async def refresh(self, lifetime: int, within: float = ANSWER_TIMEOUT) -> Message:
        answer = await self.request(
            Method.REFRESH, [(AttributeType.LIFETIME, lifetime)], within=within
        )
        if lifetime == 0 and answer.message_class is MessageClass.SUCCESS:
            self.relayed = None
        return answer

    async def create_permission(self, *peers: Address) -> Message:
        attributes = [(AttributeType.XOR_PEER_ADDRESS, peer) for peer in peers]
        return await self.request(Method.CREATE_PERMISSION, attributes)

    async def channel_bind(self, channel: int, peer: Address) -> Message:
        attributes = [
            (AttributeType.CHANNEL_NUMBER, channel),
            (AttributeType.XOR_PEER_ADDRESS, peer),
        ]
        return await self.request(Method.CHANNEL_BIND, attributes)

    def send_indication(self, peer: Address, data: bytes) -> None:
        """Ask the relay to send ``data`` to ``peer`` (RFC 8656 §10.1); no answer comes."""
        attributes = [(AttributeType.XOR_PEER_ADDRESS, peer), (AttributeType.DATA, data)]
        _, encoded = self.build(Method.SEND, MessageClass.INDICATION, attributes, sign=False)
        self.send_raw(encoded)

    def send_channel_data(self, channel: int, data: bytes) -> None:
        """ChannelData, padded to 4 bytes on a stream (RFC 8656 §12.5)."""
        self.send_raw(encode_channel_data(channel, data, pad=self.stream))

    # -- receiving ---------------------------------------------------------------

    async def receive(self, within: float = ANSWER_TIMEOUT) -> Received:
        """The next ChannelData or Data indication from the relay."""
        try:
            frame = await asyncio.wait_for(self.incoming.get(), within)
        except TimeoutError:
            raise NoAnswer(f"nothing relayed within {within} s") from None
        if 0x40 <= frame[0] <= 0x7F:
            channel, data = decode_channel_data(frame)
            return Received(data, channel=channel)
        message = decode_message(frame)
        assert (message.method, message.message_class) == (Method.DATA, MessageClass.INDICATION)
        peer = message.get(AttributeType.XOR_PEER_ADDRESS, tuple)
        data = message.get(AttributeType.DATA, bytes)
        assert peer is not None and data is not None
        return Received(data, peer=peer)  # type: ignore[arg-type]

    def _deliver(self, frame: bytes) -> None:
        if not frame:
            return
        if 0x40 <= frame[0] <= 0x7F:
            self.incoming.put_nowait(frame)
            return
        try:
            message = decode_message(frame)
        except StunDecodeError:
            return
        if message.message_class is MessageClass.INDICATION:
            self.incoming.put_nowait(frame)
            return
        waiting = self._waiting.get(message.transaction_id)
        if waiting is not None and not waiting.done():
            waiting.set_result(message)


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

        def deliver(data: bytes, addr: tuple[str | int, ...]) -> None:
            peer.datagrams.put_nowait((data, (str(addr[0]), int(addr[1]))))

        protocol = _Datagrams(lambda data: None)
        protocol.datagram_received = deliver  # type: ignore[method-assign]
        peer._transport, _ = await loop.create_datagram_endpoint(
            lambda: protocol, local_addr=(host, port), family=family
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
