"""User access tokens: minted so the ACS SDKs accept them, verified by us (reference §3)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from identity_values import ALICE, BOB, KEYS, PRIMARY, RESOURCE_ID, ROTATED, SECONDARY, identity

from passage.identity.errors import AuthenticationError
from passage.identity.ids import IdentityId
from passage.identity.keys import AccessKey, AccessKeys
from passage.identity.revocations import RevocationList
from passage.identity.scopes import Scope
from passage.identity.tokens import (
    MAX_TOKEN_LENGTH,
    TokenClaims,
    TokenProblem,
    TokenRejected,
    mint_token,
    verify_token,
)

ISSUED_MS = 1_722_933_412_345
ISSUED = ISSUED_MS // 1000
DAY = 86_400

MALFORMED = "The access token is malformed."
NOT_CURRENT = "The access token was not issued with a current access key."
BAD_SIGNATURE = "The access token signature is invalid."
EXPIRED = "The access token has expired."
REVOKED = "The access token has been revoked."
MISSING_CLAIMS = "The access token lacks required claims."
UNKNOWN_SCOPE = "The access token has an unknown scope."

PROBLEMS = {
    MALFORMED: TokenProblem.MALFORMED,
    NOT_CURRENT: TokenProblem.UNKNOWN_KEY,
    BAD_SIGNATURE: TokenProblem.BAD_SIGNATURE,
    EXPIRED: TokenProblem.EXPIRED,
    REVOKED: TokenProblem.REVOKED,
    MISSING_CLAIMS: TokenProblem.MISSING_CLAIMS,
    UNKNOWN_SCOPE: TokenProblem.MISSING_CLAIMS,
}
"""Each refusal's message and the problem it reports (the signaling server's close codes)."""


def mint(
    key: AccessKey = PRIMARY,
    who: IdentityId = ALICE,
    scopes: tuple[Scope, ...] = (Scope.CHAT, Scope.VOIP),
    *,
    issued_ms: int = ISSUED_MS,
    lifetime: int = DAY,
    region: str = "westeurope",
) -> tuple[str, int]:
    return mint_token(
        key,
        who,
        scopes,
        issued_ms=issued_ms,
        lifetime=lifetime,
        resource_id=RESOURCE_ID,
        region=region,
    )


def refusal(
    token: str,
    keys: AccessKeys = KEYS,
    revocations: RevocationList | None = None,
    now: float = ISSUED + 1,
) -> str:
    with pytest.raises(AuthenticationError) as refused:
        verify_token(token, keys, revocations or RevocationList(), now=now)
    assert (refused.value.status, refused.value.code) == (401, "Denied")
    assert isinstance(refused.value, TokenRejected)
    assert refused.value.problem is PROBLEMS[refused.value.message]
    return refused.value.message


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The decoded header and payload of ``token``."""
    header, payload, _ = token.split(".")
    return b64url_json(header), b64url_json(payload)


def signed(header: object, payload: object, key: AccessKey = PRIMARY) -> str:
    """A token over any header and payload, with a valid HS256 signature by ``key``."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    mac = hmac.new(key.token_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def sdk_expiry(token: str) -> int | None:
    """What the Python SDK's ``create_access_token`` reads as the expiry; None if not installed."""
    try:
        from azure.communication.identity._shared.utils import create_access_token
    except ImportError:  # pragma: no cover - the dev extra installs it
        return None
    return int(create_access_token(token).expires_on)


# --- round trip ---------------------------------------------------------------------------


def test_mint_then_verify_round_trips_the_claims() -> None:
    token, expires = mint()
    assert expires == ISSUED + DAY
    claims = verify_token(token, KEYS, RevocationList(), now=ISSUED + 1)
    assert claims == TokenClaims(
        identity=ALICE,
        scopes=(Scope.CHAT, Scope.VOIP),
        issued_ms=ISSUED_MS,
        expires=ISSUED + DAY,
        key_id=PRIMARY.key_id,
    )


def test_a_token_of_the_secondary_key_names_it() -> None:
    token, _ = mint(SECONDARY, BOB, (Scope.VOIP_JOIN,))
    claims = verify_token(token, KEYS, RevocationList(), now=ISSUED)
    assert (claims.identity, claims.scopes, claims.key_id) == (
        BOB,
        (Scope.VOIP_JOIN,),
        SECONDARY.key_id,
    )


def test_claims_mirror_real_acs_tokens() -> None:
    """Reference §3: the claim set of real ACS tokens, plus ``pti`` in milliseconds."""
    header, payload = segments(mint()[0])
    assert header == {"alg": "HS256", "kid": PRIMARY.key_id, "typ": "JWT"}
    assert payload == {
        "skypeid": ALICE.removeprefix("8:"),
        "scp": 1792,
        "csi": str(ISSUED),
        "exp": ISSUED + DAY,
        "rgn": "westeurope",
        "acsScope": "chat,voip",
        "resourceId": RESOURCE_ID,
        "resourceLocation": "westeurope",
        "iat": ISSUED,
        "pti": ISSUED_MS,
    }


