"""``passage.sdnotify`` and ``passage serve`` under a stand-in for systemd: a real AF_UNIX
datagram socket named by ``NOTIFY_SOCKET``, read as systemd reads it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from passage.sdnotify import Notifier
from passage_server import server_info, stop, wait_until_listening


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket in a short directory (AF_UNIX paths stop at 108 bytes)."""
    folder = tempfile.mkdtemp(prefix="sd", dir="/tmp")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    try:
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(folder)


def received(sock: socket.socket) -> dict[str, str]:
    lines = sock.recv(4096).decode().split("\n")
    return dict(line.split("=", 1) for line in lines)


def until_key(sock: socket.socket, key: str) -> dict[str, str]:
    while True:
        message = received(sock)
        if key in message:
            return message


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.watchdog_interval is None
    assert notifier.send("READY=1") is False


def test_states_arrive_as_systemd_reads_them(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path})
    notifier.ready("serving: 0 allocations")
    assert received(sock) == {"READY": "1", "STATUS": "serving: 0 allocations"}
    notifier.reloading()
    reloading = received(sock)
    assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
    notifier.stopping()
    assert received(sock) == {"STOPPING": "1"}
    notifier.watchdog()
    assert received(sock) == {"WATCHDOG": "1"}


def test_an_abstract_socket_name_is_understood() -> None:
    name = f"passage-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(100) == b"READY=1"


def test_the_watchdog_interval_is_half_of_watchdog_usec_for_this_process_only() -> None:
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval == 15.0
    mine = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(mine).watchdog_interval == 1.0
    theirs = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}
    assert Notifier(theirs).watchdog_interval is None


def test_a_socket_that_went_away_costs_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.send("READY=1") is False
    assert notifier.send("STOPPING=1") is False
    assert len([r for r in caplog.records if "NOTIFY_SOCKET" in r.getMessage()]) == 1


def test_passage_serve_tells_systemd_ready_reloading_watchdog_stopping(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, path = notify_socket
    info = server_info(tmp_path)
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000", PYTHONUNBUFFERED="1")
    log = tmp_path / "passage.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "passage", *info.args()],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        ready = until_key(sock, "READY")
        assert ready["STATUS"] == "serving: 0 allocations"
        wait_until_listening(info, process)  # READY came once everything listens
        assert until_key(sock, "WATCHDOG") == {"WATCHDOG": "1"}
        pid = json.loads((info.data_dir / "server.json").read_text())["pid"]
        assert pid == process.pid
        os.kill(pid, signal.SIGHUP)
        assert "MONOTONIC_USEC" in until_key(sock, "RELOADING")
        again = until_key(sock, "READY")
        assert again["STATUS"].endswith("last reload applied")
        os.kill(pid, signal.SIGTERM)
        stopping = until_key(sock, "STOPPING")
        assert stopping["STATUS"].startswith("draining")
        assert process.wait(timeout=20) == 0  # nothing live: the drain ends at once
    finally:
        stop(process, timeout=20, how=signal.SIGINT)
    assert "Traceback" not in log.read_text()
