"""Close codes of the signaling WebSocket, and the error that carries one.

RFC 6455 §7.4.2 leaves 4000-4999 to applications. Browsers cannot see the
HTTP status of a refused upgrade (a script only learns "1006, abnormal
closure"), so every refusal after a well-formed upgrade request is an accepted
WebSocket closed at once with one of these codes and a short reason.
"""

from __future__ import annotations

import enum

__all__ = ["CloseCode", "SignalError"]


class CloseCode(enum.IntEnum):
    """Why the server closed a signaling session (``docs/signaling.md`` lists them)."""

    NORMAL = 1000
    """The client closed, or left the room."""
    GOING_AWAY = 1001
    """The server is shutting down."""
    SERVICE_RESTART = 1012
    """The server is draining: reconnect (a load balancer sends the room to another node)."""
    MALFORMED = 4000
    """A frame that is not a JSON object of a known ``type`` with valid fields, or binary."""
    UNAUTHORIZED = 4001
    """No token, or one that is malformed, badly signed or signed by a key no longer current."""
    TOKEN_EXPIRED = 4002
    """The token's ``exp`` passed (at connection, or later while connected)."""
    TOKEN_REVOKED = 4003
    """The identity's tokens were revoked, or the identity was deleted."""
    FORBIDDEN = 4004
    """The token has no ``voip`` scope."""
    BAD_ROOM = 4005
    """The room name is not 1-64 of ``A-Z a-z 0-9 . _ ~ -``."""
    ROOM_FULL = 4006
    """The room already has its maximum number of members."""
    AT_CAPACITY = 4007
    """The server holds its maximum number of rooms, or this identity its maximum sessions."""
    RATE_LIMITED = 4008
    """More messages than the per-member rate allows."""
    TOO_BIG = 4009
    """A message larger than the limit."""
    SLOW_READER = 4010
    """More undelivered bytes queued for this member than the limit: it does not read."""


class SignalError(Exception):
    """A session must close with :attr:`code`; ``reason`` is safe to send to the client."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
