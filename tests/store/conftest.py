"""Store fixtures: every store test runs on SQLite (a tmp_path file) and PostgreSQL.

PostgreSQL is the server at 127.0.0.1:5432 (override with PASSAGE_TEST_POSTGRES_URL).
Each test gets a fresh schema, dropped afterwards, so parallel and repeated runs never
see each other's rows. If the server is unreachable the PostgreSQL cases skip, unless
the environment variable CI is set, where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from store_targets import StoreTarget

from passage.store.database import Database, sqlite_url

POSTGRES_URL = os.environ.get(
    "PASSAGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


async def _postgres_connection() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        reason = f"PostgreSQL not reachable at {POSTGRES_URL}: {error!r}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreTarget]:
    if request.param == "sqlite":
        yield StoreTarget("sqlite", sqlite_url(tmp_path), None)
        return
    admin = await _postgres_connection()
    schema = f"passage_test_{uuid.uuid4().hex}"
    try:
        yield StoreTarget("postgresql", POSTGRES_URL, schema)
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


@pytest.fixture
async def database(target: StoreTarget) -> AsyncIterator[Database]:
    opened = await target.open()
    try:
        yield opened
    finally:
        await opened.close()
