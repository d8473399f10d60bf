"""Every way a request can fail, over real sockets, with its status and ACS error body.

Reference ``shared/reference/acs-identity-relay.md``: §1 (operations, error body
``{"error": {"code", "message", "target"?}}``, ``expiresInMinutes`` in [60, 1440],
relay ``ttl`` capped at 172800 s) and §2 (HMAC-SHA256 over the raw target, the
content hash of the raw body, the date window, Bearer tokens refused on HMAC routes).
"""

from __future__ import annotations

import datetime
import logging
import os
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api_harness import (
    IDENTITY_VERSION,
    RELAY_PATH,
    RELAY_VERSION,
    Answer,
    Api,
    api_server,
    identity_path,
    now_date,
)
from passage.api.server import MAX_BODY_BYTES
from passage.identity.ids import ID_PREFIX

_ABSENT = object()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(tmp_path) as started:
        yield started


def assert_error(
    answer: Answer, status: int, code: str | None = None, target: object = _ABSENT
) -> str:
    """``answer`` is ``status`` with a well-formed ACS error body; its message."""
    assert answer.status == status, answer
    assert answer.headers["Content-Type"].startswith("application/json")
    assert set(answer.body) == {"error"}, answer.body
    error = answer.body["error"]
    assert set(error) <= {"code", "message", "target"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    if target is not _ABSENT:
        assert error.get("target") == target, error
    message: str = error["message"]
    return message


def quoted(identity: str) -> str:
    """The id as the sync Python and JS SDKs put it in a path (``8%3Aacs%3A…``)."""
    return urllib.parse.quote(identity, safe="")


def parse_expiry(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


def now() -> float:
    return datetime.datetime.now(datetime.UTC).timestamp()


# --- authentication (reference §2) ------------------------------------------------


async def test_signature_with_a_wrong_key_is_401_denied(api: Api) -> None:
    answer = await api.request("POST", identity_path(), secret=os.urandom(32))
    message = assert_error(answer, 401, "Denied")
    assert "signature" in message


async def test_signature_over_another_target_is_401(api: Api) -> None:
    answer = await api.request(
        "POST", identity_path(), signed_path="/identities?api-version=2022-06-01"
    )
    assert_error(answer, 401, "Denied")


async def test_body_other_than_the_signed_one_is_401_content_hash(api: Api) -> None:
    """Sign one body, send another: the content hash of the raw bytes no longer matches."""
    answer = await api.request(
        "POST",
        identity_path(),
        {"createTokenWithScopes": ["voip"]},
        signed_body=b'{"createTokenWithScopes":["chat"]}',
    )
    message = assert_error(answer, 401, "Denied")
    assert message == "Request 'x-ms-content-sha256' differs from generated content hash."


@pytest.mark.parametrize("offset", [-20 * 60, +20 * 60], ids=["stale", "future"])
async def test_date_outside_fifteen_minutes_is_401(api: Api, offset: int) -> None:
    answer = await api.request("POST", identity_path(), date=now_date(offset))
    message = assert_error(answer, 401, "Denied")
    assert "x-ms-date" in message


async def test_date_within_the_window_is_accepted(api: Api) -> None:
    answer = await api.request("POST", identity_path(), date=now_date(-10 * 60))
    assert answer.status == 201, answer


async def test_missing_authorization_is_401(api: Api) -> None:
    answer = await api.request("POST", identity_path(), sign=False)
    message = assert_error(answer, 401, "Denied")
    assert "HMAC-SHA256" in message


async def test_bearer_token_on_an_hmac_only_route_is_401(api: Api) -> None:
    identity = await api.create_identity()
    token = await api.issue_token(identity, ["voip", "chat"])
    for path in (identity_path(), identity_path(f"/{quoted(identity)}/:issueAccessToken")):
        answer = await api.request(
            "POST", path, {"scopes": ["chat"]}, authorization=f"Bearer {token}"
        )
        assert_error(answer, 401, "Denied")


# --- unknown identities -------------------------------------------------------------


async def unknown_identity(api: Api, kind: str) -> str:
    if kind == "other-resource":
        return f"{ID_PREFIX}{uuid.uuid4()}_{uuid.uuid4()}"
    if kind == "malformed":
        return "8:acs:not-an-identity"
    identity = await api.create_identity()
    assert (await api.request("DELETE", identity_path(f"/{quoted(identity)}"))).status == 204
    return identity


@pytest.mark.parametrize("kind", ["other-resource", "malformed", "deleted"])
@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("POST", "/:issueAccessToken", {"scopes": ["chat"]}),
        ("POST", "/:revokeAccessTokens", None),
        ("DELETE", "", None),
    ],
    ids=["issueAccessToken", "revokeAccessTokens", "delete"],
)
async def test_unknown_identity_is_404(
    api: Api, kind: str, method: str, suffix: str, body: object
) -> None:
    identity = await unknown_identity(api, kind)
    path = identity_path(f"/{quoted(identity)}{suffix}")
    answer = await (api.request(method, path, body) if body else api.request(method, path))
    assert_error(answer, 404, "IdentityNotFound", "id")


