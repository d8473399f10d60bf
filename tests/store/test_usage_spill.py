"""The usage spill: batches the store could not take, in a file of the data directory,
written into the ledger once each, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import os
import resource
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import passage.store.spill
from passage.store.database import Database
from passage.store.ledger import LedgerNode, UsageLedger
from passage.store.spill import PROGRESS_FILE, SPILL_FILE, SpillCorrupt, UsageSpill
from passage.usage import HybridUsageRecord
from passage_server import server_info
from usage_records import flush

H = 1_700_002_800  # a whole hour


async def bytes_sent(ledger: UsageLedger) -> int:
    return sum(allocation.bytes_to_peer for allocation in await ledger.allocations())


def ledger_of(database: Database, boot: str) -> UsageLedger:
    return UsageLedger(database, LedgerNode("node-a", boot))


async def test_spilled_batches_are_written_in_order_and_the_files_go(
    database: Database, tmp_path: Path
) -> None:
    ledger = ledger_of(database, "boot-1")
    spill = UsageSpill(tmp_path, ledger, "boot-1")
    old_umask = os.umask(0o022)
    try:
        spill.append(1, [flush(start=H, end=H + 1, sent=100)])
    finally:
        os.umask(old_umask)
    spill.append(2, [flush(start=H + 1, end=H + 2, sent=200, started_at=H)])
    spill.append(3, [flush(start=H + 2, end=H + 3, sent=300, started_at=H, end_reason="expired")])
    assert stat.S_IMODE((tmp_path / SPILL_FILE).stat().st_mode) == 0o600
    assert (spill.records, spill.spilled_total) == (3, 3)
    assert await spill.replay() == 3
    assert await bytes_sent(ledger) == 600
    [allocation] = await ledger.allocations()
    assert allocation.end_reason == "expired"
    assert (spill.records, spill.replayed_total) == (0, 3)
    assert not (tmp_path / SPILL_FILE).exists() and not (tmp_path / PROGRESS_FILE).exists()
    assert await spill.replay() == 0


async def test_a_replay_cut_after_a_commit_counts_that_batch_once_at_the_next_start(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between a batch's commit and the note of it: the next run (another boot)
    writes the batch again under the run and number it was spilled with, so the ledger
    (``ledger_batches``) skips it."""
    first = UsageSpill(tmp_path, ledger_of(database, "boot-1"), "boot-1")
    first.append(1, [flush("x", start=H, sent=100)])
    first.append(2, [flush("y", start=H, sent=200)])
    first.close()

    def crash(path: Path, data: bytes) -> None:
        raise SystemExit("killed after the commit")

    monkeypatch.setattr(passage.store.spill, "_write_whole", crash)
    with pytest.raises(SystemExit):
        await first.replay()
    monkeypatch.undo()
    ledger = ledger_of(database, "boot-2")
    assert await bytes_sent(ledger) == 100  # batch 1 committed, not noted
    again = UsageSpill(tmp_path, ledger, "boot-2")
    assert again.records == 2
    assert await again.replay() == 2
    assert await bytes_sent(ledger) == 300
    assert not (tmp_path / SPILL_FILE).exists()


async def test_a_line_cut_short_by_a_crash_is_dropped_and_the_rest_replays(
    database: Database, tmp_path: Path
) -> None:
    ledger = ledger_of(database, "boot-1")
    spill = UsageSpill(tmp_path, ledger, "boot-1")
    spill.append(1, [flush("x", start=H, sent=100)])
    spill.close()
    with (tmp_path / SPILL_FILE).open("ab") as file:
        file.write(b'{"boot":"boot-1","sequence":2,"rec')  # killed mid-write
    again = UsageSpill(tmp_path, ledger, "boot-2")
    assert again.records == 1
    again.append(1, [flush("z", start=H, sent=400)])
    assert again.records == 2
    assert await again.replay() == 2
    assert await bytes_sent(ledger) == 500


async def test_a_progress_file_without_its_spill_is_dropped(
    database: Database, tmp_path: Path
) -> None:
    """A crash between the two unlinks leaves the offset alone; a new spill starts at 0."""
    (tmp_path / PROGRESS_FILE).write_text("12345")
    ledger = ledger_of(database, "boot-1")
    spill = UsageSpill(tmp_path, ledger, "boot-1")
    assert not (tmp_path / PROGRESS_FILE).exists()
    spill.append(1, [flush("x", start=H, sent=100)])
    assert await spill.replay() == 1
    assert await bytes_sent(ledger) == 100


