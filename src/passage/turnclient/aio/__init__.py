"""The asyncio adapter of the TURN client: :class:`TurnConnection` over UDP, TCP or TLS."""

from .connection import ANSWER_TIMEOUT, NoAnswer, TurnConnection

__all__ = ["ANSWER_TIMEOUT", "NoAnswer", "TurnConnection"]
