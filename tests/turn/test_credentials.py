"""TURN REST ephemeral credentials (draft-uberti-behave-turn-rest-00 §2.2; coturn)."""

from __future__ import annotations

import pytest

from passage.turn.credentials import (
    RestSecrets,
    make_rest_credentials,
    rest_password,
    rest_username_expiry,
)

# Computed with openssl, not with Python's hmac:
#   printf '%s' 1700000000:alice | openssl dgst -sha1 -hmac north -binary | base64
NORTH_1700000000_ALICE = "Cd/49soE35ICqcJF/bCTn8Z4OyE="
#   printf '%s' 1700000000:alice | openssl dgst -sha1 -hmac south -binary | base64
SOUTH_1700000000_ALICE = "FJeNoC0yJtNekwCa5JT/sW/1Ls4="


def test_rest_password_matches_openssl_vector() -> None:
    assert rest_password("north", "1700000000:alice") == NORTH_1700000000_ALICE
    assert rest_password("south", "1700000000:alice") == SOUTH_1700000000_ALICE


def test_rest_password_depends_on_secret_and_username() -> None:
    assert rest_password("north", "1700000000:alicf") != NORTH_1700000000_ALICE
    assert rest_password("nortH", "1700000000:alice") != NORTH_1700000000_ALICE


def test_make_rest_credentials_username_is_expiry_then_user() -> None:
    username, password = make_rest_credentials("north", "alice", 86400, 1699913600.9)
    assert username == "1700000000:alice"
    assert password == NORTH_1700000000_ALICE


def test_make_rest_credentials_without_user() -> None:
    assert make_rest_credentials("north", None, 60, 1000.0)[0] == "1060"
    assert make_rest_credentials("north", "", 60, 1000.0)[0] == "1060"


def test_make_rest_credentials_with_other_separator() -> None:
    username, password = make_rest_credentials("north", "alice", 60, 1000.0, separator="_")
    assert username == "1060_alice"
    assert password == rest_password("north", "1060_alice")


@pytest.mark.parametrize("ttl", [0, -1])
def test_make_rest_credentials_refuses_non_positive_ttl(ttl: int) -> None:
    with pytest.raises(ValueError, match="ttl"):
        make_rest_credentials("north", "alice", ttl, 1000.0)


@pytest.mark.parametrize("separator", ["", "::", "7"])
def test_separator_must_be_one_non_digit(separator: str) -> None:
    with pytest.raises(ValueError, match="separator"):
        make_rest_credentials("north", "alice", 60, 1000.0, separator=separator)
    with pytest.raises(ValueError, match="separator"):
        rest_username_expiry("1060:alice", separator=separator)


@pytest.mark.parametrize(
    ("username", "separator", "expiry"),
    [
        ("1700000000:alice", ":", 1700000000),
        ("1700000000", ":", 1700000000),
        ("1700000000:alice:bob", ":", 1700000000),
        ("1700000000:", ":", 1700000000),
        ("0", ":", 0),
        ("000000000001:x", ":", 1),
        ("1700000000_alice", "_", 1700000000),
        ("1700000000:alice", "_", 1700000000),  # ":" is always accepted
        ("999999999999", ":", 999_999_999_999),
    ],
)
def test_rest_username_expiry(username: str, separator: str, expiry: int) -> None:
    assert rest_username_expiry(username, separator) == expiry


@pytest.mark.parametrize(
    ("username", "separator"),
    [
        ("alice", ":"),
        ("", ":"),
        (":1700000000", ":"),
        ("alice:1700000000", ":"),
        ("1700000000_alice", ":"),  # "_" only when configured
        ("1700000000-alice", "_"),
        ("1700000000alice", ":"),
        ("-1700000000:alice", ":"),
        ("+1700000000:alice", ":"),
        (" 1700000000:alice", ":"),
        ("1_700_000_000:alice", ":"),
        ("١٧٠٠٠٠٠٠٠٠:alice", ":"),  # Arabic-Indic digits: int() would take them
        ("1000000000000", ":"),  # 13 digits
        ("9" * 5000, ":"),  # int() of this would raise on the digit limit
    ],
)
def test_rest_username_expiry_refuses_non_rest_usernames(username: str, separator: str) -> None:
    assert rest_username_expiry(username, separator) is None


def test_rest_secrets_give_one_password_per_secret_in_order() -> None:
    secrets = RestSecrets(("north", "south"))
    assert secrets.passwords("1700000000:alice") == [
        NORTH_1700000000_ALICE,
        SOUTH_1700000000_ALICE,
    ]


def test_rest_secrets_mint_with_the_first_secret() -> None:
    secrets = RestSecrets(("north", "south"))
    username, password = secrets.mint("alice", 86400, 1699913600.0)
    assert (username, password) == ("1700000000:alice", NORTH_1700000000_ALICE)
    rotated = RestSecrets(("south", "north"))
    assert password in rotated.passwords(username)
    assert rotated.mint("alice", 86400, 1699913600.0)[1] == SOUTH_1700000000_ALICE


def test_rest_secrets_never_appear_in_repr_or_str() -> None:
    secrets = RestSecrets(("north-secret-value", "south-secret-value"))
    for text in (repr(secrets), str(secrets), f"{secrets!r}"):
        assert "north-secret-value" not in text
        assert "south-secret-value" not in text


@pytest.mark.parametrize("bad", [(), ("north", ""), ("",)])
def test_rest_secrets_refuse_empty(bad: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="REST secrets"):
        RestSecrets(bad)


def test_rest_secrets_accept_a_list_and_store_a_tuple() -> None:
    secrets = RestSecrets(["north"])  # type: ignore[arg-type]
    assert secrets.secrets == ("north",)
    assert hash(secrets) == hash(RestSecrets(("north",)))
