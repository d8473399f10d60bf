"""Live listeners and senders keep their standing only while their rule does.

A SAS token is checked when a listener or sender connects; the socket then
lives for hours. When the authorization rule that signed it is deleted, or its
keys change (``passage hc rule regenerate``), the token no longer verifies, and
what it let in must go too: otherwise deleting a leaked rule would leave its
holder connected. :class:`Standings` remembers what let each live socket in
and, whenever the namespace changes, re-checks each one and closes those whose
token no longer verifies with 1008 (policy violation: "token no longer valid",
reference §2.6). Expiry is not re-checked here: a listener's token expiry has
its own timer with grace, and an established sender outlives its token, as on
Azure (reference §3).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from passage.hybrid.entities import Resolved
from passage.hybrid.sas import Rights, SasError

__all__ = ["Standing", "Standings"]

logger = logging.getLogger("passage.relay")

REVOKED = 1008
"""Close code for a socket whose authorization was withdrawn (RFC 6455 policy violation)."""


@dataclass(slots=True)
class Standing:
    """What let a socket in: its token (renewed ones replace it), the Host it came with,
    what it reached and the right it needed."""

    token: str
    host: str | None
    resolved: Resolved
    needed: Rights


Close = Callable[[int, str], Awaitable[object]]


class Standings:
    """Live sockets and their standing; :meth:`sweep` closes those that lost it."""

    def __init__(self, check: Callable[[Standing], None]) -> None:
        """``check`` raises :class:`SasError` for a standing the namespace no longer grants."""
        self._check = check
        self._live: dict[object, tuple[Standing, Close, str]] = {}

    def __len__(self) -> int:
        return len(self._live)

    def add(self, key: object, standing: Standing, close: Close, what: str) -> None:
        self._live[key] = (standing, close, what)

    def renew(self, key: object, token: str) -> None:
        """A listener's ``renewToken``: its standing is its new token from now on."""
        entry = self._live.get(key)
        if entry is not None:
            entry[0].token = token

    def discard(self, key: object) -> None:
        self._live.pop(key, None)

    async def sweep(self) -> int:
        """Close every socket whose token no longer verifies; how many were closed."""
        closed = 0
        # Senders first: a listener's going closes its senders with 1001, and a sender
        # that lost its own standing should hear why (1008).
        entries = sorted(self._live.items(), key=lambda item: item[1][0].needed is Rights.LISTEN)
        for key, (standing, close, what) in entries:
            if key not in self._live:
                continue
            try:
                self._check(standing)
            except SasError as error:
                self._live.pop(key, None)
                logger.info("closing %s: %s", what, error.message)
                await close(REVOKED, "authorization withdrawn: " + error.message)
                closed += 1
        return closed
