"""Many senders at once: 500 concurrent streams over 3 SDK listeners, through ``passage serve``."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from passage.hybrid.entities import ROOT_RULE
from passage.hybrid.sdk import (
    HybridConnectionListener,
    HybridStream,
    KeyTokenProvider,
    RelayEndpoint,
    connect,
)
from passage_server import passage_process

pytestmark = pytest.mark.timeout(180)

SENDERS = 500
LISTENERS = 3


def hc(data_dir: Path, *argv: str) -> str:
    """``passage hc ... --data-dir DIR``; its output."""
    return subprocess.run(
        [sys.executable, "-m", "passage", "hc", *argv, "--data-dir", str(data_dir)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


def root_key(data_dir: Path) -> str:
    shown = hc(data_dir, "rule", "show", ROOT_RULE).splitlines()
    return next(line.split(": ", 1)[1] for line in shown if line.startswith("primary key"))


async def test_500_concurrent_senders_spread_over_3_listeners(tmp_path: Path) -> None:
    with passage_process(tmp_path) as (info, _log):
        hc(info.data_dir, "create", "busy")
        endpoint = RelayEndpoint.parse(f"wss://127.0.0.1:{info.api_port}")
        tls = ssl.create_default_context(cafile=str(info.ca_cert))
        tokens = KeyTokenProvider(ROOT_RULE, root_key(info.data_dir))
        listeners = [
            HybridConnectionListener(endpoint, "busy", tokens, ssl=tls) for _ in range(LISTENERS)
        ]
        served = [0] * LISTENERS
        all_open = asyncio.Event()
        released = asyncio.Event()

        async def echo(index: int, stream: HybridStream) -> None:
            served[index] += 1
            if sum(served) == SENDERS:
                all_open.set()
            async for message in stream:
                await stream.send(message)

        async def serve(index: int) -> None:
            async with asyncio.TaskGroup() as group:
                async for stream in listeners[index]:
                    group.create_task(echo(index, stream))

        async def sender(number: int) -> bytes | str | None:
            stream = await connect(endpoint, "busy", tokens, ssl=tls)
            await released.wait()  # every stream is open at the same time
            await stream.send(f"sender {number}")
            answer = await stream.receive()
            await stream.close()
            return answer

        for listener in listeners:
            await listener.open()
        serving = [asyncio.create_task(serve(i)) for i in range(LISTENERS)]
        senders = [asyncio.create_task(sender(n)) for n in range(SENDERS)]
        await asyncio.wait_for(all_open.wait(), 120)
        released.set()
        answers = await asyncio.gather(*senders)
        for listener in listeners:
            await listener.close()
        await asyncio.gather(*serving)
    assert answers == [f"sender {n}" for n in range(SENDERS)]
    assert sum(served) == SENDERS
    # Random choice: each of 3 listeners gets about 167; fewer than 100 would be a
    # 1-in-10^8 fluke, and a relay that always picked one listener would give 0.
    assert min(served) >= 100, served
