"""The signaling wire: what a client may send, and what it is sent."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passage.identity.ids import IdentityId
from passage.signal.codes import CloseCode, SignalError
from passage.signal.messages import (
    Member,
    MemberId,
    RoomName,
    Send,
    parse_client_message,
    parse_room_name,
    relayed_message,
    welcome_message,
)

LIMIT = 1024
ALICE = Member(MemberId("m1"), IdentityId("8:acs:r_alice"))
BOB = Member(MemberId("m2"), IdentityId("8:acs:r_bob"))


def refusal(text: str) -> CloseCode:
    with pytest.raises(SignalError) as refused:
        parse_client_message(text, LIMIT)
    assert len(refused.value.reason.encode()) <= 123  # RFC 6455 §5.5: a close reason's room
    return refused.value.code


def test_a_send_to_one_member_and_to_everyone() -> None:
    assert parse_client_message('{"type":"send","to":"m2","data":{"kind":"offer"}}', LIMIT) == Send(
        MemberId("m2"), {"kind": "offer"}
    )
    assert parse_client_message('{"type":"send","data":{}}', LIMIT) == Send(None, {})
    assert parse_client_message('{"type":"send","to":null,"data":{"a":[1]}}', LIMIT) == Send(
        None, {"a": [1]}
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '"send"',
        "{}",
        '{"type":"join"}',
        '{"type":"send"}',
        '{"type":"send","data":[]}',
        '{"type":"send","data":"offer"}',
        '{"type":"send","to":2,"data":{}}',
        '{"type":"send","data":{},"from":"m1"}',
        '{"type":"send","data":{"x":NaN}}',
        '{"type":"send","data":{"x":Infinity}}',
    ],
)
def test_anything_else_is_malformed(text: str) -> None:
    assert refusal(text) is CloseCode.MALFORMED


def test_nesting_deeper_than_the_recursion_limit_is_malformed() -> None:
    deep = '{"type":"send","data":' + "[" * 4000 + "]" * 4000 + "}"
    with pytest.raises(SignalError) as refused:
        parse_client_message(deep, 10_000)
    assert refused.value.code is CloseCode.MALFORMED


def test_the_size_limit_counts_utf8_bytes_before_parsing() -> None:
    fits = '{"type":"send","data":{"t":"' + "x" * (LIMIT - 32) + '"}}'
    assert len(fits.encode()) <= LIMIT
    assert parse_client_message(fits, LIMIT).data["t"] == "x" * (LIMIT - 32)
    # Fewer characters than the limit, more bytes: é is two bytes in UTF-8.
    wide = '{"type":"send","data":{"t":"' + "é" * (LIMIT // 2) + '"}}'
    assert len(wide) < LIMIT < len(wide.encode())
    assert refusal(wide) is CloseCode.TOO_BIG
    assert refusal("x" * (LIMIT + 1)) is CloseCode.TOO_BIG  # not even looked at as JSON


@given(st.text(max_size=200))
def test_any_text_is_a_send_or_a_documented_refusal(text: str) -> None:
    try:
        parse_client_message(text, LIMIT)
    except SignalError as refused:
        assert refused.code in (CloseCode.MALFORMED, CloseCode.TOO_BIG)


@pytest.mark.parametrize("name", ["a", "room-1", "A.b_c~d", "x" * 64])
def test_room_names(name: str) -> None:
    assert parse_room_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 65, "a/b", "a b", "é", "a%20b", "a\n"])
def test_bad_room_names(name: str) -> None:
    with pytest.raises(SignalError) as refused:
        parse_room_name(name)
    assert refused.value.code is CloseCode.BAD_ROOM


def test_a_relayed_message_names_its_sender() -> None:
    assert json.loads(relayed_message(ALICE, {"kind": "answer"})) == {
        "type": "message",
        "from": "m1",
        "identity": "8:acs:r_alice",
        "data": {"kind": "answer"},
    }


def test_welcome_lists_the_earlier_members_and_the_limits() -> None:
    assert json.loads(welcome_message(BOB, RoomName("r"), [ALICE], 2, LIMIT)) == {
        "type": "welcome",
        "member": "m2",
        "identity": "8:acs:r_bob",
        "room": "r",
        "members": [{"member": "m1", "identity": "8:acs:r_alice"}],
        "limits": {"room_size": 2, "message_bytes": LIMIT},
    }
