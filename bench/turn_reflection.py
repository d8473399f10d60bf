"""How much a spoofed UDP request makes a TURN server send: bytes out per byte in.

For each server (Passage and coturn, started as in ``servers.py``), on loopback:

- one request of each kind from a fresh socket, and the size of its answer;
- a flood of bare 20-byte Allocates from one source, and how many answers and
  bytes came back: the reflection an attacker who spoofs a victim's address gets.

``.venv/bin/python bench/turn_reflection.py [--flood N] [--servers passage coturn]``
prints a Markdown table (``docs/security.md`` quotes it).
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import tempfile
import time
from pathlib import Path

from servers import HOST, KINDS, RunningServer

_COOKIE = 0x2112A442


def _request(method: int, attributes: bytes = b"") -> bytes:
    return struct.pack("!HHI", method, len(attributes), _COOKIE) + os.urandom(12) + attributes


def _attribute(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)


_SIGNED_FOREIGN_NONCE = _request(
    0x003,
    _attribute(0x0006, b"u")  # USERNAME
    + _attribute(0x0014, b"test")  # REALM
    + _attribute(0x0015, b"not-a-nonce-of-ours")  # NONCE
    + _attribute(0x0008, bytes(20)),  # MESSAGE-INTEGRITY
)

CASES = {
    "Allocate, no attributes (401)": _request(0x003),
    "Refresh, no attributes (401)": _request(0x004),
    "Allocate, signed, foreign NONCE (438)": _SIGNED_FOREIGN_NONCE,
    "Binding (success)": _request(0x001),
}


def _answer_size(port: int, data: bytes) -> int | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        sock.sendto(data, (HOST, port))
        try:
            return len(sock.recv(4096))
        except TimeoutError:
            return None


def _flood(port: int, count: int) -> tuple[int, int]:
    """``count`` bare Allocates from one source: (answers, answer bytes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        for _ in range(count):
            sock.sendto(_request(0x003), (HOST, port))
            time.sleep(0)  # let the server keep up: what is measured is policy, not loss
        sock.settimeout(1.0)
        answers = size = 0
        try:
            while True:
                size += len(sock.recv(4096))
                answers += 1
        except TimeoutError:
            pass
    return answers, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=1000, help="requests in the flood")
    parser.add_argument("--servers", nargs="+", default=["passage", "coturn"], choices=KINDS)
    arguments = parser.parse_args()
    print("| server | request | bytes in | bytes out | factor |")
    print("| --- | --- | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as scratch:
        for name in arguments.servers:
            root = Path(scratch) / name
            with RunningServer(KINDS[name], root / "data", root / "server.log") as server:
                for label, data in CASES.items():
                    size = _answer_size(server.port, data)
                    shown = f"{size / len(data):.2f}" if size is not None else "no answer"
                    print(f"| {name} | {label} | {len(data)} | {size or 0} | {shown} |")
                answers, size = _flood(server.port, arguments.flood)
                sent = arguments.flood * 20
                print(
                    f"| {name} | flood of {arguments.flood} bare Allocates, one source "
                    f"({answers} answered) | {sent} | {size} | {size / sent:.2f} |"
                )


if __name__ == "__main__":
    main()
