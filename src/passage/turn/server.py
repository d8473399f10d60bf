"""The TURN server core (RFC 8656), sans-IO, with time passed in.

Feed it what clients send (``receive``), answer its ``BindRelay`` requests
(``relay_bound`` / ``relay_bind_failed``), tell it when a stream client goes
away (``client_closed``), and call ``handle_timer`` when ``get_timer`` says.
Each call returns the actions to carry out, in order. ChannelData never comes
here: the adapter relays it from the allocation's ``routes`` tables.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from passage.addresses import Address, AddressFamily, Transport, format_address
from passage.limiter import AnswerLimiter, FailureLimiter
from passage.stun import (
    AddressErrorCodeValue,
    AttributeType,
    AttributeValue,
    ErrorCode,
    ErrorCodeValue,
    Message,
    MessageClass,
    Method,
    StunDecodeError,
    decode_message,
    decode_send_indication,
    encode_data_indication,
    encode_message,
)
from passage.turn.allocation import Allocation, Reservation, Route
from passage.turn.alternate import Alternate, Alternates
from passage.turn.auth import (
    SUPPORTED_PASSWORD_ALGORITHMS,
    Authenticated,
    AuthenticationFailed,
    Authenticator,
    CredentialSource,
)
from passage.turn.binding import AlternateAddresses, answer_binding
from passage.turn.config import TurnConfig
from passage.turn.errors import DropReason, TurnError
from passage.turn.events import (
    Action,
    AllocationEnded,
    AllocationStarted,
    BindRelay,
    FindReservation,
    FiveTuple,
    ReleaseRelay,
    SendToClient,
    SendToPeer,
)
from passage.turn.nonce import NonceIssuer
from passage.turn.own_addresses import OwnAddresses
from passage.turn.peers import PeerPolicy
from passage.usage import UsageRecord

UDP_PROTOCOL = 17
"""REQUESTED-TRANSPORT value for UDP (RFC 8656 §14.7); the only one we relay."""

CHANNEL_MIN = 0x4000
CHANNEL_MAX = 0x4FFF
"""Highest channel number of RFC 8656 §12."""
CHANNEL_MAX_RFC5766 = 0x7FFF
"""Highest channel number of RFC 5766 §11, still used by older clients."""

SWEEP_INTERVAL = 1.0
"""Seconds between expiry sweeps; also the bandwidth-budget window."""

SERVER_QUOTA_REASON = "Server allocation quota reached"
"""The 486 reason when the whole server is full (``max_allocations_total``); a worker's
parent refuses with the same words (``passage.workers.quota``)."""

RESERVATION_TOKEN_SIZE = 8
"""Bytes of a RESERVATION-TOKEN (RFC 8656 §14.9), a worker's prefix included."""

IDLE_RECORD_INTERVAL = 30.0
"""An idle allocation still writes a usage record this often, so its duration is metered."""

_UNLIMITED = 1 << 62


@dataclass(slots=True)
class _Request:
    message: Message
    five_tuple: FiveTuple
    now: float
    auth: Authenticated | None = None


@dataclass(slots=True)
class _PendingAllocate:
    request: _Request
    lifetime: int
    families: tuple[int, ...]
    reserve_next: bool
    missing_family: int | None
    """A family of a dual allocation we could not serve (ADDRESS-ERROR-CODE 440)."""


class _Drop(Exception):
    def __init__(self, reason: DropReason) -> None:
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Refused:
    """A request answered with an error: for the operator's log, never sent anywhere."""

    five_tuple: FiveTuple
    method: int
    code: int
    detail: str


@dataclass(slots=True)
class Metrics:
    """Counters an operator reads (the ``stats:`` line, ``/metrics``): drops and refusals by
    reason, auth failures by cause, requests by method, allocations by transport and end.

    Plain integers, added to where things happen and read at scrape time; none is
    touched per relayed packet (relayed bytes are the allocations' own meters)."""

    drops: Counter[str] = field(default_factory=Counter)
    errors: Counter[int] = field(default_factory=Counter)
    """Error answers by code."""
    refusals: Counter[tuple[int, int]] = field(default_factory=Counter)
    """Error answers by (method, code)."""
    requests: Counter[int] = field(default_factory=Counter)
    """STUN requests received, by method (decoded ones; unknown methods included)."""
    auth_failures: Counter[str] = field(default_factory=Counter)
    allocations_started: int = 0
    allocations_ended: int = 0
    starts: Counter[str] = field(default_factory=Counter)
    """Allocations started, by client transport (``udp``, ``tcp``, ``tls``)."""
    ends: Counter[str] = field(default_factory=Counter)
    """Allocations ended, by reason (``expired``, ``refresh_zero``, ``client_closed``...)."""
    relayed: dict[str, list[int]] = field(default_factory=dict)
    """Client transport → [bytes to peer, packets to peer, bytes from peer, packets from
    peer] of every usage record collected so far (``TurnServer.relayed`` adds the rest)."""


class RandomSource(Protocol):
    """Where the core's random parts come from (``random.Random`` is one)."""

    def randbytes(self, n: int, /) -> bytes: ...


