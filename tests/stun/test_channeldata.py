"""passage.stun.channeldata: ChannelData framing (RFC 8656 §12.4, §12.5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passage.stun import (
    StunDecodeError,
    decode_channel_data,
    encode_channel_data,
    is_channel_data,
)


def test_encode_layout() -> None:
    assert encode_channel_data(0x4001, b"abcde") == bytes.fromhex("400100056162636465")
    assert encode_channel_data(0x4001, b"abcde", pad=True) == bytes.fromhex(
        "400100056162636465000000"
    )
    assert encode_channel_data(0x4FFF, b"abcd", pad=True) == bytes.fromhex("4fff000461626364")
    assert encode_channel_data(0x4000, b"") == bytes.fromhex("40000000")


@pytest.mark.parametrize("channel", [0x3FFF, 0x8000, -1])
def test_encode_refuses_channels_outside_0x4000_0x7fff(channel: int) -> None:
    with pytest.raises(ValueError):
        encode_channel_data(channel, b"x")


def test_encode_refuses_oversize_data() -> None:
    with pytest.raises(ValueError):
        encode_channel_data(0x4000, bytes(65536))
    assert len(encode_channel_data(0x4000, bytes(65535))) == 65539


@given(st.integers(0x4000, 0x7FFF), st.binary(max_size=300), st.booleans())
def test_round_trip(channel: int, data: bytes, pad: bool) -> None:
    frame = encode_channel_data(channel, data, pad=pad)
    assert is_channel_data(frame)
    assert decode_channel_data(frame) == (channel, data)


def test_is_channel_data_for_rfc5766_channels() -> None:
    assert is_channel_data(b"\x40\x00\x00\x00")
    assert is_channel_data(b"\x4f\xff\x00\x00")
    assert is_channel_data(b"\x7f\xff\x00\x00")  # RFC 5766 range, still in use
    assert not is_channel_data(b"\x80\x00\x00\x00")
    assert not is_channel_data(b"\x00\x01\x00\x00")  # STUN
    assert not is_channel_data(b"\x40\x00\x00")


def test_rfc5766_channels_decode() -> None:
    assert decode_channel_data(b"\x50\x00\x00\x01x") == (0x5000, b"x")
    assert decode_channel_data(b"\x7f\xff\x00\x00") == (0x7FFF, b"")


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"", "channel_data_too_short"),
        (b"\x40\x00\x00", "channel_data_too_short"),
        (b"\x00\x01\x00\x00", "not_channel_data"),
        (b"\x80\x00\x00\x00", "not_channel_data"),
        (b"\x40\x00\x00\x05abcd", "channel_data_length"),
        (b"\x40\x00\x00\x01abcde", "channel_data_length"),
    ],
)
def test_malformed_frames_name_their_reason(datagram: bytes, reason: str) -> None:
    with pytest.raises(StunDecodeError) as error:
        decode_channel_data(datagram)
    assert error.value.reason == reason


def test_up_to_three_padding_bytes_are_tolerated() -> None:
    for extra in range(4):
        assert decode_channel_data(b"\x40\x00\x00\x01x" + bytes(extra)) == (0x4000, b"x")


@given(st.binary(max_size=80))
def test_fuzz_only_raises_stun_decode_error(datagram: bytes) -> None:
    try:
        channel, data = decode_channel_data(datagram)
    except StunDecodeError:
        return
    assert 0x4000 <= channel <= 0x7FFF
    assert len(data) <= len(datagram) - 4
