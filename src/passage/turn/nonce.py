"""Stateless nonces for the long-term credential mechanism (RFC 8489 §9.2).

A nonce is a timestamp and an HMAC over it and the client's IP address, so an
unauthenticated request makes the server hold no state, and a nonce taken from
one address is useless from another. It starts with the RFC 8489 §9.2 nonce
cookie advertising the "password algorithms" security feature, so RFC 8489
clients may negotiate SHA-256 keys; RFC 5389 clients treat it as opaque.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

NONCE_COOKIE = "obMatJos2"
"""RFC 8489 §9.2: the nonce cookie that precedes the security feature bits."""

_FEATURE_PASSWORD_ALGORITHMS = 0x800000
"""RFC 8489 §18.1: bit 0 (the most significant of 24) of the security features."""

_FEATURES = base64.b64encode(_FEATURE_PASSWORD_ALGORITHMS.to_bytes(3, "big")).decode()
_MAC_BYTES = 12
"""96 bits of HMAC, as 16 base64url characters: every unauthenticated 401 carries a nonce,
so its length is part of what a spoofed request reflects."""


class NonceIssuer:
    """Mints nonces and says whether one is still fresh for a client IP."""

    def __init__(self, key: bytes, lifetime: float) -> None:
        self._key = key
        self._lifetime = lifetime

    def issue(self, client_ip: str, now: float) -> str:
        """Return a nonce for ``client_ip`` minted at ``now``."""
        stamp = f"{int(now):x}"
        return f"{NONCE_COOKIE}{_FEATURES}{stamp}.{self._mac(stamp, client_ip)}"

    def is_fresh(self, nonce: str, client_ip: str, now: float) -> bool:
        """True if we minted ``nonce`` for ``client_ip`` less than a lifetime ago.

        A forged, foreign or old nonce is answered alike, with 438 and a new
        nonce (RFC 8489 §9.2.4), so a client always has a way forward.
        """
        prefix = NONCE_COOKIE + _FEATURES
        if not nonce.startswith(prefix):
            return False
        stamp, _, mac = nonce[len(prefix) :].partition(".")
        # Compared as bytes: compare_digest refuses non-ASCII str, and a nonce is peer input.
        if not hmac.compare_digest(mac.encode(), self._mac(stamp, client_ip).encode()):
            return False
        minted = int(stamp, 16)  # we minted it, so it is hex
        return minted <= now + 1 and now - minted < self._lifetime

    @staticmethod
    def advertises_password_algorithms(nonce: str) -> bool:
        """True if ``nonce`` carries our cookie with the password-algorithms bit."""
        return nonce.startswith(NONCE_COOKIE + _FEATURES)

    def _mac(self, stamp: str, client_ip: str) -> str:
        digest = hmac.new(self._key, f"{stamp}|{client_ip}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:_MAC_BYTES]).decode("ascii")