class TurnServer:
    """One TURN server core: all allocations of one process."""

    def __init__(
        self,
        config: TurnConfig,
        credentials: CredentialSource,
        *,
        nonce_key: bytes,
        rng: RandomSource,
        relay_families: frozenset[int] = frozenset({AddressFamily.IPV4}),
        on_refused: Callable[[Refused], None] | None = None,
        alternates: AlternateAddresses | None = None,
        own_addresses: OwnAddresses | None = None,
        on_quota: Callable[[str, int], None] | None = None,
    ) -> None:
        """``rng`` draws the core's random parts (allocation IDs, reservation tokens, Data
        indication transaction IDs): the adapter passes a seeded ``random.Random``.
        ``alternates``: the four RFC 5780 transport addresses, when there is a second IP.
        ``own_addresses``: this server's listeners and relay sockets, which the peer
        policy refuses and lets through respectively (``turn/own_addresses.py``).
        ``on_quota(quota_key, held)`` hears every change of what a quota key holds, for
        an adapter that shares the quota with other processes (``passage.workers``)."""
        self.config = config
        self.auth = Authenticator(
            config.realm, credentials, NonceIssuer(nonce_key, config.nonce_lifetime)
        )
        self.peers = PeerPolicy.from_config(
            allow_loopback=config.allow_loopback_peers,
            allowed=config.allowed_peer_ranges,
            denied=config.denied_peer_ranges,
            own=own_addresses,
        )
        self.relay_families = relay_families
        self.alternates = alternates
        self.allocations: dict[FiveTuple, Allocation] = {}
        self.metrics = Metrics()
        self._failures = FailureLimiter(config.auth_failures_per_minute, 60.0)
        self._unauthenticated = AnswerLimiter(
            config.unauthenticated_answers_per_second, config.unauthenticated_answer_burst
        )
        self._pending: dict[FiveTuple, _PendingAllocate] = {}
        self._reservations: dict[bytes, Reservation] = {}
        self._per_user: Counter[str] = Counter()
        """Allocations (live or binding) per quota key (``Credential.quota_key``)."""
        self.allocations_elsewhere: Mapping[str, int] = {}
        """Cluster mode: allocations per quota key on the cluster's other nodes, as the
        adapter last read them (about once a second); ``max_allocations_per_user`` counts
        them too."""
        self._on_quota = on_quota
        self._ended: list[tuple[Allocation, float, str, str]] = []
        """Allocations ended since the last usage collection, with when and why: their final
        records are built at collection, so bytes an adapter adds to their meters after the
        end (a kernel fast path's last counts) are in them."""
        self._next_sweep: float | None = None
        self._rng = rng
        self._on_refused = on_refused
        self._budget = config.max_bytes_per_second or _UNLIMITED
        self._channel_max = CHANNEL_MAX if config.strict_channel_range else CHANNEL_MAX_RFC5766
        self.draining = False
        """Set by :meth:`start_draining`: new Allocates go elsewhere, the rest carries on."""
        self.drain_alternates = Alternates()
        self.full_alternates = Alternates()
        """Cluster mode: where a new Allocate goes (300) when this server is full; none: 486."""
        self.store_stale = False
        """Cluster mode: the store has been unreachable longer than the revocations may be
        trusted; credentials whose standing it holds get no new allocation (403)."""
        self.reservation_prefix = b""
        """Set by a worker of ``passage serve --workers N``: every RESERVATION-TOKEN it
        mints starts with it, and a token that starts otherwise is another worker's, asked
        for with :class:`FindReservation` rather than answered 508 here."""

    def start_draining(self, alternates: Alternates) -> None:
        """A drain: every new Allocate (a reserved port's included) gets 300 Try Alternate
        naming one of ``alternates`` of the client's family, or 403 when there is none.
        Refreshes, permissions, channels and data of live allocations carry on (RFC 8656
        §7.2 leaves the redirect to the server; RFC 8489 §10 has it authenticate first)."""
        self.draining = True
        self.drain_alternates = alternates

    def reconfigure(self, config: TurnConfig, credentials: CredentialSource) -> None:
        """A reload: ``config``'s quotas, lifetimes, bandwidth cap, peer ranges and SOFTWARE,
        and ``credentials``, from the next request on.

        Live allocations keep what they were granted (a lifetime, a permission) until they
        refresh it; a new bandwidth cap applies from the next budget refill (a second). The
        realm, nonce lifetime, rate limiters and channel range stay as they started: they
        are built into state a restart renews. Raises :class:`ValueError` for a peer range
        that does not parse, before anything changes.
        """
        peers = PeerPolicy.from_config(
            allow_loopback=config.allow_loopback_peers,
            allowed=config.allowed_peer_ranges,
            denied=config.denied_peer_ranges,
            own=self.peers.own,
        )
        started = self.config
        self.config = dataclasses.replace(
            config,
            realm=started.realm,
            nonce_lifetime=started.nonce_lifetime,
            auth_failures_per_minute=started.auth_failures_per_minute,
            unauthenticated_answers_per_second=started.unauthenticated_answers_per_second,
            unauthenticated_answer_burst=started.unauthenticated_answer_burst,
            strict_channel_range=started.strict_channel_range,
        )
        self.peers = peers
        self.auth.source = credentials
        self._budget = config.max_bytes_per_second or _UNLIMITED

    def set_own_addresses(self, own: OwnAddresses) -> None:
        """The host's addresses changed (an interface came or went): check peers against these."""
        self.peers = dataclasses.replace(self.peers, own=own)

    # -- inputs ------------------------------------------------------------

    def receive(self, data: bytes, five_tuple: FiveTuple, now: float) -> list[Action]:
        """Handle one STUN message from a client; return what to do about it."""
        if self._next_sweep is None:
            self._next_sweep = now + SWEEP_INTERVAL
        plain = decode_send_indication(data)  # the common Send, without building a Message
        if plain is not None:
            return self._relay_send(five_tuple, plain[0], plain[1])
        try:
            message = decode_message(data)
        except StunDecodeError:
            self.metrics.drops[DropReason.MALFORMED] += 1
            return []
        request = _Request(message, five_tuple, now)
        if message.message_class is MessageClass.REQUEST:
            self.metrics.requests[message.method] += 1
        handler = _HANDLERS.get((message.method, message.message_class))
        try:
            unknown = message.unknown_comprehension_required()
            if message.message_class is not MessageClass.REQUEST:
                # RFC 8489 §6.3.2/§6.3.3: unknown required attributes discard an
                # indication; a client has no business sending us responses.
                if message.message_class is not MessageClass.INDICATION:
                    raise _Drop(DropReason.NOT_A_REQUEST)
                if handler is None:
                    raise _Drop(DropReason.UNKNOWN_METHOD_INDICATION)
                if unknown:
                    raise _Drop(DropReason.UNKNOWN_ATTRIBUTE)
                return handler(self, request)
            if unknown:
                attributes = [(AttributeType.UNKNOWN_ATTRIBUTES, unknown)]
                raise TurnError(ErrorCode.UNKNOWN_ATTRIBUTE, attributes=attributes)
            if handler is None:
                raise TurnError(ErrorCode.BAD_REQUEST, "Unsupported method")
            return handler(self, request)
        except _Drop as drop:
            return self._dropped(drop.reason)
        except AuthenticationFailed as failure:
            if not self._may_answer_unauthenticated(request):
                return self._dropped(DropReason.UNAUTHENTICATED_RATE_LIMITED)
            return [self._answer_challenge(request, failure)]
        except TurnError as error:
            if request.auth is None and not self._may_answer_unauthenticated(request):
                return self._dropped(DropReason.UNAUTHENTICATED_RATE_LIMITED)
            return [self._answer_error(request, error)]

    def relay_bound(
        self, five_tuple: FiveTuple, relays: Sequence[Route], reserved: Route | None, now: float
    ) -> list[Action]:
        """The adapter bound the sockets a ``BindRelay`` asked for, in its family order."""
        pending = self._pending.pop(five_tuple, None)
        if pending is None:  # the client went away while we were binding
            extra = [reserved] if reserved is not None else []
            return [ReleaseRelay(route[0]) for route in [*relays, *extra]]
        routes = dict(zip(pending.families, relays, strict=True))
        allocation = self._start_allocation(pending, routes, now)
        extra_attributes: list[tuple[int, AttributeValue]] = []
        if reserved is not None:
            prefix = self.reservation_prefix
            token = prefix + self._rng.randbytes(RESERVATION_TOKEN_SIZE - len(prefix))
            quota_key = allocation.quota_key
            self._reservations[token] = Reservation(
                reserved, pending.families[0], now + self.config.reservation_lifetime, quota_key
            )
            self._take_quota(quota_key)  # the kept port is the maker's until taken
            extra_attributes.append((AttributeType.RESERVATION_TOKEN, token))
        return self._allocate_success(pending, allocation, extra_attributes)

    def reservation_found(
        self, five_tuple: FiveTuple, route: Route, family: int, now: float
    ) -> list[Action]:
        """The adapter took over the port another process kept for a ``FindReservation``
        (``route``, of ``family``): the allocation starts on it."""
        pending = self._pending.pop(five_tuple, None)
        if pending is None:  # the client went away while we were asking
            return [ReleaseRelay(route[0])]
        pending = dataclasses.replace(pending, families=(family,))
        allocation = self._start_allocation(pending, {family: route}, now)
        return self._allocate_success(pending, allocation, [])

    def reservation_missing(self, five_tuple: FiveTuple, now: float) -> list[Action]:
        """No process holds a ``FindReservation``'s token (unknown, used or expired): 508."""
        pending = self._pending.pop(five_tuple, None)
        if pending is None:
            return []
        assert pending.request.auth is not None
        self._release_quota(pending.request.auth.credential.quota_key)
        error = TurnError(ErrorCode.INSUFFICIENT_CAPACITY, "Unknown reservation token")
        return [self._answer_error(pending.request, error)]

    def hand_over_reservation(self, token: bytes, now: float) -> Reservation | None:
        """Another process's client presents ``token``: forget the port it keeps here (and
        its quota unit) and return it for the adapter to pass on; None if it is not held
        here or has expired. The adapter closes its copy of the socket once it is sent."""
        reservation = self._reservations.get(token)
        if reservation is None or reservation.expires_at <= now:
            return None
        del self._reservations[token]
        self._release_quota(reservation.quota_key)
        return reservation

    def relay_bind_failed(self, five_tuple: FiveTuple, now: float) -> list[Action]:
        """The adapter could not bind (port range exhausted): answer 508."""
        pending = self._pending.pop(five_tuple, None)
        if pending is None:
            return []
        assert pending.request.auth is not None
        self._release_quota(pending.request.auth.credential.quota_key)
        error = TurnError(ErrorCode.INSUFFICIENT_CAPACITY, "No relay port available")
        return [self._answer_error(pending.request, error)]

    def relay_quota_refused(self, five_tuple: FiveTuple, reason: str, now: float) -> list[Action]:
        """The quota shared with other processes has no room for this ``BindRelay``: 486,
        or 300 to a ``full_alternates`` node when the whole server is full
        (:data:`SERVER_QUOTA_REASON`), as when this core finds it full itself."""
        pending = self._pending.pop(five_tuple, None)
        if pending is None:
            return []
        request = pending.request
        assert request.auth is not None
        self._release_quota(request.auth.credential.quota_key)
        error = TurnError(ErrorCode.ALLOCATION_QUOTA_REACHED, reason)
        if reason == SERVER_QUOTA_REASON:
            error = self._full(request) or error
        return [self._answer_error(request, error)]

    def quota_held(self, quota_key: str) -> int:
        """Units ``quota_key`` holds here: allocations being bound or live, kept ports."""
        return self._per_user[quota_key]

    def client_closed(self, five_tuple: FiveTuple, now: float) -> list[Action]:
        """A TCP or TLS client connection closed: its allocation goes with it (RFC 8656 §3.1)."""
        pending = self._pending.pop(five_tuple, None)
        if pending is not None and pending.request.auth is not None:
            self._release_quota(pending.request.auth.credential.quota_key)
        allocation = self.allocations.get(five_tuple)
        return self._end(allocation, "client_closed", now) if allocation else []

    def end_allocation(self, allocation_id: str, now: float) -> list[Action] | None:
        """End the allocation with ``allocation_id`` at an operator's word (reason
        ``operator``); None if there is none. Its client's next request gets 437."""
        for allocation in self.allocations.values():
            if allocation.id == allocation_id:
                return self._end(allocation, "operator", now)
        return None

    def get_timer(self) -> float | None:
        """When ``handle_timer`` wants calling next (None: nothing scheduled)."""
        return self._next_sweep

    def handle_timer(self, now: float) -> list[Action]:
        """Expire allocations, permissions, bindings and reservations; refill budgets."""
        if self._next_sweep is None or now < self._next_sweep:
            return []
        self._next_sweep = now + SWEEP_INTERVAL
        actions: list[Action] = []
        for allocation in list(self.allocations.values()):
            if allocation.expires_at <= now:
                actions += self._end(allocation, "expired", now)
            else:
                allocation.sweep(now)
                allocation.budget = self._budget
        for token, reservation in list(self._reservations.items()):
            if reservation.expires_at <= now:
                del self._reservations[token]
                self._release_quota(reservation.quota_key)
                actions.append(ReleaseRelay(reservation.route[0]))
        self._failures.forget_expired(now)
        self._unauthenticated.forget_full(now)
        return actions

    def shutdown(self, now: float) -> list[Action]:
        """End every allocation (reason ``shutdown``) and release every socket."""
        actions: list[Action] = []
        for allocation in list(self.allocations.values()):
            actions += self._end(allocation, "shutdown", now)
        for reservation in self._reservations.values():
            self._release_quota(reservation.quota_key)
            actions.append(ReleaseRelay(reservation.route[0]))
        self._reservations.clear()
        return actions

    def collect_usage(self, now: float) -> list[UsageRecord]:
        """Usage records since the last call: ended allocations, busy ones, idle heartbeats."""
        ended, self._ended = self._ended, []
        records = [self._record(a, at, reason, relayed) for a, at, reason, relayed in ended]
        for allocation in self.allocations.values():
            deltas = allocation.unflushed()
            if any(deltas) or now - allocation.flushed_at >= IDLE_RECORD_INTERVAL:
                records.append(self._record(allocation, now, None))
        return records

    def relayed(self) -> dict[str, tuple[int, int, int, int]]:
        """Bytes and packets relayed since start, per client transport: (to peer bytes,
        packets, from peer bytes, packets). Read at scrape time: what collected records
        counted plus what live and just-ended allocations hold unflushed."""
        totals = {transport: list(row) for transport, row in self.metrics.relayed.items()}
        pending = [entry[0] for entry in self._ended] + list(self.allocations.values())
        for allocation in pending:
            row = totals.setdefault(allocation.five_tuple.transport.value, [0, 0, 0, 0])
            for index, delta in enumerate(allocation.unflushed()):
                row[index] += delta
        return {transport: (row[0], row[1], row[2], row[3]) for transport, row in totals.items()}

    # -- request handlers (RFC 8656 §7-§11), dispatched by (method, class) --

    def _handle_binding_request(self, request: _Request) -> list[Action]:
        """RFC 8489 §6.3.1 and RFC 5780 §6.1 (``turn/binding.py``); no authentication."""
        answer = answer_binding(request.message, request.five_tuple, self.alternates)
        data = self._encode(request, MessageClass.SUCCESS, answer.attributes)
        return [SendToClient(answer.five_tuple, data)]

    def _handle_allocate_request(self, request: _Request) -> list[Action]:
        """RFC 8656 §7.2, steps in the RFC's order."""
        self._authenticate(request)
        existing = self.allocations.get(request.five_tuple)
        if existing is not None:
            if existing.transaction_id == request.message.transaction_id:
                return [SendToClient(request.five_tuple, existing.response)]
            raise TurnError(ErrorCode.ALLOCATION_MISMATCH)
        if self.draining:
            raise self._elsewhere(request)
        if self.store_stale and request.auth is not None and request.auth.credential.from_store:
            raise TurnError(ErrorCode.FORBIDDEN, "Revocations unknown: the store is unreachable")
        if request.five_tuple in self._pending:
            raise _Drop(DropReason.ALLOCATE_IN_PROGRESS)  # the answer is on its way
        message = request.message
        transport = message.get(AttributeType.REQUESTED_TRANSPORT, int)
        if transport is None:
            raise TurnError(ErrorCode.BAD_REQUEST, "Missing REQUESTED-TRANSPORT")
        if transport != UDP_PROTOCOL:
            raise TurnError(ErrorCode.UNSUPPORTED_TRANSPORT_PROTOCOL)
        families, missing = self._allocation_families(message)
        token = message.get(AttributeType.RESERVATION_TOKEN, bytes)
        even_port = message.get(AttributeType.EVEN_PORT, bool)
        # A kept port (EVEN-PORT R) counts like an allocation until its token is used;
        # using a token turns a counted port into an allocation, adding none.
        ports = 0 if token is not None else (2 if even_port is True else 1)
        self._check_allocation_quota(request, ports, 1 if token is not None else ports)
        lifetime = self._allocate_lifetime(message)
        if token is not None:
            return self._allocate_from_reservation(request, token, lifetime)
        pending = _PendingAllocate(request, lifetime, families, even_port is True, missing)
        self._pending[request.five_tuple] = pending
        assert request.auth is not None
        quota_key = request.auth.credential.quota_key
        self._take_quota(quota_key)
        return [
            BindRelay(
                request.five_tuple,
                families,
                even_port=even_port is not None,
                reserve_next=even_port is True,
                dont_fragment=message.has(AttributeType.DONT_FRAGMENT),
                quota_key=quota_key,
                units=ports,
            )
        ]

    def _handle_refresh_request(self, request: _Request) -> list[Action]:
        """RFC 8656 §7.3: extend, or delete with lifetime 0 (one family of a dual allocation)."""
        allocation = self._own_allocation(request)
        message = request.message
        family = message.get(AttributeType.REQUESTED_ADDRESS_FAMILY, int)
        if family is not None and family not in allocation.relays:
            raise TurnError(ErrorCode.PEER_ADDRESS_FAMILY_MISMATCH)
        requested = message.get(AttributeType.LIFETIME, int)
        if requested is None:
            requested = self.config.default_lifetime
        lifetime = min(requested, self.config.max_lifetime)
        answer = self._answer(request, [(AttributeType.LIFETIME, lifetime)])
        if lifetime > 0:
            allocation.expires_at = request.now + lifetime
            return [answer]
        if family is not None and len(allocation.relays) > 1:
            route = allocation.release_family(family)
            released: list[Action] = [ReleaseRelay(route[0])] if route else []
            return [answer, *released]
        return [answer, *self._end(allocation, "refresh_zero", request.now)]

    def _handle_create_permission_request(self, request: _Request) -> list[Action]:
        """RFC 8656 §9.2: every XOR-PEER-ADDRESS must pass, or none is installed."""
        allocation = self._own_allocation(request)
        peers = _addresses(request.message, AttributeType.XOR_PEER_ADDRESS)
        if not peers:
            raise TurnError(ErrorCode.BAD_REQUEST, "Missing XOR-PEER-ADDRESS")
        for peer in peers:
            self._check_peer(allocation, peer[0], None)  # a permission is for any port
        self._check_permission_quota(allocation, {peer[0] for peer in peers})
        expires_at = request.now + self.config.permission_lifetime
        for peer in peers:
            allocation.install_permission(peer[0], expires_at)
        return [self._answer(request, [])]

    def _handle_channel_bind_request(self, request: _Request) -> list[Action]:
        """RFC 8656 §11.2: bind or refresh a channel, with its permission."""
        allocation = self._own_allocation(request)
        channel = request.message.get(AttributeType.CHANNEL_NUMBER, int)
        peers = _addresses(request.message, AttributeType.XOR_PEER_ADDRESS)
        if channel is None or not peers:
            raise TurnError(ErrorCode.BAD_REQUEST, "Missing CHANNEL-NUMBER or XOR-PEER-ADDRESS")
        peer = peers[0]
        if not CHANNEL_MIN <= channel <= self._channel_max:
            raise TurnError(ErrorCode.BAD_REQUEST, "Channel number out of range")
        bound = allocation.bindings.get(channel)
        if bound is not None and bound != peer:
            raise TurnError(ErrorCode.BAD_REQUEST, "Channel already bound to another peer")
        if any(p == peer and ch != channel for ch, p in allocation.bindings.items()):
            raise TurnError(ErrorCode.BAD_REQUEST, "Peer already bound to another channel")
        self._check_peer(allocation, peer[0], peer[1])
        self._check_permission_quota(allocation, {peer[0]})
        if bound is None and len(allocation.bindings) >= self.config.max_channels_per_allocation:
            raise TurnError(ErrorCode.INSUFFICIENT_CAPACITY, "Too many channels")
        allocation.install_permission(peer[0], request.now + self.config.permission_lifetime)
        allocation.bind_channel(channel, peer, request.now + self.config.channel_lifetime)
        return [self._answer(request, [])]

    def _handle_send_indication(self, request: _Request) -> list[Action]:
        """RFC 8656 §10.2 for a Send indication ``decode_send_indication`` declined."""
        peers = _addresses(request.message, AttributeType.XOR_PEER_ADDRESS)
        data = request.message.get(AttributeType.DATA, bytes)
        if not peers or data is None:
            raise _Drop(DropReason.BAD_SEND_INDICATION)
        return self._relay_send(request.five_tuple, peers[0], data)

    def _relay_send(self, five_tuple: FiveTuple, peer: Address, data: bytes) -> list[Action]:
        """RFC 8656 §10.2: relay DATA to a permitted peer; anything else is dropped, counted."""
        allocation = self.allocations.get(five_tuple)
        if allocation is None:
            return self._dropped(DropReason.NO_ALLOCATION)
        if peer[0] not in allocation.permissions:
            return self._dropped(DropReason.NO_PERMISSION)
        if self.peers.check_transport(peer[0], peer[1]) is not None:
            return self._dropped(DropReason.PEER_DENIED)
        route = allocation.relay_for(peer[0])
        if route is None:
            return self._dropped(DropReason.PEER_FAMILY_MISMATCH)
        allocation.budget -= len(data)
        if allocation.budget < 0:
            return self._dropped(DropReason.BANDWIDTH_EXCEEDED)
        allocation.bytes_to_peer += len(data)
        allocation.packets_to_peer += 1
        return [SendToPeer(route[0], peer, data)]

    def _dropped(self, reason: DropReason) -> list[Action]:
        self.metrics.drops[reason] += 1
        return []

    # -- checks ------------------------------------------------------------

    def _authenticate(self, request: _Request) -> Authenticated:
        """RFC 8489 §9.2.4 for ``request``.

        A source IP past its failure limit gets no answer to further failures:
        no 401 to reflect, nothing to learn from. Its correct credentials and
        first challenges still pass, so one misbehaving client behind a shared
        NAT address does not lock out everyone else there.
        """
        ip = request.five_tuple.client[0]
        try:
            request.auth = self.auth.authenticate(request.message, ip, request.now)
        except AuthenticationFailed as failure:
            if failure.counts_as_failure:
                if self._failures.blocked(ip, request.now):
                    raise _Drop(DropReason.AUTH_RATE_LIMITED) from None
                self._failures.record_failure(ip, request.now)
                self.metrics.auth_failures[failure.why] += 1
            raise
        return request.auth

    def _may_answer_unauthenticated(self, request: _Request) -> bool:
        """False when a UDP source has had its share of unauthenticated answers.

        Over UDP the source address is whatever the sender wrote, so an answer
        to a request that proved nothing may be aimed at a victim; over TCP and
        TLS the handshake proved the address and nothing is reflected.
        """
        if request.five_tuple.transport is not Transport.UDP:
            return True
        return self._unauthenticated.allow(request.five_tuple.client[0], request.now)

    def _own_allocation(self, request: _Request) -> Allocation:
        """The 5-tuple's allocation, used by its owner (437, 441: RFC 8656 §5)."""
        auth = self._authenticate(request)
        allocation = self.allocations.get(request.five_tuple)
        if allocation is None:
            raise TurnError(ErrorCode.ALLOCATION_MISMATCH)
        if allocation.username != auth.credential.username:
            raise TurnError(ErrorCode.WRONG_CREDENTIALS)
        return allocation

    def _check_peer(self, allocation: Allocation, ip: str, port: int | None) -> None:
        """403 for a denied peer, 443 for a family the allocation has no relay for.

        ``port`` is None for a permission (any port of ``ip``), else the peer's port.
        """
        if allocation.relay_for(ip) is None:
            raise TurnError(ErrorCode.PEER_ADDRESS_FAMILY_MISMATCH)
        denied = self.peers.check(ip) if port is None else self.peers.check_transport(ip, port)
        if denied is not None:
            raise TurnError(ErrorCode.FORBIDDEN, f"Forbidden peer ({denied})")

    def _elsewhere(self, request: _Request) -> TurnError:
        """What a draining server answers a new Allocate: 300 to an alternate, else 403."""
        transport = request.five_tuple.transport
        alternate = self.drain_alternates.for_client(transport, request.five_tuple.client[0])
        if alternate is None:
            return TurnError(ErrorCode.FORBIDDEN, "Server draining: use another server")
        return _try_alternate(alternate, transport)

    def _full(self, request: _Request) -> TurnError | None:
        """What a full server answers a new Allocate when the cluster has another live
        node for the client (300 Try Alternate to it); None: 486."""
        transport = request.five_tuple.transport
        alternate = self.full_alternates.for_client(transport, request.five_tuple.client[0])
        return _try_alternate(alternate, transport) if alternate is not None else None

    def _check_permission_quota(self, allocation: Allocation, ips: set[str]) -> None:
        new = ips - allocation.permissions.keys()
        if len(allocation.permissions) + len(new) > self.config.max_permissions_per_allocation:
            raise TurnError(ErrorCode.INSUFFICIENT_CAPACITY, "Too many permissions")

    def _check_allocation_quota(self, request: _Request, ports: int, users: int) -> None:
        """486 unless ``ports`` more relay ports fit the server, ``users`` more the user.

        Allocations, those being bound and ports kept by EVEN-PORT(R) all count.
        """
        assert request.auth is not None
        held = len(self.allocations) + len(self._pending) + len(self._reservations)
        if held + ports > self.config.max_allocations_total:
            full = TurnError(ErrorCode.ALLOCATION_QUOTA_REACHED, SERVER_QUOTA_REASON)
            raise self._full(request) or full
        quota_key = request.auth.credential.quota_key
        elsewhere = self.allocations_elsewhere.get(quota_key, 0)
        if self._per_user[quota_key] + elsewhere + users > self.config.max_allocations_per_user:
            raise TurnError(ErrorCode.ALLOCATION_QUOTA_REACHED)

    def allocations_per_user(self) -> dict[str, int]:
        """Allocations (live or binding) per quota key on this node, for the cluster."""
        return dict(self._per_user)

    def _take_quota(self, quota_key: str) -> None:
        """``quota_key`` holds one more allocation (pending or live) or kept port."""
        self._per_user[quota_key] += 1
        if self._on_quota is not None:
            self._on_quota(quota_key, self._per_user[quota_key])

    def _release_quota(self, quota_key: str) -> None:
        """One allocation (or pending one) of ``quota_key`` is gone; forget keys at zero."""
        self._per_user[quota_key] -= 1
        held = self._per_user[quota_key]
        if held <= 0:
            del self._per_user[quota_key]
        if self._on_quota is not None:
            self._on_quota(quota_key, max(0, held))

    def _allocation_families(self, message: Message) -> tuple[tuple[int, ...], int | None]:
        """RFC 8656 §7.2 steps for RESERVATION-TOKEN, EVEN-PORT and the address families.

        Returns the families to bind, and the one of a dual allocation we lack.
        """
        requested = message.get(AttributeType.REQUESTED_ADDRESS_FAMILY, int)
        additional = message.get(AttributeType.ADDITIONAL_ADDRESS_FAMILY, int)
        if message.has(AttributeType.RESERVATION_TOKEN) and (
            message.has(AttributeType.EVEN_PORT) or requested is not None
        ):
            raise TurnError(ErrorCode.BAD_REQUEST, "RESERVATION-TOKEN with EVEN-PORT or family")
        if requested is not None and additional is not None:
            raise TurnError(ErrorCode.BAD_REQUEST, "Both address family attributes")
        if message.has(AttributeType.RESERVATION_TOKEN):
            return (), None  # the reserved port's family decides
        if additional is not None:
            if additional != AddressFamily.IPV6:
                raise TurnError(ErrorCode.BAD_REQUEST, "ADDITIONAL-ADDRESS-FAMILY must be IPv6")
            if AddressFamily.IPV4 not in self.relay_families:
                raise TurnError(ErrorCode.ADDRESS_FAMILY_NOT_SUPPORTED)
            if AddressFamily.IPV6 not in self.relay_families:
                return (AddressFamily.IPV4,), AddressFamily.IPV6
            return (AddressFamily.IPV4, AddressFamily.IPV6), None
        family = requested if requested is not None else AddressFamily.IPV4
        if family not in self.relay_families:
            raise TurnError(ErrorCode.ADDRESS_FAMILY_NOT_SUPPORTED)
        return (family,), None

    def _allocate_lifetime(self, message: Message) -> int:
        """RFC 8656 §7.2: min(requested, maximum), but never below the default."""
        requested = message.get(AttributeType.LIFETIME, int)
        if requested is None:
            return self.config.default_lifetime
        return max(self.config.default_lifetime, min(requested, self.config.max_lifetime))

    # -- allocation lifecycle ---------------------------------------------

    def _allocate_from_reservation(
        self, request: _Request, token: bytes, lifetime: int
    ) -> list[Action]:
        """Allocate the port an earlier EVEN-PORT(R) kept (RFC 8656 §7.2 step 5); a
        token another worker minted is asked for (:class:`FindReservation`)."""
        reservation = self._reservations.get(token)
        prefix = self.reservation_prefix
        if reservation is None and prefix and not token.startswith(prefix):
            return self._find_reservation(request, token, lifetime)
        if reservation is None or reservation.expires_at <= request.now:
            raise TurnError(ErrorCode.INSUFFICIENT_CAPACITY, "Unknown reservation token")
        del self._reservations[token]
        self._release_quota(reservation.quota_key)
        assert request.auth is not None
        self._take_quota(request.auth.credential.quota_key)
        pending = _PendingAllocate(request, lifetime, (reservation.family,), False, None)
        allocation = self._start_allocation(
            pending, {reservation.family: reservation.route}, request.now
        )
        return self._allocate_success(pending, allocation, [])

    def _find_reservation(self, request: _Request, token: bytes, lifetime: int) -> list[Action]:
        """Wait for the adapter to fetch another process's kept port, counted as pending."""
        assert request.auth is not None
        self._pending[request.five_tuple] = _PendingAllocate(request, lifetime, (), False, None)
        self._take_quota(request.auth.credential.quota_key)
        return [FindReservation(request.five_tuple, token)]

    def _start_allocation(
        self, pending: _PendingAllocate, relays: dict[int, Route], now: float
    ) -> Allocation:
        request = pending.request
        assert request.auth is not None
        allocation = Allocation(
            id=self._rng.randbytes(16).hex(),
            five_tuple=request.five_tuple,
            username=request.auth.credential.username,
            subject=request.auth.credential.subject,
            quota_key=request.auth.credential.quota_key,
            key=request.auth.key,
            sha256=request.auth.sha256,
            relays=relays,
            started_at=now,
            expires_at=now + pending.lifetime,
            transaction_id=request.message.transaction_id,
            response=b"",
            budget=self._budget,
            flushed_at=now,
        )
        self.allocations[request.five_tuple] = allocation
        self.metrics.allocations_started += 1
        self.metrics.starts[request.five_tuple.transport.value] += 1
        return allocation

    def _allocate_success(
        self,
        pending: _PendingAllocate,
        allocation: Allocation,
        extra: list[tuple[int, AttributeValue]],
    ) -> list[Action]:
        attributes: list[tuple[int, AttributeValue]] = [
            (AttributeType.XOR_RELAYED_ADDRESS, route[1]) for route in allocation.relays.values()
        ]
        if pending.missing_family is not None:
            error = AddressErrorCodeValue(
                pending.missing_family,
                ErrorCode.ADDRESS_FAMILY_NOT_SUPPORTED,
                "Address Family not Supported",
            )
            attributes.append((AttributeType.ADDRESS_ERROR_CODE, error))
        attributes += [
            (AttributeType.LIFETIME, pending.lifetime),
            *extra,
            (AttributeType.XOR_MAPPED_ADDRESS, pending.request.five_tuple.client),
        ]
        answer = self._answer(pending.request, attributes)
        allocation.response = answer.data
        return [AllocationStarted(allocation), answer]

    def _end(self, allocation: Allocation, reason: str, now: float) -> list[Action]:
        """Delete ``allocation``; its final usage record waits for ``collect_usage``."""
        del self.allocations[allocation.five_tuple]
        self._release_quota(allocation.quota_key)
        self.metrics.allocations_ended += 1
        self.metrics.ends[reason] += 1
        self._ended.append((allocation, now, reason, _relayed_text(allocation)))
        releases: list[Action] = [ReleaseRelay(route[0]) for route in allocation.relays.values()]
        allocation.relays.clear()
        allocation.rebuild_routes()
        return [AllocationEnded(allocation, reason), *releases]

    def _record(
        self,
        allocation: Allocation,
        now: float,
        end_reason: str | None,
        relayed_address: str | None = None,
    ) -> UsageRecord:
        b2p, p2p, bfp, pfp = deltas = allocation.unflushed()
        row = self.metrics.relayed.setdefault(allocation.five_tuple.transport.value, [0, 0, 0, 0])
        for index, delta in enumerate(deltas):
            row[index] += delta
        record = UsageRecord(
            allocation_id=allocation.id,
            username=allocation.username,
            subject=allocation.subject,
            transport=allocation.five_tuple.transport.value,
            client_address=format_address(allocation.five_tuple.client),
            relayed_address=(
                _relayed_text(allocation) if relayed_address is None else relayed_address
            ),
            started_at=allocation.started_at,
            period_start=allocation.flushed_at,
            period_end=now,
            bytes_to_peer=b2p,
            packets_to_peer=p2p,
            bytes_from_peer=bfp,
            packets_from_peer=pfp,
            ended=end_reason is not None,
            end_reason=end_reason,
        )
        allocation.mark_flushed(now)
        return record

    # -- answers -----------------------------------------------------------

    def _answer(
        self, request: _Request, attributes: list[tuple[int, AttributeValue]]
    ) -> SendToClient:
        return SendToClient(
            request.five_tuple, self._encode(request, MessageClass.SUCCESS, attributes)
        )

    def _answer_error(self, request: _Request, error: TurnError) -> SendToClient:
        self._count_refusal(request, int(error.code), error.reason, report=True)
        head: list[tuple[int, AttributeValue]] = [
            (AttributeType.ERROR_CODE, ErrorCodeValue(int(error.code), error.reason))
        ]
        data = self._encode(request, MessageClass.ERROR, [*head, *error.attributes])
        return SendToClient(request.five_tuple, data)

    def _answer_challenge(self, request: _Request, failure: AuthenticationFailed) -> SendToClient:
        """401/438 with REALM, a fresh NONCE and the algorithms we take (RFC 8489 §9.2.4)."""
        self._count_refusal(request, int(failure.code), failure.why,
                            report=failure.counts_as_failure)  # fmt: skip
        nonce = self.auth.nonces.issue(request.five_tuple.client[0], request.now)
        attributes: list[tuple[int, AttributeValue]] = [
            (AttributeType.ERROR_CODE, ErrorCodeValue(int(failure.code), failure.reason)),
            (AttributeType.REALM, self.auth.realm),
            (AttributeType.NONCE, nonce),
            (AttributeType.PASSWORD_ALGORITHMS, SUPPORTED_PASSWORD_ALGORITHMS),
        ]
        request.auth = None  # a challenge is never signed
        return SendToClient(
            request.five_tuple, self._encode(request, MessageClass.ERROR, attributes)
        )

    def _count_refusal(self, request: _Request, code: int, detail: str, *, report: bool) -> None:
        """Count an error answer; tell the operator's log unless it is a routine challenge."""
        self.metrics.errors[code] += 1
        self.metrics.refusals[(request.message.method, code)] += 1
        if report and self._on_refused is not None:
            self._on_refused(Refused(request.five_tuple, request.message.method, code, detail))

    def _encode(
        self,
        request: _Request,
        message_class: MessageClass,
        attributes: list[tuple[int, AttributeValue]],
    ) -> bytes:
        if self.config.software and request.auth is not None:
            # Only a signed answer names the software: an unauthenticated one carries what
            # the RFCs require, no more (a smaller reflection, nothing for a scanner).
            attributes = [*attributes, (AttributeType.SOFTWARE, self.config.software)]
        message = Message(
            request.message.method,
            message_class,
            request.message.transaction_id,
            tuple(attributes),
        )
        auth = request.auth
        return encode_message(
            message,
            integrity_key=auth.key if auth is not None else None,
            integrity_sha256=auth.sha256 if auth is not None else False,
            fingerprint=request.message.has(AttributeType.FINGERPRINT),
        )

    # -- helpers for the adapters -------------------------------------------

    def data_indication(self, peer: Address, data: bytes) -> bytes:
        """A Data indication carrying ``data`` from ``peer`` (RFC 8656 §10.3)."""
        return encode_data_indication(self._rng.randbytes(12), peer, data)


