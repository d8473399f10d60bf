"""The asyncio edge in-process: relaying over UDP, TCP and TLS, EVEN-PORT, public IP, port range.

``passage_server.in_process`` runs the real listeners and relay sockets on
loopback; a test client (``turn_client``) and UDP peers talk to them over real
sockets.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from passage.app import banner
from passage.stun import AttributeType, MessageClass, StreamFramer
from passage_server import free_port, in_process, relay_range
from turn_client import NoAnswer, TurnClient, UdpPeer, error_code, relayed_addresses

pytestmark = pytest.mark.usefixtures("relay_path")  # with the C fast path and without


async def close_all(*things: TurnClient | UdpPeer) -> None:
    for thing in things:
        await thing.close()


# -- relaying in both directions --------------------------------------------------


async def test_udp_channel_data_and_data_indications_round_trip(tmp_path: Path) -> None:
    """RFC 8656 §10-§12: ChannelData both ways, Data indication for a permission-only peer."""
    async with in_process(tmp_path, loopback_peers=True) as server:
        client = await server.client("udp")
        bound, unbound = await UdpPeer.bind(), await UdpPeer.bind()
        try:
            answer = await client.allocate()
            relayed = relayed_addresses(answer)[0]
            assert relayed[0] == "127.0.0.1"
            assert error_code(await client.channel_bind(0x4000, bound.address)) is None
            payloads = [os.urandom(size) for size in (1, 2, 3, 4, 5, 160, 1001, 1200)]
            for payload in payloads:
                client.send_channel_data(0x4000, payload)
            for payload in payloads:
                assert await bound.receive() == (payload, relayed)  # intact, from the relay
            for payload in payloads:
                bound.sendto(payload, relayed)
            for payload in payloads:
                received = await client.receive()
                assert (received.channel, received.peer, received.data) == (0x4000, None, payload)
            # The ChannelBind's permission covers the IP, so another port of it may send:
            # with no channel, that arrives as a Data indication naming the peer.
            unbound.sendto(b"\x00\x01odd-length\xff", relayed)
            received = await client.receive()
            assert received.channel is None
            assert received.peer == unbound.address
            assert received.data == b"\x00\x01odd-length\xff"
            client.send_indication(unbound.address, b"by Send indication")
            assert await unbound.receive() == (b"by Send indication", relayed)
        finally:
            await close_all(client, bound, unbound)


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_stream_channel_data_is_padded_to_four_bytes(tmp_path: Path, transport: str) -> None:
    """RFC 8656 §12.5: over a stream ChannelData is padded both ways, and framing holds."""
    async with in_process(tmp_path, loopback_peers=True) as server:
        client = await server.client(transport)
        bound, unbound = await UdpPeer.bind(), await UdpPeer.bind()
        try:
            relayed = relayed_addresses(await client.allocate())[0]
            assert error_code(await client.channel_bind(0x4001, bound.address)) is None
            # Two padded odd-length frames in one write: the server must skip the padding.
            client.send_raw(b"".join(frame(0x4001, data) for data in (b"abc", b"hello world!!")))
            assert await bound.receive() == (b"abc", relayed)
            assert await bound.receive() == (b"hello world!!", relayed)
            before = client.stream_bytes
            bound.sendto(b"thirteen byte", relayed)
            received = await client.receive()
            assert (received.channel, received.data) == (0x4001, b"thirteen byte")
            assert client.stream_bytes - before == 4 + 13 + 3  # header, data, padding
            unbound.sendto(b"seven b", relayed)
            received = await client.receive()
            assert (received.peer, received.data) == (unbound.address, b"seven b")
            # Still in step: a request after the padded frames is answered and parsed.
            assert error_code(await client.refresh(600)) is None
        finally:
            await close_all(client, bound, unbound)


async def test_turn_over_tls_on_an_extra_port_relays_like_the_main_one(tmp_path: Path) -> None:
    """``--turns-extra-port`` (443 behind strict firewalls): one more TLS listener, same cert."""
    extra = free_port((socket.SOCK_STREAM,))
    async with in_process(tmp_path, loopback_peers=True, turns_extra_ports=(extra,)) as server:
        main = server.config.turns_port
        assert [address[1] for address in server.running.tls] == [main, extra]
        for port in (main, extra):
            client = await TurnClient.connect(
                "tls", ("127.0.0.1", port), ssl_context=server.tls_context()
            )
            peer = await UdpPeer.bind()
            try:
                relayed = relayed_addresses(await client.allocate())[0]
                assert error_code(await client.create_permission(peer.address)) is None
                client.send_indication(peer.address, b"through TLS")
                assert await peer.receive() == (b"through TLS", relayed)
            finally:
                await close_all(client, peer)
        shown = banner(server.config, server.datadir, server.running)
        assert f"turns:127.0.0.1:{main}?transport=tcp" in shown
        assert f"turns:127.0.0.1:{extra}?transport=tcp" in shown
        urls = server.running.api.service.topology.urls(["relay.example"])
        assert urls[-2:] == [
            f"turns:relay.example:{main}?transport=tcp",
            f"turns:relay.example:{extra}?transport=tcp",
        ]


def frame(channel: int, data: bytes) -> bytes:
    header = channel.to_bytes(2, "big") + len(data).to_bytes(2, "big")
    return header + data + bytes(-len(data) & 3)


def test_frame_helper_matches_the_stream_framer() -> None:
    framed = frame(0x4001, b"abc") + frame(0x4002, b"")
    assert StreamFramer().feed(framed) == [b"\x40\x01\x00\x03abc", b"\x40\x02\x00\x00"]


# -- EVEN-PORT, RESERVATION-TOKEN ------------------------------------------------------


async def test_even_port_and_reservation_token(tmp_path: Path) -> None:
    """RFC 8656 §7.2, §14.6, §14.9: even ports; R reserves port + 1 for the token's holder."""
    async with in_process(tmp_path, loopback_peers=True) as server:
        plain, reserving, taker, late = [await server.client() for _ in range(4)]
        peer = await UdpPeer.bind()
        try:
            answer = await plain.allocate((AttributeType.EVEN_PORT, False))
            assert relayed_addresses(answer)[0][1] % 2 == 0
            assert not answer.has(AttributeType.RESERVATION_TOKEN)

            answer = await reserving.allocate((AttributeType.EVEN_PORT, True))
            host, port = relayed_addresses(answer)[0]
            assert port % 2 == 0
            token = answer.get(AttributeType.RESERVATION_TOKEN, bytes)
            assert token is not None and len(token) == 8

            answer = await taker.allocate((AttributeType.RESERVATION_TOKEN, token))
            assert relayed_addresses(answer) == [(host, port + 1)]
            assert error_code(await taker.channel_bind(0x4000, peer.address)) is None
            taker.send_channel_data(0x4000, b"from the reserved port")
            assert await peer.receive() == (b"from the reserved port", (host, port + 1))

            # A token is good once.
            assert error_code(await late.allocate((AttributeType.RESERVATION_TOKEN, token))) == 508
        finally:
            await close_all(plain, reserving, taker, late, peer)


