"""The control messages, both directions (reference §2.3, checklist §4.5)."""

from __future__ import annotations

import json

import pytest

from passage.hybrid.control import (
    Accept,
    ControlMessageError,
    RenewToken,
    RequestHead,
    ResponseHead,
    accept_message,
    parse_listener_message,
    parse_service_message,
    renew_token_message,
    request_message,
    response_message,
)

# The accept message reference §4.3 shows hyco-ws accepting.
HYCO_ACCEPT = (
    '{"accept":{"address":"ws://127.0.0.1:9090/$hc/myhc/suffix/path?app=1&sb-hc-action=accept'
    '&sb-hc-id=my-corr-id","id":"my-corr-id","connectHeaders":{"Connection":"Upgrade",'
    '"Upgrade":"websocket","Host":"127.0.0.1:9090","Sec-WebSocket-Version":"13",'
    '"Sec-WebSocket-Key":"MTMtMTc5NTMxMjgyNTMwNg==","Sec-WebSocket-Protocol":"chat.v1,chat.v2"},'
    '"remoteEndpoint":{"address":"127.0.0.1","port":39066}}}'
)


def test_an_accept_as_the_reference_shows_it_is_read_whole() -> None:
    accept = parse_service_message(HYCO_ACCEPT)
    assert isinstance(accept, Accept)
    assert accept.address.endswith("sb-hc-action=accept&sb-hc-id=my-corr-id")
    assert accept.tracking_id == "my-corr-id"
    assert accept.connect_headers["Sec-WebSocket-Protocol"] == "chat.v1,chat.v2"
    assert accept.remote == ("127.0.0.1", 39066)


def test_what_the_relay_builds_the_listener_reads_back() -> None:
    accept = parse_service_message(
        accept_message("wss://h/$hc/a?sb-hc-action=accept", "id1", {"X": "1"}, ("10.0.0.1", 5))
    )
    assert accept == Accept("wss://h/$hc/a?sb-hc-action=accept", "id1", {"X": "1"}, ("10.0.0.1", 5))
    full = parse_service_message(
        request_message(
            address="wss://h/r",
            request_id="r1",
            target="/a/b?x=1",
            method="POST",
            headers={"Content-Type": "text/plain"},
            remote=None,
            has_body=True,
        )
    )
    assert full == RequestHead(
        "wss://h/r", "r1", "POST", "/a/b?x=1", {"Content-Type": "text/plain"}, None, True
    )


def test_a_rendezvous_only_request_has_no_method_and_no_body() -> None:
    text = request_message(address="wss://h/r", request_id="r2")
    assert set(json.loads(text)["request"]) == {"address", "id"}
    assert parse_service_message(text) == RequestHead("wss://h/r", "r2")


def test_a_listeners_response_and_renewal_are_what_the_relay_reads() -> None:
    text = response_message("r1", 201, "Created", {"content-type": "text/plain"}, True)
    assert parse_listener_message(text) == ResponseHead(
        "r1", 201, "Created", {"content-type": "text/plain"}, True
    )
    assert parse_listener_message(renew_token_message("SharedAccessSignature x")) == RenewToken(
        "SharedAccessSignature x"
    )


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1]",
        '{"accept": 5}',
        '{"accept": {"id": "x"}}',
        '{"accept": {"address": "a", "id": "x", "connectHeaders": []}}',
        '{"request": {"address": "a"}}',
        '{"request": {"address": "", "id": "x"}}',
    ],
)
def test_malformed_service_messages_are_refused_by_name(text: str) -> None:
    with pytest.raises(ControlMessageError):
        parse_service_message(text)


def test_unknown_commands_are_ignored_and_odd_endpoints_dropped() -> None:
    assert parse_service_message('{"ping": {}}') is None
    odd = '{"accept":{"address":"a","id":"b","remoteEndpoint":{"address":"x","port":"1"}}}'
    parsed = parse_service_message(odd)
    assert isinstance(parsed, Accept) and parsed.remote is None
