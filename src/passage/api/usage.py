"""``GET /usage``: relayed usage per identity, per hour or UTC day.

Query: ``identity`` (optional; an identity id, a static user, or
``anonymous``), ``from`` and ``to`` (ISO 8601 or unix seconds; default the
last 24 hours), ``granularity`` (``hour`` or ``day``, default ``hour``).
Every bucket overlapping ``[from, to)`` is returned whole.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Mapping
from typing import Literal, cast

from passage.api.call import Reply
from passage.identity.errors import ValidationError
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


def usage_csv(rows: list[dict[str, object]]) -> str:
    """The rows as CSV (RFC 4180, a header first). An identity is never written so that a
    spreadsheet would run it as a formula: a leading ``= + - @`` gets a quote mark first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[column]) for column in CSV_COLUMNS])
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
    buckets = await ledger.usage(
        start=start.timestamp(),
        end=end.timestamp(),
        subject=query.get("identity") or None,
        granularity=cast(Literal["hour", "day"], granularity),
    )
    rows = [usage_row(bucket) for bucket in buckets]
    if form == "csv":
        return Reply(200, text=usage_csv(rows), headers=_CSV_HEADERS)
    return Reply(
        200,
        {
            "granularity": granularity,
            "from": start.isoformat().replace("+00:00", "Z"),
            "to": end.isoformat().replace("+00:00", "Z"),
            "value": rows,
        },
    )
