"""The channel between ``passage serve`` and its worker processes: typed messages, framed.

A frame is a 4-byte big-endian length, then one message pickled. The channel is a
``socketpair`` between a parent and the children it spawned, never a network
socket, so nothing a client sends reaches it; even so the reader unpickles only
Passage's own classes and a few plain ones (:class:`ChannelError` for anything
else), and refuses frames over :data:`MAX_FRAME` bytes.

Parent → worker: :class:`Start` (once, first), :class:`Identity`, :class:`Admitted`,
:class:`EndAllocation`, :class:`HandOver`, :class:`Reload`, :class:`ClusterView`,
:class:`Drain`, :class:`Stop`.
Worker → parent: :class:`Ready`, :class:`Holding`, :class:`Admit`, :class:`Claim`,
:class:`Usage`, :class:`Snapshot`, :class:`Stopped`.

Sockets cannot be pickled: a kept port moving between workers goes over a second
channel, a Unix ``SOCK_SEQPACKET`` ``socketpair`` per worker (``passage.workers.aio.post``), each
datagram one :data:`POSTED` header with the socket attached (``SCM_RIGHTS``) or none.
"""

from __future__ import annotations

import enum
import io
import pickle
from dataclasses import dataclass
from struct import Struct

from passage.live import LiveAllocation, TurnCounters
from passage.usage import UsageRecord

__all__ = [
    "MAX_FRAME",
    "Admit",
    "Admitted",
    "ChannelError",
    "Claim",
    "ClusterView",
    "Drain",
    "EndAllocation",
    "FrameReader",
    "HandOver",
    "Holding",
    "Identity",
    "ListenerSocket",
    "Message",
    "POSTED",
    "Ready",
    "Reload",
    "Snapshot",
    "Start",
    "Stop",
    "Stopped",
    "Usage",
    "encode",
    "reservation_owner",
    "reservation_prefix",
]

MAX_FRAME = 64 << 20
"""Largest frame read: a usage batch of some 100,000 allocations, far more than one second
of any worker's records."""

_LENGTH = Struct("!I")

POSTED = Struct("!QB")
"""A posted socket's header: the number it answers (a :class:`Claim`'s ``request`` or a
:class:`HandOver`'s ``claim``) and its address family (0 when no socket is attached)."""

_PREFIX = Struct("!H")


def reservation_prefix(index: int) -> bytes:
    """What every RESERVATION-TOKEN worker ``index`` mints starts with: any worker can
    tell from a token which one keeps its port."""
    return _PREFIX.pack(index)


def reservation_owner(token: bytes) -> int:
    """The worker whose :func:`reservation_prefix` ``token`` starts with (0: none could)."""
    return _PREFIX.unpack_from(token)[0] if len(token) >= _PREFIX.size else 0


class ChannelError(Exception):
    """The other end sent what no Passage process sends: the channel must be closed."""


@dataclass(frozen=True, slots=True)
class ListenerSocket:
    """One client-facing socket the parent bound and the worker inherits (``pass_fds``)."""

    transport: str
    """``udp``, ``tcp`` or ``tls``."""
    fd: int
    """Its descriptor number in the worker."""


@dataclass(frozen=True, slots=True)
class Start:
    """Everything a worker needs to serve: sent once, first."""

    index: int
    """This worker's number, 1 to N; the same for the process that replaces it."""
    nonce_key: bytes
    """The key every worker mints and checks nonces with, so a nonce holds on any of them."""
    config: object
    """The parent's ``passage.config.Config``."""
    datadir: object
    """The parent's ``passage.datadir.DataDir`` (TLS material, REST secrets)."""
    identity: object
    """The parent's ``IdentityState`` at the time of the start."""
    listeners: tuple[ListenerSocket, ...]


@dataclass(frozen=True, slots=True)
class Identity:
    """Keys or revocations changed: the parent's whole ``IdentityState`` now."""

    state: object


@dataclass(frozen=True, slots=True)
class Admitted:
    """The answer to :class:`Admit` ``request``: granted, or refused with why."""

    request: int
    granted: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class EndAllocation:
    """An operator ends this allocation (the console): the worker holding it ends it."""

    allocation_id: str


@dataclass(frozen=True, slots=True)
class HandOver:
    """Another worker's client presents ``token``: post the socket of the port kept for it,
    under ``claim`` (no socket attached when it is not kept here), and forget it."""

    claim: int
    token: bytes


@dataclass(frozen=True, slots=True)
class Reload:
    """A reload (SIGHUP): the TURN policy, credentials, certificate and log level of
    ``config`` and ``datadir`` (a ``Config`` and a ``DataDir``) apply from now on."""

    config: object
    datadir: object


@dataclass(frozen=True, slots=True)
class ClusterView:
    """Cluster mode: what the parent knows of the cluster that decides a new Allocate
    here, sent when it changes (and to a restarted worker)."""

    full_alternates: object
    """Where a new Allocate goes (300) when this node is full: the least loaded other live
    node (a ``passage.turn.alternate.Alternates``; empty: 486)."""
    store_stale: bool
    """The store has been unreachable past ``--store-staleness``: credentials whose
    standing it holds get no new allocation (403)."""