# -- public IP behind 1:1 NAT ----------------------------------------------------------


async def test_public_ip_is_advertised_while_the_relay_binds_locally(tmp_path: Path) -> None:
    """coturn's external-ip: XOR-RELAYED-ADDRESS names the public IP with the real port."""
    async with in_process(tmp_path, loopback_peers=True, public_ip="203.0.113.9") as server:
        client = await server.client()
        peer = await UdpPeer.bind()
        try:
            answer = await client.allocate()
            public_host, port = relayed_addresses(answer)[0]
            assert public_host == "203.0.113.9"
            low, high = server.config.relay_ports
            assert low <= port <= high
            assert answer.get(AttributeType.XOR_MAPPED_ADDRESS, tuple) == client.local
            # The socket behind it is on 127.0.0.1 with that very port.
            assert error_code(await client.channel_bind(0x4000, peer.address)) is None
            client.send_channel_data(0x4000, b"out")
            assert await peer.receive() == (b"out", ("127.0.0.1", port))
            peer.sendto(b"back", ("127.0.0.1", port))
            assert (await client.receive()).data == b"back"
        finally:
            await close_all(client, peer)


# -- relay port range ----------------------------------------------------------------


def four_free_ports() -> tuple[int, int]:
    """An even LOW with LOW..LOW+3 all free for UDP on 127.0.0.1."""
    for _ in range(100):
        low = relay_range(4)[0]
        sockets: list[socket.socket] = []
        try:
            for port in range(low, low + 4):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return low, low + 3
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no four free ports")


