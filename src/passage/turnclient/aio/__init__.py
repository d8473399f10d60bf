"""The asyncio adapter of the TURN client: :class:`TurnConnection` over UDP, TCP or TLS."""

from .connection import ANSWER_TIMEOUT, MAX_REDIRECTS, NoAnswer, TurnConnection, open_allocated

__all__ = ["ANSWER_TIMEOUT", "MAX_REDIRECTS", "NoAnswer", "TurnConnection", "open_allocated"]
