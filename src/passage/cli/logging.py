"""Logging for the ``passage`` process: one line per event on stderr."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

__all__ = ["LOG_FORMAT", "configure_logging"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

QUIET_LIBRARIES = ("aiosqlite", "asyncio", "sqlalchemy")
"""Libraries kept at WARNING: their debug and info output (SQL with parameters, every
cursor call) would drown ours and may carry data an operator should not see in logs."""


class _PassageHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record arrives (as ``logging.lastResort``
    does), not to the stream it was made with: an embedding program or a test harness that
    swaps stderr, and closes the old one, must not get '--- Logging error ---' instead of
    the line. The class also marks the handler this module installs, so a second call
    replaces it."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: str) -> None:
    """Send every record at ``level`` (debug, info, warning, error) or above to stderr.

    Calling it again replaces the handler it installed; other handlers stay.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _PassageHandler)]:
        root.removeHandler(old)
    handler = _PassageHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
