"""The parent-worker channel's frames (``passage.workers.protocol``)."""

from __future__ import annotations

import enum
import io
import os
import pickle
import struct
from pathlib import Path

import pytest

from passage.config import Config
from passage.identity.keys import AccessKeys
from passage.usage import UsageRecord
from passage.workers.protocol import (
    MAX_FRAME,
    Admit,
    Admitted,
    ChannelError,
    FrameReader,
    Holding,
    Identity,
    ListenerSocket,
    Message,
    Ready,
    Start,
    Stop,
    Stopped,
    Usage,
    encode,
)

RECORD = UsageRecord(
    allocation_id="a1", username="alice", subject="alice", transport="udp",
    client_address="127.0.0.1:5000", relayed_address="127.0.0.1:50000",
    started_at=1.0, period_start=1.0, period_end=2.0, bytes_to_peer=160,
    packets_to_peer=1, bytes_from_peer=320, packets_from_peer=2, ended=False, end_reason=None,
)  # fmt: skip

MESSAGES: list[Message] = [
    Start(2, b"k" * 32, Config(data_dir=Path("/tmp/x")), None, None, (ListenerSocket("udp", 7),)),
    Admit(1, "alice", 3, 1),
    Admitted(1, False, "Allocation quota reached"),
    Holding("alice", 0),
    Usage((RECORD, RECORD)),
    Ready(1234),
    Stop(),
    Stopped(),
]


def test_every_message_round_trips_whole_and_byte_by_byte() -> None:
    stream = b"".join(encode(message) for message in MESSAGES)
    assert FrameReader().feed(stream) == MESSAGES
    reader, received = FrameReader(), []
    for byte in stream:
        received += reader.feed(bytes([byte]))
    assert received == MESSAGES and reader.buffered == 0


def test_a_partial_frame_stays_buffered_until_complete() -> None:
    frame = encode(Holding("bob", 1))
    reader = FrameReader()
    assert reader.feed(frame[:-1]) == []
    assert reader.buffered == len(frame) - 1
    assert reader.feed(frame[-1:]) == [Holding("bob", 1)]


def test_a_frame_over_the_limit_is_refused_before_it_is_read() -> None:
    with pytest.raises(ChannelError, match="over"):
        FrameReader().feed(struct.pack("!I", MAX_FRAME + 1))


def test_a_frame_naming_a_foreign_class_is_refused() -> None:
    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("true",))

    body = pickle.dumps(Exploit())
    with pytest.raises(ChannelError, match="system"):
        FrameReader().feed(struct.pack("!I", len(body)) + body)


def test_a_frame_that_is_not_a_message_is_refused() -> None:
    body = pickle.dumps(AccessKeys.__name__)
    with pytest.raises(ChannelError, match="not a message"):
        FrameReader().feed(struct.pack("!I", len(body)) + body)
    with pytest.raises(ChannelError, match="does not decode"):
        FrameReader().feed(struct.pack("!I", 3) + b"\x80\x05!")


class _ByName(pickle.Pickler):
    """Pickles enum members as ``getattr(EnumClass, "NAME")``, as Debian's Python 3.11.2
    does (the worker then refused the parent's Start: 'frame names builtins.getattr')."""

    def reducer_override(self, obj: object) -> object:
        if isinstance(obj, enum.Enum):
            return getattr, (type(obj), obj.name)
        return NotImplemented


def by_name(message: object) -> bytes:
    out = io.BytesIO()
    _ByName(out, protocol=pickle.HIGHEST_PROTOCOL).dump(message)
    return struct.pack("!I", len(out.getvalue())) + out.getvalue()


class _BogusMember:
    def __reduce__(self) -> tuple[object, tuple[object, str]]:
        from passage.addresses import Transport

        return (getattr, (Transport, "bogus"))


def test_enum_members_pickled_by_name_decode() -> None:
    from passage.addresses import Transport
    from passage.identity.keys import KeyName

    message = Identity((KeyName.PRIMARY, Transport.UDP))  # as an IdentityState holds them
    assert FrameReader().feed(by_name(message)) == [message]


def test_getattr_in_a_frame_reaches_nothing_but_passage_enum_members() -> None:
    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[object, str]]:
            return (getattr, (Path, "home"))  # a Passage-allowed class, not an enum member

    body = pickle.dumps(Exploit())
    with pytest.raises(ChannelError, match="home"):
        FrameReader().feed(struct.pack("!I", len(body)) + body)
    with pytest.raises(ChannelError, match="bogus"):  # an enum of Passage's, no such member
        FrameReader().feed(by_name(_BogusMember()))
