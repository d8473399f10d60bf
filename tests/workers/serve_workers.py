"""What the tests of ``passage serve --workers N`` share: clients placed on workers by the
kernel, coturn's uclient and echo peer, relaying and reading the ledger.

Which worker a client reaches is the kernel's choice (``SO_REUSEPORT`` hashes the
5-tuple), so the tests read it from the worker's log line of each allocation; a
client socket keeps its worker as long as it keeps its local port.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from passage.stun import MessageClass
from passage_server import ServerInfo, free_port
from turn_client import TurnClient, UdpPeer

CHANNEL = 0x4000
PAYLOAD = b"x" * 160


def worker_of(log: Path, client_port: int) -> int | None:
    """The worker whose log says it started an allocation for ``client_port``, if any."""
    pattern = rf"\[worker (\d+)\]: allocation \S+ started: .*client=udp 127\.0\.0\.1:{client_port} "
    found = re.findall(pattern, log.read_text())
    return int(found[-1]) if found else None


def worker_pids(log: Path) -> list[int]:
    found = re.search(r"TURN runs in \d+ worker processes: ([\d, ]+)", log.read_text())
    assert found is not None, log.read_text()[-2000:]
    return [int(pid) for pid in found[1].split(", ")]


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return not stat.read().split(") ")[1].startswith("Z")
    except FileNotFoundError:
        return False


def server_pid(info: ServerInfo) -> int:
    return int(json.loads((info.data_dir / "server.json").read_text())["pid"])


def ledger(info: ServerInfo) -> list[sqlite3.Row]:
    with sqlite3.connect(info.database) as database:
        database.row_factory = sqlite3.Row
        return database.execute("SELECT * FROM allocations").fetchall()


@asynccontextmanager
async def clients(
    info: ServerInfo, count: int, user: str = "alice"
) -> AsyncIterator[list[TurnClient]]:
    password = {"alice": info.password, "bob": "builder"}[user]
    opened = [
        await TurnClient.connect("udp", (info.host, info.turn_port), user, password)
        for _ in range(count)
    ]
    try:
        yield opened
    finally:
        for client in opened:
            await client.close(release=False)


async def place(log: Path, opened: list[TurnClient]) -> dict[int, list[TurnClient]]:
    """Allocate with each client and release at once: the clients by the worker they reach."""
    by_worker: dict[int, list[TurnClient]] = {}
    for client in opened:
        assert (await client.allocate()).message_class is MessageClass.SUCCESS
        worker = worker_of(log, client.local[1])
        assert worker is not None, f"no allocation line for {client.local}"
        by_worker.setdefault(worker, []).append(client)
        await client.refresh(0)
    assert sorted(by_worker) == [1, 2], "the kernel put every client on one worker"
    return by_worker


async def relay_some(client: TurnClient, peer: UdpPeer, packets: int) -> None:
    """Bind a channel to ``peer`` and send ``packets`` of :data:`PAYLOAD`; wait until all arrive."""
    assert (await client.channel_bind(CHANNEL, peer.address)).message_class is MessageClass.SUCCESS
    for _ in range(packets):
        client.send_channel_data(CHANNEL, PAYLOAD)
    for _ in range(packets):
        await peer.receive()


@pytest.fixture
def peer_port() -> Iterator[int]:
    """``turnutils_peer``, coturn's UDP echo server, on 127.0.0.1."""
    if shutil.which("turnutils_peer") is None or shutil.which("turnutils_uclient") is None:
        pytest.skip("coturn's turnutils_peer and turnutils_uclient are not installed")
    port = free_port((socket.SOCK_DGRAM,))
    process = subprocess.Popen(
        ["turnutils_peer", "-L", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def uclient(
    info: ServerInfo, peer_port: int, *flags: str, rtcp: bool = False, clients: int = 10
) -> tuple[int, int]:
    """Run coturn's uclient (``clients`` clients, 100 messages of 160 B each, over
    channels); its totals (sent, received) once it saw no loss. ``rtcp``: its default
    RTP/RTCP mode, where each client allocates an even port with EVEN-PORT(R) from one
    socket and the next port with the RESERVATION-TOKEN from another."""
    pairs = () if rtcp else ("-c",)
    done = subprocess.run(
        ["turnutils_uclient", "-u", info.username, "-w", info.password, "-e", info.host,
         "-r", str(peer_port), "-m", str(clients), "-n", "100", "-l", "160", "-z", "5",
         *pairs, *flags, "-p", str(info.turn_port), info.host],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "Total lost packets 0 (0.000000%)" in output, output[-3000:]
    totals = re.findall(
        r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", output, re.M
    )
    return int(totals[-1][0]), int(totals[-1][1])
