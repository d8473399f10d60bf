"""The two servers under test, started fresh for every run, and their CPU clocks.

Both listen on 127.0.0.1 only, with user ``u``/``p`` in realm ``test`` and
relaying to loopback peers allowed, as in the reference notes (turn.md §3b).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
"""The only address the benchmark ever uses."""

USER, PASSWORD, REALM = "u", "p", "test"

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
_MAGIC_COOKIE = 0x2112A442


def free_port() -> int:
    """A port that is free on 127.0.0.1 for both UDP and TCP right now."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
            return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads, from /proc/<pid>/stat (fields 14, 15)."""
    with open(f"/proc/{pid}/stat") as stat:
        text = stat.read()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (``passage serve --workers N``'s workers)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as children:
                    kids = [int(kid) for kid in children.read().split()]
            except FileNotFoundError:
                continue
            found += kids
            pending += kids
    return found


def tree_cpu_seconds(pid: int) -> float:
    """:func:`cpu_seconds` of ``pid`` and of every live descendant."""
    total = 0.0
    for member in (pid, *descendants(pid)):
        try:
            total += cpu_seconds(member)
        except FileNotFoundError:
            pass  # gone between the listing and the read
    return total


@dataclass(frozen=True)
class ServerKind:
    """How to start one server on a given port and relay port range."""

    name: str
    """``coturn`` or ``passage``: the row label."""
    relay_ports: tuple[int, int]
    """Relay port range, kept apart from the other server's and from ephemeral ports."""
    workers: int = 1
    """Passage's ``--workers``: 1 is the single process (the default of every benchmark that
    compares per-packet cost); more run TURN in that many processes."""
    fast_path: str = "auto"
    """Passage's ``--fast-path``: ``auto`` relays UDP ChannelData in C when the extension is
    built (the default install on a machine with a compiler); ``off`` is the Python relay."""

    def command(self, port: int, data_dir: Path) -> list[str]:
        low, high = self.relay_ports
        if self.name == "coturn":
            return [
                "turnserver", "-n", f"--listening-ip={HOST}", f"--relay-ip={HOST}",
                "--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls",
                "--lt-cred-mech", f"--user={USER}:{PASSWORD}", f"--realm={REALM}",
                f"--listening-port={port}", f"--min-port={low}", f"--max-port={high}",
                f"--log-file={data_dir / 'turnserver.log'}", "--simple-log",
                f"--pidfile={data_dir / 'turnserver.pid'}",
            ]  # fmt: skip
        passage = Path(sys.executable).with_name("passage")
        return [
            str(passage), "serve", "--listen-ip", HOST, "--allow-loopback-peers",
            "--user", f"{USER}:{PASSWORD}", "--realm", REALM, "--data-dir", str(data_dir),
            "--turn-port", str(port), "--turns-port", "0", "--api-port", "0",
            "--relay-ports", f"{low}-{high}",
            "--max-allocations-per-user", "100000",
            # Every benchmark client is 127.0.0.1: one source whose challenges the
            # per-source limit would pace (coturn's --unauthorized-ratelimit is off too).
            "--unauthenticated-answers-per-second", "0",
            *METRICS_OFF,  # its default port is one per host; metrics_cost.py measures it
            "--workers", str(self.workers), "--fast-path", self.fast_path,
        ]  # fmt: skip


METRICS_OFF = ("--metrics-port", "0")

COTURN = ServerKind("coturn", (40000, 44999))
PASSAGE = ServerKind("passage", (45000, 49999))
PASSAGE_PYTHON = ServerKind("passage-python", (55000, 59999), fast_path="off")
"""Passage relaying every packet in Python (``--fast-path off``), for A/B runs."""
KINDS = {kind.name: kind for kind in (COTURN, PASSAGE, PASSAGE_PYTHON)}


def passage_workers(workers: int) -> ServerKind:
    """Passage with ``--workers N``; its CPU is the whole process tree's (``RunningServer.cpu``)."""
    return ServerKind(f"passage-{workers}w", (50000, 54999), workers)


class RunningServer:
    """One server process; ``stop`` ends it. Use as a context manager."""

    def __init__(self, kind: ServerKind, data_dir: Path, log: Path, *, slow: bool = False) -> None:
        """``slow``: the server runs under valgrind; allow it minutes to start and stop."""
        self.kind = kind
        self._patience = 10.0 if not slow else 300.0
        self.port = free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            kind.command(self.port, data_dir),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
        )
        try:
            self._wait_ready(deadline=time.monotonic() + 3 * self._patience)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu(self) -> float:
        """CPU seconds of the server and its worker processes, if any."""
        return tree_cpu_seconds(self.pid)

    def _wait_ready(self, deadline: float) -> None:
        """Until the server answers a STUN Binding over UDP and accepts TCP."""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind.name} exited with {self.process.returncode}")
            if _answers_binding(self.port) and _accepts_tcp(self.port):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind.name} did not answer on {HOST}:{self.port}")

    def stop(self) -> None:
        """coturn: SIGTERM. Passage: SIGINT, which stops at once with usage flushed; its
        SIGTERM drains, waiting for the allocations uclient leaves behind."""
        if self.process.poll() is None:
            self.process.send_signal(
                signal.SIGTERM if self.kind.name == "coturn" else signal.SIGINT
            )
            try:
                self.process.wait(timeout=self._patience)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _answers_binding(port: int) -> bool:
    transaction = secrets.token_bytes(12)
    request = struct.pack("!HHI", 0x0001, 0, _MAGIC_COOKIE) + transaction
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(0.2)
        try:
            udp.sendto(request, (HOST, port))
            answer = udp.recv(2048)
        except OSError:
            return False
    return answer[8:20] == transaction


def _accepts_tcp(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


class EchoPeer:
    """coturn's ``turnutils_peer``: the UDP echo peer both servers relay to."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            ["turnutils_peer", "-L", HOST, "-p", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        time.sleep(0.3)
        if self.process.poll() is not None:
            raise RuntimeError(f"turnutils_peer exited with {self.process.returncode}")

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
