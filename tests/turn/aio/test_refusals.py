"""The log of refused TURN requests is bounded in lines per second (issue 10).

An unauthenticated client earns 400s as fast as it sends over TCP; one INFO
line each let it fill the disk. Now at most a burst, then a rate, and a line
that says how many were left out.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from pathlib import Path

import pytest

from passage.addresses import Transport
from passage.stun import Method
from passage.turn.aio.refusals import RefusalLog, method_name
from passage.turn.events import FiveTuple
from passage.turn.server import Refused
from passage_server import passage_process

REFUSED = Refused(
    FiveTuple(Transport.TCP, ("198.51.100.7", 40000), ("192.0.2.10", 3478)),
    Method.ALLOCATE,
    400,
    "Missing USERNAME, REALM or NONCE",
)


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_a_rate_then_a_count_of_what_was_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    log = RefusalLog(logging.getLogger("test.refusals"), rate=2, burst=5, clock=clock)
    with caplog.at_level(logging.INFO, "test.refusals"):
        for _ in range(20):
            log(REFUSED)
        assert len(caplog.records) == 5 and log.suppressed == 15
        assert caplog.records[0].getMessage() == (
            "refused allocate from tcp 198.51.100.7:40000: 400 Missing USERNAME, REALM or NONCE"
        )
        clock.now += 1.0  # two more lines' worth
        for _ in range(3):
            log(REFUSED)
    lines = [record.getMessage() for record in caplog.records[5:]]
    assert lines[0] == "15 more refused requests were not logged (at most 2 lines a second)"
    assert lines[1:] == [lines[2]] * 2 and len(lines) == 3
    assert log.suppressed == 1


def test_method_names() -> None:
    assert method_name(Method.CHANNEL_BIND) == "channel_bind"
    assert method_name(0x00F) == "method 0x00f"


async def test_a_flood_of_bad_requests_over_tcp_writes_a_bounded_log(tmp_path: Path) -> None:
    with passage_process(tmp_path) as (info, log):
        reader, writer = await asyncio.open_connection(info.host, info.turn_port)
        unknown_method = struct.pack("!HHI", 0x000F, 0, 0x2112A442)
        count = 400
        writer.write(b"".join(unknown_method + i.to_bytes(12, "big") for i in range(count)))
        for _ in range(count):  # every one is answered (400): only the log is bounded
            header = await asyncio.wait_for(reader.readexactly(20), 5.0)
            await reader.readexactly(struct.unpack("!H", header[2:4])[0])
        writer.close()
    text = log.read_text()
    logged = text.count("refused method 0x00f from tcp")
    assert 100 <= logged <= 130, logged
