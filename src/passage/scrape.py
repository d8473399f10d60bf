"""What ``/metrics`` reports: every service's own counters, read at scrape time.

The services count with plain integers where things happen (the TURN core's
:class:`~passage.turn.server.Metrics`, each allocation's meters, the relay's
:class:`~passage.hybrid.aio.meters.RelayMeters`, signaling's counts, the
front door's :class:`~passage.frontdoor.access.AccessRecorder`, the edge's
ledger writes) and never call a metrics library per packet or per message.
:class:`PassageCollector` turns them into Prometheus metric families when a
scraper asks; ``prometheus_client``'s process collector adds CPU, memory and
descriptors. Every name starts with ``passage_``; every label value comes
from the code (a transport, a reason, a route's name, a status), never a user
name or an address. ``docs/metrics.md`` lists them all.

Assembly: it reads every product, and only the app imports it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from passage import __version__
from passage.addresses import AddressFamily
from passage.frontdoor import FrontDoor
from passage.hybrid.aio.relay import HybridRelay
from passage.meters import Histogram
from passage.readiness import Readiness
from passage.signal.aio import SignalingServer
from passage.store.spill import UsageSpill
from passage.stun import Method
from passage.turn.aio.edge import TurnEdge

__all__ = [
    "PassageCollector",
    "PlainFamily",
    "Sources",
    "merge_families",
    "registry",
    "turn_families",
]

NAMESPACE = "passage"

FAMILY_NAMES: dict[int, str] = {AddressFamily.IPV4: "ipv4", AddressFamily.IPV6: "ipv6"}

METHOD_NAMES: dict[int, str] = {int(method): method.name.lower() for method in Method}
"""A method's label; any other of the 4,096 a client may send is ``other``."""


def method_name(method: int) -> str:
    return METHOD_NAMES.get(method, "other")


def status_label(status: int) -> str:
    """An HTTP status as a label: a listener chooses its own, so one outside 100-599 is
    ``other``."""
    return str(status) if 100 <= status <= 599 else "other"


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the counters live: one of each service of a running process."""

    edge: TurnEdge | None
    """None when worker processes relay TURN (``--workers N``): then ``workers`` says."""
    front_door: FrontDoor
    relay: HybridRelay
    signaling: SignalingServer
    readiness: Readiness
    workers: Callable[[], Iterable[Iterable[PlainFamily]]] | None = None
    """Each worker's TURN and store families (:func:`turn_families`), as last reported."""
    spill: UsageSpill | None = None
    """Usage records the store could not take, past the memory bound (this process's)."""
    ledger_writes: LedgerWrites | None = None
    """Who writes the usage ledger when ``workers`` relay TURN: the parent's pool."""


class LedgerWrites(Protocol):
    """What the usage-store families read of whoever writes the ledger: this process's
    edge, or the worker pool that writes every worker's records."""

    @property
    def flush_latency(self) -> Histogram: ...
    @property
    def flush_failures(self) -> int: ...
    @property
    def unsaved_records(self) -> int: ...


PlainFamily = tuple[str, str, str, tuple[tuple[str, tuple[tuple[str, str], ...], float], ...]]
"""A metric family as plain data a worker sends its parent: (name, documentation, type,
samples as (sample name, labels, value))."""


def turn_families(edge: TurnEdge) -> list[PlainFamily]:
    """One edge's TURN families, as plain data (a worker's report). Its store families
    are the parent's: a worker hands its records to the parent, which writes the ledger."""
    return [
        (family.name, family.documentation, family.type,
         tuple((s.name, tuple(sorted(s.labels.items())), s.value) for s in family.samples))
        for family in _turn(edge)
    ]  # fmt: skip


def merge_families(reports: Iterable[Iterable[PlainFamily]]) -> list[Metric]:
    """The workers' families as one process's: every sample summed over the workers (counts,
    gauges of things held, histogram buckets alike). A restarted worker's counters start
    from zero, which a scraper sees as a reset."""
    families: dict[str, Metric] = {}
    sums: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for report in reports:
        for name, documentation, kind, samples in report:
            if name not in families:
                families[name] = Metric(name, documentation, kind)
                sums[name] = {}
            for sample_name, labels, value in samples:
                key = (sample_name, labels)
                sums[name][key] = sums[name].get(key, 0.0) + value
    for name, family in families.items():
        for (sample_name, labels), value in sums[name].items():
            family.add_sample(sample_name, dict(labels), value)
    return list(families.values())


def registry(sources: Sources) -> CollectorRegistry:
    """A registry with :class:`PassageCollector` and the process's CPU, memory and files."""
    found = CollectorRegistry()
    found.register(PassageCollector(sources))
    ProcessCollector(namespace=NAMESPACE, registry=found)
    return found


