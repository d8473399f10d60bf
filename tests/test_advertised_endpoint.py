"""passage.endpoint: the host this node advertises, and every URL built on it."""

from __future__ import annotations

from passage.endpoint import AdvertisedEndpoint, RelayAddresses, advertised_host

RELAYS = RelayAddresses(bind={1: "10.0.0.5"}, advertised={1: "203.0.113.5"}, port_range=(1, 2))


def test_the_advertised_host_is_public_host_then_public_ip_then_the_relay_ip() -> None:
    assert advertised_host("relay.example", "198.51.100.1", RELAYS) == "relay.example"
    assert advertised_host(None, "2001:db8::5", RELAYS) == "2001:db8::5"
    assert advertised_host(None, None, RELAYS) == "203.0.113.5"
    assert advertised_host(None, None, RelayAddresses({}, {}, (1, 2))) == "127.0.0.1"


def test_urls_of_an_ipv6_host_bracket_it() -> None:
    endpoint = AdvertisedEndpoint("2001:db8::5", 3478, (5349,), api_port=8443, http_port=8080)
    assert endpoint.api_url() == "https://[2001:db8::5]:8443/"
    assert endpoint.api_url(plain_http=True) == "http://[2001:db8::5]:8080/"
    assert endpoint.websocket_url() == "wss://[2001:db8::5]:8443"
    assert endpoint.token_url() == "http://[2001:db8::5]:8443"
    assert [str(uri) for uri in endpoint.ice_uris()] == [
        "stun:[2001:db8::5]:3478",
        "turn:[2001:db8::5]:3478?transport=udp",
        "turn:[2001:db8::5]:3478?transport=tcp",
        "turns:[2001:db8::5]:5349?transport=tcp",
    ]


def test_a_port_that_is_off_has_no_url() -> None:
    http_only = AdvertisedEndpoint("relay.example", 3478, http_port=8080)
    assert http_only.api_url() is None
    assert http_only.websocket_url() == "ws://relay.example:8080"
    assert http_only.token_url() == "http://relay.example"
    neither = AdvertisedEndpoint("relay.example", 3478)
    assert neither.websocket_url() is None and neither.api_url(plain_http=True) is None
