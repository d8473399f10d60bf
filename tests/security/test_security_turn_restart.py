"""After ``kill -9`` and a restart, the allocations left live are closed and billed as they were.

Issue 10: the ledger survived ``kill -9``, but the allocations live at the
kill kept ``ended_at`` NULL and looked live for ever. At start a node now
closes the allocations an earlier run of itself left open, with end reason
``server_restart`` and ``ended_at`` = the last moment the ledger saw them; the
counters and the hourly rollup keep exactly what was recorded (nothing more is
billed, nothing lost).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from passage.store.database import open_database, sqlite_url
from passage.store.ledger import AllocationUsage, UsageBucket, UsageLedger
from passage.stun import MessageClass
from passage_server import passage_process, server_info, wait_until_listening
from turn_client import TurnClient, UdpPeer, error_code


async def ledger_rows(data_dir: Path) -> tuple[list[AllocationUsage], list[UsageBucket]]:
    database = await open_database(sqlite_url(data_dir))
    try:
        ledger = UsageLedger(database)
        return await ledger.allocations(), await ledger.usage(start=0, end=4e9)
    finally:
        await database.close()


async def test_allocations_left_open_by_a_killed_run_are_closed_at_the_next_start(
    tmp_path: Path,
) -> None:
    info = server_info(tmp_path, "--allow-loopback-peers")
    with (tmp_path / "killed.log").open("wb") as log:
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
            for _ in range(5):
                client.send_channel_data(0x4000, b"billed" * 10)
                await peer.receive()
            await asyncio.sleep(1.5)  # a flush or two: the ledger has the traffic
            process.send_signal(signal.SIGKILL)
            await asyncio.wait_for(process.wait(), 10)
            await client.close(release=False)
            await peer.close()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    [before], usage_before = await ledger_rows(info.data_dir)
    assert before.ended_at is None and before.packets_to_peer == 5

    with passage_process(tmp_path) as (restarted, log_path):  # the same data directory
        assert restarted.data_dir == info.data_dir
        [after], usage_after = await ledger_rows(info.data_dir)
    assert after.end_reason == "server_restart"
    assert after.ended_at == before.last_seen_at == after.last_seen_at
    assert after.duration_seconds == before.duration_seconds
    assert (after.bytes_to_peer, after.packets_to_peer) == (300, 5)  # billed as recorded
    assert usage_after == usage_before
    text = log_path.read_text()
    assert "closed 1 allocation left open by an earlier run of this node" in text
