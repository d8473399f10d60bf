"""Errors that know their answer, and the named reasons a packet is dropped."""

from __future__ import annotations

import enum
from collections.abc import Sequence

from passage.stun import AttributeValue, ErrorCode, reason_phrase


class TurnError(Exception):
    """A request failed; answer it with ``code`` (RFC 8656 §6.3 and §7-§11).

    ``reason`` is the phrase sent on the wire. It is always one of ours, never
    exception text, so nothing internal leaks to a peer. ``attributes`` go into
    the error response after ERROR-CODE (UNKNOWN-ATTRIBUTES for a 420).
    """

    def __init__(
        self,
        code: ErrorCode,
        reason: str | None = None,
        attributes: Sequence[tuple[int, AttributeValue]] = (),
    ) -> None:
        self.code = code
        self.reason = reason if reason is not None else reason_phrase(code)
        self.attributes = tuple(attributes)
        super().__init__(f"{int(code)} {self.reason}")


class DropReason(enum.StrEnum):
    """Why a packet was dropped without an answer. Counted per reason."""

    MALFORMED = "malformed"
    NOT_A_REQUEST = "unexpected_message_class"
    UNKNOWN_METHOD_INDICATION = "unknown_indication"
    UNKNOWN_ATTRIBUTE = "unknown_required_attribute"
    ALLOCATE_IN_PROGRESS = "allocate_retransmitted_while_binding"
    AUTH_RATE_LIMITED = "auth_rate_limited"
    UNAUTHENTICATED_RATE_LIMITED = "unauthenticated_answer_rate_limited"
    NO_ALLOCATION = "no_allocation"
    NO_PERMISSION = "no_permission"
    NO_CHANNEL = "no_channel"
    PEER_DENIED = "peer_denied"
    BANDWIDTH_EXCEEDED = "bandwidth_exceeded"
    BAD_SEND_INDICATION = "bad_send_indication"
    PEER_FAMILY_MISMATCH = "peer_family_mismatch"
    STREAM_GARBAGE = "stream_garbage"
    CLIENT_BACKLOG = "client_backlog"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    TOO_MANY_CONNECTIONS_FROM_SOURCE = "too_many_connections_from_source"
    TLS_HANDSHAKE_FAILED = "tls_handshake_failed"
    ACCEPT_FAILED = "accept_failed"
    IDLE_CONNECTION = "idle_connection_closed"
    SEND_REFUSED = "send_refused"
    """The kernel refused a datagram the C fast path relayed (its socket buffer full, or
    an error such as EMSGSIZE); asyncio's transport would have queued it."""
