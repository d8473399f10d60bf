"""The TURN adapter's side of the compiled hot path (``passage serve --fast-path``).

With the extension built (:mod:`passage.turn.fastpath`), the UDP listening
sockets and the relay sockets are not asyncio transports but
:class:`FastDatagramTransport`\\ s: one C :class:`Router` reads them in batches
(``recvmmsg``), relays ChannelData on a live route itself, client → peer and
peer → client (``sendmmsg``), and hands every other datagram, in order, to the
same ``datagram_received`` the asyncio transport would have called. No Python
runs for a relayed packet, and the event loop wakes once per batch.

:class:`FastChannels` keeps the router's routes equal to ``allocation.routes``
(a channel whose binding and permission are alive, RFC 8656 §12) through the
hooks the XDP offload uses (:class:`passage.turn.aio.offload.KernelChannels`):
after each STUN request of a UDP client, after the expiry sweep, at an
allocation's end; and it adds the router's per-allocation meters to the
allocations' before every usage collection (an ended allocation's at once), so
the ledger, the end log line and ``/metrics`` count every byte exactly once. An
allocation with a bandwidth cap (``--max-bps``, reloads included) gets no route:
its packets go through Python, which charges the budget.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from passage.addresses import Address, Transport
from passage.turn.allocation import Allocation
from passage.turn.fastpath import Router, available

logger = logging.getLogger("passage.turn")

FAST_PATH_MODES = ("auto", "on", "off")

RouteArguments = tuple[int, int, Address, int, Address, int]
"""``Router.add``'s arguments: meter slot, listening fd, client, relay fd, peer, channel."""


class FastPathUnavailable(Exception):
    """``--fast-path on`` on an install without the compiled extension."""


class FastDatagramTransport(asyncio.DatagramTransport):
    """A UDP socket the router reads; Python sends on it as through asyncio's transport.

    ``sendto`` sends at once and queues what the socket's buffer refuses until it
    drains, as asyncio's datagram transport does; other send errors go to the
    protocol's ``error_received``.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: asyncio.DatagramProtocol,
        router: Router,
        *,
        relay: bool,
    ) -> None:
        super().__init__()
        self._loop = loop
        self._sock = sock
        self._protocol = protocol
        self._router = router
        self.fd = sock.fileno()
        self._queue: collections.deque[tuple[bytes, Address]] = collections.deque()
        self._closing = False
        sock.setblocking(False)
        router.watch(self.fd, relay, protocol.datagram_received)
        loop.add_reader(self.fd, router.read, self.fd)
        protocol.connection_made(self)

    def sendto(self, data: Any, addr: Any = None) -> None:
        if self._closing:
            return
        if self._queue:
            self._queue.append((bytes(data), addr))
            return
        try:
            self._sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self._queue.append((bytes(data), addr))
            self._loop.add_writer(self.fd, self._drain)
        except OSError as exc:
            self._protocol.error_received(exc)

    def _drain(self) -> None:
        while self._queue:
            data, addr = self._queue[0]
            try:
                self._sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)
            self._queue.popleft()
        self._loop.remove_writer(self.fd)

    def get_write_buffer_size(self) -> int:
        return sum(len(data) for data, _ in self._queue)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self._sock
        if name == "sockname":
            return self._sock.getsockname() if not self._closing else default
        return default

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Stop reading now (the router forgets this socket's routes); close the socket on
        the loop's next turn, as asyncio does, so its number is not reused before then."""
        if self._closing:
            return
        self._closing = True
        self._router.unwatch(self.fd)
        self._loop.remove_reader(self.fd)
        if self._queue:
            self._loop.remove_writer(self.fd)
            self._queue.clear()
        self._loop.call_soon(self._connection_lost)

    def abort(self) -> None:
        self.close()

    def _connection_lost(self) -> None:
        try:
            self._protocol.connection_lost(None)
        finally:
            self._sock.close()


