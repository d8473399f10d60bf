"""``kill -9`` under relay traffic loses at most the last second of usage.

The edge flushes live counters to the ledger every ``--usage-flush-interval``
(1 s) in one transaction each, and SQLite in WAL mode with ``synchronous=NORMAL``
keeps every committed transaction across a killed process. So whatever the
peer had received a little over a second before the kill must be in the
ledger, and nothing may be counted that was never relayed. (A clean shutdown
losing nothing is ``test_edge_lifecycle.test_sigterm_ends_open_allocations_and_flushes_them``.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from passage.store.database import open_database, sqlite_url
from passage.store.ledger import UsageLedger
from passage.stun import MessageClass
from passage_server import server_info, wait_until_listening
from turn_client import TurnClient, UdpPeer, error_code

RATE = 200
"""Packets per second sent through the relay."""
SIZE = 100
FLUSH_INTERVAL = 1.0
COMMIT_ALLOWANCE = 0.3
"""Seconds a flush may take between reading the counters and committing them."""


async def test_kill_9_under_traffic_loses_at_most_the_last_second(tmp_path: Path) -> None:
    info = server_info(tmp_path, "--allow-loopback-peers")
    log = (tmp_path / "passage.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "passage", *info.args(),
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    try:
        await asyncio.to_thread(wait_until_listening, info, None)
        client = await TurnClient.connect("udp", (info.host, info.turn_port))
        peer = await UdpPeer.bind()
        assert (await client.allocate()).message_class is MessageClass.SUCCESS
        assert error_code(await client.channel_bind(0x4000, peer.address)) is None
        arrivals: list[float] = []

        async def count_arrivals() -> None:
            while True:
                await peer.receive(within=30)
                arrivals.append(time.monotonic())

        counter = asyncio.create_task(count_arrivals())
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < 3.5:
            client.send_channel_data(0x4000, b"m" * SIZE)
            sent += 1
            await asyncio.sleep(1 / RATE)
        process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await asyncio.wait_for(process.wait(), 10)
        await asyncio.sleep(0.2)  # datagrams already in flight to the peer
        counter.cancel()
        await client.close(release=False)
        await peer.close()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        log.close()
    assert process.returncode == -signal.SIGKILL

    database = await open_database(sqlite_url(info.data_dir))
    try:
        [row] = await UsageLedger(database).allocations()
    finally:
        await database.close()
    settled = killed_at - FLUSH_INTERVAL - COMMIT_ALLOWANCE
    must_have = sum(1 for at in arrivals if at <= settled)
    assert must_have > RATE  # the test relayed for well over a second before the kill
    assert must_have <= row.packets_to_peer <= len(arrivals) <= sent
    assert row.bytes_to_peer == row.packets_to_peer * SIZE
    assert row.ended_at is None  # killed: nobody recorded an end