_Handler = Callable[[TurnServer, _Request], list[Action]]

_HANDLERS: dict[tuple[int, MessageClass], _Handler] = {
    (Method.BINDING, MessageClass.REQUEST): TurnServer._handle_binding_request,
    (Method.ALLOCATE, MessageClass.REQUEST): TurnServer._handle_allocate_request,
    (Method.REFRESH, MessageClass.REQUEST): TurnServer._handle_refresh_request,
    (Method.CREATE_PERMISSION, MessageClass.REQUEST): TurnServer._handle_create_permission_request,
    (Method.CHANNEL_BIND, MessageClass.REQUEST): TurnServer._handle_channel_bind_request,
    (Method.SEND, MessageClass.INDICATION): TurnServer._handle_send_indication,
}
"""Request dispatch: (method, class) → handler. Anything else is 400 or dropped."""


def _addresses(message: Message, attr_type: AttributeType) -> list[Address]:
    """Every well-formed address attribute of ``attr_type``, in order."""
    return [
        (value[0], value[1])
        for kind, value in message.attributes
        if kind == attr_type
        and isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    ]


def _relayed_text(allocation: Allocation) -> str:
    """The first relayed address of ``allocation``, as the usage record names it."""
    relayed = next(iter(allocation.relays.values()), None)
    return format_address(relayed[1]) if relayed else ""


def _try_alternate(alternate: Alternate, transport: Transport) -> TurnError:
    """300 Try Alternate naming ``alternate`` (and its name over TLS: ALTERNATE-DOMAIN)."""
    attributes: list[tuple[int, AttributeValue]] = [
        (AttributeType.ALTERNATE_SERVER, alternate.address)
    ]
    if transport is Transport.TLS and alternate.domain is not None:
        attributes.append((AttributeType.ALTERNATE_DOMAIN, alternate.domain))
    return TurnError(ErrorCode.TRY_ALTERNATE, attributes=attributes)
