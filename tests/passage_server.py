"""Start a real Passage server for tests: ``passage serve`` in a subprocess, or in-process.

Both bind loopback only, on free ports, with a data directory under the test's
``tmp_path``. The subprocess form is what interop tests use (it is exactly
what a user runs); the in-process form lets a test look at the core.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REALM = "passage.test"
USER, PASSWORD = "alice", "wonderland"


def free_port(
    kinds: Sequence[int] = (socket.SOCK_STREAM, socket.SOCK_DGRAM), host: str = "127.0.0.1"
) -> int:
    """A port on ``host`` free for every socket kind in ``kinds`` right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        port = random.randint(20000, 40000)
        sockets: list[socket.socket] = []
        try:
            for kind in kinds:
                sock = socket.socket(family, kind)
                sockets.append(sock)
                sock.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free port")


def relay_range(size: int = 200) -> tuple[int, int]:
    """A random relay port range above the ones ``free_port`` hands out."""
    low = random.randrange(41000, 64000 - size, 2)
    return low, low + size - 1


@dataclass
class ServerInfo:
    """Where a started Passage listens, and how to sign in."""

    data_dir: Path
    turn_port: int
    turns_port: int
    relay_ports: tuple[int, int]
    host: str = "127.0.0.1"
    username: str = USER
    password: str = PASSWORD
    realm: str = REALM
    extra_args: list[str] = field(default_factory=list)

    @property
    def ca_cert(self) -> Path:
        return self.data_dir / "ca.pem"

    @property
    def auth_secret(self) -> str:
        return (self.data_dir / "auth-secret").read_text().strip()

    @property
    def database(self) -> Path:
        return self.data_dir / "passage.db"

    def args(self) -> list[str]:
        low, high = self.relay_ports
        return [
            "serve",
            "--data-dir", str(self.data_dir),
            "--listen-ip", self.host,
            "--turn-port", str(self.turn_port),
            "--turns-port", str(self.turns_port),
            "--relay-ports", f"{low}-{high}",
            "--realm", self.realm,
            "--user", f"{self.username}:{self.password}",
            *self.extra_args,
        ]  # fmt: skip


def server_info(tmp_path: Path, *extra_args: str, host: str = "127.0.0.1") -> ServerInfo:
    return ServerInfo(
        data_dir=tmp_path / "passage-data",
        turn_port=free_port(host=host),
        turns_port=free_port((socket.SOCK_STREAM,), host=host),
        relay_ports=relay_range(),
        host=host,
        extra_args=list(extra_args),
    )


def wait_until_listening(
    info: ServerInfo, process: subprocess.Popen[bytes] | None, timeout: float = 20.0
) -> None:
    """Block until the TCP TURN port accepts, or fail with the server's output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"passage serve exited with {process.returncode}")
        try:
            with socket.create_connection((info.host, info.turn_port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("passage serve did not start listening")


@contextmanager
def passage_process(
    tmp_path: Path, *extra_args: str, host: str = "127.0.0.1"
) -> Iterator[tuple[ServerInfo, Path]]:
    """``passage serve`` on ``host`` in a subprocess; yields its info and its log file.

    On exit it is stopped with SIGTERM (a clean shutdown) and must exit 0.
    """
    info = server_info(tmp_path, *extra_args, host=host)
    log = tmp_path / "passage.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "passage", *info.args()],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        try:
            wait_until_listening(info, process)
            yield info, log
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    assert process.returncode == 0, log.read_text()[-2000:]
