"""coturn's ``turnutils_uclient`` (4.6.1) against a real ``passage serve``.

uclient allocates, binds channels or creates permissions, and sends numbered
messages through Passage to ``turnutils_peer``, an echo server, counting what
comes back. It exits 0 even when packets are lost, so every run is judged by
its "Total lost packets" and ``tot_send_msgs``/``tot_recv_msgs`` lines, and by
Passage's own log. It can hang (a lost UDP answer blocks it in ``recv``), so
every run has a timeout. Its habits are in /work/shared/reference/turn.md §4.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from passage.stun import (
    AttributeType,
    Message,
    MessageClass,
    Method,
    StreamFramer,
    TransactionId,
    decode_message,
    encode_message,
)
from passage.turnclient import Credentials
from passage.turnclient.aio import TurnConnection
from passage_server import RELAY_PATHS, ServerInfo, free_port, passage_process, relay_path_environ

pytestmark = pytest.mark.interop

UCLIENT = shutil.which("turnutils_uclient")
PEER = shutil.which("turnutils_peer")

# 4 allocations (2 RTP/RTCP pairs without -c) x 50 messages of 160 bytes, one per
# 5 ms: the run is dominated by uclient's random 1-6 s start offset.
CLIENTS, MESSAGES = 4, 50
RUN_TIMEOUT = 60.0
NO_AUTH_LIMIT = ("--auth-failures-per-minute", "100000")


@pytest.fixture(scope="module", autouse=True)
def _coturn_tools() -> None:
    """Fail in CI, skip elsewhere, when coturn's test tools are not installed."""
    missing = [name for name, path in (("turnutils_uclient", UCLIENT), ("turnutils_peer", PEER))
               if path is None]  # fmt: skip
    if missing:
        message = f"{', '.join(missing)} not installed (Debian/Ubuntu package: coturn)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def peer_port() -> Iterator[int]:
    """``turnutils_peer``: a UDP echo server on 127.0.0.1."""
    assert PEER is not None  # _coturn_tools, autouse, runs first
    port = free_port((socket.SOCK_DGRAM,))
    process = subprocess.Popen(
        [PEER, "-L", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_echo(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_for_echo(port: int, host: str = "127.0.0.1") -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.1)
        for _ in range(100):
            sock.sendto(b"ping", (host, port))
            try:
                if sock.recv(100) == b"ping":
                    return
            except OSError:
                continue
    raise TimeoutError("turnutils_peer does not echo")


@pytest.fixture(scope="module", params=RELAY_PATHS)
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[ServerInfo, Path]]:
    """One Passage for all the runs that must succeed, with the C fast path and without.

    uclient's probe allocations linger (777 s), so this server collects a few dozen of
    them over the module: far below the 100 per user it allows.
    """
    environ = relay_path_environ(request.param)
    tmp = tmp_path_factory.mktemp("uclient")
    with passage_process(tmp, "--allow-loopback-peers", environ=environ) as running:
        yield running


@dataclass
class Run:
    returncode: int
    output: str

    @property
    def totals(self) -> tuple[int, int] | None:
        """(tot_send_msgs, tot_recv_msgs) from uclient's final summary."""
        match = re.search(
            r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", self.output, re.M
        )
        return (int(match[1]), int(match[2])) if match else None

    def assert_no_loss(self, expected_messages: int) -> None:
        assert self.returncode == 0, self.output[-3000:]
        assert "Total lost packets 0 (0.000000%)" in self.output, self.output[-3000:]
        assert self.totals == (expected_messages, expected_messages), self.output[-3000:]


def uclient(
    info: ServerInfo,
    peer_port: int,
    *args: str,
    tls: bool = False,
    timeout: float = RUN_TIMEOUT,
) -> Run:
    """Run uclient to completion; on ``timeout`` return code is -9 (killed)."""
    assert UCLIENT is not None
    # Line-buffered, so that a run killed on timeout still shows what it printed.
    stdbuf = ["stdbuf", "-oL", "-eL"] if shutil.which("stdbuf") else []
    command = [
        *stdbuf, UCLIENT, *args,
        "-e", info.host, "-r", str(peer_port),
        "-p", str(info.turns_port if tls else info.turn_port),
        info.host,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return Run(process.returncode, output.decode(errors="replace"))


def load(*extra: str, clients: int = CLIENTS, size: int = 160) -> list[str]:
    return ["-m", str(clients), "-n", str(MESSAGES), "-l", str(size), "-z", "5", *extra]


def static_user(info: ServerInfo) -> list[str]:
    return ["-u", info.username, "-w", info.password]


def log_since(log: Path, offset: int) -> str:
    return log.read_bytes()[offset:].decode()


def started(log_text: str, kind: str) -> list[tuple[str, int]]:
    """(user, relayed port) of each allocation Passage started for a ``kind`` client."""
    pattern = rf" started: user=(\S+) subject=\S+ client={kind} \S+ relayed=[\d.]+:(\d+) "
    return [(user, int(port)) for user, port in re.findall(pattern, log_text)]


def stun_binding_answered(info: ServerInfo) -> None:
    """A raw RFC 8489 Binding request over UDP and over TCP gets our address back."""
    request = Message(Method.BINDING, MessageClass.REQUEST, TransactionId(os.urandom(12)))
    wire = encode_message(request, fingerprint=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.connect((info.host, info.turn_port))
        sock.send(wire)
        _check_binding_response(decode_message(sock.recv(2048)), request, sock)
    with socket.create_connection((info.host, info.turn_port), timeout=2) as sock:
        sock.sendall(wire)
        framer = StreamFramer()
        frames: list[bytes] = []
        while not frames:
            chunk = sock.recv(2048)
            assert chunk, "Passage closed the TCP connection"
            frames = framer.feed(chunk)
        _check_binding_response(decode_message(frames[0]), request, sock)


def _check_binding_response(response: Message, request: Message, sock: socket.socket) -> None:
    assert response.message_class == MessageClass.SUCCESS
    assert response.transaction_id == request.transaction_id
    assert response.get(AttributeType.XOR_MAPPED_ADDRESS, tuple) == sock.getsockname()


# -- runs that must relay every message ----------------------------------------------------

POSITIVE = {
    # RTP/RTCP pairs: EVEN-PORT(R) then RESERVATION-TOKEN, ChannelBind, ChannelData.
    "udp-static-even-port-channels": ([], False, 160),
    "udp-no-rtcp": (["-c"], False, 160),
    "udp-send-indications": (["-s"], False, 160),
    "udp-client-to-client": (["-y"], False, 160),
    "tcp-channels": (["-t"], False, 160),
    "tcp-send-indications": (["-t", "-s"], False, 160),
    "tls-channels": (["-t", "-S"], True, 160),
    # 171 bytes: ChannelData over a stream is padded to 4 bytes (RFC 8656 §12.5).
    "tcp-odd-payload": (["-t"], False, 171),
    "tls-odd-payload": (["-t", "-S"], True, 171),
}


@pytest.mark.parametrize(("flags", "tls", "size"), POSITIVE.values(), ids=POSITIVE.keys())
def test_uclient_relays_without_loss(
    server: tuple[ServerInfo, Path], peer_port: int, flags: list[str], tls: bool, size: int
) -> None:
    info, log = server
    offset = log.stat().st_size
    run = uclient(info, peer_port, *static_user(info), *load(*flags, size=size), tls=tls)
    run.assert_no_loss(CLIENTS * MESSAGES)

    kind = "tls" if tls else "tcp" if "-t" in flags else "udp"
    allocations = started(log_since(log, offset), kind)
    # Each client made its allocation plus uclient's probe, all as alice over `kind`.
    assert len(allocations) >= CLIENTS, allocations
    assert {user for user, _ in allocations} == {info.username}
    low, high = info.relay_ports
    assert all(low <= port <= high for _, port in allocations)
    if not flags:
        # RFC 8656 §7.2: the RTP allocation got an even port, its RTCP partner (by
        # RESERVATION-TOKEN) the next odd one.
        ports = {port for _, port in allocations}
        pairs = [port for port in ports if port % 2 == 0 and port + 1 in ports]
        assert len(pairs) >= CLIENTS // 2, sorted(ports)


def test_uclient_with_rest_credentials(server: tuple[ServerInfo, Path], peer_port: int) -> None:
    """-W: username ``<now+86400>:someuser``, password base64(HMAC-SHA1(secret, username))."""
    info, log = server
    offset = log.stat().st_size
    run = uclient(info, peer_port, "-W", info.auth_secret, "-u", "someuser", *load())
    run.assert_no_loss(CLIENTS * MESSAGES)
    users = {user for user, _ in started(log_since(log, offset), "udp")}
    assert len(users) == 1
    expiry, _, name = users.pop().partition(":")
    assert name == "someuser"
    assert abs(int(expiry) - (time.time() + 86400)) < 120


# -- runs that must fail, after which Passage must still serve ---------------------------------


WRONG_CREDENTIALS = {
    "udp-wrong-password": ["-u", "alice", "-w", "nope"],
    "tcp-wrong-password": ["-t", "-u", "alice", "-w", "nope"],
    "udp-wrong-rest-secret": ["-W", "not-the-secret", "-u", "someuser"],
}


@pytest.mark.parametrize("flags", WRONG_CREDENTIALS.values(), ids=WRONG_CREDENTIALS.keys())
def test_uclient_with_wrong_credentials_cannot_allocate(
    tmp_path: Path, peer_port: int, flags: list[str]
) -> None:
    # uclient tries 32 times; Passage's default limit (30 failures a minute) would
    # silence it first, see the next test.
    with passage_process(tmp_path, "--allow-loopback-peers", *NO_AUTH_LIMIT) as (info, log):
        run = uclient(info, peer_port, *flags, *load(), timeout=20)
        assert run.returncode == 255, run.output[-3000:]
        assert "Cannot complete Allocation" in run.output
        assert run.totals is None
        kind = "tcp" if "-t" in flags else "udp"
        assert re.search(
            rf"refused allocate from {kind} 127\.0\.0\.1:\d+: 401 bad message integrity",
            log.read_text(),
        )
        assert not started(log.read_text(), kind)
        stun_binding_answered(info)


def test_auth_failure_limit_silences_a_guessing_uclient(tmp_path: Path, peer_port: int) -> None:
    """With the default 30 failures a minute, Passage answers 30 wrong passwords and
    then drops the 31st unanswered: uclient, which would try 31, waits forever.
    Correct credentials from the same address still work."""
    with passage_process(tmp_path, "--allow-loopback-peers") as (info, log):
        run = uclient(info, peer_port, "-v", "-u", "alice", "-w", "nope", *load(), timeout=3)
        assert run.returncode == -9, run.output[-3000:]  # still waiting: we killed it
        # The unauthenticated first try and 30 wrong passwords were answered 401.
        assert run.output.count("allocate sent") == 32, run.output[-3000:]
        assert run.output.count("allocate response received") == 31
        assert "Cannot complete Allocation" not in run.output
        assert log.read_text().count(": 401 bad message integrity") == 30
        stun_binding_answered(info)  # Binding needs no authentication
        # Only failures are silenced: a neighbour on the same IP with the right
        # password still relays (one bad client must not lock out a shared NAT).
        good = uclient(info, peer_port, *static_user(info), "-c", *load())
        good.assert_no_loss(CLIENTS * MESSAGES)


def test_uclient_negative_channel_bind(tmp_path: Path, peer_port: int) -> None:
    """-N: ChannelBind of the already bound peer to a random channel number. RFC 8656
    §11.2 says 400; uclient gives up on it with 255."""
    with passage_process(tmp_path, "--allow-loopback-peers") as (info, log):
        run = uclient(info, peer_port, *static_user(info), "-N", *load(), timeout=20)
        assert run.returncode == 255, run.output[-3000:]
        assert "channel bind: error 400" in run.output
        assert "refused channel_bind from udp" in log.read_text()
        stun_binding_answered(info)


def test_uclient_fuzz_leaves_passage_serving(tmp_path: Path, peer_port: int) -> None:
    """-R flips random bytes in ~10% of what uclient sends. uclient usually hangs on a
    request Passage rightly dropped, so each run is cut short; then Passage must still
    answer, relay a clean run without loss, and have logged no crash."""
    with passage_process(tmp_path, "--allow-loopback-peers", *NO_AUTH_LIMIT) as (info, log):
        for transport in ([], [], ["-t"], ["-t"]):
            uclient(info, peer_port, *static_user(info), "-R", *transport, *load(), timeout=2.5)
            stun_binding_answered(info)
        run = uclient(info, peer_port, *static_user(info), *load("-c"))
        run.assert_no_loss(CLIENTS * MESSAGES)
        text = log.read_text()
        assert "Traceback" not in text
        assert " ERROR " not in text
        assert " CRITICAL " not in text


@pytest.fixture
def ipv6_peer_port() -> Iterator[int]:
    """``turnutils_peer`` on ::1. uclient sends RTCP to the peer port + 1, so both are free."""
    assert PEER is not None
    for _ in range(50):
        port = free_port((socket.SOCK_DGRAM,), host="::1")
        if port % 2 == 0 and free_port_pair_ok(port + 1):
            break
    process = subprocess.Popen(
        [PEER, "-L", "::1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for_echo(port, "::1")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def free_port_pair_ok(port: int) -> bool:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("::1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("transport", [[], ["-t"], ["-s"]], ids=["udp", "tcp", "udp-send"])
def test_uclient_over_ipv6_with_rtp_rtcp_pairs(
    tmp_path: Path, ipv6_peer_port: int, transport: list[str]
) -> None:
    """An IPv6-only server (listening and relaying on ::1): uclient -x asks for IPv6 relays;
    its RTCP half takes the RESERVATION-TOKEN, whose family must come from the reservation."""
    with passage_process(tmp_path, "--allow-loopback-peers", host="::1") as (info, log):
        run = uclient(info, ipv6_peer_port, *static_user(info), "-x", *transport, *load())
        run.assert_no_loss(CLIENTS * MESSAGES)
        assert "relayed=[::1]:" in log.read_text()


# -- a drain (SIGTERM) while uclient runs ------------------------------------------------------


def test_a_drain_lets_a_live_uclient_run_finish_without_loss(
    tmp_path: Path, peer_port: int
) -> None:
    """SIGTERM once uclient's allocations are up: every message of the run still makes the
    round trip, while a new Allocate meanwhile gets 300 Try Alternate."""
    messages = 400  # one per 5 ms after uclient's 1-6 s start offset: the drain starts first
    with passage_process(
        tmp_path, "--allow-loopback-peers", "--alternate-server", "127.0.0.1:3999"
    ) as (info, log):
        assert UCLIENT is not None
        command = [
            UCLIENT, *static_user(info), "-c", "-m", str(CLIENTS), "-n", str(messages),
            "-l", "160", "-z", "5", "-e", info.host, "-r", str(peer_port),
            "-p", str(info.turn_port), info.host,
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + RUN_TIMEOUT
            # Each client's allocation and its probe, then the channels: all before any data.
            while len(started(log.read_text(), "udp")) < 2 * CLIENTS:
                assert time.monotonic() < deadline and process.poll() is None, log.read_text()
                time.sleep(0.05)
            pid = json.loads((info.data_dir / "server.json").read_text())["pid"]
            os.kill(pid, signal.SIGTERM)

            async def new_allocate() -> Message:
                client = await TurnConnection.open(
                    "udp", (info.host, info.turn_port), Credentials(info.username, info.password)
                )
                try:
                    return await client.allocate()
                finally:
                    await client.close()

            answer = asyncio.run(new_allocate())
            output, _ = process.communicate(timeout=RUN_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        run = Run(process.returncode, output.decode(errors="replace"))
        run.assert_no_loss(CLIENTS * messages)
        assert answer.message_class is MessageClass.ERROR
        assert answer.get(AttributeType.ALTERNATE_SERVER, tuple) == ("127.0.0.1", 3999)
        text = log.read_text()
        assert "draining (SIGTERM)" in text
        assert text.index("draining (SIGTERM)") < text.rindex("ended (refresh_zero)")


def test_uclient_follows_300_from_a_draining_passage_to_the_alternate(
    tmp_path: Path, peer_port: int
) -> None:
    """RFC 8489 §10: a draining Passage answers uclient's Allocates with 300 Try Alternate
    naming a second Passage; uclient allocates there itself and relays everything."""
    shared = ("--allow-loopback-peers", "--auth-secret", "shared-by-both-servers")
    (tmp_path / "second").mkdir()
    (tmp_path / "first").mkdir()
    with passage_process(tmp_path / "second", *shared) as (second, second_log):
        alternate = f"{second.host}:{second.turn_port}"
        with passage_process(tmp_path / "first", *shared, "--alternate-server", alternate) as (
            first,
            first_log,
        ):
            asyncio.run(leave_an_allocation(first))  # so the drain lasts
            pid = json.loads((first.data_dir / "server.json").read_text())["pid"]
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while "draining (SIGTERM)" not in first_log.read_text():
                assert time.monotonic() < deadline, first_log.read_text()[-2000:]
                time.sleep(0.05)
            run = uclient(first, peer_port, *static_user(first), *load())
            run.assert_no_loss(CLIENTS * MESSAGES)
            assert "error 300 (Try Alternate)" in run.output
            assert len(started(first_log.read_text(), "udp")) == 1  # the held one alone
            assert len(started(second_log.read_text(), "udp")) >= CLIENTS


async def leave_an_allocation(info: ServerInfo) -> None:
    """An allocation on ``info`` that lives on (its socket closed, never deleted)."""
    client = await TurnConnection.open(
        "udp", (info.host, info.turn_port), Credentials(info.username, info.password)
    )
    try:
        answer = await client.allocate()
    finally:
        await client.close(release=False)
    assert answer.message_class is MessageClass.SUCCESS, answer
