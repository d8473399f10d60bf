"""Identities and access keys in the store, shared by every node that uses it.

The store keeps strings and numbers; what they mean (id format, key
derivation, watermarks) belongs to :mod:`passage.identity`. Deleted identities
keep their row with ``deleted_at`` set, so a deleted id stays deleted (404)
instead of becoming unknown. ``changed_at`` lets each node pick up revocations
and deletions made elsewhere (:meth:`IdentityStore.changed_since`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from passage.store.database import Database, dialect_insert
from passage.store.schema import access_keys, identities, settings

__all__ = ["IdentityRecord", "IdentityStore"]

RESOURCE_ID = "resource_id"
TURN_REST_SECRET = "turn_rest_secret"
"""The cluster's TURN REST secret (cluster mode without ``--auth-secret``)."""


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    id: str
    created_at: float
    revoked_before_ms: int | None
    deleted_at: float | None
    changed_at: float

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


class IdentityStore:
    """Reads and writes identities, keys and settings; every method is one transaction."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def initialize(
        self, resource_id: str, keys: Mapping[str, str], now: float
    ) -> tuple[str, dict[str, str]]:
        """The deployment's resource id and access keys, stored from the given ones if absent.

        Safe when several nodes start at once: the first to commit wins, and
        every node returns what is stored.
        """
        dialect = self._database.dialect
        async with self._database.write() as connection:
            await connection.execute(
                dialect_insert(dialect, settings)
                .values(name=RESOURCE_ID, value=resource_id)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            for name, secret in keys.items():
                await connection.execute(
                    dialect_insert(dialect, access_keys)
                    .values(name=name, secret=secret, created_at=now)
                    .on_conflict_do_nothing(index_elements=["name"])
                )
            stored_id = await connection.scalar(
                select(settings.c.value).where(settings.c.name == RESOURCE_ID)
            )
            stored_keys = await _keys(connection)
        assert stored_id is not None
        return stored_id, stored_keys

    async def shared_setting(self, name: str, proposed: str) -> str:
        """Setting ``name``, stored as ``proposed`` if absent: what several nodes must agree
        on (the first to commit wins, every node returns what is stored)."""
        async with self._database.write() as connection:
            await connection.execute(
                dialect_insert(self._database.dialect, settings)
                .values(name=name, value=proposed)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            stored = await connection.scalar(
                select(settings.c.value).where(settings.c.name == name)
            )
        assert stored is not None
        return str(stored)

    async def keys(self) -> dict[str, str]:
        """Access key secrets by name."""
        async with self._database.read() as connection:
            return await _keys(connection)

    async def set_key(self, name: str, secret: str, now: float) -> None:
        """Replace the secret of key ``name`` (a rotation)."""
        async with self._database.write() as connection:
            await connection.execute(
                update(access_keys)
                .where(access_keys.c.name == name)
                .values(secret=secret, created_at=now)
            )

    async def create(self, identity: str, now: float) -> None:
        async with self._database.write() as connection:
            await connection.execute(
                identities.insert().values(id=identity, created_at=now, changed_at=now)
            )

    async def get(self, identity: str) -> IdentityRecord | None:
        async with self._database.read() as connection:
            row = (
                (await connection.execute(select(identities).where(identities.c.id == identity)))
                .mappings()
                .first()
            )
        return _record(row) if row is not None else None

    async def revoke(self, identity: str, watermark_ms: int, now: float) -> bool:
        """Raise the watermark of a live identity; False if it is unknown or deleted."""
        current = func.coalesce(identities.c.revoked_before_ms, 0)
        raised = (
            func.max(current, watermark_ms)
            if self._database.dialect == "sqlite"
            else (func.greatest(current, watermark_ms))
        )
        async with self._database.write() as connection:
            result = await connection.execute(
                update(identities)
                .where(identities.c.id == identity, identities.c.deleted_at.is_(None))
                .values(revoked_before_ms=raised, changed_at=now)
            )
        return bool(result.rowcount)

    async def delete(self, identity: str, now: float) -> bool:
        """Mark a live identity deleted; False if it is unknown or already deleted."""
        async with self._database.write() as connection:
            result = await connection.execute(
                update(identities)
                .where(identities.c.id == identity, identities.c.deleted_at.is_(None))
                .values(deleted_at=now, changed_at=now)
            )
        return bool(result.rowcount)

    async def live(self, containing: str = "", limit: int = 100) -> list[IdentityRecord]:
        """Identities not deleted whose id contains ``containing`` (any case), newest first,
        at most ``limit``."""
        query = select(identities).where(identities.c.deleted_at.is_(None))
        if containing:
            escaped = containing.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(identities.c.id.ilike(f"%{escaped}%", escape="\\"))
        query = query.order_by(identities.c.created_at.desc(), identities.c.id).limit(limit)
        async with self._database.read() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [_record(row) for row in rows]

    async def changed_since(
        self, since: float, after_id: str | None = None, limit: int = 10_000
    ) -> list[IdentityRecord]:
        """Identities revoked or deleted at or after ``since``, by ``(changed_at, id)``.

        To read the next page, pass the last record's ``changed_at`` as ``since``
        and its ``id`` as ``after_id``: records with that same ``changed_at`` and a
        greater id come next, so ties across a page boundary are never skipped.
        """
        changed = identities.c.changed_at
        position = (
            changed >= since
            if after_id is None
            else (changed > since) | ((changed == since) & (identities.c.id > after_id))
        )
        query = (
            select(identities)
            .where(
                position,
                (identities.c.revoked_before_ms.is_not(None))
                | (identities.c.deleted_at.is_not(None)),
            )
            .order_by(changed, identities.c.id)
            .limit(limit)
        )
        async with self._database.read() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [_record(row) for row in rows]


async def _keys(connection: AsyncConnection) -> dict[str, str]:
    rows = await connection.execute(select(access_keys.c.name, access_keys.c.secret))
    return {name: secret for name, secret in rows}


def _record(row: Any) -> IdentityRecord:
    return IdentityRecord(
        id=row["id"],
        created_at=row["created_at"],
        revoked_before_ms=row["revoked_before_ms"],
        deleted_at=row["deleted_at"],
        changed_at=row["changed_at"],
    )
