"""Fuzz: what a listener or the relay can put on a control channel or rendezvous socket.

Every text message is read by :func:`parse_listener_message` (the relay
reading a listener) or :func:`parse_service_message` (a listener reading the
relay); whatever comes, the answer is a head of the documented shape, None
(a command to ignore), or :class:`ControlMessageError`. The framing reader
takes any sequence of text and binary messages and fragments and reports
only the documented events; the rendezvous table, driven by any sequence of
offers and takes, hands each value out once, never after it expired, and
never holds more than its bound.
"""

from __future__ import annotations

import urllib.parse

from hypothesis import example, given, settings
from hypothesis import strategies as st

from fuzzing import FUZZ, JSON_VALUES, TEXT_OR_JSON, as_json, objects_with
from passage.hybrid.control import (
    Accept,
    ControlMessageError,
    RenewToken,
    RequestHead,
    ResponseHead,
    forwarded_headers,
    parse_listener_message,
    parse_service_message,
    rendezvous_address,
    response_message,
    response_request_id,
    strip_relay_query,
)
from passage.hybrid.framing import (
    Command,
    MissingBody,
    Outgoing,
    StrayBody,
    Unreadable,
    listener_reader,
    relay_reader,
)
from passage.hybrid.rendezvous import RendezvousTable

RESPONSE_FIELDS = ["requestId", "statusCode", "statusDescription", "responseHeaders", "body"]
ACCEPT_FIELDS = ["address", "id", "connectHeaders", "remoteEndpoint"]
REQUEST_FIELDS = ["address", "id", "method", "requestTarget", "requestHeaders",
                  "remoteEndpoint", "body"]  # fmt: skip
FIELD_VALUES = (
    JSON_VALUES
    | st.integers(100, 599)
    | st.sampled_from(["200", "502", "GET", "/x", "ws://h/$hc/x?sb-hc-id=1"])
    | st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)
    | st.fixed_dictionaries({"address": st.text(max_size=8), "port": JSON_VALUES})
)


def commands(name: str, fields: list[str]) -> st.SearchStrategy[str]:
    """``{"name": {...}}`` with the command's own field names and values of any type."""
    inner = objects_with(fields, FIELD_VALUES) | JSON_VALUES
    return st.builds(lambda body: as_json({name: body}), inner)


LISTENER_TEXT = (
    TEXT_OR_JSON | commands("response", RESPONSE_FIELDS) | commands("renewToken", ["token"])
)
SERVICE_TEXT = (
    TEXT_OR_JSON | commands("accept", ACCEPT_FIELDS) | commands("request", REQUEST_FIELDS)
)


def check_response(head: ResponseHead) -> None:
    assert isinstance(head.request_id, str)
    assert 100 <= head.status <= 599 and head.status not in (502, 504)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in head.headers.items())
    assert isinstance(head.has_body, bool)


@FUZZ
@given(LISTENER_TEXT)
def test_a_listener_message_is_a_head_nothing_or_a_control_message_error(text: str) -> None:
    try:
        head = parse_listener_message(text)
    except ControlMessageError:
        return
    if isinstance(head, ResponseHead):
        check_response(head)
    else:
        assert head is None or isinstance(head, RenewToken) and isinstance(head.token, str)


@FUZZ
@given(LISTENER_TEXT)
def test_the_request_id_of_any_text_is_a_string_or_none(text: str) -> None:
    request_id = response_request_id(text)
    assert request_id is None or isinstance(request_id, str)


@FUZZ
@given(SERVICE_TEXT)
def test_a_service_message_is_a_head_nothing_or_a_control_message_error(text: str) -> None:
    try:
        head = parse_service_message(text)
    except ControlMessageError:
        return
    if isinstance(head, Accept):
        assert head.address and head.tracking_id
        assert all(isinstance(v, str) for v in head.connect_headers.values())
    elif isinstance(head, RequestHead):
        assert head.address and head.request_id and isinstance(head.target, str)
        assert head.method is None or isinstance(head.method, str)
    else:
        assert head is None
    remote = getattr(head, "remote", None)
    assert remote is None or (isinstance(remote[0], str) and isinstance(remote[1], int))


@FUZZ
@given(
    st.text(min_size=1, max_size=30),
    st.integers(100, 599).filter(lambda s: s not in (502, 504)),
    st.text(max_size=30),
    st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4),
    st.booleans(),
)
def test_a_response_written_is_read_back(
    request_id: str, status: int, description: str, headers: dict[str, str], has_body: bool
) -> None:
    text = response_message(request_id, status, description, headers, has_body)
    assert parse_listener_message(text) == ResponseHead(
        request_id, status, description, headers, has_body
    )


