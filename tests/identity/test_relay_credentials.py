"""Relay credentials: TURN REST usernames bound to an identity and a key (reference §5)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from identity_values import ALICE, BOB, KEYS, PRIMARY, ROTATED, SECONDARY, identity, new_state

from passage.identity.ids import IdentityId
from passage.identity.keys import AccessKeys
from passage.identity.relay_credentials import (
    ANONYMOUS,
    IdentityRelayUsers,
    RelayUsername,
    mint_relay_credential,
)
from passage.turn.auth import Credential, CredentialChain, Refusal, RestSecretUsers, StaticUsers
from passage.turn.credentials import RestSecrets, rest_username_expiry

NOW = 1_700_000_000.0
ISSUED_MS = 1_700_000_000_123
EXPIRES = 1_700_172_800
"""48 h after ``NOW``, the longest relay credential."""


def test_username_names_expiry_key_issue_time_and_identity() -> None:
    username, _ = mint_relay_credential(PRIMARY, ALICE, issued_ms=ISSUED_MS, expires=EXPIRES)
    assert username == (
        f"{EXPIRES}:{PRIMARY.key_id}.{ISSUED_MS}."
        "2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081"
    )


def test_anonymous_username() -> None:
    username, _ = mint_relay_credential(SECONDARY, None, issued_ms=ISSUED_MS, expires=EXPIRES)
    assert username == f"{EXPIRES}:{SECONDARY.key_id}.{ISSUED_MS}.anonymous"
    parsed = RelayUsername.parse(username)
    assert parsed == RelayUsername(EXPIRES, SECONDARY.key_id, ISSUED_MS, None)
    assert parsed is not None and parsed.subject == ANONYMOUS


def test_credential_is_a_20_byte_hmac_in_base64() -> None:
    """28 base64 characters, the shape of ACS's own relay credentials (reference §5)."""
    _, credential = mint_relay_credential(PRIMARY, ALICE, issued_ms=ISSUED_MS, expires=EXPIRES)
    assert len(credential) == 28
    assert len(base64.b64decode(credential, validate=True)) == 20


def test_credential_depends_on_key_and_username() -> None:
    _, by_primary = mint_relay_credential(PRIMARY, ALICE, issued_ms=ISSUED_MS, expires=EXPIRES)
    _, by_secondary = mint_relay_credential(SECONDARY, ALICE, issued_ms=ISSUED_MS, expires=EXPIRES)
    _, for_bob = mint_relay_credential(PRIMARY, BOB, issued_ms=ISSUED_MS, expires=EXPIRES)
    _, later = mint_relay_credential(PRIMARY, ALICE, issued_ms=ISSUED_MS, expires=EXPIRES + 1)
    assert len({by_primary, by_secondary, for_bob, later}) == 4


USERNAMES = st.builds(
    RelayUsername,
    expires=st.integers(0, 10**12 - 1),
    key_id=st.sampled_from([PRIMARY.key_id, SECONDARY.key_id, "0123456789ab"]),
    issued_ms=st.integers(0, 10**16 - 1),
    identity=st.none() | st.integers(0, 2**128 - 1).map(identity),
)


@given(USERNAMES)
def test_username_round_trips(username: RelayUsername) -> None:
    assert RelayUsername.parse(str(username)) == username


@given(USERNAMES)
def test_rest_parsers_read_the_same_expiry(username: RelayUsername) -> None:
    """draft-uberti §2.2: ``<expiry>:<user>``, with no further ``:`` in ``<user>``."""
    text = str(username)
    assert text.count(":") == 1
    assert text.startswith(f"{username.expires}:")
    assert rest_username_expiry(text) == username.expires


