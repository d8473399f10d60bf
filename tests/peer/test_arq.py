"""The ARQ core: two ends joined in memory by a link that loses, reorders, duplicates and
corrupts datagrams, on a virtual clock (``now += tick``), no sleeps."""

from __future__ import annotations

import heapq
import random
import zlib
from dataclasses import dataclass, field

import aioice.stun
import pytest
from hypothesis import given
from hypothesis import strategies as st

from passage.peer.arq import (
    HEADER,
    MAGIC,
    MAX_PAYLOAD,
    MAX_RETRIES,
    Drop,
    ReliableStream,
    StreamFailed,
)

DELAY = 0.02
"""One-way delay of the simulated link, seconds."""


@dataclass
class Link:
    """One direction: datagrams arrive after DELAY (plus jitter), unless the dice say otherwise."""

    rng: random.Random
    loss: float = 0.0
    duplicate: float = 0.0
    corrupt: float = 0.0
    jitter: float = 0.0
    up: bool = True
    queue: list[tuple[float, int, bytes]] = field(default_factory=list)
    sent: int = 0

    def send(self, data: bytes, now: float) -> None:
        self.sent += 1
        if not self.up or self.rng.random() < self.loss:
            return
        copies = 2 if self.rng.random() < self.duplicate else 1
        for _ in range(copies):
            if self.rng.random() < self.corrupt:
                spot = self.rng.randrange(len(data))
                data = data[:spot] + bytes([data[spot] ^ 0x5A]) + data[spot + 1 :]
            at = now + DELAY + self.rng.random() * self.jitter
            heapq.heappush(self.queue, (at, self.sent * 2 + copies, data))

    def due(self, now: float) -> list[bytes]:
        out = []
        while self.queue and self.queue[0][0] <= now:
            out.append(heapq.heappop(self.queue)[2])
        return out

    def next_arrival(self) -> float | None:
        return self.queue[0][0] if self.queue else None


@dataclass
class End:
    stream: ReliableStream
    to_send: bytes
    received: bytearray = field(default_factory=bytearray)
    reading: bool = True

    def pump_app(self) -> None:
        if self.to_send:
            taken = self.stream.write(self.to_send)
            self.to_send = self.to_send[taken:]
            if not self.to_send:
                self.stream.write_eof()
        if self.reading:
            self.received += self.stream.read()


def run(
    a: End, b: End, ab: Link, ba: Link, *, until: float = 600.0, pause_reading_b: float = 0.0
) -> float:
    """Run both ends until both are closed (or ``until``); the virtual time it took."""
    now = 0.0
    b.reading = pause_reading_b == 0.0
    while now < until:
        if not b.reading and now >= pause_reading_b:
            b.reading = True
        for end, link in ((a, ab), (b, ba)):
            end.pump_app()
            for datagram in end.stream.datagrams_to_send(now):
                link.send(datagram, now)
        if a.stream.closed(now) and b.stream.closed(now):
            return now
        times = [t for t in (ab.next_arrival(), ba.next_arrival()) if t is not None]
        times += [t for t in (a.stream.get_timer(), b.stream.get_timer()) if t is not None]
        if not b.reading:
            times.append(pause_reading_b)
        assert times, "deadlock: nothing to wait for"
        now = max(now, min(times))
        for datagram in ab.due(now):
            b.stream.receive_datagram(datagram, now)
        for datagram in ba.due(now):
            a.stream.receive_datagram(datagram, now)
        for end in (a, b):
            timer = end.stream.get_timer()
            if timer is not None and timer <= now:
                end.stream.handle_timer(now)
    raise AssertionError(f"not closed after {until} virtual seconds")


