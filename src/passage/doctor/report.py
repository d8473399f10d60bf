"""What ``passage doctor`` found, as typed values, and the one JSON document of ``--json``.

The probes (``passage.doctor.aio``) fill these in; :mod:`.verdict` judges
them; :mod:`.render` writes them for people, :func:`report_json` for
machines. JSON times are milliseconds (``*_ms``), rounded to 0.01 ms.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from passage.addresses import Address, format_address
from passage.stun.discovery import FilteringBehavior, MappingBehavior

from .stats import LoopStats
from .targets import Target

__all__ = [
    "JSON_VERSION",
    "CredentialsReport",
    "NatReport",
    "Outcome",
    "PathReport",
    "Report",
    "TransportResult",
    "Via",
    "shown_address",
    "report_json",
]

JSON_VERSION = 1
"""``version`` of the ``--json`` document; raised when a field changes meaning."""


class Outcome(enum.StrEnum):
    """How far one transport got towards the relay."""

    ALLOCATED = "allocated"
    """A TURN Allocate succeeded: the relay gave a relayed address."""
    ANSWERED = "answered"
    """A STUN Binding got its answer (no credentials, so no Allocate was tried)."""
    REFUSED = "refused"
    """The relay answered the Allocate with an error (``error_code``): it is
    reachable, the credentials or its limits are the problem."""
    NO_ANSWER = "no_answer"
    """Sent (over UDP, or over an open TCP/TLS connection), nothing came back."""
    CONNECT_FAILED = "connect_failed"
    """The TCP connection was refused, timed out or had no route."""
    TLS_FAILED = "tls_failed"
    """The TCP connection opened but the TLS handshake or certificate check failed."""


REACHED = frozenset({Outcome.ALLOCATED, Outcome.ANSWERED, Outcome.REFUSED})
"""Outcomes that prove packets reach the relay and its answers come back."""


@dataclass(frozen=True, slots=True)
class TransportResult:
    """One transport's probe."""

    target: Target
    outcome: Outcome
    seconds: float
    """From the start of the probe to its outcome."""
    detail: str = ""
    """Why it failed, in words ("401 Unauthorized", "connection refused")."""
    error_code: int | None = None
    mapped: Address | None = None
    """XOR-MAPPED-ADDRESS the relay saw this transport come from."""
    relayed: Address | None = None

    @property
    def reached(self) -> bool:
        """Packets get to the relay and answers come back (see :data:`REACHED`)."""
        return self.outcome in REACHED


@dataclass(frozen=True, slots=True)
class NatReport:
    """RFC 5780 NAT behaviour discovery over UDP; ``None`` fields were not learnt."""

    local: Address | None = None
    """The UDP socket's own address."""
    mapped: Address | None = None
    """Test I's XOR-MAPPED-ADDRESS: the address the internet sees."""
    other_address: Address | None = None
    """The server's OTHER-ADDRESS; None: it has no second address."""
    mapping: MappingBehavior | None = None
    filtering: FilteringBehavior | None = None
    alg: bool = False
    """MAPPED-ADDRESS and XOR-MAPPED-ADDRESS disagreed: something rewrote the answer."""
    note: str = ""
    """Why mapping or filtering is unknown."""

    @property
    def behind_nat(self) -> bool | None:
        """Whether the mapped address differs from the local one; None when unknown."""
        if self.local is None or self.mapped is None:
            return None
        return self.local != self.mapped


class Via(enum.StrEnum):
    """Where the probes of the measurement went."""

    RELAY = "relay"
    """Out through one allocation's relayed address, in through another's, and back."""
    SERVER = "server"
    """STUN Binding requests to the server and their answers (not through the relay)."""


@dataclass(frozen=True, slots=True)
class PathReport:
    """The round-trip, jitter and loss measurement on the best transport."""

    target: Target
    via: Via
    stats: LoopStats
    duration: float
    interval: float
    size: int
    note: str = ""
    """Why it went to the server and not through the relay."""


@dataclass(frozen=True, slots=True)
class CredentialsReport:
    """Where the TURN credentials came from; never the secret itself."""

    source: str
    """``connection-string``, ``token``, ``static``, ``data-dir`` or ``none``."""
    error: str | None = None
    """Why none could be had from that source."""


@dataclass(frozen=True, slots=True)
class Report:
    """Everything ``passage doctor`` says."""

    server: str
    credentials: CredentialsReport
    nat: NatReport
    transports: tuple[TransportResult, ...]
    path: PathReport | None
    media_path: str
    """The verdict (:class:`passage.doctor.verdict.MediaPath` value)."""
    summary: str
    """The verdict in a sentence."""
    exit_status: int


def report_json(report: Report) -> dict[str, Any]:
    """The ``--json`` document (see docs/doctor.md for every field)."""
    return {
        "version": JSON_VERSION,
        "server": report.server,
        "credentials": {"source": report.credentials.source, "error": report.credentials.error},
        "nat": _nat_json(report.nat),
        "transports": [_transport_json(result) for result in report.transports],
        "path": _path_json(report.path) if report.path is not None else None,
        "verdict": {"media_path": report.media_path, "summary": report.summary},
        "exit_status": report.exit_status,
    }


def _nat_json(nat: NatReport) -> dict[str, Any]:
    return {
        "local": shown_address(nat.local),
        "mapped": shown_address(nat.mapped),
        "other_address": shown_address(nat.other_address),
        "behind_nat": nat.behind_nat,
        "mapping": nat.mapping.value if nat.mapping else "unknown",
        "filtering": nat.filtering.value if nat.filtering else "unknown",
        "alg": nat.alg,
        "note": nat.note,
    }


def _transport_json(result: TransportResult) -> dict[str, Any]:
    return {
        "transport": result.target.transport.value,
        "host": result.target.host,
        "port": result.target.port,
        "outcome": result.outcome.value,
        "reached": result.reached,
        "ms": _ms(result.seconds),
        "detail": result.detail,
        "error_code": result.error_code,
        "mapped": shown_address(result.mapped),
        "relayed": shown_address(result.relayed),
    }


def _path_json(path: PathReport) -> dict[str, Any]:
    stats = path.stats
    return {
        "transport": path.target.transport.value,
        "port": path.target.port,
        "via": path.via.value,
        "note": path.note,
        "duration_s": path.duration,
        "interval_ms": _ms(path.interval),
        "size": path.size,
        "sent": stats.sent,
        "received": stats.received,
        "lost": stats.lost,
        "loss": round(stats.loss, 4),
        "duplicates": stats.duplicates,
        "reordered": stats.reordered,
        "rtt_ms": {
            "min": _ms(stats.rtt_min),
            "median": _ms(stats.rtt_median),
            "mean": _ms(stats.rtt_mean),
            "p95": _ms(stats.rtt_p95),
            "max": _ms(stats.rtt_max),
        },
        "jitter_ms": _ms(stats.jitter),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def shown_address(address: Address | None) -> str | None:
    """``ip:port`` (:func:`passage.addresses.format_address`); None for None."""
    return format_address(address) if address is not None else None
