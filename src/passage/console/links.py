"""One-time sign-in links: what ``passage console-link`` prints, and how the console takes one.

A link's token is ``v1.EXPIRES.NONCE.MAC``: when it stops working (Unix
seconds), 16 random bytes (hex), and HMAC-SHA256 over the rest with a key
derived from an access key. Whoever can read the store (``--data-dir``) can
mint one without asking the server; the server accepts it once, before it
expires, and only while the key that signed it is current (a rotation voids
every link it signed). :class:`LinkBook` remembers the nonces it has taken
until they expire, bounded: when full, it takes no link rather than forget one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from passage.identity.keys import AccessKey, KeyName

__all__ = ["LINK_LIFETIME", "MAX_REMEMBERED", "LinkBook", "mint_link"]

LINK_LIFETIME = 600
"""Seconds a link works for by default; the console takes none that claims longer."""

MAX_LINK_LIFETIME = 3600
"""The longest lifetime ``passage console-link --minutes`` may ask for, in seconds."""

MAX_REMEMBERED = 10_000
"""Links taken and not yet expired that the book remembers; beyond that it takes none."""

_VERSION = "v1"


def _link_key(key: AccessKey) -> bytes:
    # Its own derived key: a link's MAC can never be replayed as a request signature.
    return hmac.new(key.secret, b"passage v1\0console link", hashlib.sha256).digest()


def _mac(key: AccessKey, signed: str) -> str:
    return hmac.new(_link_key(key), signed.encode("ascii"), hashlib.sha256).hexdigest()


def mint_link(key: AccessKey, nonce: bytes, expires: int) -> str:
    """The token of a link signed with ``key``, good until ``expires`` (Unix seconds)."""
    signed = f"{_VERSION}.{expires}.{nonce.hex()}"
    return f"{signed}.{_mac(key, signed)}"


class LinkBook:
    """The links this console has taken, so that each is taken once."""

    def __init__(self, max_remembered: int = MAX_REMEMBERED) -> None:
        self.max_remembered = max_remembered
        self._taken: dict[str, float] = {}
        """Nonce → expiry, in the order taken."""

    def __len__(self) -> int:
        return len(self._taken)

    def take(self, token: str, keys: Iterable[AccessKey], now: float) -> KeyName | None:
        """The key that signed ``token`` if it is valid, unexpired and not taken before
        (it is taken now); None otherwise, whatever the reason."""
        parts = token.strip().split(".")
        if len(parts) != 4 or parts[0] != _VERSION or not parts[1].isdigit():
            return None
        expires = int(parts[1])
        if not now < expires <= now + MAX_LINK_LIFETIME:
            return None
        signed = ".".join(parts[:3])
        found = None
        for key in keys:
            if hmac.compare_digest(_mac(key, signed).encode(), parts[3].encode("utf-8", "replace")):
                found = key.name
        if found is None:
            return None
        self._forget_expired(now)
        nonce = parts[2]
        if nonce in self._taken or len(self._taken) >= self.max_remembered:
            return None
        self._taken[nonce] = expires
        return found

    def _forget_expired(self, now: float) -> None:
        for nonce, expires in list(self._taken.items()):
            if expires <= now:
                del self._taken[nonce]
