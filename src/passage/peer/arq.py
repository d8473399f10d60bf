"""A reliable, ordered byte stream over unreliable datagrams: a small selective-repeat ARQ.

Sans-IO with time passed in, in the shape of aioquic: feed
:meth:`ReliableStream.receive_datagram` (``data``, ``now``), send what
:meth:`~ReliableStream.datagrams_to_send` returns, and call
:meth:`~ReliableStream.handle_timer` when :meth:`~ReliableStream.get_timer`
says. :mod:`passage.peer.sdk.stream` is the asyncio pump over an ICE peer.

What it does, and what it does not:

- Bytes are cut into numbered segments of at most :data:`MAX_PAYLOAD` bytes.
  Every datagram carries a CRC-32 over all of it; one that fails is dropped,
  and the sender's retransmission repairs it.
- The receiver acknowledges cumulatively, with a 32-segment selective-ack
  bitmap beyond, and advertises how many segments it can still take
  (its buffer is :data:`WINDOW` segments, in and out of order together).
- The sender keeps each unacknowledged segment until it is acked; it
  retransmits on its retransmission timeout (RFC 6298: smoothed RTT from
  segments sent once, Karn's rule, doubling on each timeout) or at once when
  three later segments were acked ("fast retransmit"). A congestion window
  grows by one segment per window acked and halves on loss (Reno, RFC 5681,
  in segments); it is a courtesy to the path, not a tuned controller.
- :meth:`~ReliableStream.write_eof` sends FIN after the data; the stream is
  finished when our FIN is acked and the peer's has arrived, then lingers
  (:meth:`~ReliableStream.closed`) long enough to ack a retransmitted FIN.
- A segment unacked after :data:`MAX_RETRIES` retransmissions fails the
  stream (:attr:`~ReliableStream.failure`).

There is no encryption or authentication beyond what the path gives: ICE
checks are authenticated, the data after them is not (as with plain UDP).
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections import Counter
from dataclasses import dataclass

__all__ = [
    "HEADER",
    "MAGIC",
    "MAX_PAYLOAD",
    "MAX_RETRIES",
    "WINDOW",
    "Drop",
    "ReliableStream",
    "StreamFailed",
]

MAGIC = 0xD7
"""First byte of every datagram: no STUN (0-3), ChannelData (64-79), DTLS or RTP byte."""
HEADER = struct.Struct("!BBBxIIHHI")
"""magic, kind, flags, seq (DATA) or cumulative ack (ACK), selective-ack bitmap, window
(segments), payload length, CRC-32 of the datagram with this field zero."""
MAX_PAYLOAD = 1152
"""Bytes of data per segment: with the header, 1172 bytes, under a 1280-byte path MTU
once TURN ChannelData (4), UDP and IP headers are added."""
WINDOW = 64
"""Segments a receiver buffers (delivered but unread, plus out of order)."""
SACK_BITS = 32
MAX_SEQUENCE = 2**32
"""Segments a stream may carry (4 TiB of data): sequence numbers do not wrap."""

INITIAL_RTO = 0.5
MIN_RTO = 0.1
MAX_RTO = 4.0
MAX_RETRIES = 12
"""Retransmissions of one segment before the stream fails (about 40 s with backoff)."""
DUPLICATE_ACK_THRESHOLD = 3
INITIAL_CWND = 8.0
MIN_LINGER = 0.5
"""Seconds a finished stream stays to ack a retransmitted FIN, at least (else 3 RTOs)."""
SEND_BUFFER = 256 * 1024
"""Bytes :meth:`ReliableStream.write` accepts beyond those in flight."""

_DATA, _ACK = 1, 2
_FIN = 0x01


class Drop(enum.StrEnum):
    """Why a received datagram was ignored (counted in :attr:`ReliableStream.drops`)."""

    TRUNCATED = "truncated"
    BAD_MAGIC = "bad-magic"
    BAD_CHECKSUM = "bad-checksum"
    UNKNOWN_KIND = "unknown-kind"
    DUPLICATE = "duplicate"
    BEYOND_WINDOW = "beyond-window"
    AFTER_FIN = "after-fin"
    ACK_BEYOND_SENT = "ack-beyond-sent"


class StreamFailed(Exception):
    """The peer stopped acknowledging: a segment went unacked :data:`MAX_RETRIES` times."""


@dataclass(slots=True)
class _Outstanding:
    payload: bytes
    fin: bool
    sent_at: float
    deadline: float
    retries: int = 0
    """Retransmissions counted towards :data:`MAX_RETRIES`."""
    retransmitted: bool = False
    """Sent more than once: no RTT sample from its ack (Karn's rule)."""
    fast_retransmitted: bool = False


def _pack(kind: int, flags: int, seq: int, sack: int, window: int, payload: bytes) -> bytes:
    unsigned = HEADER.pack(MAGIC, kind, flags, seq, sack, window, len(payload), 0) + payload
    crc = zlib.crc32(unsigned)
    return unsigned[: HEADER.size - 4] + crc.to_bytes(4, "big") + payload


class ReliableStream:
    """One end of a stream; the other end is an identical object at the peer."""

    def __init__(self) -> None:
        # sending
        self._unsent = bytearray()
        self._eof_requested = False
        self._fin_sent = False
        self._next_seq = 0
        self._in_flight: dict[int, _Outstanding] = {}
        self._to_retransmit: list[int] = []
        self._peer_ack = 0
        self._peer_window = WINDOW
        self._cwnd = INITIAL_CWND
        self._srtt: float | None = None
        self._rttvar = 0.0
        self._rto = INITIAL_RTO
        self._probe_at: float | None = None
        self._send_probe = False
        # receiving
        self._expected = 0
        self._out_of_order: dict[int, tuple[bytes, bool]] = {}
        self._readable = bytearray()
        self._eof_received = False
        self._ack_pending = False
        self._advertised = WINDOW
        # ending
        self._finished_at: float | None = None
        self._lingered = False
        self.failure: StreamFailed | None = None
        """Set when the stream failed; nothing more is sent."""
        self.drops: Counter[Drop] = Counter()

    # --- the application side -------------------------------------------------------

    def write(self, data: bytes) -> int:
        """Queue up to ``data``'s length; returns how many bytes were taken (0: buffer full)."""
        if self._eof_requested:
            raise ValueError("write after write_eof")
        room = SEND_BUFFER - len(self._unsent)
        taken = data[: max(0, room)]
        self._unsent += taken
        return len(taken)

    def write_eof(self) -> None:
        """Send FIN once everything written has been sent."""
        self._eof_requested = True

    @property
    def writable(self) -> int:
        """Bytes :meth:`write` would take now."""
        return max(0, SEND_BUFFER - len(self._unsent))

    def read(self, limit: int = -1) -> bytes:
        """Up to ``limit`` bytes received in order (all with -1); b"" if none yet."""
        size = len(self._readable) if limit < 0 else min(limit, len(self._readable))
        data = bytes(self._readable[:size])
        del self._readable[:size]
        if data and self._advertised < WINDOW // 2 <= self._room():
            self._ack_pending = True  # a window update, so a stalled sender resumes
        return data

    @property
    def at_eof(self) -> bool:
        """The peer's FIN arrived and everything before it has been read."""
        return self._eof_received and not self._readable

    @property
    def finished(self) -> bool:
        """Our FIN is acked and the peer's arrived."""
        return self._fin_sent and not self._in_flight and self._eof_received

    def closed(self, now: float) -> bool:
        """Finished, and lingered long enough to ack a retransmitted FIN; or failed."""
        if self.failure is not None or self._lingered:
            return True
        return self._finished_at is not None and now >= self._finished_at + self._linger()

    # --- the network side --------------------------------------------------------------

    def receive_datagram(self, data: bytes, now: float) -> None:
        """Process one datagram from the peer; anything malformed is dropped and counted."""
        if self.failure is not None:
            return
        if len(data) < HEADER.size:
            self.drops[Drop.TRUNCATED] += 1
            return
        magic, kind, flags, seq, sack, window, length, crc = HEADER.unpack_from(data)
        if magic != MAGIC:
            self.drops[Drop.BAD_MAGIC] += 1
            return
        unsigned = data[: HEADER.size - 4] + b"\0\0\0\0" + data[HEADER.size :]
        if len(data) != HEADER.size + length or zlib.crc32(unsigned) != crc:
            self.drops[Drop.BAD_CHECKSUM] += 1
            return
        if kind == _DATA:
            self._on_data(seq, bool(flags & _FIN), data[HEADER.size :])
        elif kind == _ACK:
            self._on_ack(seq, sack, window, now)
        else:
            self.drops[Drop.UNKNOWN_KIND] += 1
        self._check_finished(now)

    def datagrams_to_send(self, now: float) -> list[bytes]:
        """What to send now: an ACK if one is due, retransmissions, then new segments."""
        if self.failure is not None:
            return []
        out: list[bytes] = []
        if self._ack_pending:
            out.append(self._ack())
        for seq in self._to_retransmit:
            if seq in self._in_flight:
                out.append(self._segment(seq, self._in_flight[seq], now))
        self._to_retransmit.clear()
        while self._may_send_new():
            out.append(self._send_new(now))
        if not self._may_send_new() and self._has_new() and self._window_closed():
            self._probe_at = self._probe_at or now + self._rto
        self._check_finished(now)
        return out

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called; None: only on input."""
        if self.failure is not None:
            return None
        times = [o.deadline for o in self._in_flight.values()]
        if self._probe_at is not None:
            times.append(self._probe_at)
        if self._finished_at is not None and not self._lingered:
            times.append(self._finished_at + self._linger())
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        """Retransmit what timed out (doubling the RTO), probe a closed window, or fail."""
        expired = [seq for seq, o in self._in_flight.items() if o.deadline <= now]
        for seq in expired:
            outstanding = self._in_flight[seq]
            if outstanding.retries >= MAX_RETRIES:
                self.failure = StreamFailed(
                    f"segment {seq} unacknowledged after {MAX_RETRIES} tries"
                )
                return
            outstanding.retries += 1
            self._to_retransmit.append(seq)
        if expired:
            self._rto = min(self._rto * 2, MAX_RTO)
            self._cwnd = 2.0
        if self._probe_at is not None and self._probe_at <= now:
            self._probe_at = None
            if self._has_new() and not self._in_flight:
                self._send_probe = True
        if self.closed(now):
            self._lingered = True

    # --- internals ---------------------------------------------------------------------

    def _room(self) -> int:
        """Segments beyond the cumulative ack this end can hold (out-of-order ones among them)."""
        buffered = -(-len(self._readable) // MAX_PAYLOAD)
        return max(0, WINDOW - buffered)

    def _linger(self) -> float:
        return max(MIN_LINGER, 3 * self._rto)

    def _on_data(self, seq: int, fin: bool, payload: bytes) -> None:
        self._ack_pending = True
        if seq < self._expected or seq in self._out_of_order:
            self.drops[Drop.DUPLICATE] += 1
            return
        if self._eof_received:
            self.drops[Drop.AFTER_FIN] += 1
            return
        if seq >= self._expected + self._room():
            self.drops[Drop.BEYOND_WINDOW] += 1
            return
        self._out_of_order[seq] = (payload, fin)
        while self._expected in self._out_of_order:
            payload, fin = self._out_of_order.pop(self._expected)
            self._expected += 1
            self._readable += payload
            if fin:
                self._eof_received = True
                self._out_of_order.clear()
                break

    def _on_ack(self, ack: int, sack: int, window: int, now: float) -> None:
        if ack > self._next_seq:
            self.drops[Drop.ACK_BEYOND_SENT] += 1
            return
        acked = [seq for seq in self._in_flight if seq < ack]
        acked += [
            seq
            for bit in range(SACK_BITS)
            if sack >> bit & 1 and (seq := ack + 1 + bit) in self._in_flight
        ]
        for seq in acked:
            outstanding = self._in_flight.pop(seq)
            if not outstanding.retransmitted:  # Karn: no RTT from a retransmitted segment
                self._sample_rtt(now - outstanding.sent_at)
            self._cwnd = min(float(4 * WINDOW), self._cwnd + 1.0 / self._cwnd)
        self._peer_ack = max(self._peer_ack, ack)
        self._peer_window = window
        if window > 0:
            self._probe_at = None
        else:  # the peer is alive but full: what it refused is not lost, only early
            for seq, outstanding in self._in_flight.items():
                if seq >= ack:
                    outstanding.retries = 0
        self._fast_retransmit(ack, sack)

    def _fast_retransmit(self, ack: int, sack: int) -> None:
        """Resend a hole once when three segments beyond it were acked (RFC 5681 §3.2)."""
        above = sack.bit_count()
        outstanding = self._in_flight.get(ack)
        if outstanding is None or above < DUPLICATE_ACK_THRESHOLD:
            return
        if not outstanding.fast_retransmitted:
            outstanding.fast_retransmitted = True
            outstanding.retries += 1
            self._to_retransmit.append(ack)
            self._cwnd = max(2.0, self._cwnd / 2)

    def _sample_rtt(self, rtt: float) -> None:
        """RFC 6298 §2."""
        if self._srtt is None:
            self._srtt, self._rttvar = rtt, rtt / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt)
            self._srtt = 0.875 * self._srtt + 0.125 * rtt
        self._rto = min(MAX_RTO, max(MIN_RTO, self._srtt + 4 * self._rttvar))

    def _has_new(self) -> bool:
        return bool(self._unsent) or (self._eof_requested and not self._fin_sent)

    def _window_closed(self) -> bool:
        return self._next_seq >= self._peer_ack + self._peer_window

    def _may_send_new(self) -> bool:
        if not self._has_new() or self._next_seq >= MAX_SEQUENCE:
            return False
        if self._send_probe:
            return True
        return len(self._in_flight) < int(self._cwnd) and not self._window_closed()

    def _send_new(self, now: float) -> bytes:
        self._send_probe = False
        payload = bytes(self._unsent[:MAX_PAYLOAD])
        del self._unsent[:MAX_PAYLOAD]
        fin = not self._unsent and self._eof_requested
        self._fin_sent = self._fin_sent or fin
        seq = self._next_seq
        self._next_seq += 1
        outstanding = _Outstanding(payload, fin, now, now + self._rto)
        self._in_flight[seq] = outstanding
        return self._segment(seq, outstanding, now, first=True)

    def _segment(
        self, seq: int, outstanding: _Outstanding, now: float, first: bool = False
    ) -> bytes:
        if not first:
            outstanding.retransmitted = True
            outstanding.sent_at = now
            outstanding.deadline = now + self._rto
        flags = _FIN if outstanding.fin else 0
        return _pack(_DATA, flags, seq, 0, 0, outstanding.payload)

    def _ack(self) -> bytes:
        self._ack_pending = False
        sack = 0
        for seq in self._out_of_order:
            bit = seq - self._expected - 1
            if 0 <= bit < SACK_BITS:
                sack |= 1 << bit
        self._advertised = self._room()
        return _pack(_ACK, 0, self._expected, sack, self._advertised, b"")

    def _check_finished(self, now: float) -> None:
        if self._finished_at is None and self.finished:
            self._finished_at = now
