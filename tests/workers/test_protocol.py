"""The parent-worker channel's frames (``passage.workers.protocol``)."""

from __future__ import annotations

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