@dataclass(frozen=True, slots=True)
class Drain:
    """SIGTERM on the parent: new Allocates get 300 to one of ``alternates`` (a
    ``passage.turn.alternate.Alternates``); live allocations carry on."""

    alternates: object


@dataclass(frozen=True, slots=True)
class Stop:
    """End every allocation, send the last usage, answer :class:`Stopped`, exit."""


@dataclass(frozen=True, slots=True)
class Ready:
    """The worker serves on every inherited socket."""

    pid: int


@dataclass(frozen=True, slots=True)
class Holding:
    """How many allocation-quota units (allocations, pending or live, and kept ports) this
    worker holds for ``quota_key`` now; sent at every change, so the parent's sum is exact."""

    quota_key: str
    held: int


@dataclass(frozen=True, slots=True)
class Admit:
    """May this worker hold ``held`` units of ``quota_key`` (its pending Allocate counted),
    and ``extra`` more soon (a port EVEN-PORT(R) keeps)? Answered by :class:`Admitted`."""

    request: int
    quota_key: str
    held: int
    extra: int


@dataclass(frozen=True, slots=True)
class Claim:
    """A client here presents ``token``, minted by another worker: the parent has that
    worker hand the kept port over and posts it here under ``request`` (or posts nothing
    attached when no worker keeps it)."""

    request: int
    token: bytes


@dataclass(frozen=True, slots=True)
class Usage:
    """Usage records for the ledger, as ``TurnServer.collect_usage`` made them."""

    records: tuple[UsageRecord, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the console shows of this worker now: its allocations and counters (sent every
    usage flush interval)."""

    allocations: tuple[LiveAllocation, ...]
    counters: TurnCounters
    metrics: tuple[object, ...] = ()
    """Its TURN and store metric families as plain data (``passage.scrape.turn_families``)."""


@dataclass(frozen=True, slots=True)
class Stopped:
    """The worker ended its allocations and sent their last usage before this."""


Message = (
    Start | Identity | Admitted | EndAllocation | HandOver | Reload | ClusterView | Drain | Stop
    | Ready | Holding | Admit | Claim | Usage | Snapshot | Stopped
)  # fmt: skip

_MESSAGES = (
    Start, Identity, Admitted, EndAllocation, HandOver, Reload, ClusterView, Drain, Stop,
    Ready, Holding, Admit, Claim, Usage, Snapshot, Stopped,
)  # fmt: skip

_PLAIN = {
    ("builtins", "frozenset"),
    ("builtins", "set"),
    ("collections", "Counter"),
    ("pathlib", "PosixPath"),
    ("pathlib", "Path"),
}
"""Classes outside Passage the configuration and identity state are built from."""


def encode(message: Message) -> bytes:
    """One frame carrying ``message``."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if len(body) > MAX_FRAME:
        raise ValueError(f"message of {len(body)} bytes is over the {MAX_FRAME}-byte frame limit")
    return _LENGTH.pack(len(body)) + body


def _enum_member(kind: object, name: str) -> enum.Enum:
    """What ``getattr`` may do in a frame: name a member of one of Passage's enums. Some
    Python 3.11 releases (Debian's 3.11.2, the system Python of the container image's
    base) pickle enum members as ``getattr(EnumClass, "NAME")``; 3.11.7 by value."""
    if (
        isinstance(kind, type)
        and issubclass(kind, enum.Enum)
        and kind.__module__.partition(".")[0] == "passage"
        and name in kind.__members__
    ):
        return kind[name]
    raise ChannelError(f"frame asks for {name!r} of {kind!r}, which no message holds")


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if module == "passage" or module.startswith("passage.") or (module, name) in _PLAIN:
            return super().find_class(module, name)
        if (module, name) == ("builtins", "getattr"):
            return _enum_member
        raise ChannelError(f"frame names {module}.{name}, which no message holds")


class FrameReader:
    """Bytes in, messages out: feed what the socket read, in any pieces."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        """The messages completed by ``data``; raises :class:`ChannelError` on a frame over
        :data:`MAX_FRAME`, one that does not unpickle, or one that is not a message."""
        self._buffer += data
        messages: list[Message] = []
        while len(self._buffer) >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(self._buffer)
            if size > MAX_FRAME:
                raise ChannelError(f"frame of {size} bytes announced, over {MAX_FRAME}")
            end = _LENGTH.size + size
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[_LENGTH.size : end])
            del self._buffer[:end]
            messages.append(_decode(body))
        return messages

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held: nonzero at EOF means the sender died mid-frame."""
        return len(self._buffer)


def _decode(body: bytes) -> Message:
    try:
        message = _Unpickler(io.BytesIO(body)).load()
    except ChannelError:
        raise
    except Exception as error:  # pickle raises many kinds on garbage
        raise ChannelError(f"frame does not decode: {type(error).__name__}") from None
    if not isinstance(message, _MESSAGES):
        raise ChannelError(f"frame holds a {type(message).__name__}, not a message")
    return message
