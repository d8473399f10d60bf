"""The asyncio pump around the TURN core: listeners, relay binding, timers, usage.

``TurnEdge`` carries out the core's actions, re-arms its one timer, and hands
usage records to a sink (the ledger) every flush interval. ``stop`` ends every
allocation and flushes the last records before it returns.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import socket
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import cast

from passage.addresses import Address, Transport, format_address
from passage.endpoint import RelayAddresses
from passage.limiter import source_key
from passage.live import LiveAllocation, ThroughputSeries, TurnCounters, stats_line
from passage.meters import Histogram
from passage.turn.aio import listeners
from passage.turn.aio.fast_path import FastChannels
from passage.turn.aio.listeners import StreamClient, UdpListener
from passage.turn.aio.offload import KernelChannels
from passage.turn.aio.relay_sockets import RelayBinder, RelayProtocol
from passage.turn.allocation import Allocation, Route
from passage.turn.errors import DropReason
from passage.turn.events import (
    Action,
    AllocationEnded,
    AllocationStarted,
    BindRelay,
    FindReservation,
    FiveTuple,
    ReleaseRelay,
    SendToClient,
    SendToPeer,
)
from passage.turn.own_addresses import OwnAddresses
from passage.turn.server import TurnServer
from passage.usage import USAGE_BUFFER_RECORDS, UsageOverflow, UsageRecord, write_back

logger = logging.getLogger("passage.turn")

UsageSink = Callable[[list[UsageRecord], int], Awaitable[None]]
"""Writes a batch of records, with its sequence number in this run (from 1): a batch whose
write failed is offered again, alone and with the same number, so a sink that saw its
commit through (only the answer was lost) can tell and skip it."""

QuotaGate = Callable[[str, int, int], Awaitable[str | None]]
"""``(quota_key, held, extra)`` → None to go on binding, or why the shared quota refuses
(``passage serve --workers N``: the parent admits every worker's allocations)."""

ReservationFinder = Callable[[bytes], Awaitable[tuple[int, socket.socket] | None]]
"""``token`` → (address family, socket) of the port another worker kept for it, now this
process's; None when no worker holds it (unknown, used or expired)."""

TLS_BACKLOG = 1024
"""Connections the kernel queues on a TLS listener before the accept loop takes them."""

STATS_INTERVAL = 60.0
"""Seconds between stats log lines (only written when something changed)."""

OWN_ADDRESSES_INTERVAL = 30.0
"""Seconds between looks at the host's addresses, which no peer may use to reach our listeners."""


class TurnEdge:
    """Sockets and timers for one ``TurnServer`` core."""

    def __init__(
        self,
        core: TurnServer,
        relays: RelayAddresses,
        *,
        usage_sink: UsageSink | None = None,
        usage_interval: float = 1.0,
        usage_overflow: UsageOverflow | None = None,
        usage_buffer_records: int = USAGE_BUFFER_RECORDS,
        clock: Callable[[], float] = time.time,
        own_addresses: Callable[[], OwnAddresses] | None = None,
    ) -> None:
        """``clock`` gives the core its ``now`` (Unix seconds); tests pass their own.
        ``own_addresses`` re-reads this server's addresses (interfaces come and go).
        While the sink fails, at most ``usage_buffer_records`` records wait in memory;
        the rest, and all of them at stop, go to ``usage_overflow`` (a file) when given."""
        self.core = core
        self.clock = clock
        self.binder = RelayBinder(relays, core, random.Random(secrets.randbits(64)))
        self.usage_sink = usage_sink
        self.usage_interval = usage_interval
        self.usage_overflow = usage_overflow
        self.usage_buffer_records = usage_buffer_records
        self.throughput = ThroughputSeries()
        """Bytes relayed in the last hour, counted at each usage flush."""
        self.udp: dict[Address, UdpListener] = {}
        self.streams: dict[FiveTuple, StreamClient] = {}
        self.streams_per_source: Counter[str] = Counter()
        """Open TCP/TLS connections per source (``passage.limiter.source_key``), TLS
        handshakes in progress included."""
        self._handshakes = 0
        self._tls_listeners: list[socket.socket] = []
        self._servers: list[asyncio.Server] = []
        self._udp_transports: list[asyncio.DatagramTransport] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._usage_task: asyncio.Task[None] | None = None
        self._unsaved: list[UsageRecord] = []
        self._retry: tuple[int, list[UsageRecord]] | None = None
        """The batch whose write failed, with its sequence number: written again first."""
        self._sequence = 0
        self.flush_latency = Histogram()
        """Seconds each ledger write took, failed ones included."""
        self.flush_failures = 0
        """Ledger writes that failed (their records were kept for the next try)."""
        self._in_flight = 0
        self._flush_lock = asyncio.Lock()
        self._closing = asyncio.Event()
        self._next_stats = clock() + STATS_INTERVAL
        self._last_stats: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.stats_level = logging.INFO
        """The ``stats:`` line's level: a worker's is DEBUG, as its parent logs the sum."""
        self._own_addresses = own_addresses
        self._next_own_addresses = clock() + OWN_ADDRESSES_INTERVAL
        self.offload: KernelChannels | FastChannels | None = None
        """What mirrors the allocations' routes out of Python and meters what it relays: the
        kernel (``--offload``) or the C router (``--fast-path``); None: Python relays all."""
        self.fast_path: FastChannels | None = None
        """The C router reading the UDP sockets (:meth:`use_fast_path`), if any."""
        self.quota_gate: QuotaGate | None = None
        """Who admits each allocation besides the core, when several processes share quotas."""
        self.reservation_finder: ReservationFinder | None = None
        """Who fetches a port another process kept, for a token the core did not mint."""

    # -- lifecycle ---------------------------------------------------------

    def use_fast_path(self, fast_path: FastChannels) -> None:
        """Serve the UDP listeners and relay sockets opened from now on through the C
        router (``--fast-path``), which relays what ``allocation.routes`` allow."""
        self.fast_path = self.binder.fast_path = fast_path
        self.offload = fast_path

    async def listen_udp(self, host: str, port: int) -> Address:
        """Listen for STUN/TURN over UDP; returns the bound address."""
        return await self.adopt_udp(udp_socket(host, port))

    async def adopt_udp(self, sock: socket.socket) -> Address:
        """Listen for STUN/TURN over UDP on ``sock``, bound already (:func:`udp_socket`)."""
        loop = asyncio.get_running_loop()
        ipv6 = sock.family == socket.AF_INET6
        local = cast(Address, sock.getsockname()[:2])
        listener = UdpListener(self, local, ipv6)
        transport: asyncio.DatagramTransport
        if self.fast_path is not None:
            transport = self.fast_path.endpoint(sock, listener, relay=False)
        else:
            transport, _ = await loop.create_datagram_endpoint(lambda: listener, sock=sock)
        self._udp_transports.append(transport)
        self.udp[local] = listener
        self._start_background()
        return local

    async def listen_stream(
        self, host: str, port: int, tls: ssl.SSLContext | None = None
    ) -> Address:
        """Listen for STUN/TURN over TCP, or TLS when given a context; returns the address."""
        return await self.adopt_stream(stream_socket(host, port), tls)

    async def adopt_stream(self, sock: socket.socket, tls: ssl.SSLContext | None = None) -> Address:
        """Listen for STUN/TURN over TCP (TLS with a context) on ``sock``, a listening
        socket (:func:`stream_socket`); returns its address."""
        if tls is not None:
            return self._listen_tls(sock, tls)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: StreamClient(self, Transport.TCP), sock=sock)
        self._servers.append(server)
        self._start_background()
        return cast(Address, sock.getsockname()[:2])

    def _listen_tls(self, listener: socket.socket, tls: ssl.SSLContext) -> Address:
        """TLS: our own accept loop, so a connection counts from accept, not from its
        finished handshake (asyncio's server hands it over only then, up to 60 s later)."""
        listener.setblocking(False)
        self._tls_listeners.append(listener)
        self._spawn(self._accept_tls(listener, tls))
        self._start_background()
        return cast(Address, listener.getsockname()[:2])

    def refuse_stream(self, source: str) -> DropReason | None:
        """Why a new TCP/TLS connection from ``source`` must be closed at once, if it must."""
        if len(self.streams) + self._handshakes >= listeners.MAX_STREAMS:
            return DropReason.TOO_MANY_CONNECTIONS
        if self.streams_per_source[source] >= listeners.MAX_STREAMS_PER_SOURCE:
            return DropReason.TOO_MANY_CONNECTIONS_FROM_SOURCE
        return None

    def uncount_stream(self, source: str) -> None:
        """A TCP/TLS connection from ``source`` is gone."""
        self.streams_per_source[source] -= 1
        if self.streams_per_source[source] <= 0:
            del self.streams_per_source[source]

    async def _accept_tls(self, listener: socket.socket, tls: ssl.SSLContext) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, peer = await loop.sock_accept(listener)
            except OSError as error:  # EMFILE, ENFILE: the other listeners carry on
                if listener.fileno() == -1:  # closed: the edge is stopping
                    return
                self.core.metrics.drops[DropReason.ACCEPT_FAILED] += 1
                logger.warning("TURN over TLS: accept failed: %s", error.strerror)
                await asyncio.sleep(listeners.ACCEPT_PAUSE)
                continue
            source = source_key(peer[0])
            refused = self.refuse_stream(source)
            if refused is not None:
                self.core.metrics.drops[refused] += 1
                connection.close()
                continue
            self.streams_per_source[source] += 1
            self._handshakes += 1
            self._spawn(self._handshake(connection, source, tls))

    async def _handshake(self, connection: socket.socket, source: str, tls: ssl.SSLContext) -> None:
        """Run one TLS handshake, bounded in time; the StreamClient takes over when it is done."""
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                lambda: StreamClient(self, Transport.TLS, counted_source=source),
                connection,
                ssl=tls,
                ssl_handshake_timeout=listeners.TLS_HANDSHAKE_TIMEOUT,
            )
        except (OSError, TimeoutError):  # ssl.SSLError and ConnectionError are OSErrors
            self.core.metrics.drops[DropReason.TLS_HANDSHAKE_FAILED] += 1
            self.uncount_stream(source)
        finally:
            self._handshakes -= 1

    async def stop(self) -> None:
        """Stop listening, end every allocation, and flush all usage before returning."""
        for server in self._servers:
            server.close()
        for transport in self._udp_transports:
            transport.close()
        for listener in self._tls_listeners:
            listener.close()
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        self.execute(self.core.shutdown(self.clock()))
        for stream in list(self.streams.values()):
            stream.close()  # what it gathered this pass first
        self._closing.set()
        if self._usage_task is not None:
            await self._usage_task  # its last pass writes the shutdown records
        else:
            await self.flush_usage(final=True)
        for server in self._servers:
            await server.wait_closed()
        if self.offload is not None:
            self.offload.close()

    def _start_background(self) -> None:
        if self._usage_task is None:
            self._usage_task = asyncio.get_running_loop().create_task(self._flush_forever())
        if self._timer is None:
            self._arm_timer(self.clock() + 1.0)

    # -- carrying out actions -------------------------------------------------

    def execute(self, actions: Iterable[Action]) -> None:
        """Carry out the core's actions, in order."""
        for action in actions:
            if type(action) is SendToClient:
                self._send_to_client(action.five_tuple, action.data)
            elif type(action) is SendToPeer:
                action.relay.sendto(action.data, action.peer)
            elif type(action) is BindRelay:
                self._spawn(self._bind(action))
            elif type(action) is FindReservation:
                self._spawn(self._take_reservation(action))
            elif type(action) is ReleaseRelay:
                cast(asyncio.DatagramTransport, action.relay).close()
            elif type(action) is AllocationStarted:
                self._started(action.allocation)
            elif type(action) is AllocationEnded:
                self._ended(action.allocation, action.reason)

    def _send_to_client(self, five_tuple: FiveTuple, data: bytes) -> None:
        if five_tuple.transport is Transport.UDP:
            listener = self.udp.get(five_tuple.server)
            if listener is not None and listener.transport is not None:
                listener.transport.sendto(data, five_tuple.client)
            return
        stream = self.streams.get(five_tuple)
        if stream is not None:
            stream.write(data)

    async def _bind(self, request: BindRelay) -> None:
        five_tuple = request.five_tuple
        if self.quota_gate is not None:
            held = self.core.quota_held(request.quota_key)
            refused = await self.quota_gate(request.quota_key, held, request.units - 1)
            if refused is not None:
                self.execute(self.core.relay_quota_refused(five_tuple, refused, self.clock()))
                return
        stream = five_tuple.transport is not Transport.UDP
        routes: list[Route] = []
        reserved: Route | None = None
        try:
            for index, family in enumerate(request.families):
                route, kept = await self.binder.bind(
                    family,
                    even=request.even_port and index == 0,
                    reserve_next=request.reserve_next and index == 0,
                    dont_fragment=request.dont_fragment,
                    stream=stream,
                )
                routes.append(route)
                reserved = reserved or kept
        except OSError as error:
            logger.warning("relay bind failed for %s: %s", five_tuple.describe(), error.strerror)
            self.execute(ReleaseRelay(route[0]) for route in routes)
            self.execute(self.core.relay_bind_failed(five_tuple, self.clock()))
            return
        self.execute(self.core.relay_bound(five_tuple, routes, reserved, self.clock()))

    async def _take_reservation(self, request: FindReservation) -> None:
        """Fetch the kept port another worker holds for ``request.token`` and allocate on it."""
        five_tuple = request.five_tuple
        found = None
        if self.reservation_finder is not None:
            found = await self.reservation_finder(request.token)
        if found is None:
            self.execute(self.core.reservation_missing(five_tuple, self.clock()))
            return
        family, sock = found
        stream = five_tuple.transport is not Transport.UDP
        route = await self.binder.adopt(sock, family, stream=stream)
        self.execute(self.core.reservation_found(five_tuple, route, family, self.clock()))

    def hand_over_reservation(self, token: bytes) -> tuple[int, socket.socket] | None:
        """Give up the port kept here for ``token``, for another worker's client: (address
        family, a duplicate of its socket, the caller's to send and close); None if it is
        not kept here. This process stops reading it at once."""
        reservation = self.core.hand_over_reservation(token, self.clock())
        if reservation is None:
            return None
        transport = cast(asyncio.DatagramTransport, reservation.route[0])
        sock = cast(socket.socket, transport.get_extra_info("socket")).dup()
        transport.close()
        return reservation.family, sock

    def _started(self, allocation: Allocation) -> None:
        five_tuple = allocation.five_tuple
        writer: Callable[[bytes], None]
        if five_tuple.transport is Transport.UDP:
            listener = self.udp[five_tuple.server]
            listener.allocations[five_tuple.client] = allocation
            transport = listener.transport
            assert transport is not None
            client = five_tuple.client

            def writer(frame: bytes) -> None:
                transport.sendto(frame, client)
        else:
            stream = self.streams.get(five_tuple)
            if stream is None:  # closed while binding; client_closed already ran
                return
            stream.allocation = allocation
            writer = stream.write
        padded = five_tuple.transport is not Transport.UDP
        for relay, _ in allocation.relays.values():
            protocol = cast(RelayProtocol, cast(asyncio.DatagramTransport, relay).get_protocol())
            protocol.allocation = allocation
            protocol.to_client = writer
            protocol.stream = padded  # a reserved port may be taken over another transport
        if self.offload is not None:
            self.offload.started(allocation)
        relayed = " ".join(format_address(route[1]) for route in allocation.relays.values())
        lifetime = round(allocation.expires_at - allocation.started_at)
        logger.info(
            "allocation %s started: user=%s subject=%s client=%s relayed=%s lifetime=%ds",
            allocation.id, allocation.username, allocation.subject, five_tuple.describe(),
            relayed, lifetime,
            extra={"fields": {
                "allocation": allocation.id, "user": allocation.username,
                "subject": allocation.subject, "transport": five_tuple.transport.value,
                "client": format_address(five_tuple.client), "relayed": relayed,
                "lifetime_seconds": lifetime,
            }},
        )  # fmt: skip

    def _ended(self, allocation: Allocation, reason: str) -> None:
        five_tuple = allocation.five_tuple
        if five_tuple.transport is Transport.UDP:
            listener = self.udp.get(five_tuple.server)
            if listener is not None and listener.allocations.get(five_tuple.client) is allocation:
                del listener.allocations[five_tuple.client]
        else:
            stream = self.streams.get(five_tuple)
            if stream is not None and stream.allocation is allocation:
                stream.allocation = None
                stream.watch_idle()  # the connection may allocate again, or go
        if self.offload is not None:
            self.offload.ended(allocation)
        duration = self.clock() - allocation.started_at
        logger.info(
            "allocation %s ended (%s): user=%s client=%s after %.1fs, to peer %d B/%d pkts, "
            "from peer %d B/%d pkts, %d peers",
            allocation.id, reason, allocation.username, five_tuple.describe(), duration,
            allocation.bytes_to_peer, allocation.packets_to_peer,
            allocation.bytes_from_peer, allocation.packets_from_peer, allocation.peers_permitted,
            extra={"fields": {
                "allocation": allocation.id, "user": allocation.username,
                "subject": allocation.subject, "transport": five_tuple.transport.value,
                "client": format_address(five_tuple.client), "reason": reason,
                "duration_seconds": round(duration, 3),
                "bytes_to_peer": allocation.bytes_to_peer,
                "packets_to_peer": allocation.packets_to_peer,
                "bytes_from_peer": allocation.bytes_from_peer,
                "packets_from_peer": allocation.packets_from_peer,
                "peers": allocation.peers_permitted,
            }},
        )  # fmt: skip

    # -- what an operator sees and does ----------------------------------------

    def collect_relayed(self) -> None:
        """Bring into the allocations' meters what the kernel or the C router relayed so far:
        before the meters are read (usage, ``/metrics``, the live view)."""
        if self.offload is not None:
            self.offload.collect()
        if self.fast_path is not None and (refused := self.fast_path.refused()):
            self.core.metrics.drops[DropReason.SEND_REFUSED] += refused

    def live_allocations(self) -> list[LiveAllocation]:
        """Every allocation now, with its meters."""
        self.collect_relayed()
        return [_live(allocation) for allocation in self.core.allocations.values()]

    def end_allocation(self, allocation_id: str) -> bool:
        """End one allocation now (its final usage record goes with the next flush)."""
        actions = self.core.end_allocation(allocation_id, self.clock())
        if actions is None:
            return False
        self.execute(actions)
        logger.info("allocation %s ended by an operator", allocation_id)
        return True

    def turn_counters(self) -> TurnCounters:
        metrics = self.core.metrics
        live = Counter(a.five_tuple.transport.value for a in self.core.allocations.values())
        return TurnCounters(
            live_by_transport=dict(live),
            allocations_started=metrics.allocations_started,
            allocations_ended=metrics.allocations_ended,
            errors=dict(metrics.errors),
            drops=dict(metrics.drops),
            auth_failures=dict(metrics.auth_failures),
        )

    # -- timers and usage ----------------------------------------------------

    def _arm_timer(self, when: float) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, when - self.clock()), self._on_timer)

    def _on_timer(self) -> None:
        now = self.clock()
        self.execute(self.core.handle_timer(now))
        if self.offload is not None:
            self.offload.tick()
        if now >= self._next_stats:
            self._next_stats = now + STATS_INTERVAL
            self._log_stats()
        if self._own_addresses is not None and now >= self._next_own_addresses:
            self._next_own_addresses = now + OWN_ADDRESSES_INTERVAL
            self.core.set_own_addresses(self._own_addresses())
        when = self.core.get_timer()
        self._arm_timer(when if when is not None else now + 1.0)

    def _log_stats(self) -> None:
        """One line a minute, when anything happened: what an operator checks first."""
        metrics = self.core.metrics
        snapshot = (
            len(self.core.allocations),
            metrics.allocations_started,
            sum(metrics.drops.values()),
            sum(metrics.errors.values()),
        )
        if snapshot == self._last_stats:
            return
        self._last_stats = snapshot
        logger.log(self.stats_level, "%s", stats_line(self.turn_counters()))
        if self.offload is not None:
            logger.info("%s", self.offload.stats_line())

    async def _flush_forever(self) -> None:
        """Flush every interval until ``stop``; the last pass runs after shutdown."""
        while True:
            closing = self._closing.is_set()  # read before flushing: a stop mid-flush gets one more
            await self.flush_usage(final=closing)
            if closing:
                return
            try:
                await asyncio.wait_for(self._closing.wait(), self.usage_interval)
            except TimeoutError:
                pass

    async def flush_usage(self, *, final: bool = False) -> None:
        """Hand new usage records to the sink; keep them for the next try if it fails.

        What a spill holds goes first. While the sink fails, records past
        ``usage_buffer_records`` (all of them when ``final``: the process stops) go to
        the spill, so that memory stays bounded and a restart loses none.
        """
        self.collect_relayed()  # bytes relayed outside Python into the meters, before the records
        now = self.clock()
        records = self.core.collect_usage(now)
        self.throughput.add(
            sum(record.bytes_to_peer for record in records),
            sum(record.bytes_from_peer for record in records),
            now,
        )
        if self.usage_sink is None:
            return
        self._unsaved += records
        async with self._flush_lock:  # a reload or a drain flushes beside the timer
            if not await self._write_spilled() or not await self._write_unsaved():
                self._spill_unsaved(final=final)

    async def _write_unsaved(self) -> bool:
        """The failed batch again, then the new records as one batch; False at a failure."""
        if self._retry is not None:  # the failed batch first, alone, under its number
            sequence, batch = self._retry
            if not await self._write(sequence, batch):
                return False
            self._retry = None
        if not self._unsaved:
            return True
        batch, self._unsaved = self._unsaved, []
        self._sequence += 1
        if not await self._write(self._sequence, batch):
            self._retry = (self._sequence, batch)
            return False
        return True

    async def _write_spilled(self) -> bool:
        """Write the spill back into the ledger, before anything newer, :data:`REPLAY_BATCHES`
        at a time; False if it failed or more is left."""
        try:
            return await write_back(
                self.usage_overflow, time.perf_counter, self.flush_latency.observe
            )
        except Exception:
            self.flush_failures += 1
            logger.warning(
                "usage ledger still unreachable; %d records wait in the spill",
                self.usage_overflow.records if self.usage_overflow else 0, exc_info=True,
            )  # fmt: skip
            return False

    def _spill_unsaved(self, *, final: bool) -> None:
        """Past the memory bound (or at stop), move the records kept in memory to the
        spill, oldest first, each batch under the number it has or gets now."""
        overflow = self.usage_overflow
        if overflow is None or not (final or self.unsaved_records > self.usage_buffer_records):
            return
        moved = self.unsaved_records
        why = "stopping" if final else f"over --usage-buffer-records {self.usage_buffer_records}"
        try:
            if self._retry is not None:
                overflow.append(*self._retry)
                self._retry = None
            if self._unsaved:
                self._sequence += 1
                overflow.append(self._sequence, self._unsaved)
                self._unsaved = []
        except OSError:
            logger.exception(
                "usage spill could not be written; %d usage records stay in memory",
                self.unsaved_records,
            )
            return
        logger.warning(
            "usage ledger unreachable (or still writing the spill back): %d usage records moved "
            "from memory to the spill file "
            "(%s; %d records wait there); they are written when the store is back",
            moved, why, overflow.records,
        )  # fmt: skip

    async def _write(self, sequence: int, batch: list[UsageRecord]) -> bool:
        assert self.usage_sink is not None
        started = time.perf_counter()
        self._in_flight = len(batch)
        try:
            await self.usage_sink(batch, sequence)
        except Exception:
            self.flush_failures += 1
            logger.exception("usage ledger write failed; %d records kept for retry", len(batch))
            return False
        finally:
            self._in_flight = 0
            self.flush_latency.observe(time.perf_counter() - started)
        return True

    @property
    def unsaved_records(self) -> int:
        """Usage records waiting for the ledger (a write failed, or one is under way)."""
        retry = len(self._retry[1]) if self._retry is not None else 0
        return len(self._unsaved) + retry + (self._in_flight if self._retry is None else 0)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _live(allocation: Allocation) -> LiveAllocation:
    return LiveAllocation(
        id=allocation.id,
        username=allocation.username,
        subject=allocation.subject,
        transport=allocation.five_tuple.transport.value,
        client=format_address(allocation.five_tuple.client),
        relayed=tuple(format_address(route[1]) for route in allocation.relays.values()),
        peers=tuple(sorted(allocation.permissions)),
        channels=len(allocation.bindings),
        bytes_to_peer=allocation.bytes_to_peer,
        bytes_from_peer=allocation.bytes_from_peer,
        packets_to_peer=allocation.packets_to_peer,
        packets_from_peer=allocation.packets_from_peer,
        started_at=allocation.started_at,
        expires_at=allocation.expires_at,
    )


def udp_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A UDP socket bound to ``(host, port)`` for STUN/TURN, with 4 MB buffers.

    ``reuse_port``: one of several (one per worker) that share the port, the kernel
    keeping each client's 5-tuple on one of them (``SO_REUSEPORT``).
    """
    ipv6 = ":" in host
    sock = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if ipv6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        sock.bind((host, port))
    except OSError:
        sock.close()  # a port in use must not leak the socket
        raise
    return sock


def stream_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on ``(host, port)`` for STUN/TURN over TCP or TLS
    (``reuse_port`` as in :func:`udp_socket`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server(
        (host, port), family=family, backlog=TLS_BACKLOG, reuse_port=reuse_port
    )
