"""``passage usage``: relayed usage per identity, or Hybrid Connections bytes per hybrid
connection and rule (``--hybrid-connections``), per hour or UTC day.

Reads the local store's ledger (``--data-dir``/``--database-url``) or asks a
running server (``--connection-string``, ``GET /usage``). Both go through the
API's own :func:`passage.api.usage.usage_reply`, so ``--format json`` prints the
same object either way; ``table`` and ``csv`` are drawn from its rows.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from passage.api.usage import DEFAULT_SPAN, MAX_USAGE_SPAN, parse_instant, usage_reply
from passage.cli.command import Command
from passage.cli.management import (
    add_management_arguments,
    call_remote,
    management_config,
    remote_target,
    with_store,
)
from passage.config import ConfigError
from passage.identity.errors import ValidationError
from passage.store.database import Database
from passage.store.ledger import UsageLedger

__all__ = ["COLUMNS", "COMMAND", "Column"]


@dataclass(frozen=True, slots=True)
class Column:
    """One column of ``table`` and ``csv``: a field of :func:`passage.api.usage.usage_row`."""

    field: str
    """The row's JSON name, also the ``csv`` header."""
    title: str
    """The ``table`` header."""
    left: bool = False
    """Left-align in ``table`` (text); numbers are right-aligned."""
    show: Callable[[Any], str] = str
    """How ``table`` writes a value."""


def _seconds(value: Any) -> str:
    return f"{float(value):.1f}"


COLUMNS: tuple[Column, ...] = (
    Column("start", "start", left=True),
    Column("identity", "identity", left=True),
    Column("bytesToPeer", "bytes to peer"),
    Column("bytesFromPeer", "bytes from peer"),
    Column("packetsToPeer", "packets to peer"),
    Column("packetsFromPeer", "packets from peer"),
    Column("allocationSeconds", "allocation seconds", show=_seconds),
    Column("allocationsStarted", "allocations"),
)
"""The columns of ``table`` and ``csv``, in order."""

HYBRID_COLUMNS: tuple[Column, ...] = (
    Column("start", "start", left=True),
    Column("hybridConnection", "hybrid connection", left=True),
    Column("rule", "rule", left=True, show=lambda rule: rule or "(anonymous)"),
    Column("bytesToListener", "bytes to listener"),
    Column("bytesToSender", "bytes to sender"),
    Column("requests", "requests"),
)
"""The columns with ``--hybrid-connections``."""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="start",
        metavar="TIME",
        help="first instant, ISO 8601 or unix seconds (default: 24 hours before --to)",
    )
    parser.add_argument(
        "--to", dest="end", metavar="TIME", help="end instant, exclusive (default: now)"
    )
    parser.add_argument("--identity", metavar="ID", help="one identity, static user or 'anonymous'")
    parser.add_argument(
        "--hybrid-connections",
        action="store_true",
        help="Hybrid Connections bytes per hybrid connection and authorization rule instead",
    )
    parser.add_argument(
        "--hybrid-connection", metavar="NAME", help="with --hybrid-connections: only this one"
    )
    parser.add_argument("--rule", metavar="NAME", help="with --hybrid-connections: only this rule")
    parser.add_argument(
        "--granularity", choices=("hour", "day"), default="hour", help="bucket size (UTC)"
    )
    parser.add_argument("--format", choices=tuple(_PRINTERS), default="table", help="output format")
    add_management_arguments(parser)


def _run(arguments: argparse.Namespace) -> int:
    now = datetime.datetime.now(datetime.UTC)
    query = _query(arguments, now)
    config = management_config(arguments)
    target = remote_target(arguments, config)
    if target is None:
        body = with_store(config, lambda database, _store: _local_usage(database, query, now))
    else:
        body = call_remote(target, "GET", "/usage", query)
    _PRINTERS[arguments.format](body)
    return 0


def _query(arguments: argparse.Namespace, now: datetime.datetime) -> dict[str, str]:
    """The ``GET /usage`` query for these flags; ConfigError naming the flag if one is bad."""
    end = _instant(arguments.end, "--to") if arguments.end is not None else now
    start = (
        _instant(arguments.start, "--from") if arguments.start is not None else end - DEFAULT_SPAN
    )
    if start >= end:
        raise ConfigError(f"--from: {start.isoformat()} is not before --to {end.isoformat()}")
    if end - start > MAX_USAGE_SPAN:
        raise ConfigError(f"--from: at most {MAX_USAGE_SPAN.days} days before --to")
    query = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "granularity": arguments.granularity,
    }
    if arguments.identity:
        query["identity"] = arguments.identity
    if arguments.hybrid_connections:
        query["kind"] = "hybridConnection"
        if arguments.hybrid_connection:
            query["hybridConnection"] = arguments.hybrid_connection.strip("/").lower()
        if arguments.rule:
            query["rule"] = arguments.rule
    elif arguments.hybrid_connection or arguments.rule:
        raise ConfigError("--hybrid-connection and --rule go with --hybrid-connections")
    return query


def _instant(text: str, flag: str) -> datetime.datetime:
    try:
        return parse_instant(text, flag)
    except ValidationError as error:
        raise ConfigError(error.message) from None


async def _local_usage(database: Database, query: Mapping[str, str], now: datetime.datetime) -> Any:
    try:
        reply = await usage_reply(UsageLedger(database), query, now)
    except ValidationError as error:  # _query checks the same first; this names any other
        raise ConfigError(f"--{error.target}: {error.message}") from None
    return reply.body


# --- output ---------------------------------------------------------------------


def _rows(body: Any) -> Sequence[Mapping[str, Any]]:
    rows: Sequence[Mapping[str, Any]] = body["value"]
    return rows


def _print_json(body: Any) -> None:
    print(json.dumps(body, indent=2))


def _columns(body: Any) -> tuple[Column, ...]:
    return HYBRID_COLUMNS if body.get("kind") == "hybridConnection" else COLUMNS


def _print_csv(body: Any) -> None:
    columns = _columns(body)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(column.field for column in columns)
    writer.writerows(
        ["" if row[column.field] is None else row[column.field] for column in columns]
        for row in _rows(body)
    )
    print(out.getvalue(), end="")


def _print_table(body: Any) -> None:
    columns = _columns(body)
    cells = [[column.title for column in columns]]
    cells += [[column.show(row[column.field]) for column in columns] for row in _rows(body)]
    widths = [max(len(line[index]) for line in cells) for index in range(len(columns))]
    for line in cells:
        print(
            "  ".join(
                cell.ljust(width) if column.left else cell.rjust(width)
                for cell, width, column in zip(line, widths, columns, strict=True)
            )
        )


_PRINTERS: dict[str, Callable[[Any], None]] = {
    "table": _print_table,
    "csv": _print_csv,
    "json": _print_json,
}


COMMAND = Command(
    name="usage",
    help="print relayed usage per identity and hour or day",
    add_arguments=_add_arguments,
    run=_run,
    example="passage usage --data-dir .passage --granularity day --format csv",
)
