"""A sans-IO TURN client (RFC 8656) for one 5-tuple: requests, the long-term credential, data.

Bytes and ``now`` in, events and bytes out; the caller owns the socket and
the clock. The shape, for an adapter:

- :meth:`TurnClientCore.request` (or :meth:`transact` for a request the
  caller encoded itself) starts a request and returns its
  :data:`RequestId`; send what :meth:`data_to_send` returns;
- every whole message received (a datagram, or a frame of
  :class:`~passage.stun.StreamFramer` over TCP/TLS) goes to :meth:`receive`,
  which returns :class:`Answered`, :class:`Failed` and :class:`Relayed`
  events; send what :meth:`data_to_send` returns after it, too;
- call :meth:`handle_timer` at :meth:`get_timer` (retransmissions and
  timeouts, RFC 8489 §6.2).

The long-term credential mechanism (RFC 8489 §9.2) is the core's: a request
goes out unsigned until the server has named its REALM and NONCE; a 401 to an
unsigned request, or a 438 (stale nonce) to any, makes the core learn the new
NONCE and send the request again, signed, under a new transaction ID; the
caller sees only the final answer. A 401 to a signed request is final (the
credentials are wrong). A success answer to a signed request must carry a
valid MESSAGE-INTEGRITY (§9.2.5); one that does not is dropped, as if never
received. Error answers are taken as they come: a server sends some (400, 420,
401, 438) before it could check who is asking, so they cannot be signed.
Requests are signed with the MD5 key (RFC 8489 §9.2.2), which every TURN
server accepts.

ChannelData and Send indications are built by :meth:`channel_data` and
:meth:`send_indication` and returned for the caller to write at once: the
data path holds no state.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NewType

from passage.addresses import Address
from passage.stun import (
    AttributeType,
    AttributeValue,
    ErrorCode,
    ErrorCodeValue,
    Message,
    MessageClass,
    Method,
    StunDecodeError,
    TransactionId,
    decode_channel_data,
    decode_message,
    encode_channel_data,
    encode_message,
    long_term_key,
    verify_integrity,
)

from .transactions import RTO, ClientTransactions

__all__ = [
    "UDP",
    "Answered",
    "Credentials",
    "Dropped",
    "Event",
    "Failed",
    "FailureReason",
    "Relayed",
    "RequestId",
    "TurnClientCore",
    "error_code",
    "TryAlternate",
    "relayed_addresses",
    "try_alternate",
]

Attributes = Sequence[tuple[int, AttributeValue]]
RequestId = NewType("RequestId", int)
"""A request of :class:`TurnClientCore`; it keeps its ID through the credential retries."""

UDP = 17
"""REQUESTED-TRANSPORT for a UDP relay (RFC 8656 §14.7)."""

MAX_CHALLENGES = 3
"""Times one request is sent again for a 401/438 before its answer is taken as final."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """A TURN long-term credential: a static user, or a TURN REST pair."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Answered:
    """The final answer to a request (success or error: read its class and ERROR-CODE)."""

    request: RequestId
    message: Message


class FailureReason(enum.StrEnum):
    """Why a request ended without an answer."""

    TIMEOUT = "timeout"
    """Nothing valid came back in time."""


@dataclass(frozen=True, slots=True)
class Failed:
    """A request that got no answer."""

    request: RequestId
    reason: FailureReason


@dataclass(frozen=True, slots=True)
class Relayed:
    """Application data from a peer, relayed by ChannelData or a Data indication."""

    data: bytes
    channel: int | None = None
    """The channel of ChannelData; None for a Data indication."""
    peer: Address | None = None
    """XOR-PEER-ADDRESS of a Data indication; None for ChannelData."""


Event = Answered | Failed | Relayed


