"""Hybrid connections and their authorization rules in the store, shared by every node.

The store keeps strings and numbers; what they mean (name rules, rights,
the root rule, the :class:`~passage.hybrid.entities.Namespace` snapshot) belongs
to :mod:`passage.hybrid`. A rule's ``entity`` is the canonical path of its
hybrid connection, or ``""`` for a namespace-level rule; ``rights`` is the
integer value of :class:`passage.hybrid.sas.Rights`.

Deleting a hybrid connection deletes its rules in the same transaction.
Creating one also clears any rule left under its path (a rule written on
PostgreSQL while another node deleted its connection), so a new connection
never inherits an old one's keys; :meth:`HybridStore.load_namespace` leaves
such orphans out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from passage.store.database import Database, dialect_insert
from passage.store.schema import hybrid_connections, sas_rules

__all__ = [
    "NAMESPACE",
    "ConnectionRecord",
    "HybridStore",
    "NamespaceRecords",
    "RuleRecord",
    "RulePut",
]

NAMESPACE = ""
"""The ``entity`` of a namespace-level rule."""

RulePut = Literal["created", "replaced", "full", "unknown entity"]
"""What :meth:`HybridStore.put_rule` did: wrote a new rule, replaced one, or neither."""


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    path: str
    name: str
    requires_client_authorization: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class RuleRecord:
    entity: str
    name: str
    rights: int
    primary_key: str
    secondary_key: str
    created_at: float


@dataclass(frozen=True, slots=True)
class NamespaceRecords:
    """Every hybrid connection and every rule that belongs to one or to the namespace."""

    connections: tuple[ConnectionRecord, ...]
    """By path."""
    rules: tuple[RuleRecord, ...]
    """By entity, then name."""


class HybridStore:
    """Reads and writes hybrid connections and rules; every method is one transaction."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def ensure_rule(
        self, entity: str, name: str, rights: int, primary: str, secondary: str, now: float
    ) -> bool:
        """Store the rule if none has this ``(entity, name)``; True if this call stored it.

        Safe when several nodes start at once: the first to commit wins, and the
        others keep its keys (the root rule is created this way).
        """
        async with self._database.write() as connection:
            result = await connection.execute(
                dialect_insert(self._database.dialect, sas_rules)
                .values(
                    entity=entity,
                    name=name,
                    rights=rights,
                    primary_key=primary,
                    secondary_key=secondary,
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["entity", "name"])
            )
        return bool(result.rowcount)

    async def create_connection(
        self, path: str, name: str, requires_client_authorization: bool, now: float
    ) -> bool:
        """Create the hybrid connection; False if one with this path exists already."""
        async with self._database.write() as connection:
            result = await connection.execute(
                dialect_insert(self._database.dialect, hybrid_connections)
                .values(
                    path=path,
                    name=name,
                    requires_client_authorization=requires_client_authorization,
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["path"])
            )
            created = bool(result.rowcount)
            if created:
                await connection.execute(delete(sas_rules).where(sas_rules.c.entity == path))
        return created

    async def delete_connection(self, path: str) -> bool:
        """Delete the hybrid connection and its rules; False if there is none."""
        async with self._database.write() as connection:
            result = await connection.execute(
                delete(hybrid_connections).where(hybrid_connections.c.path == path)
            )
            await connection.execute(delete(sas_rules).where(sas_rules.c.entity == path))
        return bool(result.rowcount)

    async def put_rule(
        self,
        entity: str,
        name: str,
        rights: int,
        primary: str,
        secondary: str,
        now: float,
        *,
        max_rules: int,
    ) -> RulePut:
        """Create or replace a rule on ``entity`` (``""``: the namespace).

        Refused with ``"unknown entity"`` when ``entity`` names no hybrid
        connection, and with ``"full"`` when creating it would put more than
        ``max_rules`` on the entity. A replaced rule keeps its ``created_at``.
        """
        async with self._database.write() as connection:
            if entity != NAMESPACE and not await _connection_exists(connection, entity):
                return "unknown entity"
            on_entity = sas_rules.c.entity == entity
            existing = await connection.scalar(
                select(func.count())
                .select_from(sas_rules)
                .where(on_entity, sas_rules.c.name == name)
            )
            if not existing:
                count = await connection.scalar(
                    select(func.count()).select_from(sas_rules).where(on_entity)
                )
                if (count or 0) >= max_rules:
                    return "full"
            keys = {"rights": rights, "primary_key": primary, "secondary_key": secondary}
            insert = dialect_insert(self._database.dialect, sas_rules).values(
                entity=entity, name=name, created_at=now, **keys
            )
            await connection.execute(
                insert.on_conflict_do_update(index_elements=["entity", "name"], set_=keys)
            )
        return "replaced" if existing else "created"

    async def delete_rule(self, entity: str, name: str) -> bool:
        """Delete one rule; False if there is none."""
        async with self._database.write() as connection:
            result = await connection.execute(
                delete(sas_rules).where(sas_rules.c.entity == entity, sas_rules.c.name == name)
            )
        return bool(result.rowcount)

    async def load_namespace(self) -> NamespaceRecords:
        """Every connection and every rule, read in one transaction (one consistent view)."""
        async with self._database.read() as connection:
            connections = (
                (
                    await connection.execute(
                        select(hybrid_connections).order_by(hybrid_connections.c.path)
                    )
                )
                .mappings()
                .all()
            )
            rules = (
                (
                    await connection.execute(
                        select(sas_rules).order_by(sas_rules.c.entity, sas_rules.c.name)
                    )
                )
                .mappings()
                .all()
            )
        paths = {row["path"] for row in connections}
        return NamespaceRecords(
            connections=tuple(
                ConnectionRecord(
                    path=row["path"],
                    name=row["name"],
                    requires_client_authorization=bool(row["requires_client_authorization"]),
                    created_at=row["created_at"],
                )
                for row in connections
            ),
            rules=tuple(
                RuleRecord(
                    entity=row["entity"],
                    name=row["name"],
                    rights=row["rights"],
                    primary_key=row["primary_key"],
                    secondary_key=row["secondary_key"],
                    created_at=row["created_at"],
                )
                for row in rules
                if row["entity"] == NAMESPACE or row["entity"] in paths
            ),
        )


async def _connection_exists(connection: AsyncConnection, path: str) -> bool:
    found = await connection.scalar(
        select(hybrid_connections.c.path).where(hybrid_connections.c.path == path)
    )
    return found is not None
