"""Hybrid connections and authorization rules against a real database, shared by every node."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from store_targets import StoreTarget

from passage.store.database import Database
from passage.store.hybrid import (
    NAMESPACE,
    ConnectionRecord,
    HybridStore,
    NamespaceRecords,
    RuleRecord,
)
from passage.store.schema import sas_rules

T0 = 1_700_000_000.0  # unix seconds (2023-11-14T22:13:20Z)
ROOT = "RootManageSharedAccessKey"
MAX = 12


async def test_an_empty_store_has_no_connections_and_no_rules(database: Database) -> None:
    assert await HybridStore(database).load_namespace() == NamespaceRecords((), ())


async def test_ensure_rule_stores_the_first_keys_and_keeps_them(database: Database) -> None:
    store = HybridStore(database)
    assert await store.ensure_rule(NAMESPACE, ROOT, 7, "first-p", "first-s", T0) is True
    assert await store.ensure_rule(NAMESPACE, ROOT, 1, "second-p", "second-s", T0 + 1) is False
    assert (await store.load_namespace()).rules == (
        RuleRecord(NAMESPACE, ROOT, 7, "first-p", "first-s", T0),
    )


async def test_nodes_ensuring_the_root_rule_at_once_agree_on_one(target: StoreTarget) -> None:
    first, second = await target.open(), await target.open()
    try:
        created = await asyncio.gather(
            *(
                HybridStore(database).ensure_rule(NAMESPACE, ROOT, 7, f"p{n}", f"s{n}", T0)
                for n, database in enumerate((first, second))
            )
        )
        assert sorted(created) == [False, True]
        seen = [(await HybridStore(db).load_namespace()).rules for db in (first, second)]
        assert seen[0] == seen[1]
        assert len(seen[0]) == 1
        assert (seen[0][0].primary_key, seen[0][0].secondary_key) in {("p0", "s0"), ("p1", "s1")}
    finally:
        await first.close()
        await second.close()


async def test_create_connection_refuses_an_existing_path(database: Database) -> None:
    store = HybridStore(database)
    assert await store.create_connection("orders/eu", "Orders/EU", False, T0) is True
    assert await store.create_connection("orders/eu", "orders/EU", True, T0 + 1) is False
    assert (await store.load_namespace()).connections == (
        ConnectionRecord("orders/eu", "Orders/EU", False, T0),
    )


async def test_connections_load_by_path_with_their_flag(database: Database) -> None:
    store = HybridStore(database)
    await store.create_connection("zeta", "Zeta", True, T0)
    await store.create_connection("alpha", "alpha", False, T0 + 1)
    assert (await store.load_namespace()).connections == (
        ConnectionRecord("alpha", "alpha", False, T0 + 1),
        ConnectionRecord("zeta", "Zeta", True, T0),
    )


async def test_delete_connection_deletes_its_rules_and_nobody_elses(database: Database) -> None:
    store = HybridStore(database)
    for path in ("a", "b"):
        await store.create_connection(path, path, True, T0)
        await store.put_rule(path, "send", 2, "p", "s", T0, max_rules=MAX)
    await store.ensure_rule(NAMESPACE, ROOT, 7, "p", "s", T0)

    assert await store.delete_connection("a") is True
    assert await store.delete_connection("a") is False
    loaded = await store.load_namespace()
    assert [c.path for c in loaded.connections] == ["b"]
    assert [(r.entity, r.name) for r in loaded.rules] == [(NAMESPACE, ROOT), ("b", "send")]
    async with database.read() as connection:
        left = (await connection.execute(select(sas_rules.c.entity, sas_rules.c.name))).all()
    assert sorted(left) == [(NAMESPACE, ROOT), ("b", "send")]


async def test_put_rule_creates_then_replaces_and_keeps_created_at(database: Database) -> None:
    store = HybridStore(database)
    await store.create_connection("hc", "hc", True, T0)
    assert await store.put_rule("hc", "app", 1, "p1", "s1", T0, max_rules=MAX) == "created"
    assert await store.put_rule("hc", "app", 3, "p2", "s2", T0 + 5, max_rules=MAX) == "replaced"
    assert (await store.load_namespace()).rules == (RuleRecord("hc", "app", 3, "p2", "s2", T0),)


async def test_a_rule_of_the_same_name_on_another_entity_is_another_rule(
    database: Database,
) -> None:
    store = HybridStore(database)
    await store.create_connection("hc", "hc", True, T0)
    assert await store.put_rule(NAMESPACE, "app", 1, "ns-p", "ns-s", T0, max_rules=MAX) == "created"
    assert await store.put_rule("hc", "app", 2, "hc-p", "hc-s", T0, max_rules=MAX) == "created"
    assert (await store.load_namespace()).rules == (
        RuleRecord(NAMESPACE, "app", 1, "ns-p", "ns-s", T0),
        RuleRecord("hc", "app", 2, "hc-p", "hc-s", T0),
    )


async def test_put_rule_on_an_unknown_connection_is_refused(database: Database) -> None:
    store = HybridStore(database)
    assert await store.put_rule("nope", "app", 1, "p", "s", T0, max_rules=MAX) == "unknown entity"
    assert (await store.load_namespace()).rules == ()


async def test_put_rule_refuses_a_new_rule_past_the_limit_but_replaces(database: Database) -> None:
    store = HybridStore(database)
    for n in range(3):
        assert await store.put_rule(NAMESPACE, f"r{n}", 1, "p", "s", T0, max_rules=3) == "created"
    assert await store.put_rule(NAMESPACE, "r3", 1, "p", "s", T0, max_rules=3) == "full"
    assert await store.put_rule(NAMESPACE, "r1", 2, "p", "s", T0, max_rules=3) == "replaced"
    # The limit is per entity: a connection's rules do not count against the namespace.
    await store.create_connection("hc", "hc", True, T0)
    assert await store.put_rule("hc", "r3", 1, "p", "s", T0, max_rules=3) == "created"
    rules = (await store.load_namespace()).rules
    assert [(r.entity, r.name, r.rights) for r in rules] == [
        (NAMESPACE, "r0", 1),
        (NAMESPACE, "r1", 2),
        (NAMESPACE, "r2", 1),
        ("hc", "r3", 1),
    ]


async def test_delete_rule_deletes_one_rule(database: Database) -> None:
    store = HybridStore(database)
    await store.create_connection("hc", "hc", True, T0)
    await store.put_rule(NAMESPACE, "app", 1, "p", "s", T0, max_rules=MAX)
    await store.put_rule("hc", "app", 1, "p", "s", T0, max_rules=MAX)
    assert await store.delete_rule("hc", "app") is True
    assert await store.delete_rule("hc", "app") is False
    assert [(r.entity, r.name) for r in (await store.load_namespace()).rules] == [
        (NAMESPACE, "app")
    ]


async def test_a_recreated_connection_inherits_no_orphaned_rule(database: Database) -> None:
    """A rule written for a connection another node deleted is neither loaded nor inherited."""
    store = HybridStore(database)
    async with database.write() as connection:
        await connection.execute(
            sas_rules.insert().values(
                entity="hc",
                name="stale",
                rights=3,
                primary_key="old",
                secondary_key="old",
                created_at=T0,
            )
        )
    assert (await store.load_namespace()).rules == ()
    assert await store.create_connection("hc", "hc", True, T0 + 1) is True
    assert (await store.load_namespace()).rules == ()
    async with database.read() as connection:
        assert (await connection.execute(select(sas_rules))).all() == []