class PassageCollector(Collector):
    """Every ``passage_`` metric but the process's, built from the counters at each scrape."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily(
            "passage_build_info", "The running Passage version (always 1).", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info
        readiness = self.sources.readiness
        yield _gauge(
            "passage_draining",
            "1 while this node drains (SIGTERM): no new allocations, live ones carry on.",
            int(readiness.draining),
        )
        yield _gauge(
            "passage_ready", "1 when /readyz would say ready but for the store check.",
            int(not readiness.problems()),
        )  # fmt: skip
        edge = self.sources.edge
        if edge is not None:
            yield from _turn(edge)
            yield from _store(edge)
        elif self.sources.workers is not None:
            yield from merge_families(self.sources.workers())
            if self.sources.ledger_writes is not None:
                yield from _store(self.sources.ledger_writes)
        if self.sources.spill is not None:
            yield from _spill(self.sources.spill)
        yield from self._http()
        yield from self._hybrid()
        yield from self._signal()

    # --- HTTP -------------------------------------------------------------------------

    def _http(self) -> Iterator[Metric]:
        keeper = self.sources.front_door.keeper
        meter = keeper.access.meter
        yield _counter(
            "passage_http_requests",
            "HTTP requests answered on the API and HTTP ports, by route (the API's operation, "
            "else the product: relay, signaling) and status.",
            ["route", "status"],
            [((route, status_label(status)), v) for (route, status), v in meter.responses.items()]
        )  # fmt: skip
        durations = HistogramMetricFamily(
            "passage_http_request_duration_seconds",
            "Seconds from a request's handler starting to its response sent, by route "
            "(WebSocket sessions excluded).",
            labels=["route"],
        )
        for route, histogram in sorted(meter.latency.items()):
            durations.add_metric([route], _buckets(histogram), histogram.sum)
        yield durations
        yield _gauge(
            "passage_http_connections", "HTTP connections open now on the API and HTTP ports.",
            keeper.counts.total,
        )  # fmt: skip
        yield _counter(
            "passage_http_connections_refused",
            "HTTP connections refused or cut by the front door, by reason.",
            ["reason"], [((k,), v) for k, v in keeper.refused.items()]
        )  # fmt: skip

    # --- Hybrid Connections ------------------------------------------------------------

    def _hybrid(self) -> Iterator[Metric]:
        relay = self.sources.relay
        meters = relay.meters
        channels = list(relay.channels.values())
        yield _gauge(
            "passage_hc_listeners", "Listeners connected now (control channels).", len(channels)
        )
        yield _counter(
            "passage_hc_listeners_accepted", "Listener control channels opened since start.",
            [], [((), meters.listeners_accepted)],
        )  # fmt: skip
        yield _gauge(
            "passage_hc_bridges", "WebSocket senders bridged to a listener now.",
            sum(len(channel.bridges) for channel in channels),
        )  # fmt: skip
        yield _gauge(
            "passage_hc_http_requests_in_flight", "HTTP senders waiting for a listener's response.",
            sum(len(channel.exchanges) for channel in channels),
        )  # fmt: skip
        yield _counter(
            "passage_hc_senders", "Senders paired with a listener, by kind (http, websocket).",
            ["kind"], [((k,), v) for k, v in meters.senders.items()]
        )  # fmt: skip
        to_listener, to_sender = meters.bytes_by_direction()
        yield _counter(
            "passage_hc_bytes",
            "Payload bytes relayed between senders and listeners, by direction.",
            ["direction"], [(("to_listener",), to_listener), (("to_sender",), to_sender)],
        )  # fmt: skip
        yield _counter(
            "passage_hc_refusals", "Relay requests refused, by error code.",
            ["reason"], [((k,), v) for k, v in meters.refused.items()]
        )  # fmt: skip

    # --- signaling --------------------------------------------------------------------

    def _signal(self) -> Iterator[Metric]:
        signaling = self.sources.signaling
        yield _gauge("passage_signal_rooms", "Signaling rooms with members now.",
                     len(signaling.rooms))  # fmt: skip
        yield _gauge("passage_signal_members", "Signaling sessions open now.", signaling.members)
        yield _counter(
            "passage_signal_messages", "Frames members sent that the rooms accepted.",
            [], [((), signaling.messages)],
        )  # fmt: skip
        yield _counter(
            "passage_signal_deliveries", "Frames queued for members (relayed, joined, left...).",
            [], [((), signaling.deliveries)],
        )  # fmt: skip
        yield _counter(
            "passage_signal_closes",
            "Sessions ended, by close code (the server's, or the client's when it closed "
            "first; 0: the connection dropped without one).",
            ["code"], [((str(k),), v) for k, v in signaling.closes.items()]
        )  # fmt: skip


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(
    name: str,
    documentation: str,
    labels: list[str],
    rows: Iterable[tuple[tuple[str, ...], float]],
) -> CounterMetricFamily:
    """A counter family (``_total`` is added to ``name``), rows sorted by label values;
    rows whose labels fold into the same values (``other``) are summed."""
    family = CounterMetricFamily(name, documentation, labels=labels)
    summed: dict[tuple[str, ...], float] = {}
    for values, count in rows:
        summed[values] = summed.get(values, 0) + count
    for values, count in sorted(summed.items()):
        family.add_metric(list(values), count)
    return family


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(
        name, documentation, buckets=_buckets(histogram), sum_value=histogram.sum
    )


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    return [(bound, float(count)) for bound, count in histogram.cumulative()]


# --- TURN (per edge: a worker reports its own) --------------------------------------


def _turn(edge: TurnEdge) -> Iterator[Metric]:
    """The TURN relay's families, from one edge."""
    core = edge.core
    metrics = core.metrics
    live: Counter[tuple[str, str]] = Counter()
    permissions = channels = 0
    for allocation in core.allocations.values():
        transport = allocation.five_tuple.transport.value
        for family in allocation.relays:
            live[(transport, FAMILY_NAMES.get(family, str(family)))] += 1
        permissions += len(allocation.permissions)
        channels += len(allocation.bindings)
    allocations = GaugeMetricFamily(
        "passage_turn_allocations",
        "Relayed addresses held now, by client transport and relay address family "
        "(a dual-stack allocation counts once per family).",
        labels=["transport", "family"],
    )
    for (transport, family_name), count in sorted(live.items()):
        allocations.add_metric([transport, family_name], count)
    yield allocations
    yield _gauge("passage_turn_permissions", "Permissions installed now.", permissions)
    yield _gauge("passage_turn_channels", "Channel bindings now.", channels)
    yield _gauge(
        "passage_turn_connections",
        "TCP and TLS client connections open now (TLS handshakes excluded).",
        len(edge.streams),
    )
    yield _counter(
        "passage_turn_allocations_started", "Allocations started, by client transport.",
        ["transport"], [((k,), v) for k, v in metrics.starts.items()]
    )  # fmt: skip
    yield _counter(
        "passage_turn_allocations_ended", "Allocations ended, by reason.",
        ["reason"], [((k,), v) for k, v in metrics.ends.items()]
    )  # fmt: skip
    edge.collect_relayed()  # what the C router or the kernel relayed since the last flush
    relayed = core.relayed()
    byte_rows = []
    packet_rows = []
    for transport, (b2p, p2p, bfp, pfp) in relayed.items():
        byte_rows += [(("to_peer", transport), b2p), (("from_peer", transport), bfp)]
        packet_rows += [(("to_peer", transport), p2p), (("from_peer", transport), pfp)]
    yield _counter(
        "passage_turn_relayed_bytes",
        "Application bytes relayed, by direction (to_peer: from clients to peers) and "
        "client transport.",
        ["direction", "transport"], byte_rows,
    )  # fmt: skip
    yield _counter(
        "passage_turn_relayed_packets",
        "Packets relayed, by direction and client transport.",
        ["direction", "transport"], packet_rows,
    )  # fmt: skip
    yield _counter(
        "passage_turn_requests", "STUN/TURN requests received, by method.",
        ["method"], [((method_name(k),), v) for k, v in metrics.requests.items()]
    )  # fmt: skip
    yield _counter(
        "passage_turn_errors", "Error responses sent, by request method and error code.",
        ["method", "code"],
        [((method_name(m), str(c)), v) for (m, c), v in metrics.refusals.items()]
    )  # fmt: skip
    yield _counter(
        "passage_turn_drops", "Packets and connections dropped without an answer, by reason.",
        ["reason"], [((str(k),), v) for k, v in metrics.drops.items()]
    )  # fmt: skip
    yield _counter(
        "passage_turn_auth_failures", "Failed authentications, by cause.",
        ["cause"], [((k,), v) for k, v in metrics.auth_failures.items()]
    )  # fmt: skip


def _spill(spill: UsageSpill) -> Iterator[Metric]:
    """The spill file's families: records the store could not take while it was down."""
    yield _gauge(
        "passage_store_spill_waiting_records",
        "Usage records waiting in the data directory's spill file for the store to come back.",
        spill.records,
    )
    yield _counter(
        "passage_store_spilled_records",
        "Usage records moved from memory to the spill file (past --usage-buffer-records, or "
        "at stop) while the store was down.",
        [], [((), spill.spilled_total)],
    )  # fmt: skip


def _store(writes: LedgerWrites) -> Iterator[Metric]:
    """The usage ledger writes' families, from whoever writes the ledger."""
    yield _histogram(
        "passage_store_flush_duration_seconds",
        "Seconds each usage ledger write took (about one a flush interval).",
        writes.flush_latency,
    )
    yield _counter(
        "passage_store_flush_failures", "Usage ledger writes that failed (kept for retry).",
        [], [((), writes.flush_failures)],
    )  # fmt: skip
    yield _gauge(
        "passage_store_unsaved_records",
        "Usage records held in memory for the ledger (being written, or kept after a failure).",
        writes.unsaved_records,
    )
