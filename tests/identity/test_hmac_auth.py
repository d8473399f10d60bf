"""HMAC-SHA256 request signing as the ACS SDKs do it (reference §2).

Vectors: the Python SDK's own unit test,
https://github.com/Azure/azure-sdk-for-python/blob/main/sdk/communication/azure-communication-networktraversal/tests/test_hmac.py
(key ``pw==``, the date and host below, empty body).
"""

from __future__ import annotations

import base64
import email.utils
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from identity_values import PRIMARY, SECONDARY

from passage.identity.errors import AuthenticationError
from passage.identity.hmac_auth import MAX_CLOCK_SKEW, content_hash, sign_request, verify_request
from passage.identity.keys import AccessKey, AccessKeys, KeyName

SDK_KEY = AccessKey(KeyName.PRIMARY, base64.b64decode("pw=="))
SDK_DATE = "Wed, 13 Apr 2022 18:09:12 GMT"
SDK_NOW = 1_649_873_352.0
"""``SDK_DATE`` in unix seconds."""
SDK_HOST = "contoso.communicationservices.azure.com"

SDK_VECTORS = [
    ("/", "88MDmJhUR3m5QhFxb8ztShsSwlGrg7g/6XPnWf7QEO4="),
    ("/testPath", "RoCrHjw7fb9fpHSbqvRUY2xa8RBS0YvI1cxI1x8AS38="),
    ("/testPath?testQuery=yes", "il99+rd6V5O136roX/zVePCNle78HmvC4B7tu9zRH3I="),
]

EMPTY_BODY_HASH = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
"""base64(SHA-256(b"")), as every SDK request without a body carries it (reference §2)."""

PREFIX = "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature="

BAD_SCHEME = (
    "Authorization must be HMAC-SHA256 SignedHeaders=x-ms-date;host;"
    "x-ms-content-sha256&Signature=..."
)
BAD_HASH = "Request 'x-ms-content-sha256' differs from generated content hash."
NO_DATE = "The x-ms-date header is required."
BAD_DATE = "x-ms-date is not an RFC 1123 date."
SKEWED = "x-ms-date is more than 15 minutes from the server's clock."
NO_KEY = "The request signature does not match any access key."


def verify(
    headers: dict[str, str],
    *,
    target: str = "/",
    host: str = SDK_HOST,
    scheme: str = "https",
    body: bytes = b"",
    keys: tuple[AccessKey, ...] = (SDK_KEY,),
    now: float = SDK_NOW,
) -> AccessKey:
    return verify_request(
        method="GET",
        raw_target=target,
        host=host,
        scheme=scheme,
        headers=headers,
        body=body,
        keys=keys,
        now=now,
    )


def refusal(headers: dict[str, str], **kwargs: Any) -> str:
    """The message ``verify`` refuses with; fails the test if it accepts."""
    with pytest.raises(AuthenticationError) as refused:
        verify(headers, **kwargs)
    assert (refused.value.status, refused.value.code) == (401, "Denied")
    return refused.value.message


def signed(target: str = "/", host: str = SDK_HOST, *, key: AccessKey = SDK_KEY) -> dict[str, str]:
    return sign_request("GET", target, host, b"", key.secret, SDK_DATE)


def test_content_hash_of_empty_body() -> None:
    assert content_hash(b"") == EMPTY_BODY_HASH


@pytest.mark.parametrize(("target", "signature"), SDK_VECTORS)
def test_sign_request_reproduces_sdk_vectors(target: str, signature: str) -> None:
    """Reference §2, the SDK's test_hmac.py vectors."""
    headers = signed(target)
    assert headers == {
        "x-ms-date": SDK_DATE,
        "x-ms-content-sha256": EMPTY_BODY_HASH,
        "Authorization": PREFIX + signature,
    }


@pytest.mark.parametrize(("target", "signature"), SDK_VECTORS)
def test_verify_request_accepts_sdk_vectors(target: str, signature: str) -> None:
    headers = {
        "x-ms-date": SDK_DATE,
        "x-ms-content-sha256": EMPTY_BODY_HASH,
        "Authorization": PREFIX + signature,
    }
    assert verify(headers, target=target) is SDK_KEY


def test_verify_request_binds_the_target() -> None:
    """A signature for one path does not authenticate another."""
    assert refusal(signed("/testPath"), target="/testPath?testQuery=yes") == NO_KEY


# --- what the SDKs sign differently (reference §0.3, §2) --------------------------------


def test_decoded_target_signed_percent_encoded_target_received() -> None:
    """The aio Python client signs ``/identities/8:acs:…``; the wire may carry ``%3A``."""
    headers = signed("/identities/8:acs:x_y?api-version=2023-10-01")
    target = "/identities/8%3Aacs%3Ax_y?api-version=2023-10-01"
    assert verify(headers, target=target) is SDK_KEY


