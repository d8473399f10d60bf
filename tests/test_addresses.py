"""passage.addresses: families, IPv6 brackets, ``host:port`` both ways (RFC 3986 §3.2.2)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passage.addresses import (
    AddressFamily,
    Transport,
    bracketed,
    family_of,
    format_address,
    parse_host_port,
)


def test_families_are_stuns_family_bytes() -> None:
    """RFC 8489 §14.1: 0x01 IPv4, 0x02 IPv6."""
    assert (AddressFamily.IPV4, AddressFamily.IPV6) == (1, 2)
    assert family_of("192.0.2.1") is AddressFamily.IPV4
    assert family_of("2001:db8::1") is AddressFamily.IPV6
    assert family_of("::ffff:192.0.2.1") is AddressFamily.IPV6


def test_transports_are_named_as_urls_and_logs_spell_them() -> None:
    assert [str(transport) for transport in Transport] == ["udp", "tcp", "tls"]


@pytest.mark.parametrize(
    ("host", "shown"),
    [("192.0.2.1", "192.0.2.1"), ("relay.example", "relay.example"), ("::1", "[::1]")],
)
def test_only_ipv6_literals_are_bracketed(host: str, shown: str) -> None:
    assert bracketed(host) == shown


def test_format_address_brackets_ipv6_and_drops_flow_and_scope() -> None:
    assert format_address(("192.0.2.1", 3478)) == "192.0.2.1:3478"
    assert format_address(("2001:db8::7", 4000)) == "[2001:db8::7]:4000"
    assert format_address(("2001:db8::7", 4000, 0, 0)) == "[2001:db8::7]:4000"  # getsockname()


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        (" relay.example:443 ", ("relay.example", 443)),
        ("[2001:db8::1]:3478", ("2001:db8::1", 3478)),
        ("localhost:0", ("localhost", 0)),
        ("h:65535", ("h", 65535)),
    ],
)
def test_host_and_port(text: str, address: tuple[str, int]) -> None:
    assert parse_host_port(text) == address


def test_a_default_port_fills_in_for_a_host_alone() -> None:
    assert parse_host_port("relay.example", 3478) == ("relay.example", 3478)
    assert parse_host_port("[::1]", 3478) == ("::1", 3478)
    assert parse_host_port("relay.example:5349", 3478) == ("relay.example", 5349)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no host"),
        (":80", "no host"),
        ("[]:80", "no host"),
        ("relay.example", "no port"),
        ("relay.example:", "the port is not a number"),
        ("relay.example:http", "the port is not a number"),
        ("relay.example:65536", "the port is not a number"),
        ("relay.example:-1", "the port is not a number"),
        ("relay.example:٣٤", "the port is not a number"),  # Arabic-Indic digits
        ("::1:80", "IPv6 literal is written [ADDRESS]:PORT"),
        ("[::1", "IPv6 literal is written [ADDRESS]:PORT"),
        ("[::1]80", "IPv6 literal is written [ADDRESS]:PORT"),
    ],
)
def test_what_is_not_host_and_port_says_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("[", r"\[")):
        parse_host_port(text)


@given(
    st.one_of(st.ip_addresses().map(str), st.from_regex(r"[a-z][a-z0-9.-]{0,30}", fullmatch=True)),
    st.integers(0, 65535),
)
def test_what_format_address_writes_parse_host_port_reads_back(host: str, port: int) -> None:
    host = ipaddress.ip_address(host).compressed if ":" in host else host
    assert parse_host_port(format_address((host, port))) == (host, port)


@given(st.text(max_size=60))
def test_any_text_is_an_address_or_a_value_error(text: str) -> None:
    try:
        host, port = parse_host_port(text)
    except ValueError:
        return
    assert host and 0 <= port <= 65535
