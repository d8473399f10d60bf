"""Relay credentials bound to an identity and to the access key that minted them.

They are TURN REST credentials (draft-uberti-behave-turn-rest-00 §2.2, as
coturn's ``use-auth-secret``): the password is ``base64(HMAC-SHA1(secret,
username))``, here with :attr:`AccessKey.relay_secret` as the secret, and the
username says everything the TURN server must check without a database::

    <expiry>:<key id>.<issued ms>.<who>

``<who>`` is the identity id without ``8:acs:`` (``<resource>_<guid>``), or
``anonymous`` for a configuration requested without ``id``. No ``:`` follows the
first, so REST parsers that split there still find the expiry.

:class:`IdentityRelayUsers` is the TURN core's credential source for them: it
refuses an expired username, one whose key was rotated away, and one issued
before its identity's revocation watermark (or after its deletion), at the
next request that authenticates: Allocate, Refresh, CreatePermission, ChannelBind.

The per-user allocation quota (``max_allocations_per_user``) counts an
identity's credentials together (one user, however many configurations it
asked for), and each anonymous credential on its own: they all bill to
``anonymous``, but the application hands each to one user, and a quota shared
by all of them would let one holder lock out every other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from passage.identity.ids import ID_PREFIX, IdentityId, short_form
from passage.identity.keys import AccessKey
from passage.identity.state import IdentityState
from passage.turn.auth import Credential, Refusal
from passage.turn.credentials import rest_password

__all__ = ["ANONYMOUS", "IdentityRelayUsers", "RelayUsername", "mint_relay_credential"]

ANONYMOUS = "anonymous"
"""``<who>`` and the billed subject of credentials requested without an identity."""

_USERNAME = re.compile(r"(\d{1,12}):([0-9a-f]{12})\.(\d{1,16})\.([0-9a-z_-]{1,80})")


@dataclass(frozen=True, slots=True)
class RelayUsername:
    """The parts of a relay credential's username."""

    expires: int
    key_id: str
    issued_ms: int
    identity: IdentityId | None

    @property
    def subject(self) -> str:
        """Who the relayed bytes are billed to."""
        return self.identity if self.identity is not None else ANONYMOUS

    def __str__(self) -> str:
        who = short_form(self.identity) if self.identity is not None else ANONYMOUS
        return f"{self.expires}:{self.key_id}.{self.issued_ms}.{who}"

    @classmethod
    def parse(cls, username: str) -> RelayUsername | None:
        """The parts of ``username``, or None if it is not a relay credential of ours."""
        match = _USERNAME.fullmatch(username)
        if match is None:
            return None
        expires, key_id, issued_ms, who = match.groups()
        identity = None if who == ANONYMOUS else IdentityId(ID_PREFIX + who)
        return cls(int(expires), key_id, int(issued_ms), identity)


def mint_relay_credential(
    key: AccessKey, identity: IdentityId | None, *, issued_ms: int, expires: int
) -> tuple[str, str]:
    """``(username, credential)`` for ``identity``, valid until ``expires`` (unix seconds)."""
    username = str(RelayUsername(expires, key.key_id, issued_ms, identity))
    return username, rest_password(key.relay_secret, username)


@dataclass(frozen=True, slots=True)
class IdentityRelayUsers:
    """The TURN credential source for relay credentials minted by the API."""

    state: IdentityState

    def lookup(self, username: str, now: float) -> Credential | Refusal:
        parsed = RelayUsername.parse(username)
        if parsed is None:
            return Refusal.UNKNOWN_USER
        if parsed.expires < now:
            return Refusal.EXPIRED
        key = self.state.keys.by_id(parsed.key_id)
        if key is None:
            return Refusal.KEY_ROTATED
        if parsed.identity is not None and self.state.revocations.is_revoked(
            parsed.identity, parsed.issued_ms
        ):
            return Refusal.REVOKED
        password = rest_password(key.relay_secret, username)
        # Anonymous configurations all bill to "anonymous", but each was handed to
        # one user by the application: each has an allocation quota of its own.
        quota = username if parsed.identity is None else None
        # Only an identity can be revoked: its standing is what the store last said.
        from_store = parsed.identity is not None
        return Credential(username, parsed.subject, (password,), quota, from_store=from_store)
