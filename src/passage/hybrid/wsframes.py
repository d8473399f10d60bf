"""WebSocket frames (RFC 6455 §5), read piece by piece so a body is never held whole.

An HTTP body on a rendezvous socket is one binary message, possibly split into
frames (reference §2.3, §2.5), and one frame may be as large as its sender
likes (hyco-https sends a whole response as one frame). :class:`FrameReader`
therefore hands out a data frame's payload as it arrives, in
:class:`DataPiece` events, never holding more than the bytes it was fed;
control frames (at most 125 bytes, §5.5) come whole as :class:`Control`.
:func:`encode_frame` writes one frame, masked when a client sends it (§5.3).
:func:`accept_key` is the handshake's ``Sec-WebSocket-Accept`` (§4.2.2).

Sans-IO: bytes in, events out; no sockets, no clock.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "Control",
    "DataPiece",
    "FrameError",
    "FrameReader",
    "Opcode",
    "accept_key",
    "close_payload",
    "encode_frame",
    "parse_close",
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Opcode(IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class FrameError(Exception):
    """The peer broke RFC 6455; ``code`` is the close code to send (1002, 1007, 1009)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DataPiece:
    """Part of a text or binary message's payload; ``last`` on the message's final byte."""

    binary: bool
    data: bytes
    last: bool


@dataclass(frozen=True, slots=True)
class Control:
    """A whole control frame: close, ping or pong."""

    opcode: Opcode
    payload: bytes


Event = DataPiece | Control


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a handshake's ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def close_payload(code: int, reason: str = "") -> bytes:
    """A close frame's payload: the code, then a reason cut to fit 125 bytes (§5.5.1)."""
    return struct.pack("!H", code) + reason.encode("utf-8")[:123]


def parse_close(payload: bytes) -> int:
    """The code of a close frame's payload; 1005 (no status) when it carries none."""
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


def encode_frame(opcode: Opcode, payload: bytes, *, fin: bool = True, mask: bytes = b"") -> bytes:
    """One frame; ``mask`` (4 bytes) is given by a client and applied (§5.3), else none."""
    length = len(payload)
    first = (0x80 if fin else 0) | int(opcode)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not mask:
        return head + payload
    return head + mask + _masked(payload, mask, 0)


def _masked(data: bytes, mask: bytes, offset: int) -> bytes:
    """``data`` XOR the mask, starting ``offset`` bytes into the frame's payload."""
    if not data:
        return b""
    key = (mask[offset % 4 :] + mask[: offset % 4]) * (len(data) // 4 + 1)
    value = int.from_bytes(data, "big") ^ int.from_bytes(key[: len(data)], "big")
    return value.to_bytes(len(data), "big")


class FrameReader:
    """Frames from a byte stream, data payloads handed out as they arrive.

    ``max_text`` bounds a text message (they are JSON heads here, assembled by
    the caller): past it, :class:`FrameError` 1009. Binary messages have no
    bound: the caller reads them as a stream and stops reading the socket
    when it has enough waiting (back-pressure), so memory is bounded by what
    it lets in, not by the message.
    """

    def __init__(self, max_text: int) -> None:
        self.max_text = max_text
        self._buffer = bytearray()
        self._in_message: bool | None = None
        """Whether a message is open (its binary-ness), until its final frame ends."""
        self._text_size = 0
        self._frame: tuple[Opcode, bool, bytes, int] | None = None
        """The frame being read: its opcode, FIN, mask, payload bytes still to come."""
        self._offset = 0

    def feed(self, data: bytes) -> list[Event]:
        """Events completed by ``data``; :class:`FrameError` if the peer broke the rules."""
        self._buffer += data
        events: list[Event] = []
        while True:
            if self._frame is None and not self._read_header():
                return events
            event = self._read_payload()
            if event is None:
                return events
            events.append(event)

    def _read_header(self) -> bool:
        buffer = self._buffer
        if len(buffer) < 2:
            return False
        first, second = buffer[0], buffer[1]
        size, at = second & 0x7F, 2
        if size == 126:
            if len(buffer) < 4:
                return False
            size, at = struct.unpack_from("!H", buffer, 2)[0], 4
        elif size == 127:
            if len(buffer) < 10:
                return False
            size, at = struct.unpack_from("!Q", buffer, 2)[0], 10
        masked = bool(second & 0x80)
        if len(buffer) < at + (4 if masked else 0):
            return False
        mask = bytes(buffer[at : at + 4]) if masked else b""
        del buffer[: at + len(mask)]
        fin = bool(first & 0x80)
        if first & 0x70:
            raise FrameError(1002, "reserved bits set without an extension")
        try:
            opcode = Opcode(first & 0x0F)
        except ValueError:
            raise FrameError(1002, f"unknown opcode {first & 0x0F}") from None
        self._check(opcode, fin, size)
        self._frame, self._offset = (opcode, fin, mask, size), 0
        return True

    def _check(self, opcode: Opcode, fin: bool, size: int) -> None:
        """RFC 6455 §5.4-5.5: control frames small and whole, continuations in a message."""
        if opcode >= Opcode.CLOSE:
            if size > 125 or not fin:
                raise FrameError(1002, "a control frame fragmented or over 125 bytes")
            return
        if opcode is Opcode.CONTINUATION:
            if self._in_message is None:
                raise FrameError(1002, "a continuation frame outside a message")
        elif self._in_message is not None:
            raise FrameError(1002, "a new message began before the last one ended")
        else:
            self._in_message = opcode is Opcode.BINARY
            self._text_size = 0
        if not self._in_message:
            self._text_size += size
            if self._text_size > self.max_text:
                raise FrameError(1009, f"a text message over {self.max_text} bytes")

    def _read_payload(self) -> Event | None:
        assert self._frame is not None
        opcode, fin, mask, left = self._frame
        if opcode >= Opcode.CLOSE:
            if len(self._buffer) < left:
                return None
            payload = (
                _masked(bytes(self._buffer[:left]), mask, 0) if mask else bytes(self._buffer[:left])
            )
            del self._buffer[:left]
            self._frame = None
            return Control(opcode, payload)
        take = min(left, len(self._buffer))
        if take == 0 and left > 0:
            return None
        piece = bytes(self._buffer[:take])
        del self._buffer[:take]
        if mask:
            piece = _masked(piece, mask, self._offset)
        self._offset += take
        left -= take
        last = left == 0 and fin
        binary = bool(self._in_message)
        if left == 0:
            self._frame = None
            if fin:
                self._in_message = None
        else:
            self._frame = (opcode, fin, mask, left)
        return DataPiece(binary, piece, last)