@pytest.mark.parametrize("kind", ["other-resource", "malformed", "deleted"])
async def test_relay_configuration_for_an_unknown_id_is_404(api: Api, kind: str) -> None:
    identity = await unknown_identity(api, kind)
    answer = await api.request("POST", RELAY_PATH, {"id": identity})
    assert_error(answer, 404, "IdentityNotFound")


# --- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [{}, {"scopes": None}, {"scopes": []}, {"scopes": ["bogus"]}, {"scopes": "chat"}],
    ids=["missing", "null", "empty", "unknown", "not-a-list"],
)
async def test_bad_scopes_are_400_with_target(api: Api, body: object) -> None:
    identity = await api.create_identity()
    answer = await api.request("POST", identity_path(f"/{identity}/:issueAccessToken"), body)
    assert_error(answer, 400, "ValidationError", "Scopes")


@pytest.mark.parametrize("scopes", [["bogus"], [], "chat", False], ids=repr)
async def test_bad_create_token_scopes_are_400(api: Api, scopes: object) -> None:
    answer = await api.request("POST", identity_path(), {"createTokenWithScopes": scopes})
    assert_error(answer, 400, "ValidationError", "CreateTokenWithScopes")


@pytest.mark.parametrize("minutes", [59, 1441, "60", 60.5, True], ids=repr)
async def test_expires_in_minutes_out_of_range_is_400(api: Api, minutes: object) -> None:
    identity = await api.create_identity()
    answer = await api.request(
        "POST",
        identity_path(f"/{identity}/:issueAccessToken"),
        {"scopes": ["chat"], "expiresInMinutes": minutes},
    )
    message = assert_error(answer, 400, "ValidationError", "ExpiresInMinutes")
    assert "[60, 1440]" in message
    answer = await api.request(
        "POST", identity_path(), {"createTokenWithScopes": ["chat"], "expiresInMinutes": minutes}
    )
    assert_error(answer, 400, "ValidationError", "ExpiresInMinutes")


@pytest.mark.parametrize(
    ("written", "minutes"), [("60", 60), ("1440", 1440), ("60.0", 60), ("1.44e3", 1440)]
)
async def test_expires_in_minutes_bounds_are_accepted(api: Api, written: str, minutes: int) -> None:
    """``60.0`` is the integer 60 to JSON Schema, which ``/openapi.json`` speaks."""
    identity = await api.create_identity()
    raw = f'{{"scopes": ["chat"], "expiresInMinutes": {written}}}'.encode()
    answer = await api.request("POST", identity_path(f"/{identity}/:issueAccessToken"), raw)
    assert answer.status == 200, answer
    assert parse_expiry(answer.body["expiresOn"]) == pytest.approx(now() + minutes * 60, abs=5)


