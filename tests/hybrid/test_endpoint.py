"""Relay endpoints, gesture URLs and Azure-style connection strings."""

from __future__ import annotations

import pytest

from passage.hybrid.endpoint import ConnectionStringError, RelayConnectionString, RelayEndpoint


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("sb://ns.example.com/", "wss://ns.example.com:443"),
        ("sb://127.0.0.1:8443", "wss://127.0.0.1:8443"),
        ("https://relay:9443/", "wss://relay:9443"),
        ("http://relay", "ws://relay:80"),
        ("ws://[::1]:8080", "ws://[::1]:8080"),
        ("WSS://Relay:1", "wss://relay:1"),
    ],
)
def test_endpoints_are_websocket_bases(url: str, base: str) -> None:
    assert RelayEndpoint.parse(url).base_url == base


@pytest.mark.parametrize(
    "url", ["ftp://h", "wss://", "wss://h/path", "wss://h?x=1", "wss://u@h", "wss://h:port", "h"]
)
def test_unusable_endpoints_say_why(url: str) -> None:
    with pytest.raises(ConnectionStringError):
        RelayEndpoint.parse(url)


def test_gesture_urls_follow_the_protocol() -> None:
    endpoint = RelayEndpoint.parse("wss://relay:8443")
    assert endpoint.listen_url("a/b", "t1") == (
        "wss://relay:8443/$hc/a/b?sb-hc-action=listen&sb-hc-id=t1"
    )
    assert endpoint.connect_url("a", "t2", "x y", [("app", "1")]) == (
        "wss://relay:8443/$hc/a/x%20y?app=1&sb-hc-action=connect&sb-hc-id=t2"
    )
    assert endpoint.http_url("a", "/p", [("q", "&")]) == "https://relay:8443/a/p?q=%26"
    assert endpoint.http_url("a") == "https://relay:8443/a"
    assert endpoint.resource_uri("/a/b/") == "http://relay:8443/a/b"


def test_an_azure_connection_string_parses_in_any_order_and_case() -> None:
    text = (
        "SharedAccessKey=abc=def==;endpoint=sb://relay:8443/;EntityPath=myhc;"
        "SHAREDACCESSKEYNAME=RootManageSharedAccessKey;"
    )
    parsed = RelayConnectionString.parse(text)
    assert parsed.endpoint == RelayEndpoint("wss", "relay", 8443)
    assert (parsed.key_name, parsed.key, parsed.entity_path) == (
        "RootManageSharedAccessKey",
        "abc=def==",
        "myhc",
    )
    assert "abc=def" not in repr(parsed)
    assert RelayConnectionString.parse(str(parsed)) == parsed


def test_a_connection_string_may_carry_a_ready_token() -> None:
    parsed = RelayConnectionString.parse(
        "Endpoint=ws://h:1/;SharedAccessSignature=SharedAccessSignature sr=x&sig=y&se=1&skn=z"
    )
    assert parsed.signature == "SharedAccessSignature sr=x&sig=y&se=1&skn=z"
    assert str(parsed).startswith("Endpoint=ws://h:1/;SharedAccessSignature=")


@pytest.mark.parametrize(
    "text",
    [
        "SharedAccessKeyName=a;SharedAccessKey=b",
        "Endpoint=sb://h/;SharedAccessKeyName=a",
        "Endpoint=sb://h/;junk;SharedAccessKeyName=a;SharedAccessKey=b",
        "Endpoint=gopher://h/;SharedAccessKeyName=a;SharedAccessKey=b",
    ],
)
def test_incomplete_connection_strings_are_refused(text: str) -> None:
    with pytest.raises(ConnectionStringError):
        RelayConnectionString.parse(text)
