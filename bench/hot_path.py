"""Python-side cost of the ChannelData hot path, without sockets.

Calls the real ``UdpListener.datagram_received`` (client → peer) and
``RelayProtocol.datagram_received`` (peer → client) with transports whose
``sendto`` is a C function that does nothing useful, so what is timed is the
interpreter's share per packet: the part of ``turn_relay.py``'s figure that a
change to those functions can move. Run it before and after such a change:
``.venv/bin/python bench/hot_path.py``.

``--sockets`` times the UDP paths with their system calls instead, on real
loopback sockets and without an event loop: Python (``recvfrom``, then the
handler, whose relay socket sends for real) against the C router of
``--fast-path`` (``Router.read``: ``recvmmsg`` of a batch, ``sendmmsg``). Only
the reading and relaying are timed; the test client's sends are not.
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import socket
import time
import timeit
from collections import Counter
from typing import Any, cast

from passage.addresses import Address, Transport
from passage.turn.aio.listeners import StreamClient, UdpListener
from passage.turn.aio.relay_sockets import RelayProtocol
from passage.turn.allocation import Allocation
from passage.turn.events import FiveTuple

CLIENT: Address = ("127.0.0.1", 50000)
SERVER: Address = ("127.0.0.1", 3478)
PEER: Address = ("127.0.0.1", 3480)
CHANNEL = 0x4000
PAYLOAD = bytes(160)


class _Sink:
    """A transport stand-in whose ``sendto``/``write`` are C functions that do nothing."""

    def __init__(self) -> None:
        self.sendto = operator.is_
        self.write = operator.not_

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


class _Edge:
    def __init__(self, allocation: Allocation) -> None:
        self.core = self
        self.metrics = self
        self.drops: Counter[object] = Counter()
        self.allocation = allocation


def _allocation(relay: _Sink) -> Allocation:
    allocation = Allocation(
        id="bench",
        five_tuple=FiveTuple(Transport.UDP, CLIENT, SERVER),
        username="u",
        subject="u",
        quota_key="u",
        key=b"",
        sha256=False,
        relays={1: (cast(Any, relay), ("127.0.0.1", 49152))},
        started_at=0.0,
        expires_at=1e12,
        transaction_id=b"",
        response=b"",
        budget=1 << 62,
    )
    allocation.permissions[PEER[0]] = 1e12
    allocation.bindings[CHANNEL] = PEER
    allocation.binding_expiry[CHANNEL] = 1e12
    allocation.rebuild_routes()
    return allocation


def measure(packets: int) -> dict[str, float]:
    """Nanoseconds of Python per packet for each direction (best of five)."""
    relay, client_side = _Sink(), _Sink()
    allocation = _allocation(relay)
    edge = cast(Any, _Edge(allocation))
    listener = UdpListener(edge, SERVER, ipv6=False)
    listener.connection_made(cast(asyncio.DatagramTransport, client_side))
    listener.allocations[CLIENT] = allocation
    from_client = CHANNEL.to_bytes(2, "big") + len(PAYLOAD).to_bytes(2, "big") + PAYLOAD

    relay_protocol = RelayProtocol(edge, ipv6=False, stream=False)
    relay_protocol.allocation = allocation
    client_transport = client_side

    def writer(frame: bytes) -> None:  # the shape of TurnEdge._started's UDP writer
        client_transport.sendto(frame, CLIENT)

    relay_protocol.to_client = writer

    stream = StreamClient(edge, Transport.TCP)
    stream.transport = cast(asyncio.Transport, client_side)
    stream.five_tuple = FiveTuple(Transport.TCP, CLIENT, SERVER)
    stream.allocation = allocation

    cases = {
        "udp client→peer": lambda: listener.datagram_received(from_client, CLIENT),
        "udp peer→client": lambda: relay_protocol.datagram_received(PAYLOAD, PEER),
        "tcp client→peer": lambda: stream.data_received(from_client),
    }
    results = {}
    for name, case in cases.items():
        best = min(timeit.repeat(case, number=packets, repeat=5))
        results[name] = best / packets * 1e9
    return results


class _Socket:
    """A transport stand-in whose ``sendto`` is a real socket's: the system call is timed."""

    def __init__(self, sock: socket.socket) -> None:
        self.sendto = sock.sendto


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return sock


def measure_sockets(rounds: int, batch: int) -> dict[str, float]:
    """Nanoseconds per packet, system calls included, of Python and of the C router."""
    from passage.turn.fastpath import Router

    listen, relay, client, peer = _udp(), _udp(), _udp(), _udp()
    client_address: Address = client.getsockname()
    peer_address: Address = peer.getsockname()
    allocation = _allocation(cast(Any, _Socket(relay)))
    allocation.five_tuple = FiveTuple(Transport.UDP, client_address, SERVER)
    allocation.bindings = {CHANNEL: peer_address}
    allocation.permissions = {peer_address[0]: 1e12}
    allocation.rebuild_routes()
    edge = cast(Any, _Edge(allocation))
    listener = UdpListener(edge, SERVER, ipv6=False)
    listener.allocations[client_address] = allocation
    relay_protocol = RelayProtocol(edge, ipv6=False, stream=False)
    relay_protocol.allocation = allocation
    relay_protocol.to_client = lambda frame: listen.sendto(frame, client_address)
    frame = CHANNEL.to_bytes(2, "big") + len(PAYLOAD).to_bytes(2, "big") + PAYLOAD

    def python_reads(sock: socket.socket, handler: Any) -> None:
        for _ in range(batch):
            data, addr = sock.recvfrom(65536)
            handler(data, addr)

    router = Router() if Router is not None else None
    if router is not None:
        router.watch(listen.fileno(), False, listener.datagram_received)
        router.watch(relay.fileno(), True, relay_protocol.datagram_received)
        router.add(0, listen.fileno(), client_address, relay.fileno(), peer_address, CHANNEL)
    cases: dict[str, tuple[socket.socket, socket.socket, bytes, Any]] = {
        "udp client→peer, Python": (client, listen, frame,
                                    lambda: python_reads(listen, listener.datagram_received)),
        "udp peer→client, Python": (peer, relay, PAYLOAD,
                                    lambda: python_reads(relay, relay_protocol.datagram_received)),
    }  # fmt: skip
    if router is not None:
        cases["udp client→peer, C"] = (client, listen, frame, lambda: router.read(listen.fileno()))
        cases["udp peer→client, C"] = (peer, relay, PAYLOAD, lambda: router.read(relay.fileno()))
    results = {}
    for name, (sender, receiver, datagram, read) in cases.items():
        target = receiver.getsockname()
        best = float("inf")
        for _ in range(5):
            spent = 0
            for _ in range(rounds):
                for _ in range(batch):
                    sender.sendto(datagram, target)
                started = time.perf_counter_ns()
                read()
                spent += time.perf_counter_ns() - started
            best = min(best, spent / (rounds * batch))
        results[name] = best
    for sock in (listen, relay, client, peer):
        sock.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument(
        "--sockets", action="store_true", help="time the UDP paths with their system calls"
    )
    parser.add_argument("--batch", type=int, default=8, help="--sockets: datagrams per read")
    arguments = parser.parse_args()
    if arguments.sockets:
        rounds = max(1, arguments.packets // arguments.batch)
        for name, nanoseconds in measure_sockets(rounds, arguments.batch).items():
            print(f"{name:26} {nanoseconds:7.0f} ns/pkt")
        return
    for name, nanoseconds in measure(arguments.packets).items():
        print(f"{name:18} {nanoseconds:7.0f} ns/pkt")


if __name__ == "__main__":
    main()
