"""The rooms core: joining, leaving, routing, and every limit, with ``now`` passed in."""

from __future__ import annotations

import json
from typing import Any

import pytest

from passage.identity.ids import IdentityId
from passage.signal.codes import CloseCode, SignalError
from passage.signal.messages import Member, MemberId, RoomName
from passage.signal.rooms import Delivery, Rooms, SignalLimits

ROOM = RoomName("room")
ALICE = IdentityId("8:acs:r_alice")
BOB = IdentityId("8:acs:r_bob")


def member(n: int, identity: IdentityId = ALICE) -> Member:
    return Member(MemberId(f"m{n}"), identity)


def frames(deliveries: list[Delivery]) -> list[tuple[str, dict[str, Any]]]:
    return [(d.to, json.loads(d.text)) for d in deliveries]


def send(data: dict[str, Any], to: str | None = None) -> str:
    return json.dumps({"type": "send", "to": to, "data": data})


def refusal(call: Any, *args: Any) -> CloseCode:
    with pytest.raises(SignalError) as refused:
        call(*args)
    return refused.value.code


def test_joining_welcomes_the_member_and_tells_the_others() -> None:
    rooms = Rooms()
    first = frames(rooms.join(ROOM, member(1), now=0.0))
    assert first == [("m1", first[0][1])]
    assert first[0][1]["type"] == "welcome" and first[0][1]["members"] == []
    second = frames(rooms.join(ROOM, member(2, BOB), now=0.0))
    assert [to for to, _ in second] == ["m2", "m1"]
    assert second[0][1]["members"] == [{"member": "m1", "identity": ALICE}]
    assert second[1][1] == {"type": "joined", "member": "m2", "identity": BOB}


def test_a_message_goes_to_the_others_with_the_senders_identity() -> None:
    rooms = Rooms(SignalLimits(room_size=3))
    for n in (1, 2, 3):
        rooms.join(ROOM, member(n, BOB if n == 2 else ALICE), now=0.0)
    everyone = frames(rooms.receive(MemberId("m2"), send({"kind": "offer"}), now=0.0))
    assert [to for to, _ in everyone] == ["m1", "m3"]
    assert everyone[0][1] == {
        "type": "message",
        "from": "m2",
        "identity": BOB,
        "data": {"kind": "offer"},
    }
    one = frames(rooms.receive(MemberId("m2"), send({"kind": "answer"}, to="m3"), now=0.0))
    assert [to for to, _ in one] == ["m3"]


def test_a_message_for_a_member_not_here_is_answered_and_closes_nothing() -> None:
    rooms = Rooms()
    rooms.join(ROOM, member(1), now=0.0)
    rooms.join(ROOM, member(2), now=0.0)
    rooms.leave(MemberId("m2"))
    for stranger in ("m2", "m1"):  # gone, and the sender itself
        answer = frames(rooms.receive(MemberId("m1"), send({}, to=stranger), now=0.0))
        assert answer == [
            ("m1", {"type": "error", "code": "unknown-recipient", "detail": stranger})
        ]


def test_rooms_are_separate() -> None:
    rooms = Rooms()
    rooms.join(ROOM, member(1), now=0.0)
    rooms.join(RoomName("other"), member(2), now=0.0)
    assert rooms.receive(MemberId("m1"), send({"x": 1}), now=0.0) == []
    assert len(rooms) == 2


def test_a_full_room_refuses_the_next_member() -> None:
    rooms = Rooms(SignalLimits(room_size=2))
    rooms.join(ROOM, member(1), now=0.0)
    rooms.join(ROOM, member(2), now=0.0)
    assert refusal(rooms.join, ROOM, member(3), 0.0) is CloseCode.ROOM_FULL
    assert [m.id for m in rooms.members_of(ROOM)] == ["m1", "m2"]
    rooms.leave(MemberId("m1"))
    rooms.join(ROOM, member(3), now=0.0)  # a place came free
    assert [m.id for m in rooms.members_of(ROOM)] == ["m2", "m3"]


def test_leaving_tells_the_others_and_an_empty_room_goes() -> None:
    rooms = Rooms()
    rooms.join(ROOM, member(1), now=0.0)
    rooms.join(ROOM, member(2, BOB), now=0.0)
    assert frames(rooms.leave(MemberId("m2"))) == [
        ("m1", {"type": "left", "member": "m2", "identity": BOB})
    ]
    assert rooms.leave(MemberId("m2")) == []  # twice is harmless
    assert rooms.leave(MemberId("m1")) == []
    assert len(rooms) == 0 and rooms.members_of(ROOM) == []


def test_the_room_count_is_bounded() -> None:
    rooms = Rooms(SignalLimits(max_rooms=2))
    rooms.join(RoomName("a"), member(1), now=0.0)
    rooms.join(RoomName("b"), member(2), now=0.0)
    assert refusal(rooms.join, RoomName("c"), member(3), 0.0) is CloseCode.AT_CAPACITY
    rooms.join(RoomName("a"), member(4), now=0.0)  # an existing room still takes members


def test_sessions_per_identity_are_bounded_and_freed_on_leave() -> None:
    rooms = Rooms(SignalLimits(sessions_per_identity=2))
    rooms.join(RoomName("a"), member(1), now=0.0)
    rooms.join(RoomName("b"), member(2), now=0.0)
    assert refusal(rooms.join, RoomName("c"), member(3), 0.0) is CloseCode.AT_CAPACITY
    rooms.join(RoomName("c"), member(4, BOB), now=0.0)  # another identity is not affected
    rooms.leave(MemberId("m1"))
    rooms.join(RoomName("c"), member(5), now=0.0)


def test_the_message_rate_is_a_token_bucket_on_the_injected_clock() -> None:
    rooms = Rooms(SignalLimits(room_size=2, messages_per_second=10.0, message_burst=5))
    rooms.join(ROOM, member(1), now=100.0)
    rooms.join(ROOM, member(2), now=100.0)
    for _ in range(5):  # the burst
        rooms.receive(MemberId("m1"), send({}), now=100.0)
    assert refusal(rooms.receive, MemberId("m1"), send({}), 100.0) is CloseCode.RATE_LIMITED


def test_the_bucket_refills_at_the_rate() -> None:
    rooms = Rooms(SignalLimits(messages_per_second=10.0, message_burst=5))
    rooms.join(ROOM, member(1), now=0.0)
    for _ in range(5):
        rooms.receive(MemberId("m1"), send({}), now=0.0)
    rooms.receive(MemberId("m1"), send({}), now=0.1)  # one token back after 1/10 s
    assert refusal(rooms.receive, MemberId("m1"), send({}), 0.1) is CloseCode.RATE_LIMITED
    for _ in range(5):  # a long pause refills to the burst, not beyond
        rooms.receive(MemberId("m1"), send({}), now=60.0)
    assert refusal(rooms.receive, MemberId("m1"), send({}), 60.0) is CloseCode.RATE_LIMITED


def test_malformed_and_oversized_frames_raise_their_codes() -> None:
    rooms = Rooms(SignalLimits(message_bytes=100))
    rooms.join(ROOM, member(1), now=0.0)
    assert refusal(rooms.receive, MemberId("m1"), "{", 0.0) is CloseCode.MALFORMED
    big = send({"x": "y" * 100})
    assert refusal(rooms.receive, MemberId("m1"), big, 0.0) is CloseCode.TOO_BIG
