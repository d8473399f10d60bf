"""Who may join a room: a user access token with the ``voip`` scope, wherever the client put it.

Browsers cannot set headers on a WebSocket, so the token is taken, in this
order, from ``Authorization: Bearer TOKEN``, the ``access_token`` query
parameter, or a ``Sec-WebSocket-Protocol`` entry ``bearer.TOKEN`` offered
alongside :data:`SUBPROTOCOL` (which the server then selects, so the token is
never echoed back). It is verified as the relay configuration verifies it
(:func:`passage.identity.tokens.verify_token`: signature, a current key,
expiry, the revocation watermark, a deleted identity), and each refusal has
its close code. :func:`standing` re-checks an admitted token while its
session lasts.
"""

from __future__ import annotations

from collections.abc import Sequence

from passage.identity.scopes import Scope
from passage.identity.state import IdentityState
from passage.identity.tokens import TokenClaims, TokenProblem, TokenRejected, verify_token
from passage.signal.codes import CloseCode, SignalError

__all__ = ["SUBPROTOCOL", "TOKEN_PROTOCOL_PREFIX", "admit", "offered_token", "standing"]

SUBPROTOCOL = "passage.signal.v1"
"""The subprotocol the server selects when a client offers it."""

TOKEN_PROTOCOL_PREFIX = "bearer."
"""A subprotocol entry ``bearer.TOKEN`` carries the token (JWTs are valid subprotocol tokens)."""

VOIP_SCOPES = frozenset({Scope.VOIP, Scope.VOIP_JOIN})
"""Scopes that admit a member: those the relay configuration accepts."""

_CLOSE_CODES: dict[TokenProblem, CloseCode] = {
    TokenProblem.MALFORMED: CloseCode.UNAUTHORIZED,
    TokenProblem.UNKNOWN_KEY: CloseCode.UNAUTHORIZED,
    TokenProblem.BAD_SIGNATURE: CloseCode.UNAUTHORIZED,
    TokenProblem.MISSING_CLAIMS: CloseCode.UNAUTHORIZED,
    TokenProblem.EXPIRED: CloseCode.TOKEN_EXPIRED,
    TokenProblem.REVOKED: CloseCode.TOKEN_REVOKED,
}


def offered_token(
    authorization: str | None, query_token: str | None, protocols: Sequence[str]
) -> str | None:
    """The token the client offered: header, then query, then subprotocol; None if none."""
    if authorization is not None and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    if query_token:
        return query_token
    for protocol in protocols:
        if protocol.startswith(TOKEN_PROTOCOL_PREFIX):
            return protocol[len(TOKEN_PROTOCOL_PREFIX) :]
    return None


def admit(token: str | None, state: IdentityState, now: float) -> TokenClaims:
    """The claims of a token that may join, or :class:`SignalError` with the close code."""
    if not token:
        raise SignalError(CloseCode.UNAUTHORIZED, "a user access token is required")
    try:
        claims = verify_token(token, state.keys, state.revocations, now=now)
    except TokenRejected as refused:
        raise SignalError(_CLOSE_CODES[refused.problem], refused.message) from None
    if not VOIP_SCOPES.intersection(claims.scopes):
        raise SignalError(CloseCode.FORBIDDEN, "the access token has no voip scope")
    return claims


def standing(claims: TokenClaims, state: IdentityState, now: float) -> SignalError | None:
    """Why an admitted session must close now (expired, revoked, key rotated), or None."""
    if claims.expires <= now:
        return SignalError(CloseCode.TOKEN_EXPIRED, "The access token has expired.")
    if state.revocations.is_revoked(claims.identity, claims.issued_ms):
        return SignalError(CloseCode.TOKEN_REVOKED, "The access token has been revoked.")
    if state.keys.by_id(claims.key_id) is None:
        return SignalError(CloseCode.UNAUTHORIZED, "The access key of the token was rotated.")
    return None
