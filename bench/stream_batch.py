"""Peer → TCP client on a real socket: CPU per packet when ``--batch`` datagrams
reach one client's relay socket in one event-loop pass.

The real ``RelayProtocol.datagram_received`` is called ``--batch`` times in a
row (as uvloop does for up to 32 datagrams waiting on a socket, and the C
router for one ``recvmmsg``), writing through the real ``StreamClient.write``
into a uvloop transport on one end of a loopback TCP connection; then the loop runs one
pass. A child process reads the other end. The figure is the event-loop thread's CPU
time (user + kernel: ``time.thread_time``) per packet, so it includes the
``send()`` calls. Run it before and after a change, on the older code with
``PYTHONPATH=/tmp/before/src``; under callgrind it counts instructions
(user space only)::

    .venv/bin/python bench/stream_batch.py --batch 1 4 32
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import time
from collections import Counter
from typing import Any, cast

from passage.addresses import Address, Transport
from passage.turn.aio.listeners import StreamClient
from passage.turn.aio.relay_sockets import RelayProtocol
from passage.turn.allocation import Allocation
from passage.turn.events import FiveTuple

CLIENT: Address = ("127.0.0.1", 50000)
SERVER: Address = ("127.0.0.1", 3478)
PEER: Address = ("127.0.0.1", 3480)
CHANNEL = 0x4000
PAYLOAD = bytes(160)


class _Closing(asyncio.Protocol):
    def __init__(self) -> None:
        self.closed = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set_result(None)


class _Edge:
    def __init__(self) -> None:
        self.core = self
        self.metrics = self
        self.drops: Counter[object] = Counter()


def _allocation() -> Allocation:
    allocation = Allocation(
        id="bench",
        five_tuple=FiveTuple(Transport.TCP, CLIENT, SERVER),
        username="u",
        subject="u",
        quota_key="u",
        key=b"",
        sha256=False,
        relays={1: (cast(Any, None), ("127.0.0.1", 49152))},
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


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    """Both ends of a loopback TCP connection: (the server's, the client's)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        theirs = socket.create_connection(listener.getsockname())
        ours, _ = listener.accept()
    return ours, theirs


def _drain(sock: socket.socket) -> None:
    """In a child process: read until the server's end closes."""
    while sock.recv(1 << 20):
        pass


async def measure(packets: int, batch: int) -> tuple[float, int, int]:
    """(CPU ns of the loop thread per packet, loop passes, the reader's process id)."""
    loop = asyncio.get_running_loop()
    ours, theirs = _tcp_pair()
    reader = os.fork()
    if reader == 0:
        ours.close()
        _drain(theirs)
        os._exit(0)
    theirs.close()
    transport, protocol = await loop.create_connection(_Closing, sock=ours)
    edge = cast(Any, _Edge())
    allocation = _allocation()
    stream = StreamClient(edge, Transport.TCP)
    stream.transport = cast(asyncio.Transport, transport)
    stream.allocation = allocation
    relay = RelayProtocol(edge, ipv6=False, stream=True)
    relay.allocation = allocation
    relay.to_client = stream.write
    passes = packets // batch
    received = relay.datagram_received
    started = time.thread_time()
    for _ in range(passes):
        for _ in range(batch):
            received(PAYLOAD, PEER)
        await asyncio.sleep(0)  # the end of this pass
    transport.close()  # after what it holds is sent
    await protocol.closed
    spent = time.thread_time() - started
    assert not edge.drops, edge.drops
    return spent / (passes * batch) * 1e9, passes, reader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 32])
    arguments = parser.parse_args()
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    for batch in arguments.batch:
        nanoseconds, passes, reader = runner(measure(arguments.packets, batch))
        os.waitpid(reader, 0)
        print(f"batch {batch:3}: {nanoseconds:7.0f} ns/pkt (loop thread CPU, {passes} passes)")


if __name__ == "__main__":
    main()