@FUZZ
@given(
    st.sampled_from(["ws://h:1", "wss://relay.example.com:8443", "wss://[::1]:443/"]),
    st.text(max_size=30),
    st.lists(st.tuples(st.text(max_size=10), st.text(max_size=10)), max_size=5),
)
@example("ws://h:1", "a?sb-hc-id=x#", [("sb-hc-id", "real")])  # found: the path added to the query
def test_a_rendezvous_address_keeps_its_query_whatever_the_names(
    base: str, path: str, query: list[tuple[str, str]]
) -> None:
    address = rendezvous_address(base, path, query)
    parts = urllib.parse.urlsplit(address)
    assert parts.scheme in ("ws", "wss")
    assert urllib.parse.unquote(parts.path) == "/$hc/" + path.lstrip("/")
    assert urllib.parse.parse_qsl(parts.query, keep_blank_values=True) == [
        (urllib.parse.unquote_plus(urllib.parse.quote_plus(n)), v) for n, v in query
    ]


@FUZZ
@given(
    st.lists(st.tuples(st.text(max_size=12), st.text(max_size=12)), max_size=8),
    st.booleans(),
)
def test_relay_query_and_headers_are_stripped_whatever_they_hold(
    pairs: list[tuple[str, str]], strip_authorization: bool
) -> None:
    kept = strip_relay_query(pairs)
    assert not any(name.lower().startswith("sb-hc-") for name, _ in kept)
    forwarded = forwarded_headers(pairs, strip_authorization=strip_authorization)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in forwarded.items())


# --- framing ------------------------------------------------------------------------

MESSAGES = st.lists(
    st.one_of(
        st.tuples(st.just("text"), LISTENER_TEXT | SERVICE_TEXT, st.booleans()),
        st.tuples(st.just("binary"), st.binary(max_size=64), st.booleans()),
        st.tuples(st.just("close"), st.just(""), st.just(True)),
    ),
    max_size=12,
)


@settings(FUZZ, max_examples=100)
@given(MESSAGES, st.sampled_from([None, 0, 16, 200]), st.booleans())
def test_any_run_of_messages_gives_documented_events_or_errors(
    messages: list[tuple[str, str | bytes, bool]], max_message: int | None, relay_side: bool
) -> None:
    """Then a well-formed command still reads back: no input leaves the reader stuck."""
    reader = relay_reader(max_message) if relay_side else listener_reader(max_message)
    for kind, data, final in messages:
        try:
            if kind == "text":
                assert isinstance(data, str)
                events = reader.receive_text(data, final=final)
            elif kind == "binary":
                assert isinstance(data, bytes)
                events = reader.receive_binary(data, final=final)
            else:
                events = reader.close()
        except ControlMessageError:
            continue
        for event in events:
            assert isinstance(event, Command | MissingBody | StrayBody | Unreadable)
            if isinstance(event, Command) and event.body:
                assert isinstance(event.head, ResponseHead | RequestHead)
    reader.close()
    if relay_side and (max_message is None or max_message >= 200):
        probe = Outgoing.response("after", 200, "OK", {}, b"ok")
        events = [e for m in probe.messages for e in _feed(reader, m)]
        assert [(e.head.request_id, e.body) for e in events if isinstance(e, Command)] == [
            ("after", b"ok")
        ]


def _feed(reader: object, message: str | bytes) -> list[object]:
    if isinstance(message, str):
        return list(reader.receive_text(message))  # type: ignore[attr-defined]
    return list(reader.receive_binary(message))  # type: ignore[attr-defined]


# --- the rendezvous table ------------------------------------------------------------

OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["add", "take", "discard", "expire"]),
        st.sampled_from(["a", "b", "c", "d", "e"]),
        st.floats(min_value=0, max_value=5),
    ),
    max_size=40,
)


@FUZZ
@given(OPERATIONS, st.integers(1, 4))
def test_a_rendezvous_is_handed_out_once_and_never_after_it_expires(
    operations: list[tuple[str, str, float]], max_entries: int
) -> None:
    table: RendezvousTable[int] = RendezvousTable(lifetime=10.0, max_entries=max_entries)
    offered: dict[str, tuple[int, float]] = {}
    now = 0.0
    for serial, (operation, rendezvous_id, step) in enumerate(operations):
        now += step
        if operation == "add":
            if table.add(rendezvous_id, serial, now):
                offered[rendezvous_id] = (serial, now + 10.0)
        elif operation == "take":
            value = table.take(rendezvous_id, now)
            expected = offered.pop(rendezvous_id, None)
            live = expected is not None and expected[1] > now
            assert value == (expected[0] if live else None)  # type: ignore[index]
        elif operation == "discard":
            table.discard(rendezvous_id)
            offered.pop(rendezvous_id, None)
        else:
            for value in table.expire(now):
                assert value not in [v for v, expires in offered.values() if expires > now]
            offered = {k: v for k, v in offered.items() if v[1] > now}
        assert len(table) <= max_entries
