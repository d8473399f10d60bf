"""Who may join: the token, wherever the client put it, and its standing while connected."""

from __future__ import annotations

import uuid

import pytest

from passage.identity.ids import IdentityId, new_identity_id
from passage.identity.keys import AccessKey, AccessKeys, KeyName
from passage.identity.scopes import Scope
from passage.identity.state import IdentityState
from passage.identity.tokens import mint_token
from passage.signal.admission import admit, offered_token, standing
from passage.signal.codes import CloseCode, SignalError

RESOURCE = "2dee53b4-368b-45b4-ab52-8493fb117652"
ALICE = new_identity_id(RESOURCE, uuid.UUID(int=1))
PRIMARY = AccessKey(KeyName.PRIMARY, bytes(range(32)))
SECONDARY = AccessKey(KeyName.SECONDARY, bytes(range(32, 64)))
ISSUED_MS = 1_722_933_412_345
NOW = ISSUED_MS / 1000 + 1


def state() -> IdentityState:
    return IdentityState(RESOURCE, "westeurope", AccessKeys(PRIMARY, SECONDARY))


def token(
    scopes: tuple[Scope, ...] = (Scope.VOIP,), who: IdentityId = ALICE, lifetime: int = 3600
) -> str:
    text, _ = mint_token(
        PRIMARY, who, scopes, issued_ms=ISSUED_MS, lifetime=lifetime, resource_id=RESOURCE,
        region="westeurope",
    )  # fmt: skip
    return text


def refusal(text: str | None, identities: IdentityState, now: float = NOW) -> CloseCode:
    with pytest.raises(SignalError) as refused:
        admit(text, identities, now)
    return refused.value.code


def test_the_header_wins_then_the_query_then_the_subprotocol() -> None:
    protocols = ["passage.signal.v1", "bearer.P"]
    assert offered_token("Bearer H", "Q", protocols) == "H"
    assert offered_token("bearer  H ", None, []) == "H"
    assert offered_token(None, "Q", protocols) == "Q"
    assert offered_token("Basic xyz", None, protocols) == "P"
    assert offered_token(None, "", ["passage.signal.v1"]) is None


def test_a_voip_token_is_admitted() -> None:
    for scopes in ((Scope.VOIP,), (Scope.CHAT, Scope.VOIP_JOIN)):
        assert admit(token(scopes), state(), NOW).identity == ALICE


def test_each_refusal_has_its_close_code() -> None:
    identities = state()
    assert refusal(None, identities) is CloseCode.UNAUTHORIZED
    assert refusal("", identities) is CloseCode.UNAUTHORIZED
    assert refusal("a.b.c", identities) is CloseCode.UNAUTHORIZED
    assert refusal(token() + "x", identities) is CloseCode.UNAUTHORIZED  # signature
    assert refusal(token((Scope.CHAT,)), identities) is CloseCode.FORBIDDEN
    assert refusal(token(lifetime=60), identities, now=NOW + 60) is CloseCode.TOKEN_EXPIRED
    identities.revocations.revoke(ALICE, ISSUED_MS + 1, now=NOW)
    assert refusal(token(), identities) is CloseCode.TOKEN_REVOKED


def test_a_deleted_identity_is_refused_as_revoked() -> None:
    identities = state()
    identities.revocations.delete(ALICE, now=NOW)
    assert refusal(token(), identities) is CloseCode.TOKEN_REVOKED


def test_standing_while_connected() -> None:
    identities = state()
    claims = admit(token(lifetime=60), identities, NOW)
    assert standing(claims, identities, NOW) is None
    expired = standing(claims, identities, ISSUED_MS // 1000 + 60)
    assert expired is not None and expired.code is CloseCode.TOKEN_EXPIRED
    identities.keys = AccessKeys(AccessKey(KeyName.PRIMARY, bytes(range(64, 96))), SECONDARY)
    rotated = standing(claims, identities, NOW)
    assert rotated is not None and rotated.code is CloseCode.UNAUTHORIZED
    identities.revocations.revoke(ALICE, ISSUED_MS + 1, now=NOW)
    revoked = standing(claims, identities, NOW)
    assert revoked is not None and revoked.code is CloseCode.TOKEN_REVOKED
