"""The Hybrid Connections part of the usage ledger: bytes per hybrid connection, rule, hour.

The relay meters what it carries per (hybrid connection, authorization rule)
and hands :meth:`HybridUsageLedger.record` the deltas about once a second; each
batch is one transaction, added to ``hybrid_usage_hourly``. A span is counted
in the UTC hour it starts in: spans last one flush interval (a second), so at
most that much of an hour's traffic lands in the previous one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import BigInteger, ColumnElement, cast, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from passage.store.batches import HYBRID_WRITER, claim_batch
from passage.store.database import Database, dialect_insert
from passage.store.rollup import DAY, HOUR, ceil_to, floor_to
from passage.store.schema import hybrid_usage_hourly
from passage.usage import HybridUsageRecord

__all__ = ["HybridUsageBucket", "HybridUsageLedger"]

_COUNTERS = ("bytes_to_listener", "bytes_to_sender", "requests")
_BUCKET_SECONDS = {"hour": HOUR, "day": DAY}


@dataclass(frozen=True, slots=True)
class HybridUsageBucket:
    """One hybrid connection's traffic under one rule in one hour or UTC day."""

    hybrid_connection: str
    rule: str
    """``""``: anonymous senders."""
    bucket_start: int
    """Unix seconds; a multiple of 3600 (hour) or 86400 (day)."""
    bytes_to_listener: int
    bytes_to_sender: int
    requests: int


class HybridUsageLedger:
    """Writes the relay's deltas and answers queries, on SQLite or PostgreSQL alike."""

    def __init__(self, database: Database, node: tuple[str, str] | None = None) -> None:
        """``node``: (node id, boot id) of the run that numbers its batches, if it does."""
        self._database = database
        self._node = node

    async def record(
        self,
        records: Sequence[HybridUsageRecord],
        sequence: int | None = None,
        *,
        boot_id: str | None = None,
    ) -> None:
        """Add a batch of deltas to the hourly rollup, atomically (all or nothing).

        Raises :class:`ValueError`, before writing, for a negative delta or a span that
        ends before it starts. With a ``sequence`` the batch is written at most once (as
        ``UsageLedger.record``'s, under ``NODE/hybrid``; ``boot_id`` names the run that
        numbered it when it is not this one); without, the same batch twice counts twice.
        """
        rows: dict[tuple[str, str, int], list[int]] = {}
        for record in records:
            _validate(record)
            key = (record.hybrid_connection, record.rule, floor_to(record.period_start, HOUR))
            row = rows.setdefault(key, [0, 0, 0])
            row[0] += record.bytes_to_listener
            row[1] += record.bytes_to_sender
            row[2] += record.requests
        if not rows:
            return
        values = [
            {"hybrid_connection": path, "rule": rule, "hour_start": hour,
             **dict(zip(_COUNTERS, counts, strict=True))}
            for (path, rule, hour), counts in rows.items()
        ]  # fmt: skip
        async with self._database.write() as connection:
            if sequence is not None and not await self._claim(connection, sequence, boot_id):
                return  # written before: its commit went through, only its answer was lost
            await connection.execute(_upsert(self._database.dialect), values)

    async def _claim(self, connection: AsyncConnection, sequence: int, boot: str | None) -> bool:
        assert self._node is not None, "a sequence needs the node that writes it"
        node, run = self._node
        writer = HYBRID_WRITER.format(node=node)
        return await claim_batch(connection, self._database.dialect, writer, boot or run, sequence)

    async def usage(
        self,
        *,
        start: float,
        end: float,
        hybrid_connection: str | None = None,
        rule: str | None = None,
        granularity: Literal["hour", "day"] = "hour",
    ) -> list[HybridUsageBucket]:
        """Traffic per (hybrid connection, rule, bucket) for every bucket overlapping
        ``[start, end)``, whole; ordered by bucket, hybrid connection, rule."""
        width = _BUCKET_SECONDS.get(granularity)
        if width is None:
            raise ValueError(f"granularity must be 'hour' or 'day', not {granularity!r}")
        table = hybrid_usage_hourly.c
        # A literal: PostgreSQL matches SELECT and GROUP BY expressions textually.
        bucket = (table.hour_start - table.hour_start % literal_column(str(width))).label(
            "bucket_start"
        )
        low, high = floor_to(start, width), ceil_to(end, width)
        query = (
            select(table.hybrid_connection, table.rule, bucket, *_summed())
            .where(table.hour_start >= low, table.hour_start < high)
            .group_by(table.hybrid_connection, table.rule, bucket)
            .order_by(bucket, table.hybrid_connection, table.rule)
        )
        if hybrid_connection is not None:
            query = query.where(table.hybrid_connection == hybrid_connection)
        if rule is not None:
            query = query.where(table.rule == rule)
        async with self._database.read() as connection:
            found = (await connection.execute(query)).mappings().all()
        return [_bucket(row) for row in found]


def _validate(record: HybridUsageRecord) -> None:
    if min(record.bytes_to_listener, record.bytes_to_sender, record.requests) < 0:
        raise ValueError(f"negative delta in {record!r}")
    if record.period_end < record.period_start:
        raise ValueError(f"span ends before it starts in {record!r}")


def _upsert(dialect: str) -> Any:
    statement = dialect_insert(dialect, hybrid_usage_hourly)
    new, current = statement.excluded, hybrid_usage_hourly.c
    return statement.on_conflict_do_update(
        index_elements=[current.hybrid_connection, current.rule, current.hour_start],
        set_={name: current[name] + new[name] for name in _COUNTERS},
    )


def _summed() -> list[ColumnElement[Any]]:
    # PostgreSQL sums BIGINT into NUMERIC; cast back so both databases return ints.
    return [
        cast(func.sum(hybrid_usage_hourly.c[name]), BigInteger).label(name) for name in _COUNTERS
    ]


def _bucket(row: Any) -> HybridUsageBucket:
    return HybridUsageBucket(
        hybrid_connection=row["hybrid_connection"],
        rule=row["rule"],
        bucket_start=int(row["bucket_start"]),
        **{name: int(row[name]) for name in _COUNTERS},
    )
