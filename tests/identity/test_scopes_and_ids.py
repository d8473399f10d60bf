"""Scopes, token lifetimes and identity ids, validated as ACS does (reference §5)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from identity_values import ALICE, RESOURCE_ID

from passage.identity.errors import ValidationError
from passage.identity.ids import ID_PREFIX, new_identity_id, parse_identity_id, short_form
from passage.identity.scopes import (
    DEFAULT_TOKEN_MINUTES,
    MAX_TOKEN_MINUTES,
    MIN_TOKEN_MINUTES,
    Scope,
    parse_scopes,
    token_minutes,
)

KNOWN = "chat, voip, chat.join, chat.join.limited, voip.join"


def validation_error(call: Callable[[Any], object], value: object) -> ValidationError:
    with pytest.raises(ValidationError) as refused:
        call(value)
    assert (refused.value.status, refused.value.code) == (400, "ValidationError")
    return refused.value


# --- scopes -------------------------------------------------------------------------------


def test_parse_scopes_keeps_order() -> None:
    assert parse_scopes(["voip", "chat.join.limited", "chat"]) == (
        Scope.VOIP,
        Scope.CHAT_JOIN_LIMITED,
        Scope.CHAT,
    )


def test_parse_scopes_accepts_every_acs_scope() -> None:
    assert parse_scopes([s.value for s in Scope]) == tuple(Scope)
    assert [s.value for s in Scope] == KNOWN.split(", ")


def test_parse_scopes_drops_duplicates() -> None:
    assert parse_scopes(["chat", "voip", "chat", "voip"]) == (Scope.CHAT, Scope.VOIP)


def test_parse_scopes_are_required() -> None:
    """The ACS message for a missing or null list (reference §5)."""
    error = validation_error(parse_scopes, None)
    assert (error.message, error.target) == ("Scopes: The Scopes field is required.", "Scopes")


def test_parse_scopes_names_the_target_it_is_given() -> None:
    with pytest.raises(ValidationError) as refused:
        parse_scopes(None, target="CreateTokenWithScopes")
    assert refused.value.target == "CreateTokenWithScopes"
    assert refused.value.message == (
        "CreateTokenWithScopes: The CreateTokenWithScopes field is required."
    )


@pytest.mark.parametrize("value", [[], "chat", ("chat",), {"chat": 1}, 0])
def test_parse_scopes_wants_a_non_empty_list(value: object) -> None:
    error = validation_error(parse_scopes, value)
    assert (error.message, error.target) == (
        "Scopes: expected a non-empty list of scopes.",
        "Scopes",
    )


@pytest.mark.parametrize(
    ("item", "shown"),
    [("admin", "'admin'"), ("Chat", "'Chat'"), ("chat ", "'chat '"), (1, "1"), (None, "None")],
)
def test_parse_scopes_refuses_an_unknown_scope(item: object, shown: str) -> None:
    error = validation_error(parse_scopes, ["chat", item])
    assert error.message == f"Scope {shown} is invalid. Valid scopes: {KNOWN}."
    assert error.target == "Scopes"


def test_parse_scopes_refuses_unhashable_items() -> None:
    error = validation_error(parse_scopes, [["chat"]])
    assert error.message == f"Scope ['chat'] is invalid. Valid scopes: {KNOWN}."


# --- token lifetime -------------------------------------------------------------------------


def test_token_minutes_default_is_a_day() -> None:
    assert DEFAULT_TOKEN_MINUTES == 1440
    assert token_minutes(None) == 1440


@pytest.mark.parametrize("minutes", [MIN_TOKEN_MINUTES, 61, 720, MAX_TOKEN_MINUTES])
def test_token_minutes_within_60_to_1440(minutes: int) -> None:
    assert token_minutes(minutes) == minutes


@pytest.mark.parametrize(
    ("value", "shown"),
    [(59, "59"), (1441, "1441"), (0, "0"), (-60, "-60"), (60.0, "60.0"), ("60", "60")],
)
def test_token_minutes_out_of_range_gets_the_acs_message(value: object, shown: str) -> None:
    error = validation_error(token_minutes, value)
    assert error.target == "ExpiresInMinutes"
    assert error.message == (
        f"ExpiresInMinutes value {shown} is invalid. Value must be within the [60, 1440] interval."
    )


def test_token_minutes_59_has_the_exact_acs_text() -> None:
    assert validation_error(token_minutes, 59).message == (
        "ExpiresInMinutes value 59 is invalid. Value must be within the [60, 1440] interval."
    )


@pytest.mark.parametrize("value", [True, False])
def test_token_minutes_refuses_booleans(value: bool) -> None:
    """JSON ``true`` is no number of minutes, though Python's bool is an int."""
    assert validation_error(token_minutes, value).target == "ExpiresInMinutes"


# --- identity ids ---------------------------------------------------------------------------

ACS_ID = re.compile(
    r"8:acs:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
OTHER_RESOURCE = "b43061a5-6d37-4b23-8e3a-2b236b8e0064"


def test_new_identity_id_has_the_acs_shape() -> None:
    """``8:acs:<resource>_<guid>``, as real ids (reference §5)."""
    suffix = uuid.UUID("00000005-14a2-493b-8a72-5a3a0d000081")
    assert new_identity_id(RESOURCE_ID, suffix) == (
        "8:acs:2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081"
    )


@given(st.uuids())
def test_new_identity_ids_parse_back(suffix: uuid.UUID) -> None:
    identity = new_identity_id(RESOURCE_ID, suffix)
    assert ACS_ID.fullmatch(identity)
    assert parse_identity_id(identity, RESOURCE_ID) == identity


def test_parse_identity_id_is_case_insensitive_and_answers_lower_case() -> None:
    upper = ID_PREFIX + ALICE.removeprefix(ID_PREFIX).upper()
    assert upper != ALICE
    assert parse_identity_id(upper, RESOURCE_ID) == ALICE


def test_parse_identity_id_of_another_resource_is_none() -> None:
    other = new_identity_id(OTHER_RESOURCE, uuid.UUID(int=1))
    assert parse_identity_id(other, OTHER_RESOURCE) == other
    assert parse_identity_id(other, RESOURCE_ID) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        ALICE.removeprefix(ID_PREFIX),  # the short form is no id
        ALICE.replace("8:acs:", "8:ACS:"),  # the prefix is exact
        ALICE.replace("8:acs:", "8:spool:"),
        ALICE + "0",
        ALICE[:-1],
        ALICE.replace("_", "-"),
        ALICE.replace("-", ""),
        ALICE + "\n",
        " " + ALICE,
        ID_PREFIX + short_form(ALICE).replace("a", "g"),  # not hex
    ],
)
def test_parse_identity_id_refuses_malformed_ids(text: str) -> None:
    assert parse_identity_id(text, RESOURCE_ID) is None


def test_short_form_drops_the_prefix() -> None:
    assert short_form(ALICE) == (
        "2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081"
    )
