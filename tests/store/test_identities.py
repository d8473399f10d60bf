"""Identities, access keys and settings against a real database, shared by every node."""

from __future__ import annotations

import asyncio

from store_targets import StoreTarget

from passage.store.database import Database
from passage.store.identities import IdentityRecord, IdentityStore

T0 = 1_700_000_000.0  # unix seconds (2023-11-14T22:13:20Z)
MS = 1_700_000_000_000  # the same instant in unix milliseconds: too big for a 32-bit column

RESOURCE = "2dee53b4-368b-45b4-ab52-8493fb117652"
KEYS = {"primary": "cHJpbWFyeQ==", "secondary": "c2Vjb25kYXJ5"}


def identity(n: int) -> str:
    return f"8:acs:{RESOURCE}_00000000-0000-0000-0000-{n:012d}"


async def test_initialize_stores_what_it_is_given_the_first_time(database: Database) -> None:
    store = IdentityStore(database)
    assert await store.initialize(RESOURCE, KEYS, T0) == (RESOURCE, KEYS)
    assert await store.keys() == KEYS


async def test_initialize_returns_what_is_stored_not_what_it_is_given(database: Database) -> None:
    store = IdentityStore(database)
    await store.initialize(RESOURCE, KEYS, T0)
    proposed = {"primary": "bmV3MQ==", "secondary": "bmV3Mg=="}
    resource_id, keys = await store.initialize("other-resource", proposed, T0 + 1)
    assert (resource_id, keys) == (RESOURCE, KEYS)
    assert await store.keys() == KEYS


async def test_nodes_initializing_at_once_agree_on_one_resource_and_keys(
    target: StoreTarget,
) -> None:
    first, second = await target.open(), await target.open()
    try:
        proposals = [
            (f"resource-{n}", {"primary": f"primary-{n}", "secondary": f"secondary-{n}"})
            for n in (1, 2)
        ]
        results = await asyncio.gather(
            *(
                IdentityStore(database).initialize(resource_id, keys, T0)
                for database, (resource_id, keys) in zip((first, second), proposals, strict=True)
            )
        )
        assert results[0] == results[1]
        assert results[0] in proposals
        assert await IdentityStore(first).keys() == results[0][1]
    finally:
        await first.close()
        await second.close()


async def test_set_key_replaces_only_the_named_key(database: Database) -> None:
    store = IdentityStore(database)
    await store.initialize(RESOURCE, KEYS, T0)
    await store.set_key("secondary", "cm90YXRlZA==", T0 + 1)
    assert await store.keys() == {"primary": KEYS["primary"], "secondary": "cm90YXRlZA=="}
    await store.set_key("primary", "YWdhaW4=", T0 + 2)
    assert await store.keys() == {"primary": "YWdhaW4=", "secondary": "cm90YXRlZA=="}


async def test_a_created_identity_is_live_and_unrevoked(database: Database) -> None:
    store = IdentityStore(database)
    await store.create(identity(1), T0)
    assert await store.get(identity(1)) == IdentityRecord(
        id=identity(1), created_at=T0, revoked_before_ms=None, deleted_at=None, changed_at=T0
    )
    assert await store.get(identity(2)) is None


async def test_revoke_raises_the_watermark_and_never_lowers_it(database: Database) -> None:
    store = IdentityStore(database)
    await store.create(identity(1), T0)
    assert await store.revoke(identity(1), MS + 5_000, T0 + 5)
    assert await store.revoke(identity(1), MS + 1_000, T0 + 6)
    record = await store.get(identity(1))
    assert record is not None
    assert (record.revoked_before_ms, record.changed_at) == (MS + 5_000, T0 + 6)
    assert not record.deleted
    assert await store.revoke(identity(1), MS + 9_000, T0 + 9)
    record = await store.get(identity(1))
    assert record is not None and record.revoked_before_ms == MS + 9_000


async def test_revoke_refuses_unknown_and_deleted_identities(database: Database) -> None:
    store = IdentityStore(database)
    assert not await store.revoke(identity(1), MS, T0)
    assert await store.get(identity(1)) is None
    await store.create(identity(2), T0)
    await store.delete(identity(2), T0 + 1)
    assert not await store.revoke(identity(2), MS + 2_000, T0 + 2)
    record = await store.get(identity(2))
    assert record is not None
    assert (record.revoked_before_ms, record.changed_at) == (None, T0 + 1)


async def test_delete_succeeds_once_and_keeps_the_row(database: Database) -> None:
    store = IdentityStore(database)
    await store.create(identity(1), T0)
    assert await store.delete(identity(1), T0 + 1)
    assert not await store.delete(identity(1), T0 + 2)
    assert not await store.delete(identity(2), T0 + 2)
    record = await store.get(identity(1))
    assert record is not None and record.deleted
    assert (record.created_at, record.deleted_at, record.changed_at) == (T0, T0 + 1, T0 + 1)


async def _changes(store: IdentityStore) -> None:
    """Identities 1-3 changed at T0+30, T0+10, T0+20; 4 only created (after T0+10); 5 early."""
    for n in (1, 2, 3, 5):
        await store.create(identity(n), T0)
    await store.revoke(identity(5), MS, T0 + 1)
    await store.create(identity(4), T0 + 15)
    await store.delete(identity(2), T0 + 10)
    await store.revoke(identity(3), MS + 20_000, T0 + 20)
    await store.revoke(identity(1), MS + 30_000, T0 + 30)


async def test_changed_since_lists_revocations_and_deletions_oldest_first(
    database: Database,
) -> None:
    store = IdentityStore(database)
    await _changes(store)
    changes = await store.changed_since(T0 + 10)
    assert [record.id for record in changes] == [identity(2), identity(3), identity(1)]
    assert [record.changed_at for record in changes] == [T0 + 10, T0 + 20, T0 + 30]
    assert changes[0].deleted and changes[1].revoked_before_ms == MS + 20_000
    after = await store.changed_since(T0 + 10.5)
    assert [record.id for record in after] == [identity(3), identity(1)]
    assert await store.changed_since(T0 + 31) == []


async def test_changed_since_honours_the_limit(database: Database) -> None:
    store = IdentityStore(database)
    await _changes(store)
    changes = await store.changed_since(T0, limit=2)
    assert [record.id for record in changes] == [identity(5), identity(2)]


async def test_changed_since_never_lists_identities_only_created(database: Database) -> None:
    store = IdentityStore(database)
    await _changes(store)
    changes = await store.changed_since(T0 - 1)
    assert [record.id for record in changes] == [identity(n) for n in (5, 2, 3, 1)]
