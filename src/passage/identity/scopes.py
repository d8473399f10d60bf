"""Token scopes and lifetimes, validated the way the ACS service does.

The SDKs send scopes as free strings (the enum is ``modelAsString``), so the
server is the one that must refuse an unknown scope.
"""

from __future__ import annotations

import enum

from passage.identity.errors import ValidationError

__all__ = [
    "DEFAULT_TOKEN_MINUTES",
    "MAX_TOKEN_MINUTES",
    "MIN_TOKEN_MINUTES",
    "Scope",
    "parse_scopes",
    "token_minutes",
]

MIN_TOKEN_MINUTES = 60
MAX_TOKEN_MINUTES = 1440
DEFAULT_TOKEN_MINUTES = 1440
"""``expiresInMinutes`` bounds and default (ACS identity-model.md)."""


class Scope(enum.StrEnum):
    """What a user access token allows (ACS identity-model.md)."""

    CHAT = "chat"
    VOIP = "voip"
    CHAT_JOIN = "chat.join"
    CHAT_JOIN_LIMITED = "chat.join.limited"
    VOIP_JOIN = "voip.join"


_SCOPES = {scope.value: scope for scope in Scope}


def parse_scopes(value: object, *, target: str = "Scopes") -> tuple[Scope, ...]:
    """A non-empty list of known scopes, duplicates dropped, order kept; else 400."""
    if value is None:
        raise ValidationError(f"{target}: The {target} field is required.", target)
    if not isinstance(value, list) or not value:
        raise ValidationError(f"{target}: expected a non-empty list of scopes.", target)
    scopes: list[Scope] = []
    for item in value:
        scope = _SCOPES.get(item) if isinstance(item, str) else None
        if scope is None:
            known = ", ".join(_SCOPES)
            raise ValidationError(f"Scope {item!r} is invalid. Valid scopes: {known}.", target)
        if scope not in scopes:
            scopes.append(scope)
    return tuple(scopes)


def token_minutes(value: object) -> int:
    """``expiresInMinutes``: absent or null means the default; else an integer in [60, 1440]."""
    if value is None:
        return DEFAULT_TOKEN_MINUTES
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not (MIN_TOKEN_MINUTES <= value <= MAX_TOKEN_MINUTES)
    ):
        raise ValidationError(
            f"ExpiresInMinutes value {value} is invalid. Value must be within the "
            f"[{MIN_TOKEN_MINUTES}, {MAX_TOKEN_MINUTES}] interval.",
            "ExpiresInMinutes",
        )
    return value
