"""Open SQLite or PostgreSQL with one code path, and hand out transactions.

SQLite is the embedded default: one file in the data directory, in WAL mode so that
readers (the usage API) never wait for the ledger's writer. It holds access keys, so
it is created 0600 before SQLite opens it (SQLite gives its -wal and -shm files the
database's mode), whatever the umask. ``synchronous=NORMAL``
keeps every committed transaction across a crash of the process (``kill -9``); only
an operating-system crash or power loss can lose the last commits. PostgreSQL serves
several nodes from the same code.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Table, event, exc, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from passage.store.migrations import run_migrations

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite connection waits for another writer before failing, in milliseconds."""

SQLITE_FILE_NAME = "passage.db"
"""The database file inside the data directory."""

SQLITE_FILE_MODE = 0o600
"""Mode of a database file Passage creates: it holds access keys and SAS rule keys."""

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}

_WRITE_OPTION = "passage_write"
"""Connection execution option that makes SQLite begin with ``BEGIN IMMEDIATE``."""


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database could not be reached (refused, cut, timed out),
    as opposed to a query it refused: the caller may answer "try again later"."""
    if isinstance(error, OSError | TimeoutError | exc.OperationalError | exc.InterfaceError):
        return True
    if isinstance(error, exc.DBAPIError):
        return bool(error.connection_invalidated) or _is_disconnect(error.orig)
    return False


def _is_disconnect(error: BaseException | None) -> bool:
    """asyncpg's lost or refused connections, as SQLAlchemy hands them over."""
    return isinstance(error, OSError | TimeoutError | ConnectionError) or (
        error is not None and type(error).__name__ in _DISCONNECTS
    )


_DISCONNECTS = frozenset(
    {"ConnectionDoesNotExistError", "ConnectionFailureError", "CannotConnectNowError",
     "InterfaceError", "InternalClientError"}
)  # fmt: skip


def dialect_insert(dialect: str, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that can take ``on_conflict_do_nothing``/``on_conflict_do_update``.

    Both dialects spell it ``INSERT ... ON CONFLICT``, each with its own class.
    """
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def sqlite_url(data_dir: Path) -> str:
    """The URL of the embedded database in `data_dir` (absolute, so the cwd does not matter)."""
    path = (data_dir / SQLITE_FILE_NAME).absolute()
    return URL.create("sqlite+aiosqlite", database=str(path)).render_as_string()


def url_without_password(url: str) -> str:
    """``url`` with its password removed (from the user part and from a ``password=``
    parameter): safe to write to a file or a log, and still a URL to connect with when the
    password comes from elsewhere (``PGPASSWORD``, ``~/.pgpass``).

    Raises `ValueError` as :func:`async_url` does."""
    async_url(url)
    parsed = make_url(url)._replace(password=None).difference_update_query(["password"])
    return parsed.render_as_string(hide_password=False)


def async_url(url: str) -> URL:
    """Parse `url` and point it at the asyncio driver of its database.

    ``postgresql://`` and ``postgres://`` become ``postgresql+asyncpg://``, ``sqlite://``
    becomes ``sqlite+aiosqlite://``. Raises `ValueError` for any other database or driver.
    """
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        supported = "postgresql://, postgresql+asyncpg://, sqlite://, sqlite+aiosqlite://"
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}; use {supported}")
    return parsed.set(drivername=driver)


class Database:
    """An open, migrated database. Get one from `open_database`; `close` it when done."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that will write: committed on exit, rolled back on an exception.

        On SQLite it starts with ``BEGIN IMMEDIATE``, taking the write lock up front, so a
        read-then-write transaction cannot fail with ``SQLITE_BUSY`` half-way through.
        """
        async with self.engine.connect() as connection:
            await connection.execution_options(**{_WRITE_OPTION: True})
            async with connection.begin():
                yield connection

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A transaction for reading only; on SQLite it never waits for the writer."""
        async with self.engine.connect() as connection, connection.begin():
            yield connection

    async def ping(self) -> None:
        """Run ``SELECT 1``: returns if the store answers, raises what the driver raised."""
        async with self.read() as connection:
            await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        """Close every pooled connection. The `Database` is unusable afterwards."""
        await self.engine.dispose()


async def open_database(url: str, *, schema: str | None = None) -> Database:
    """Connect to `url`, bring its schema up to date, and return the `Database`.

    `schema` (PostgreSQL only) puts Passage's tables in that schema, created if missing,
    instead of the user's default ``search_path``; several deployments or test runs can
    then share one database. Raises `ValueError` for an unsupported URL or a `schema`
    on SQLite, and `migrations.SchemaTooNewError` if a newer Passage migrated the database.
    """
    parsed = async_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        _create_private_file(Path(parsed.database))
    engine = _create_engine(parsed, schema)
    try:
        if engine.dialect.name == "sqlite":
            await _enable_wal(engine)
        async with engine.connect() as connection:
            await connection.execution_options(**{_WRITE_OPTION: True})
            async with connection.begin():
                now = time.time()
                await connection.run_sync(lambda sync: run_migrations(sync, now=now, schema=schema))
    except BaseException:
        await engine.dispose()
        raise
    return Database(engine)


def _create_private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 unless it exists: an empty file is an empty database."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, SQLITE_FILE_MODE))


def _create_engine(url: URL, schema: str | None) -> AsyncEngine:
    if url.get_backend_name() == "sqlite":
        if schema is not None:
            raise ValueError("a schema can only be given for PostgreSQL")
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
        event.listen(engine.sync_engine, "begin", _begin_sqlite_transaction)
        return engine
    connect_args: dict[str, Any] = {}
    if schema is not None:
        # Quoted as an identifier, the way CreateSchema names it.
        quoted = '"' + schema.replace('"', '""') + '"'
        connect_args["server_settings"] = {"search_path": quoted}
    return create_async_engine(url, connect_args=connect_args, pool_pre_ping=True)


async def _enable_wal(engine: AsyncEngine) -> None:
    # WAL is a property of the file, so setting it once per open is enough. The switch
    # fails at once with "database is locked", never waiting on busy_timeout, while
    # another connection (another process opening the file) holds a lock on it;
    # so retry here, where waiting does not block the event loop.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        while True:
            try:
                cursor = await driver.execute("PRAGMA journal_mode=WAL")
                await cursor.close()
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.02)


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # sqlite3's legacy transaction control would skip BEGIN before DDL and SELECT;
    # turn it off and let _begin_sqlite_transaction emit BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    if connection.get_execution_options().get(_WRITE_OPTION, False):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")
