"""Cutting a TCP/TLS byte stream into STUN messages and ChannelData frames
(RFC 8489 §6.2.2, RFC 8656 §12.5).

The first byte of each frame tells the two apart: top two bits 00 is a STUN message of
``20 + length`` bytes; 01 (0x40-0x7F: RFC 5766 channels reach 0x7FFF) is ChannelData of
``4 + length`` bytes. Anything else means
the stream is out of step and cannot be resynchronised, so the framer raises
``StunDecodeError("stream_garbage")`` and the adapter closes the connection.

ChannelData padding rule: over a stream every ChannelData frame is followed by padding up to
a multiple of 4 bytes, and the framer always consumes it. This is RFC 8656 §12.5 ("MUST be
padded") and what coturn does:

* coturn's server reads every TCP/TLS client socket through
  ``stun_get_message_len_str(buf, blen, 1, &app_msg_len)`` (``src/apps/relay/
  ns_ioalib_engine_impl.c``); with ``padding == 1`` that function (``src/client/ns_turn_msg.c``)
  rounds a ChannelData frame up to a multiple of 4 before cutting it off the stream.
* ``turnutils_uclient`` (``src/apps/uclient/uclient.c``, ``client_write``) builds ChannelData
  with ``stun_init_channel_message(..., mandatory_channel_padding || use_tcp)``: over TCP/TLS it
  always pads. Its ``-D`` flag only adds padding over UDP.

So real senders pad on streams. An unpadded sender cannot be framed unambiguously (the 1-3
bytes after its data may be the next frame's header), and coturn itself would misread one;
we do the same as coturn rather than guess. The frames returned never include the padding.
"""

from __future__ import annotations

from typing import NoReturn

from .constants import HEADER_SIZE, MAGIC_COOKIE_BYTES, DecodeReason, StunDecodeError

_CHANNEL_DATA_HEADER_SIZE = 4


class StreamFramer:
    """Feed it bytes as they arrive; get back whole frames, in order.

    Partial frames stay buffered until the rest arrives. On garbage, ``feed`` raises
    ``stream_garbage`` (frames completed earlier in the same call go with the connection) and
    the framer stays broken: every later feed raises again.
    """

    __slots__ = ("_buffer", "_broken")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._broken = False

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; return every frame now complete: a STUN message (exactly its
        header plus length bytes) or a ChannelData frame (header plus data, padding dropped)."""
        if self._broken:
            raise StunDecodeError(DecodeReason.STREAM_GARBAGE)
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        offset, size = 0, len(buffer)
        while offset < size:
            if buffer[offset] > 0x7F:
                self._garbage()  # neither STUN nor ChannelData: no need to wait for more
            if size - offset < _CHANNEL_DATA_HEADER_SIZE:
                break
            frame_size, consumed = self._measure(buffer, offset, size)
            if not consumed or offset + consumed > size:
                break
            frames.append(bytes(buffer[offset : offset + frame_size]))
            offset += consumed
        del buffer[:offset]
        return frames

    def _measure(self, buffer: bytearray, offset: int, size: int) -> tuple[int, int]:
        """(frame size, bytes to consume) of the STUN or ChannelData frame at ``offset``, whose
        4-byte header is buffered; (0, 0) when more bytes are needed to tell."""
        first = buffer[offset]
        length = (buffer[offset + 2] << 8) | buffer[offset + 3]
        if first <= 0x3F:
            # STUN: the length is a multiple of 4 and the magic cookie follows (RFC 8489 §5).
            if length & 3:
                self._garbage()
            if size - offset < 8:
                return 0, 0
            if buffer[offset + 4 : offset + 8] != MAGIC_COOKIE_BYTES:
                self._garbage()
            return HEADER_SIZE + length, HEADER_SIZE + length
        frame_size = _CHANNEL_DATA_HEADER_SIZE + length  # 0x40-0x7F, checked by feed
        return frame_size, frame_size + (-length & 3)

    def _garbage(self) -> NoReturn:
        self._broken = True
        raise StunDecodeError(DecodeReason.STREAM_GARBAGE)