@dataclass(slots=True)
class FastChannels:
    """The router of one edge, and the routes of its UDP allocations in it."""

    router: Router
    capped: Callable[[], bool]
    """Whether allocations are capped now (``--max-bps``): then no route goes to C."""
    _listeners: dict[Address, int] = field(default_factory=dict)
    """Listening address → its socket's descriptor."""
    _installed: dict[str, set[RouteArguments]] = field(default_factory=dict)
    _live: dict[str, Allocation] = field(default_factory=dict)
    _slots: dict[str, int] = field(default_factory=dict)
    _owners: dict[int, str] = field(default_factory=dict)
    _free: list[int] = field(default_factory=list)
    _refused_seen: int = 0

    def endpoint(
        self, sock: socket.socket, protocol: asyncio.DatagramProtocol, *, relay: bool
    ) -> FastDatagramTransport:
        """Serve ``sock`` (a bound UDP socket) through the router, ``protocol`` getting
        what it does not relay."""
        loop = asyncio.get_running_loop()
        transport = FastDatagramTransport(loop, sock, protocol, self.router, relay=relay)
        if not relay:
            self._listeners[sock.getsockname()[:2]] = transport.fd
        return transport

    # -- the hooks KernelChannels has too ---------------------------------------

    def request_done(self, allocation: Allocation | None) -> None:
        """A STUN request of ``allocation``'s client was answered: follow its routes."""
        if allocation is not None and allocation.id in self._live:
            self._sync(allocation)

    def started(self, allocation: Allocation) -> None:
        if allocation.five_tuple.transport is Transport.UDP:
            self._live[allocation.id] = allocation

    def tick(self) -> None:
        """After the expiry sweep (and a reload): drop expired and capped routes."""
        for allocation in list(self._live.values()):
            self._sync(allocation)

    def ended(self, allocation: Allocation) -> None:
        """``allocation`` is over: its routes leave the router and its last counts go into
        its meters now, so its end log line and final usage record have every byte."""
        if self._live.pop(allocation.id, None) is None:
            return
        for route in self._installed.pop(allocation.id, ()):
            self.router.remove(*route)
        if allocation.id in self._slots:
            slot = self._slots.pop(allocation.id)
            del self._owners[slot]
            _add(allocation, self.router.take_meter(slot))
            self._free.append(slot)

    def collect(self) -> None:
        """Add what the router relayed since the last call to each allocation's meters."""
        for slot, *meter in self.router.take_meters():
            _add(self._live[self._owners[slot]], meter)

    def refused(self) -> int:
        """Datagrams the kernel refused to the router's sends since the last call: dropped,
        not metered (``passage_turn_drops_total{reason="send_refused"}``)."""
        errors = self.router.counters()[2]
        new, self._refused_seen = errors - self._refused_seen, errors
        return new

    def stats_line(self) -> str:
        to_peer, from_peer, send_errors, handed_up = self.router.counters()
        return (
            f"fast path: {to_peer + from_peer} packets relayed in C ({to_peer} to peers, "
            f"{from_peer} from peers), {send_errors} refused by the kernel, {handed_up} "
            "handed to Python"
        )

    def close(self) -> None:
        pass  # the transports unwatch their sockets as the edge closes them

    # -- routes -----------------------------------------------------------------

    def _sync(self, allocation: Allocation) -> None:
        if allocation.five_tuple.transport is not Transport.UDP:
            return
        self._live[allocation.id] = allocation
        wanted = set() if self.capped() else set(self._routes(allocation))
        installed = self._installed.get(allocation.id, set())
        for route in installed - wanted:
            self.router.remove(*route)
        for route in wanted - installed:
            self.router.add(*route)
        if wanted:
            self._installed[allocation.id] = wanted
        else:
            self._installed.pop(allocation.id, None)

    def _routes(self, allocation: Allocation) -> list[RouteArguments]:
        """``allocation.routes`` as the router's arguments (none for a socket it does not
        read: a relay closing, or a listener served by asyncio)."""
        five_tuple = allocation.five_tuple
        listen_fd = self._listeners.get(five_tuple.server)
        if listen_fd is None or not allocation.routes:
            return []
        slot = self._slot(allocation.id)
        routes = []
        for channel, (relay, peer) in allocation.routes.items():
            if isinstance(relay, FastDatagramTransport) and not relay.is_closing():
                routes.append((slot, listen_fd, five_tuple.client, relay.fd, peer, channel))
        return routes

    def _slot(self, owner: str) -> int:
        slot = self._slots.get(owner)
        if slot is None:
            slot = self._free.pop() if self._free else len(self._owners)
            self._slots[owner] = slot
            self._owners[slot] = owner
        return slot


def _add(allocation: Allocation, meter: Sequence[int]) -> None:
    """Add one slot's counts (bytes and packets to the peer, from the peer) to the meters."""
    allocation.bytes_to_peer += meter[0]
    allocation.packets_to_peer += meter[1]
    allocation.bytes_from_peer += meter[2]
    allocation.packets_from_peer += meter[3]


def check_fast_path(mode: str) -> None:
    """Raise :class:`FastPathUnavailable` for ``--fast-path on`` without the extension:
    before anything starts (a worker process would only fail later)."""
    if mode == "on" and not available():
        raise FastPathUnavailable(
            "--fast-path on: the compiled fast path is not built in this install (pip "
            "builds it when a C compiler and Python's headers are there); use --fast-path "
            "auto or off"
        )


def start_fast_path(mode: str, capped: Callable[[], bool]) -> FastChannels | None:
    """The compiled hot path for ``--fast-path MODE``: ``off``: None; ``auto``: the
    router when the extension was built, else None; ``on``: the router, or
    :class:`FastPathUnavailable`."""
    check_fast_path(mode)
    if mode == "off":
        logger.info("TURN hot path: Python (--fast-path off)")
        return None
    if not available():
        logger.info("TURN hot path: Python (the compiled fast path is not built)")
        return None
    assert Router is not None
    logger.info("TURN hot path: C for UDP ChannelData (--fast-path %s)", mode)
    return FastChannels(Router(), capped)
