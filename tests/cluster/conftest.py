"""Cluster fixtures: the PostgreSQL and Redis that ``make test`` starts, isolated per test
by a fresh schema and a fresh key prefix, both removed afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as redis
from cluster_services import POSTGRES_URL, REDIS_URL


def _unreachable(what: str, error: BaseException) -> None:
    reason = f"{what} not reachable: {error!r}"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix no other test uses; every key under it is deleted afterwards."""
    prefix = f"passage-test-{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (redis.RedisError, OSError) as error:
        await client.aclose()
        _unreachable("Redis", error)
    try:
        yield prefix
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A PostgreSQL schema no other test uses, dropped afterwards."""
    try:
        admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        _unreachable("PostgreSQL", error)
    schema = f"passage_cluster_{uuid.uuid4().hex[:12]}"
    try:
        yield schema
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