async def test_null_create_token_with_scopes_is_201_without_a_token(api: Api) -> None:
    """Older SDKs send explicit nulls; ACS answers 201 with no token (reference §1.1)."""
    body = {"createTokenWithScopes": None, "expiresInMinutes": None}
    answer = await api.request("POST", identity_path(), body)
    assert answer.status == 201, answer
    assert set(answer.body) == {"identity"}
    assert answer.body["identity"]["id"].startswith(ID_PREFIX)
    answer = await api.request("POST", identity_path(), {"createTokenWithScopes": ["voip"]})
    assert answer.status == 201, answer
    assert set(answer.body) == {"identity", "accessToken"}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"scopes": ["chat"]',
        b"not json",
        b"\xff\xfe{}",
        b'[{"scopes": ["chat"]}]',
        b'"chat"',
        b'{"scopes": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
    ],
    ids=["truncated", "text", "not-utf8", "array", "string", "nested-too-deep"],
)
async def test_body_that_is_not_a_json_object_is_400(api: Api, raw: bytes) -> None:
    identity = await api.create_identity()
    answer = await api.request("POST", identity_path(f"/{identity}/:issueAccessToken"), raw)
    assert_error(answer, 400, "InvalidRequest")


async def test_body_over_64_kib_is_413_with_an_acs_body(api: Api) -> None:
    padding = "x" * MAX_BODY_BYTES
    answer = await api.request(
        "POST", identity_path(), {"createTokenWithScopes": ["chat"], "p": padding}
    )
    assert_error(answer, 413, "RequestEntityTooLarge")
    # The largest body allowed still gets past the size check (to its JSON check).
    raw = b" " * (MAX_BODY_BYTES - 2) + b"[]"
    assert_error(await api.request("POST", identity_path(), raw), 400, "InvalidRequest")


async def test_missing_api_version_is_400(api: Api) -> None:
    answer = await api.request("POST", "/identities")
    assert_error(answer, 400, "MissingApiVersionParameter")
    answer = await api.request("POST", "/networkTraversal/:issueRelayConfiguration", {})
    assert_error(answer, 400, "MissingApiVersionParameter")


@pytest.mark.parametrize(
    "path",
    [
        "/identities?api-version=2022-02-01",
        f"/identities?api-version={RELAY_VERSION}",
        f"/networkTraversal/:issueRelayConfiguration?api-version={IDENTITY_VERSION}",
    ],
)
async def test_unsupported_api_version_is_400(api: Api, path: str) -> None:
    message = assert_error(await api.request("POST", path), 400, "UnsupportedApiVersion")
    assert "does not support the API version" in message


@pytest.mark.parametrize("ttl", [-1, "60", 1.5, True], ids=repr)
async def test_relay_ttl_that_is_not_a_non_negative_integer_is_400(api: Api, ttl: object) -> None:
    answer = await api.request("POST", RELAY_PATH, {"ttl": ttl})
    assert_error(answer, 400, "ValidationError", "Ttl")


@pytest.mark.parametrize(("ttl", "lifetime"), [(999_999, 172_800), (10, 10), (None, 172_800)])
async def test_relay_ttl_is_capped_at_48_hours(api: Api, ttl: int | None, lifetime: int) -> None:
    answer = await api.request("POST", RELAY_PATH, {"ttl": ttl})
    assert answer.status == 200, answer
    assert parse_expiry(answer.body["expiresOn"]) == pytest.approx(now() + lifetime, abs=5)


@pytest.mark.parametrize("route_type", ["foo", 1, ["any"]], ids=repr)
async def test_unknown_route_type_is_400(api: Api, route_type: object) -> None:
    answer = await api.request("POST", RELAY_PATH, {"routeType": route_type})
    assert_error(answer, 400, "ValidationError", "RouteType")


async def test_unknown_path_is_404(api: Api) -> None:
    answer = await api.request("POST", f"/nothing/here?api-version={IDENTITY_VERSION}")
    assert_error(answer, 404, "NotFound")
    # Routing comes first: not even a signature is needed to learn that.
    assert_error(await api.request("GET", "/nothing", sign=False), 404, "NotFound")
    # A path that decodes to a newline is still ours to answer, in JSON.
    assert_error(await api.request("GET", "/no%0Athing", sign=False), 404, "NotFound")
    answer = await api.request("DELETE", identity_path("/8%3Aacs%3Ax%0Ay"))
    assert_error(answer, 404, "IdentityNotFound")


