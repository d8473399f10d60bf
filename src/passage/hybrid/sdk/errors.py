"""What the Hybrid Connections client raises."""

from __future__ import annotations

__all__ = ["HybridConnectionError", "ListenerClosed", "handshake_refusal"]

REFUSALS = {
    401: "the token was refused (bad signature, expired, or for another hybrid connection)",
    403: "the token's rule lacks the right, or the hybrid connection has all its listeners",
    404: "no such hybrid connection, or nobody listens on it",
    429: "too many failed attempts from this address; wait a minute",
}
"""What a refused WebSocket handshake means, by the relay's status: the WebSocket client
sees only "Invalid response status", not the relay's JSON error body."""


class HybridConnectionError(Exception):
    """The relay refused a listen, connect or HTTP request (or could not be reached).

    ``status`` is the relay's HTTP status (401 bad token, 403 missing right or
    too many listeners, 404 no such hybrid connection or no listener, 429 too
    many failed listen attempts), or 0 when no answer came at all.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}" if status else message)
        self.status = status
        self.message = message


def handshake_refusal(status: int, message: str) -> HybridConnectionError:
    """The error for a refused handshake, in words a person can act on."""
    generic = not message or message == "Invalid response status"
    return HybridConnectionError(status, REFUSALS.get(status, message) if generic else message)


class ListenerClosed(Exception):
    """The listener was closed: no more streams will be accepted."""
