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


# Ports already handed out by this test process. A port is only tested free,
# not held, until the server binds it; without this set two calls for one
# server (the API and the plain-HTTP port, say) could draw the same number.
_handed_out: set[int] = set()


def free_port(
    kinds: Sequence[int] = (socket.SOCK_STREAM, socket.SOCK_DGRAM), host: str = "127.0.0.1"
) -> int:
    """A port on ``host`` free for every socket kind in ``kinds`` right now.

    Drawn below Linux's ephemeral range (32768-60999), so an outgoing
    connection cannot take it between this check and the server's bind, and
    never the same port twice in one test process.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        port = random.randint(20000, 32000)
        if port in _handed_out:
            continue
        sockets: list[socket.socket] = []
        try:
            for kind in kinds:
                sock = socket.socket(family, kind)
                sockets.append(sock)
                sock.bind((host, port))
            _handed_out.add(port)
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
    api_port: int
    host: str = "127.0.0.1"
    username: str = USER
    password: str = PASSWORD
    realm: str = REALM
    extra_args: list[str] = field(default_factory=list)

    @property
    def ca_cert(self) -> Path:
        return self.data_dir / "ca.pem"

    @property
    def api_url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{shown}:{self.api_port}/"

    def connection_string(self) -> str:
        """What ``passage connection-string`` prints for this server."""
        out = subprocess.run(
            [sys.executable, "-m", "passage", "connection-string", "--data-dir",
             str(self.data_dir), "--listen-ip", self.host, "--api-port", str(self.api_port)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return out.stdout.strip()

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
            "--api-port", str(self.api_port),
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
        api_port=free_port((socket.SOCK_STREAM,), host=host),
        host=host,
        extra_args=list(extra_args),
    )


def wait_until_listening(
    info: ServerInfo, process: subprocess.Popen[bytes] | None, timeout: float = 20.0
) -> None:
    """Block until the TURN and API ports accept, or fail with the server's output."""
    deadline = time.monotonic() + timeout
    waiting = [info.turn_port, info.api_port]
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"passage serve exited with {process.returncode}")
        try:
            with socket.create_connection((info.host, waiting[0]), timeout=0.2):
                waiting.pop(0)
                if not waiting:
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
