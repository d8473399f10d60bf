"""Cluster mode: Hybrid Connections set-up and throughput same-node vs cross-node, and how
long a revocation takes to hold on another node.

Three ``passage serve`` processes on 127.0.0.2, .3 and .4 share the PostgreSQL and Redis
that ``make test`` starts (a fresh schema and key prefix, removed afterwards). Node C is
given a Redis port nobody listens on, so it runs degraded: a revocation reaches it only
through the 1 s store poll, which shows what the events save.

- **Hybrid Connections**: a ``passage.hybrid.sdk`` echo listener in this process,
  connected to node A (same-node) or to node B (cross-node: A asks B over Redis to pass
  the ``accept``, the listener meets the sender on A). A sender on node A opens
  ``--connections`` streams one after another (p50 and p99 of the open, checked with
  one echo), then sends ``--megabytes`` MiB on one stream.
- **Revocation**: an identity's relay credential allocates on node B (or C); the
  identity is revoked through node A's API; the time from the API's answer until
  node B refuses a Refresh of that allocation (Refreshes sent back to back).
  ``--revocations`` identities, p50 and max.

Usage: ``.venv/bin/python bench/cluster.py [--quick] [--markdown out.md]``.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import redis.asyncio as redis

from passage.addresses import Address
from passage.api.service import new_key_text
from passage.hybrid.admin import HybridAdmin
from passage.hybrid.entities import ROOT_RULE
from passage.hybrid.sas import Rights
from passage.hybrid.sdk import HybridConnectionListener, KeyTokenProvider, RelayEndpoint, connect
from passage.identity.hmac_auth import sign_request
from passage.identity.keys import decode_key
from passage.mounts import RESERVED_NAMES
from passage.store.database import open_database
from passage.store.hybrid import HybridStore
from passage.store.identities import IdentityStore
from passage.stun import MessageClass
from passage.turnclient import Credentials, error_code
from passage.turnclient.aio import TurnConnection

POSTGRES_URL = os.environ.get("PASSAGE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test")
REDIS_URL = os.environ.get("PASSAGE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
KEY = "bench-cluster-root-key-0123456789"
NAME = "bench"
PORTS = 35000
"""Nodes use ports 35000-35099 (node i: 35000 + 30 i ...), relay ports 35100-35999."""


@dataclass(frozen=True)
class Node:
    name: str
    host: str
    turn_port: int
    http_port: int

    @property
    def http_base(self) -> str:
        return f"http://{self.host}:{self.http_port}"


@contextmanager
def nodes(folder: Path, schema: str, prefix: str) -> Iterator[list[Node]]:
    started: list[subprocess.Popen[bytes]] = []
    found = []
    try:
        for index, (name, host) in enumerate(
            (("a", "127.0.0.2"), ("b", "127.0.0.3"), ("c", "127.0.0.4"))
        ):
            turn, http = PORTS + 10 * index, PORTS + 10 * index + 3
            relay = PORTS + 100 + 300 * index
            redis_url = REDIS_URL if name != "c" else "redis://127.0.0.1:1/0"
            argv = [
                sys.executable, "-m", "passage", "serve", "--data-dir", str(folder / name),
                "--listen-ip", host, "--turn-port", str(turn), "--turns-port", "0",
                "--api-port", "0", "--http-port", str(http), "--metrics-port", "0",
                "--relay-ports", f"{relay}-{relay + 299}", "--database-url", POSTGRES_URL,
                "--database-schema", schema, "--redis-url", redis_url, "--redis-prefix", prefix,
                "--node-name", name, "--public-url", f"ws://{host}:{http}", "--public-host", host,
                "--log-level", "warning",
            ]  # fmt: skip
            log = (folder / f"{name}.log").open("wb")
            started.append(subprocess.Popen(argv, stdout=log, stderr=log))
            found.append(Node(name, host, turn, http))
        for node in found:
            _wait_listening(node.host, node.http_port)
        yield found
    finally:
        for process in started:
            process.send_signal(signal.SIGINT)  # at once: SIGTERM would drain live allocations
        for process in started:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_listening(host: str, port: int) -> None:
    import socket

    for _ in range(600):
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port}")


async def prepare_store(schema: str) -> bytes:
    """The hybrid connection and its root rule's key; the access key for the API."""
    database = await open_database(POSTGRES_URL, schema=schema)
    try:
        admin = HybridAdmin(
            HybridStore(database), clock=time.time, new_key=new_key_text,
            reserved_names=RESERVED_NAMES,
        )  # fmt: skip
        await admin.create_connection(NAME)
        await admin.put_rule(None, ROOT_RULE, Rights.MANAGE, primary_key=KEY)
        keys = await IdentityStore(database).keys()
    finally:
        await database.close()
    return decode_key(keys["primary"])


