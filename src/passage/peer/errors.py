"""What can go wrong for a peer, in words a user can act on."""

from __future__ import annotations

__all__ = ["PeerError", "SignalingClosed"]


class PeerError(Exception):
    """The peer could not connect, or lost its path."""


class SignalingClosed(PeerError):
    """The signaling server closed the session; :attr:`code` is its close code (4xxx)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"signaling closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason
