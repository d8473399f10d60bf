"""Schema migrations: an ordered list, applied at start inside one transaction.

To change the schema, append a `Migration` to `MIGRATIONS` with the next version and a
function that issues its DDL, and update `schema` to the new shape (a test checks that a
migrated database matches `schema.metadata`). A released migration never changes: it
builds its tables from its own definitions, not from `schema`, so that replaying
version 1 on a new database still yields the version-1 shape that version 2 expects.

Two nodes may start at once against one PostgreSQL database. The runner takes a
transaction-scoped advisory lock first, so the second waits for the first to commit and
then finds every migration applied. On SQLite the write transaction is ``BEGIN
IMMEDIATE`` (see `database`), which serializes the same way under ``busy_timeout``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Double,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    insert,
    select,
    text,
)
from sqlalchemy.schema import CreateSchema

from passage.store.schema import schema_migrations

ADVISORY_LOCK_KEY = 0x7061_7373_6167_6501
"""pg_advisory_xact_lock key that serializes migration runs ("passage" + 1)."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema's history."""

    version: int
    """Position in the history, 1, 2, 3, ... with no gaps."""

    name: str
    """What the step does, for logs and `schema_migrations` readers."""

    apply: Callable[[Connection], None]
    """Issues the step's DDL on a connection inside the runner's transaction."""


class SchemaTooNewError(RuntimeError):
    """The database has migrations this code does not know: a newer Passage ran on it."""


def _v1_usage_ledger(connection: Connection) -> None:
    """Per-allocation totals and the hourly usage rollup."""
    v1 = MetaData()
    Table(
        "allocations",
        v1,
        Column("id", Text, primary_key=True),
        Column("username", Text, nullable=False),
        Column("subject", Text, nullable=False),
        Column("transport", Text, nullable=False),
        Column("client_address", Text, nullable=False),
        Column("relayed_address", Text, nullable=False),
        Column("started_at", Double, nullable=False),
        Column("last_seen_at", Double, nullable=False),
        Column("ended_at", Double, nullable=True),
        Column("end_reason", Text, nullable=True),
        *_counter_columns(),
        Column("duration_seconds", Double, nullable=False),
        Index("ix_allocations_subject_started_at", "subject", "started_at"),
        Index("ix_allocations_started_at", "started_at"),
    )
    Table(
        "usage_hourly",
        v1,
        Column("subject", Text, nullable=False),
        Column("hour_start", BigInteger, nullable=False),
        *_counter_columns(),
        Column("allocation_seconds", Double, nullable=False),
        Column("allocations_started", BigInteger, nullable=False),
        PrimaryKeyConstraint("subject", "hour_start", name="pk_usage_hourly"),
        Index("ix_usage_hourly_hour_start", "hour_start"),
    )
    v1.create_all(connection, checkfirst=False)


def _counter_columns() -> list[Column[int]]:
    return [
        Column(name, BigInteger, nullable=False)
        for name in ("bytes_to_peer", "packets_to_peer", "bytes_from_peer", "packets_from_peer")
    ]


def _v2_identities(connection: Connection) -> None:
    """Settings, access keys and communication identities."""
    v2 = MetaData()
    Table(
        "settings",
        v2,
        Column("name", Text, primary_key=True),
        Column("value", Text, nullable=False),
    )
    Table(
        "access_keys",
        v2,
        Column("name", Text, primary_key=True),
        Column("secret", Text, nullable=False),
        Column("created_at", Double, nullable=False),
    )
    Table(
        "identities",
        v2,
        Column("id", Text, primary_key=True),
        Column("created_at", Double, nullable=False),
        Column("revoked_before_ms", BigInteger, nullable=True),
        Column("deleted_at", Double, nullable=True),
        Column("changed_at", Double, nullable=False),
        Index("ix_identities_changed_at", "changed_at"),
    )
    v2.create_all(connection, checkfirst=False)


def _v3_hybrid_connections(connection: Connection) -> None:
    """Hybrid connections and their shared access authorization rules."""
    v3 = MetaData()
    Table(
        "hybrid_connections",
        v3,
        Column("path", Text, primary_key=True),
        Column("name", Text, nullable=False),
        Column("requires_client_authorization", Boolean, nullable=False),
        Column("created_at", Double, nullable=False),
    )
    Table(
        "sas_rules",
        v3,
        Column("entity", Text, nullable=False),
        Column("name", Text, nullable=False),
        Column("rights", Integer, nullable=False),
        Column("primary_key", Text, nullable=False),
        Column("secondary_key", Text, nullable=False),
        Column("created_at", Double, nullable=False),
        PrimaryKeyConstraint("entity", "name", name="pk_sas_rules"),
    )
    v3.create_all(connection, checkfirst=False)


