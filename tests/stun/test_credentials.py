"""passage.stun.credentials: long-term and short-term keys, USERHASH (RFC 8489 §9, §14.4)."""

from __future__ import annotations

import hashlib

from passage.stun import PasswordAlgorithm, long_term_key, prepare_text, short_term_key, userhash

from .rfc_vectors import (
    RFC5769_PASSWORD,
    RFC5769_PASSWORD_BEFORE_SASLPREP,
    RFC5769_REALM,
    RFC5769_USERNAME,
    RFC8489_USERHASH,
)


def test_long_term_key_is_md5_of_username_realm_password() -> None:
    key = long_term_key("user", "realm", "pass")
    assert key == hashlib.md5(b"user:realm:pass").digest()
    assert len(key) == 16


def test_long_term_key_sha256() -> None:
    key = long_term_key("user", "realm", "pass", PasswordAlgorithm.SHA256)
    assert key == hashlib.sha256(b"user:realm:pass").digest()


def test_rfc5769_2_4_password_prepares_to_thematrix() -> None:
    assert prepare_text(RFC5769_PASSWORD_BEFORE_SASLPREP) == RFC5769_PASSWORD
    before = long_term_key(RFC5769_USERNAME, RFC5769_REALM, RFC5769_PASSWORD_BEFORE_SASLPREP)
    assert before == long_term_key(RFC5769_USERNAME, RFC5769_REALM, RFC5769_PASSWORD)


def test_prepare_text_maps_spaces_and_drops_ignorables() -> None:
    assert prepare_text("a\u00a0b\u3000c") == "a b c"
    assert prepare_text("x\u200by\ufeffz\ufe0f") == "xyz"
    assert prepare_text("\uff21") == "A"  # full-width A, NFKC
    assert prepare_text("plain ascii:") == "plain ascii:"


def test_short_term_key_is_the_password() -> None:
    assert short_term_key("VOkJxbRl1RmTxUk/WvJxBt") == b"VOkJxbRl1RmTxUk/WvJxBt"
    assert short_term_key("\u00e9") == "\u00e9".encode()


def test_userhash_rfc8489_b_1() -> None:
    assert userhash(RFC5769_USERNAME, RFC5769_REALM) == RFC8489_USERHASH
