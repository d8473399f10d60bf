"""The current shape of every table, as SQLAlchemy Core `Table`s on one `MetaData`.

Conventions, the same on SQLite and PostgreSQL:

- An instant (``started_at``, ``last_seen_at``, ...) is a float of unix seconds (UTC) in a
  ``DOUBLE`` column. A double holds microseconds exactly for the next few centuries, and
  floats compare and subtract the same on both databases, which timezone-aware
  ``DateTime`` columns do not (SQLite stores them as text).
- A bucket start (``hour_start``) is an integer of unix seconds, a multiple of 3600, in a
  ``BIGINT`` column, so it can be part of a primary key and grouped by exactly.
- Counters are ``BIGINT``. Free-form strings are ``TEXT``: a length limit would make
  PostgreSQL reject a whole ledger batch over one long username.

These definitions describe the schema after the *last* migration; `migrations` owns the
DDL that gets a database there, and a test checks that the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", Double, nullable=False),  # unix seconds
)
"""One row per applied migration. Its shape never changes: the runner reads it first."""

allocations = Table(
    "allocations",
    metadata,
    Column("id", Text, primary_key=True),  # allocation id, uuid hex
    Column("username", Text, nullable=False),  # TURN username used
    Column("subject", Text, nullable=False),  # who is billed
    Column("transport", Text, nullable=False),  # udp | tcp | tls
    Column("client_address", Text, nullable=False),  # ip:port
    Column("relayed_address", Text, nullable=False),  # ip:port
    Column("started_at", Double, nullable=False),  # unix seconds
    Column("last_seen_at", Double, nullable=False),  # unix seconds, end of last flush
    Column("ended_at", Double, nullable=True),  # unix seconds; NULL while live
    Column("end_reason", Text, nullable=True),
    Column("bytes_to_peer", BigInteger, nullable=False),
    Column("packets_to_peer", BigInteger, nullable=False),
    Column("bytes_from_peer", BigInteger, nullable=False),
    Column("packets_from_peer", BigInteger, nullable=False),
    Column("duration_seconds", Double, nullable=False),  # last_seen_at - started_at
    Column("node_id", Text, nullable=True),  # the node that started it; NULL before v4
    Column("boot_id", Text, nullable=True),  # the run of that node; NULL before v4
    Index("ix_allocations_subject_started_at", "subject", "started_at"),
    Index("ix_allocations_started_at", "started_at"),
    Index("ix_allocations_node_id_ended_at", "node_id", "ended_at"),
)
"""Running totals per allocation, one row each, upserted on every flush."""

usage_hourly = Table(
    "usage_hourly",
    metadata,
    Column("subject", Text, nullable=False),  # who is billed
    Column("hour_start", BigInteger, nullable=False),  # unix seconds, multiple of 3600
    Column("bytes_to_peer", BigInteger, nullable=False),
    Column("packets_to_peer", BigInteger, nullable=False),
    Column("bytes_from_peer", BigInteger, nullable=False),
    Column("packets_from_peer", BigInteger, nullable=False),
    Column("allocation_seconds", Double, nullable=False),
    Column("allocations_started", BigInteger, nullable=False),
    # The primary key is the (subject, hour_start) index that per-subject queries use.
    PrimaryKeyConstraint("subject", "hour_start", name="pk_usage_hourly"),
    Index("ix_usage_hourly_hour_start", "hour_start"),
)
"""Usage summed per billed subject and UTC hour."""

hybrid_usage_hourly = Table(
    "hybrid_usage_hourly",
    metadata,
    Column("hybrid_connection", Text, nullable=False),  # hybrid_connections.path
    Column("rule", Text, nullable=False),  # the SAS rule of the senders; '' for anonymous
    Column("hour_start", BigInteger, nullable=False),  # unix seconds, multiple of 3600
    Column("bytes_to_listener", BigInteger, nullable=False),
    Column("bytes_to_sender", BigInteger, nullable=False),
    Column("requests", BigInteger, nullable=False),
    PrimaryKeyConstraint("hybrid_connection", "rule", "hour_start", name="pk_hybrid_usage_hourly"),
    Index("ix_hybrid_usage_hourly_hour_start", "hour_start"),
)
"""Hybrid Connections bytes summed per hybrid connection, authorization rule and UTC hour."""

ledger_batches = Table(
    "ledger_batches",
    metadata,
    Column("node_id", Text, nullable=False),
    Column("boot_id", Text, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("written_at", Double, nullable=False),
    PrimaryKeyConstraint("node_id", "boot_id", "sequence", name="pk_ledger_batches"),
)
"""Usage batches written, by node, run and sequence: a retried batch is written once."""

settings = Table(
    "settings",
    metadata,
    Column("name", Text, primary_key=True),  # e.g. resource_id
    Column("value", Text, nullable=False),
)
"""Values fixed for the life of a deployment, shared by every node."""

access_keys = Table(
    "access_keys",
    metadata,
    Column("name", Text, primary_key=True),  # primary | secondary
    Column("secret", Text, nullable=False),  # base64, as in connection strings
    Column("created_at", Double, nullable=False),  # unix seconds
)
"""The two access keys; a rotation replaces a row's secret."""

identities = Table(
    "identities",
    metadata,
    Column("id", Text, primary_key=True),  # 8:acs:<resource>_<guid>
    Column("created_at", Double, nullable=False),  # unix seconds
    Column("revoked_before_ms", BigInteger, nullable=True),  # revocation watermark, unix ms
    Column("deleted_at", Double, nullable=True),  # unix seconds; NULL while it exists
    Column("changed_at", Double, nullable=False),  # unix seconds of the last change
    Index("ix_identities_changed_at", "changed_at"),
)
"""Communication identities; a deleted one keeps its row so its id is never reissued."""

hybrid_connections = Table(
    "hybrid_connections",
    metadata,
    Column("path", Text, primary_key=True),  # canonical name, lower case: what URLs resolve to
    Column("name", Text, nullable=False),  # the name as created, for display
    Column("requires_client_authorization", Boolean, nullable=False),  # False: anonymous senders
    Column("created_at", Double, nullable=False),  # unix seconds
)
"""Hybrid connections (Azure Relay entities); a listener registers on one by name."""

sas_rules = Table(
    "sas_rules",
    metadata,
    Column("entity", Text, nullable=False),  # hybrid_connections.path, or '' for the namespace
    Column("name", Text, nullable=False),  # the SAS key name (skn)
    Column("rights", Integer, nullable=False),  # flags: 1 listen, 2 send, 4 manage
    Column("primary_key", Text, nullable=False),  # used as text, as Azure's are
    Column("secondary_key", Text, nullable=False),
    Column("created_at", Double, nullable=False),  # unix seconds
    PrimaryKeyConstraint("entity", "name", name="pk_sas_rules"),
)
"""Shared access authorization rules, on the namespace or on one hybrid connection."""
