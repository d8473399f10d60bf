"""WebSocket frames read piece by piece (RFC 6455 §5): whole, a byte at a time, and fuzzed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passage.hybrid.wsframes import (
    Control,
    DataPiece,
    FrameError,
    FrameReader,
    Opcode,
    accept_key,
    close_payload,
    encode_frame,
    parse_close,
)

MASK = b"\x37\xfa\x21\x3d"


def test_the_rfc_handshake_example() -> None:
    # RFC 6455 §1.3: https://www.rfc-editor.org/rfc/rfc6455#section-1.3
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_the_rfc_masked_hello() -> None:
    # RFC 6455 §5.7: a single-frame masked text message "Hello".
    wire = bytes.fromhex("818537fa213d7f9f4d5158")
    assert encode_frame(Opcode.TEXT, b"Hello", mask=MASK) == wire
    assert FrameReader(100).feed(wire) == [DataPiece(False, b"Hello", True)]


def joined(events: list[DataPiece | Control]) -> tuple[bytes, list[Control]]:
    data = b"".join(event.data for event in events if isinstance(event, DataPiece))
    return data, [event for event in events if isinstance(event, Control)]


@pytest.mark.parametrize("mask", [b"", MASK])
def test_a_fragmented_message_with_a_ping_between_fed_a_byte_at_a_time(mask: bytes) -> None:
    body = bytes(range(256)) * 300  # 76,800 bytes: a 64-bit length on the first frame
    wire = (
        encode_frame(Opcode.BINARY, body[:70000], fin=False, mask=mask)
        + encode_frame(Opcode.PING, b"hi", mask=mask)
        + encode_frame(Opcode.CONTINUATION, body[70000:], fin=True, mask=mask)
    )
    reader = FrameReader(100)
    events: list[DataPiece | Control] = []
    for i in range(len(wire)):
        events += reader.feed(wire[i : i + 1])
    data, controls = joined(events)
    assert data == body
    assert controls == [Control(Opcode.PING, b"hi")]
    pieces = [event for event in events if isinstance(event, DataPiece)]
    assert [piece.last for piece in pieces].count(True) == 1 and pieces[-1].last
    whole = FrameReader(100).feed(wire)  # whole, it comes in three events
    assert joined(whole) == (body, [Control(Opcode.PING, b"hi")])


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (encode_frame(Opcode.CONTINUATION, b"x"), 1002),  # a continuation outside a message
        (encode_frame(Opcode.BINARY, b"x", fin=False) + encode_frame(Opcode.TEXT, b"y"), 1002),
        (encode_frame(Opcode.PING, b"x" * 126), 1002),  # a control frame over 125 bytes
        (encode_frame(Opcode.PING, b"x", fin=False), 1002),  # a fragmented control frame
        (bytes([0x83, 0x00]), 1002),  # an unknown opcode
        (bytes([0xC2, 0x00]), 1002),  # RSV1 without an extension
        (encode_frame(Opcode.TEXT, b"x" * 101), 1009),  # a head over the text bound
    ],
)
def test_broken_frames_are_errors_with_their_close_code(wire: bytes, code: int) -> None:
    with pytest.raises(FrameError) as error:
        FrameReader(100).feed(wire)
    assert error.value.code == code


def test_a_close_carries_its_code() -> None:
    assert parse_close(close_payload(1009, "too big")) == 1009
    assert parse_close(b"") == 1005
    assert len(close_payload(1000, "é" * 200)) <= 125


@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_any_bytes_give_events_or_a_frame_error_never_a_crash(data: bytes, step: int) -> None:
    reader = FrameReader(64)
    try:
        for start in range(0, len(data), step):
            for event in reader.feed(data[start : start + step]):
                assert isinstance(event, DataPiece | Control)
    except FrameError as error:
        assert error.code in (1002, 1009)
