"""What this node is doing right now, as every product reports it and the API shows it.

The TURN relay, the Hybrid Connections relay and signaling are products that
do not know each other or the API; each describes its live state in these
frozen values (:class:`LiveAllocation`, :class:`TurnCounters`,
:class:`LiveListener`, :class:`LiveBridge`, :class:`RoomSummary`), and the
app hands the API one :class:`LiveView`: a bundle of callables that read them.
:class:`ThroughputSeries` keeps the relayed bytes of the last hour in fixed
steps, time passed in, memory bounded. A leaf: no I/O, no clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "LiveAllocation",
    "LiveBridge",
    "LiveListener",
    "LiveNode",
    "LiveView",
    "RoomSummary",
    "Setting",
    "SettingsView",
    "ThroughputPoint",
    "ThroughputSeries",
    "TurnCounters",
    "stats_line",
]


@dataclass(frozen=True, slots=True)
class LiveAllocation:
    """One TURN allocation as it stands (RFC 8656 §2.2)."""

    id: str
    username: str
    subject: str
    """Who is billed: the static user, the REST user part, or an identity id."""
    transport: str
    """Client transport: ``udp``, ``tcp`` or ``tls``."""
    client: str
    """``ip:port`` of the client."""
    relayed: tuple[str, ...]
    """``ip:port`` of each relayed address (one per family)."""
    peers: tuple[str, ...]
    """Peer IPs with a live permission."""
    channels: int
    bytes_to_peer: int
    bytes_from_peer: int
    packets_to_peer: int
    packets_from_peer: int
    started_at: float
    """Unix seconds."""
    expires_at: float
    """Unix seconds, unless refreshed."""


@dataclass(frozen=True, slots=True)
class TurnCounters:
    """The TURN relay's counters since start: what the once-a-minute ``stats:`` line says."""

    live_by_transport: Mapping[str, int]
    allocations_started: int
    allocations_ended: int
    errors: Mapping[int, int]
    """Error answers sent, by STUN error code (401 challenges included)."""
    drops: Mapping[str, int]
    """Packets dropped without an answer, by reason."""
    auth_failures: Mapping[str, int]


def stats_line(counters: TurnCounters) -> str:
    """The once-a-minute ``stats:`` log line of ``counters``: one process's, or the sum of
    every worker's (``passage serve --workers N``)."""
    live = sum(counters.live_by_transport.values())
    errors = ", ".join(f"{code}={n}" for code, n in sorted(counters.errors.items()))
    drops = ", ".join(f"{reason}={n}" for reason, n in sorted(counters.drops.items()))
    return (
        f"stats: {live} allocations live, {counters.allocations_started} started, "
        f"{counters.allocations_ended} ended; errors sent: {errors or 'none'}; "
        f"dropped: {drops or 'none'}"
    )


@dataclass(frozen=True, slots=True)
class LiveListener:
    """A Hybrid Connections listener's control channel on this node."""

    id: str
    hybrid_connection: str
    address: str
    """``ip:port`` the listener connected from."""
    connected_at: float
    """Unix seconds."""
    bridges: int
    """WebSocket senders paired through it now."""


@dataclass(frozen=True, slots=True)
class LiveBridge:
    """A WebSocket sender paired with a listener, relayed by this node."""

    hybrid_connection: str
    listener_id: str
    sender: str
    """``ip:port`` of the sender."""
    opened_at: float
    bytes_to_listener: int
    bytes_to_sender: int


@dataclass(frozen=True, slots=True)
class LiveNode:
    """A node of the cluster as the registry has it (``--redis-url``)."""

    name: str
    region: str
    turn_host: str
    turn_port: int
    public_url: str
    load: int
    """Allocations it holds."""
    draining: bool
    seen_at: float
    """Unix seconds when it last wrote its record."""
    this_node: bool


@dataclass(frozen=True, slots=True)
class RoomSummary:
    room: str
    members: int


@dataclass(frozen=True, slots=True)
class Setting:
    """One configuration option as the server runs with it; secrets already masked."""

    name: str
    """The TOML key, e.g. ``turn.realm``."""
    flag: str
    value: str
    secret: bool
    after_reload: str | None = None
    """Its value after a reload now, where that differs (masked too); None: the same."""
    reload_applies: bool = False
    """True when a reload would apply that value; False when it would need a restart."""


@dataclass(frozen=True, slots=True)
class SettingsView:
    """The settings, and what a reload (SIGHUP, ``passage reload``) would change now."""

    settings: Sequence[Setting]
    reload_checked: bool
    """False where this server cannot re-read its configuration (not ``passage serve``)."""
    reload_error: str | None = None
    """Why a reload now would be refused (the configuration as it reads now is invalid)."""


@dataclass(frozen=True, slots=True)
class ThroughputPoint:
    start: float
    """Unix seconds: the start of the step."""
    bytes_to_peer: int
    bytes_from_peer: int


class ThroughputSeries:
    """Relayed bytes in steps of ``step`` seconds over the last ``span`` seconds.

    :meth:`add` counts bytes at ``now`` (the TURN adapter calls it with each usage
    flush); :meth:`points` gives every step of the span, empty ones as zeros.
    Memory is ``span / step`` steps whatever is added.
    """

    def __init__(self, step: float = 10.0, span: float = 3600.0) -> None:
        if step <= 0 or span < step:
            raise ValueError(f"ThroughputSeries needs 0 < step <= span; got {step}, {span}")
        self.step = step
        self.span = span
        self._steps: deque[list[float]] = deque(maxlen=int(span // step))
        """[start, to peer, from peer], oldest first."""

    def add(self, bytes_to_peer: int, bytes_from_peer: int, now: float) -> None:
        start = now - now % self.step
        if self._steps and self._steps[-1][0] == start:
            self._steps[-1][1] += bytes_to_peer
            self._steps[-1][2] += bytes_from_peer
        elif not self._steps or self._steps[-1][0] < start:
            self._steps.append([start, bytes_to_peer, bytes_from_peer])
        # A ``now`` older than the last step (a clock stepped back) is not counted.

    def points(self, now: float) -> list[ThroughputPoint]:
        """Every step of the last ``span`` seconds up to ``now``'s, oldest first."""
        last = now - now % self.step
        count = int(self.span // self.step)
        known = {entry[0]: entry for entry in self._steps}
        points = []
        for index in range(count - 1, -1, -1):
            start = last - index * self.step
            entry = known.get(start)
            points.append(
                ThroughputPoint(start, int(entry[1]), int(entry[2]))
                if entry is not None
                else ThroughputPoint(start, 0, 0)
            )
        return points


@dataclass(frozen=True, slots=True)
class LiveView:
    """How the API reads this node's live state; the app fills it from the products."""

    allocations: Callable[[], Sequence[LiveAllocation]]
    end_allocation: Callable[[str], bool]
    """End the allocation with this id now; False if there is none."""
    turn: Callable[[], TurnCounters]
    throughput: Callable[[float], Sequence[ThroughputPoint]]
    listeners: Callable[[], Sequence[LiveListener]]
    bridges: Callable[[], Sequence[LiveBridge]]
    rooms: Callable[[], Sequence[RoomSummary]]
    settings: Callable[[], SettingsView]
    nodes: Callable[[float], Sequence[LiveNode]]
    """The cluster's live nodes at ``now``; empty for a single node."""
