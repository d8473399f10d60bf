"""Hybrid Connections HTTP: large bodies through ``passage expose --http``, and the relay's memory.

Real processes as a user runs them: ``passage serve``, ``passage expose NAME
--http`` in front of a local aiohttp service (in this process), curl as the
sender over HTTPS. For each transfer (a download, then an upload, of
``--megabytes`` MB) it checks the bytes (SHA-256 at both ends), and reports the
time, the rate, and the resident memory of the ``passage serve`` process: its
RSS before, the highest RSS sampled every 20 ms during the transfer, and its
peak RSS since start (the kernel's ``VmHWM``). The bodies stream through the
relay as rendezvous frames with back-pressure, so the peak must stay near the
idle RSS, whatever the size.

Usage: ``.venv/bin/python bench/hybrid_http_bodies.py [--megabytes 100] [--markdown out.md]``.
Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from servers import HOST, free_port

NAME = "bench"
BLOCK = bytes(i % 251 for i in range(251 * 261))
MB = 1_000_000


@dataclass(frozen=True)
class Transfer:
    label: str
    seconds: float
    rss_before: int
    rss_max: int
    peak: int


def _passage(*argv: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "passage", *argv], check=True, capture_output=True, text=True
    ).stdout


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for {pid}")


def _blocks(size: int) -> list[bytes]:
    whole, left = divmod(size, len(BLOCK))
    return [BLOCK] * whole + ([BLOCK[:left]] if left else [])


async def _service(port: int) -> web.AppRunner:
    async def download(request: web.Request) -> web.StreamResponse:
        size = int(request.match_info["size"])
        answer = web.StreamResponse()
        answer.content_length = size
        await answer.prepare(request)
        for block in _blocks(size):
            await answer.write(block)
        await answer.write_eof()
        return answer

    async def upload(request: web.Request) -> web.Response:
        sha, length = hashlib.sha256(), 0
        async for chunk in request.content.iter_chunked(65536):
            sha.update(chunk)
            length += len(chunk)
        return web.json_response({"length": length, "sha256": sha.hexdigest()})

    app = web.Application()
    app.router.add_get("/bytes/{size}", download)
    app.router.add_post("/upload", upload)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    return runner


async def _measured(label: str, pid: int, argv: list[str]) -> tuple[Transfer, bytes]:
    before = _status(pid, "VmRSS")
    highest = before
    started = time.perf_counter()
    curl = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE)
    waiting = asyncio.ensure_future(curl.communicate())
    while not waiting.done():
        highest = max(highest, _status(pid, "VmRSS"))
        await asyncio.wait([waiting], timeout=0.02)
    out, _ = waiting.result()
    seconds = time.perf_counter() - started
    if curl.returncode != 0:
        raise RuntimeError(f"{label}: curl exited {curl.returncode}")
    return Transfer(label, seconds, before, highest, _status(pid, "VmHWM")), out


async def measure(
    pid: int, curl: list[str], url: str, service_port: int, megabytes: int, work: Path
) -> list[Transfer]:
    """A download, then an upload, each checked whole, with the relay's memory around them."""
    size = megabytes * MB
    expected = hashlib.sha256(b"".join(_blocks(size))).hexdigest()
    runner = await _service(service_port)
    try:
        body = work / "body"
        body.write_bytes(b"".join(_blocks(size)))
        down, _ = await _measured(
            f"download {megabytes} MB",
            pid,
            [*curl, "-o", str(work / "down"), f"{url}/bytes/{size}"],
        )
        if hashlib.sha256((work / "down").read_bytes()).hexdigest() != expected:
            raise RuntimeError("the download arrived changed")
        up, answer = await _measured(
            f"upload {megabytes} MB", pid, [*curl, "--data-binary", f"@{body}", f"{url}/upload"]
        )
        if json.loads(answer) != {"length": size, "sha256": expected}:
            raise RuntimeError(f"the upload arrived changed: {answer!r}")
        return [down, up]
    finally:
        await runner.cleanup()


def run(megabytes: int, work: Path) -> list[Transfer]:
    """``passage serve`` and ``passage expose --http``, then :func:`measure` through them."""
    data_dir, api_port, service_port = work / "passage", free_port(), free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "passage", "serve", "--data-dir", str(data_dir),
         "--listen-ip", HOST, "--turn-port", str(free_port()), "--turns-port", "0",
         "--api-port", str(api_port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=(work / "passage.log").open("w"),
    )  # fmt: skip
    expose: subprocess.Popen[str] | None = None
    try:
        for _ in range(400):
            if (data_dir / "server.json").exists():
                break
            time.sleep(0.05)
        _passage("hc", "create", NAME, "--data-dir", str(data_dir))
        expose = subprocess.Popen(
            [sys.executable, "-m", "passage", "expose", NAME, "--to", f"{HOST}:{service_port}",
             "--http", "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE, stderr=(work / "expose.log").open("w"), text=True,
        )  # fmt: skip
        assert expose.stdout is not None
        expose.stdout.readline()
        base = f"http://{HOST}:{api_port}"
        token = _passage("hc", "token", NAME, "--endpoint", base, "--data-dir", str(data_dir))
        curl = ["curl", "-sS", "--cacert", str(data_dir / "ca.pem"),
                "-H", f"Authorization: {token.strip()}"]  # fmt: skip
        url = f"https://{HOST}:{api_port}/{NAME}"
        return asyncio.run(measure(server.pid, curl, url, service_port, megabytes, work))
    finally:
        if expose is not None:
            expose.terminate()
            expose.wait()
        server.terminate()
        server.wait()


def report(transfers: list[Transfer]) -> str:
    lines = [
        "| transfer | seconds | MB/s | relay RSS before | highest RSS during | relay VmHWM after |",
        "|---|---|---|---|---|---|",
    ]
    for t in transfers:
        megabytes = float(t.label.split()[1])
        lines.append(
            f"| {t.label} | {t.seconds:.1f} | {megabytes / t.seconds:.0f} | "
            f"{t.rss_before / 2**20:.0f} MiB | **{t.rss_max / 2**20:.0f} MiB** | "
            f"{t.peak / 2**20:.0f} MiB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=100, help="size of each body (MB)")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        table = report(run(arguments.megabytes, Path(work)))
    print(table)
    if arguments.markdown:
        arguments.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
