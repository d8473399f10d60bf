"""Console sessions: a random id in a cookie, a CSRF token, idle and absolute expiry.

The adapter draws the random parts (:meth:`Sessions.open` takes them) and
passes ``now``. Sessions are kept by the SHA-256 of their id, so looking one
up compares no secret byte by byte. Each holds the name and a fingerprint of
the access key that opened it: when that key is rotated, :meth:`Sessions.find`
no longer finds the session. The table is bounded; a new session beyond the
bound ends the one least recently used.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from passage.identity.keys import AccessKey, AccessKeys, KeyName

__all__ = ["Session", "SessionLimits", "Sessions", "fingerprint"]


@dataclass(frozen=True, slots=True)
class SessionLimits:
    idle: float = 30 * 60
    """Seconds without a request after which a session ends."""
    absolute: float = 12 * 3600
    """Seconds after sign-in after which a session ends, however busy."""
    max_sessions: int = 1000
    """Sessions kept at once; one more ends the least recently used."""


def fingerprint(key: AccessKey) -> bytes:
    return hashlib.sha256(b"passage console session\0" + key.secret).digest()


@dataclass(slots=True)
class Session:
    key_name: KeyName
    key_fingerprint: bytes
    csrf: str
    """The token every change must carry (a form field or the ``X-CSRF-Token`` header)."""
    opened_at: float
    seen_at: float

    def csrf_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(
            self.csrf.encode(), given.encode("utf-8", "replace")
        )


def _hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8", "replace")).digest()


class Sessions:
    """Every open console session of this process."""

    def __init__(self, limits: SessionLimits | None = None) -> None:
        self.limits = limits or SessionLimits()
        self._sessions: dict[bytes, Session] = {}
        """SHA-256 of the id → session, least recently used first."""

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, key: AccessKey, session_id: str, csrf: str, now: float) -> Session:
        """A new session for ``key``; ``session_id`` and ``csrf`` are fresh random text."""
        while len(self._sessions) >= self.limits.max_sessions:
            del self._sessions[next(iter(self._sessions))]
        session = Session(key.name, fingerprint(key), csrf, now, now)
        self._sessions[_hash(session_id)] = session
        return session

    def find(self, session_id: str | None, keys: AccessKeys, now: float) -> Session | None:
        """The live session ``session_id`` names (its use noted), or None: unknown, idle
        too long, too old, or its key rotated since (it is ended then)."""
        if not session_id:
            return None
        hashed = _hash(session_id)
        session = self._sessions.get(hashed)
        if session is None:
            return None
        limits = self.limits
        key = keys.named(session.key_name)
        if (
            now - session.seen_at >= limits.idle
            or now - session.opened_at >= limits.absolute
            or not hmac.compare_digest(fingerprint(key), session.key_fingerprint)
        ):
            del self._sessions[hashed]
            return None
        session.seen_at = now
        self._sessions[hashed] = self._sessions.pop(hashed)  # most recently used last
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(_hash(session_id), None)

    def forget_expired(self, now: float) -> None:
        limits = self.limits
        for hashed, session in list(self._sessions.items()):
            if now - session.seen_at >= limits.idle or now - session.opened_at >= limits.absolute:
                del self._sessions[hashed]
