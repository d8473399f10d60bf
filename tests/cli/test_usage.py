"""``passage usage``: the ledger as a table, CSV or the API's JSON, locally or remotely."""

from __future__ import annotations

import asyncio
import csv
import datetime
import io
import json
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from passage.cli.main import main
from passage.cli.usage import COLUMNS
from passage.store.database import open_database, sqlite_url
from passage.store.ledger import UsageLedger, UsageRecord
from passage.usage import HybridUsageRecord
from passage_server import passage_process
from usage_records import flush

H = 1_700_002_800  # a whole hour, the last of its UTC day (2023-11-14T23:00:00Z)
WINDOW = ["--from", str(H), "--to", "2023-11-15T01:00:00Z"]  # two hours, across midnight
FIELDS = [
    "start", "identity", "bytesToPeer", "bytesFromPeer", "packetsToPeer", "packetsFromPeer",
    "allocationSeconds", "allocationsStarted",
]  # fmt: skip


pytestmark = pytest.mark.usefixtures("no_passage_environment")


SAMPLE = (
    flush("a1", subject="alice", start=H + 100, sent=1000, received=200),
    flush("b1", subject="bob", start=H + 200, sent=300),
    flush("a2", subject="alice", start=H + 3600 + 10, sent=5000, received=700),
)
"""alice in both hours (and so both UTC days), bob in the first only."""


def record(data_dir: Path, records: Sequence[UsageRecord]) -> None:
    async def write() -> None:
        database = await open_database(sqlite_url(data_dir))
        try:
            await UsageLedger(database).record(records)
        finally:
            await database.close()

    asyncio.run(write())


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    record(path, SAMPLE)
    return path


def usage(data_dir: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["usage", "--data-dir", str(data_dir), *args]) == 0
    return capsys.readouterr().out


