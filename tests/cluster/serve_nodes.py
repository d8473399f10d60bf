"""Real ``passage serve`` processes as cluster nodes on 127.0.0.2, .3 and .4, and the
round-robin TCP load balancer listeners come in through."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cluster_nodes import HOSTS
from cluster_services import POSTGRES_URL, REDIS_URL

from passage_server import (
    ServerInfo,
    free_port,
    server_info,
    stop,
    wait_for_record,
    wait_until_listening,
)


@dataclass
class ServeNode:
    name: str
    info: ServerInfo
    http_port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def host(self) -> str:
        return HOSTS[self.name]

    @property
    def http_base(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def kill(self) -> None:
        """``kill -9``: nothing is flushed, closed or withdrawn."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@contextmanager
def serve_node(
    tmp_path: Path, name: str, *, prefix: str, schema: str, database_url: str = POSTGRES_URL
) -> Iterator[ServeNode]:
    """``passage serve`` as node ``name`` of cluster ``prefix``/``schema``, until exit."""
    host = HOSTS[name]
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    http_port = free_port((socket.SOCK_STREAM,), host=host)
    info = server_info(
        folder, "--http-port", str(http_port), "--database-url", database_url,
        "--database-schema", schema, "--redis-url", REDIS_URL, "--redis-prefix", prefix,
        "--node-name", name, "--public-url", f"ws://{host}:{http_port}",
        "--public-host", host, "--metrics-port", "0", host=host,
    )  # fmt: skip
    log = folder / "passage.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "passage", *info.args()],
            stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )  # fmt: skip
        try:
            wait_until_listening(info, process)
            wait_for_record(info, process)
            yield ServeNode(name, info, http_port, process, log)
        finally:
            stop(process, timeout=20)


class RoundRobin:
    """A TCP load balancer: each connection goes to the next upstream that accepts it."""

    def __init__(self, upstreams: list[tuple[str, int]]) -> None:
        self.upstreams = upstreams
        self.port = 0
        self._next = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> RoundRobin:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(len(self.upstreams)):
            target = self.upstreams[self._next % len(self.upstreams)]
            self._next += 1
            try:
                up_reader, up_writer = await asyncio.open_connection(*target)
            except OSError:
                continue
            for source, sink in ((reader, up_writer), (up_reader, writer)):
                task = asyncio.create_task(_pump(source, sink))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return
        writer.transport.abort()


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (OSError, ConnectionError):
        pass
    finally:
        with contextlib.suppress(Exception):
            sink.transport.abort()
