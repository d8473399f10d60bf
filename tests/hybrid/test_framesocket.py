"""The frame socket over a connection made by hand: back-pressure, cut bodies, ping floods."""

from __future__ import annotations

import pytest

from passage.hybrid.framesocket import BodyBroken, FrameSocket
from passage.hybrid.wsframes import Control, FrameReader, Opcode, encode_frame

MASK = b"\x01\x02\x03\x04"


class Flow:
    """What a connection would do, recorded."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.paused = False
        self.pauses = 0
        self.unsent = 0
        self.closed = self.aborted = False

    def write(self, data: bytes) -> None:
        self.written += data

    def write_buffer_size(self) -> int:
        return self.unsent

    async def drain(self) -> None:
        return None

    def pause_reading(self) -> None:
        self.paused, self.pauses = True, self.pauses + 1

    def resume_reading(self) -> None:
        self.paused = False

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


async def test_a_body_past_the_window_pauses_reading_until_it_is_read() -> None:
    flow = Flow()
    socket = FrameSocket(flow, client=False, window=100_000)
    body = bytes(range(256)) * 1000  # 256,000 bytes in four frames
    for start in range(0, len(body), 64_000):
        last = start + 64_000 >= len(body)
        opcode = Opcode.BINARY if start == 0 else Opcode.CONTINUATION
        socket.feed_data(encode_frame(opcode, body[start : start + 64_000], fin=last, mask=MASK))
    assert flow.paused and flow.pauses == 1
    received = b"".join([chunk async for chunk in socket.receive_body()])
    assert received == body
    assert not flow.paused


async def test_a_socket_that_ends_inside_a_body_raises_never_ends_it_short() -> None:
    socket = FrameSocket(Flow(), client=False)
    socket.feed_data(encode_frame(Opcode.BINARY, b"part", fin=False, mask=MASK))
    socket.feed_eof()
    with pytest.raises(BodyBroken):
        _ = [chunk async for chunk in socket.receive_body()]


async def test_pings_are_answered_until_the_peer_stops_reading_the_pongs() -> None:
    flow = Flow()
    socket = FrameSocket(flow, client=False, window=1000)
    socket.feed_data(encode_frame(Opcode.PING, b"hi", mask=MASK))
    assert FrameReader(100).feed(bytes(flow.written)) == [Control(Opcode.PONG, b"hi")]
    flow.unsent = 1001  # the peer reads nothing we send
    socket.feed_data(encode_frame(Opcode.PING, b"again", mask=MASK))
    assert flow.aborted and socket.close_code == 1008
    assert await socket.receive_text() is None