# --- Hybrid Connections -------------------------------------------------------------


async def echo(listener: HybridConnectionListener) -> None:
    async for stream in listener:
        asyncio.get_running_loop().create_task(_echo_stream(stream))


async def _echo_stream(stream: object) -> None:
    count = 0
    while (message := await stream.receive()) is not None:  # type: ignore[attr-defined]
        if isinstance(message, bytes):
            count += len(message)
        elif message == "done":
            await stream.send(f"done {count}")  # type: ignore[attr-defined]
        else:
            await stream.send(message)  # type: ignore[attr-defined]


async def hybrid(
    sender: Node, listener_node: Node, arguments: argparse.Namespace
) -> dict[str, float]:
    tokens = KeyTokenProvider(ROOT_RULE, KEY)
    at_listener = RelayEndpoint.parse(f"ws://{listener_node.host}:{listener_node.http_port}")
    at_sender = RelayEndpoint.parse(f"ws://{sender.host}:{sender.http_port}")
    async with HybridConnectionListener(at_listener, NAME, tokens) as listener:
        serving = asyncio.create_task(echo(listener))
        await asyncio.sleep(0.5)  # the registration reaches Redis
        times = []
        for index in range(arguments.connections + 20):
            started = time.perf_counter()
            stream = await connect(at_sender, NAME, tokens)
            opened = (time.perf_counter() - started) * 1000
            await stream.send("ping")
            assert await stream.receive() == "ping"
            await stream.close()
            if index >= 20:  # the first 20 warm up
                times.append(opened)
        stream = await connect(at_sender, NAME, tokens)
        payload = os.urandom(64 * 1024)
        count = arguments.megabytes * 16
        started = time.perf_counter()
        for _ in range(count):
            await stream.send(payload)
        await stream.send("done")
        answer = await stream.receive()
        elapsed = time.perf_counter() - started
        assert answer == f"done {count * len(payload)}", answer
        await stream.close()
        serving.cancel()
    times.sort()
    return {
        "p50": statistics.median(times),
        "p99": times[min(len(times) - 1, int(len(times) * 0.99))],
        "mib_s": arguments.megabytes / elapsed,
    }


# --- revocation -------------------------------------------------------------------


async def api(
    http: aiohttp.ClientSession, node: Node, secret: bytes, method: str, path: str, body: object
) -> dict[str, object] | None:
    data = json.dumps(body).encode() if body is not None else b""
    headers = sign_request(
        method, path, f"{node.host}:{node.http_port}", data, secret,
        email.utils.formatdate(usegmt=True),
    )  # fmt: skip
    if data:
        headers["Content-Type"] = "application/json"
    async with http.request(method, node.http_base + path, data=data, headers=headers) as reply:
        raw = await reply.read()
        if reply.status >= 300:
            raise RuntimeError(f"{method} {path}: {reply.status} {raw[:200]!r}")
        return json.loads(raw) if raw else None