def test_percent_encoded_target_signed_and_received() -> None:
    """The sync Python and JS clients sign the target as it goes on the wire."""
    target = "/identities/8%3Aacs%3Ax_y?api-version=2023-10-01"
    assert verify(signed(target), target=target) is SDK_KEY


@pytest.mark.parametrize(
    ("signed_host", "host_header", "scheme"),
    [
        ("h.example:443", "h.example", "https"),  # Python, endpoint https://h:443/
        ("h.example:80", "h.example", "http"),
        ("h.example/", "h.example", "https"),  # Python, endpoint with a trailing /
        ("h.example:8443/", "h.example:8443", "https"),
        ("h.example:443/", "h.example", "https"),
        ("[::1]:443", "[::1]", "https"),
    ],
)
def test_host_variants_python_signs(signed_host: str, host_header: str, scheme: str) -> None:
    headers = signed("/", signed_host)
    assert verify(headers, host=host_header, scheme=scheme) is SDK_KEY


def test_default_port_follows_the_scheme() -> None:
    """``h:443`` is the https default only; over http it names another endpoint."""
    assert refusal(signed("/", "h.example:443"), host="h.example", scheme="http") == NO_KEY


def test_an_explicit_port_is_not_replaced() -> None:
    assert refusal(signed("/", "h.example:443"), host="h.example:8443") == NO_KEY


# --- which key ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", [PRIMARY, SECONDARY], ids=["primary", "secondary"])
def test_returns_the_key_that_signed(key: AccessKey) -> None:
    """Either key authenticates, so one rotates while callers use the other (reference §2.5)."""
    headers = signed(key=key)
    assert verify(headers, keys=tuple(AccessKeys(PRIMARY, SECONDARY))) is key


def test_wrong_key_is_refused() -> None:
    assert refusal(signed(key=SDK_KEY), keys=(PRIMARY, SECONDARY)) == NO_KEY


def test_no_keys_refuses() -> None:
    assert refusal(signed(), keys=()) == NO_KEY


# --- refusals, each with its own message --------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln",
        "HMAC-SHA256 Signature=88MDmJhUR3m5QhFxb8ztShsSwlGrg7g/6XPnWf7QEO4=",
        "HMAC-SHA256 SignedHeaders=host;x-ms-date;x-ms-content-sha256&Signature=AAAA",
        PREFIX,
        "",
    ],
)
def test_refuses_other_authorization_schemes(authorization: str) -> None:
    headers = {**signed(), "Authorization": authorization}
    assert refusal(headers) == BAD_SCHEME


def test_refuses_missing_authorization() -> None:
    headers = signed()
    del headers["Authorization"]
    assert refusal(headers) == BAD_SCHEME


@pytest.mark.parametrize("signature", ["!!!!", "88MDmJhUR3m5QhFxb8ztShsSwlGrg7g/6XPnWf7QEO4", "é="])
def test_refuses_a_signature_that_is_not_base64(signature: str) -> None:
    headers = {**signed(), "Authorization": PREFIX + signature}
    assert refusal(headers) == "The signature is not base64."


def test_refuses_a_tampered_body() -> None:
    """The content hash covers the raw body (reference §2, step 2)."""
    assert refusal(signed(), body=b"{}") == BAD_HASH


def test_refuses_a_content_hash_that_matches_a_tampered_body() -> None:
    """Rewriting both body and hash still leaves the signature over the old hash."""
    headers = {**signed(), "x-ms-content-sha256": content_hash(b"{}")}
    assert refusal(headers, body=b"{}") == NO_KEY


def test_refuses_a_missing_content_hash() -> None:
    headers = signed()
    del headers["x-ms-content-sha256"]
    assert refusal(headers) == BAD_HASH


def test_refuses_a_missing_date() -> None:
    headers = signed()
    del headers["x-ms-date"]
    assert refusal(headers) == NO_DATE


def test_the_date_header_stands_in_for_x_ms_date() -> None:
    headers = signed()
    headers["Date"] = headers.pop("x-ms-date")
    assert verify(headers) is SDK_KEY


@pytest.mark.parametrize(
    "date",
    ["yesterday", "Wed, 13 Apr 2022", "Wed, 13 Foo 2022 18:09:12 GMT", "1649873352"],
)
def test_refuses_an_unparseable_date(date: str) -> None:
    assert refusal({**signed(), "x-ms-date": date}) == BAD_DATE


@pytest.mark.parametrize(
    "date",
    [
        "Mon, 01 Jan 99999999999999999999 00:00:00 GMT",  # year past datetime's range
        "Mon, 01 Jan 2022 00:00:00 +99999999999999999999",  # offset past timedelta's
    ],
)
def test_refuses_a_date_out_of_range_as_unparseable(date: str) -> None:
    assert refusal({**signed(), "x-ms-date": date}) == BAD_DATE


@pytest.mark.parametrize("minutes", [-16, 16])
def test_refuses_a_date_16_minutes_off(minutes: int) -> None:
    assert refusal(signed(), now=SDK_NOW + minutes * 60) == SKEWED