def _v4_allocation_nodes(connection: Connection) -> None:
    """Which node, and which run of it, started each allocation.

    A node restarted after ``kill -9`` closes the allocations its earlier run
    left open, and only those: on PostgreSQL other nodes' live allocations share
    the table. Rows from before this step have NULL in both.
    """
    connection.execute(text("ALTER TABLE allocations ADD COLUMN node_id TEXT"))
    connection.execute(text("ALTER TABLE allocations ADD COLUMN boot_id TEXT"))
    connection.execute(
        text("CREATE INDEX ix_allocations_node_id_ended_at ON allocations (node_id, ended_at)")
    )


def _v5_hybrid_usage(connection: Connection) -> None:
    """Hybrid Connections bytes per hybrid connection, authorization rule and hour."""
    v5 = MetaData()
    Table(
        "hybrid_usage_hourly",
        v5,
        Column("hybrid_connection", Text, nullable=False),
        Column("rule", Text, nullable=False),
        Column("hour_start", BigInteger, nullable=False),
        Column("bytes_to_listener", BigInteger, nullable=False),
        Column("bytes_to_sender", BigInteger, nullable=False),
        Column("requests", BigInteger, nullable=False),
        PrimaryKeyConstraint(
            "hybrid_connection", "rule", "hour_start", name="pk_hybrid_usage_hourly"
        ),
        Index("ix_hybrid_usage_hourly_hour_start", "hour_start"),
    )
    v5.create_all(connection, checkfirst=False)


def _v6_ledger_batches(connection: Connection) -> None:
    """The usage batches each run of each node wrote, so a batch retried after a commit
    whose answer was lost is not counted twice (several writers share PostgreSQL)."""
    v6 = MetaData()
    Table(
        "ledger_batches",
        v6,
        Column("node_id", Text, nullable=False),
        Column("boot_id", Text, nullable=False),
        Column("sequence", BigInteger, nullable=False),
        Column("written_at", Double, nullable=False),
        PrimaryKeyConstraint("node_id", "boot_id", "sequence", name="pk_ledger_batches"),
    )
    v6.create_all(connection, checkfirst=False)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "usage ledger", _v1_usage_ledger),
    Migration(2, "identities and access keys", _v2_identities),
    Migration(3, "hybrid connections and authorization rules", _v3_hybrid_connections),
    Migration(4, "the node and run that started each allocation", _v4_allocation_nodes),
    Migration(5, "Hybrid Connections usage per hour", _v5_hybrid_usage),
    Migration(6, "usage batches written, per node run", _v6_ledger_batches),
)
"""The schema's history, oldest first. Append only."""


def run_migrations(
    connection: Connection,
    *,
    now: float,
    schema: str | None = None,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> list[int]:
    """Bring the database up to the last of `migrations`; return the versions applied.

    Call inside a transaction and commit it afterwards: the steps and their
    `schema_migrations` rows then land together or not at all. `schema` names a
    PostgreSQL schema to create first (the connection's ``search_path`` must point at it).
    `now` (unix seconds) is recorded as each step's ``applied_at``.

    Raises `SchemaTooNewError` if the database is ahead of `migrations`.
    """
    _check_history(migrations)
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        if schema is not None:
            connection.execute(CreateSchema(schema, if_not_exists=True))
    schema_migrations.create(connection, checkfirst=True)
    applied = set(connection.scalars(select(schema_migrations.c.version)))
    known = {migration.version for migration in migrations}
    if unknown := applied - known:
        raise SchemaTooNewError(
            f"database has schema versions {sorted(unknown)} that this Passage does not know"
        )
    done: list[int] = []
    for migration in migrations:
        if migration.version in applied:
            continue
        migration.apply(connection)
        connection.execute(
            insert(schema_migrations).values(version=migration.version, applied_at=now)
        )
        done.append(migration.version)
    return done


def _check_history(migrations: Sequence[Migration]) -> None:
    versions = [migration.version for migration in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migration versions must be 1, 2, 3, ... without gaps: {versions}")
