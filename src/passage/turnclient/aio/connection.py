"""The asyncio adapter of :class:`~passage.turnclient.TurnClientCore`: one socket, one core.

:meth:`TurnConnection.open` connects over UDP, TCP or TLS and returns a
connection whose coroutines (:meth:`~TurnConnection.request`,
:meth:`~TurnConnection.allocate`, ...) return the final answer of a request
or raise :class:`NoAnswer`. Relayed data goes to ``on_relayed`` when set (with
the loop time it arrived at, for measurements), else waits in a queue for
:meth:`~TurnConnection.receive`.

The adapter is a pump: what arrives goes to the core (framed by
:class:`~passage.stun.StreamFramer` on a stream), what the core wants sent is
written, and one timer is kept armed at the core's :meth:`get_timer`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Callable, Sequence

from passage.addresses import Address, Transport
from passage.stun import (
    AttributeValue,
    Message,
    MessageClass,
    Method,
    StreamFramer,
    StunDecodeError,
)
from passage.turnclient.client import (
    Answered,
    Attributes,
    Credentials,
    Event,
    Relayed,
    RequestId,
    TurnClientCore,
    relayed_addresses,
    try_alternate,
)

__all__ = ["ANSWER_TIMEOUT", "MAX_REDIRECTS", "NoAnswer", "TurnConnection", "open_allocated"]

MAX_REDIRECTS = 3
"""Alternate servers :func:`open_allocated` follows at most, one after another."""

ANSWER_TIMEOUT = 3.0
"""Seconds a request waits for its answer unless told otherwise."""

CLOSE_TIMEOUT = 5.0
"""Seconds :meth:`TurnConnection.close` waits for a stream to finish closing."""


class NoAnswer(Exception):
    """The server sent nothing (valid) back in time."""


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, connection: TurnConnection) -> None:
        self.connection = connection

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.connection._received(data)

    def error_received(self, exc: Exception) -> None:
        # An ICMP error (port unreachable: nothing listens). Requests still time
        # out, as they would had the packet been lost; the error says why.
        if isinstance(exc, OSError):
            self.connection.last_error = exc


class _Stream(asyncio.Protocol):
    def __init__(self, connection: TurnConnection) -> None:
        self.connection = connection
        self.framer = StreamFramer()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        connection = self.connection
        connection.bytes_received += len(data)
        try:
            frames = self.framer.feed(data)
        except StunDecodeError:
            # Bytes that are neither STUN nor ChannelData: the stream can no longer be read.
            connection.stream_broken = True
            connection.transport_close()
            return
        for frame in frames:
            connection._received(frame, count=False)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class TurnConnection:
    """One client 5-tuple to a TURN server. Build it with :meth:`open`; ``await close()`` it."""

    def __init__(self, core: TurnClientCore) -> None:
        self.core = core
        self.relayed: Address | None = None
        """The first XOR-RELAYED-ADDRESS of the last successful Allocate."""
        self.on_relayed: Callable[[Relayed, float], None] | None = None
        """Called with relayed data and the loop time it arrived; None: :meth:`receive` it."""
        self.bytes_received = 0
        """Raw bytes received, framing and padding included."""
        self.stream_broken = False
        """The server sent bytes that are neither STUN nor ChannelData on the stream."""
        self.last_error: OSError | None = None
        """The last ICMP error reported on the UDP socket (e.g. connection refused)."""
        self.incoming: asyncio.Queue[Relayed] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._waiting: dict[RequestId, asyncio.Future[Message]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._stream: _Stream | None = None

    @classmethod
    async def open(
        cls,
        transport: Transport | str,
        server: Address,
        credentials: Credentials | None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        sock: socket.socket | None = None,
        connect_within: float | None = None,
    ) -> TurnConnection:
        """Connect to ``server`` (an IP address and port) over ``transport``.

        ``sock``, a socket of the right type, is used instead of a new one (the
        NAT lab makes them inside a network namespace); it may be connected to
        ``server`` already (``passage doctor`` times the TCP connect apart). TLS
        checks the certificate against ``server_hostname`` (default: the
        server's IP). ``connect_within`` (seconds) bounds the connect and the TLS handshake;
        OSError (ssl.SSLError among them) and TimeoutError say why it failed.
        """
        transport = Transport(transport)
        if transport is Transport.TLS and ssl_context is None:
            raise ValueError("TLS needs an ssl_context")
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        kind = socket.SOCK_DGRAM if transport is Transport.UDP else socket.SOCK_STREAM
        sock = sock if sock is not None else socket.socket(family, kind)
        core = TurnClientCore(
            credentials, reliable=transport is not Transport.UDP, random_bytes=os.urandom
        )
        connection = cls(core)
        try:
            await asyncio.wait_for(
                connection._connect(transport, sock, server, ssl_context, server_hostname),
                connect_within,
            )
        except BaseException:
            sock.close()
            raise
        return connection

    async def _connect(
        self,
        transport: Transport,
        sock: socket.socket,
        server: Address,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
    ) -> None:
        sock.setblocking(False)
        try:
            sock.getpeername()  # the caller connected it already
        except OSError:
            await self._loop.sock_connect(sock, server)
        if transport is Transport.UDP:
            self._transport, _ = await self._loop.create_datagram_endpoint(
                lambda: _Datagrams(self), sock=sock
            )
            return
        tls = ssl_context if transport is Transport.TLS else None
        self._transport, self._stream = await self._loop.create_connection(
            lambda: _Stream(self), sock=sock, ssl=tls,
            server_hostname=(server_hostname or server[0]) if tls else None,
        )  # fmt: skip

    @property
    def local(self) -> Address:
        """This end's address and port."""
        assert self._transport is not None
        name = self._transport.get_extra_info("sockname")
        return str(name[0]), int(name[1])

    @property
    def stream(self) -> bool:
        """True over TCP and TLS."""
        return self.core.reliable

    # -- requests ---------------------------------------------------------------

    async def request(
        self,
        method: int,
        attributes: Attributes = (),
        *,
        sign: bool = True,
        retry: bool = True,
        within: float = ANSWER_TIMEOUT,
    ) -> Message:
        """Send a request; return its final answer (see :meth:`TurnClientCore.request`)."""
        request_id = self.core.request(
            method, attributes, self._loop.time(), timeout=within, sign=sign, retry=retry
        )
        return await self._answer(request_id)

    async def transact(
        self,
        transaction_id: bytes,
        data: bytes,
        within: float = ANSWER_TIMEOUT,
        *,
        retransmit: bool = True,
    ) -> Message:
        """Send a request encoded by the caller; return the answer with its transaction ID."""
        request_id = self.core.transact(
            transaction_id, data, self._loop.time(), timeout=within, retransmit=retransmit
        )
        return await self._answer(request_id)

    async def binding(self, within: float = ANSWER_TIMEOUT) -> Message:
        """A STUN Binding request, unauthenticated (RFC 8489 §3)."""
        return await self.request(Method.BINDING, sign=False, within=within)

    async def allocate(
        self,
        *attributes: tuple[int, AttributeValue],
        retry: bool = True,
        within: float = ANSWER_TIMEOUT,
    ) -> Message:
        """Allocate a UDP relay; a success sets :attr:`relayed`."""
        request_id = self.core.allocate(
            self._loop.time(), timeout=within, attributes=attributes, retry=retry
        )
        answer = await self._answer(request_id)
        if answer.message_class is MessageClass.SUCCESS:
            self.relayed = relayed_addresses(answer)[0]
        return answer

    async def refresh(self, lifetime: int, within: float = ANSWER_TIMEOUT) -> Message:
        """Refresh the allocation; lifetime 0 deletes it and clears :attr:`relayed`."""
        answer = await self._answer(self.core.refresh(lifetime, self._loop.time(), timeout=within))
        if lifetime == 0 and answer.message_class is MessageClass.SUCCESS:
            self.relayed = None
        return answer

    async def create_permission(self, *peers: Address, within: float = ANSWER_TIMEOUT) -> Message:
        request_id = self.core.create_permission(peers, self._loop.time(), timeout=within)
        return await self._answer(request_id)

    async def channel_bind(
        self, channel: int, peer: Address, within: float = ANSWER_TIMEOUT
    ) -> Message:
        request_id = self.core.channel_bind(channel, peer, self._loop.time(), timeout=within)
        return await self._answer(request_id)

    # -- data ---------------------------------------------------------------------

    def send_indication(self, peer: Address, data: bytes) -> None:
        """Ask the relay to send ``data`` to ``peer`` (RFC 8656 §10.1); no answer comes."""
        self.send_raw(self.core.send_indication(peer, data))

    def send_channel_data(self, channel: int, data: bytes) -> None:
        self.send_raw(self.core.channel_data(channel, data))

    def send_raw(self, data: bytes) -> None:
        """Put ``data`` on the wire as it is."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self.stream:
            transport.write(data)  # type: ignore[attr-defined]
        else:
            transport.sendto(data)  # type: ignore[attr-defined]

    async def receive(self, within: float = ANSWER_TIMEOUT) -> Relayed:
        """The next relayed data (when :attr:`on_relayed` is not set)."""
        try:
            return await asyncio.wait_for(self.incoming.get(), within)
        except TimeoutError:
            raise NoAnswer(f"nothing relayed within {within} s") from None

    # -- closing --------------------------------------------------------------------

    async def close(self, *, release: bool = True) -> None:
        """Delete the allocation (Refresh, lifetime 0) unless told not to; close the socket."""
        if release and self.relayed is not None and not self.stream_broken:
            try:
                await self.refresh(0, within=1.0)
            except NoAnswer:
                pass
        self.transport_close()
        if self._stream is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._stream.lost), CLOSE_TIMEOUT)
            except TimeoutError:
                pass
        else:
            await asyncio.sleep(0)  # let the transport run its close callback
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(NoAnswer("the connection is closed"))

    def transport_close(self) -> None:
        """Close the socket now; requests still waiting then time out."""
        if self._transport is not None:
            self._transport.close()

    # -- the pump -------------------------------------------------------------------

    async def _answer(self, request_id: RequestId) -> Message:
        future: asyncio.Future[Message] = self._loop.create_future()
        self._waiting[request_id] = future
        self._flush()
        try:
            return await future
        finally:
            self._waiting.pop(request_id, None)

    def _received(self, data: bytes, *, count: bool = True) -> None:
        if count:
            self.bytes_received += len(data)
        now = self._loop.time()
        self._dispatch(self.core.receive(data, now), now)
        self._flush()

    def _on_timer(self) -> None:
        self._timer = None
        now = self._loop.time()
        self._dispatch(self.core.handle_timer(now), now)
        self._flush()

    def _dispatch(self, events: Sequence[Event], now: float) -> None:
        for event in events:
            if isinstance(event, Relayed):
                if self.on_relayed is not None:
                    self.on_relayed(event, now)
                else:
                    self.incoming.put_nowait(event)
                continue
            future = self._waiting.get(event.request)
            if future is None or future.done():
                continue
            if isinstance(event, Answered):
                future.set_result(event.message)
            else:
                future.set_exception(NoAnswer(f"no answer ({event.reason})"))

    def _flush(self) -> None:
        for data in self.core.data_to_send():
            self.send_raw(data)
        when = self.core.get_timer()
        if self._timer is not None and (when is None or self._timer.when() != when):
            self._timer.cancel()
            self._timer = None
        if when is not None and self._timer is None:
            self._timer = self._loop.call_at(when, self._on_timer)


async def open_allocated(
    transport: Transport | str,
    server: Address,
    credentials: Credentials,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    within: float = ANSWER_TIMEOUT,
    max_redirects: int = MAX_REDIRECTS,
) -> tuple[TurnConnection, Message]:
    """Connect to ``server`` and allocate, following 300 Try Alternate (RFC 8489 §10): a
    draining server names another, and the Allocate goes there over the same transport,
    its certificate checked against ALTERNATE-DOMAIN when given, else the name used so far.

    Follows at most ``max_redirects`` alternates, never one already tried (no loop).
    Returns the connection that holds the last answer, a success or a final error (a 300
    that is not followed included); raises :class:`NoAnswer` or OSError as
    :meth:`TurnConnection.open` and :meth:`TurnConnection.allocate` do.
    """
    tried = {server}
    while True:
        connection = await TurnConnection.open(
            transport, server, credentials,
            ssl_context=ssl_context, server_hostname=server_hostname,
        )  # fmt: skip
        try:
            answer = await connection.allocate(within=within)
        except BaseException:
            await connection.close(release=False)
            raise
        alternate = try_alternate(answer)
        if alternate is None or alternate.server in tried or len(tried) > max_redirects:
            return connection, answer
        await connection.close(release=False)
        tried.add(alternate.server)
        server = alternate.server
        server_hostname = alternate.domain or server_hostname or None
