"""Usage batches the store could not take, kept in a file until it can.

While the store (SQLite or PostgreSQL) is down, the TURN relay keeps usage records in
memory up to ``--usage-buffer-records``; past that it appends them here, in the data
directory, so that neither a long outage nor a ``kill -9`` loses them. The Hybrid
Connections relay appends each batch it could not write at once (``kind`` ``hybrid``). The file
(:data:`SPILL_FILE`, mode 0600) only grows: one line per batch, a JSON object with
the run (``boot``) and number (``sequence``) the batch was written under and its
records, each line fsync'd before the records leave memory.

:meth:`UsageSpill.replay` writes the file into the ledger in order, each batch under
its own run and number, so the ledger claims it once (``ledger_batches``, migration
6): a batch whose commit went through just before a crash is skipped the next time.
After each batch it records how far it got in :data:`PROGRESS_FILE` (written whole,
then renamed over the old one); when all is written both files go. The next start
replays what an earlier run left before it closes that run's allocations.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

from passage.datadir import DataDirError
from passage.store.ledger import UsageLedger
from passage.usage import HybridUsageRecord, UsageRecord

logger = logging.getLogger("passage.store")

SPILL_FILE = "usage-spill.jsonl"
"""Name of the spill in the data directory."""

PROGRESS_FILE = "usage-spill.replayed"
"""Byte offset in the spill up to which every batch is in the ledger."""

_TAIL_CHUNK = 1 << 16
"""Bytes read at a time from the end, looking for the last whole line."""

TURN, HYBRID = "turn", "hybrid"
"""A batch's ``kind``: whose ledger it goes to (a line without one is TURN's)."""

_KINDS: dict[str, type[UsageRecord] | type[HybridUsageRecord]] = {
    TURN: UsageRecord,
    HYBRID: HybridUsageRecord,
}

SPILL_FILE_MODE = 0o600
"""Usernames and client addresses: for the server's user only."""


class SpillCorrupt(DataDirError):
    """A whole line of the spill does not parse: someone else wrote it. ``passage serve``
    stops with one line naming the file (a :class:`~passage.config.ConfigError`)."""