@pytest.mark.parametrize(
    "username",
    [
        "",
        "alice",
        "1700000000",
        "1700000000:bob",
        "1700000000:0123456789ab.123",
        "1700000000:0123456789AB.123.anonymous",  # key ids are lower-case hex
        "1700000000:0123456789a.123.anonymous",
        "1700000000:0123456789ab.123.anonymous:x",
        "1700000000:0123456789ab.-1.anonymous",
        "1700000000:0123456789ab.123.Anonymous",
        "1700000000000:0123456789ab.123.anonymous",  # 13 digits: no REST time
    ],
)
def test_parse_refuses_other_usernames(username: str) -> None:
    assert RelayUsername.parse(username) is None


# --- the TURN core's credential source -----------------------------------------------------


def test_lookup_gives_the_minted_password_and_the_identity_as_subject() -> None:
    users = IdentityRelayUsers(new_state())
    username, credential = mint_relay_credential(
        SECONDARY, ALICE, issued_ms=ISSUED_MS, expires=EXPIRES
    )
    found = users.lookup(username, NOW)
    assert found == Credential(username, ALICE, (credential,), from_store=True)


def test_lookup_bills_anonymous_credentials_to_anonymous_with_a_quota_each() -> None:
    users = IdentityRelayUsers(new_state())
    username, credential = mint_relay_credential(
        PRIMARY, None, issued_ms=ISSUED_MS, expires=EXPIRES
    )
    found = users.lookup(username, NOW)
    assert found == Credential(username, "anonymous", (credential,), quota=username)
    assert isinstance(found, Credential) and found.quota_key == username
    identified = users.lookup(
        mint_relay_credential(PRIMARY, ALICE, issued_ms=ISSUED_MS, expires=EXPIRES)[0], NOW
    )
    assert isinstance(identified, Credential) and identified.quota_key == ALICE


def test_lookup_password_is_bound_to_the_whole_username() -> None:
    """Editing the username to another identity yields a password the holder lacks."""
    users = IdentityRelayUsers(new_state())
    username, credential = mint_relay_credential(
        PRIMARY, ALICE, issued_ms=ISSUED_MS, expires=EXPIRES
    )
    forged = username.replace(ALICE.removeprefix("8:acs:"), BOB.removeprefix("8:acs:"))
    found = users.lookup(forged, NOW)
    assert isinstance(found, Credential) and found.subject == BOB
    assert found.passwords != (credential,)


def test_lookup_refuses_after_expiry() -> None:
    """Valid through the expiry second, as coturn's REST check."""
    users = IdentityRelayUsers(new_state())
    username, _ = mint_relay_credential(PRIMARY, ALICE, issued_ms=ISSUED_MS, expires=EXPIRES)
    assert isinstance(users.lookup(username, EXPIRES), Credential)
    assert users.lookup(username, EXPIRES + 0.5) is Refusal.EXPIRED


def test_lookup_refuses_credentials_of_a_rotated_key() -> None:
    state = new_state()
    users = IdentityRelayUsers(state)
    by_primary, _ = mint_relay_credential(PRIMARY, ALICE, issued_ms=ISSUED_MS, expires=EXPIRES)
    by_secondary, _ = mint_relay_credential(SECONDARY, ALICE, issued_ms=ISSUED_MS, expires=EXPIRES)
    state.keys = AccessKeys(ROTATED, SECONDARY)
    assert users.lookup(by_primary, NOW) is Refusal.KEY_ROTATED
    assert isinstance(users.lookup(by_secondary, NOW), Credential)
    state.keys = KEYS  # rotating back finds the key again
    assert isinstance(users.lookup(by_primary, NOW), Credential)


def test_lookup_refuses_credentials_issued_before_a_revoke() -> None:
    state = new_state()
    users = IdentityRelayUsers(state)
    username, _ = mint_relay_credential(PRIMARY, ALICE, issued_ms=ISSUED_MS, expires=EXPIRES)
    state.revocations.revoke(ALICE, ISSUED_MS, NOW)
    assert isinstance(users.lookup(username, NOW), Credential)
    state.revocations.revoke(ALICE, ISSUED_MS + 1, NOW)
    assert users.lookup(username, NOW) is Refusal.REVOKED
    reissued_ms = state.revocations.issue_time(ALICE, ISSUED_MS)
    fresh, _ = mint_relay_credential(PRIMARY, ALICE, issued_ms=reissued_ms, expires=EXPIRES)
    assert isinstance(users.lookup(fresh, NOW), Credential)


