"""The control channel's framing: a JSON head, then exactly one binary message (reference §2.3).

Commands written by :class:`Outgoing` are read back by the other side's
reader fed whole, fragment by fragment (down to a byte or a character at a
time), with a body missing, and with a binary message nobody announced.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passage.hybrid.control import (
    Accept,
    ControlMessageError,
    RenewToken,
    RequestHead,
    ResponseHead,
    accept_message,
    renew_token_message,
    request_message,
)
from passage.hybrid.framing import (
    Command,
    CommandReader,
    MissingBody,
    Outgoing,
    StrayBody,
    Unreadable,
    listener_reader,
    relay_reader,
)

ADDRESS = "wss://relay.example:8443/$hc/orders?sb-hc-action=request&sb-hc-id=r1"


def request(body: bytes = b"", request_id: str = "r1") -> Outgoing:
    return Outgoing.request(
        address=ADDRESS,
        request_id=request_id,
        target="/orders/new?x=1",
        method="POST",
        headers={"Content-Type": "text/plain"},
        remote=("203.0.113.7", 40000),
        body=body,
    )


def response(body: bytes = b"", request_id: str = "r1", status: int = 200) -> Outgoing:
    return Outgoing.response(request_id, status, "OK", {"content-type": "text/plain"}, body)


def feed(reader: CommandReader[object], messages: tuple[str | bytes, ...]) -> list[object]:
    events: list[object] = []
    for message in messages:
        if isinstance(message, str):
            events += reader.receive_text(message)
        else:
            events += reader.receive_binary(message)
    return events


# --- writing ---------------------------------------------------------------------------


def test_a_command_announces_a_body_exactly_when_it_carries_one() -> None:
    with_body, without = request(b"hello"), request()
    assert json.loads(with_body.head)["request"]["body"] is True
    assert with_body.messages == (with_body.head, b"hello")
    assert json.loads(without.head)["request"]["body"] is False
    assert without.messages == (without.head,)
    assert json.loads(response(b"x").head)["response"]["body"] is True
    assert response().messages == (response().head,)


def test_size_counts_what_the_inline_limit_counts() -> None:
    """Reference §4.5 item 6: the JSON and its body together against 64 kB."""
    command = request(b"\x00" * 1000)
    assert command.size == len(command.head) + 1000


# --- reading, whole --------------------------------------------------------------------


def test_a_request_and_its_body_fed_whole() -> None:
    events = feed(listener_reader(None), request(b"hello").messages)
    [command] = events
    assert isinstance(command, Command) and command.body == b"hello"
    assert isinstance(command.head, RequestHead)
    assert (command.head.method, command.head.target, command.head.request_id) == (
        "POST",
        "/orders/new?x=1",
        "r1",
    )


def test_responses_renewals_and_accepts_fed_whole() -> None:
    relay = relay_reader(1 << 20)
    messages = (
        *response(b"body one", "a").messages,
        renew_token_message("SharedAccessSignature sr=x"),
        *response(b"", "b", 204).messages,
    )
    events = feed(relay, messages)
    assert [type(e) for e in events] == [Command, Command, Command]
    first, renewal, second = events
    assert isinstance(first, Command) and first.body == b"body one"
    assert isinstance(renewal, Command) and isinstance(renewal.head, RenewToken)
    assert isinstance(second, Command) and isinstance(second.head, ResponseHead)
    assert (second.head.status, second.body) == (204, b"")
    [accept] = listener_reader(None).receive_text(
        accept_message(ADDRESS, "t1", {"Sec-WebSocket-Key": "k"}, None)
    )
    assert isinstance(accept, Command) and isinstance(accept.head, Accept)


def test_the_rendezvous_only_request_waits_for_no_body() -> None:
    """The short form carries neither method nor body (reference §4.5 item 6)."""
    reader = listener_reader(None)
    [short] = reader.receive_text(request_message(address=ADDRESS, request_id="r9"))
    assert isinstance(short, Command) and isinstance(short.head, RequestHead)
    assert short.head.method is None and reader.awaiting is None


# --- reading, in fragments -------------------------------------------------------------


def test_fed_byte_by_byte_it_reads_the_same_command() -> None:
    """A message may come in frames, FIN on the last (reference §2.3): nothing until then."""
    command = request(b"0123456789")
    whole = feed(listener_reader(None), command.messages)
    reader = listener_reader(None)
    events: list[object] = []
    for index, char in enumerate(command.head):
        events += reader.receive_text(char, final=index == len(command.head) - 1)
    assert events == [] and reader.awaiting is not None
    for index in range(len(command.body)):
        final = index == len(command.body) - 1
        events += reader.receive_binary(command.body[index : index + 1], final=final)
    assert events == whole


def test_a_message_that_grows_past_the_bound_is_dropped_and_the_reader_goes_on() -> None:
    reader = relay_reader(max_message=16)
    reader.receive_binary(b"x" * 10, final=False)
    with pytest.raises(ControlMessageError, match="longer than 16"):
        reader.receive_binary(b"x" * 10, final=False)
    [stray] = reader.receive_binary(b"ok")  # a fresh message, not the rest of the dropped one
    assert stray == StrayBody(2)


def test_a_text_fragment_inside_a_binary_message_is_refused() -> None:
    reader = relay_reader(None)
    reader.receive_binary(b"part", final=False)
    with pytest.raises(ControlMessageError, match="before the last one ended"):
        reader.receive_text("{}")


# --- missing and extra frames ----------------------------------------------------------


def test_a_missing_body_is_reported_and_the_next_command_still_read() -> None:
    """hyco-https would take the next message as the body; the reader says it is missing."""
    reader = relay_reader(None)
    announced = response(b"never sent", "a")
    events = feed(reader, (announced.head, *response(b"", "b").messages))
    assert len(events) == 2
    missing, second = events
    assert isinstance(missing, MissingBody) and missing.head.request_id == "a"
    assert isinstance(second, Command) and second.head.request_id == "b"


def test_a_body_still_awaited_when_the_channel_ends_is_missing() -> None:
    reader = listener_reader(None)
    assert reader.receive_text(request(b"body").head) == []
    [missing] = reader.close()
    assert isinstance(missing, MissingBody) and reader.awaiting is None
    assert reader.close() == []


def test_an_extra_binary_message_is_stray_not_a_body() -> None:
    """hyco-https sends an empty binary message after a ``body: false`` response."""
    reader = relay_reader(None)
    events = feed(reader, (response().head, b"", b"late"))
    assert len(events) == 3
    assert isinstance(events[0], Command) and events[0].body == b""
    assert events[1:] == [StrayBody(0), StrayBody(4)]


def test_unreadable_text_is_reported_and_unknown_commands_ignored() -> None:
    reader = relay_reader(None)
    [unreadable] = reader.receive_text('{"response": {"statusCode": 200}}')
    assert isinstance(unreadable, Unreadable) and "requestId" in str(unreadable.error)
    [not_json] = reader.receive_text("{not json")
    assert isinstance(not_json, Unreadable)
    assert reader.receive_text('{"ping": {}}') == []  # checklist §4.5: ignore unknown commands


@given(
    st.lists(
        st.tuples(st.integers(100, 501).filter(lambda s: s not in (502, 504)), st.binary()),
        max_size=8,
    )
)
def test_any_run_of_responses_reads_back_as_written(responses: list[tuple[int, bytes]]) -> None:
    written = [response(body, f"r{i}", status) for i, (status, body) in enumerate(responses)]
    events = feed(relay_reader(None), tuple(m for command in written for m in command.messages))
    read = [(e.head.request_id, e.head.status, e.body) for e in events if isinstance(e, Command)]
    assert read == [(f"r{i}", status, body) for i, (status, body) in enumerate(responses)]
    assert len(events) == len(written)
