"""Peer filtering over the wire: the default deny list, and the allow/deny settings.

A real ``passage serve`` with an IPv4 and an IPv6 relay (``--relay-ip 127.0.0.1
--relay-ip ::1``) hands out dual allocations (ADDITIONAL-ADDRESS-FAMILY, RFC 8656
§7.2), so an IPv6 peer meets the deny list rather than 443. Every denied class is
tried with CreatePermission and ChannelBind (403, RFC 8656 §9.2, §11.2) and with a
Send indication that must not leave the relay (§10.2). Linux delivers 0.0.0.0 and
``::`` to loopback, so UDP listeners on 127.0.0.1 and ::1 catch any such leak
(CVE-2020-26262); a marker sent afterwards to 127.0.0.2, the one host this server
allows, proves the relay has already handled the denied Send.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from passage.addresses import AddressFamily
from passage.stun import AttributeType, MessageClass
from passage_server import ServerInfo, free_port, passage_process
from turn_client import NoAnswer, TurnClient, UdpPeer, error_code, relayed_addresses


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _has_ipv6_loopback(), reason="needs ::1 on lo")

DUAL_RELAY = ("--relay-ip", "127.0.0.1", "--relay-ip", "::1")
MARKER_HOST = "127.0.0.2"
"""The one loopback host the deny-list server allows: where markers go."""

DENIED_IPV4 = [
    "0.0.0.0",
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "169.254.169.254",
    "224.0.0.1",
    "255.255.255.255",
    "240.0.0.1",
]

DENIED_IPV6 = [
    # IPv4-mapped (RFC 4291 §2.5.5.2) and IPv4-translated (RFC 2765) forms.
    "::ffff:127.0.0.1",
    "::ffff:0.0.0.0",
    "::ffff:10.1.2.3",
    "::ffff:169.254.169.254",
    "::ffff:0:7f00:1",
    # IPv4-compatible, deprecated (RFC 4291 §2.5.5.1).
    "::127.0.0.1",
    "::10.1.2.3",
    # NAT64 well-known prefix (RFC 6052) and local-use /48 (RFC 8215).
    "64:ff9b::7f00:1",
    "64:ff9b::a01:203",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1:7f00:0:100::",
    "64:ff9b:1:a01:2:300::",
    # 6to4 (RFC 3056).
    "2002:7f00:1::",
    "2002:a01:203::",
    "2002:a9fe:a9fe::",
    # Native IPv6 classes.
    "::",
    "::1",
    "fc00::1",
    "fe80::1",
    "ff02::1",
]

DENIED = DENIED_IPV4 + DENIED_IPV6

OWN_RELAYS = {"127.0.0.1", "::ffff:127.0.0.1", "::ffff:0:7f00:1", "::1"}
"""The deny-list server's relay addresses, in every spelling: a permission for one is
allocation-to-allocation traffic and passes, but only the relay ports are reachable
there (the listeners here are outside that range)."""


@pytest.fixture(scope="module")
def deny_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    """Default policy (no --allow-loopback-peers), dual relay, and 127.0.0.2 for markers."""
    tmp = tmp_path_factory.mktemp("deny")
    with passage_process(tmp, *DUAL_RELAY, "--allow-peer", f"{MARKER_HOST}/32") as (info, _):
        yield info


@dataclass
class Listeners:
    """UDP sockets on one port of 127.0.0.1, ::1 and the marker host."""

    port: int
    v4: UdpPeer
    v6: UdpPeer
    marker: UdpPeer

    def leaked(self) -> list[tuple[bytes, tuple[str, int]]]:
        found = []
        for peer in (self.v4, self.v6):
            while not peer.datagrams.empty():
                found.append(peer.datagrams.get_nowait())
        return found

    async def expect_marker(self, payload: bytes) -> None:
        data, _ = await self.marker.receive()
        assert data == payload
        await asyncio.sleep(0.05)  # anything sent before the marker is read by now


async def bind_listeners() -> Listeners:
    for _ in range(50):
        # free_port draws below the relay port ranges: these are no relay sockets.
        v4 = await UdpPeer.bind("127.0.0.1", free_port((socket.SOCK_DGRAM,)))
        port = v4.address[1]
        try:
            v6 = await UdpPeer.bind("::1", port)
        except OSError:
            await v4.close()
            continue
        try:
            marker = await UdpPeer.bind(MARKER_HOST, port)
        except OSError:
            await v4.close()
            await v6.close()
            continue
        return Listeners(port, v4, v6, marker)
    raise RuntimeError("no port free on 127.0.0.1, ::1 and 127.0.0.2 at once")


@pytest.fixture
async def listeners() -> AsyncIterator[Listeners]:
    found = await bind_listeners()
    yield found
    for peer in (found.v4, found.v6, found.marker):
        await peer.close()


@contextmanager
def started(tmp_path: Path, *args: str) -> Iterator[ServerInfo]:
    with passage_process(tmp_path, *args) as (info, _):
        yield info


async def dual_client(info: ServerInfo) -> TurnClient:
    """A UDP client holding an IPv4 + IPv6 allocation."""
    client = await TurnClient.connect("udp", (info.host, info.turn_port))
    answer = await client.allocate((AttributeType.ADDITIONAL_ADDRESS_FAMILY, AddressFamily.IPV6))
    assert answer.message_class is MessageClass.SUCCESS, error_code(answer)
    families = [":" in host for host, _ in relayed_addresses(answer)]
    assert families == [False, True]
    return client


# -- the default deny list -------------------------------------------------------


@pytest.mark.parametrize("peer", DENIED)
async def test_create_permission_to_denied_peer_is_403(
    deny_server: ServerInfo, listeners: Listeners, peer: str
) -> None:
    client = await dual_client(deny_server)
    try:
        answer = await client.create_permission((peer, listeners.port))
        assert error_code(answer) == (None if peer in OWN_RELAYS else 403)
        # Nothing was installed (or only for the relay ports): a Send goes nowhere.
        assert error_code(await client.create_permission((MARKER_HOST, listeners.port))) is None
        client.send_indication((peer, listeners.port), b"after-403")
        client.send_indication((MARKER_HOST, listeners.port), b"marker")
        await listeners.expect_marker(b"marker")
        assert listeners.leaked() == []
    finally:
        await client.close()


@pytest.mark.parametrize("peer", DENIED)
async def test_channel_bind_to_denied_peer_is_403(
    deny_server: ServerInfo, listeners: Listeners, peer: str
) -> None:
    client = await dual_client(deny_server)
    try:
        answer = await client.channel_bind(0x4000, (peer, listeners.port))
        assert error_code(answer) == 403
        # The refused bind left channel 0x4000 free for a permitted peer.
        answer = await client.channel_bind(0x4000, (MARKER_HOST, listeners.port))
        assert error_code(answer) is None
        client.send_channel_data(0x4000, b"marker")
        await listeners.expect_marker(b"marker")
        assert listeners.leaked() == []
    finally:
        await client.close()


@pytest.mark.parametrize("peer", DENIED)
async def test_send_indication_to_denied_peer_is_not_relayed(
    deny_server: ServerInfo, listeners: Listeners, peer: str
) -> None:
    client = await dual_client(deny_server)
    try:
        assert error_code(await client.create_permission((MARKER_HOST, listeners.port))) is None
        client.send_indication((peer, listeners.port), b"must not arrive")
        client.send_indication((MARKER_HOST, listeners.port), b"marker")
        await listeners.expect_marker(b"marker")
        assert listeners.leaked() == []
        with pytest.raises(NoAnswer):
            await client.receive(within=0.05)  # an indication gets no answer, not an error
    finally:
        await client.close()


async def test_create_permission_is_all_or_nothing(
    deny_server: ServerInfo, listeners: Listeners
) -> None:
    """RFC 8656 §9.2: one denied XOR-PEER-ADDRESS refuses the whole request."""
    client = await dual_client(deny_server)
    try:
        answer = await client.create_permission(
            (MARKER_HOST, listeners.port), ("10.1.2.3", listeners.port)
        )
        assert error_code(answer) == 403
        client.send_indication((MARKER_HOST, listeners.port), b"not permitted yet")
        assert error_code(await client.create_permission((MARKER_HOST, listeners.port))) is None
        client.send_indication((MARKER_HOST, listeners.port), b"marker")
        await listeners.expect_marker(b"marker")  # the first datagram is the marker
    finally:
        await client.close()


@pytest.mark.parametrize("peer", ["::ffff:127.0.0.1", "::1", "2001:4860:4860::8888"])
async def test_ipv6_peer_on_ipv4_only_allocation_is_443(deny_server: ServerInfo, peer: str) -> None:
    """RFC 8656 §9.2/§11.2: a peer of a family the allocation lacks is 443, allowed or not."""
    client = await TurnClient.connect("udp", (deny_server.host, deny_server.turn_port))
    try:
        answer = await client.allocate()
        assert len(relayed_addresses(answer)) == 1
        assert error_code(await client.create_permission((peer, 9))) == 443
        assert error_code(await client.channel_bind(0x4001, (peer, 9))) == 443
    finally:
        await client.close()


async def test_ipv4_peer_on_ipv6_only_allocation_is_443(deny_server: ServerInfo) -> None:
    client = await TurnClient.connect("udp", (deny_server.host, deny_server.turn_port))
    try:
        answer = await client.allocate((AttributeType.REQUESTED_ADDRESS_FAMILY, AddressFamily.IPV6))
        assert [":" in host for host, _ in relayed_addresses(answer)] == [True]
        assert error_code(await client.create_permission(("8.8.8.8", 9))) == 443
        assert error_code(await client.create_permission(("fc00::1", 9))) == 403
    finally:
        await client.close()


@pytest.mark.parametrize("peer", ["8.8.8.8", "2001:4860:4860::8888", "64:ff9b::808:808"])
async def test_public_peers_are_permitted(deny_server: ServerInfo, peer: str) -> None:
    """The control: the 403s above come from the deny list, not from the family or form."""
    client = await dual_client(deny_server)
    try:
        assert error_code(await client.create_permission((peer, 9))) is None
        assert error_code(await client.channel_bind(0x4002, (peer, 9))) is None
    finally:
        await client.close()


# -- allow-loopback, allow list, deny list -------------------------------------------


async def test_allow_loopback_peers_opens_loopback_only(tmp_path: Path) -> None:
    with started(tmp_path, *DUAL_RELAY, "--allow-loopback-peers") as info:
        found = await bind_listeners()
        client = await dual_client(info)
        try:
            for host, peer in (("127.0.0.1", found.v4), ("::1", found.v6)):
                assert error_code(await client.create_permission((host, found.port))) is None
                client.send_indication((host, found.port), b"via " + host.encode())
                data, source = await peer.receive()
                assert data == b"via " + host.encode()
                assert source[0] == host  # sent from the relay of that family
            channel = 0x4010
            assert error_code(await client.channel_bind(channel, found.v4.address)) is None
            client.send_channel_data(channel, b"channel data")
            assert (await found.v4.receive())[0] == b"channel data"
            found.v4.sendto(b"reply", client.relayed)  # type: ignore[arg-type]
            received = await client.receive()
            assert (received.channel, received.data) == (channel, b"reply")
            # Only loopback opened: private, unspecified and NAT64 loopback stay shut.
            for peer in ("10.1.2.3", "0.0.0.0", "64:ff9b::7f00:1", "2002:7f00:1::"):
                assert error_code(await client.create_permission((peer, 9))) == 403, peer
        finally:
            await client.close()
            for udp in (found.v4, found.v6, found.marker):
                await udp.close()


async def test_listener_catches_a_relay_to_unspecified_address(tmp_path: Path) -> None:
    """The control for the 0.0.0.0 cases: once allowed, 0.0.0.0 does reach 127.0.0.1."""
    with started(tmp_path, "--allow-peer", "0.0.0.0/32") as info:
        found = await bind_listeners()
        client = await TurnClient.connect("udp", (info.host, info.turn_port))
        try:
            assert (await client.allocate()).message_class is MessageClass.SUCCESS
            assert error_code(await client.create_permission(("0.0.0.0", found.port))) is None
            client.send_indication(("0.0.0.0", found.port), b"leak")
            assert (await found.v4.receive())[0] == b"leak"
            assert error_code(await client.channel_bind(0x4000, ("127.0.0.1", 9))) == 403
        finally:
            await client.close()
            for udp in (found.v4, found.v6, found.marker):
                await udp.close()


async def test_allow_peer_opens_that_range_only(tmp_path: Path) -> None:
    with started(tmp_path, *DUAL_RELAY, "--allow-peer", "10.0.0.0/8") as info:
        client = await dual_client(info)
        try:
            for peer in ("10.1.2.3", "10.255.0.1", "::ffff:10.1.2.3"):
                assert error_code(await client.create_permission((peer, 9))) is None, peer
            assert error_code(await client.channel_bind(0x4000, ("10.9.9.9", 9))) is None
            # A NAT64/6to4 form is not the same host; other private ranges stay shut.
            for peer in ("2002:a01:203::", "64:ff9b::a01:203", "192.168.1.1", "172.16.0.1"):
                assert error_code(await client.create_permission((peer, 9))) == 403, peer
            for peer in ("127.0.0.2", "100.64.0.1", "169.254.169.254"):
                assert error_code(await client.create_permission((peer, 9))) == 403, peer
        finally:
            await client.close()


async def test_deny_peer_beats_allow_list_and_allow_loopback(tmp_path: Path) -> None:
    args = [
        *DUAL_RELAY,
        "--allow-loopback-peers",
        "--allow-peer", "10.0.0.0/8",
        "--deny-peer", "10.9.0.0/16",
        "--deny-peer", "127.0.0.0/8",
        "--deny-peer", "8.8.8.0/24",
        "--deny-peer", "2606:4700::/32",
    ]  # fmt: skip
    with started(tmp_path, *args) as info:
        found = await bind_listeners()
        client = await dual_client(info)
        try:
            refused = [
                "10.9.1.1",  # denied inside an allowed range
                "127.0.0.1",  # denied although loopback is allowed
                "::ffff:127.0.0.1",
                "8.8.8.8",  # a public address, denied by configuration
                "::ffff:8.8.8.8",
                "2002:808:808::",
                "64:ff9b::808:808",
                "2606:4700::1111",
            ]
            for peer in refused:
                assert error_code(await client.create_permission((peer, 9))) == 403, peer
                assert error_code(await client.channel_bind(0x4000, (peer, 9))) == 403, peer
            for peer in ("10.1.2.3", "8.8.4.4", "2001:4860:4860::8888", "::1"):
                assert error_code(await client.create_permission((peer, 9))) is None, peer
            # A Send to the denied loopback goes nowhere; ::1 (allowed) gets the marker.
            client.send_indication(("127.0.0.1", found.port), b"denied")
            client.send_indication(("::1", found.port), b"marker")
            data, _ = await found.v6.receive()
            assert data == b"marker"
            await asyncio.sleep(0.05)
            assert found.v4.datagrams.empty()
        finally:
            await client.close()
            for udp in (found.v4, found.v6, found.marker):
                await udp.close()
