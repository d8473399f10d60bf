"""User access tokens: JWTs the ACS SDKs accept, signed with a key derived from an access key.

The SDKs read only ``exp`` and never check the signature; the Python
``CommunicationTokenCredential`` decodes the payload with *standard* base64,
so the payload segment must not contain ``-`` or ``_`` (reference §3).
In ASCII JSON only ``>``, ``?``, ``~`` and DEL can produce them, so the JSON
written here escapes those four as ``\\u00XX``, whatever the claims hold.

Claims mirror real ACS tokens (``skypeid``, ``scp``, ``csi``, ``iat``, ``exp``,
``acsScope``, ``resourceId``, ``resourceLocation``, ``rgn``) plus ``pti``, the
issue time in milliseconds that revocation watermarks compare against. The
header's ``kid`` is the signing access key's id: rotating that key leaves no
key to verify with. Signature: HS256 with :attr:`AccessKey.token_key`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
from dataclasses import dataclass

from passage.identity.errors import AuthenticationError
from passage.identity.ids import IdentityId
from passage.identity.keys import AccessKey, AccessKeys
from passage.identity.revocations import RevocationList
from passage.identity.scopes import Scope

__all__ = [
    "MAX_TOKEN_LENGTH",
    "TokenClaims",
    "TokenProblem",
    "TokenRejected",
    "mint_token",
    "verify_token",
]

MAX_TOKEN_LENGTH = 4096
"""Longer strings are refused before any decoding."""

_SKYPE_PREFIX = "8:"
"""``skypeid`` is the identity id without this (``acs:<resource>_<guid>``)."""

_SCP = 1792
"""The ``scp`` value real ACS tokens carry."""


class TokenProblem(enum.Enum):
    """Why :func:`verify_token` refused a token, for callers that answer each differently
    (the signaling server's close codes); HTTP callers answer all of them with 401."""

    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown key"
    BAD_SIGNATURE = "bad signature"
    MISSING_CLAIMS = "missing claims"
    EXPIRED = "expired"
    REVOKED = "revoked"
    """Issued before its identity's revocation watermark, or the identity was deleted."""


class TokenRejected(AuthenticationError):
    """An :class:`AuthenticationError` (401) that says which check failed."""

    def __init__(self, problem: TokenProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


_MALFORMED = TokenProblem.MALFORMED


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token says."""

    identity: IdentityId
    scopes: tuple[Scope, ...]
    issued_ms: int
    expires: int
    """Unix seconds."""
    key_id: str
    """The access key that signed the token."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_STANDARD_BASE64_SAFE = str.maketrans({c: f"\\u{ord(c):04x}" for c in ">?~\x7f"})
"""Base64url writes ``-`` or ``_`` for ASCII text only where one of these ends a
3-byte group; a JSON string may always spell them as escapes instead."""


def _json(value: object) -> bytes:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=True)
    return text.translate(_STANDARD_BASE64_SAFE).encode("ascii")


def mint_token(
    key: AccessKey,
    identity: IdentityId,
    scopes: tuple[Scope, ...],
    *,
    issued_ms: int,
    lifetime: int,
    resource_id: str,
    region: str,
) -> tuple[str, int]:
    """A signed token and its ``exp`` (unix seconds), valid ``lifetime`` seconds."""
    issued = issued_ms // 1000
    expires = issued + lifetime
    header = _b64url(_json({"alg": "HS256", "kid": key.key_id, "typ": "JWT"}))
    claims: dict[str, object] = {
        "skypeid": identity.removeprefix(_SKYPE_PREFIX),
        "scp": _SCP,
        "csi": str(issued),
        "exp": expires,
        "rgn": region,
        "acsScope": ",".join(scopes),
        "resourceId": resource_id,
        "resourceLocation": region,
        "iat": issued,
        "pti": issued_ms,
    }
    payload = _b64url(_json(claims))
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(key.token_key, signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}", expires


def verify_token(
    token: str, keys: AccessKeys, revocations: RevocationList, *, now: float
) -> TokenClaims:
    """The claims of a valid token, or :class:`TokenRejected` (a 401) saying what failed.

    Valid means: signed by a current access key, not expired at ``now`` (unix
    seconds), and issued after its identity's revocation watermark.
    """
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise TokenRejected(_MALFORMED, "The access token is malformed.")
    header_b64, payload_b64, signature_b64 = token.split(".")
    try:
        header = json.loads(_b64url_decode(header_b64))
        payload = json.loads(_b64url_decode(payload_b64))
        signature = _b64url_decode(signature_b64)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):  # "[[[[…"
        raise TokenRejected(_MALFORMED, "The access token is malformed.") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise TokenRejected(_MALFORMED, "The access token is malformed.")
    if _b64url(signature) != signature_b64:
        # The decoder skips stray characters and spare bits; one token, one spelling.
        raise TokenRejected(_MALFORMED, "The access token is malformed.")
    key = keys.by_id(str(header.get("kid", ""))) if header.get("alg") == "HS256" else None
    if key is None:
        raise TokenRejected(
            TokenProblem.UNKNOWN_KEY, "The access token was not issued with a current access key."
        )
    expected = hmac.new(
        key.token_key, f"{header_b64}.{payload_b64}".encode("ascii"), hashlib.sha256
    ).digest()
    if not hmac.compare_digest(expected, signature):
        raise TokenRejected(TokenProblem.BAD_SIGNATURE, "The access token signature is invalid.")
    claims = _claims(payload, key.key_id)
    if claims.expires <= now:
        raise TokenRejected(TokenProblem.EXPIRED, "The access token has expired.")
    if revocations.is_revoked(claims.identity, claims.issued_ms):
        raise TokenRejected(TokenProblem.REVOKED, "The access token has been revoked.")
    return claims


def _claims(payload: dict[str, object], key_id: str) -> TokenClaims:
    skypeid, pti, exp, scope = (payload.get(k) for k in ("skypeid", "pti", "exp", "acsScope"))
    if not (
        isinstance(skypeid, str)
        and isinstance(pti, int)
        and isinstance(exp, int)
        and isinstance(scope, str)
    ):
        raise TokenRejected(TokenProblem.MISSING_CLAIMS, "The access token lacks required claims.")
    try:
        scopes = tuple(Scope(item) for item in scope.split(",") if item)
    except ValueError:
        raise TokenRejected(
            TokenProblem.MISSING_CLAIMS, "The access token has an unknown scope."
        ) from None
    identity = IdentityId(_SKYPE_PREFIX + skypeid)
    return TokenClaims(identity, scopes, pti, exp, key_id)
