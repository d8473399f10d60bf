"""ChannelData messages (RFC 8656 §12.4, §12.5).

A ChannelData message is a 4-byte header (channel number, data length) and the application
data. RFC 8656 §12 allows channels 0x4000-0x4FFF and reserves 0x5000-0x7FFF, but RFC 5766
§11 allowed all of 0x4000-0x7FFF and clients still use it (coturn's ``turnutils_uclient``
picks ``0x4000 + random % 0x4000``, ``src/client/ns_turn_msg.c``). So the codec recognises
ChannelData by the top two bits 01 (first byte 0x40-0x7F); which numbers a server binds is
the TURN core's policy (``TurnConfig.strict_channel_range``).
"""

from __future__ import annotations

import struct

from .constants import DecodeReason, StunDecodeError

CHANNEL_DATA_HEADER_SIZE = 4
MIN_CHANNEL = 0x4000
MAX_CHANNEL = 0x4FFF
MAX_CHANNEL_RFC5766 = 0x7FFF
MAX_CHANNEL_DATA_LENGTH = 0xFFFF

_HEADER = struct.Struct("!HH")


def is_channel_data(data: bytes) -> bool:
    """True when the first byte says ChannelData (0x40-0x7F) and a whole header is there."""
    return len(data) >= CHANNEL_DATA_HEADER_SIZE and 0x40 <= data[0] <= 0x7F


def encode_channel_data(channel: int, data: bytes, *, pad: bool = False) -> bytes:
    """Frame ``data`` for ``channel``. ``pad=True`` pads to a multiple of 4 bytes, which
    RFC 8656 §12.5 requires over TCP/TLS; over UDP leave it off."""
    if not MIN_CHANNEL <= channel <= MAX_CHANNEL_RFC5766:
        raise ValueError(f"channel {channel:#06x} outside 0x4000-0x7FFF")
    length = len(data)
    if length > MAX_CHANNEL_DATA_LENGTH:
        raise ValueError(f"{length} bytes of data exceed {MAX_CHANNEL_DATA_LENGTH}")
    frame = _HEADER.pack(channel, length) + data
    return frame + bytes(-length & 3) if pad else frame


def decode_channel_data(datagram: bytes) -> tuple[int, bytes]:
    """Return ``(channel, application data)`` of one ChannelData message.

    Up to 3 trailing bytes (padding) are tolerated and dropped. Raises StunDecodeError with
    reason ``channel_data_too_short`` (no whole header), ``not_channel_data`` (first byte
    outside 0x40-0x7F) or ``channel_data_length`` (length field longer than the datagram, or
    more than 3 bytes left over).
    """
    if len(datagram) < CHANNEL_DATA_HEADER_SIZE:
        raise StunDecodeError(DecodeReason.CHANNEL_DATA_TOO_SHORT)
    channel, length = _HEADER.unpack_from(datagram)
    if not MIN_CHANNEL <= channel <= MAX_CHANNEL_RFC5766:
        raise StunDecodeError(DecodeReason.NOT_CHANNEL_DATA)
    end = CHANNEL_DATA_HEADER_SIZE + length
    if not 0 <= len(datagram) - end <= 3:
        raise StunDecodeError(DecodeReason.CHANNEL_DATA_LENGTH)
    return channel, datagram[CHANNEL_DATA_HEADER_SIZE:end]
