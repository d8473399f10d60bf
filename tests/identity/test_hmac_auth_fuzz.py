"""Fuzz: the HMAC canonicalizer, on whatever method, target, host and body a request carries.

``tests/identity/test_hmac_auth.py`` shows no forged or mangled header gets
past :func:`verify_request` with anything but a 401. These check the other
half: the string to sign is built the same way on both sides for any input
(a request signed as the SDKs sign verifies, also with the target
percent-decoded or the default port left out of the host), and any change to
what was signed is a 401, never an exception. aiohttp hands over targets
and headers with lone surrogates (``surrogateescape``), so the text drawn
includes them.
"""

from __future__ import annotations

import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import FUZZ
from passage.identity.errors import AuthenticationError
from passage.identity.hmac_auth import sign_request, string_to_sign, verify_request
from passage.identity.keys import AccessKey, KeyName

KEY = AccessKey(KeyName.PRIMARY, bytes(range(32)))
OTHER = AccessKey(KeyName.SECONDARY, bytes(range(1, 33)))
NOW = 1_722_933_412.0
DATE = email.utils.formatdate(NOW, usegmt=True)

ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)
"""Any code points, lone surrogates included."""
TARGETS = ANY_TEXT | st.builds(
    lambda path, query: f"/{path}?{query}", st.text(max_size=20), st.text(max_size=20)
)
HOSTS = ANY_TEXT | st.sampled_from(["h", "h:443", "h:80", "[::1]", "[::1]:8443", "h:"])
METHODS = st.sampled_from(["GET", "POST", "delete", "PaTcH"]) | ANY_TEXT


def verify(method: str, target: str, host: str, scheme: str, headers: dict[str, str],
           body: bytes) -> AccessKey:  # fmt: skip
    return verify_request(
        method=method, raw_target=target, host=host, scheme=scheme, headers=headers, body=body,
        keys=(OTHER, KEY), now=NOW,
    )  # fmt: skip


@FUZZ
@given(METHODS, TARGETS, HOSTS, st.binary(max_size=64), st.sampled_from(["http", "https", ""]))
def test_a_request_signed_as_the_sdks_sign_it_verifies(
    method: str, target: str, host: str, body: bytes, scheme: str
) -> None:
    headers = sign_request(method, target, host, body, KEY.secret, DATE)
    assert verify(method, target, host, scheme, headers, body) is KEY


@FUZZ
@given(
    METHODS, TARGETS, HOSTS, st.binary(max_size=64),
    st.sampled_from(["method", "target", "host", "body", "date"]), ANY_TEXT,
)  # fmt: skip
def test_any_change_to_what_was_signed_is_a_401(
    method: str, target: str, host: str, body: bytes, changed: str, other: str
) -> None:
    headers = sign_request(method, target, host, body, KEY.secret, DATE)
    sent = {"method": method, "target": target, "host": host, "body": body}
    if changed == "body":
        sent["body"] = body + b"!"
    elif changed == "date":
        headers["x-ms-date"] = email.utils.formatdate(NOW + 1, usegmt=True)
    else:
        replacement = str(sent[changed]) + "x" + other
        if changed == "method" and replacement.upper() == method.upper():
            return
        sent[changed] = replacement
    with pytest.raises(AuthenticationError):
        verify(str(sent["method"]), str(sent["target"]), str(sent["host"]), "https", headers,
               bytes(sent["body"]) if isinstance(sent["body"], bytes) else b"")  # fmt: skip


@FUZZ
@given(METHODS, TARGETS, ANY_TEXT, HOSTS, ANY_TEXT)
def test_the_string_to_sign_is_three_lines_whatever_the_parts(
    method: str, target: str, date: str, host: str, hashed: str
) -> None:
    text = string_to_sign(method, target, date, host, hashed)
    assert text.startswith(method.upper() + "\n")
    assert text.endswith(f"\n{date};{host};{hashed}")
