"""Start a real Passage server for tests: ``passage serve`` in a subprocess, or in-process.

Both bind loopback only, on free ports, with a data directory under the test's
``tmp_path``, the realm :data:`REALM` and the static user :data:`USER`. The
subprocess form (:func:`passage_process`) is what interop tests use: it is
exactly what a user runs. The in-process form (:func:`in_process`) lets a test
look at the core, and run the server on a clock of its own.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from passage.api.sync import POLL_INTERVAL
from passage.app import Running, start
from passage.config import Config, load_config
from passage.datadir import DataDir, prepare_data_dir
from passage.turn.config import TurnConfig
from turn_client import TurnClient

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
            "--metrics-port", "0",  # a test that wants it gives another --metrics-port after
            *self.extra_args,
        ]  # fmt: skip


def server_info(
    tmp_path: Path, *extra_args: str, host: str = "127.0.0.1", data_dir: str = "passage-data"
) -> ServerInfo:
    return ServerInfo(
        data_dir=tmp_path / data_dir,
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


def wait_for_record(
    info: ServerInfo, process: subprocess.Popen[bytes], timeout: float = 20.0
) -> None:
    """Block until ``server.json`` is written: the API port accepts a moment before it is, and
    a test that reads the record (its pid, say) right away would find none under load."""
    deadline = time.monotonic() + timeout
    while not (info.data_dir / "server.json").exists():
        if process.poll() is not None:
            raise RuntimeError(f"passage serve exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError("passage serve listens but wrote no server.json")
        time.sleep(0.02)


@contextmanager
def passage_process(
    tmp_path: Path,
    *extra_args: str,
    host: str = "127.0.0.1",
    data_dir: str = "passage-data",
    environ: Mapping[str, str] | None = None,
    preexec_fn: Callable[[], object] | None = None,
) -> Iterator[tuple[ServerInfo, Path]]:
    """``passage serve`` on ``host`` in a subprocess; yields its info and its log file.

    Its data directory is ``tmp_path / data_dir``. ``environ`` adds variables
    (``PASSAGE_*`` settings); ``preexec_fn`` runs in the child before ``passage``
    starts (to lower a resource limit, say). On exit it is stopped with SIGINT
    (a clean shutdown, no drain) and must exit 0.
    """
    info = server_info(tmp_path, *extra_args, host=host, data_dir=data_dir)
    log = tmp_path / "passage.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(environ or {}))
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "passage", *info.args()],
            stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=preexec_fn,
        )  # fmt: skip
        try:
            wait_until_listening(info, process)
            wait_for_record(info, process)
            yield info, log
        finally:
            stop(process, timeout=20, how=signal.SIGINT)
    assert process.returncode == 0, log.read_text()[-2000:]


def stop(
    process: subprocess.Popen[Any], timeout: float, how: signal.Signals = signal.SIGTERM
) -> None:
    """``how`` (SIGTERM), then SIGKILL if it has not exited within ``timeout`` s.

    A ``passage serve`` is stopped with SIGINT: it stops at once, usage flushed, where
    SIGTERM would drain (wait for its allocations to end, up to ``--drain-timeout``)."""
    if process.poll() is None:
        process.send_signal(how)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def passage_command(
    *argv: str, env: Mapping[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``passage argv`` (``expose``, ``connect``, ...) once it printed its first line (it is
    ready), and that line; stopped with SIGTERM. No ``PASSAGE_*`` variable of the machine
    reaches it, only ``env``'s. Its log (stderr) goes to a file, so a chatty process never
    blocks on a full pipe."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PASSAGE_")}
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "passage", *argv],
            stdout=subprocess.PIPE, stderr=log, text=True,
            env=base | dict(env or {}) | {"PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        assert process.stdout is not None
        try:
            first = process.stdout.readline()
            if not first:
                process.wait(timeout=10)
                log.seek(0)
                raise AssertionError(f"passage {argv[0]} exited: {log.read()[-2000:]}")
            yield process, first
        finally:
            stop(process, timeout=15)
            process.stdout.close()


# --- in-process ----------------------------------------------------------------------


@dataclass
class Server:
    """A server started in this process by :func:`in_process`."""

    running: Running
    datadir: DataDir
    config: Config

    def address(self, transport: str) -> tuple[str, int]:
        listeners = {"udp": self.running.udp, "tcp": self.running.tcp, "tls": self.running.tls}
        return listeners[transport][0]

    def tls_context(self) -> ssl.SSLContext:
        """A client context trusting the data directory's generated CA."""
        assert self.datadir.ca_cert is not None
        return ssl.create_default_context(cafile=str(self.datadir.ca_cert))

    async def client(self, transport: str = "udp") -> TurnClient:
        tls = self.tls_context() if transport == "tls" else None
        return await TurnClient.connect(transport, self.address(transport), ssl_context=tls)

    @property
    def http_base(self) -> str:
        host, port = self.running.http[0]
        return f"http://{host}:{port}"

    @property
    def https_base(self) -> str:
        host, port = self.running.https[0]
        return f"https://{host}:{port}"


