"""Instructions a server executes per relayed UDP ChannelData packet, under callgrind.

Load-independent where CPU seconds on a shared machine are not: each server
(coturn, Passage with ``--fast-path off``, Passage with the C fast path) runs
under ``valgrind --tool=callgrind --instr-atstart=no``; once its client has
allocated and bound a channel, ``callgrind_control --instr=on`` starts the
count, the client relays ``--messages`` ChannelData messages of 160 B to
``turnutils_peer``, which echoes them, and ``--instr=off`` stops it. Start-up,
allocation and shutdown are not counted; the server's timers during the relay
are. The client keeps ``--window`` messages in flight, so a server that reads
in batches may get a few per system call, as under real load. Callgrind counts
user-space instructions of every thread of the server; the kernel's share (the
system calls themselves) is not in it: ``turn_relay.py`` measures CPU time.

Usage: ``python bench/relay_instructions.py``. Only 127.0.0.1 is ever used.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from passage.turnclient.aio.connection import TurnConnection
from passage.turnclient.client import Credentials
from servers import (
    COTURN,
    HOST,
    PASSAGE,
    PASSAGE_PYTHON,
    PASSWORD,
    USER,
    EchoPeer,
    RunningServer,
    ServerKind,
)

PAYLOAD = bytes(160)
CHANNEL = 0x4000


@dataclass(frozen=True)
class Callgrind(ServerKind):
    """A server started under callgrind, its totals written to ``out``."""

    inner: ServerKind = PASSAGE
    out: str = ""

    def command(self, port: int, data_dir: Path) -> list[str]:
        return [
            "valgrind", "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={self.out}",
            *self.inner.command(port, data_dir),
        ]  # fmt: skip


def instrument(pid: int, on: bool) -> None:
    """Start or stop callgrind's count in the server ``pid`` (it answers at its next wake-up)."""
    subprocess.run(
        ["callgrind_control", f"--instr={'on' if on else 'off'}", str(pid)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


async def relay(pid: int, port: int, peer_port: int, messages: int, window: int) -> int:
    """Allocate, bind a channel to the echo peer, relay ``messages`` while callgrind counts;
    the packets the server relayed (both directions)."""
    connection = await TurnConnection.open("udp", (HOST, port), Credentials(USER, PASSWORD))
    try:
        await connection.allocate(within=60.0)
        await connection.channel_bind(CHANNEL, (HOST, peer_port), within=60.0)
        for _ in range(window):  # warm: the first packets of a path are not its steady cost
            connection.send_channel_data(CHANNEL, PAYLOAD)
            await connection.receive(within=10.0)
        await asyncio.to_thread(instrument, pid, True)
        echoed = 0
        for start in range(0, messages, window):
            burst = min(window, messages - start)
            for _ in range(burst):
                connection.send_channel_data(CHANNEL, PAYLOAD)
            for _ in range(burst):
                try:
                    await connection.receive(within=10.0)
                    echoed += 1
                except Exception:
                    break
        await asyncio.to_thread(instrument, pid, False)
        await connection.refresh(0, within=60.0)
    finally:
        await connection.close(release=False)
    return messages + echoed


def run_once(
    kind: ServerKind, peer: EchoPeer, messages: int, window: int, work: Path
) -> tuple[int, int]:
    """(instructions, relayed packets) of one run."""
    out = work / f"{kind.name}.{messages}.callgrind"
    wrapped = Callgrind(kind.name, kind.relay_ports, inner=kind, out=str(out))
    data = work / f"{kind.name}-{messages}"
    started = time.monotonic()
    with RunningServer(wrapped, data, work / f"{kind.name}.log", slow=True) as server:
        print(f"{kind.name}: ready after {time.monotonic() - started:.0f} s", file=sys.stderr)
        relayed = asyncio.run(relay(server.pid, server.port, peer.port, messages, window))
        print(f"{kind.name}: relayed after {time.monotonic() - started:.0f} s", file=sys.stderr)
    print(f"{kind.name}: stopped after {time.monotonic() - started:.0f} s", file=sys.stderr)
    totals = 0
    for path in work.glob(out.name + "*"):  # coturn's threads may each write a file
        match = re.search(r"^totals: (\d+)", path.read_text(), re.M)
        if match:
            totals += int(match[1])
    return totals, relayed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=5000, help="relayed each way")
    parser.add_argument("--window", type=int, default=8, help="messages in flight")
    parser.add_argument(
        "--servers", default="coturn,passage-python,passage", help="comma-separated"
    )
    arguments = parser.parse_args()
    kinds = {kind.name: kind for kind in (COTURN, PASSAGE_PYTHON, PASSAGE)}
    lines = [
        "| server | instructions counted | relayed packets (both ways) "
        "| **instructions per relayed packet** |",
        "|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="passage-instructions-") as root:
        work = Path(root)
        peer = EchoPeer(work / "peer.log")
        try:
            for name in arguments.servers.split(","):
                kind = kinds[name]
                counted, relayed = run_once(kind, peer, arguments.messages, arguments.window, work)
                per_packet = counted / relayed if relayed else float("nan")
                lines.append(f"| {name} | {counted:,} | {relayed:,} | **{per_packet:,.0f}** |")
                print(lines[-1], file=sys.stderr)
        finally:
            peer.stop()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
