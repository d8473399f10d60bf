"""aioice (the ICE agent of aiortc) against a real ``passage serve``.

Two unmodified ``aioice.Connection`` agents, relay-only, each allocate on Passage,
swap candidates in memory, run ICE connectivity checks through the relays and
then exchange data both ways. Over UDP, TCP and TLS, with static and REST
(draft-uberti-behave-turn-rest-00) credentials.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import aioice
import pytest

from passage.turn.credentials import make_rest_credentials
from passage_server import RELAY_PATHS, ServerInfo, passage_process, relay_path_environ

pytestmark = pytest.mark.interop

CONNECT_TIMEOUT = 8.0
MESSAGES = [b"hello", bytes(range(256)), b"\x00" * 1, b"x" * 1200, b"\xff\xfe passage \x00"]


@pytest.fixture(scope="module", params=RELAY_PATHS)
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[ServerInfo, Path]]:
    """Passage with the C fast path, and without."""
    environ = relay_path_environ(request.param)
    tmp = tmp_path_factory.mktemp("aioice")
    with passage_process(tmp, "--allow-loopback-peers", environ=environ) as running:
        yield running


def _agent(
    info: ServerInfo, controlling: bool, transport: str, tls: bool, user: str, password: str
) -> aioice.Connection:
    port = info.turns_port if tls else info.turn_port
    return aioice.Connection(
        ice_controlling=controlling,
        components=1,
        turn_server=(info.host, port),
        turn_username=user,
        turn_password=password,
        turn_ssl=tls,
        turn_transport=transport,
        use_ipv6=False,
        transport_policy=aioice.TransportPolicy.RELAY,
    )


async def _relay_pair(
    info: ServerInfo, transport: str, tls: bool, user: str, password: str
) -> tuple[aioice.Connection, aioice.Connection]:
    """Two connected agents; the caller closes them."""
    a = _agent(info, True, transport, tls, user, password)
    b = _agent(info, False, transport, tls, user, password)
    try:
        await asyncio.wait_for(
            asyncio.gather(a.gather_candidates(), b.gather_candidates()), CONNECT_TIMEOUT
        )
        for here, there in ((a, b), (b, a)):
            assert here.local_candidates, "no relayed candidate gathered"
            for candidate in there.local_candidates:
                await here.add_remote_candidate(candidate)
            await here.add_remote_candidate(None)
            here.remote_username = there.local_username
            here.remote_password = there.local_password
        await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), CONNECT_TIMEOUT)
    except BaseException:
        await asyncio.gather(a.close(), b.close())
        raise
    return a, b


def _relayed_addresses(conn: aioice.Connection) -> set[tuple[str, int]]:
    return {(c.host, c.port) for c in conn.local_candidates}


async def _exchange(a: aioice.Connection, b: aioice.Connection, info: ServerInfo) -> None:
    # Relay-only policy: every local candidate is a TURN relayed address on Passage.
    low, high = info.relay_ports
    for conn in (a, b):
        assert [c.type for c in conn.local_candidates] == ["relay"]
        for host, port in _relayed_addresses(conn):
            assert host == info.host
            assert low <= port <= high
    assert _relayed_addresses(a).isdisjoint(_relayed_addresses(b))
    # The one aioice internal we look at: the nominated pair joins the two relays.
    for here, there in ((a, b), (b, a)):
        pair = here._nominated[1]
        assert pair.local_candidate.type == pair.remote_candidate.type == "relay"
        assert pair.remote_addr in _relayed_addresses(there)
    for sender, receiver in ((a, b), (b, a)):
        for message in MESSAGES:
            await sender.send(message)
            received = await asyncio.wait_for(receiver.recv(), 5)
            assert received == message


def _allocation_lines(log: Path, kind: str, event: str) -> list[str]:
    """Passage's log lines for allocations of one client transport ("udp", "tcp", "tls")."""
    return [
        line
        for line in log.read_text().splitlines()
        if f"{event}" in line and f" client={kind} " in line
    ]


