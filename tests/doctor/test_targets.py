"""What ``passage doctor`` probes: the transports ICE server URLs name, and the defaults."""

from __future__ import annotations

import pytest

from passage.addresses import Transport
from passage.doctor.targets import Target, default_targets, targets_from_urls
from passage.identity.ice_servers import RelayTopology

UDP, TCP, TLS = Transport.UDP, Transport.TCP, Transport.TLS


@pytest.mark.parametrize(
    "url",
    [
        "stuns:relay.example:5349",  # STUN over TLS: not probed
        "turns:relay.example:5349?transport=udp",  # TURN over DTLS
        "turn:relay.example:0",
        "turn:relay.example:3478?transport=sctp",
        "https://relay.example/",
        "",
    ],
)
def test_other_urls_are_not_targets(url: str) -> None:
    assert targets_from_urls([url]) == (None, ())


def passage_urls(*hosts: str, tls: tuple[int, ...] = (443,)) -> list[str]:
    """The URLs Passage's own relay configuration lists (identity/ice_servers.py)."""
    topology = RelayTopology("local", hosts, (), (), 3478, 5349, tls)
    return topology.urls(hosts)


def test_a_passage_relay_configuration_gives_udp_tcp_then_tls_in_order() -> None:
    stun, targets = targets_from_urls(passage_urls("203.0.113.10"))
    assert stun == Target(UDP, "203.0.113.10", 3478)
    assert [t.label for t in targets] == ["UDP 3478", "TCP 3478", "TLS 5349", "TLS 443"]
    assert {t.host for t in targets} == {"203.0.113.10"}


def test_only_the_first_relay_is_diagnosed_unless_a_host_is_named() -> None:
    urls = passage_urls("relay-a.example", "relay-b.example", tls=())
    stun, targets = targets_from_urls(urls)
    assert stun is not None and stun.host == "relay-a.example"
    assert [t.host for t in targets] == ["relay-a.example"] * 3
    _, named = targets_from_urls(urls, "198.51.100.9")
    assert {t.host for t in named} == {"198.51.100.9"}
    assert [t.label for t in named] == ["UDP 3478", "TCP 3478", "TLS 5349"]


def test_without_a_stun_url_the_udp_turn_url_serves_for_discovery() -> None:
    stun, targets = targets_from_urls(["turns:r.example:443", "turn:r.example:3480"])
    assert stun == Target(UDP, "r.example", 3480)
    assert [t.label for t in targets] == ["UDP 3480", "TLS 443"]
    assert targets_from_urls(["https://r.example/"]) == (None, ())


def test_the_default_targets_are_the_usual_four() -> None:
    stun, targets = default_targets("relay.example")
    assert stun == Target(UDP, "relay.example", 3478)
    assert [t.label for t in targets] == ["UDP 3478", "TCP 3478", "TLS 5349", "TLS 443"]
    _, custom = default_targets("relay.example", 3480, (8443,))
    assert [t.label for t in custom] == ["UDP 3480", "TCP 3480", "TLS 8443"]
