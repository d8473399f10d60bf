"""Logging for the ``passage`` process: one line per event on stderr, as text or as JSON.

``text`` is a readable line (``LOG_FORMAT``). ``json`` is one object per line
for a log shipper: ``timestamp`` (UTC, ISO 8601 with milliseconds),
``level``, ``logger``, ``event`` (the message) and the event's own fields,
which a call passes as ``extra={"fields": {...}}`` (the access log, the
allocation-ended event do); an exception's traceback goes in ``exception``.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any, TextIO

__all__ = ["LOG_FORMAT", "JsonFormatter", "configure_logging", "set_log_format"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

QUIET_LIBRARIES = ("aiosqlite", "asyncio", "sqlalchemy")
"""Libraries kept at WARNING: their debug and info output (SQL with parameters, every
cursor call) would drown ours and may carry data an operator should not see in logs."""

RESERVED = frozenset({"timestamp", "level", "logger", "event", "exception"})
"""Keys of every JSON line; an event's field of the same name is put under ``field_``."""


class _PassageHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record arrives (as ``logging.lastResort``
    does), not to the stream it was made with: an embedding program or a test harness that
    swaps stderr, and closes the old one, must not get '--- Logging error ---' instead of
    the line. The class also marks the handler this module installs, so a second call
    replaces it."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line; ``tag`` adds ``"process": tag``."""

    def __init__(self, tag: str = "") -> None:
        super().__init__()
        self.tag = tag

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        line: dict[str, Any] = {
            "timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        if self.tag:
            line["process"] = self.tag
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line[f"field_{key}" if key in RESERVED else str(key)] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "text", tag: str = "") -> None:
    """Send every record at ``level`` (debug, info, warning, error) or above to stderr, as
    ``text`` or ``json`` lines.

    ``tag`` follows the logger's name on every line (``passage.turn[worker 2]``), so a
    worker process's lines are told apart. Calling it again replaces the handler it
    installed; other handlers stay.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _PassageHandler)]:
        root.removeHandler(old)
    handler = _PassageHandler(sys.stderr)
    handler.setFormatter(_formatter(log_format, tag))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def set_log_format(log_format: str, tag: str = "") -> None:
    """Write from now on as ``text`` or ``json`` (a reload): the handler
    :func:`configure_logging` installed changes its formatter; nothing else is touched."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _PassageHandler):
            handler.setFormatter(_formatter(log_format, tag))


def _formatter(log_format: str, tag: str = "") -> logging.Formatter:
    """``tag`` (a worker's ``worker N``) follows the logger's name, or is JSON's ``process``."""
    if log_format == "json":
        return JsonFormatter(tag)
    return logging.Formatter(
        LOG_FORMAT.replace("%(name)s", f"%(name)s[{tag}]") if tag else LOG_FORMAT
    )