async def test_method_not_served_on_a_path_is_405_with_allow(api: Api) -> None:
    """RFC 9110 §15.5.6: a 405 lists the methods the resource does support."""
    answer = await api.request("PUT", identity_path())
    assert_error(answer, 405, "MethodNotAllowed")
    assert answer.headers["Allow"] == "POST, GET"
    answer = await api.request("PUT", identity_path("/8:acs:x"))
    assert_error(answer, 405, "MethodNotAllowed")
    assert answer.headers["Allow"] == "DELETE"


# --- the relay route --------------------------------------------------------------


async def test_relay_path_is_matched_case_insensitively_and_signed_as_sent(api: Api) -> None:
    """Older api-versions spelled ``/networktraversal``; the signature covers the raw path."""
    path = f"/networktraversal/:issueRelayConfiguration?api-version={RELAY_VERSION}"
    answer = await api.request("POST", path, {"ttl": 60})
    assert answer.status == 200, answer
    assert {server["routeType"] for server in answer.body["iceServers"]} == {"any", "nearest"}
    # Signed over the canonical spelling but sent in lower case: not the same request.
    answer = await api.request("POST", path, {"ttl": 60}, signed_path=RELAY_PATH)
    assert_error(answer, 401, "Denied")


def username_identity(username: str) -> str:
    """``<expiry>:<key id>.<issued ms>.<who>`` → ``<who>``."""
    return username.rsplit(".", 1)[1]


async def test_user_token_with_voip_gets_relays_for_its_own_identity(api: Api) -> None:
    identity = await api.create_identity()
    token = await api.issue_token(identity, ["voip"])
    answer = await api.request("POST", RELAY_PATH, {}, authorization=f"Bearer {token}")
    assert answer.status == 200, answer
    servers = answer.body["iceServers"]
    assert servers
    for server in servers:
        assert username_identity(server["username"]) == identity.removeprefix(ID_PREFIX)
    # Asking for another identity's relays with it is refused.
    other = await api.create_identity()
    answer = await api.request("POST", RELAY_PATH, {"id": other}, authorization=f"Bearer {token}")
    assert_error(answer, 403, "Forbidden")
    # With HMAC and no id, the configuration is anonymous.
    answer = await api.request("POST", RELAY_PATH, {})
    assert answer.status == 200, answer
    assert username_identity(answer.body["iceServers"][0]["username"]) == "anonymous"


async def test_user_token_without_voip_is_403(api: Api) -> None:
    identity = await api.create_identity()
    token = await api.issue_token(identity, ["chat"])
    answer = await api.request("POST", RELAY_PATH, {}, authorization=f"Bearer {token}")
    assert_error(answer, 403, "Forbidden")


async def test_malformed_user_token_is_401(api: Api) -> None:
    for token in ("", "a.b", "a.b.c", "x" * 5000):
        answer = await api.request("POST", RELAY_PATH, {}, authorization=f"Bearer {token}")
        assert_error(answer, 401, "Denied")


async def test_revoked_user_token_is_401(api: Api) -> None:
    identity = await api.create_identity()
    token = await api.issue_token(identity, ["voip"])
    bearer = f"Bearer {token}"
    assert (await api.request("POST", RELAY_PATH, {}, authorization=bearer)).status == 200
    answer = await api.request("POST", identity_path(f"/{quoted(identity)}/:revokeAccessTokens"))
    assert answer.status == 204, answer
    assert answer.body is None
    message = assert_error(await api.request("POST", RELAY_PATH, {}, authorization=bearer), 401)
    assert "revoked" in message
    # A token issued after the revocation works.
    fresh = await api.issue_token(identity, ["voip"])
    answer = await api.request("POST", RELAY_PATH, {}, authorization=f"Bearer {fresh}")
    assert answer.status == 200, answer