def run_passage(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "passage", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_json_is_the_api_object(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = json.loads(usage(data_dir, capsys, *WINDOW, "--format", "json"))
    assert {k: body[k] for k in ("granularity", "from", "to")} == {
        "granularity": "hour",
        "from": "2023-11-14T23:00:00Z",
        "to": "2023-11-15T01:00:00Z",
    }
    assert body["value"] == [
        {
            "identity": "alice", "start": "2023-11-14T23:00:00Z", "bytesToPeer": 1000,
            "packetsToPeer": 10, "bytesFromPeer": 200, "packetsFromPeer": 2,
            "allocationSeconds": 60.0, "allocationsStarted": 1,
        },
        {
            "identity": "bob", "start": "2023-11-14T23:00:00Z", "bytesToPeer": 300,
            "packetsToPeer": 3, "bytesFromPeer": 0, "packetsFromPeer": 0,
            "allocationSeconds": 60.0, "allocationsStarted": 1,
        },
        {
            "identity": "alice", "start": "2023-11-15T00:00:00Z", "bytesToPeer": 5000,
            "packetsToPeer": 50, "bytesFromPeer": 700, "packetsFromPeer": 7,
            "allocationSeconds": 60.0, "allocationsStarted": 1,
        },
    ]  # fmt: skip


def test_table_has_aligned_columns(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    header, *rows = usage(data_dir, capsys, *WINDOW).splitlines()
    assert re.split(r"\s{2,}", header) == [column.title for column in COLUMNS]
    assert [row.split() for row in rows] == [
        ["2023-11-14T23:00:00Z", "alice", "1000", "200", "10", "2", "60.0", "1"],
        ["2023-11-14T23:00:00Z", "bob", "300", "0", "3", "0", "60.0", "1"],
        ["2023-11-15T00:00:00Z", "alice", "5000", "700", "50", "7", "60.0", "1"],
    ]
    assert len({len(line) for line in [header, *rows]}) == 1
    for column in COLUMNS:  # text starts under its title, numbers end under theirs
        start = header.index(column.title)
        end = start + len(column.title)
        for row in rows:
            edge = row[start] if column.left else row[end - 1]
            assert edge != " ", (column.title, row)
            assert start == 0 or row[start - 1] == " "


def test_csv_has_a_header_row(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reader = csv.DictReader(io.StringIO(usage(data_dir, capsys, *WINDOW, "--format", "csv")))
    assert reader.fieldnames == FIELDS
    rows = list(reader)
    assert [(row["start"], row["identity"], row["bytesToPeer"]) for row in rows] == [
        ("2023-11-14T23:00:00Z", "alice", "1000"),
        ("2023-11-14T23:00:00Z", "bob", "300"),
        ("2023-11-15T00:00:00Z", "alice", "5000"),
    ]
    assert rows[2]["packetsFromPeer"] == "7"
    assert rows[2]["allocationSeconds"] == "60.0"


def test_identity_keeps_one_subject(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = json.loads(usage(data_dir, capsys, *WINDOW, "--identity", "bob", "--format", "json"))
    assert [(row["identity"], row["bytesToPeer"]) for row in body["value"]] == [("bob", 300)]


def test_day_granularity_sums_utc_days(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [*WINDOW, "--granularity", "day", "--format", "json"]
    body = json.loads(usage(data_dir, capsys, *args))
    assert body["granularity"] == "day"
    assert [(row["start"], row["identity"], row["bytesToPeer"]) for row in body["value"]] == [
        ("2023-11-14T00:00:00Z", "alice", 1000),
        ("2023-11-14T00:00:00Z", "bob", 300),
        ("2023-11-15T00:00:00Z", "alice", 5000),
    ]


def test_default_window_is_the_last_24_hours(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    # Ten minutes into the previous hour: a record across an hour boundary would be split
    # into two hourly rows, and this test would fail in the first minutes of every hour.
    start = now - now % 3600 - 3000
    record(data_dir, [flush("c1", subject="carol", start=start, sent=400)])
    body = json.loads(usage(data_dir, capsys, "--format", "json"))
    start, end = (datetime.datetime.fromisoformat(body[k]) for k in ("from", "to"))
    assert end - start == datetime.timedelta(hours=24)
    assert abs(end.timestamp() - now) < 60
    assert [(row["identity"], row["bytesToPeer"]) for row in body["value"]] == [("carol", 400)]


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--from", "yesterday"], "--from"),
        (["--to", "2023-13-01"], "--to"),
        (["--from", "2023-11-15T01:00:00Z", "--to", str(H)], "--from"),
        (["--from", "0", "--to", str(H)], "--from"),  # more than 400 days
    ],
)
def test_bad_window_is_a_usage_error_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], flag: str
) -> None:
    assert main(["usage", "--data-dir", str(tmp_path), *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"passage: error: {flag}")


def test_remote_prints_what_local_prints(tmp_path: Path) -> None:
    with passage_process(tmp_path) as (info, _log):
        record(info.data_dir, SAMPLE)
        remote = ["--connection-string", info.connection_string(), "--ca-file", str(info.ca_cert)]
        local = ["--data-dir", str(info.data_dir)]
        body = run_passage("usage", *remote, *WINDOW, "--format", "json")
        assert len(json.loads(body)["value"]) == len(SAMPLE)
        assert run_passage("usage", *local, *WINDOW, "--format", "json") == body
        for args in (["--format", "csv", "--granularity", "day", "--identity", "alice"], []):
            printed = run_passage("usage", *remote, *WINDOW, *args)
            assert "alice" in printed
            assert run_passage("usage", *local, *WINDOW, *args) == printed


def test_hybrid_connections_per_connection_and_rule(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def write() -> None:
        database = await open_database(sqlite_url(data_dir))
        try:
            await UsageLedger(database).hybrid.record(
                [
                    HybridUsageRecord("echo", "sender", H + 5, H + 6, 300, 20, 1),
                    HybridUsageRecord("echo", "", H + 7, H + 8, 9, 50, 1),
                    HybridUsageRecord("web/app", "sender", H + 9, H + 10, 1, 2, 1),
                ]
            )
        finally:
            await database.close()

    asyncio.run(write())
    lines = usage(data_dir, capsys, *WINDOW, "--hybrid-connections").splitlines()
    assert lines[0].split() == ["start", "hybrid", "connection", "rule", "bytes", "to",
                                "listener", "bytes", "to", "sender", "requests"]  # fmt: skip
    assert lines[1].split() == ["2023-11-14T23:00:00Z", "echo", "(anonymous)", "9", "50", "1"]
    assert lines[2].split() == ["2023-11-14T23:00:00Z", "echo", "sender", "300", "20", "1"]
    text = usage(data_dir, capsys, *WINDOW, "--hybrid-connections", "--hybrid-connection",
                 "Web/App", "--format", "csv")  # fmt: skip
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [
        ["start", "hybridConnection", "rule", "bytesToListener", "bytesToSender", "requests"],
        ["2023-11-14T23:00:00Z", "web/app", "sender", "1", "2", "1"],
    ]
    assert main(["usage", "--data-dir", str(data_dir), "--rule", "sender"]) == 2
    assert "--hybrid-connections" in capsys.readouterr().err