def payload(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def pair(rng: random.Random, a_size: int, b_size: int) -> tuple[End, End]:
    return (
        End(ReliableStream(), payload(rng, a_size)),
        End(ReliableStream(), payload(rng, b_size)),
    )


def test_a_clean_link_carries_both_directions_intact() -> None:
    rng = random.Random(1)
    a, b = pair(rng, 300_000, 200_000)
    sent_a, sent_b = a.to_send, b.to_send
    run(a, b, Link(rng), Link(rng))
    assert bytes(b.received) == sent_a
    assert bytes(a.received) == sent_b
    assert a.stream.at_eof and b.stream.at_eof
    assert not a.stream.drops and not b.stream.drops


@pytest.mark.parametrize("seed", range(5))
def test_loss_reordering_duplication_and_corruption_lose_nothing(seed: int) -> None:
    rng = random.Random(seed)
    a, b = pair(rng, 200_000, 150_000)
    sent_a, sent_b = a.to_send, b.to_send

    def bad() -> Link:
        return Link(rng, loss=0.2, duplicate=0.05, corrupt=0.05, jitter=0.03)

    run(a, b, bad(), bad())
    assert bytes(b.received) == sent_a
    assert bytes(a.received) == sent_b
    drops = a.stream.drops + b.stream.drops
    assert drops[Drop.BAD_CHECKSUM] > 0  # corruption was seen, and repaired
    assert drops[Drop.DUPLICATE] > 0


def test_an_empty_stream_just_exchanges_fins() -> None:
    rng = random.Random(2)
    a, b = End(ReliableStream(), b""), End(ReliableStream(), b"")
    a.stream.write_eof()
    b.stream.write_eof()
    run(a, b, Link(rng, loss=0.3), Link(rng, loss=0.3))
    assert a.stream.at_eof and b.stream.at_eof and a.received == b.received == b""


def test_a_reader_that_pauses_stalls_the_sender_without_failing_it() -> None:
    """The window closes while b does not read (longer than MAX_RETRIES backoffs would
    allow), and reopens when it reads again: flow control, not loss."""
    rng = random.Random(3)
    a, b = pair(rng, 400_000, 0)
    sent = a.to_send
    b.stream.write_eof()
    took = run(a, b, Link(rng), Link(rng), pause_reading_b=120.0)
    assert took >= 120.0
    assert bytes(b.received) == sent
    assert a.stream.failure is None


def test_a_dead_link_fails_the_stream_after_the_retries() -> None:
    rng = random.Random(4)
    a, b = pair(rng, 10_000, 0)
    ab = Link(rng, up=False)
    with pytest.raises(AssertionError, match="deadlock"):
        run(a, b, ab, Link(rng), until=3600.0)
    assert isinstance(a.stream.failure, StreamFailed)
    assert a.stream.closed(0.0) and a.stream.get_timer() is None
    assert a.stream.datagrams_to_send(0.0) == []
    # Each segment sent once, then MAX_RETRIES times more, at most: retransmission is bounded.
    assert ab.sent <= (MAX_RETRIES + 1) * (10_000 // MAX_PAYLOAD + 1)


def test_datagrams_are_not_stun_for_ice_agents() -> None:
    """aioice hands a datagram to the application only if it does not parse as STUN."""
    stream = ReliableStream()
    stream.write(b"x" * 20)
    stream.write(b"")
    for datagram in stream.datagrams_to_send(0.0):
        assert datagram[0] == MAGIC
        with pytest.raises(ValueError):
            aioice.stun.parse_message(datagram)


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda d: d[: HEADER.size - 1], Drop.TRUNCATED),
        (lambda d: bytes([0x00]) + d[1:], Drop.BAD_MAGIC),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), Drop.BAD_CHECKSUM),
        (lambda d: d + b"!", Drop.BAD_CHECKSUM),
    ],
    ids=["truncated", "magic", "bit-flip", "trailing-byte"],
)
def test_malformed_datagrams_are_dropped_with_a_reason(mangle: object, reason: Drop) -> None:
    sender, receiver = ReliableStream(), ReliableStream()
    sender.write(b"hello")
    (datagram,) = sender.datagrams_to_send(0.0)
    assert callable(mangle)
    receiver.receive_datagram(mangle(datagram), 0.0)
    assert receiver.drops == {reason: 1}
    assert receiver.read() == b""
    receiver.receive_datagram(datagram, 0.0)
    assert receiver.read() == b"hello"


def test_write_takes_only_what_the_buffer_holds() -> None:
    stream = ReliableStream()
    room = stream.writable
    assert stream.write(b"x" * (room + 10)) == room
    assert stream.writable == 0 and stream.write(b"y") == 0
    stream.write_eof()
    with pytest.raises(ValueError):
        stream.write(b"z")


@given(st.binary(max_size=1300))
def test_any_datagram_is_taken_or_dropped_with_a_reason(data: bytes) -> None:
    stream = ReliableStream()
    stream.receive_datagram(data, 0.0)
    assert stream.failure is None
    assert sum(stream.drops.values()) <= 1


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 65535))
def test_any_well_formed_ack_leaves_the_sender_sound(ack: int, sack: int, window: int) -> None:
    """A forged or stale ACK cannot ack what was never sent, nor break the sender."""
    sender = ReliableStream()
    sender.write(b"x" * 5000)
    sender.datagrams_to_send(0.0)
    forged = _ack_datagram(ack, sack, window)
    sender.receive_datagram(forged, 0.1)
    if ack > 5:  # five segments in flight: 0..4, so a cumulative ack may say at most 5
        assert sender.drops[Drop.ACK_BEYOND_SENT] == 1
    sender.handle_timer(10.0)
    assert all(d[0] == MAGIC for d in sender.datagrams_to_send(10.0))


def _ack_datagram(ack: int, sack: int, window: int) -> bytes:
    unsigned = HEADER.pack(MAGIC, 2, 0, ack, sack, window, 0, 0)
    return unsigned[: HEADER.size - 4] + zlib.crc32(unsigned).to_bytes(4, "big")
