"""Opening the store: URLs, drivers and SQLite settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from store_targets import StoreTarget

from passage.store.database import SQLITE_BUSY_TIMEOUT_MS, async_url, open_database, sqlite_url
from passage.store.migrations import MIGRATIONS


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://postgres@127.0.0.1:5432/test", "postgresql+asyncpg"),
        ("postgres://u:p@db.example:5433/passage", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg"),
        ("sqlite:////var/lib/passage/passage.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///relative.db", "sqlite+aiosqlite"),
    ],
)
def test_user_urls_are_pointed_at_the_asyncio_driver(given: str, driver: str) -> None:
    url = async_url(given)
    assert url.drivername == driver
    assert url.database == async_url(given.replace(given.split(":")[0], driver, 1)).database


def test_postgres_url_keeps_credentials_host_and_port() -> None:
    url = async_url("postgresql://user:secret@db.example:5433/passage")
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "user",
        "secret",
        "db.example",
        5433,
        "passage",
    )


@pytest.mark.parametrize(
    "given", ["mysql://u@h/d", "postgresql+psycopg2://u@h/d", "sqlite+pysqlite:///x.db"]
)
def test_unsupported_urls_are_refused(given: str) -> None:
    with pytest.raises(ValueError, match="unsupported database URL"):
        async_url(given)


def test_sqlite_url_is_absolute_and_in_the_data_dir(tmp_path: Path) -> None:
    url = async_url(sqlite_url(tmp_path))
    assert url.drivername == "sqlite+aiosqlite"
    assert url.database == str(tmp_path / "passage.db")


async def test_sqlite_file_is_created_with_wal_and_pragmas(tmp_path: Path) -> None:
    database = await open_database(sqlite_url(tmp_path))
    try:
        async with database.read() as connection:
            journal = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
            synchronous = (await connection.exec_driver_sql("PRAGMA synchronous")).scalar()
            busy = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar()
    finally:
        await database.close()
    assert (journal, synchronous, busy) == ("wal", 1, SQLITE_BUSY_TIMEOUT_MS)  # 1 = NORMAL
    assert (tmp_path / "passage.db").is_file()


async def test_a_schema_is_refused_for_sqlite(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        await open_database(sqlite_url(tmp_path), schema="passage")


async def test_a_failed_write_transaction_is_rolled_back(target: StoreTarget) -> None:
    database = await target.open()
    try:
        with pytest.raises(RuntimeError, match="boom"):
            async with database.write() as connection:
                await connection.execute(
                    text("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)")
                )
                raise RuntimeError("boom")
        async with database.read() as connection:
            versions = (
                await connection.execute(text("SELECT version FROM schema_migrations"))
            ).scalars()
            assert sorted(versions) == [m.version for m in MIGRATIONS]  # no 99
    finally:
        await database.close()


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
async def test_postgres_tables_live_in_the_given_schema(target: StoreTarget) -> None:
    database = await target.open()
    try:
        async with database.read() as connection:
            found = await connection.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": target.schema},
            )
            tables = set(found.scalars())
    finally:
        await database.close()
    assert {"schema_migrations", "allocations", "usage_hourly"} <= tables
