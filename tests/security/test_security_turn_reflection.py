"""Answers to unauthenticated UDP requests are small and rate limited per source.

Issue 10, "Unauthenticated TURN answers amplify (a 20-byte request gets a
132-byte 401) and are not rate limited": a spoofed source could aim the
server's challenges at a victim. Now an unauthenticated answer carries what
RFC 8489 §9.2.4 asks for (ERROR-CODE, REALM, NONCE, and PASSWORD-ALGORITHMS
because the nonce advertises that feature) and no SOFTWARE, and each source
address gets at most ``--unauthenticated-answer-burst`` of them at once and
``--unauthenticated-answers-per-second`` after that. Over TCP and TLS the
handshake proves the source, so those are not limited.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from pathlib import Path

from passage.stun import AttributeType, MessageClass, decode_message
from passage_server import passage_process
from turn_client import TurnClient

FLOOD = 200
RATE, BURST = 20, 40
"""The defaults of --unauthenticated-answers-per-second and --unauthenticated-answer-burst."""

ALLOCATE = 0x0003


def bare_request(method: int) -> bytes:
    """The smallest STUN request there is: a 20-byte header, no attributes."""
    return struct.pack("!HHI", method, 0, 0x2112A442) + os.urandom(12)


def flood(target: tuple[str, int], source: str, count: int) -> tuple[int, int, float]:
    """Send ``count`` bare Allocates from ``source``; return (answers, answer bytes, seconds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        started = time.monotonic()
        for _ in range(count):
            sock.sendto(bare_request(ALLOCATE), target)
        elapsed = time.monotonic() - started
        sock.settimeout(0.5)
        answers = size = 0
        try:
            while True:
                size += len(sock.recv(2048))
                answers += 1
        except TimeoutError:
            pass
    return answers, size, elapsed


async def test_a_challenge_carries_what_rfc_8489_asks_for_and_nothing_more(
    tmp_path: Path,
) -> None:
    with passage_process(tmp_path) as (info, _):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2.0)
            sock.sendto(bare_request(ALLOCATE), (info.host, info.turn_port))
            data = sock.recv(2048)
    answer = decode_message(data)
    assert answer.message_class is MessageClass.ERROR
    kinds = [kind for kind, _ in answer.attributes]
    assert sorted(kinds) == sorted(
        [
            AttributeType.ERROR_CODE,
            AttributeType.REALM,
            AttributeType.NONCE,
            AttributeType.PASSWORD_ALGORITHMS,
        ]
    )
    # 20 header + 24 ERROR-CODE ("Unauthenticated") + 16 REALM ("passage.test")
    # + 44 NONCE + 12 PASSWORD-ALGORITHMS: 5.8 times the request, down from 6.8.
    assert len(data) == 116


async def test_unauthenticated_answers_to_one_source_are_rate_limited(tmp_path: Path) -> None:
    with passage_process(tmp_path) as (info, _):
        target = (info.host, info.turn_port)
        answers, size, elapsed = await asyncio.to_thread(flood, target, "127.0.0.1", FLOOD)
        assert answers <= BURST + RATE * (elapsed + 0.6), (answers, elapsed)
        assert size / (FLOOD * 20) < 2.0  # the reflected bytes per byte sent
        # Another source has a bucket of its own.
        others, _, _ = await asyncio.to_thread(flood, target, "127.0.0.2", 5)
        assert others == 5
        # The limited source recovers at once for a real client: its retransmission
        # (RFC 8489 §6.2.1) meets a bucket refilled at RATE per second.
        client = await TurnClient.connect("udp", target)
        try:
            assert (await client.allocate()).message_class is MessageClass.SUCCESS
        finally:
            await client.close()


async def test_challenges_over_tcp_are_not_limited(tmp_path: Path) -> None:
    """A TCP handshake proves the source address: nothing to reflect."""
    with passage_process(tmp_path) as (info, _):
        reader, writer = await asyncio.open_connection(info.host, info.turn_port)
        try:
            count = BURST + 20
            writer.write(b"".join(bare_request(ALLOCATE) for _ in range(count)))
            for _ in range(count):
                header = await asyncio.wait_for(reader.readexactly(20), 5.0)
                await reader.readexactly(struct.unpack("!H", header[2:4])[0])
        finally:
            writer.close()