async def _ended(log: Path, kind: str, at_least: int) -> list[str]:
    """The "ended" lines for ``kind``, once there are ``at_least`` of them (aioice deletes
    its allocations on close, without waiting for the answer)."""
    for _ in range(50):
        lines = _allocation_lines(log, kind, " ended (refresh_zero)")
        if len(lines) >= at_least:
            return lines
        await asyncio.sleep(0.05)
    return lines


@pytest.mark.parametrize(
    ("transport", "tls", "kind"),
    [("udp", False, "udp"), ("tcp", False, "tcp"), ("tcp", True, "tls")],
    ids=["udp", "tcp", "tls"],
)
async def test_aioice_agents_connect_through_passage_relays(
    server: tuple[ServerInfo, Path],
    transport: str,
    tls: bool,
    kind: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    info, log = server
    if tls:
        # aioice passes ssl=True: the default context, which trusts SSL_CERT_FILE.
        monkeypatch.setenv("SSL_CERT_FILE", str(info.ca_cert))
    started = len(_allocation_lines(log, kind, " started: user=alice "))
    ended = len(_allocation_lines(log, kind, " ended (refresh_zero)"))
    a, b = await _relay_pair(info, transport, tls, info.username, info.password)
    try:
        await _exchange(a, b, info)
    finally:
        await asyncio.gather(a.close(), b.close())
    # Both agents allocated over this transport, and the data went through Passage:
    # each allocation relayed every message out to the other agent's relayed address.
    assert len(_allocation_lines(log, kind, " started: user=alice ")) == started + 2
    new_ended = (await _ended(log, kind, ended + 2))[ended:]
    assert len(new_ended) == 2
    payload = sum(len(m) for m in MESSAGES)
    for line in new_ended:
        to_peer = int(line.split(" to peer ")[1].split(" B/")[0])
        assert to_peer >= payload, line


async def test_aioice_with_rest_credentials(server: tuple[ServerInfo, Path]) -> None:
    info, log = server
    username, password = make_rest_credentials(info.auth_secret, "carol", 3600, time.time())
    a, b = await _relay_pair(info, "udp", False, username, password)
    try:
        await _exchange(a, b, info)
    finally:
        await asyncio.gather(a.close(), b.close())
    assert f"user={username} " in log.read_text()


async def _allocate(info: ServerInfo, user: str, password: str, tls: bool = False) -> None:
    """One allocation with aioice's own TURN client; raises what aioice raises."""
    transport, _ = await asyncio.wait_for(
        aioice.turn.create_turn_endpoint(
            asyncio.DatagramProtocol,
            server_addr=(info.host, info.turns_port if tls else info.turn_port),
            username=user,
            password=password,
            ssl=tls,
            transport="tcp" if tls else "udp",
        ),
        CONNECT_TIMEOUT,
    )
    assert transport.get_extra_info("sockname")[0] == info.host
    transport.close()
    await asyncio.sleep(0.1)  # let aioice send its Refresh(0)


async def test_aioice_rejects_expired_rest_credentials(server: tuple[ServerInfo, Path]) -> None:
    info, log = server
    username, password = make_rest_credentials(info.auth_secret, "carol", 60, time.time() - 120)
    with pytest.raises(aioice.stun.TransactionFailed) as failure:
        await _allocate(info, username, password)
    assert failure.value.response.attributes["ERROR-CODE"][0] == 401
    # And aioice's ICE agent, which swallows the error, ends up with no candidate.
    conn = _agent(info, True, "udp", False, username, password)
    try:
        await asyncio.wait_for(conn.gather_candidates(), CONNECT_TIMEOUT)
        assert conn.local_candidates == []
    finally:
        await conn.close()
    assert f"refused allocate from udp {info.host}:" in log.read_text()


async def test_aioice_tls_verifies_passage_certificate(
    server: tuple[ServerInfo, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """aioice really checks the certificate: refused with an empty trust store,
    accepted once the generated CA is trusted."""
    info, _ = server
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    with pytest.raises(ssl.SSLCertVerificationError):
        await _allocate(info, info.username, info.password, tls=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(info.ca_cert))
    await _allocate(info, info.username, info.password, tls=True)
