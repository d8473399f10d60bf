"""``--log-format json``: one JSON object per line, with the event's fields beside it."""

from __future__ import annotations

import json
import logging

import pytest

from passage.cli.logging import configure_logging, set_log_format

pytestmark = pytest.mark.usefixtures("restore_root_logger")


def test_json_lines_carry_timestamp_level_logger_event_and_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "json")
    log = logging.getLogger("passage.test")
    log.info("allocation %s ended", "a1", extra={"fields": {"user": "alice", "bytes": 12,
                                                            "level": "clash"}})  # fmt: skip
    log.debug("not shown")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "info" and first["logger"] == "passage.test"
    assert first["event"] == "allocation a1 ended"
    assert first["timestamp"].endswith("Z") and "T" in first["timestamp"]
    assert (first["user"], first["bytes"], first["field_level"]) == ("alice", 12, "clash")
    assert second["level"] == "error" and "ValueError: boom" in second["exception"]


def test_switching_back_to_text_replaces_the_json_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "json")
    configure_logging("info", "text")
    logging.getLogger("passage.test").info("plain")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(" INFO passage.test: plain")


def test_a_reload_switches_the_format_of_the_installed_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "text")
    set_log_format("json")
    logging.getLogger("passage.test").info("now json")
    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line)["event"] == "now json"
