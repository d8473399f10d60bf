"""``GET /usage``: relayed usage per identity, or per hybrid connection and rule, per hour
or UTC day.

Query: ``kind`` (``turn``, the default: TURN usage per identity; or
``hybridConnection``: Hybrid Connections bytes per hybrid connection and
authorization rule), ``identity`` (TURN; an identity id, a static user, or
``anonymous``), ``hybridConnection`` and ``rule`` (Hybrid Connections),
``from`` and ``to`` (ISO 8601 or unix seconds; default the last 24 hours),
``granularity`` (``hour`` or ``day``, default ``hour``), ``format`` (``json``
or ``csv``). Every bucket overlapping ``[from, to)`` is returned whole.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Mapping
from typing import Literal, cast

from passage.api.call import Reply
from passage.identity.errors import ValidationError
from passage.store.hybrid_usage import HybridUsageBucket
from passage.store.ledger import UsageBucket, UsageLedger

__all__ = [
    "CSV_COLUMNS",
    "MAX_USAGE_SPAN",
    "parse_instant",
    "usage_csv",
    "usage_reply",
    "usage_row",
]

CSV_COLUMNS = (
    "start", "identity", "bytesToPeer", "bytesFromPeer", "packetsToPeer", "packetsFromPeer",
    "allocationSeconds", "allocationsStarted",
)  # fmt: skip
"""The columns of ``format=csv``, in order: the JSON rows' names (``passage usage --format
csv`` writes the same)."""

HYBRID_CSV_COLUMNS = (
    "start", "hybridConnection", "rule", "bytesToListener", "bytesToSender", "requests",
)  # fmt: skip
"""The columns of ``kind=hybridConnection&format=csv``."""

KINDS = ("turn", "hybridConnection")

_CSV_HEADERS = {
    "Content-Type": "text/csv; charset=utf-8",
    "Content-Disposition": 'attachment; filename="passage-usage.csv"',
}

MAX_USAGE_SPAN = datetime.timedelta(days=400)
"""The widest ``[from, to)`` one query may ask for."""

DEFAULT_SPAN = datetime.timedelta(hours=24)


def parse_instant(text: str, name: str) -> datetime.datetime:
    """ISO 8601 (a naive time is UTC) or unix seconds; 400 naming ``name`` otherwise."""
    try:
        return datetime.datetime.fromtimestamp(float(text), datetime.UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        instant = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{name} {text!r} is not an ISO 8601 time or unix seconds.", name
        ) from None
    return instant if instant.tzinfo else instant.replace(tzinfo=datetime.UTC)


def usage_row(bucket: UsageBucket) -> dict[str, object]:
    start = datetime.datetime.fromtimestamp(bucket.bucket_start, datetime.UTC)
    return {
        "identity": bucket.subject,
        "start": start.isoformat().replace("+00:00", "Z"),
        "bytesToPeer": bucket.bytes_to_peer,
        "packetsToPeer": bucket.packets_to_peer,
        "bytesFromPeer": bucket.bytes_from_peer,
        "packetsFromPeer": bucket.packets_from_peer,
        "allocationSeconds": round(bucket.allocation_seconds, 3),
        "allocationsStarted": bucket.allocations_started,
    }


def hybrid_usage_row(bucket: HybridUsageBucket) -> dict[str, object]:
    start = datetime.datetime.fromtimestamp(bucket.bucket_start, datetime.UTC)
    return {
        "hybridConnection": bucket.hybrid_connection,
        "rule": bucket.rule or None,  # None: anonymous senders
        "start": start.isoformat().replace("+00:00", "Z"),
        "bytesToListener": bucket.bytes_to_listener,
        "bytesToSender": bucket.bytes_to_sender,
        "requests": bucket.requests,
    }


def usage_csv(rows: list[dict[str, object]], columns: tuple[str, ...] = CSV_COLUMNS) -> str:
    """The rows as CSV (RFC 4180, a header first). A name is never written so that a
    spreadsheet would run it as a formula: a leading ``= + - @`` gets a quote mark first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell("" if row[column] is None else row[column]) for column in columns])
    return out.getvalue()


def _cell(value: object) -> object:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


async def usage_reply(
    ledger: UsageLedger, query: Mapping[str, str], now: datetime.datetime
) -> Reply:
    end = parse_instant(query["to"], "to") if "to" in query else now
    start = parse_instant(query["from"], "from") if "from" in query else end - DEFAULT_SPAN
    if start >= end:
        raise ValidationError("from must be before to.", "from")
    if end - start > MAX_USAGE_SPAN:
        raise ValidationError(f"At most {MAX_USAGE_SPAN.days} days per query.", "from")
    form = query.get("format", "json")
    if form not in ("json", "csv"):
        raise ValidationError("format must be json or csv.", "format")
    granularity = query.get("granularity", "hour")
    if granularity not in ("hour", "day"):
        raise ValidationError("granularity must be hour or day.", "granularity")
    kind = query.get("kind", "turn")
    if kind not in KINDS:
        raise ValidationError("kind must be turn or hybridConnection.", "kind")
    columns: tuple[str, ...] = CSV_COLUMNS
    if kind == "hybridConnection":
        found = await ledger.hybrid.usage(
            start=start.timestamp(),
            end=end.timestamp(),
            hybrid_connection=query.get("hybridConnection") or None,
            rule=query.get("rule") or None,
            granularity=cast(Literal["hour", "day"], granularity),
        )
        rows, columns = [hybrid_usage_row(bucket) for bucket in found], HYBRID_CSV_COLUMNS
    else:
        rows = await _turn_rows(ledger, query, start, end, granularity)
    if form == "csv":
        return Reply(200, text=usage_csv(rows, columns), headers=_CSV_HEADERS)
    return Reply(
        200,
        {
            "kind": kind,
            "granularity": granularity,
            "from": start.isoformat().replace("+00:00", "Z"),
            "to": end.isoformat().replace("+00:00", "Z"),
            "value": rows,
        },
    )


async def _turn_rows(
    ledger: UsageLedger,
    query: Mapping[str, str],
    start: datetime.datetime,
    end: datetime.datetime,
    granularity: str,
) -> list[dict[str, object]]:
    buckets = await ledger.usage(
        start=start.timestamp(),
        end=end.timestamp(),
        subject=query.get("identity") or None,
        granularity=cast(Literal["hour", "day"], granularity),
    )
    return [usage_row(bucket) for bucket in buckets]