class Dropped(enum.StrEnum):
    """Why a received message was dropped; counted in :attr:`TurnClientCore.dropped`."""

    MALFORMED = "malformed"
    """Neither a STUN message nor ChannelData that decodes."""
    UNKNOWN_TRANSACTION = "unknown_transaction"
    """An answer to no request that waits (late, duplicated, or not ours)."""
    BAD_INTEGRITY = "bad_integrity"
    """A success to a signed request without a valid MESSAGE-INTEGRITY (RFC 8489 §9.2.5)."""
    UNEXPECTED = "unexpected"
    """A request, or an indication other than Data, or a Data indication without its parts."""


def error_code(message: Message) -> int | None:
    """The ERROR-CODE of an answer, or None for a success."""
    value = message.get(AttributeType.ERROR_CODE, ErrorCodeValue)
    return None if value is None else value.code


@dataclass(frozen=True, slots=True)
class TryAlternate:
    """Where a 300 Try Alternate answer sends the client (RFC 8489 §10)."""

    server: Address
    """ALTERNATE-SERVER: the address to send the request to instead."""

    domain: str | None = None
    """ALTERNATE-DOMAIN, over TLS: the name to check that server's certificate against
    (None: the name the client used for this server)."""


def try_alternate(message: Message) -> TryAlternate | None:
    """The alternate a 300 answer names; None for any other answer, or a 300 without one."""
    if error_code(message) != ErrorCode.TRY_ALTERNATE:
        return None
    server = message.get(AttributeType.ALTERNATE_SERVER, tuple)
    if server is None:
        return None
    domain = message.get(AttributeType.ALTERNATE_DOMAIN, str)
    return TryAlternate((str(server[0]), int(server[1])), domain)


def relayed_addresses(message: Message) -> list[Address]:
    """Every XOR-RELAYED-ADDRESS of an Allocate success, in order (RFC 8656 §7.3)."""
    return [
        value  # type: ignore[misc]
        for kind, value in message.attributes
        if kind == AttributeType.XOR_RELAYED_ADDRESS
    ]


@dataclass(slots=True)
class _Request:
    method: int
    attributes: Attributes
    sign: bool
    retry: bool
    timeout: float
    signed: bool = False
    challenges: int = 0


