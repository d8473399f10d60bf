"""No allocation relays to this server's own listeners; allocations on it still reach each other.

Issue 10, "TURN relays to the server's own listeners": a client could send a
Binding or an Allocate through its relay to the server's own TURN port and get
an answer (TURN-in-TURN: the ledger and per-IP limits then see the server's
own address as a client). Every listener (STUN/TURN, TLS, API, HTTP) is now
refused as a peer on every address of the host, even where loopback peers are
allowed; and the server's own relay addresses pass the default deny list, so
two allocations on one server relay to each other (here on 127.0.0.1, which
the deny list covers).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import aioice
import aioice.stun
import aioice.turn
import pytest

from passage.stun import AttributeType, MessageClass, Method
from passage_server import PASSWORD, USER, ServerInfo, free_port, passage_process
from turn_client import NoAnswer, TurnClient, UdpPeer, error_code, relayed_addresses

HTTP_PORT_FLAG = "--http-port"


@pytest.fixture(scope="module")
def loopback_allowed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    """A server that relays to loopback (``--allow-loopback-peers``) and has an HTTP port."""
    http_port = free_port((socket.SOCK_STREAM,))
    tmp = tmp_path_factory.mktemp("own")
    args = ("--allow-loopback-peers", HTTP_PORT_FLAG, str(http_port))
    with passage_process(tmp, *args) as (info, _):
        yield info


@pytest.fixture(scope="module")
def default_policy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    """A server with the default deny list: its relay address 127.0.0.1 is in it."""
    with passage_process(tmp_path_factory.mktemp("deny")) as (info, _):
        yield info


def listener_ports(info: ServerInfo) -> list[int]:
    http = int(info.extra_args[info.extra_args.index(HTTP_PORT_FLAG) + 1])
    return [info.turn_port, info.turns_port, info.api_port, http]


class Catcher(asyncio.DatagramProtocol):
    """What aioice hands the application of a TURN endpoint: data, and failed sends."""

    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()
        self.errors: asyncio.Queue[Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.errors.put_nowait(exc)


async def test_aioice_gets_403_for_every_listener_of_the_server(
    loopback_allowed: ServerInfo,
) -> None:
    """aioice binds a channel before it sends: the ChannelBind to a listener is refused."""
    info = loopback_allowed
    transport, catcher = await aioice.turn.create_turn_endpoint(
        Catcher, (info.host, info.turn_port), USER, PASSWORD
    )
    try:
        binding = bytes(aioice.stun.Message(aioice.stun.Method.BINDING, aioice.stun.Class.REQUEST))
        for port in listener_ports(info):
            for host in (info.host, "127.0.0.2", "0.0.0.0"):  # every address of the host
                transport.sendto(binding, (host, port))
                error = await asyncio.wait_for(catcher.errors.get(), 5.0)
                assert isinstance(error, aioice.stun.TransactionFailed), (host, port, error)
                assert error.response.attributes["ERROR-CODE"][0] == 403, (host, port)
        assert catcher.datagrams.empty()  # nothing of ours answered through the relay
    finally:
        transport.close()


async def test_send_indications_to_the_server_itself_are_dropped(
    loopback_allowed: ServerInfo,
) -> None:
    """A Binding and an Allocate sent through the relay to the TURN port get no answer."""
    info = loopback_allowed
    client = await TurnClient.connect("udp", (info.host, info.turn_port))
    peer = await UdpPeer.bind(info.host, free_port((socket.SOCK_DGRAM,)))
    try:
        assert (await client.allocate()).message_class is MessageClass.SUCCESS
        assert error_code(await client.create_permission((info.host, 0))) is None
        own = (info.host, info.turn_port)
        requested_udp = [(AttributeType.REQUESTED_TRANSPORT, 17)]
        for method, attributes in ((Method.BINDING, []), (Method.ALLOCATE, requested_udp)):
            _, request = client.build(method, MessageClass.REQUEST, attributes, sign=False)
            client.send_indication(own, request)
        client.send_indication(peer.address, b"marker")
        assert (await peer.receive())[0] == b"marker"  # the relay has handled the others
        with pytest.raises(NoAnswer):
            await client.receive(within=0.5)
    finally:
        await client.close()
        await peer.close()


async def test_two_allocations_relay_to_each_other_under_the_default_deny_list(
    default_policy: ServerInfo,
) -> None:
    info = default_policy
    server = (info.host, info.turn_port)
    a = await TurnClient.connect("udp", server)
    b = await TurnClient.connect("tcp", server)
    # Loopback, outside the relay port range: still denied.
    outsider = await UdpPeer.bind(info.host, free_port((socket.SOCK_DGRAM,)))
    try:
        relayed_a = relayed_addresses(await a.allocate())[0]
        relayed_b = relayed_addresses(await b.allocate())[0]
        assert relayed_a[0] == relayed_b[0] == "127.0.0.1"
        assert error_code(await a.channel_bind(0x4000, relayed_b)) is None
        assert error_code(await b.channel_bind(0x4001, relayed_a)) is None
        a.send_channel_data(0x4000, b"from a")
        received = await b.receive()
        assert (received.channel, received.data) == (0x4001, b"from a")
        b.send_channel_data(0x4001, b"from b")
        received = await a.receive()
        assert (received.channel, received.data) == (0x4000, b"from b")
        assert error_code(await a.channel_bind(0x4002, outsider.address)) == 403
        assert error_code(await a.channel_bind(0x4003, (info.host, info.turn_port))) == 403
    finally:
        for closing in (a, b, outsider):
            await closing.close()


async def test_two_aioice_agents_meet_through_relays_under_the_default_deny_list(
    default_policy: ServerInfo,
) -> None:
    """Relay-only ICE, as a browser forced to TURN: both candidates are 127.0.0.1."""
    info = default_policy
    agents = [
        aioice.Connection(
            ice_controlling=controlling,
            components=1,
            turn_server=(info.host, info.turn_port),
            turn_username=USER,
            turn_password=PASSWORD,
            use_ipv6=False,
            transport_policy=aioice.TransportPolicy.RELAY,
        )
        for controlling in (True, False)
    ]
    a, b = agents
    try:
        await asyncio.wait_for(asyncio.gather(a.gather_candidates(), b.gather_candidates()), 8)
        for here, there in ((a, b), (b, a)):
            for candidate in there.local_candidates:
                await here.add_remote_candidate(candidate)
            await here.add_remote_candidate(None)
            here.remote_username, here.remote_password = there.local_username, there.local_password
        await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), 8)
        await a.send(b"through two relays")
        assert await asyncio.wait_for(b.recv(), 5) == b"through two relays"
    finally:
        await asyncio.gather(a.close(), b.close())