def test_the_python_sdk_reads_the_expiry() -> None:
    """``create_access_token`` and ``CommunicationTokenCredential`` (reference §3)."""
    user_credential = pytest.importorskip("azure.communication.identity._shared.user_credential")
    token, expires = mint()
    assert sdk_expiry(token) == expires
    assert user_credential.CommunicationTokenCredential(token).get_token().expires_on == expires


REGION_CHARS = st.characters(exclude_categories=()) | st.sampled_from(">?~\x7f>?~")


@settings(max_examples=300, deadline=None)
@given(
    region=st.text(REGION_CHARS, max_size=24),
    who=st.integers(0, 2**128 - 1),
    scopes=st.lists(st.sampled_from(Scope), unique=True, max_size=5).map(tuple),
    issued_ms=st.integers(0, 10**13),
    lifetime=st.integers(3600, DAY),
)
def test_payload_decodes_with_standard_base64(
    region: str, who: int, scopes: tuple[Scope, ...], issued_ms: int, lifetime: int
) -> None:
    """The Python SDK runs ``b64decode(segment + "==")``: no ``-`` or ``_`` may appear,
    whatever the region holds (``>``, ``?``, ``~`` and DEL are what would put them there)."""
    token, expires = mint(
        who=identity(who), scopes=scopes, issued_ms=issued_ms, lifetime=lifetime, region=region
    )
    segment = token.split(".")[1]
    assert "-" not in segment and "_" not in segment
    payload = json.loads(base64.b64decode(segment + "==").decode("ascii"))
    assert payload["exp"] == expires and isinstance(payload["exp"], int)
    assert payload["rgn"] == region
    assert sdk_expiry(token) in (expires, None)
    claims = verify_token(token, KEYS, RevocationList(), now=expires - 1)
    assert (claims.identity, claims.scopes, claims.issued_ms) == (identity(who), scopes, issued_ms)


# --- refusals -------------------------------------------------------------------------------


def test_valid_until_the_second_before_exp() -> None:
    token, expires = mint()
    assert verify_token(token, KEYS, RevocationList(), now=expires - 0.001).expires == expires
    assert refusal(token, now=expires) == EXPIRED
    assert refusal(token, now=expires + DAY) == EXPIRED


def test_refused_when_issued_before_the_watermark() -> None:
    token, _ = mint()
    revocations = RevocationList()
    revocations.revoke(ALICE, ISSUED_MS, now=ISSUED)
    assert verify_token(token, KEYS, revocations, now=ISSUED).identity == ALICE
    revocations.revoke(ALICE, ISSUED_MS + 1, now=ISSUED)
    assert refusal(token, revocations=revocations) == REVOKED


def test_revoking_one_identity_leaves_the_others() -> None:
    token, _ = mint(who=BOB)
    revocations = RevocationList()
    revocations.revoke(ALICE, ISSUED_MS + 1, now=ISSUED)
    assert verify_token(token, KEYS, revocations, now=ISSUED).identity == BOB


def test_refused_after_delete() -> None:
    token, _ = mint()
    revocations = RevocationList()
    revocations.delete(ALICE, now=ISSUED)
    assert refusal(token, revocations=revocations) == REVOKED


def test_refused_once_its_key_is_rotated() -> None:
    """ACS: rotating a key revokes every token it minted (reference §5)."""
    by_primary, _ = mint(PRIMARY)
    by_secondary, _ = mint(SECONDARY)
    rotated = AccessKeys(ROTATED, SECONDARY)
    assert refusal(by_primary, keys=rotated) == NOT_CURRENT
    assert verify_token(by_secondary, rotated, RevocationList(), now=ISSUED).key_id == (
        SECONDARY.key_id
    )


def test_refused_when_the_payload_is_tampered() -> None:
    token, _ = mint()
    header, _, signature = token.split(".")
    _, claims = segments(token)
    longer = b64url(json.dumps({**claims, "exp": claims["exp"] + DAY}).encode())
    assert refusal(f"{header}.{longer}.{signature}") == BAD_SIGNATURE
    other = b64url(json.dumps({**claims, "skypeid": BOB.removeprefix("8:")}).encode())
    assert refusal(f"{header}.{other}.{signature}") == BAD_SIGNATURE


def test_refused_when_the_signature_is_tampered() -> None:
    token, _ = mint()
    header, payload, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert refusal(f"{header}.{payload}.{flipped}") == BAD_SIGNATURE
    assert refusal(f"{header}.{payload}.") == BAD_SIGNATURE


