"""PostgreSQL cut under traffic, ``passage serve --workers 2 --usage-buffer-records 1``:
the parent spills the usage it cannot write to the data directory, writes it all once
the store is back (the ledger then holds exactly the bytes relayed), and what a
``kill -9`` during a cut leaves in the spill is written, once, at the next start.

The cut is a :class:`TcpProxy` between the node and PostgreSQL (the machine's shared
server is never stopped)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest
from cluster_nodes import _postgres_target, _through
from cluster_services import POSTGRES_URL
from tcp_proxy import TcpProxy

from passage.store.spill import SPILL_FILE
from passage.stun import MessageClass
from passage_server import ServerInfo, server_info, wait_until_listening
from turn_client import TurnClient, UdpPeer, error_code

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

CHANNEL = 0x4000
SIZE = 500


@contextmanager
def serve(info: ServerInfo, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "passage", *info.args()],
            stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def spilled_batches(info: ServerInfo) -> list[dict[str, object]]:
    path = info.data_dir / SPILL_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def spilled_bytes(info: ServerInfo) -> int:
    return sum(
        record["bytes_to_peer"]  # type: ignore[index,misc]
        for batch in spilled_batches(info)
        for record in batch["records"]  # type: ignore[attr-defined]
    )


async def test_usage_spilled_during_a_postgresql_cut_lands_once_even_after_kill_9(
    tmp_path: Path, pg_schema: str
) -> None:
    proxy = await TcpProxy(_postgres_target()).start()
    store = await asyncpg.connect(POSTGRES_URL)

    async def ledger_bytes() -> int:
        total = await store.fetchval(
            f'SELECT coalesce(sum(bytes_to_peer), 0) FROM "{pg_schema}".allocations'
        )
        return int(total)

    args = (
        "--workers", "2", "--allow-loopback-peers", "--usage-buffer-records", "1",
        "--database-url", _through(proxy, POSTGRES_URL), "--database-schema", pg_schema,
    )  # fmt: skip
    info = server_info(tmp_path, *args)
    log = tmp_path / "passage.log"
    peer = await UdpPeer.bind()
    relayed = 0

    async def relay(client: TurnClient, packets: int) -> None:
        nonlocal relayed
        for _ in range(packets):
            client.send_channel_data(CHANNEL, b"x" * SIZE)
            await peer.receive()
            relayed += SIZE
            await asyncio.sleep(0.02)

    async def relay_until(client: TurnClient, condition: Callable[[], bool]) -> None:
        for _ in range(300):  # a bound that only keeps a broken run from hanging
            if condition():
                return
            await relay(client, 5)
        raise AssertionError(f"still not true after 1,500 packets: {log.read_text()[-2000:]}")

    try:
        with serve(info, log) as first:
            await asyncio.to_thread(wait_until_listening, info, first, 60)
            client = await TurnClient.connect("udp", (info.host, info.turn_port))
            assert (await client.allocate()).message_class is MessageClass.SUCCESS
            assert error_code(await client.channel_bind(CHANNEL, peer.address)) is None
            await relay(client, 10)
            for _ in range(200):
                if await ledger_bytes() == relayed:
                    break
                await asyncio.sleep(0.05)
            assert await ledger_bytes() == relayed

            proxy.cut()
            await relay_until(client, lambda: len(spilled_batches(info)) >= 2)
            text = log.read_text()
            assert "moved from memory to the spill file" in text and "WARNING" in text
            proxy.restore()
            await relay_until(client, lambda: not (info.data_dir / SPILL_FILE).exists())
            for _ in range(400):  # what the workers still send comes within a flush or two
                if await ledger_bytes() == relayed:
                    break
                await asyncio.sleep(0.05)
            assert await ledger_bytes() == relayed  # every byte once, none lost

            proxy.cut()
            await relay_until(client, lambda: len(spilled_batches(info)) >= 2)
            first.kill()  # the parent; its workers end when their channel to it closes
            first.wait()
            await client.close(release=False)
        in_the_ledger, in_the_spill = await ledger_bytes(), spilled_bytes(info)
        assert in_the_spill > 0
        proxy.restore()

        second = server_info(tmp_path, *args)
        with serve(second, log) as process:
            await asyncio.to_thread(wait_until_listening, second, process, 60)
            assert not (second.data_dir / SPILL_FILE).exists()  # written before it listened
            assert await ledger_bytes() == in_the_ledger + in_the_spill
            assert await ledger_bytes() <= relayed  # nothing twice
            ended = await store.fetch(f'SELECT end_reason FROM "{pg_schema}".allocations')
            assert [row["end_reason"] for row in ended] == ["server_restart"]
    finally:
        await peer.close()
        await store.close()
        await proxy.close()