@pytest.mark.parametrize("seconds", [-14 * 60, 14 * 60, -MAX_CLOCK_SKEW, MAX_CLOCK_SKEW])
def test_accepts_a_date_up_to_15_minutes_off(seconds: int) -> None:
    assert verify(signed(), now=SDK_NOW + seconds) is SDK_KEY


@pytest.mark.parametrize("seconds", [-MAX_CLOCK_SKEW - 1, MAX_CLOCK_SKEW + 1])
def test_refuses_a_date_just_past_15_minutes(seconds: int) -> None:
    assert refusal(signed(), now=SDK_NOW + seconds) == SKEWED


def test_a_date_with_offset_is_compared_in_utc() -> None:
    date = "Wed, 13 Apr 2022 20:09:12 +0200"
    headers = sign_request("GET", "/", SDK_HOST, b"", SDK_KEY.secret, date)
    assert verify(headers) is SDK_KEY


def test_refuses_a_tampered_signature() -> None:
    good = signed()["Authorization"].removeprefix(PREFIX)
    flipped = ("A" if good[0] != "A" else "B") + good[1:]
    assert refusal({**signed(), "Authorization": PREFIX + flipped}) == NO_KEY


def test_lone_surrogates_are_refused_not_raised() -> None:
    """aiohttp decodes headers and the target with ``surrogateescape``: bytes 0x80-0xFF
    that are not UTF-8 arrive as lone surrogates, which must not escape as UnicodeError."""
    assert refusal({**signed(), "x-ms-content-sha256": "\udcff"}) == BAD_HASH
    assert refusal(signed(), target="/\udcff") == NO_KEY
    assert refusal(signed(), host="h\udcff") == NO_KEY


# --- the real SDK's policy, when installed ------------------------------------------------

SDK_TARGET = (
    "/identities/8%3Aacs%3A2dee53b4-368b-45b4-ab52-8493fb117652_"
    "00000005-14a2-493b-8a72-5a3a0d000081/:issueAccessToken?api-version=2023-10-01"
)


@pytest.mark.parametrize(
    ("endpoint", "host_header", "decode_url"),
    [
        ("https://localhost:8443", "localhost:8443", False),  # sync client
        ("https://localhost:8443/", "localhost:8443", False),  # trailing slash
        ("https://localhost:443", "localhost", False),  # default port spelled out
        ("https://localhost:8443", "localhost:8443", True),  # aio client
    ],
)
def test_verifies_what_the_sdk_policy_signs(
    endpoint: str, host_header: str, decode_url: bool
) -> None:
    """azure-communication-identity's own HMACCredentialsPolicy, run without a transport."""
    policy = pytest.importorskip("azure.communication.identity._shared.policy")
    pipeline = pytest.importorskip("azure.core.pipeline")
    rest = pytest.importorskip("azure.core.rest")
    request = rest.HttpRequest("POST", endpoint.rstrip("/") + SDK_TARGET, json={"scopes": ["voip"]})
    sdk = policy.HMACCredentialsPolicy(endpoint, PRIMARY.text, decode_url=decode_url)
    sdk.on_request(pipeline.PipelineRequest(request, pipeline.PipelineContext(None)))
    headers = dict(request.headers)
    sent = email.utils.parsedate_to_datetime(headers["x-ms-date"])
    key = verify_request(
        method="POST",
        raw_target=SDK_TARGET,
        host=host_header,
        scheme="https",
        headers=headers,
        body=request.body.encode(),
        keys=AccessKeys(SECONDARY, PRIMARY),
        now=sent.timestamp(),
    )
    assert key is PRIMARY


# --- fuzz: only the documented error ------------------------------------------------------

ANY_TEXT = st.text(
    st.characters(exclude_categories=()) | st.sampled_from("\udcff\ud800:;/?%&= +"),
    max_size=40,
)
DATES = st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")) | ANY_TEXT


@st.composite
def requests(draw: st.DrawFn) -> tuple[dict[str, str], bytes, str, str]:
    body = draw(st.binary(max_size=32))
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        headers["Authorization"] = draw(ANY_TEXT | ANY_TEXT.map(PREFIX.__add__))
    if draw(st.booleans()):
        headers["x-ms-content-sha256"] = draw(st.just(content_hash(body)) | ANY_TEXT)
    if draw(st.booleans()):
        headers[draw(st.sampled_from(["x-ms-date", "Date"]))] = draw(DATES)
    return headers, body, draw(ANY_TEXT), draw(ANY_TEXT)


@settings(max_examples=400, deadline=None)
@given(requests(), st.sampled_from(["http", "https", ""]))
def test_verify_request_raises_only_authentication_error(
    request: tuple[dict[str, str], bytes, str, str], scheme: str
) -> None:
    """No input forges a signature, and none raises anything but the 401."""
    headers, body, target, host = request
    with pytest.raises(AuthenticationError):
        verify(headers, target=target, host=host, scheme=scheme, body=body)
