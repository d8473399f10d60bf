"""Client probes for lab tests: what a server sees of a flow, and whether it gets through.

Each takes a socket made inside the client's node (:meth:`natlab.Lab.socket`)
and blocks; the timeouts only stop the wait for a server that never answers.
The servers are :mod:`natlab.reflector` and a real ``passage serve``.
"""

from __future__ import annotations

import os
import socket

from natlab.reflector import Address, parse_address
from passage.stun import (
    AttributeType,
    Message,
    MessageClass,
    Method,
    StunDecodeError,
    TransactionId,
    decode_message,
    encode_message,
)

_UDP_TRIES = 5
_UDP_WAIT = 0.4
"""Seconds to wait for each UDP answer before sending the datagram again."""


def udp_seen(
    sock: socket.socket, server: Address, *, tries: int = _UDP_TRIES, wait: float = _UDP_WAIT
) -> Address | None:
    """Where ``server`` saw ``sock``'s datagrams come from; ``None`` if it never answered.

    ``sock`` is bound to an ephemeral port first if it is not bound yet.
    Sends ``tries`` times, ``wait`` seconds apart, until an answer comes; the
    timeout only stops the wait for a server that is unreachable. Where a test
    expects no answer, one short try will do, with the firewall's drop counter
    (:meth:`natlab.Lab.counters`) as the proof of why.
    """
    sock.settimeout(wait)
    for _ in range(tries):
        sock.sendto(b"?", server)
        try:
            while True:
                data, source = sock.recvfrom(2048)
                if source[:2] == server:
                    return parse_address(data.decode())
        except TimeoutError:
            continue
    return None


def tcp_seen(sock: socket.socket, server: Address, timeout: float = 2.0) -> Address | None:
    """Where ``server`` saw ``sock``'s connection come from; ``None`` if it never connected."""
    sock.settimeout(timeout)
    try:
        sock.connect(server)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(64)
            if not chunk:
                break
            data += chunk
    except OSError:  # timed out (dropped), refused, unreachable
        return None
    finally:
        sock.close()
    return parse_address(data.decode().strip()) if data else None


def stun_mapped(sock: socket.socket, server: Address) -> Address | None:
    """The XOR-MAPPED-ADDRESS of a STUN Binding request (RFC 8489 §14.2) from ``sock``.

    ``None`` if no Binding success came back. Retransmits like :func:`udp_seen`.
    """
    transaction_id = TransactionId(os.urandom(12))
    request = encode_message(
        Message(Method.BINDING, MessageClass.REQUEST, transaction_id), fingerprint=True
    )
    sock.settimeout(_UDP_WAIT)
    for _ in range(_UDP_TRIES):
        sock.sendto(request, server)
        try:
            while True:
                data, source = sock.recvfrom(2048)
                try:
                    answer = decode_message(data)
                except StunDecodeError:
                    continue
                if source[:2] != server or answer.transaction_id != transaction_id:
                    continue
                if answer.message_class != MessageClass.SUCCESS:
                    return None
                mapped = answer.get(AttributeType.XOR_MAPPED_ADDRESS, tuple)
                return None if mapped is None else (str(mapped[0]), int(mapped[1]))
        except TimeoutError:
            continue
    return None
