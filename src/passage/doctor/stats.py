"""Round-trip time, jitter and loss of a stream of probes, sans-IO with time passed in.

:class:`LoopMeter` plans a stream like a voice call's: a probe every
``interval`` (20 ms) for ``duration`` seconds, each ``size`` bytes (172: an
RTP header and 20 ms of G.711). The adapter sends what :meth:`handle_timer`
returns, at :meth:`get_timer`, and hands back each probe that returns with
:meth:`received`; :meth:`stats` sums it up.

- **Round-trip time** is arrival time minus send time, both on the caller's
  clock: the probe goes out and comes back to the same host, so no clocks
  need to agree.
- **Jitter** is RFC 3550 §6.4.1 interarrival jitter, what RTP receivers report
  (and WebRTC's ``jitter`` stat): for consecutive arrivals, D is the change in
  transit time, and J += (|D| − J) / 16.
- **Loss** counts probes not back by the end: the last send plus a linger of
  four times the slowest round trip seen (at least 0.25 s, at most 2 s).
  Duplicates and reordered arrivals are counted, not lost.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_SIZE",
    "PROBE_ID_SIZE",
    "LoopMeter",
    "LoopStats",
]

DEFAULT_INTERVAL = 0.02
"""Seconds between probes: 50 a second, as a voice call sends RTP packets."""

DEFAULT_SIZE = 172
"""Bytes of each probe: a 12-byte RTP header and 160 bytes of G.711 (20 ms)."""

PROBE_ID_SIZE = 12
"""A probe starts with its ID: 8 bytes of session, 4 of sequence number. It fits a
STUN transaction ID, so a Binding request can be a probe too."""

MIN_LINGER = 0.25
MAX_LINGER = 2.0
LINGER_RTTS = 4


@dataclass(frozen=True, slots=True)
class LoopStats:
    """What a stream of probes showed. Times in seconds; None when nothing came back."""

    sent: int
    received: int
    duplicates: int
    reordered: int
    rtt_min: float | None
    rtt_median: float | None
    rtt_mean: float | None
    rtt_p95: float | None
    """95th percentile, nearest rank."""
    rtt_max: float | None
    jitter: float | None
    """RFC 3550 §6.4.1 interarrival jitter after the last arrival."""

    @property
    def lost(self) -> int:
        return self.sent - self.received

    @property
    def loss(self) -> float:
        """Fraction of probes sent that never came back (0.0 when none were sent)."""
        return self.lost / self.sent if self.sent else 0.0


@dataclass(slots=True)
class _Arrivals:
    rtts: list[float] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    duplicates: int = 0
    reordered: int = 0
    highest: int = -1
    last_transit: float | None = None
    jitter: float = 0.0


class LoopMeter:
    """One measurement: ``session`` (8 bytes) tells its probes from anything else."""

    def __init__(
        self,
        session: bytes,
        *,
        duration: float,
        interval: float = DEFAULT_INTERVAL,
        size: int = DEFAULT_SIZE,
    ) -> None:
        if len(session) != PROBE_ID_SIZE - 4:
            raise ValueError("the session is 8 bytes")
        if duration <= 0 or interval <= 0 or size < PROBE_ID_SIZE:
            raise ValueError("duration and interval must be > 0, size at least 12 bytes")
        self.session = session
        self.interval = interval
        self.size = size
        self.count = max(1, round(duration / interval))
        """Probes the stream sends."""
        self._start: float | None = None
        self._over = False
        self._sent_at: list[float] = []
        self._arrivals = _Arrivals()

    # -- the schedule ------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin the stream at ``now``; the first probe is due at once."""
        self._start = now

    @property
    def sent(self) -> int:
        """Probes sent so far."""
        return len(self._sent_at)

    @property
    def returned(self) -> int:
        """Distinct probes back so far."""
        return len(self._arrivals.seen)

    def get_timer(self) -> float | None:
        """When the next probe is due, or the stream ends; None once it is over (or not begun)."""
        if self._start is None or self.done:
            return None
        if self.sent < self.count:
            return self._start + self.sent * self.interval
        return self._sent_at[-1] + self._linger()

    def handle_timer(self, now: float) -> list[bytes]:
        """The probes due by ``now`` (each to send at once: :meth:`payload` of its ID).

        Once every probe is sent and the linger has passed, the stream is over.
        """
        assert self._start is not None, "start() first"
        due: list[bytes] = []
        while self.sent < self.count and self._start + self.sent * self.interval <= now:
            due.append(self._probe_id(self.sent))
            self._sent_at.append(now)
        if self.sent == self.count and now >= self._sent_at[-1] + self._linger():
            self._over = True
        return due

    @property
    def done(self) -> bool:
        """Every probe is sent, and back or given up on."""
        everything_back = len(self._arrivals.seen) == self.count
        return self._over or (self.sent == self.count and everything_back)

    def payload(self, probe_id: bytes) -> bytes:
        """The bytes of a probe: its ID, then zeros up to :attr:`size`."""
        return probe_id + bytes(self.size - len(probe_id))

    # -- arrivals -----------------------------------------------------------------

    def received(self, data: bytes, now: float) -> bool:
        """A probe came back at ``now``; False if ``data`` is not one of this stream's."""
        sequence = self._sequence(data)
        if sequence is None or self._over:
            return False  # not ours, or too late to count
        arrivals = self._arrivals
        if sequence in arrivals.seen:
            arrivals.duplicates += 1
            return True
        sent_at = self._sent_at[sequence]
        arrivals.seen.add(sequence)
        arrivals.rtts.append(now - sent_at)
        if sequence < arrivals.highest:
            arrivals.reordered += 1
        arrivals.highest = max(arrivals.highest, sequence)
        transit = now - sent_at
        if arrivals.last_transit is not None:
            arrivals.jitter += (abs(transit - arrivals.last_transit) - arrivals.jitter) / 16
        arrivals.last_transit = transit
        return True

    def stats(self) -> LoopStats:
        """The numbers so far (final once :attr:`done`)."""
        arrivals = self._arrivals
        rtts = sorted(arrivals.rtts)
        have = bool(rtts)
        return LoopStats(
            sent=self.sent,
            received=len(arrivals.seen),
            duplicates=arrivals.duplicates,
            reordered=arrivals.reordered,
            rtt_min=rtts[0] if have else None,
            rtt_median=statistics.median(rtts) if have else None,
            rtt_mean=statistics.fmean(rtts) if have else None,
            rtt_p95=rtts[math.ceil(0.95 * len(rtts)) - 1] if have else None,
            rtt_max=rtts[-1] if have else None,
            jitter=arrivals.jitter if len(rtts) > 1 else None,
        )

    # -- helpers --------------------------------------------------------------------

    def _probe_id(self, sequence: int) -> bytes:
        return self.session + sequence.to_bytes(4, "big")

    def _sequence(self, data: bytes) -> int | None:
        if len(data) < PROBE_ID_SIZE or data[: PROBE_ID_SIZE - 4] != self.session:
            return None
        sequence = int.from_bytes(data[PROBE_ID_SIZE - 4 : PROBE_ID_SIZE], "big")
        return sequence if sequence < self.sent else None

    def _linger(self) -> float:
        slowest = max(self._arrivals.rtts, default=0.0)
        return min(MAX_LINGER, max(MIN_LINGER, LINGER_RTTS * slowest))
