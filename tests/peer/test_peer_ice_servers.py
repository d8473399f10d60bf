"""Reading a relay configuration: ICE server URLs (RFC 7064, RFC 7065) and credentials."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passage.addresses import Transport
from passage.peer.errors import PeerError
from passage.peer.ice_servers import (
    StunServer,
    TurnServer,
    parse_ice_url,
    parse_relay_configuration,
)

UDP, TCP, TLS = Transport.UDP, Transport.TCP, Transport.TLS


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("stun:203.0.113.10:3478", ("stun", "203.0.113.10", 3478, None)),
        ("stun:relay.example.com", ("stun", "relay.example.com", 3478, None)),
        ("turn:203.0.113.10:3478?transport=udp", ("turn", "203.0.113.10", 3478, UDP)),
        ("turn:203.0.113.10:3478?transport=tcp", ("turn", "203.0.113.10", 3478, TCP)),
        ("turn:203.0.113.10", ("turn", "203.0.113.10", 3478, UDP)),
        ("turns:203.0.113.10:443?transport=tcp", ("turns", "203.0.113.10", 443, TLS)),
        ("turns:relay.example.com", ("turns", "relay.example.com", 5349, TLS)),
        ("turn:[2001:db8::1]:3478?transport=tcp", ("turn", "2001:db8::1", 3478, TCP)),
        ("TURN:h:1?transport=UDP", ("turn", "h", 1, UDP)),
    ],
)
def test_ice_urls(url: str, parsed: tuple[object, ...]) -> None:
    assert parse_ice_url(url) == parsed


@pytest.mark.parametrize(
    "url",
    [
        "",
        "http://x",
        "stun:",
        "turn:h:0",
        "turn:h:65536",
        "turn:h:port",
        "turn:h?transport=sctp",
        "turns:h?transport=udp",
        "turn:[::1",
    ],
)
def test_urls_that_are_not_ice_servers(url: str) -> None:
    assert parse_ice_url(url) is None


@given(st.text(max_size=80))
def test_any_text_is_a_url_or_none(text: str) -> None:
    parse_ice_url(text)


def test_a_passage_relay_configuration() -> None:
    body = {
        "iceServers": [
            {
                "routeType": "nearest",
                "urls": [
                    "stun:203.0.113.10:3478",
                    "turn:203.0.113.10:3478?transport=udp",
                    "turn:203.0.113.10:3478?transport=tcp",
                    "turns:203.0.113.10:5349?transport=tcp",
                    "turns:203.0.113.10:443?transport=tcp",
                ],
                "username": "user",
                "credential": "secret",
            },
            {"urls": "turn:203.0.113.10:3478?transport=udp", "username": "u", "credential": "c"},
            {"urls": ["stun:203.0.113.10:3478"]},
            "junk",
        ],
        "expiresOn": "2026-01-01T00:00:00Z",
    }
    servers = parse_relay_configuration(body)
    assert servers.stun == (StunServer("203.0.113.10", 3478),)
    assert [(t.port, t.transport) for t in servers.turn] == [
        (3478, UDP), (3478, TCP), (5349, TLS), (443, TLS),
    ]  # fmt: skip
    assert servers.turn[0] == TurnServer("203.0.113.10", 3478, UDP, "user", "secret")
    assert "secret" not in repr(servers)
    assert str(servers.turn[3]) == "turns:203.0.113.10:443?transport=tcp"
    assert servers.expires_on == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize("body", [None, [], {}, {"iceServers": "x"}])
def test_not_a_relay_configuration(body: object) -> None:
    with pytest.raises(PeerError):
        parse_relay_configuration(body)