async def test_relay_port_range_is_respected_and_exhaustion_is_508(tmp_path: Path) -> None:
    low, high = four_free_ports()
    async with in_process(tmp_path, loopback_peers=True, relay_ports=(low, high)) as server:
        clients = [await server.client() for _ in range(4)]
        first, second, third, fourth = clients
        try:
            ports = []
            for client in (first, second):
                answer = await client.allocate((AttributeType.EVEN_PORT, True))
                assert answer.message_class is MessageClass.SUCCESS, error_code(answer)
                ports.append(relayed_addresses(answer)[0][1])
            assert sorted(ports) == [low, low + 2]  # each kept port + 1 as well
            assert error_code(await third.allocate((AttributeType.EVEN_PORT, True))) == 508
            assert error_code(await fourth.allocate()) == 508
            # Freeing one allocation frees its port (not its reservation).
            assert error_code(await first.refresh(0)) is None
            answer = await fourth.allocate()
            assert relayed_addresses(answer)[0][1] == ports[0]
        finally:
            await close_all(*clients)


async def test_client_without_allocation_gets_no_relay(tmp_path: Path) -> None:
    """ChannelData from a 5-tuple without an allocation goes nowhere (RFC 8656 §12.6)."""
    async with in_process(tmp_path, loopback_peers=True) as server:
        owner, stranger = await server.client(), await server.client()
        peer = await UdpPeer.bind()
        try:
            await owner.allocate()
            assert error_code(await owner.channel_bind(0x4000, peer.address)) is None
            stranger.send_channel_data(0x4000, b"not mine")
            owner.send_channel_data(0x4000, b"mine")
            assert (await peer.receive())[0] == b"mine"
            with pytest.raises(NoAnswer):
                await peer.receive(within=0.1)
        finally:
            await close_all(owner, stranger, peer)


@pytest.mark.parametrize(
    ("reserver", "taker"),
    [
        ("tcp", "tcp"),
        ("udp", "tcp"),
    ],
)
async def test_reserved_port_pads_channel_data_for_a_stream_taker(
    tmp_path: Path, reserver: str, taker: str
) -> None:
    """RFC 8656 §12.5 holds whoever reserved the port: a TCP taker gets padded ChannelData."""
    async with in_process(tmp_path, loopback_peers=True) as server:
        reserving, taking = await server.client(reserver), await server.client(taker)
        peer = await UdpPeer.bind()
        try:
            answer = await reserving.allocate((AttributeType.EVEN_PORT, True))
            token = answer.get(AttributeType.RESERVATION_TOKEN, bytes)
            assert token is not None
            relayed = relayed_addresses(
                await taking.allocate((AttributeType.RESERVATION_TOKEN, token))
            )[0]
            assert error_code(await taking.channel_bind(0x4000, peer.address)) is None
            before = taking.stream_bytes
            peer.sendto(b"thirteen byte", relayed)
            received = await taking.receive(within=1.0)
            assert (received.channel, received.data) == (0x4000, b"thirteen byte")
            assert taking.stream_bytes - before == 4 + 13 + 3
            assert error_code(await taking.refresh(600)) is None  # the stream is still in step
        finally:
            await close_all(reserving, taking, peer)