async def revocation(http: aiohttp.ClientSession, a: Node, target: Node, secret: bytes) -> float:
    """Seconds from node A's answer to the revocation until ``target`` refuses an Allocate."""
    created = await api(http, a, secret, "POST", "/identities?api-version=2023-10-01", {})
    assert created is not None
    identity = str(created["identity"]["id"])  # type: ignore[index]
    relay_path = "/networkTraversal/:issueRelayConfiguration?api-version=2022-03-01-preview"
    configuration = await api(http, a, secret, "POST", relay_path, {"id": identity})
    assert configuration is not None
    server = configuration["iceServers"][0]  # type: ignore[index]
    credentials = Credentials(server["username"], server["credential"])
    server_address: Address = (target.host, target.turn_port)
    client = await TurnConnection.open("udp", server_address, credentials)
    try:
        assert (await client.allocate()).message_class is MessageClass.SUCCESS
        revoke = f"/identities/{identity}/:revokeAccessTokens?api-version=2023-10-01"
        await api(http, a, secret, "POST", revoke, None)
        revoked = time.perf_counter()
        while True:  # Refreshes back to back until one is refused
            answer = await client.refresh(600)
            if answer.message_class is MessageClass.ERROR:
                assert error_code(answer) == 401, error_code(answer)
                return time.perf_counter() - revoked
            if time.perf_counter() - revoked > 10:
                raise RuntimeError("still allowed after 10 s")
    finally:
        await client.close(release=False)


async def run(arguments: argparse.Namespace) -> str:
    schema, prefix = f"bench_cluster_{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:8]}"
    folder = Path(tempfile.mkdtemp(prefix="passage-bench-cluster-"))
    try:
        with nodes(folder, schema, prefix) as (a, b, c):
            secret = await prepare_store(schema)
            await asyncio.sleep(1.5)  # every node has polled the rule in
            same = await hybrid(a, a, arguments)
            cross = await hybrid(a, b, arguments)
            async with aiohttp.ClientSession() as http:
                by_event = [
                    await revocation(http, a, b, secret) for _ in range(arguments.revocations)
                ]
                by_poll = [
                    await revocation(http, a, c, secret) for _ in range(arguments.revocations)
                ]
    finally:
        admin = await asyncpg.connect(POSTGRES_URL)
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
        store = redis.Redis.from_url(REDIS_URL)
        keys = [key async for key in store.scan_iter(f"{prefix}:*")]
        if keys:
            await store.delete(*keys)
        await store.aclose()
    ms = [1000 * statistics.median(by_event), 1000 * max(by_event)]
    ms += [1000 * statistics.median(by_poll), 1000 * max(by_poll)]

    def row(label: str, found: dict[str, float]) -> str:
        return f"| {label} | {found['p50']:.2f} | {found['p99']:.2f} | {found['mib_s']:.0f} |"

    return "\n".join(
        [
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
            f"{arguments.connections} connections, {arguments.megabytes} MiB, "
            f"{arguments.revocations} revocations per row",
            "",
            "| Hybrid Connections, sender on node A | set-up p50 ms | set-up p99 ms "
            "| MiB/s (one stream) |",
            "| --- | ---: | ---: | ---: |",
            row("listener on A (same node)", same),
            row("listener on B (cross-node, redirect)", cross),
            "",
            "| revocation on node A, until node B refuses a Refresh | p50 ms | max ms |",
            "| --- | ---: | ---: |",
            f"| B with Redis (the `revoked` event) | {ms[0]:.1f} | {ms[1]:.1f} |",
            f"| C without Redis (the 1 s store poll alone) | {ms[2]:.1f} | {ms[3]:.1f} |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--megabytes", type=int, default=64)
    parser.add_argument("--revocations", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="20 connections, 8 MiB, 5 revocations")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.connections, arguments.megabytes, arguments.revocations = 20, 8, 5
    text = asyncio.run(run(arguments))
    print(text)
    if arguments.markdown is not None:
        arguments.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
