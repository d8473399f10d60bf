"""RFC 5780 over real sockets: ``passage serve --listen-ip 127.0.0.1 --alt-ip 127.0.0.2``.

Both are loopback addresses on Linux, so one host has the two IPs RFC 5780 §6
asks for. Each probe checks where the answer really came from (the datagram's
source, which a client behind a NAT cannot fake) against RFC 5780 §6.1 Table 1,
and what RESPONSE-ORIGIN and OTHER-ADDRESS say.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from passage.addresses import Address
from passage.stun import AttributeType, Message, StreamFramer, decode_message
from passage.stun.discovery import binding_request, read_binding_response
from passage_server import ServerInfo, free_port, passage_process

A1, A2 = "127.0.0.1", "127.0.0.2"
ANSWER_TIMEOUT = 3.0
"""Seconds to wait for an answer on loopback before resending (three tries)."""

_ids = itertools.count(1)


def _tid() -> bytes:
    return next(_ids).to_bytes(12, "big")


def _loopback_alias_usable() -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((A2, 0))
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _loopback_alias_usable(), reason="127.0.0.2 does not bind")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerInfo, int]]:
    alt_port = free_port()
    tmp_path = tmp_path_factory.mktemp("nat-discovery")
    args = ("--alt-ip", A2, "--alt-port", str(alt_port))
    with passage_process(tmp_path, *args) as (info, _log):
        yield info, alt_port


def udp_probe(
    sock: socket.socket, destination: Address, **request: object
) -> tuple[Message, Address]:
    """Send one Binding request (resent on silence); the answer and where it came from."""
    tid = _tid()
    data = binding_request(tid, **request)  # type: ignore[arg-type]
    sock.settimeout(ANSWER_TIMEOUT)
    for _ in range(3):
        sock.sendto(data, destination)
        try:
            while True:
                answer, source = sock.recvfrom(4096)
                if read_binding_response(answer, tid) is not None:
                    return decode_message(answer), source
        except TimeoutError:
            continue
    raise AssertionError(f"no answer from {destination} to {request}")


@pytest.mark.parametrize(
    ("change_ip", "change_port"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_udp_answers_leave_from_the_address_table_1_names(
    server: tuple[ServerInfo, int], change_ip: bool, change_port: bool
) -> None:
    info, alt_port = server
    p1, p2 = info.turn_port, alt_port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((A1, 0))
        for da, dp in [(A1, p1), (A1, p2), (A2, p1), (A2, p2)]:
            ca, cp = (A2 if da == A1 else A1), (p2 if dp == p1 else p1)
            expected = (ca if change_ip else da, cp if change_port else dp)
            response, source = udp_probe(
                sock, (da, dp), change_ip=change_ip, change_port=change_port
            )
            assert source == expected
            assert response.get(AttributeType.RESPONSE_ORIGIN, tuple) == expected
            assert response.get(AttributeType.OTHER_ADDRESS, tuple) == (ca, cp)
            assert response.get(AttributeType.XOR_MAPPED_ADDRESS, tuple) == sock.getsockname()
            assert response.get(AttributeType.MAPPED_ADDRESS, tuple) == sock.getsockname()


def test_response_port_reaches_another_socket_of_the_client(server: tuple[ServerInfo, int]) -> None:
    # RFC 5780 §4.6: ask from port Y for the answer on port X.
    info, _ = server
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as x,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as y,
    ):
        x.bind((A1, 0))
        y.bind((A1, 0))
        x.settimeout(ANSWER_TIMEOUT)
        tid = _tid()
        request = binding_request(tid, response_port=x.getsockname()[1], change_ip=True)
        for _ in range(3):
            y.sendto(request, (A1, info.turn_port))
            try:
                data, source = x.recvfrom(4096)
            except TimeoutError:
                continue
            break
        else:
            raise AssertionError("no answer on the RESPONSE-PORT socket")
        result = read_binding_response(data, tid)
        assert result is not None and result.mapped == y.getsockname()
        assert source == (A2, info.turn_port)


def _tcp_exchange(destination: Address, request: bytes) -> Message:
    with socket.create_connection(destination, timeout=ANSWER_TIMEOUT) as conn:
        conn.sendall(request)
        framer = StreamFramer()
        while True:
            chunk = conn.recv(4096)
            assert chunk, "connection closed without an answer"
            frames = framer.feed(chunk)
            if frames:
                return decode_message(frames[0])


def test_tcp_listens_on_all_four_and_refuses_change_requests(
    server: tuple[ServerInfo, int],
) -> None:
    info, alt_port = server
    response = _tcp_exchange((A2, alt_port), binding_request(_tid()))
    assert response.get(AttributeType.OTHER_ADDRESS, tuple) == (A1, info.turn_port)
    assert response.get(AttributeType.RESPONSE_ORIGIN, tuple) == (A2, alt_port)
    refused = _tcp_exchange((A1, info.turn_port), binding_request(_tid(), change_ip=True))
    result = read_binding_response(refused.raw, refused.transaction_id)
    assert result is not None and result.error is not None and result.error.code == 400


def test_without_alt_ip_change_requests_get_420(tmp_path: Path) -> None:
    with (
        passage_process(tmp_path) as (info, _log),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        sock.bind((A1, 0))
        response, source = udp_probe(sock, (A1, info.turn_port), change_ip=True, change_port=True)
        assert source == (A1, info.turn_port)
        result = read_binding_response(response.raw, response.transaction_id)
        assert result is not None and result.error is not None and result.error.code == 420
        assert response.get(AttributeType.UNKNOWN_ATTRIBUTES, tuple) == (
            AttributeType.CHANGE_REQUEST,
        )
        plain, _ = udp_probe(sock, (A1, info.turn_port))
        assert not plain.has(AttributeType.OTHER_ADDRESS)
        assert plain.get(AttributeType.RESPONSE_ORIGIN, tuple) == (A1, info.turn_port)
