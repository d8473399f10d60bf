"""What the Hybrid Connections client raises."""

from __future__ import annotations

__all__ = ["HybridConnectionError", "ListenerClosed"]


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


class ListenerClosed(Exception):
    """The listener was closed: no more streams will be accepted."""
