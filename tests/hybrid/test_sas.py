"""SAS tokens (hybrid-connections reference §3): format, signature, scope, rights, expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passage.hybrid.sas import (
    CLOCK_SKEW,
    Rights,
    SasError,
    SasRule,
    SasToken,
    audience_covers,
    make_sas_token,
    verify_sas_token,
)

NOW = 1_800_000_000
KEY = "c2VjcmV0LWtleS10ZXh0LW5vdC1kZWNvZGVk"  # used as UTF-8 text, never base64-decoded
ROOT = SasRule("RootManageSharedAccessKey", Rights.MANAGE, KEY, "other-key")
SENDER = SasRule("sender", Rights.SEND, "send-primary", "send-secondary")
RULES = {rule.name: rule for rule in (ROOT, SENDER)}
HOSTS = ("relay.example.test", "127.0.0.1")


def verify(token: str, entity: str = "myhc", needed: Rights = Rights.LISTEN) -> SasRule:
    return verify_sas_token(token, RULES, hosts=HOSTS, entity=entity, needed=needed, now=NOW)


def test_signature_is_hmac_sha256_over_the_written_sr_keyed_with_the_key_text() -> None:
    token = make_sas_token("http://127.0.0.1:9090/myhc", ROOT.name, KEY, NOW + 3600)
    fields = dict(
        item.split("=", 1) for item in token.removeprefix("SharedAccessSignature ").split("&")
    )
    assert fields["sr"] == "http%3A%2F%2F127.0.0.1%3A9090%2Fmyhc"  # encodeURIComponent's form
    expected = hmac.new(
        KEY.encode(), f"{fields['sr']}\n{NOW + 3600}".encode(), hashlib.sha256
    ).digest()
    assert base64.b64decode(urllib.parse.unquote(fields["sig"])) == expected
    assert verify(token) is ROOT


def test_fields_may_come_in_any_order_with_any_case() -> None:
    token = make_sas_token("http://relay.example.test/myhc", ROOT.name, KEY, NOW + 60)
    parts = token.removeprefix("SharedAccessSignature ").split("&")
    shuffled = "sharedaccesssignature " + "&".join(
        part.replace("sr=", "SR=", 1) for part in reversed(parts)
    )
    assert verify(shuffled) is ROOT


def test_lower_case_hex_in_sr_is_verified_as_written() -> None:
    """Older .NET samples encode sr with lower-case hex; the signature covers that spelling."""
    sr = "http%3a%2f%2frelay.example.test%2fmyhc%2f"
    sig = base64.b64encode(
        hmac.new(KEY.encode(), f"{sr}\n{NOW}".encode(), hashlib.sha256).digest()
    ).decode()
    quoted = urllib.parse.quote(sig, safe="")
    token = f"SharedAccessSignature sr={sr}&sig={quoted}&se={NOW}&skn={ROOT.name}"
    assert verify(token) is ROOT


def test_the_secondary_key_signs_too() -> None:
    token = make_sas_token("http://relay.example.test/myhc", ROOT.name, "other-key", NOW + 60)
    assert verify(token) is ROOT


@pytest.mark.parametrize(
    ("resource", "entity", "covered"),
    [
        ("http://relay.example.test/", "a/b", True),  # the whole namespace
        ("sb://RELAY.example.test:443/a", "a/b", True),  # scheme, port and host case ignored
        ("http://relay.example.test/$hc/a/b", "a/b", True),
        ("http://relay.example.test/A/B/", "a/b", True),
        ("http://relay.example.test/a/b", "a/bc", False),  # not a whole segment
        ("http://relay.example.test/a/b/c", "a/b", False),  # narrower than the entity
        ("http://elsewhere.test/a", "a", False),
    ],
)
def test_a_token_covers_its_resource_and_what_lies_under_it(
    resource: str, entity: str, covered: bool
) -> None:
    assert audience_covers(urllib.parse.quote(resource, safe=""), HOSTS, entity) is covered


def test_expiry_allows_a_few_minutes_of_grace_and_no_more() -> None:
    """hyco clients renew a 3600 s token exactly every hour, racing its expiry."""
    at_edge = make_sas_token("http://relay.example.test/myhc", ROOT.name, KEY, NOW - CLOCK_SKEW)
    assert verify(at_edge) is ROOT
    late = make_sas_token("http://relay.example.test/myhc", ROOT.name, KEY, NOW - CLOCK_SKEW - 1)
    with pytest.raises(SasError, match="expired") as refused:
        verify(late)
    assert refused.value.status == 401


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("Bearer abc", "expected a SharedAccessSignature"),
        ("SharedAccessSignature sr=x&se=1", "needs sr, sig, se and skn"),
        ("SharedAccessSignature sr=x&sig=%%%&se=1&skn=a", "malformed"),
        ("SharedAccessSignature sr=x&sig=AAAA&se=soon&skn=a", "malformed"),
    ],
)
def test_malformed_tokens_are_401(token: str, message: str) -> None:
    with pytest.raises(SasError, match=message) as refused:
        verify(token)
    assert refused.value.status == 401


def test_forged_foreign_and_unknown_rule_tokens_are_401() -> None:
    resource = "http://relay.example.test/myhc"
    forged = make_sas_token(resource, ROOT.name, "not-the-key", NOW + 60)
    unknown = make_sas_token(resource, "nobody", KEY, NOW + 60)
    foreign = make_sas_token("http://relay.example.test/otherhc", ROOT.name, KEY, NOW + 60)
    for token, message in (
        (forged, "signature"),
        (unknown, "no authorization rule"),
        (foreign, "another"),
    ):
        with pytest.raises(SasError, match=message) as refused:
            verify(token)
        assert refused.value.status == 401


def test_a_genuine_token_without_the_right_is_403() -> None:
    token = make_sas_token("http://relay.example.test/myhc", SENDER.name, "send-primary", NOW + 60)
    assert verify(token, needed=Rights.SEND) is SENDER
    with pytest.raises(SasError, match="LISTEN") as refused:
        verify(token, needed=Rights.LISTEN)
    assert refused.value.status == 403


def test_manage_implies_listen_and_send() -> None:
    assert Rights.MANAGE.allows(Rights.LISTEN) and Rights.MANAGE.allows(Rights.SEND)
    assert not Rights.SEND.allows(Rights.LISTEN)
    assert (Rights.LISTEN | Rights.SEND).allows(Rights.SEND)


@given(st.text(max_size=300))
def test_any_text_is_refused_with_a_sas_error_only(text: str) -> None:
    with pytest.raises(SasError):
        verify(text)


def test_parse_keeps_sr_as_written() -> None:
    token = SasToken.parse("SharedAccessSignature sr=http%3a%2f%2fh%2fx&sig=AAAA&se=5&skn=r%20n")
    assert (token.resource, token.expiry, token.key_name) == ("http%3a%2f%2fh%2fx", 5, "r n")