class TurnClientCore:
    """One client 5-tuple of a TURN (or plain STUN) server, sans-IO.

    ``credentials`` None makes a STUN client: requests go out unsigned.
    ``reliable`` is True over TCP/TLS (no retransmissions, RFC 8489 §6.2.2).
    ``random_bytes(n)`` gives transaction IDs (``os.urandom`` in an adapter).
    """

    def __init__(
        self,
        credentials: Credentials | None,
        *,
        reliable: bool,
        random_bytes: Callable[[int], bytes],
        rto: float = RTO,
    ) -> None:
        self.credentials = credentials
        self.reliable = reliable
        self.realm: str | None = None
        """REALM the server named in its last challenge."""
        self.nonce: str | None = None
        """NONCE the server named in its last challenge."""
        self.dropped: Counter[Dropped] = Counter()
        """Received messages dropped, by reason."""
        self._random_bytes = random_bytes
        self._transactions = ClientTransactions(reliable=reliable, rto=rto)
        self._requests: dict[bytes, tuple[RequestId, _Request | None]] = {}
        self._next_request = 0

    # -- sending ---------------------------------------------------------------

    def encode(
        self,
        method: int,
        message_class: MessageClass,
        attributes: Attributes,
        *,
        sign: bool,
        transaction_id: bytes | None = None,
    ) -> tuple[TransactionId, bytes]:
        """A message with FINGERPRINT, signed with the long-term key (RFC 8489 §9.2.4)
        when ``sign`` and the server has named its REALM and NONCE."""
        tid = TransactionId(transaction_id or self._random_bytes(12))
        attributes = list(attributes)
        key = self.key if sign else None
        if key is not None:
            assert self.credentials and self.realm is not None and self.nonce is not None
            attributes += [
                (AttributeType.USERNAME, self.credentials.username),
                (AttributeType.REALM, self.realm),
                (AttributeType.NONCE, self.nonce),
            ]
        message = Message(method, message_class, tid, tuple(attributes))
        return tid, encode_message(message, integrity_key=key, fingerprint=True)

    @property
    def key(self) -> bytes | None:
        """The long-term key, once there are credentials, a REALM and a NONCE."""
        if self.credentials is None or self.realm is None or self.nonce is None:
            return None
        return long_term_key(self.credentials.username, self.realm, self.credentials.password)

    def request(
        self,
        method: int,
        attributes: Attributes,
        now: float,
        *,
        timeout: float,
        sign: bool = True,
        retry: bool = True,
    ) -> RequestId:
        """Start a request; its final answer comes as :class:`Answered` (or :class:`Failed`).

        ``sign=False`` never signs (Binding); ``retry=False`` returns a 401 or
        438 challenge as the answer instead of answering it. ``timeout``
        covers each try.
        """
        request_id = self._new_request_id()
        self._send(request_id, _Request(method, attributes, sign, retry, timeout), now)
        return request_id

    def transact(
        self,
        transaction_id: bytes,
        data: bytes,
        now: float,
        *,
        timeout: float,
        retransmit: bool = True,
    ) -> RequestId:
        """Send a request the caller encoded (an RFC 5780 probe, a malformed test request).

        Its answer, matched by ``transaction_id``, is final: no credential
        retries, no integrity check. ``retransmit=False`` sends it only once.
        """
        request_id = self._new_request_id()
        self._requests[transaction_id] = (request_id, None)
        self._transactions.start(transaction_id, data, now, timeout, retransmit=retransmit)
        return request_id

    def allocate(
        self, now: float, *, timeout: float, attributes: Attributes = (), retry: bool = True
    ) -> RequestId:
        """Allocate a UDP relay (RFC 8656 §7.1); more attributes after REQUESTED-TRANSPORT."""
        attributes = ((AttributeType.REQUESTED_TRANSPORT, UDP), *attributes)
        return self.request(Method.ALLOCATE, attributes, now, timeout=timeout, retry=retry)

    def refresh(self, lifetime: int, now: float, *, timeout: float) -> RequestId:
        """Refresh the allocation for ``lifetime`` seconds; 0 deletes it (RFC 8656 §8)."""
        return self.request(
            Method.REFRESH, [(AttributeType.LIFETIME, lifetime)], now, timeout=timeout
        )

    def create_permission(
        self, peers: Sequence[Address], now: float, *, timeout: float
    ) -> RequestId:
        """Permit the IP addresses of ``peers`` (RFC 8656 §9)."""
        attributes: list[tuple[int, AttributeValue]] = [
            (AttributeType.XOR_PEER_ADDRESS, peer) for peer in peers
        ]
        return self.request(Method.CREATE_PERMISSION, attributes, now, timeout=timeout)

    def channel_bind(self, channel: int, peer: Address, now: float, *, timeout: float) -> RequestId:
        """Bind ``channel`` to ``peer``, which permits its IP too (RFC 8656 §11)."""
        attributes: list[tuple[int, AttributeValue]] = [
            (AttributeType.CHANNEL_NUMBER, channel),
            (AttributeType.XOR_PEER_ADDRESS, peer),
        ]
        return self.request(Method.CHANNEL_BIND, attributes, now, timeout=timeout)

    def send_indication(self, peer: Address, data: bytes) -> bytes:
        """A Send indication of ``data`` to ``peer`` (RFC 8656 §10.1), to write at once."""
        attributes: list[tuple[int, AttributeValue]] = [
            (AttributeType.XOR_PEER_ADDRESS, peer),
            (AttributeType.DATA, data),
        ]
        return self.encode(Method.SEND, MessageClass.INDICATION, attributes, sign=False)[1]

    def channel_data(self, channel: int, data: bytes) -> bytes:
        """ChannelData to write at once, padded to 4 bytes on a stream (RFC 8656 §12.5)."""
        return encode_channel_data(channel, data, pad=self.reliable)

    def data_to_send(self) -> list[bytes]:
        """Requests and retransmissions to write now, in order."""
        return [data for _, data in self._transactions.take_outgoing()]

    # -- timers ------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When to call :meth:`handle_timer`; None when no request waits."""
        return self._transactions.get_timer()

    def handle_timer(self, now: float) -> list[Event]:
        """Retransmit what is due (see :meth:`data_to_send`); fail requests out of time."""
        events: list[Event] = []
        for transaction_id in self._transactions.handle_timer(now):
            request_id, _ = self._requests.pop(transaction_id)
            events.append(Failed(request_id, FailureReason.TIMEOUT))
        return events

    # -- receiving -----------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Event]:
        """One whole message from the server: ChannelData, an indication or an answer."""
        if data and 0x40 <= data[0] <= 0x7F:
            try:
                channel, payload = decode_channel_data(data)
            except StunDecodeError:
                return self._drop(Dropped.MALFORMED)
            return [Relayed(payload, channel=channel)]
        try:
            message = decode_message(data)
        except StunDecodeError:
            return self._drop(Dropped.MALFORMED)
        if message.message_class is MessageClass.INDICATION:
            return self._receive_indication(message)
        if message.message_class is MessageClass.REQUEST:
            return self._drop(Dropped.UNEXPECTED)
        return self._receive_answer(message, now)

    def _receive_indication(self, message: Message) -> list[Event]:
        peer = message.get(AttributeType.XOR_PEER_ADDRESS, tuple)
        payload = message.get(AttributeType.DATA, bytes)
        if message.method != Method.DATA or peer is None or payload is None:
            return self._drop(Dropped.UNEXPECTED)
        return [Relayed(payload, peer=(str(peer[0]), int(peer[1])))]

    def _receive_answer(self, message: Message, now: float) -> list[Event]:
        found = self._requests.get(message.transaction_id)
        if found is None or not self._transactions.waiting(message.transaction_id):
            return self._drop(Dropped.UNKNOWN_TRANSACTION)
        request_id, request = found
        if request is not None and self._challenge(request, message):
            self._forget(message.transaction_id)
            request.challenges += 1
            self._send(request_id, request, now)
            return []
        if (
            request is not None
            and request.signed
            and message.message_class is MessageClass.SUCCESS
            and not self._authentic(message)
        ):
            return self._drop(Dropped.BAD_INTEGRITY)
        self._forget(message.transaction_id)
        return [Answered(request_id, message)]

    def _challenge(self, request: _Request, message: Message) -> bool:
        """Learn REALM and NONCE from a 401/438 (RFC 8489 §9.2.5); True to send again."""
        code = error_code(message)
        nonce = message.get(AttributeType.NONCE, str)
        if code not in (401, 438) or nonce is None:
            return False
        self.nonce = nonce
        self.realm = message.get(AttributeType.REALM, str) or self.realm
        again = code == 438 or not request.signed
        return (
            request.sign
            and request.retry
            and again
            and self.key is not None
            and request.challenges < MAX_CHALLENGES
        )

    def _authentic(self, message: Message) -> bool:
        key = self.key
        return key is not None and verify_integrity(message, key)

    # -- helpers -------------------------------------------------------------------

    def _new_request_id(self) -> RequestId:
        self._next_request += 1
        return RequestId(self._next_request)

    def _send(self, request_id: RequestId, request: _Request, now: float) -> None:
        transaction_id, data = self.encode(
            request.method, MessageClass.REQUEST, request.attributes, sign=request.sign
        )
        request.signed = request.sign and self.key is not None
        self._requests[transaction_id] = (request_id, request)
        self._transactions.start(transaction_id, data, now, request.timeout)

    def _forget(self, transaction_id: bytes) -> None:
        self._transactions.finish(transaction_id)
        self._requests.pop(transaction_id, None)

    def _drop(self, reason: Dropped) -> list[Event]:
        self.dropped[reason] += 1
        return []
