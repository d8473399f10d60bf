"""The server's own listeners are never peers; its own relay addresses always may be.

Sans-IO: :class:`OwnAddresses` and the two peer checks that use it, and the
core answering CreatePermission, ChannelBind and Send with them.
"""

from __future__ import annotations

import pytest
from turn_harness import SERVER, Clock, FakeRelay, answer, error_code, make_server, new_client

from passage.stun import AttributeType, MessageClass, Method
from passage.turn.config import TurnConfig
from passage.turn.events import SendToPeer
from passage.turn.own_addresses import OwnAddresses, canonical_ip
from passage.turn.peers import PeerDenied, PeerPolicy
from passage.turn.server import TurnServer

RELAY_PORTS = (49152, 65535)
OWN = OwnAddresses.build(
    host_ips=["203.0.113.5", "10.0.0.5", "fd00::5"],
    listener_ports=[3478, 5349, 8443, 0],
    relay_ips=["10.0.0.6", "198.51.100.6"],
    relay_ports=RELAY_PORTS,
)
POLICY = PeerPolicy.from_config(
    allow_loopback=False, allowed=["203.0.113.0/24"], denied=[], own=OWN
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.5", "10.0.0.5"),
        ("::ffff:10.0.0.5", "10.0.0.5"),
        ("::ffff:0:a00:5", "10.0.0.5"),
        ("0:0:0:0:0:ffff:a00:5", "10.0.0.5"),
        ("FD00:0::5", "fd00::5"),
        ("fe80::1%eth0", None),
        ("not an address", None),
        ("1" * 100, None),
        (17, None),
    ],
)
def test_canonical_ip_gives_one_spelling_per_address(text: object, expected: str | None) -> None:
    assert canonical_ip(text) == expected


@pytest.mark.parametrize(
    "peer",
    [
        ("203.0.113.5", 3478),  # public, and allowed by configuration too
        ("::ffff:203.0.113.5", 3478),
        ("10.0.0.5", 5349),
        ("fd00::5", 8443),
        ("10.0.0.6", 3478),  # a relay IP is a host IP
        ("127.0.0.1", 3478),  # loopback and unspecified reach this host whatever it has
        ("127.9.9.9", 3478),
        ("::1", 3478),
        ("0.0.0.0", 3478),
        ("::", 3478),
    ],
)
def test_a_listener_on_any_own_address_is_refused(peer: tuple[str, int]) -> None:
    assert POLICY.check_transport(*peer) is PeerDenied.OWN_LISTENER


def test_other_ports_of_a_public_own_address_are_peers_like_any_other() -> None:
    """A media server next to the TURN server, on the same public IP, is a fine peer."""
    assert POLICY.check_transport("203.0.113.5", 10000) is None
    assert POLICY.check_transport("203.0.113.5", 50000) is None
    assert OWN.is_listener("203.0.113.5", 0) is False  # port 0 means "no listener"


def test_an_own_relay_address_in_a_denied_range_passes_on_relay_ports_only() -> None:
    assert POLICY.check("10.0.0.6") is None  # a permission: any port
    assert POLICY.check("::ffff:10.0.0.6") is None
    assert POLICY.check_transport("10.0.0.6", 50000) is None
    assert POLICY.check_transport("10.0.0.6", RELAY_PORTS[0]) is None
    assert POLICY.check_transport("10.0.0.6", RELAY_PORTS[1]) is None
    assert POLICY.check_transport("10.0.0.6", 22) is PeerDenied.PRIVATE  # not for other services
    assert POLICY.check_transport("10.0.0.6", 3478) is PeerDenied.OWN_LISTENER
    # Another private address of the host is no relay address: denied as before.
    assert POLICY.check("10.0.0.5") is PeerDenied.PRIVATE
    assert POLICY.check_transport("10.0.0.5", 50000) is PeerDenied.PRIVATE


def test_an_operators_denial_refuses_own_relays_too_and_the_listener_rule_wins() -> None:
    """``--deny-peer`` is the operator's last word, as it is for every other address."""
    policy = PeerPolicy.from_config(
        allow_loopback=True, allowed=[], denied=["198.51.100.0/24"], own=OWN
    )
    assert policy.check("198.51.100.6") is PeerDenied.CONFIGURED
    assert policy.check_transport("198.51.100.6", 50000) is PeerDenied.CONFIGURED
    assert policy.check_transport("10.0.0.6", 50000) is None
    assert policy.check_transport("127.0.0.1", 3478) is PeerDenied.OWN_LISTENER
    assert policy.check_transport("127.0.0.1", 4000) is None  # loopback allowed


def test_without_own_addresses_only_loopback_listeners_are_unknown() -> None:
    policy = PeerPolicy.from_config(allow_loopback=True, allowed=[], denied=[])
    assert policy.check_transport("127.0.0.1", 3478) is None


# -- the core -----------------------------------------------------------------


def core_with(own: OwnAddresses) -> TurnServer:
    server = make_server(TurnConfig(realm="test.realm"))
    server.set_own_addresses(own)
    return server


def test_two_allocations_on_a_denied_relay_address_reach_each_other() -> None:
    """The harness's relays are on 192.0.2.10, a documentation range the deny list covers."""
    own = OwnAddresses.build(
        host_ips=[SERVER[0]], listener_ports=[SERVER[1]], relay_ips=["192.0.2.10"],
        relay_ports=RELAY_PORTS,
    )  # fmt: skip
    server, clock = core_with(own), Clock()
    a, b = new_client(server, clock, 40000), new_client(server, clock, 40001)
    a.allocate()
    relayed_b = b.allocate().get(AttributeType.XOR_RELAYED_ADDRESS, tuple)
    assert relayed_b is not None and relayed_b[0] == "192.0.2.10"
    peer = (AttributeType.XOR_PEER_ADDRESS, relayed_b)
    assert error_code(a.request(Method.CREATE_PERMISSION, [peer])[0]) is None  # type: ignore[arg-type]
    bind = [(AttributeType.CHANNEL_NUMBER, 0x4000), peer]
    assert error_code(a.request(Method.CHANNEL_BIND, bind)[0]) is None  # type: ignore[arg-type]
    to_listener = [(AttributeType.CHANNEL_NUMBER, 0x4001), (AttributeType.XOR_PEER_ADDRESS, SERVER)]
    response, _ = a.request(Method.CHANNEL_BIND, to_listener)
    assert response is not None and error_code(response) == 403
    # A Send to the listener is dropped, counted; to the other allocation it leaves.
    sends = [
        a.build(
            Method.SEND,
            [(AttributeType.XOR_PEER_ADDRESS, target), (AttributeType.DATA, b"x")],
            sign=False,
            message_class=MessageClass.INDICATION,
        )
        for target in (SERVER, relayed_b)
    ]
    assert a.send(sends[0]) == []
    assert server.metrics.drops["peer_denied"] == 1
    actions = a.send(sends[1])
    assert [type(action) for action in actions] == [SendToPeer]
    assert answer(actions) is None
    assert isinstance(actions[0], SendToPeer) and isinstance(actions[0].relay, FakeRelay)
