"""What a handler is given and what it returns: no aiohttp in sight."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from passage.api.service import IdentityService
from passage.http_errors import HttpError
from passage.hybrid.admin import HybridAdmin
from passage.identity.keys import AccessKey
from passage.identity.tokens import TokenClaims
from passage.live import LiveView
from passage.store.ledger import UsageLedger

__all__ = ["Auth", "Call", "Reply"]


class Auth(enum.Enum):
    NONE = "none"
    HMAC = "hmac"
    HMAC_OR_USER_TOKEN = "hmac or user token"
    """HMAC, or ``Authorization: Bearer <user access token>`` with a voip scope."""


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated request, as handlers see it."""

    service: IdentityService
    ledger: UsageLedger
    key: AccessKey | None
    """The access key that signed the request (or the user token); None without auth."""
    user: TokenClaims | None
    """The user token's claims when the caller used one instead of HMAC."""
    params: Mapping[str, str]
    query: Mapping[str, str]
    body: Mapping[str, object]
    client_ip: str | None
    hybrid: HybridAdmin | None = None
    """Hybrid Connections administration; None where the server runs without it."""
    live: LiveView | None = None
    """This node's live state (allocations, listeners...); None where there is none."""

    @property
    def signing_key(self) -> AccessKey:
        """The caller's access key; only routes that authenticate ask for it."""
        assert self.key is not None, "route without authentication asked for a key"
        return self.key

    @property
    def hybrid_admin(self) -> HybridAdmin:
        """The Hybrid Connections administration; 503 where the server runs without it."""
        if self.hybrid is None:
            raise HttpError(503, "ServiceUnavailable", "Hybrid Connections are not enabled here.")
        return self.hybrid


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: object = None
    """JSON-serializable, or None for no body."""
    headers: Mapping[str, str] = field(default_factory=dict)
    text: str | None = None
    """A non-JSON body (CSV), sent as is."""
