"""Python-side cost of the ChannelData hot path, without sockets.

Calls the real ``UdpListener.datagram_received`` (client → peer) and
``RelayProtocol.datagram_received`` (peer → client) with transports whose
``sendto`` is a C function that does nothing useful, so what is timed is the
interpreter's share per packet: the part of ``turn_relay.py``'s figure that a
change to those functions can move. Run it before and after such a change:
``.venv/bin/python bench/hot_path.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import operator
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--packets", type=int, default=200_000)
    arguments = parser.parse_args()
    for name, nanoseconds in measure(arguments.packets).items():
        print(f"{name:18} {nanoseconds:7.0f} ns/pkt")


if __name__ == "__main__":
    main()