def test_refused_when_signed_with_the_other_key_under_this_kid() -> None:
    token, _ = mint(PRIMARY)
    header, payload, _ = token.split(".")
    mac = hmac.new(SECONDARY.token_key, f"{header}.{payload}".encode(), hashlib.sha256)
    assert refusal(f"{header}.{payload}.{b64url(mac.digest())}") == BAD_SIGNATURE


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.!!!.!!!",
        "é.é.é",
        ".".join([b64url(b"not json"), b64url(b"{}"), ""]),
        ".".join([b64url(b"[]"), b64url(b"{}"), ""]),
        ".".join([b64url(b"{}"), b64url(b"[1]"), ""]),
        ".".join([b64url(b"{}"), b64url(b"\xff\xfe"), ""]),
        ".".join([b64url(b"{}"), b64url(b"[" * 2500), ""]),  # deeper than the recursion limit
    ],
)
def test_refuses_malformed_tokens(token: str) -> None:
    assert refusal(token) == MALFORMED


@pytest.mark.parametrize("alg", ["none", "RS256", "HS512", "hs256", None])
def test_refuses_algorithms_other_than_hs256(alg: str | None) -> None:
    """Even with a valid HS256 MAC: the header says what was meant, and it must be HS256."""
    _, claims = segments(mint()[0])
    header = {"alg": alg, "kid": PRIMARY.key_id, "typ": "JWT"}
    assert refusal(signed(header, claims)) == NOT_CURRENT
    as_hs256 = signed({**header, "alg": "HS256"}, claims)
    assert verify_token(as_hs256, KEYS, RevocationList(), now=ISSUED).identity == ALICE


@pytest.mark.parametrize("kid", ["", "0" * 12, "\ud800", 12, None, ["x"]])
def test_refuses_a_kid_that_names_no_current_key(kid: object) -> None:
    _, claims = segments(mint()[0])
    assert refusal(signed({"alg": "HS256", "kid": kid}, claims)) == NOT_CURRENT


def test_refuses_a_token_longer_than_the_limit() -> None:
    """A well-signed token is refused on length alone, before any decoding."""
    short, _ = mint(region="r" * 1000)
    long, _ = mint(region="r" * (MAX_TOKEN_LENGTH * 3 // 4))
    assert verify_token(short, KEYS, RevocationList(), now=ISSUED).identity == ALICE
    assert len(long) > MAX_TOKEN_LENGTH
    assert refusal(long) == MALFORMED


@pytest.mark.parametrize("missing", ["skypeid", "pti", "exp", "acsScope"])
def test_refuses_a_signed_token_without_a_required_claim(missing: str) -> None:
    header, claims = segments(mint()[0])
    del claims[missing]
    assert refusal(signed(header, claims)) == "The access token lacks required claims."


@pytest.mark.parametrize(("claim", "value"), [("exp", "1723019812"), ("pti", 1.5)])
def test_refuses_a_signed_token_with_claims_of_the_wrong_type(claim: str, value: object) -> None:
    header, claims = segments(mint()[0])
    assert refusal(signed(header, {**claims, claim: value})) == (
        "The access token lacks required claims."
    )


def test_refuses_a_signed_token_with_an_unknown_scope() -> None:
    header, claims = segments(mint()[0])
    assert refusal(signed(header, {**claims, "acsScope": "chat,admin"})) == (
        "The access token has an unknown scope."
    )


# --- fuzz: only the documented error ------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.text(st.sampled_from("eyJ.-_=AQ9\udcff"), max_size=200))
def test_verify_token_on_any_text_raises_only_authentication_error(text: str) -> None:
    with pytest.raises(AuthenticationError):
        verify_token(text, KEYS, RevocationList(), now=ISSUED)


@settings(max_examples=300, deadline=None)
@given(
    header=st.fixed_dictionaries({"alg": st.just("HS256"), "kid": st.just(PRIMARY.key_id)}) | JSON,
    payload=JSON,
)
def test_verify_token_on_any_signed_json_raises_only_authentication_error(
    header: object, payload: object
) -> None:
    """Well-signed but arbitrary JSON reaches the claim checks; they too only refuse."""
    with pytest.raises(AuthenticationError):
        verify_token(signed(header, payload), KEYS, RevocationList(), now=ISSUED)


def test_a_signature_with_stray_characters_is_refused() -> None:
    """The signature segment must be exactly the base64url of the MAC: no second spelling."""
    token, _ = mint_token(
        PRIMARY, ALICE, (Scope.VOIP,), issued_ms=ISSUED_MS, lifetime=3600,
        resource_id=RESOURCE_ID, region="local",
    )  # fmt: skip
    verify_token(token, KEYS, RevocationList(), now=ISSUED + 1)
    with pytest.raises(AuthenticationError, match="malformed"):
        verify_token(token + "*", KEYS, RevocationList(), now=ISSUED + 1)