class UsageSpill:
    """The spill of one data directory, for one run of the node (``boot_id``)."""

    def __init__(self, directory: Path, ledger: UsageLedger, boot_id: str) -> None:
        """Read what an earlier run left (counted in :attr:`records`); a last line cut
        short by a crash mid-write is dropped (its records never left that run's memory)."""
        self.path = directory / SPILL_FILE
        self._progress = directory / PROGRESS_FILE
        self._ledger = ledger
        self._boot = boot_id
        self._fd: int | None = None
        self._replaying = asyncio.Lock()
        self.records = 0
        """Records in the spill that are not in the ledger yet."""
        self.spilled_total = 0
        """Records this run appended to the spill."""
        self.replayed_total = 0
        """Records this run wrote from the spill into the ledger."""
        if not self.path.exists():
            self._progress.unlink(missing_ok=True)  # its spill went: a crash between unlinks
            return
        _cut_torn_tail(self.path)
        self.records = sum(len(records) for _, _, records, _ in self._batches())

    def append(self, sequence: int, records: Sequence[UsageRecord]) -> None:
        """Add TURN batch ``sequence`` of this run durably (fsync'd before this returns).

        Raises ``OSError`` (a full disk, say) with the file as it was: the caller keeps
        the records."""
        self._append(TURN, sequence, records)

    def append_hybrid(self, sequence: int, records: Sequence[HybridUsageRecord]) -> None:
        """Add Hybrid Connections batch ``sequence`` of this run, as :meth:`append`."""
        self._append(HYBRID, sequence, records)

    def _append(
        self, kind: str, sequence: int, records: Sequence[UsageRecord | HybridUsageRecord]
    ) -> None:
        if not records:
            return
        batch = {"kind": kind, "boot": self._boot, "sequence": sequence,
                 "records": [asdict(r) for r in records]}  # fmt: skip
        line = json.dumps(batch, separators=(",", ":"))
        fd = self._open()
        end = os.lseek(fd, 0, os.SEEK_END)
        data = (line + "\n").encode()
        try:
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, end)  # no half line for the next one to follow (a full disk)
            raise
        self.records += len(records)
        self.spilled_total += len(records)

    async def replay(self, batches: int | None = None) -> int:
        """Write the spill into the ledger, oldest batch first, at most ``batches`` of
        them (None: all); return the records written. :attr:`records` says what is left.

        Raises what the ledger raises (the store is still down): the batches written
        so far stay written and marked, the rest stay in the file for the next call.
        """
        async with self._replaying:  # the TURN edge and the Hybrid Connections flusher
            return await self._replay(batches)

    async def _replay(self, batches: int | None) -> int:
        if not self.records:
            return 0
        written = 0
        for count, (boot, sequence, records, end) in enumerate(self._batches()):
            if batches is not None and count >= batches:
                return written
            if records and isinstance(records[0], HybridUsageRecord):
                hybrid = cast(list[HybridUsageRecord], records)
                await self._ledger.hybrid.record(hybrid, sequence, boot_id=boot)
            else:
                await self._ledger.record(cast(list[UsageRecord], records), sequence, boot_id=boot)
            _write_whole(self._progress, str(end).encode())
            self.records -= len(records)
            self.replayed_total += len(records)
            written += len(records)
        self._remove()
        logger.warning(
            "usage spill: the store is back; %d records from %s are in the ledger", written,
            self.path,
        )  # fmt: skip
        return written

    def close(self) -> None:
        """Close the file (what it holds stays for the next start)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        if self._fd is None:
            created = not self.path.exists()
            if created:
                self._progress.unlink(missing_ok=True)  # never an old offset on a new file
            self._fd = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, SPILL_FILE_MODE
            )
            os.fchmod(self._fd, SPILL_FILE_MODE)
            if created:
                _sync_directory(self.path.parent)
        return self._fd

    def _remove(self) -> None:
        """Everything is in the ledger: the spill goes first, then its offset (a crash
        between the two leaves an offset without a spill, which the next start drops)."""
        self.close()
        self.path.unlink(missing_ok=True)
        _sync_directory(self.path.parent)
        self._progress.unlink(missing_ok=True)

    def _batches(self) -> Iterator[tuple[str, int, list[UsageRecord | HybridUsageRecord], int]]:
        """``(boot, sequence, records, offset after the line)`` of each batch not yet
        in the ledger."""
        offset = _read_offset(self._progress)
        with self.path.open("rb") as spill:
            spill.seek(offset)
            for line in spill:
                offset += len(line)
                if not line.endswith(b"\n"):
                    return  # appended by this run since :func:`_cut_torn_tail`, mid-write
                boot, sequence, records = _parse(line, self.path)
                yield boot, sequence, records, offset


def _parse(line: bytes, path: Path) -> tuple[str, int, list[UsageRecord | HybridUsageRecord]]:
    try:
        batch: Any = json.loads(line)
        kind = _KINDS[batch.get("kind", TURN)]
        records: list[UsageRecord | HybridUsageRecord] = [
            kind(**fields) for fields in batch["records"]
        ]
        return str(batch["boot"]), int(batch["sequence"]), records
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise SpillCorrupt(
            f"{path}: a line is not a usage batch ({error}); move the file away to start"
        ) from None


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line without its newline: a write a crash cut short."""
    with path.open("r+b") as spill:
        end = spill.seek(0, os.SEEK_END)
        if end == 0 or (spill.seek(end - 1) >= 0 and spill.read(1) == b"\n"):
            return
        position = end
        while position > 0:
            step = min(_TAIL_CHUNK, position)
            position -= step
            spill.seek(position)
            newline = spill.read(step).rfind(b"\n")
            if newline >= 0:
                position += newline + 1
                break
        spill.truncate(position)
        os.fsync(spill.fileno())


def _read_offset(path: Path) -> int:
    with contextlib.suppress(FileNotFoundError, ValueError):
        return int(path.read_text())
    return 0


def _write_whole(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new, whole."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, SPILL_FILE_MODE)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