def test_a_line_that_is_no_batch_stops_the_start_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / SPILL_FILE).write_text('{"boot": "b", "sequence": 1}\n')
    with pytest.raises(SpillCorrupt, match=SPILL_FILE):
        UsageSpill(tmp_path, UsageLedger.__new__(UsageLedger), "boot-1")


async def test_a_batch_the_disk_refuses_leaves_the_file_whole_for_the_next_one(
    database: Database, tmp_path: Path
) -> None:
    """A full disk (here a file size limit) cuts a line short: the append raises, the
    caller keeps its records, and the file is as it was, so later lines still parse."""
    ledger = ledger_of(database, "boot-1")
    spill = UsageSpill(tmp_path, ledger, "boot-1")
    spill.append(1, [flush("x", start=H, sent=100)])
    size = (tmp_path / SPILL_FILE).stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 20, hard))
    try:
        with pytest.raises(OSError):
            spill.append(2, [flush("y", start=H, sent=200)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert (tmp_path / SPILL_FILE).stat().st_size == size
    assert spill.records == 1
    spill.append(2, [flush("y", start=H, sent=200)])
    spill.close()
    again = UsageSpill(tmp_path, ledger_of(database, "boot-2"), "boot-2")
    assert again.records == 2
    assert await again.replay() == 2
    assert await bytes_sent(ledger) == 300


async def test_a_replay_step_writes_that_many_batches_and_the_rest_waits(
    database: Database, tmp_path: Path
) -> None:
    """While the relay runs, a long spill goes back a step per flush."""
    ledger = ledger_of(database, "boot-1")
    spill = UsageSpill(tmp_path, ledger, "boot-1")
    for sequence in range(1, 6):
        spill.append(sequence, [flush(f"a{sequence}", start=H, sent=100)])
    assert await spill.replay(batches=2) == 2
    assert (spill.records, await bytes_sent(ledger)) == (3, 200)
    assert (tmp_path / SPILL_FILE).exists()
    spill.append(6, [flush("a6", start=H, sent=100)])  # new records go behind the rest
    assert await spill.replay(batches=2) == 2
    assert await spill.replay(batches=2) == 2
    assert (spill.records, await bytes_sent(ledger)) == (0, 600)
    assert not (tmp_path / SPILL_FILE).exists()


def test_passage_serve_with_a_corrupt_spill_stops_in_one_line(tmp_path: Path) -> None:
    info = server_info(tmp_path)
    info.data_dir.mkdir(mode=0o700)
    (info.data_dir / SPILL_FILE).write_text("not a batch\n")
    done = subprocess.run(
        [sys.executable, "-m", "passage", *info.args()],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and SPILL_FILE in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr


async def test_hybrid_batches_replayed_after_a_crash_count_once(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hybrid Connections batches share the spill; the ledger claims them under
    ``NODE/hybrid`` and their own numbers, so a crash between a commit and its note does
    not count it twice."""
    first = UsageSpill(tmp_path, ledger_of(database, "boot-1"), "boot-1")
    first.append_hybrid(1, [HybridUsageRecord("hc", "send", H, H + 1, 100, 0, 1)])
    first.append(1, [flush("x", start=H, sent=1000)])  # a TURN batch of the same number
    first.append_hybrid(2, [HybridUsageRecord("hc", "send", H + 1, H + 2, 200, 0, 1)])
    first.close()

    def crash(path: Path, data: bytes) -> None:
        raise SystemExit("killed after the commit")

    monkeypatch.setattr(passage.store.spill, "_write_whole", crash)
    with pytest.raises(SystemExit):
        await first.replay()
    monkeypatch.undo()
    ledger = ledger_of(database, "boot-2")
    again = UsageSpill(tmp_path, ledger, "boot-2")
    assert again.records == 3
    assert await again.replay() == 3
    [bucket] = await ledger.hybrid.usage(start=H, end=H + 3600)
    assert (bucket.bytes_to_listener, bucket.requests) == (300, 2)
    assert await bytes_sent(ledger) == 1000