async def test_user_token_minted_before_a_key_rotation_is_401(api: Api) -> None:
    """ACS: rotating a key revokes every token it minted (reference §5)."""
    identity = await api.create_identity()
    token = await api.issue_token(identity, ["voip"])
    old_secret = api.key.secret
    answer = await api.request("POST", "/keys/primary/:rotate")
    assert answer.status == 200, answer
    assert answer.body == {"name": "primary", "key": api.key.text}
    assert api.key.secret != old_secret
    answer = await api.request("POST", RELAY_PATH, {}, authorization=f"Bearer {token}")
    assert_error(answer, 401, "Denied")
    # Requests signed with the old key are refused; the secondary key still works.
    assert_error(await api.request("POST", identity_path(), secret=old_secret), 401, "Denied")
    secondary = api.running.api.service.state.keys.secondary.secret
    assert (await api.request("POST", identity_path(), secret=secondary)).status == 201


async def test_unknown_key_name_is_400(api: Api) -> None:
    answer = await api.request("POST", "/keys/tertiary/:rotate")
    assert_error(answer, 400, "ValidationError", "name")


# --- transport and headers -----------------------------------------------------------


async def test_identity_lifecycle_and_errors_over_https(api: Api) -> None:
    """The HTTPS port, trusted with the generated CA: same answers, same error bodies."""
    created = await api.request(
        "POST", identity_path(), {"createTokenWithScopes": ["chat"]}, https=True
    )
    assert created.status == 201, created
    identity = created.body["identity"]["id"]
    path = identity_path(f"/{quoted(identity)}")
    issued = await api.request(
        "POST", identity_path(f"/{identity}/:issueAccessToken"), {"scopes": ["voip"]}, https=True
    )
    assert issued.status == 200, issued
    revoked = await api.request(
        "POST", identity_path(f"/{identity}/:revokeAccessTokens"), https=True
    )
    assert revoked.status == 204, revoked
    assert (await api.request("DELETE", path, https=True)).status == 204
    assert_error(await api.request("DELETE", path, https=True), 404, "IdentityNotFound")
    answer = await api.request("POST", identity_path(), secret=os.urandom(32), https=True)
    assert_error(answer, 401, "Denied")
    answer = await api.request("POST", RELAY_PATH, {"routeType": "foo"}, https=True)
    assert_error(answer, 400, "ValidationError", "RouteType")


async def test_client_request_id_is_echoed(api: Api) -> None:
    request_id = str(uuid.uuid4())
    headers = {"x-ms-client-request-id": request_id, "x-ms-return-client-request-id": "true"}
    answer = await api.request("POST", identity_path(), headers=headers)
    assert answer.status == 201
    assert answer.headers["x-ms-client-request-id"] == request_id
    # On errors too, before authentication.
    answer = await api.request("POST", "/identities", sign=False, headers=headers)
    assert answer.status == 400
    assert answer.headers["x-ms-client-request-id"] == request_id
    assert "x-ms-client-request-id" not in (await api.request("POST", identity_path())).headers


async def test_logs_never_hold_keys_signatures_or_tokens(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    identity = await api.create_identity()
    token = await api.issue_token(identity, ["voip"])
    await api.request("POST", RELAY_PATH, {}, authorization=f"Bearer {token}")
    await api.request("POST", identity_path(), secret=os.urandom(32))
    await api.request("POST", identity_path(), {"a": 1}, signed_body=b"{}")
    await api.request("POST", identity_path(), date=now_date(-3600))
    await api.request("POST", identity_path(), authorization=f"Bearer {token}")
    await api.request("POST", identity_path(f"/{identity}/:revokeAccessTokens"))
    await api.request("POST", RELAY_PATH, {}, authorization=f"Bearer {token}")
    await api.request("POST", identity_path("/8:acs:nobody/:issueAccessToken"), {"scopes": []})
    keys = api.running.api.service.state.keys
    assert caplog.records, "the server logged nothing: the capture is not working"
    logged = "\n".join(
        f"{record.getMessage()} {record.exc_text or ''} {record.args!r}"
        for record in caplog.records
    )
    assert identity in logged  # the capture sees the API's own records
    secrets = [keys.primary.text, keys.secondary.text, token, *api.authorizations]
    secrets += [authorization.rsplit("Signature=", 1)[-1] for authorization in api.authorizations]
    for secret in secrets:
        assert secret not in logged
