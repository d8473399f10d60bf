"""Hybrid Connections: throughput and set-up time through Passage, next to a direct connection.

One client (aiohttp's WebSocket client, in this process) talks to the same
sink two ways: directly to a WebSocket server on loopback, and through
``passage serve`` to a ``passage.hybrid.sdk`` listener (``bench/hybrid_peers.py``;
each end is its own process, so the client, the relay and the far end each
have a core's worth of scheduling). Both over plain ``ws://`` and over TLS.

- **Throughput**: one stream sends ``--megabytes`` of 64 KiB binary messages,
  then ``done``; the far end answers with the byte count. Bytes over the time
  from the first send to that answer, the median of ``--repeat`` runs taken in
  turn with the other paths (loopback throughput on 2 cores swings with
  scheduling; interleaving gives every path the same luck). Also the CPU
  seconds ``passage serve`` spent per GiB relayed, which swings much less.
- **Set-up**: ``--connections`` streams opened one after another (a new
  client session each, as a new process would), from the start of the
  handshake until it is open; p50 and p99. Through the relay that includes
  the ``accept`` to the listener and its rendezvous connection.

Usage: ``.venv/bin/python bench/hybrid_relay.py [--quick] [--markdown out.md]``.
Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from passage.hybrid.sdk import KeyTokenProvider, RelayEndpoint, connect
from servers import HOST, cpu_seconds, free_port

NAME = "bench"
ROOT_RULE = "RootManageSharedAccessKey"
CHUNK = 64 * 1024

Open = Callable[[], Awaitable["Stream"]]


@dataclass
class Stream:
    """What the client needs of either kind of connection."""

    send_bytes: Callable[[bytes], Awaitable[None]]
    send_text: Callable[[str], Awaitable[None]]
    receive_text: Callable[[], Awaitable[str]]
    close: Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Target:
    label: str
    open: Open


@dataclass(frozen=True)
class Result:
    label: str
    mib_per_second: float
    setup_ms: tuple[float, float]
    """p50, p99."""
    relay_cpu_per_gib: float | None
    """CPU seconds ``passage serve`` spent per GiB relayed (None for direct)."""


def _passage(*argv: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "passage", *argv], check=True, capture_output=True, text=True
    ).stdout


def _start(argv: Sequence[str], log: Path) -> subprocess.Popen[str]:
    out = log.open("w")
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=out, text=True)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{argv[2:4]} did not start: {log.read_text()[-2000:]}")
    return process


def _wait_listening(port: int) -> None:
    import socket

    for _ in range(400):
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


async def direct_stream(url: str, tls: ssl.SSLContext | None) -> Stream:
    session = aiohttp.ClientSession()
    websocket = await session.ws_connect(url, ssl=tls if tls else True, max_msg_size=0)

    async def close() -> None:
        await websocket.close()
        await session.close()

    async def receive_text() -> str:
        return str((await websocket.receive()).data)

    return Stream(websocket.send_bytes, websocket.send_str, receive_text, close)


async def relayed_stream(
    endpoint: RelayEndpoint, tokens: KeyTokenProvider, tls: ssl.SSLContext | None
) -> Stream:
    stream = await connect(endpoint, NAME, tokens, ssl=tls)

    async def receive_text() -> str:
        return str(await stream.receive())

    async def send_bytes(data: bytes) -> None:
        await stream.send(data)

    async def send_text(text: str) -> None:
        await stream.send(text)

    return Stream(send_bytes, send_text, receive_text, stream.close)


async def throughput_once(target: Target, megabytes: int) -> float:
    """MiB/s of one run of ``megabytes`` MiB on one new stream."""
    payload = os.urandom(CHUNK)
    count = megabytes * 1024 * 1024 // CHUNK
    stream = await target.open()
    started = time.perf_counter()
    for _ in range(count):
        await stream.send_bytes(payload)
    await stream.send_text("done")
    answer = await stream.receive_text()
    elapsed = time.perf_counter() - started
    await stream.close()
    if answer != f"done {count * CHUNK}":
        raise RuntimeError(f"{target.label}: the far end said {answer!r}")
    return megabytes / elapsed


async def setup_times(target: Target, connections: int) -> tuple[float, float]:
    """p50 and p99 in ms of opening a stream (checked with one ping each)."""
    times = []
    for _ in range(connections):
        started = time.perf_counter()
        stream = await target.open()
        times.append((time.perf_counter() - started) * 1000)
        await stream.send_text("ping")
        if await stream.receive_text() != "pong":
            raise RuntimeError(f"{target.label}: no pong")
        await stream.close()
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


async def measure(
    targets: Sequence[Target], arguments: argparse.Namespace, relay_pid: int
) -> list[Result]:
    """Throughput runs interleaved (direct, relayed, direct, ...), so that whatever else
    the machine does falls on both alike; then the set-up samples of each."""
    rates: dict[str, list[float]] = {target.label: [] for target in targets}
    relay_cpu: dict[str, float] = {target.label: 0.0 for target in targets}
    for target in targets:
        await setup_times(target, 20)  # warm-up: imports, first TLS handshakes
    for _ in range(arguments.repeat):
        for target in targets:
            before = cpu_seconds(relay_pid)
            rates[target.label].append(await throughput_once(target, arguments.megabytes))
            relay_cpu[target.label] += cpu_seconds(relay_pid) - before
    results = []
    for target in targets:
        setup = await setup_times(target, arguments.connections)
        rate = statistics.median(rates[target.label])
        gib = arguments.megabytes * arguments.repeat / 1024
        cpu = relay_cpu[target.label] / gib if "relayed" in target.label else None
        print(f"{target.label}: {rate:.0f} MiB/s, set-up p50 {setup[0]:.2f} ms", file=sys.stderr)
        results.append(Result(target.label, rate, setup, cpu))
    return results


def report(results: Sequence[Result], arguments: argparse.Namespace) -> str:
    by_label = {result.label: result for result in results}
    lines = [
        f"{arguments.megabytes} MiB per stream, median of {arguments.repeat} interleaved runs; "
        f"set-up over {arguments.connections} connections",
        "",
        "| transport | path | **throughput MiB/s** | relayed/direct | relay CPU s/GiB "
        "| **set-up p50 ms** | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        transport, path = result.label.split()
        direct = by_label[f"{transport} direct"]
        ratio = (
            "" if path == "direct" else f"**{result.mib_per_second / direct.mib_per_second:.2f}×**"
        )
        cpu = f"{result.relay_cpu_per_gib:.2f}" if result.relay_cpu_per_gib is not None else ""
        lines.append(
            f"| {transport} | {path} | **{result.mib_per_second:.0f}** | {ratio} | {cpu} | "
            f"**{result.setup_ms[0]:.2f}** | {result.setup_ms[1]:.2f} |"
        )
    return "\n".join(lines)


def run(arguments: argparse.Namespace, work: Path) -> list[Result]:
    data_dir = work / "passage"
    api_port, http_port, direct_port = free_port(), free_port(), free_port()
    while direct_port + 1 in (api_port, http_port):
        direct_port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "passage", "serve", "--data-dir", str(data_dir),
         "--listen-ip", HOST, "--turn-port", str(free_port()), "--turns-port", "0",
         "--api-port", str(api_port), "--http-port", str(http_port),
         "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=(work / "passage.log").open("w"),
    )  # fmt: skip
    processes: list[subprocess.Popen[str] | subprocess.Popen[bytes]] = [server]
    try:
        _wait_listening(api_port)
        _passage("hc", "create", NAME, "--data-dir", str(data_dir))
        shown = _passage("hc", "rule", "show", ROOT_RULE, "--data-dir", str(data_dir))
        key = next(line.split(": ", 1)[1] for line in shown.splitlines() if "primary" in line)
        ca, cert, cert_key = (str(data_dir / f) for f in ("ca.pem", "server.pem", "server.key"))
        peers = str(Path(__file__).with_name("hybrid_peers.py"))
        processes.append(
            _start([sys.executable, peers, "direct", str(direct_port), cert, cert_key],
                   work / "direct.log")
        )  # fmt: skip
        # One listener: it meets each sender at the address the relay names, ws:// or
        # wss:// as the sender came, whatever its own control channel uses.
        processes.append(
            _start([sys.executable, peers, "listener", f"wss://{HOST}:{api_port}", NAME,
                    ROOT_RULE, key, ca], work / "listener.log")
        )  # fmt: skip
        tls = ssl.create_default_context(cafile=ca)
        tokens = KeyTokenProvider(ROOT_RULE, key)
        plain = RelayEndpoint.parse(f"ws://{HOST}:{http_port}")
        secure = RelayEndpoint.parse(f"wss://{HOST}:{api_port}")
        targets = [
            Target("ws direct", lambda: direct_stream(f"ws://{HOST}:{direct_port}/", None)),
            Target("ws relayed", lambda: relayed_stream(plain, tokens, None)),
            Target("wss direct", lambda: direct_stream(f"wss://{HOST}:{direct_port + 1}/", tls)),
            Target("wss relayed", lambda: relayed_stream(secure, tokens, tls)),
        ]
        return _run_loop(measure(targets, arguments, server.pid))
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=20)


def _run_loop(work: Awaitable[list[Result]]) -> list[Result]:
    try:
        import uvloop

        return uvloop.run(work)  # type: ignore[no-any-return]
    except ImportError:
        return asyncio.run(work)  # type: ignore[arg-type]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="64 MiB, 200 connections, 1 run")
    parser.add_argument("--megabytes", type=int, help="MiB per throughput run (default 256)")
    parser.add_argument("--connections", type=int, help="set-up samples (default 1000)")
    parser.add_argument("--repeat", type=int, help="throughput runs of each (default 7)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    arguments = parser.parse_args(argv)
    quick = arguments.quick
    arguments.megabytes = arguments.megabytes or (64 if quick else 256)
    arguments.connections = arguments.connections or (200 if quick else 1000)
    arguments.repeat = arguments.repeat or (1 if quick else 7)
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parse(argv)
    work = Path(tempfile.mkdtemp(prefix="passage-hybrid-bench-"))
    try:
        results = run(arguments, work)
    finally:
        if arguments.keep:
            print(f"logs in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    table = report(results, arguments)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    text = f"{table}\n\n({machine})"
    print(text)
    if arguments.markdown:
        arguments.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
