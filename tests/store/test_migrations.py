"""Schema migrations: recorded, idempotent, atomic, safe when nodes start together."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import Connection, inspect, select, text
from store_targets import StoreTarget

from passage.store import schema
from passage.store.database import Database
from passage.store.migrations import (
    MIGRATIONS,
    Migration,
    SchemaTooNewError,
    run_migrations,
)


async def _versions(database: Database) -> list[int]:
    async with database.read() as connection:
        rows = await connection.scalars(
            select(schema.schema_migrations.c.version).order_by(schema.schema_migrations.c.version)
        )
        return list(rows)


async def test_every_migration_is_recorded_once(target: StoreTarget) -> None:
    database = await target.open()
    try:
        assert await _versions(database) == [m.version for m in MIGRATIONS]
        async with database.read() as connection:
            applied_at = await connection.scalar(select(schema.schema_migrations.c.applied_at))
        assert applied_at is not None and applied_at > 1_700_000_000
    finally:
        await database.close()


async def test_opening_again_applies_nothing(target: StoreTarget) -> None:
    for _ in range(2):
        database = await target.open()
        await database.close()
    database = await target.open()
    try:
        assert await _versions(database) == [m.version for m in MIGRATIONS]
        async with database.write() as connection:
            applied = await connection.run_sync(lambda sync: run_migrations(sync, now=0.0))
        assert applied == []
    finally:
        await database.close()


def _shape(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    dialect = connection.dialect
    shape: dict[str, Any] = {}
    for table in inspector.get_table_names():
        columns = {
            column["name"]: (column["type"].compile(dialect), column["nullable"])
            for column in inspector.get_columns(table)
        }
        key = tuple(inspector.get_pk_constraint(table)["constrained_columns"])
        indexes = {
            (index["name"], tuple(index["column_names"])) for index in inspector.get_indexes(table)
        }
        shape[table] = (columns, key, indexes)
    return shape


def _declared_shape(connection: Connection) -> dict[str, Any]:
    dialect = connection.dialect
    shape: dict[str, Any] = {}
    for table in schema.metadata.sorted_tables:
        columns = {
            column.name: (column.type.compile(dialect), column.nullable) for column in table.columns
        }
        key = tuple(column.name for column in table.primary_key.columns)
        indexes = {
            (index.name, tuple(column.name for column in index.columns)) for index in table.indexes
        }
        shape[table.name] = (columns, key, indexes)
    return shape


async def test_migrated_database_matches_the_declared_schema(target: StoreTarget) -> None:
    database = await target.open()
    try:
        async with database.read() as connection:
            migrated = await connection.run_sync(_shape)
            declared = await connection.run_sync(_declared_shape)
    finally:
        await database.close()
    assert migrated == declared


async def test_a_failing_migration_leaves_nothing_behind(target: StoreTarget) -> None:
    database = await target.open()

    def create_then_fail(connection: Connection) -> None:
        connection.execute(text("CREATE TABLE half_done (x INTEGER)"))
        raise RuntimeError("migration 2 failed")

    history = (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "broken", create_then_fail))
    try:
        with pytest.raises(RuntimeError, match="migration 2 failed"):
            async with database.write() as connection:
                await connection.run_sync(
                    lambda sync: run_migrations(sync, now=0.0, migrations=history)
                )
        assert await _versions(database) == [m.version for m in MIGRATIONS]
        async with database.read() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        assert "half_done" not in tables
    finally:
        await database.close()


async def test_a_newer_schema_is_refused(target: StoreTarget) -> None:
    database = await target.open()
    try:
        async with database.write() as connection:
            await connection.execute(
                schema.schema_migrations.insert().values(version=999, applied_at=0.0)
            )
    finally:
        await database.close()
    with pytest.raises(SchemaTooNewError, match="999"):
        await target.open()


def test_a_history_with_gaps_is_refused() -> None:
    gap = (MIGRATIONS[0], Migration(MIGRATIONS[-1].version + 2, "gap", lambda _: None))
    with pytest.raises(ValueError, match="without gaps"):
        run_migrations(None, now=0.0, migrations=gap)  # type: ignore[arg-type]


async def test_nodes_starting_at_once_all_succeed(target: StoreTarget) -> None:
    # Several nodes migrating one empty database together: PostgreSQL serializes them
    # on the advisory lock, SQLite on BEGIN IMMEDIATE; all must come up.
    opened = await asyncio.gather(*(target.open() for _ in range(4)), return_exceptions=True)
    try:
        failures = [result for result in opened if isinstance(result, BaseException)]
        assert failures == []
    finally:
        for result in opened:
            if isinstance(result, Database):
                await result.close()
    database = await target.open()
    try:
        assert await _versions(database) == [m.version for m in MIGRATIONS]
    finally:
        await database.close()
