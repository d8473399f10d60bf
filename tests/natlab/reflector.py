"""A what-you-see server: tells each client the address its packets arrived from.

Run inside a lab node (``python -m natlab.reflector --udp IP:PORT --tcp IP:PORT``,
or :meth:`natlab.Lab.reflector`). Every UDP datagram is answered with the text
``IP:PORT`` of its source; every TCP connection is sent ``IP:PORT\\n`` and
closed. Seen from behind a NAT, that is the NAT's mapping of the flow: the
server-reflexive address a STUN server would report, with no STUN in the way.

It prints ``ready`` once every socket is bound, and runs until SIGTERM.

The client side is :func:`natlab.probes.udp_seen` and :func:`natlab.probes.tcp_seen`.
"""

from __future__ import annotations

import argparse
import select
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from natlab.lab import Lab, Node

Address = tuple[str, int]

READY = "ready"
_START_TIMEOUT = 20.0


def parse_address(text: str) -> Address:
    """``"IP:PORT"`` as a tuple."""
    host, _, port = text.rpartition(":")
    return host, int(port)


def _serve(udp: Sequence[Address], tcp: Sequence[Address]) -> None:
    selector = selectors.DefaultSelector()
    for address in udp:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(address)
        selector.register(sock, selectors.EVENT_READ, "udp")
    for address in tcp:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
        selector.register(sock, selectors.EVENT_READ, "tcp")
    sys.stdout.write(READY + "\n")
    sys.stdout.flush()
    while True:
        for key, _ in selector.select():
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            if key.data == "udp":
                _, source = ready.recvfrom(2048)
                ready.sendto(f"{source[0]}:{source[1]}".encode(), source)
            else:
                connection, source = ready.accept()
                with connection:
                    connection.sendall(f"{source[0]}:{source[1]}\n".encode())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="natlab.reflector", description=__doc__)
    parser.add_argument("--udp", type=parse_address, action="append", default=[], metavar="IP:PORT")
    parser.add_argument("--tcp", type=parse_address, action="append", default=[], metavar="IP:PORT")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _serve(args.udp, args.tcp)


def start(
    lab: Lab, node: Node, udp: Sequence[Address], tcp: Sequence[Address]
) -> subprocess.Popen[str]:
    """The reflector running in ``node``, once it has bound every address."""
    args = [f"--udp={ip}:{port}" for ip, port in udp] + [f"--tcp={ip}:{port}" for ip, port in tcp]
    process = lab.python(
        node, "-m", "natlab.reflector", *args,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], _START_TIMEOUT)
    line = process.stdout.readline() if readable else ""
    if line.strip() != READY:
        process.kill()
        _, err = process.communicate(timeout=_START_TIMEOUT)
        raise RuntimeError(f"reflector in {node.name} did not start: {err.strip()}")
    return process


if __name__ == "__main__":
    main()
