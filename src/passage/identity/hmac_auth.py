"""The HMAC-SHA256 request signature of the ACS SDKs, signed and verified.

https://learn.microsoft.com/azure/communication-services/tutorials/hmac-header-tutorial::

    string_to_sign = VERB + "\\n" + path_and_query + "\\n"
                     + x-ms-date + ";" + host + ";" + content_hash
    Authorization: HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=<b64>

The SDKs disagree on what they sign (see ``shared/reference/acs-identity-relay.md``
§2): the sync Python and JS clients sign the percent-encoded target, the async
Python client the decoded one; Python signs the endpoint's host verbatim
(``h:443`` while sending ``Host: h``, or ``h:8443/`` after a trailing slash).
:func:`verify_request` therefore tries the raw target and its decoded form,
crossed with the ``Host`` header, ``Host`` plus the default port, and ``Host/``.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Iterable, Mapping

from passage.identity.errors import AuthenticationError
from passage.identity.keys import AccessKey

__all__ = ["MAX_CLOCK_SKEW", "content_hash", "sign_request", "string_to_sign", "verify_request"]

MAX_CLOCK_SKEW = 15 * 60
"""Seconds ``x-ms-date`` may differ from our clock (the Azure HMAC convention)."""

_AUTHORIZATION = re.compile(
    r"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=(\S+)", re.I
)


def content_hash(body: bytes) -> str:
    """``x-ms-content-sha256``: base64 SHA-256 of the raw body bytes."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def string_to_sign(method: str, path_and_query: str, date: str, host: str, hashed: str) -> str:
    return f"{method.upper()}\n{path_and_query}\n{date};{host};{hashed}"


def _utf8(text: str) -> bytes:
    # aiohttp decodes header values and the target with "surrogateescape", so a
    # request may carry lone surrogates; they must fail the check, not raise.
    return text.encode("utf-8", "surrogatepass")


def _signature(secret: bytes, text: str) -> bytes:
    return hmac.new(secret, _utf8(text), hashlib.sha256).digest()


def sign_request(
    method: str, path_and_query: str, host: str, body: bytes, secret: bytes, date: str
) -> dict[str, str]:
    """The headers that authenticate one request, as the SDKs compute them."""
    hashed = content_hash(body)
    signature = _signature(secret, string_to_sign(method, path_and_query, date, host, hashed))
    return {
        "x-ms-date": date,
        "x-ms-content-sha256": hashed,
        "Authorization": "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256"
        f"&Signature={base64.b64encode(signature).decode('ascii')}",
    }


def verify_request(
    *,
    method: str,
    raw_target: str,
    host: str,
    scheme: str,
    headers: Mapping[str, str],
    body: bytes,
    keys: Iterable[AccessKey],
    now: float,
) -> AccessKey:
    """The access key that signed this request, or :class:`AuthenticationError` (401).

    ``raw_target`` is the request-target exactly as it arrived (path and query,
    still percent-encoded); ``headers`` is case-insensitive. Checks, in order:
    the Authorization scheme, the content hash against the raw body, the date
    within :data:`MAX_CLOCK_SKEW` of ``now``, then the signature, in constant time.
    """
    match = _AUTHORIZATION.fullmatch(headers.get("Authorization", "").strip())
    if match is None:
        raise AuthenticationError(
            "Authorization must be HMAC-SHA256 SignedHeaders=x-ms-date;host;"
            "x-ms-content-sha256&Signature=..."
        )
    try:
        claimed = base64.b64decode(match.group(1), validate=True)
    except ValueError:
        raise AuthenticationError("The signature is not base64.") from None
    hashed = headers.get("x-ms-content-sha256", "")
    if not hmac.compare_digest(_utf8(hashed), content_hash(body).encode()):
        raise AuthenticationError(
            "Request 'x-ms-content-sha256' differs from generated content hash."
        )
    date = headers.get("x-ms-date", "") or headers.get("Date", "")
    _check_date(date, now)
    targets = dict.fromkeys((raw_target, urllib.parse.unquote(raw_target)))
    for key in keys:
        for target in targets:
            for signed_host in _host_variants(host, scheme):
                text = string_to_sign(method, target, date, signed_host, hashed)
                if hmac.compare_digest(_signature(key.secret, text), claimed):
                    return key
    raise AuthenticationError("The request signature does not match any access key.")


def _check_date(date: str, now: float) -> None:
    if not date:
        raise AuthenticationError("The x-ms-date header is required.")
    try:
        parsed = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError, OverflowError):  # OverflowError: year 10**20
        raise AuthenticationError("x-ms-date is not an RFC 1123 date.") from None
    if parsed.tzinfo is None:  # "-0000": UTC, says RFC 5322 §3.3
        parsed = parsed.replace(tzinfo=datetime.UTC)
    sent = parsed.timestamp()
    if abs(sent - now) > MAX_CLOCK_SKEW:
        raise AuthenticationError(
            f"x-ms-date is more than {MAX_CLOCK_SKEW // 60} minutes from the server's clock."
        )


def _host_variants(host: str, scheme: str) -> tuple[str, ...]:
    default_port = "443" if scheme == "https" else "80"
    has_port = host.rsplit("]", 1)[-1].count(":") == 1
    with_port = host if has_port else f"{host}:{default_port}"
    return tuple(dict.fromkeys((host, with_port, host + "/", with_port + "/")))
