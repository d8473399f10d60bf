"""The usage ledger: what every allocation relayed, per allocation and per subject-hour.

The relay hands `UsageLedger.record` a batch of `UsageRecord` deltas about once a
second; each batch is one transaction, so a crash loses at most the batch in flight.
How a span is split across hours is documented in `rollup`.

Each allocation row names the node that started it and the run (boot) of that node
(`LedgerNode`). A crashed or killed run cannot record the end of its allocations, so
the next run of the same node closes them at start (`UsageLedger.close_orphans`),
with end reason ``server_restart``; on PostgreSQL the other nodes' rows are not its
to close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    and_,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from passage.store.batches import BATCHES_KEPT, claim_batch
from passage.store.database import Database, dialect_insert
from passage.store.hybrid_usage import HybridUsageLedger
from passage.store.rollup import (
    DAY,
    HOUR,
    AllocationDelta,
    HourlyDelta,
    ceil_to,
    floor_to,
    hourly_deltas,
    merge_allocations,
    validate,
)
from passage.store.schema import allocations, usage_hourly
from passage.usage import UsageRecord

__all__ = [
    "BATCHES_KEPT",
    "RESTART_END_REASON",
    "WORKER_LOST_END_REASON",
    "AllocationUsage",
    "LedgerNode",
    "UsageBucket",
    "UsageLedger",
    "UsageRecord",
]

Granularity = Literal["hour", "day"]

_BUCKET_SECONDS: dict[Granularity, int] = {"hour": HOUR, "day": DAY}

_COUNTERS = ("bytes_to_peer", "packets_to_peer", "bytes_from_peer", "packets_from_peer")

_ID_CHUNK = 500
"""Allocation ids per ``IN (...)`` look-up, well under both databases' parameter limits."""

RESTART_END_REASON = "server_restart"
"""End reason of an allocation closed by the next start of the node whose run died."""

WORKER_LOST_END_REASON = "worker_restart"
"""End reason of an allocation closed because the worker process holding it died
(``passage serve --workers N``): the parent restarts the worker, the node runs on."""

LEGACY_STALE_AFTER = 600.0
"""Seconds without a flush after which a row from before node ids (schema v4) is nobody's
live allocation: every live one is written at least every 30 s. Only PostgreSQL needs
it; a SQLite file belongs to one node, whose every open row is an orphan at its start."""


@dataclass(frozen=True, slots=True)
class LedgerNode:
    """Who writes allocation rows: a node, stable across its restarts, and this run of it."""

    node_id: str
    """The node (``node-id`` in its data directory)."""
    boot_id: str
    """This run of the node, new at every start."""


@dataclass(frozen=True, slots=True)
class AllocationUsage:
    """One allocation's totals as the ledger holds them. Instants are unix seconds."""

    allocation_id: str
    username: str
    subject: str
    transport: str
    client_address: str
    relayed_address: str
    started_at: float
    last_seen_at: float
    ended_at: float | None
    """None while the allocation is live (or its final record has not been flushed)."""
    end_reason: str | None
    bytes_to_peer: int
    packets_to_peer: int
    bytes_from_peer: int
    packets_from_peer: int
    duration_seconds: float
    """``last_seen_at - started_at``."""


@dataclass(frozen=True, slots=True)
class UsageBucket:
    """Usage of one subject in one hour or UTC day."""

    subject: str
    bucket_start: int
    """Unix seconds; a multiple of 3600 (hour) or 86400 (day)."""
    bytes_to_peer: int
    packets_to_peer: int
    bytes_from_peer: int
    packets_from_peer: int
    allocation_seconds: float
    allocations_started: int


LEDGER_WRITE_TIMEOUT = 30.0
"""Seconds a numbered batch's write may take before it fails (and is retried under its
number): a store gone silent would otherwise hold the flush, and a stop behind it, until
TCP gives up (a quarter of an hour). Longer than SQLite's busy timeout (10 s)."""


