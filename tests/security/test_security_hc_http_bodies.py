"""HTTP through a hybrid connection carries bodies of any size intact (issue 10).

Real processes, as a user runs them: ``passage serve``, ``passage expose NAME
--http`` in front of a local aiohttp service, and curl as the sender. Before,
responses over 64 KiB were cut to what aiohttp had buffered (200, with a
rewritten Content-Length) and uploads over 16 MiB got 413. Now both bodies
stream as rendezvous frames, so: downloads of 70 KB, 200 KB and 100 MB and an
upload of 100 MB arrive whole (checked by SHA-256), a slow client gets every
byte, a body the service cuts short reaches curl as an error (never as a
shorter 200), a client that goes away mid-body is seen by the local service,
and the relay's memory does not grow with the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from passage_server import ServerInfo, free_port, passage_command, passage_process

pytestmark = pytest.mark.timeout(240)

BLOCK = bytes(i % 251 for i in range(251 * 261))  # 65,511 bytes: a prime period
MB = 1_000_000


def pattern(size: int) -> Iterator[bytes]:
    """``size`` bytes of the repeating pattern, in blocks."""
    whole, left = divmod(size, len(BLOCK))
    for _ in range(whole):
        yield BLOCK
    if left:
        yield BLOCK[:left]


def digest(size: int) -> str:
    sha = hashlib.sha256()
    for block in pattern(size):
        sha.update(block)
    return sha.hexdigest()


def passage(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSAGE_")}
    return subprocess.run(
        [sys.executable, "-m", "passage", *argv], capture_output=True, text=True, env=env
    )


@contextlib.contextmanager
def running(*argv: str) -> Iterator[subprocess.Popen[str]]:
    """A ``passage`` process that printed its first line (it is ready); stopped with SIGTERM."""
    with passage_command(*argv) as (process, _):
        yield process


class Service:
    """The local HTTP service behind ``passage expose --http``."""

    def __init__(self) -> None:
        self.disconnects: asyncio.Queue[str] = asyncio.Queue()
        self.uploading = asyncio.Event()

    async def download(self, request: web.Request) -> web.StreamResponse:
        size = int(request.match_info["size"])
        answer = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        answer.content_length = size
        await answer.prepare(request)
        cut = int(request.query.get("cut", size))  # the service dies after this many bytes
        sent = 0
        try:
            for block in pattern(size):
                if sent + len(block) > cut:
                    await answer.write(block[: cut - sent])
                    assert request.transport is not None
                    request.transport.abort()
                    return answer
                await answer.write(block)
                sent += len(block)
        except ConnectionError:
            await self.disconnects.put(f"download after {sent}")
            return answer
        await answer.write_eof()
        return answer

    async def upload(self, request: web.Request) -> web.Response:
        sha, length = hashlib.sha256(), 0
        try:
            async for chunk in request.content.iter_chunked(65536):
                sha.update(chunk)
                length += len(chunk)
                self.uploading.set()
        except Exception as error:  # the client (through the relay) went away
            await self.disconnects.put(f"upload after {length}: {type(error).__name__}")
            raise
        return web.json_response({"length": length, "sha256": sha.hexdigest()})


@contextlib.asynccontextmanager
async def exposed(info: ServerInfo, service: Service) -> AsyncIterator[str]:
    """``passage expose web --http`` in front of ``service``; yields the public URL."""
    assert passage("hc", "create", "web", "--data-dir", str(info.data_dir)).returncode == 0
    app = web.Application()
    app.router.add_get("/bytes/{size}", service.download)
    app.router.add_post("/upload", service.upload)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port((socket.SOCK_STREAM,))
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        with running(
            "expose", "web", "--to", f"127.0.0.1:{port}", "--http", "--data-dir", str(info.data_dir)
        ):
            yield f"https://127.0.0.1:{info.api_port}/web"
    finally:
        await runner.cleanup()


def token(info: ServerInfo) -> str:
    base = f"http://127.0.0.1:{info.api_port}"
    return passage(
        "hc", "token", "web", "--endpoint", base, "--data-dir", str(info.data_dir)
    ).stdout.strip()


async def curl(info: ServerInfo, *argv: str) -> subprocess.CompletedProcess[bytes]:
    command = ["curl", "-sS", "--cacert", str(info.ca_cert), "-H", f"Authorization: {token(info)}"]
    return await asyncio.to_thread(subprocess.run, [*command, *argv], capture_output=True)


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            sha.update(block)
    return sha.hexdigest()


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerInfo]:
    with passage_process(tmp_path) as (info, _log):
        yield info


async def test_downloads_and_uploads_of_any_size_arrive_whole(
    server: ServerInfo, tmp_path: Path
) -> None:
    service = Service()
    server_pid = int(json.loads((server.data_dir / "server.json").read_text())["pid"])
    async with exposed(server, service) as url:
        for size in (70 * 1000, 200 * 1000, 100 * MB):
            out = tmp_path / f"down-{size}"
            got = await curl(server, "-o", str(out), "-w", "%{http_code}", f"{url}/bytes/{size}")
            assert got.returncode == 0, got.stderr
            assert got.stdout == b"200"
            assert out.stat().st_size == size
            assert file_digest(out) == digest(size), size
            out.unlink()
        upload = tmp_path / "upload"
        with upload.open("wb") as file:
            for block in pattern(100 * MB):
                file.write(block)
        got = await curl(
            server, "--data-binary", f"@{upload}", "-H", "Content-Type: application/octet-stream",
            f"{url}/upload",
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout) == {"length": 100 * MB, "sha256": digest(100 * MB)}
        upload.unlink()
    # 200 MB went through the relay; it held a window of it at a time, not a body.
    assert peak_rss(server_pid) < 160 * MB


async def test_a_slow_client_gets_every_byte(server: ServerInfo, tmp_path: Path) -> None:
    service = Service()
    async with exposed(server, service) as url:
        out = tmp_path / "slow"
        got = await curl(server, "--limit-rate", "1M", "-o", str(out), f"{url}/bytes/{3 * MB}")
        assert got.returncode == 0, got.stderr
        assert file_digest(out) == digest(3 * MB)


async def test_a_body_the_service_cuts_short_is_an_error_not_a_short_200(
    server: ServerInfo, tmp_path: Path
) -> None:
    service = Service()
    async with exposed(server, service) as url:
        out = tmp_path / "cut"
        got = await curl(server, "-o", str(out), f"{url}/bytes/{2 * MB}?cut={700 * 1000}")
        assert got.returncode != 0  # 18 (partial file) or 56 (receive failure), never 0
        assert out.stat().st_size < 2 * MB


async def test_a_client_that_goes_away_mid_body_is_seen_by_the_service(
    server: ServerInfo,
) -> None:
    service = Service()
    async with exposed(server, service):
        context = ssl.create_default_context(cafile=str(server.ca_cert))
        host, port = "127.0.0.1", server.api_port
        # A download of 100 MB, read for 1 MB, then dropped.
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        writer.write(
            f"GET /web/bytes/{100 * MB} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: {token(server)}\r\n\r\n".encode()
        )
        await reader.readexactly(MB)
        writer.transport.abort()
        seen = await asyncio.wait_for(service.disconnects.get(), 60)
        assert seen.startswith("download after ")
        assert int(seen.split()[-1]) < 100 * MB
        # An upload of 100 MB announced, 1 MB sent, then dropped.
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        writer.write(
            f"POST /web/upload HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: {token(server)}\r\nContent-Length: {100 * MB}\r\n\r\n".encode()
        )
        writer.write(BLOCK * 16)
        await writer.drain()
        await asyncio.wait_for(service.uploading.wait(), 60)  # the service is reading it
        writer.transport.abort()
        seen = await asyncio.wait_for(service.disconnects.get(), 60)
        assert seen.startswith("upload after ")