RELAY_PATHS = ["on", "off"]
"""``--fast-path`` values a test that relays runs with: the C router and the Python relay
(``relay_path`` fixture in conftest.py; a module-scoped server parametrizes on it)."""


def relay_path_environ(mode: str) -> dict[str, str]:
    """``PASSAGE_FAST_PATH`` for ``mode``; skips "on" where the extension is not built."""
    from passage.turn.fastpath import available

    if mode == "on" and not available():
        pytest.skip("the compiled fast path is not built in this install")
    return {"PASSAGE_FAST_PATH": mode}


def local_config(
    tmp_path: Path,
    *,
    loopback_peers: bool = False,
    environ: Mapping[str, str] | None = None,
    **settings: Any,
) -> Config:
    """Loopback, free ports, the data directory under ``tmp_path``, :data:`USER` and
    :data:`REALM`; ``loopback_peers`` lets allocations relay to 127.0.0.1, ``environ``
    is read as ``passage serve`` reads its ``PASSAGE_*`` variables, ``settings``
    replace any field."""
    # PASSAGE_FAST_PATH from the test's own environment, as passage_process's servers see it
    # (the relay_path fixture sets it; a whole run may too).
    chosen = {k: v for k, v in os.environ.items() if k == "PASSAGE_FAST_PATH"}
    config = dataclasses.replace(
        load_config({}, chosen | dict(environ or {})),
        data_dir=tmp_path / "passage-data",
        listen_ips=("127.0.0.1",),
        turn_port=free_port(),
        turns_port=free_port((socket.SOCK_STREAM,)),
        api_port=free_port((socket.SOCK_STREAM,)),
        relay_ports=relay_range(),
        users=((USER, PASSWORD),),
        turn=TurnConfig(realm=REALM, allow_loopback_peers=loopback_peers),
        metrics_port=0,  # many servers run at once: a test that wants it asks for a free port
    )
    return dataclasses.replace(config, **settings)


@asynccontextmanager
async def in_process(
    tmp_path: Path,
    *,
    clock: Callable[[], float] = time.time,
    loopback_peers: bool = False,
    environ: Mapping[str, str] | None = None,
    poll_interval: float = POLL_INTERVAL,
    **settings: Any,
) -> AsyncIterator[Server]:
    """The whole server started here (``passage.app.start``) with :func:`local_config`,
    on ``clock``, polling its store every ``poll_interval`` seconds; stopped cleanly on exit."""
    config = local_config(tmp_path, loopback_peers=loopback_peers, environ=environ, **settings)
    datadir = prepare_data_dir(config)
    # Worker processes (``workers=N`` among ``settings``) see the real time, not ``clock``.
    running = await start(
        config, datadir, clock=clock, poll_interval=poll_interval, workers=max(1, config.workers)
    )
    try:
        yield Server(running, datadir, config)
    finally:
        await running.stop()


class Clock:
    """The real time plus an offset a test moves forward: the server sees time pass
    without the test sleeping (``in_process(tmp_path, clock=clock)``)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
