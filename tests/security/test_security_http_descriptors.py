"""Idle connections to the API port cannot take TURN's file descriptors (issue 10).

The attack of the issue, replayed: ``passage serve`` limited to 1,024 file
descriptors (soft and hard, so it cannot raise its own), and 1,100 idle
connections with no credentials to the API port (it starts with about 1,000
descriptors free: the issue's "about 1,000"), from eight loopback addresses
so that no per-address cap is what stops them. Every HTTP timeout
is set far beyond the test, so the connections stay unless the server refuses
them. While they are held, a TURN Allocate over UDP must succeed (it needs a
new socket: 508 "Too many open files" before the fix) and TURN over TCP must
answer; once they are gone, the API answers again.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import ssl
from contextlib import ExitStack
from pathlib import Path

import aiohttp
import pytest

from passage.stun import MessageClass
from passage_server import ServerInfo, passage_process
from turn_client import TurnClient, error_code

LIMIT = 1024
"""The server's descriptor limit, soft and hard, as in the issue."""
CONNECTIONS = 1100
"""A few more than the server has descriptors free: what exhausted it before the fix."""
SOURCES = [f"127.0.0.{n}" for n in range(2, 10)]
"""Eight client addresses: about 140 connections each, under every per-address cap."""
QUIET = {
    f"PASSAGE_HTTP_{name}": "120"
    for name in ("TLS_HANDSHAKE_TIMEOUT", "REQUEST_HEAD_TIMEOUT", "IDLE_TIMEOUT", "BODY_TIMEOUT")
}


def _limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


@pytest.fixture
def enough_descriptors_for_the_test() -> None:
    """This process holds the 1,000 client ends: raise its own soft limit if it must."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = CONNECTIONS + 512
    if soft >= wanted:
        return
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the test needs {wanted} descriptors; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def open_idle(stack: ExitStack, info: ServerInfo) -> list[socket.socket]:
    """CONNECTIONS plain TCP connections to the API (TLS) port that never say a word."""
    held = []
    for index in range(CONNECTIONS):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        stack.callback(sock.close)
        sock.settimeout(2.0)
        sock.bind((SOURCES[index % len(SOURCES)], 0))
        try:
            sock.connect((info.host, info.api_port))
        except OSError:
            continue
        held.append(sock)
    return held


def closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


async def turn_still_works(info: ServerInfo) -> None:
    udp = await TurnClient.connect("udp", (info.host, info.turn_port))
    try:
        answer = await udp.allocate()
        assert answer.message_class is MessageClass.SUCCESS, error_code(answer)
    finally:
        await udp.close()
    tcp = await TurnClient.connect("tcp", (info.host, info.turn_port))
    try:
        assert (await tcp.binding()).message_class is MessageClass.SUCCESS
    finally:
        await tcp.close(release=False)


async def api_answers(info: ServerInfo) -> int:
    tls = ssl.create_default_context(cafile=str(info.ca_cert))
    async with aiohttp.ClientSession() as session:
        for _ in range(50):
            try:
                async with session.get(f"{info.api_url}no-such-path", ssl=tls) as response:
                    return response.status
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise AssertionError("the API did not answer after the connections went")


@pytest.mark.usefixtures("enough_descriptors_for_the_test")
def test_a_thousand_idle_api_connections_leave_turn_working(tmp_path: Path) -> None:
    with passage_process(tmp_path, environ=QUIET, preexec_fn=_limit_descriptors) as (info, log):
        with ExitStack() as stack:
            held = open_idle(stack, info)
            asyncio.run(turn_still_works(info))
            refused = sum(closed_by_server(sock) for sock in held)
            # The reserve is what kept TURN working: some of the 1,000 were turned away.
            assert 0 < refused < CONNECTIONS, refused
        assert asyncio.run(api_answers(info)) == 404
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "file descriptors" in text  # the operator is told why connections were refused
