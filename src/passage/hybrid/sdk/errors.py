"""What the Hybrid Connections client raises."""

from __future__ import annotations

import aiohttp

__all__ = [
    "MAX_MESSAGE",
    "BodyTooLarge",
    "HybridConnectionError",
    "ListenerClosed",
    "MessageTooLarge",
    "handshake_refusal",
]

MAX_MESSAGE = 1024 * 1024
"""Largest WebSocket message the client reads from the relay, in bytes: the relay's own
limit by default (``--hc-max-message``), which it enforces on every bridged message. A
relay that sends more (hostile or broken) gets its socket closed with 1009."""

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


class MessageTooLarge(HybridConnectionError):
    """The relay sent a message larger than the client's ``max_message``: nothing of it
    was kept, and the socket is closed with 1009 (RFC 6455 §7.4.1)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            0,
            f"the relay sent a message larger than max_message ({limit} bytes); the stream "
            "is closed (1009). Raise max_message to match a relay with a larger "
            "--hc-max-message",
        )
        self.limit = limit


def too_large(message: aiohttp.WSMessage) -> bool:
    """Whether ``message`` is aiohttp's report of a message over ``max_msg_size``."""
    error = message.data
    return (
        message.type is aiohttp.WSMsgType.ERROR
        and isinstance(error, aiohttp.WebSocketError)
        and error.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    )


class BodyTooLarge(HybridConnectionError):
    """An HTTP answer through the relay has a body larger than ``request()``'s
    ``max_body``: the connection is dropped without reading the rest."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            0,
            f"the answer's body is larger than max_body ({limit} bytes); the rest was not "
            "read. Raise max_body for larger answers",
        )
        self.limit = limit
