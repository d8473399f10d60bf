"""The console's pure side: pasted keys, one-time links, sessions; time and random passed in."""

from __future__ import annotations

import base64

import pytest

from passage.console import LinkBook, SessionLimits, Sessions, key_named_by, mint_link, pasted_key
from passage.console.links import MAX_LINK_LIFETIME
from passage.identity.keys import AccessKey, AccessKeys, KeyName

PRIMARY = AccessKey(KeyName.PRIMARY, b"p" * 32)
SECONDARY = AccessKey(KeyName.SECONDARY, b"s" * 32)
KEYS = AccessKeys(PRIMARY, SECONDARY)
NOW = 1_800_000_000.0


# --- the sign-in form ---------------------------------------------------------------------


def test_a_key_is_taken_alone_or_in_its_connection_string() -> None:
    text = PRIMARY.text
    assert pasted_key(text) == PRIMARY.secret
    assert pasted_key(f"  {text}\n") == PRIMARY.secret
    assert pasted_key(f"endpoint=https://h:1/;accesskey={text}") == PRIMARY.secret
    assert pasted_key(f"AccessKey={SECONDARY.text};endpoint=https://h:1/") == SECONDARY.secret
    for wrong in ("", "not base64!", "endpoint=https://h:1/", "x" * 5000):
        assert pasted_key(wrong) is None, wrong


def test_the_key_is_found_by_comparing_with_every_key() -> None:
    assert key_named_by(PRIMARY.secret, KEYS) is KeyName.PRIMARY
    assert key_named_by(SECONDARY.secret, KEYS) is KeyName.SECONDARY
    assert key_named_by(b"p" * 31, KEYS) is None
    assert key_named_by(b"p" * 32 + b"x", KEYS) is None


# --- one-time links -----------------------------------------------------------------------


def test_a_link_is_taken_once_before_it_expires() -> None:
    book = LinkBook()
    token = mint_link(PRIMARY, b"\x01" * 16, int(NOW) + 600)
    assert book.take(token, KEYS, NOW) is KeyName.PRIMARY
    assert book.take(token, KEYS, NOW + 1) is None  # once
    late = mint_link(SECONDARY, b"\x02" * 16, int(NOW) + 600)
    assert book.take(late, KEYS, NOW + 600) is None  # expired
    assert book.take(late, KEYS, NOW + 599) is KeyName.SECONDARY


def test_a_link_is_refused_when_forged_rotated_or_too_long_lived() -> None:
    book = LinkBook()
    token = mint_link(PRIMARY, b"\x01" * 16, int(NOW) + 600)
    version, expires, nonce, mac = token.split(".")
    assert book.take(f"{version}.{int(expires) + 1}.{nonce}.{mac}", KEYS, NOW) is None
    assert book.take(f"{version}.{expires}.{nonce}.{'0' * 64}", KEYS, NOW) is None
    rotated = AccessKeys(AccessKey(KeyName.PRIMARY, b"q" * 32), SECONDARY)
    assert book.take(token, rotated, NOW) is None
    forever = mint_link(PRIMARY, b"\x03" * 16, int(NOW) + MAX_LINK_LIFETIME + 10)
    assert book.take(forever, KEYS, NOW) is None
    for junk in ("", "v1", "v1.x.y.z", "v2.1.2.3", "v1.-5.aa.bb", "é" * 10):
        assert book.take(junk, KEYS, NOW) is None
    assert len(book) == 0


def test_the_book_is_bounded_and_forgets_expired_links() -> None:
    book = LinkBook(max_remembered=2)
    tokens = [mint_link(PRIMARY, bytes([n]) * 16, int(NOW) + 60) for n in range(3)]
    assert book.take(tokens[0], KEYS, NOW) and book.take(tokens[1], KEYS, NOW)
    assert book.take(tokens[2], KEYS, NOW) is None  # full: takes none rather than forget one
    fresh = mint_link(PRIMARY, b"\x09" * 16, int(NOW) + 200)
    assert book.take(fresh, KEYS, NOW + 61) is KeyName.PRIMARY  # the first two expired
    assert len(book) == 1


# --- sessions -----------------------------------------------------------------------------


def test_a_session_is_found_until_idle_or_too_old() -> None:
    sessions = Sessions(SessionLimits(idle=100, absolute=250, max_sessions=10))
    session = sessions.open(PRIMARY, "id-1", "csrf-1", NOW)
    assert sessions.find("id-1", KEYS, NOW + 99) is session
    assert sessions.find("id-1", KEYS, NOW + 198) is session  # each use restarts the idle time
    assert sessions.find("id-1", KEYS, NOW + 249) is session
    assert sessions.find("id-1", KEYS, NOW + 250) is None  # absolute
    assert len(sessions) == 0
    sessions.open(PRIMARY, "id-2", "csrf-2", NOW)
    assert sessions.find("id-2", KEYS, NOW + 100) is None  # idle
    assert sessions.find("other", KEYS, NOW) is None
    assert sessions.find(None, KEYS, NOW) is None


def test_rotating_the_key_ends_its_sessions_only() -> None:
    sessions = Sessions()
    sessions.open(PRIMARY, "a", "x", NOW)
    sessions.open(SECONDARY, "b", "y", NOW)
    rotated = AccessKeys(AccessKey(KeyName.PRIMARY, b"q" * 32), SECONDARY)
    assert sessions.find("a", rotated, NOW) is None
    assert sessions.find("b", rotated, NOW) is not None


def test_sessions_are_bounded_least_recently_used_first() -> None:
    sessions = Sessions(SessionLimits(max_sessions=2))
    sessions.open(PRIMARY, "a", "x", NOW)
    sessions.open(PRIMARY, "b", "x", NOW)
    assert sessions.find("a", KEYS, NOW + 1) is not None  # "b" is now the least recent
    sessions.open(PRIMARY, "c", "x", NOW + 2)
    assert len(sessions) == 2
    assert sessions.find("b", KEYS, NOW + 3) is None
    assert sessions.find("a", KEYS, NOW + 3) is not None


def test_sign_out_and_expiry_sweep() -> None:
    sessions = Sessions(SessionLimits(idle=10))
    sessions.open(PRIMARY, "a", "x", NOW)
    sessions.open(PRIMARY, "b", "x", NOW + 5)
    sessions.close("a")
    sessions.close(None)
    assert sessions.find("a", KEYS, NOW) is None
    sessions.forget_expired(NOW + 15)
    assert len(sessions) == 0


@pytest.mark.parametrize("given", ["csrf-1", "csrf-2", "", None, "csrf-1 ", "é"])
def test_the_csrf_token_must_match_exactly(given: str | None) -> None:
    session = Sessions().open(PRIMARY, "id", "csrf-1", NOW)
    assert session.csrf_matches(given) is (given == "csrf-1")


def test_a_base64_key_with_padding_is_not_mistaken_for_a_connection_string() -> None:
    key = base64.b64encode(b"k" * 31).decode()
    assert key.endswith("=")
    assert pasted_key(key) == b"k" * 31
