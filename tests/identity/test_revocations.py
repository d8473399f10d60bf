"""Revocation watermarks: revoke, delete, re-issue in the same millisecond, prune."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from identity_values import ALICE, BOB

from passage.identity.revocations import DELETED, RETENTION, RevocationList

NOW = 1_700_000_000.0
NOW_MS = int(NOW * 1000)


def test_nothing_is_revoked_without_a_watermark() -> None:
    revocations = RevocationList()
    assert not revocations.is_revoked(ALICE, 0)
    assert not revocations.is_deleted(ALICE)
    assert revocations.issue_time(ALICE, NOW_MS) == NOW_MS
    assert len(revocations) == 0


def test_revoke_refuses_what_was_issued_before_the_watermark() -> None:
    revocations = RevocationList()
    revocations.revoke(ALICE, NOW_MS, NOW)
    assert revocations.is_revoked(ALICE, NOW_MS - 1)
    assert revocations.is_revoked(ALICE, 0)
    assert not revocations.is_revoked(ALICE, NOW_MS)
    assert not revocations.is_revoked(ALICE, NOW_MS + 1)
    assert not revocations.is_revoked(BOB, NOW_MS - 1)
    assert not revocations.is_deleted(ALICE)


def test_issue_time_after_a_revoke_in_the_same_millisecond_is_valid() -> None:
    """The API revokes at ``now_ms + 1``; a token minted in that same millisecond is
    stamped with the watermark, not ``now_ms``, so it is not refused by it."""
    revocations = RevocationList()
    revocations.revoke(ALICE, NOW_MS + 1, NOW)
    issued = revocations.issue_time(ALICE, NOW_MS)
    assert issued == NOW_MS + 1
    assert not revocations.is_revoked(ALICE, issued)
    assert revocations.is_revoked(ALICE, NOW_MS)


def test_issue_time_is_the_clock_once_past_the_watermark() -> None:
    revocations = RevocationList()
    revocations.revoke(ALICE, NOW_MS, NOW)
    assert revocations.issue_time(ALICE, NOW_MS + 5) == NOW_MS + 5
    assert revocations.issue_time(BOB, NOW_MS - 5) == NOW_MS - 5


def test_revoke_never_lowers_a_watermark() -> None:
    revocations = RevocationList()
    revocations.revoke(ALICE, NOW_MS, NOW)
    revocations.revoke(ALICE, NOW_MS - 1000, NOW + 1)  # e.g. a stale sync from the store
    assert revocations.is_revoked(ALICE, NOW_MS - 1)
    revocations.revoke(ALICE, NOW_MS + 1000, NOW + 2)
    assert revocations.is_revoked(ALICE, NOW_MS + 999)


def test_a_lower_revoke_does_not_refresh_the_retention() -> None:
    """Only a watermark that took effect resets when the entry was set."""
    revocations = RevocationList()
    revocations.revoke(ALICE, NOW_MS, NOW)
    revocations.revoke(ALICE, NOW_MS - 1, NOW + RETENTION)
    assert revocations.prune(NOW + RETENTION + 1) == 1


def test_delete_refuses_everything_ever_issued() -> None:
    revocations = RevocationList()
    revocations.delete(ALICE, NOW)
    assert revocations.is_deleted(ALICE)
    assert revocations.is_revoked(ALICE, NOW_MS)
    assert revocations.is_revoked(ALICE, DELETED - 1)
    assert not revocations.is_deleted(BOB)


def test_delete_beats_an_earlier_revoke() -> None:
    revocations = RevocationList()
    revocations.revoke(ALICE, NOW_MS, NOW)
    revocations.delete(ALICE, NOW + 1)
    assert revocations.is_deleted(ALICE)
    assert revocations.is_revoked(ALICE, NOW_MS + 10**9)


def test_delete_beats_a_later_revoke() -> None:
    revocations = RevocationList()
    revocations.delete(ALICE, NOW)
    revocations.revoke(ALICE, NOW_MS + 10**9, NOW + 1)
    assert revocations.is_deleted(ALICE)
    assert revocations.is_revoked(ALICE, NOW_MS + 10**9)


def test_issue_time_of_a_deleted_identity_is_not_the_deleted_mark() -> None:
    """The store refuses to issue for a deleted identity; the stamp stays a real time."""
    revocations = RevocationList()
    revocations.delete(ALICE, NOW)
    assert revocations.issue_time(ALICE, NOW_MS) == NOW_MS


def test_prune_keeps_entries_for_the_retention_period() -> None:
    revocations = RevocationList()
    revocations.revoke(ALICE, NOW_MS, NOW)
    revocations.delete(BOB, NOW + 10)
    assert revocations.prune(NOW + RETENTION) == 0
    assert len(revocations) == 2
    assert revocations.prune(NOW + RETENTION + 1) == 1
    assert not revocations.is_revoked(ALICE, NOW_MS - 1)
    assert revocations.is_deleted(BOB)
    assert revocations.prune(NOW + 10 + RETENTION + 0.5) == 1
    assert len(revocations) == 0


def test_retention_outlasts_the_longest_credential() -> None:
    """A pruned watermark could revoke nothing: relay credentials live 48 h at most."""
    assert RETENTION > 172_800


@given(st.lists(st.integers(1, 2**53), min_size=1, max_size=10))
def test_the_watermark_is_the_highest_revoke(watermarks: list[int]) -> None:
    revocations = RevocationList()
    for at, watermark in enumerate(watermarks):
        revocations.revoke(ALICE, watermark, NOW + at)
    highest = max(watermarks)
    assert not revocations.is_revoked(ALICE, highest)
    assert revocations.is_revoked(ALICE, highest - 1)
    assert revocations.issue_time(ALICE, 0) == highest
