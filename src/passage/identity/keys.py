"""Access keys: the two secrets that authenticate management calls and sign what they mint.

Like an ACS resource, a Passage node has a *primary* and a *secondary* key, so
one can be rotated while callers move to the other. A key is 32 random bytes,
written in connection strings as standard base64 (``accesskey=...``).

Everything a key mints is bound to it: user tokens are signed with a key
derived from it, relay credentials are keyed with another, and both carry the
key's :func:`key_id`. Rotating a key therefore invalidates, at once, every
token and relay credential it minted (ACS: "Rotation of access keys revokes all
active access tokens that were created by using a former access key").
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["KEY_BYTES", "AccessKey", "AccessKeys", "KeyName", "decode_key"]

KEY_BYTES = 32


class KeyName(enum.StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"


def decode_key(text: str) -> bytes:
    """The bytes of a base64 access key; raises :class:`ValueError` if it is not one."""
    try:
        secret = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        raise ValueError("an access key is standard base64") from None
    if not secret:
        raise ValueError("an access key may not be empty")
    return secret


@dataclass(frozen=True, slots=True)
class AccessKey:
    """One named key. Its secret never appears in ``repr``."""

    name: KeyName
    secret: bytes = field(repr=False)

    @property
    def text(self) -> str:
        """The key as a connection string carries it."""
        return base64.b64encode(self.secret).decode("ascii")

    @property
    def key_id(self) -> str:
        """A short public fingerprint naming this key in tokens and relay usernames.

        12 hex digits of a hash that reveals nothing of the secret; a rotated key
        gets a new id, so whatever carries the old one no longer finds its key.
        """
        return hashlib.sha256(b"passage key id\0" + self.secret).hexdigest()[:12]

    @property
    def token_key(self) -> bytes:
        """HMAC-SHA256 key for user access tokens (JWT ``HS256``)."""
        return _derive(self.secret, b"user access token")

    @property
    def relay_secret(self) -> str:
        """The TURN REST secret relay credentials are keyed with (draft-uberti §2.2)."""
        return base64.b64encode(_derive(self.secret, b"relay credential")).decode("ascii")


def _derive(secret: bytes, purpose: bytes) -> bytes:
    # One key, several uses: separate them so a token signature can never be
    # replayed as a relay password, nor either as a request signature.
    return hmac.new(secret, b"passage v1\0" + purpose, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class AccessKeys:
    """The node's current primary and secondary key."""

    primary: AccessKey
    secondary: AccessKey

    def __iter__(self) -> Iterator[AccessKey]:
        return iter((self.primary, self.secondary))

    def by_id(self, key_id: str) -> AccessKey | None:
        """The current key with this :attr:`AccessKey.key_id`, if any."""
        for key in self:
            # surrogatepass: a token's "kid" is any JSON string, lone surrogates included.
            if hmac.compare_digest(key.key_id.encode(), key_id.encode("utf-8", "surrogatepass")):
                return key
        return None

    def named(self, name: KeyName) -> AccessKey:
        return self.primary if name is KeyName.PRIMARY else self.secondary
