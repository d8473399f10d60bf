"""ICE servers of a relay configuration: route types, regions, URLs (reference §5)."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from passage.identity.errors import ValidationError
from passage.identity.ice_servers import (
    IceServer,
    RelayTopology,
    RouteType,
    ice_servers,
    parse_route_type,
)

TOPOLOGY = RelayTopology(
    region="westeurope",
    own_hosts=("relay.example", "2001:db8::1"),
    other_relays=(
        ("eastus", "us1.example"),
        ("eastus", "us2.example"),
        ("westeurope", "eu2.example"),
        ("westeurope", "relay.example"),  # listed twice: once is enough
    ),
    client_regions=(
        (ipaddress.ip_network("10.0.0.0/8"), "eastus"),
        (ipaddress.ip_network("10.1.0.0/16"), "westeurope"),
        (ipaddress.ip_network("10.2.0.0/16"), "asia"),
        (ipaddress.ip_network("2001:db8:abcd::/48"), "eastus"),
    ),
    turn_port=3478,
    turns_port=5349,
)


def urls_of(host: str) -> list[str]:
    return [
        f"stun:{host}:3478",
        f"turn:{host}:3478?transport=udp",
        f"turn:{host}:3478?transport=tcp",
        f"turns:{host}:5349?transport=tcp",
    ]


@pytest.mark.parametrize(
    ("value", "route"),
    [
        ("any", RouteType.ANY),
        ("ANY", RouteType.ANY),
        ("nearest", RouteType.NEAREST),
        ("Nearest", RouteType.NEAREST),
        (None, None),
    ],
)
def test_parse_route_type_is_case_insensitive(value: object, route: RouteType | None) -> None:
    assert parse_route_type(value) is route


@pytest.mark.parametrize("value", ["", "fastest", " any", "any ", 0, ["any"], True])
def test_parse_route_type_refuses_others(value: object) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_route_type(value)
    assert (refused.value.status, refused.value.code, refused.value.target) == (
        400,
        "ValidationError",
        "RouteType",
    )
    assert refused.value.message == (
        f"RouteType value {value!r} is invalid. Valid values: any, nearest."
    )


@pytest.mark.parametrize(
    ("client_ip", "region"),
    [
        ("10.9.9.9", "eastus"),  # only the /8
        ("10.1.2.3", "westeurope"),  # the /16 beats the /8 that also holds it
        ("10.2.0.1", "asia"),
        ("2001:db8:abcd::5", "eastus"),
        ("2001:db8:abce::5", "westeurope"),  # outside every range: ours
        ("192.0.2.1", "westeurope"),
        (None, "westeurope"),
        ("", "westeurope"),
        ("not an address", "westeurope"),
    ],
)
def test_region_of_by_longest_prefix(client_ip: str | None, region: str) -> None:
    assert TOPOLOGY.region_of(client_ip) == region


def test_region_of_does_not_depend_on_range_order() -> None:
    reversed_ranges = dataclasses.replace(
        TOPOLOGY, client_regions=tuple(reversed(TOPOLOGY.client_regions))
    )
    assert reversed_ranges.region_of("10.1.2.3") == "westeurope"
    assert reversed_ranges.region_of("10.9.9.9") == "eastus"


def test_hosts_of_another_region() -> None:
    assert TOPOLOGY.hosts("eastus") == ("us1.example", "us2.example")


def test_hosts_of_our_region_start_with_our_own() -> None:
    assert TOPOLOGY.hosts("westeurope") == ("relay.example", "2001:db8::1", "eu2.example")


def test_hosts_of_a_region_without_relays_are_ours() -> None:
    assert TOPOLOGY.hosts("asia") == ("relay.example", "2001:db8::1")


def test_hosts_for_any_are_every_relay_once() -> None:
    assert TOPOLOGY.hosts(None) == (
        "relay.example",
        "2001:db8::1",
        "us1.example",
        "us2.example",
        "eu2.example",
    )


def test_urls_per_host_stun_turn_udp_tcp_and_turns() -> None:
    assert TOPOLOGY.urls(["relay.example"]) == urls_of("relay.example")


def test_urls_bracket_ipv6_hosts() -> None:
    assert TOPOLOGY.urls(["2001:db8::1", "192.0.2.7"]) == [
        *urls_of("[2001:db8::1]"),
        *urls_of("192.0.2.7"),
    ]


def test_urls_without_turns_when_tls_is_off() -> None:
    plain = dataclasses.replace(TOPOLOGY, turns_port=0)
    assert plain.urls(["relay.example"]) == [
        "stun:relay.example:3478",
        "turn:relay.example:3478?transport=udp",
        "turn:relay.example:3478?transport=tcp",
    ]


def test_extra_tls_ports_get_a_turns_url_each_after_the_main_one() -> None:
    extra = dataclasses.replace(TOPOLOGY, turns_extra_ports=(443,))
    assert extra.urls(["relay.example"]) == [
        *urls_of("relay.example"),
        "turns:relay.example:443?transport=tcp",
    ]
    only_extra = dataclasses.replace(TOPOLOGY, turns_port=0, turns_extra_ports=(443,))
    assert only_extra.urls(["relay.example"])[3:] == ["turns:relay.example:443?transport=tcp"]


def test_ice_servers_lists_any_then_nearest_when_no_route_type_is_asked() -> None:
    """ACS answers one entry per route type when ``routeType`` is absent (reference §5)."""
    servers = ice_servers(TOPOLOGY, None, "10.9.9.9")
    assert servers == [
        IceServer(
            RouteType.ANY,
            (
                *urls_of("relay.example"),
                *urls_of("[2001:db8::1]"),
                *urls_of("us1.example"),
                *urls_of("us2.example"),
                *urls_of("eu2.example"),
            ),
        ),
        IceServer(RouteType.NEAREST, (*urls_of("us1.example"), *urls_of("us2.example"))),
    ]


@pytest.mark.parametrize("route", [RouteType.ANY, RouteType.NEAREST])
def test_ice_servers_lists_only_the_route_type_asked(route: RouteType) -> None:
    servers = ice_servers(TOPOLOGY, route, "10.9.9.9")
    assert [server.route_type for server in servers] == [route]
    assert servers == [s for s in ice_servers(TOPOLOGY, None, "10.9.9.9") if s.route_type is route]


def test_nearest_for_an_unknown_client_is_our_region() -> None:
    (nearest,) = ice_servers(TOPOLOGY, RouteType.NEAREST, None)
    assert nearest.urls == (
        *urls_of("relay.example"),
        *urls_of("[2001:db8::1]"),
        *urls_of("eu2.example"),
    )


def test_an_ipv4_client_on_a_dual_stack_socket_gets_its_ipv4_region() -> None:
    topology = RelayTopology(
        region="home", own_hosts=("relay.test",), other_relays=(),
        client_regions=((ipaddress.ip_network("10.0.0.0/8"), "eu"),),
        turn_port=3478, turns_port=0,
    )  # fmt: skip
    assert topology.region_of("::ffff:10.1.2.3") == "eu"
    assert topology.region_of("10.1.2.3") == "eu"