def test_lookup_refuses_credentials_of_a_deleted_identity() -> None:
    state = new_state()
    users = IdentityRelayUsers(state)
    alice, _ = mint_relay_credential(PRIMARY, ALICE, issued_ms=ISSUED_MS, expires=EXPIRES)
    bob, _ = mint_relay_credential(PRIMARY, BOB, issued_ms=ISSUED_MS, expires=EXPIRES)
    anonymous, _ = mint_relay_credential(PRIMARY, None, issued_ms=ISSUED_MS, expires=EXPIRES)
    state.revocations.delete(ALICE, NOW)
    assert users.lookup(alice, NOW) is Refusal.REVOKED
    assert isinstance(users.lookup(bob, NOW), Credential)
    assert isinstance(users.lookup(anonymous, NOW), Credential)


@pytest.mark.parametrize(
    "username", ["1700000000:bob", "1700000000", "alice", "", f"{EXPIRES}:{PRIMARY.key_id}"]
)
def test_lookup_does_not_know_other_usernames(username: str) -> None:
    assert IdentityRelayUsers(new_state()).lookup(username, NOW) is Refusal.UNKNOWN_USER


# --- in the chain the TURN server runs ---------------------------------------------------


def chain_with_rest_secret() -> tuple[CredentialChain, RestSecretUsers, IdentityRelayUsers]:
    """The app's chain, with a REST secret equal to the relay secret: the worst case, in
    which falling through to REST would accept what the identity source refused."""
    state = new_state()
    identities = IdentityRelayUsers(state)
    rest = RestSecretUsers(RestSecrets((PRIMARY.relay_secret,)))
    chain = CredentialChain([StaticUsers({"alice": "pw"}), identities, rest])
    return chain, rest, identities


def test_chain_answers_revoked_rather_than_falling_through() -> None:
    chain, rest, identities = chain_with_rest_secret()
    username, credential = mint_relay_credential(
        PRIMARY, ALICE, issued_ms=ISSUED_MS, expires=EXPIRES
    )
    identities.state.revocations.revoke(ALICE, ISSUED_MS + 1, NOW)
    fallen_through = rest.lookup(username, NOW)
    assert isinstance(fallen_through, Credential) and fallen_through.passwords == (credential,)
    assert chain.lookup(username, NOW) is Refusal.REVOKED


def test_chain_answers_key_rotated_and_expired_rather_than_falling_through() -> None:
    chain, _, identities = chain_with_rest_secret()
    username, _ = mint_relay_credential(PRIMARY, ALICE, issued_ms=ISSUED_MS, expires=EXPIRES)
    identities.state.keys = AccessKeys(ROTATED, SECONDARY)
    assert chain.lookup(username, NOW) is Refusal.KEY_ROTATED
    assert chain.lookup(username, EXPIRES + 1) is Refusal.EXPIRED


def test_chain_still_serves_rest_and_static_users() -> None:
    chain, _, _ = chain_with_rest_secret()
    rest = chain.lookup("1700000000:bob", NOW)
    assert isinstance(rest, Credential) and rest.subject == "bob"
    static = chain.lookup("alice", NOW)
    assert static == Credential("alice", "alice", ("pw",))


def test_identity_ids_in_usernames_are_short_form() -> None:
    parsed = RelayUsername.parse(f"{EXPIRES}:{PRIMARY.key_id}.1.{ALICE.removeprefix('8:acs:')}")
    assert parsed is not None and parsed.identity == IdentityId(ALICE)