class UsageLedger:
    """Writes flushed deltas and answers usage queries, on SQLite or PostgreSQL alike."""

    def __init__(self, database: Database, node: LedgerNode | None = None) -> None:
        """``node`` is stamped on the allocations this ledger starts; readers need none."""
        self._database = database
        self._node = node
        self.write_timeout = LEDGER_WRITE_TIMEOUT
        """Seconds a numbered batch may take to write (:data:`LEDGER_WRITE_TIMEOUT`)."""
        self.hybrid = HybridUsageLedger(
            database, (node.node_id, node.boot_id) if node is not None else None
        )
        """Hybrid Connections bytes per hybrid connection, rule and hour."""

    async def record(
        self,
        records: Sequence[UsageRecord],
        sequence: int | None = None,
        *,
        boot_id: str | None = None,
    ) -> None:
        """Add a batch of deltas to the allocation totals and hourly rollup, atomically.

        The whole batch commits or none of it does. Raises `ValueError`, before writing
        anything, if a record has a negative delta or a span that ends before it starts.
        With a ``sequence`` (and a node), the batch is written at most once: a retry of
        batch (node, boot, sequence) after a commit whose answer was lost changes nothing.
        Without one, recording the same batch twice counts it twice. ``boot_id`` names
        the run that numbered the batch when it is not this one: a batch an earlier run
        spilled to its data directory (``passage.store.spill``) keeps its identity.
        A numbered batch not written within :attr:`write_timeout` raises TimeoutError;
        writing it again is safe, as after any failure.
        """
        if not records:
            return
        if sequence is None:  # a retry would count it twice: no timeout of ours
            await self._record(records, None, boot_id)
            return
        async with asyncio.timeout(self.write_timeout):
            await self._record(records, sequence, boot_id)

    async def _record(
        self, records: Sequence[UsageRecord], sequence: int | None, boot_id: str | None
    ) -> None:
        for item in records:
            validate(item)
        node = self._node
        if boot_id is not None:
            assert node is not None, "a boot needs the node that writes it"
            node = replace(node, boot_id=boot_id)
        merged = merge_allocations(records)
        async with self._database.write() as connection:
            if sequence is not None:
                assert node is not None, "a sequence needs the node that writes it"
                dialect = self._database.dialect
                if not await claim_batch(connection, dialect, node.node_id, node.boot_id, sequence):
                    return  # written before: its commit went through, only its answer was lost
            known = await _known_allocation_ids(connection, list(merged))
            started = [delta.first for key, delta in merged.items() if key not in known]
            hourly = hourly_deltas(records, started)
            await connection.execute(
                _allocation_upsert(self._database.dialect), _allocation_rows(merged, node)
            )
            await connection.execute(_hourly_upsert(self._database.dialect), _hourly_rows(hourly))

    async def close_orphans(self, now: float) -> int:
        """Close the allocations an earlier run of this node left open; return how many.

        Call at start, before this run relays anything. An allocation of a killed
        run ends where the ledger last saw it (``ended_at = last_seen_at``, end
        reason ``server_restart``); its counters and hourly usage stay as recorded.
        Rows from before node ids are closed too: all of them on SQLite, on
        PostgreSQL those no flush touched for `LEGACY_STALE_AFTER` seconds.
        """
        if self._node is None:
            raise ValueError("close_orphans needs the ledger's node")
        column = allocations.c
        mine = and_(column.node_id == self._node.node_id, column.boot_id != self._node.boot_id)
        legacy: ColumnElement[bool] = column.node_id.is_(None)
        if self._database.dialect != "sqlite":
            legacy = and_(legacy, column.last_seen_at < now - LEGACY_STALE_AFTER)
        statement = (
            update(allocations)
            .where(column.ended_at.is_(None), or_(mine, legacy))
            .values(ended_at=column.last_seen_at, end_reason=RESTART_END_REASON)
        )
        async with self._database.write() as connection:
            result = await connection.execute(statement)
        return int(result.rowcount)

    async def close_lost(self, allocation_ids: Sequence[str]) -> int:
        """Close the allocations of a worker process that died; return how many were open.

        Like :meth:`close_orphans` for one worker while the node runs on: each ends
        where the ledger last saw it, with end reason ``worker_restart``.
        """
        column = allocations.c
        closed = 0
        async with self._database.write() as connection:
            for offset in range(0, len(allocation_ids), _ID_CHUNK):
                chunk = list(allocation_ids[offset : offset + _ID_CHUNK])
                statement = (
                    update(allocations)
                    .where(column.id.in_(chunk), column.ended_at.is_(None))
                    .values(ended_at=column.last_seen_at, end_reason=WORKER_LOST_END_REASON)
                )
                closed += int((await connection.execute(statement)).rowcount)
        return closed

    async def allocations(
        self,
        *,
        subject: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[AllocationUsage]:
        """Allocations live at some time in ``[since, until)``, oldest start first.

        `since` keeps those last seen at or after it; `until` those started before it;
        `subject` those billed to it. At most `limit` rows.
        """
        query = select(allocations).order_by(allocations.c.started_at, allocations.c.id)
        if subject is not None:
            query = query.where(allocations.c.subject == subject)
        if since is not None:
            query = query.where(allocations.c.last_seen_at >= since)
        if until is not None:
            query = query.where(allocations.c.started_at < until)
        async with self._database.read() as connection:
            rows = (await connection.execute(query.limit(limit))).mappings().all()
        return [_allocation_usage(row) for row in rows]

    async def usage(
        self,
        *,
        start: float,
        end: float,
        subject: str | None = None,
        granularity: Granularity = "hour",
    ) -> list[UsageBucket]:
        """Usage per ``(subject, bucket_start)``, ordered by bucket then subject.

        Every bucket that overlaps ``[start, end)`` is returned whole: an hour or UTC day
        is the smallest unit the ledger keeps. Buckets without usage are absent.
        """
        width = _BUCKET_SECONDS.get(granularity)
        if width is None:
            raise ValueError(f"granularity must be 'hour' or 'day', not {granularity!r}")
        hour_start = usage_hourly.c.hour_start
        # A literal, not a bound parameter: PostgreSQL only matches the SELECT and
        # GROUP BY expressions when they are textually the same.
        bucket = (hour_start - hour_start % literal_column(str(width))).label("bucket_start")
        query = (
            select(usage_hourly.c.subject, bucket, *_summed_columns())
            .where(hour_start >= floor_to(start, width), hour_start < ceil_to(end, width))
            .group_by(usage_hourly.c.subject, bucket)
            .order_by(bucket, usage_hourly.c.subject)
        )
        if subject is not None:
            query = query.where(usage_hourly.c.subject == subject)
        async with self._database.read() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [_usage_bucket(row) for row in rows]


async def _known_allocation_ids(connection: AsyncConnection, ids: list[str]) -> set[str]:
    known: set[str] = set()
    for offset in range(0, len(ids), _ID_CHUNK):
        chunk = ids[offset : offset + _ID_CHUNK]
        query = select(allocations.c.id).where(allocations.c.id.in_(chunk))
        known.update(await connection.scalars(query))
    return known


def _greater(left: ColumnElement[Any], right: ColumnElement[Any]) -> ColumnElement[Any]:
    # max(a, b) is spelled GREATEST on PostgreSQL and MAX on SQLite; CASE is both.
    return case((right > left, right), else_=left)


def _allocation_upsert(dialect: str) -> Any:
    statement = dialect_insert(dialect, allocations)
    new = statement.excluded
    current = allocations.c
    set_: dict[str, ColumnElement[Any]] = {name: current[name] + new[name] for name in _COUNTERS}
    set_["last_seen_at"] = _greater(current.last_seen_at, new.last_seen_at)
    set_["duration_seconds"] = _greater(current.duration_seconds, new.duration_seconds)
    set_["ended_at"] = func.coalesce(current.ended_at, new.ended_at)
    set_["end_reason"] = func.coalesce(current.end_reason, new.end_reason)
    return statement.on_conflict_do_update(index_elements=[current.id], set_=set_)


def _hourly_upsert(dialect: str) -> Any:
    statement = dialect_insert(dialect, usage_hourly)
    new = statement.excluded
    current = usage_hourly.c
    summed = (*_COUNTERS, "allocation_seconds", "allocations_started")
    return statement.on_conflict_do_update(
        index_elements=[current.subject, current.hour_start],
        set_={name: current[name] + new[name] for name in summed},
    )


def _allocation_rows(
    merged: dict[str, AllocationDelta], node: LedgerNode | None
) -> list[dict[str, Any]]:
    """Insert values; on conflict only counters, times and the end change (`_allocation_upsert`)."""
    rows: list[dict[str, Any]] = []
    for allocation_id, delta in merged.items():
        first = delta.first
        rows.append(
            {
                "id": allocation_id,
                "username": first.username,
                "subject": first.subject,
                "transport": first.transport,
                "client_address": first.client_address,
                "relayed_address": first.relayed_address,
                "started_at": first.started_at,
                "last_seen_at": delta.period_end,
                "ended_at": delta.ended_at,
                "end_reason": delta.end_reason,
                **dict(zip(_COUNTERS, delta.counters, strict=True)),
                "duration_seconds": max(0.0, delta.period_end - first.started_at),
                "node_id": node.node_id if node is not None else None,
                "boot_id": node.boot_id if node is not None else None,
            }
        )
    return rows


def _hourly_rows(hourly: dict[tuple[str, int], HourlyDelta]) -> list[dict[str, Any]]:
    return [
        {
            "subject": subject,
            "hour_start": hour_start,
            **dict(zip(_COUNTERS, delta.counters, strict=True)),
            "allocation_seconds": delta.allocation_seconds,
            "allocations_started": delta.allocations_started,
        }
        # In key order: two nodes adding to the same subject-hours lock them in one order,
        # so their transactions wait for each other rather than deadlock.
        for (subject, hour_start), delta in sorted(hourly.items())
    ]


def _summed_columns() -> list[ColumnElement[Any]]:
    # PostgreSQL sums BIGINT into NUMERIC; cast back so both databases return ints.
    whole = (*_COUNTERS, "allocations_started")
    columns: list[ColumnElement[Any]] = [
        cast(func.sum(usage_hourly.c[name]), BigInteger).label(name) for name in whole
    ]
    columns.append(func.sum(usage_hourly.c.allocation_seconds).label("allocation_seconds"))
    return columns


def _allocation_usage(row: Any) -> AllocationUsage:
    return AllocationUsage(
        allocation_id=row["id"],
        username=row["username"],
        subject=row["subject"],
        transport=row["transport"],
        client_address=row["client_address"],
        relayed_address=row["relayed_address"],
        started_at=float(row["started_at"]),
        last_seen_at=float(row["last_seen_at"]),
        ended_at=None if row["ended_at"] is None else float(row["ended_at"]),
        end_reason=row["end_reason"],
        **{name: int(row[name]) for name in _COUNTERS},
        duration_seconds=float(row["duration_seconds"]),
    )


def _usage_bucket(row: Any) -> UsageBucket:
    return UsageBucket(
        subject=row["subject"],
        bucket_start=int(row["bucket_start"]),
        **{name: int(row[name]) for name in _COUNTERS},
        allocation_seconds=float(row["allocation_seconds"]),
        allocations_started=int(row["allocations_started"]),
    )
