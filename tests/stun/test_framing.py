"""passage.stun.framing: STUN and ChannelData over TCP/TLS (RFC 8489 §6.2.2, RFC 8656 §12.5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passage.stun import AttributeType as A
from passage.stun import (
    Message,
    MessageClass,
    Method,
    StreamFramer,
    StunDecodeError,
    TransactionId,
    decode_channel_data,
    decode_message,
    encode_channel_data,
    encode_message,
)

from .rfc_vectors import RFC5769_2_1_REQUEST, RFC5769_2_4_LONG_TERM_REQUEST

SEND = encode_message(
    Message(
        Method.SEND,
        MessageClass.INDICATION,
        TransactionId(bytes(12)),
        ((A.XOR_PEER_ADDRESS, ("192.0.2.1", 9)), (A.DATA, b"hello")),
    )
)
CD_ODD = encode_channel_data(0x4001, b"abcde")  # 5 bytes of data: 3 bytes of padding on a stream
CD_ALIGNED = encode_channel_data(0x4FFF, b"1234")
CD_EMPTY = encode_channel_data(0x4000, b"")
FRAMES = [RFC5769_2_1_REQUEST, CD_ODD, SEND, CD_ALIGNED, CD_EMPTY, RFC5769_2_4_LONG_TERM_REQUEST]


def on_the_wire(frames: list[bytes]) -> bytes:
    # Senders pad ChannelData to 4 bytes over streams (RFC 8656 §12.5).
    return b"".join(frame + bytes(-len(frame) & 3) for frame in frames)


STREAM = on_the_wire(FRAMES)


def test_whole_stream_in_one_feed() -> None:
    framer = StreamFramer()
    assert framer.feed(STREAM) == FRAMES
    assert framer.buffered == 0


def test_one_byte_at_a_time() -> None:
    framer = StreamFramer()
    frames: list[bytes] = []
    for index in range(len(STREAM)):
        frames += framer.feed(STREAM[index : index + 1])
    assert frames == FRAMES
    assert framer.buffered == 0


@given(st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_any_split_gives_the_same_frames(cuts: list[int]) -> None:
    framer = StreamFramer()
    frames: list[bytes] = []
    points = [0, *sorted(cuts), len(STREAM)]
    for start, end in zip(points, points[1:], strict=False):
        frames += framer.feed(STREAM[start:end])
    assert frames == FRAMES


def test_trailing_partial_frame_stays_buffered() -> None:
    framer = StreamFramer()
    partial = SEND[:13]
    assert framer.feed(on_the_wire([RFC5769_2_1_REQUEST, CD_ODD]) + partial) == [
        RFC5769_2_1_REQUEST,
        CD_ODD,
    ]
    assert framer.buffered == len(partial)
    assert framer.feed(SEND[13:]) == [SEND]
    assert framer.buffered == 0


def test_frames_decode() -> None:
    stun, channel_data, send = StreamFramer().feed(STREAM)[:3]
    assert decode_message(stun).raw == RFC5769_2_1_REQUEST
    assert decode_channel_data(channel_data) == (0x4001, b"abcde")
    assert decode_message(send).get(A.DATA, bytes) == b"hello"


def test_channel_data_padding_is_consumed_and_not_returned() -> None:
    framer = StreamFramer()
    assert framer.feed(CD_ODD) == []  # the frame is complete only with its padding
    assert framer.feed(b"\xff\xff") == []  # padding bytes may hold anything
    assert framer.feed(b"\xff" + CD_ALIGNED) == [CD_ODD, CD_ALIGNED]


def test_unpadded_channel_data_is_not_guessed_at() -> None:
    # Like coturn, we consume padding that an unpadded sender never sent, so what follows is
    # read out of step; here it ends as garbage and the connection is closed.
    framer = StreamFramer()
    with pytest.raises(StunDecodeError) as error:
        framer.feed(CD_ODD + SEND + SEND)
    assert error.value.reason == "stream_garbage"


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x80\x00\x00\x00",  # top bits 10
        b"\xff",
        b"\x80\x00\x00\x04abcd",  # above the RFC 5766 channel range
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello on the plain port
        RFC5769_2_1_REQUEST[:4] + b"\x21\x12\xa4\x43",  # bad magic cookie
        b"\x00\x01\x00\x05",  # STUN length not a multiple of 4
    ],
)
def test_garbage_breaks_the_stream(garbage: bytes) -> None:
    framer = StreamFramer()
    assert framer.feed(on_the_wire([CD_ODD])) == [CD_ODD]
    with pytest.raises(StunDecodeError) as error:
        framer.feed(garbage)
    assert error.value.reason == "stream_garbage"
    with pytest.raises(StunDecodeError):
        framer.feed(RFC5769_2_1_REQUEST)


def test_http_request_line_looks_like_channel_data() -> None:
    # "GE" is channel 0x4745 and "T " a length of 21536: indistinguishable from ChannelData,
    # so the framer waits for the rest of that "frame"; it raises nothing.
    framer = StreamFramer()
    assert framer.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == []


def test_short_input_waits() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\x00\x01\x00") == []
    assert framer.feed(b"\x00\x21\x12") == []  # 6 bytes: cookie not yet complete
    assert framer.buffered == 6


def test_largest_frames() -> None:
    big_data = bytes(65535)
    channel_data = encode_channel_data(0x4000, big_data, pad=True)
    framer = StreamFramer()
    assert framer.feed(channel_data + RFC5769_2_1_REQUEST) == [
        channel_data[:-1],
        RFC5769_2_1_REQUEST,
    ]


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_fuzz_only_raises_stun_decode_error(chunks: list[bytes]) -> None:
    framer = StreamFramer()
    for chunk in chunks:
        try:
            frames = framer.feed(chunk)
        except StunDecodeError:
            return
        for frame in frames:
            assert 0 <= frame[0] <= 0x7F


def test_rfc5766_channels_frame_like_rfc8656_ones() -> None:
    """turnutils_uclient binds channels up to 0x7FFF; their frames must pass."""
    frames = StreamFramer().feed(encode_channel_data(0x7ABC, b"abcde", pad=True) + SEND)
    assert frames == [encode_channel_data(0x7ABC, b"abcde"), SEND]
