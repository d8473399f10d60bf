"""``passage reload``: make the server running on a data directory re-read its configuration.

It finds the server through ``DATA_DIR/server.json`` (:mod:`passage.runtime`),
sends it SIGHUP, and waits for the outcome the server records there
(:mod:`passage.lifecycle`): what changed, what needs a restart, or why the new
configuration was refused (the old one keeps running). Exit status 0 when the
new configuration runs, 1 when it was refused or no answer came.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from passage.cli.command import Command
from passage.cli.options import add_config_arguments, config_from_arguments
from passage.cli.running import announce
from passage.config import ConfigError
from passage.lifecycle import LAST_RELOAD
from passage.runtime import RUNTIME_FILE, RuntimeRecord, read_record, running_server

__all__ = ["COMMAND"]

ANSWER_TIMEOUT = 30.0
"""Seconds to wait for the server to record the reload's outcome."""

POLL_INTERVAL = 0.1


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, only={"data_dir"})
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="send SIGHUP and return, without waiting for the outcome",
    )


def _run(arguments: argparse.Namespace) -> int:
    config = config_from_arguments(arguments)
    data_dir = config.data_dir
    record = _running(data_dir)
    announce(record, config)
    before = _sequence(record)
    try:
        os.kill(record.pid, signal.SIGHUP)
    except PermissionError:
        raise ConfigError(
            f"--data-dir {data_dir}: the server there (pid {record.pid}) runs as another "
            "user: run passage reload as that user (or root)"
        ) from None
    except ProcessLookupError:
        raise ConfigError(
            f"--data-dir {data_dir}: the server there (pid {record.pid}) is gone"
        ) from None
    if arguments.no_wait:
        print(f"passage: sent SIGHUP to pid {record.pid}", file=sys.stderr)
        return 0
    outcome = _wait_for_outcome(data_dir, record.boot_id, before)
    if outcome is None:
        print(
            f"passage: error: sent SIGHUP to pid {record.pid}, but it recorded no outcome "
            f"within {ANSWER_TIMEOUT:.0f} s: see its log",
            file=sys.stderr,
        )
        return 1
    print(f"passage: pid {record.pid}: {outcome.get('message', '')}")
    return 0 if outcome.get("ok") is True else 1


def _running(path: Path) -> RuntimeRecord:
    """The live server of ``path``, or a one-line :class:`ConfigError` saying why none."""
    record = running_server(path)
    if record is not None:
        return record
    if not path.is_dir():
        raise ConfigError(f"--data-dir {path}: no such directory, so no server runs there")
    if not (path / RUNTIME_FILE).exists():
        raise ConfigError(
            f"--data-dir {path}: no passage serve runs there (no {RUNTIME_FILE}: "
            "start one with passage serve --data-dir, or name the right directory)"
        )
    raise ConfigError(
        f"--data-dir {path}: no passage serve runs there ({RUNTIME_FILE} names a "
        "process that is gone)"
    )


def _sequence(record: RuntimeRecord | None) -> int:
    outcome = record.extra.get(LAST_RELOAD) if record is not None else None
    if isinstance(outcome, dict) and isinstance(outcome.get("sequence"), int):
        return int(outcome["sequence"])
    return 0


def _wait_for_outcome(data_dir: Path, boot_id: str, before: int) -> dict[str, object] | None:
    """The outcome the server records after ``before``; None if it stops or says nothing."""
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
        try:
            record = read_record(data_dir)
        except ConfigError:
            continue  # being replaced: read it again
        if record is None or record.boot_id != boot_id:
            return None  # the server stopped, or another one started
        if _sequence(record) > before:
            outcome = record.extra[LAST_RELOAD]
            return outcome if isinstance(outcome, dict) else None
    return None


COMMAND = Command(
    name="reload",
    help="make the server on a data directory re-read its configuration and certificate",
    add_arguments=_add_arguments,
    run=_run,
    example="passage reload --data-dir /var/lib/passage",
)
