"""passage.ice_uris: ``stun:``/``stuns:`` (RFC 7064) and ``turn:``/``turns:`` (RFC 7065) URIs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from passage.addresses import Transport
from passage.ice_uris import IceScheme, IceUri, parse_ice_uri, relay_uris

UDP, TCP, TLS = Transport.UDP, Transport.TCP, Transport.TLS
STUN, STUNS, TURN, TURNS = IceScheme.STUN, IceScheme.STUNS, IceScheme.TURN, IceScheme.TURNS

HOSTS = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,6}){0,2}", fullmatch=True)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("stun:203.0.113.10:3478", IceUri(STUN, "203.0.113.10", 3478)),
        ("stun:relay.example.com", IceUri(STUN, "relay.example.com", 3478)),  # RFC 7064 §3.2
        ("stuns:relay.example", IceUri(STUNS, "relay.example", 5349)),
        ("turn:relay.example:3478?transport=udp", IceUri(TURN, "relay.example", 3478, UDP)),
        ("turn:relay.example:3478?transport=tcp", IceUri(TURN, "relay.example", 3478, TCP)),
        ("turns:relay.example:443?transport=tcp", IceUri(TURNS, "relay.example", 443, TLS)),
        ("turn:relay.example", IceUri(TURN, "relay.example", 3478, UDP)),  # RFC 7065 §3
        ("turns:relay.example", IceUri(TURNS, "relay.example", 5349, TLS)),
        ("TURN:[2001:db8::1]:3479?transport=TCP", IceUri(TURN, "2001:db8::1", 3479, TCP)),
        ("TURN:h:1?transport=UDP", IceUri(TURN, "h", 1, UDP)),
        (" turn:203.0.113.10 ", IceUri(TURN, "203.0.113.10", 3478, UDP)),
    ],
)
def test_ice_urls_parse_with_their_defaults(url: str, expected: IceUri) -> None:
    assert parse_ice_uri(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "http://x",
        "https://relay.example/",
        "stun:",
        "turn:",
        "turn:h:",
        "turn:h:0",
        "turn:h:65536",
        "turn:relay.example:70000",
        "turn:h:port",
        "turn:h?transport=sctp",
        "turns:h?transport=udp",  # TURN over DTLS (RFC 7350): not served, not spoken
        "stun:h:3478?transport=udp",  # RFC 7064 has no query
        "turn:h:3478?transport=udp&x=1",
        "turn:[::1",
        "turn:[not-ipv6]:3478",
        "turn:2001:db8::1:3478",  # an IPv6 literal needs its brackets
        "turn:user@h:3478",
        "turn:h/path",
    ],
)
def test_urls_that_are_not_ice_servers(url: str) -> None:
    assert parse_ice_uri(url) is None


@pytest.mark.parametrize(
    ("uri", "text"),
    [
        (IceUri.stun("203.0.113.10"), "stun:203.0.113.10:3478"),
        (IceUri.turn("relay.example", 3478, UDP), "turn:relay.example:3478?transport=udp"),
        (IceUri.turn("relay.example", 3478, TCP), "turn:relay.example:3478?transport=tcp"),
        (IceUri.turn("relay.example", 443, TLS), "turns:relay.example:443?transport=tcp"),
        (IceUri.turn("2001:db8::1", 5349, TLS), "turns:[2001:db8::1]:5349?transport=tcp"),
    ],
)
def test_uris_are_written_as_the_rfcs_spell_them_and_read_back(uri: IceUri, text: str) -> None:
    assert str(uri) == text
    assert parse_ice_uri(text) == uri


def test_relay_uris_are_stun_then_udp_tcp_and_each_tls_port() -> None:
    assert [str(uri) for uri in relay_uris("::1", 3478, (5349, 443))] == [
        "stun:[::1]:3478",
        "turn:[::1]:3478?transport=udp",
        "turn:[::1]:3478?transport=tcp",
        "turns:[::1]:5349?transport=tcp",
        "turns:[::1]:443?transport=tcp",
    ]
    assert len(relay_uris("relay.example", 3478, ())) == 3


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_a_url_or_none(text: str) -> None:
    found = parse_ice_uri(text)
    assert found is None or 0 < found.port < 65536


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["stun", "turn", "turns"]),
    HOSTS,
    st.integers(1, 65535),
    st.sampled_from([None, "udp", "tcp"]),
)
def test_well_formed_urls_parse_to_their_parts(
    scheme: str, host: str, port: int, transport: str | None
) -> None:
    url = f"{scheme}:{host}:{port}" + (f"?transport={transport}" if transport else "")
    found = parse_ice_uri(url)
    if (scheme == "turns" and transport == "udp") or (scheme == "stun" and transport):
        assert found is None  # TURN over DTLS; a query on a STUN URI
        return
    assert found is not None and (found.scheme, found.host, found.port) == (scheme, host, port)
    if scheme == "stun":
        assert found.transport is None
    else:
        assert found.transport is (TLS if scheme == "turns" else Transport(transport or "udp"))
    assert parse_ice_uri(str(found)) == found
