"""Reading a relay configuration: its ICE servers and credentials (URIs: tests/test_ice_uris.py)."""

from __future__ import annotations

import pytest

from passage.addresses import Transport
from passage.peer.errors import PeerError
from passage.peer.ice_servers import (
    StunServer,
    TurnServer,
    parse_relay_configuration,
)

UDP, TCP, TLS = Transport.UDP, Transport.TCP, Transport.TLS


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
